//! Issue 17, "damage must be loud": a node killed with 50 acknowledged
//! posts whose store then loses a tail of sled's log to one flipped byte
//! (sled takes the damage for the log's end and opens normally) says so at
//! start (an error in its log, `damage` in its status, `mutual doctor`
//! exits non-zero naming the topic), and a peer that holds the posts
//! refills it by the sync every connection starts, which clears the
//! warning. Everything on 127.0.0.1, mDNS off; waiting is polling with a
//! deadline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mutual_tests::child::{spawn_lines, Killed};
use mutual_tests::{daemon, start_bulk, start_with, topic, wait_until, TestNet, TestNode};
use node::store::{Damage, Store, StoreSecret};
use node::{DataDir, NodeConfig};

const POSTS: usize = 50;

/// Everything this test binary logs (the nodes run in it), for the check
/// that the start-up error is there and names no post body.
fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .try_init();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&log().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// The test node publishing `POSTS` posts to topic t, bootstrapped from
/// `peer`; its `ACK` lines.
fn publisher(dir: &Path, peer: &str) -> anyhow::Result<(Killed, mpsc::Receiver<String>)> {
    spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_mutual-testnode"))
            .arg(dir)
            .arg("t")
            .arg(peer)
            .arg(POSTS.to_string())
            .stderr(Stdio::null()),
    )
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn flip(db: &Path, at: u64) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(db)?;
    let b = bytes
        .get_mut(at as usize)
        .ok_or_else(|| anyhow::anyhow!("offset {at} beyond {}", db.display()))?;
    *b ^= 0x55;
    std::fs::write(db, bytes)?;
    Ok(())
}

/// Posts of topic t held by the store in `dir` once opened, and the
/// damage it reports.
fn open_count(dir: &Path, secret: &StoreSecret) -> Result<(u64, Option<Damage>), String> {
    let store = Store::open(dir, secret.keys()).map_err(|e| e.to_string())?;
    let n = store.count_topic(&topic("t")).map_err(|e| e.to_string())?;
    Ok((n, store.damage()))
}

/// Finds, on copies of the killed node's store, an offset in sled's log
/// (`db`) where one flipped byte makes the store open with fewer than
/// `POSTS` posts: walking back from the end of the written bytes, where
/// the last (acknowledged) writes are, in a fixed order. The original is
/// never opened (opening would write a snapshot and move the replay
/// start past the damage).
fn find_losing_flip(
    store: &Path,
    secret: &StoreSecret,
    scratch: &Path,
) -> anyhow::Result<(u64, u64, Damage)> {
    let db = store.join("db");
    let bytes = std::fs::read(&db)?;
    let end = bytes
        .iter()
        .rposition(|b| *b != 0)
        .ok_or_else(|| anyhow::anyhow!("sled's log is all zeros"))? as u64;
    // Undamaged, the copy holds everything and reports nothing.
    let clean = scratch.join("clean");
    copy_dir(store, &clean)?;
    assert_eq!(
        open_count(&clean, secret).map_err(anyhow::Error::msg)?,
        (POSTS as u64, None),
        "the undamaged store"
    );
    let mut tried = Vec::new();
    let offsets = (0..40u64)
        .map(|k| end.saturating_sub(k * 97 + 16))
        .chain((1..40u64).map(|k| end.saturating_sub(k * 1024)));
    for (i, at) in offsets.enumerate() {
        let copy = scratch.join(format!("try{i}"));
        copy_dir(store, &copy)?;
        flip(&copy.join("db"), at)?;
        let got = open_count(&copy, secret);
        match &got {
            Ok((n, Some(damage))) if *n < POSTS as u64 => {
                return Ok((at, *n, damage.clone()));
            }
            Ok((n, None)) if *n < POSTS as u64 => {
                anyhow::bail!(
                    "a flip at {at} lost posts ({n} of {POSTS} left) and the store did not \
                     report it"
                )
            }
            _ => {}
        }
        tried.push(format!("{at}: {got:?}"));
        let _ = std::fs::remove_dir_all(&copy);
    }
    anyhow::bail!(
        "no flipped byte near the end of sled's log ({end} bytes written) lost a post; \
         tried {}",
        tried.join("; ")
    )
}

/// A node on `data` listening on a port of the system's choice (so no
/// peer reaches it at an address it remembers), without the per-author
/// limit (50 posts of one author in seconds), dialling nobody.
async fn start_alone(data: DataDir) -> anyhow::Result<TestNode> {
    let mut config = NodeConfig::local(data);
    config.port = Some(0);
    config.author_posts_per_minute = usize::MAX;
    start_with(config).await
}

fn doctor(dir: &Path) -> anyhow::Result<(bool, String, String)> {
    let out = daemon::run(dir, &["doctor"])?;
    Ok((
        out.status.success(),
        daemon::text(&out.stdout),
        daemon::text(&out.stderr),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_that_loses_acknowledged_posts_is_loud_and_peers_refill_them(
) -> anyhow::Result<()> {
    let _ = log();
    let mut net = TestNet::new()?;
    let b = start_bulk(net.admin.clone(), &[]).await?;
    b.handle.join(topic("t")).await?;
    let a_dir = net.member("a")?;

    // A publishes 50 posts, each acknowledged once durable; B gets them.
    let (mut a, lines) = publisher(a_dir.path(), &b.addr)?;
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked < POSTS {
        anyhow::ensure!(Instant::now() < deadline, "A acknowledged {acked} posts");
        if lines
            .recv_timeout(Duration::from_secs(30))?
            .starts_with("ACK ")
        {
            acked += 1;
        }
    }
    wait_until(
        Duration::from_secs(60),
        "B to hold A's 50 posts",
        || async { b.count("t").await == POSTS },
    )
    .await?;
    a.0.kill()?; // SIGKILL
    a.0.wait()?;
    let b_ids = b.ids("t").await;
    // B goes away, so that A starts with nobody to refill it.
    let b_data = b.stop().await;

    // One flipped byte in the replayed log loses acknowledged posts.
    let scratch = tempfile::tempdir()?;
    let (at, left, damage) = find_losing_flip(
        &a_dir.store_path(),
        &StoreSecret(a_dir.store_secret()?),
        scratch.path(),
    )?;
    let Damage::Lost(lost) = &damage else {
        anyhow::bail!("expected lost posts, got {damage:?}");
    };
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].scope.as_deref(), Some("t"));
    assert_eq!(lost[0].acknowledged, POSTS as u64);
    assert_eq!(lost[0].missing(), POSTS as u64 - left);
    eprintln!("a flipped byte at offset {at} of sled's log leaves {left} of {POSTS} posts");
    flip(&a_dir.store_path().join("db"), at)?;

    // `mutual doctor` says so, naming the topic, and exits non-zero; it
    // shows no post's text.
    let (ok, out, err) = doctor(a_dir.path())?;
    assert!(!ok, "doctor passed a damaged store: {out}");
    assert!(out.contains("topic t: 50 / "), "{out}");
    assert!(out.contains("MISSING"), "{out}");
    assert!(err.contains("acknowledged items are missing"), "{err}");
    assert!(
        !out.contains("own post") && !err.contains("own post"),
        "{out}{err}"
    );

    // A copy, for `--accept-loss`: the user gives up on the missing posts.
    let copy = net.root.path().join("a-copy");
    copy_dir(a_dir.path(), &copy)?;
    let out = daemon::ok(&copy, &["doctor", "--accept-loss"])?;
    assert!(out.contains("MISSING") && out.contains("accepted"), "{out}");
    let out = daemon::ok(&copy, &["doctor"])?;
    assert!(out.contains("damage     none"), "{out}");

    // A starts alone: the error is logged, status reports the damage (the
    // doctor's open and close kept the record: the warning survives a
    // restart until the posts come back).
    let a = start_alone(a_dir.clone()).await?;
    let held = a.count("t").await;
    assert!(held < POSTS, "A holds {held}");
    let status = a.handle.status().await?;
    let Some(Damage::Lost(lost)) = &status.damage else {
        anyhow::bail!("status shows no damage: {:?}", status.damage);
    };
    assert_eq!(lost[0].missing(), (POSTS - held) as u64);
    let logged = log_text();
    assert!(
        logged.contains("ERROR")
            && logged.contains("acknowledged item")
            && logged.contains("topic t"),
        "{logged}"
    );
    assert!(
        !logged.contains("own post"),
        "a post body in the log: {logged}"
    );
    // The join of t may have been in the lost tail.
    let _ = a.handle.join(topic("t")).await;

    // B comes back; once connected, the sync every connection starts
    // refills A, and the warning clears.
    let mut config = NodeConfig::local(b_data);
    config.port = Some(0);
    config.author_posts_per_minute = usize::MAX;
    let b = start_with(config).await?;
    let dialled = Instant::now();
    a.handle.dial(&b.addr).await?;
    wait_until(Duration::from_secs(60), "B to refill A", || async {
        a.count("t").await == POSTS
    })
    .await?;
    eprintln!("refilled {:?} after dialling B", dialled.elapsed());
    assert_eq!(a.ids("t").await, b_ids);
    assert_eq!(a.handle.status().await?.damage, None);

    // While A runs, doctor refuses: the store is in use.
    let (ok, _, err) = doctor(a_dir.path())?;
    assert!(!ok && err.contains("in use"), "{err}");
    // Stopped, the refilled store is healthy, and says so.
    let a_data = a.stop().await;
    let (ok, out, err) = doctor(a_data.path())?;
    assert!(ok, "{out}{err}");
    assert!(out.contains("integrity  consistent"), "{out}");
    assert!(out.contains("damage     none"), "{out}");
    let _ = b.stop().await;
    Ok(())
}

#[test]
fn doctor_on_a_directory_without_a_store_says_there_is_nothing_to_check() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let dir: PathBuf = root.path().join("fresh");
    daemon::init(&dir, "fresh")?;
    let out = daemon::ok(&dir, &["doctor"])?;
    assert!(out.contains("No store yet"), "{out}");
    Ok(())
}
