//! Part 4, the read path: a node whose store holds many posts in one
//! topic; how long reading the newest 50 takes, and how long the node
//! takes to start on that store.

use std::time::Instant;

use tokio::runtime::Runtime;

use crate::fixtures::{self, BenchNode, Community};
use crate::report::Report;

const PART: &str = "read";
/// Posts signed, verified and stored per batch while filling the store,
/// so memory stays bounded whatever the size.
const BATCH: usize = 50_000;
/// Reads the idle child makes before it reports its memory.
const IDLE_READS: usize = 100;

/// Sizes of the read part.
pub(crate) struct Sizes {
    /// Posts in the store.
    pub(crate) posts: usize,
    /// Reads measured.
    pub(crate) reads: usize,
    /// Posts per read.
    pub(crate) limit: usize,
}

/// Runs the part and adds its rows.
pub(crate) fn run(rt: &Runtime, report: &mut Report, sizes: &Sizes) -> anyhow::Result<()> {
    let com = Community::new()?;
    let topic = fixtures::topic();
    let data = com.admin.clone();
    let start_ms = node::now_ms() - 86_400_000;

    // Fill the store in a child process, as the node's core would write it
    // (batches of 512, a checkpoint whenever one is due), then kill it
    // with SIGKILL: what a crash leaves. Signing and verifying run on
    // every core (untimed); the inserts are timed, as a store figure.
    let filled = fill_child(&data, &topic, sizes.posts, start_ms)?;
    let disk = fixtures::dir_bytes(&data.store_path());
    let t = Instant::now();
    let store = node::store::Store::open(&data.store_path(), data.store_keys()?)?;
    let crash_open = t.elapsed();
    anyhow::ensure!(
        store.count_topic(&topic)? == sizes.posts as u64,
        "after the SIGKILL the store holds {} posts, not {}",
        store.count_topic(&topic)?,
        sizes.posts
    );
    drop(store);
    // The same crash image again, under a whole node's start-up.
    let crashed = node::DataDir::new(com.root.path().join("crashed"));
    let filled_again = fill_child(
        &crashed_data(&com, &crashed)?,
        &topic,
        sizes.posts,
        start_ms,
    )?;
    let store = node::store::Store::open(&data.store_path(), data.store_keys()?)?;
    let t = Instant::now();
    store.close()?;
    let close = t.elapsed();
    let insert_s = filled.insert_s;
    let fill_s = filled.fill_s;

    rt.block_on(async {
        let t = Instant::now();
        let running = node::start(fixtures::config(data.clone(), Vec::new())).await?;
        running.handle.id().await?;
        let startup = t.elapsed();
        let node = BenchNode {
            handle: running.handle,
            task: running.task,
            addr: String::new(),
        };
        let mut lat = Vec::with_capacity(sizes.reads);
        for _ in 0..sizes.reads {
            let t = Instant::now();
            let got = node.read(&topic, sizes.limit).await?;
            lat.push(fixtures::ms(t.elapsed()));
            anyhow::ensure!(got == sizes.limit, "a read returned {got} posts");
        }
        lat.sort_by(f64::total_cmp);
        // The same reads through the control socket, one connection per
        // request, as the `mutual read` command makes them.
        let socket = data.socket_path();
        let server = node::control::serve(node.handle.clone(), &socket).await?;
        let request = node::control::Request::Read {
            topic: topic.as_str().to_string(),
            limit: Some(sizes.limit),
            since_ms: None,
            stream: true,
        };
        let mut via_socket = Vec::with_capacity(sizes.reads);
        for _ in 0..sizes.reads {
            let t = Instant::now();
            let got = node::control::request(&socket, &request).await?;
            via_socket.push(fixtures::ms(t.elapsed()));
            let n = got.as_array().map_or(0, Vec::len);
            anyhow::ensure!(n == sizes.limit, "a read over the socket returned {n} posts");
        }
        via_socket.sort_by(f64::total_cmp);
        server.abort();
        node.stop().await;

        let shape = format!("{} posts in one topic", sizes.posts);
        report
            .add(PART, &format!("read newest {}, p50", sizes.limit), fixtures::quantile(&lat, 0.5), "ms")
            .note(format!("handle.read, {} reads, {shape}", sizes.reads));
        report.add(PART, &format!("read newest {}, p99", sizes.limit), fixtures::quantile(&lat, 0.99), "ms");
        let t = Instant::now();
        let running = node::start(fixtures::config(crashed.clone(), Vec::new())).await?;
        running.handle.id().await?;
        let crash_startup = t.elapsed();
        let after_crash = running.handle.topics().await?;
        let held: u64 = after_crash.iter().map(|t| t.posts).sum();
        anyhow::ensure!(
            held == sizes.posts as u64,
            "the node started after a SIGKILL holds {held} posts, not {}",
            sizes.posts
        );
        let _ = running.handle.shutdown().await;
        let _ = running.task.await;
        std::fs::remove_dir_all(crashed.path())?;
        let idle = idle_child(&data, &topic, sizes.limit)?;

        report
            .add(PART, "node start-up on that store", fixtures::ms(startup), "ms")
            .note("node::start to the first handle.id() reply, after a clean stop (Store::close)");
        report
            .add(PART, "node start-up on that store after a SIGKILL", fixtures::ms(crash_startup), "ms")
            .note(format!(
                "node::start to the first handle.id() reply; the store was filled by a child process killed with SIGKILL after its last flush ({} checkpoints while filling): sled replays what was written since the last checkpoint",
                filled_again.checkpoints
            ));
        report
            .add(PART, "store open after that SIGKILL", fixtures::ms(crash_open), "ms")
            .note(format!(
                "Store::open alone on the first child's store ({} checkpoints while filling)",
                filled.checkpoints
            ));
        report
            .add(PART, "store close after the fill", fixtures::ms(close), "ms")
            .note("Store::close: sled's snapshot, written by reopening once, so the next start need not replay");
        report
            .add(PART, "idle node RSS on that store (child)", idle.rss_kib as f64 / 1024.0, "MiB")
            .note(format!(
                "VmRSS of a fresh process after node start-up and {} reads of the newest {}; peak {:.1} MiB; start-up there {:.0} ms",
                IDLE_READS,
                sizes.limit,
                idle.hwm_kib as f64 / 1024.0,
                idle.startup_ms
            ));
        report
            .add(PART, "store fill, Store::insert_posts in batches of 512", sizes.posts as f64 / insert_s, "posts/s")
            .note(format!(
                "in a child process, checkpoints included; {:.1} s of inserts + flush ({:.0} s with signing and verifying); {:.0} MiB on disk ({:.0} B per post)",
                insert_s,
                fill_s,
                disk as f64 / 1048576.0,
                disk as f64 / sizes.posts as f64
            ));
        report
            .add(
                PART,
                &format!("read newest {} via the control socket, p50", sizes.limit),
                fixtures::quantile(&via_socket, 0.5),
                "ms",
            )
            .note("node::control::request: connect, one JSON line each way, parse");
        report.add(
            PART,
            &format!("read newest {} via the control socket, p99", sizes.limit),
            fixtures::quantile(&via_socket, 0.99),
            "ms",
        );
        anyhow::Ok(())
    })
}

/// What a fill child reported.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Filled {
    insert_s: f64,
    fill_s: f64,
    checkpoints: u64,
}

/// A second data directory of the same community, for a second crash
/// image (the first one's store is closed and read by the node).
fn crashed_data(com: &Community, dir: &node::DataDir) -> anyhow::Result<node::DataDir> {
    dir.init(Some("crashed".into()))?;
    dir.join_community(&com.manifest, &com.admin_secret()?, &[], node::now_ms())?;
    Ok(dir.clone())
}

/// Runs `mutual-bench --fill-child` on `data`: it fills the store with
/// `posts` posts in `topic` and flushes, and is then killed with SIGKILL.
fn fill_child(
    data: &node::DataDir,
    topic: &protocol::TopicName,
    posts: usize,
    start_ms: u64,
) -> anyhow::Result<Filled> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--fill-child")
        .arg(data.path())
        .arg(topic.as_str())
        .arg(posts.to_string())
        .arg(start_ms.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("the fill child has no stdout"))?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    // Killed after its last flush, whatever it was doing.
    child.kill()?;
    child.wait()?;
    serde_json::from_str(line.trim())
        .map_err(|e| anyhow::anyhow!("the fill child did not finish ({e}): {line:?}"))
}

/// The fill child: writes `posts` posts into the store of `data_dir` as
/// the node's core would (batches of 512, checkpoints when due), flushes,
/// prints what it measured as one JSON line, and waits to be killed.
pub(crate) fn fill_child_main(
    data_dir: &str,
    topic: &str,
    posts: &str,
    start_ms: &str,
) -> anyhow::Result<()> {
    let data = node::DataDir::new(data_dir);
    let topic = protocol::TopicName::parse(topic)?;
    let posts: usize = posts.parse()?;
    let start_ms: u64 = start_ms.parse()?;
    let community = data
        .community()?
        .ok_or_else(|| anyhow::anyhow!("the data directory has no community"))?
        .id();
    let ctx = protocol::ValidationContext {
        community,
        now_ms: node::now_ms(),
    };
    let authors = fixtures::authors(1000);
    let store = node::store::Store::open(&data.store_path(), data.store_keys()?)?;
    store.join_topic(&topic)?;
    let mut insert_s = 0.0;
    let mut checkpoints = 0u64;
    let fill = Instant::now();
    for first in (0..posts).step_by(BATCH) {
        let count = BATCH.min(posts - first);
        let signed = fixtures::signed_posts_from(
            community,
            &topic,
            &authors,
            first..first + count,
            start_ms,
            1,
        );
        let verified = fixtures::verified(&signed, &ctx);
        let t = Instant::now();
        for page in verified.chunks(512) {
            store.insert_posts(&page.iter().collect::<Vec<_>>())?;
            if store.checkpoint_if_due()? {
                checkpoints += 1;
            }
        }
        insert_s += t.elapsed().as_secs_f64();
    }
    let t = Instant::now();
    store.flush()?;
    insert_s += t.elapsed().as_secs_f64();
    let filled = Filled {
        insert_s,
        fill_s: fill.elapsed().as_secs_f64(),
        checkpoints,
    };
    println!("{}", serde_json::to_string(&filled)?);
    // Wait to be killed (or for the parent to go away).
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}

/// What the idle child measured.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Idle {
    startup_ms: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

/// Runs `mutual-bench --idle-child` on `data` and reads its figures.
fn idle_child(
    data: &node::DataDir,
    topic: &protocol::TopicName,
    limit: usize,
) -> anyhow::Result<Idle> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--idle-child")
        .arg(data.path())
        .arg(topic.as_str())
        .arg(limit.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the idle child failed: {}",
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rfind(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("the idle child printed no result"))?;
    Ok(serde_json::from_str(line)?)
}

/// The idle child: starts a node on `data_dir`, reads the newest `limit`
/// posts of `topic` [`IDLE_READS`] times, and prints its memory as one JSON
/// line. Nothing else lives in this process.
pub(crate) fn idle_child_main(data_dir: &str, topic: &str, limit: &str) -> anyhow::Result<()> {
    let topic = protocol::TopicName::parse(topic)?;
    let limit: usize = limit.parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let idle = rt.block_on(async {
        let data = node::DataDir::new(data_dir);
        let t = Instant::now();
        let node = BenchNode::start(fixtures::config(data, Vec::new())).await?;
        let startup_ms = fixtures::ms(t.elapsed());
        for _ in 0..IDLE_READS {
            let got = node.read(&topic, limit).await?;
            anyhow::ensure!(got == limit, "a read returned {got} posts");
        }
        let idle = Idle {
            startup_ms,
            rss_kib: fixtures::proc_status_kib("VmRSS"),
            hwm_kib: fixtures::proc_status_kib("VmHWM"),
        };
        node.stop().await;
        anyhow::Ok(idle)
    })?;
    println!("{}", serde_json::to_string(&idle)?);
    Ok(())
}
