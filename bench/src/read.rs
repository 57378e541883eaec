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
    let authors = fixtures::authors(1000);
    let data = com.admin.clone();
    let start_ms = node::now_ms() - 86_400_000;

    // Fill the store directly, in batches: signing and verifying run on
    // every core (untimed); the inserts are timed, as a store figure.
    let store = node::store::Store::open(&data.store_path())?;
    store.join_topic(&topic)?;
    let mut insert_s = 0.0;
    let fill = Instant::now();
    for first in (0..sizes.posts).step_by(BATCH) {
        let count = BATCH.min(sizes.posts - first);
        let posts = fixtures::signed_posts_from(
            com.id,
            &topic,
            &authors,
            first..first + count,
            start_ms,
            1,
        );
        let verified = fixtures::verified(&posts, &com.ctx());
        let t = Instant::now();
        for p in &verified {
            store.insert_post(p)?;
        }
        insert_s += t.elapsed().as_secs_f64();
    }
    let t = Instant::now();
    store.flush()?;
    insert_s += t.elapsed().as_secs_f64();
    let fill_s = fill.elapsed().as_secs_f64();
    anyhow::ensure!(
        store.count_topic(&topic)? == sizes.posts as u64,
        "the store holds {} posts, not {}",
        store.count_topic(&topic)?,
        sizes.posts
    );
    drop(store);
    let disk = fixtures::dir_bytes(&data.store_path());

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
        report
            .add(PART, "node start-up on that store", fixtures::ms(startup), "ms")
            .note("node::start to the first handle.id() reply");
        report
            .add(PART, "store fill, direct Store::insert_post", sizes.posts as f64 / insert_s, "posts/s")
            .note(format!(
                "{:.1} s of inserts + flush ({:.0} s with signing and verifying); {:.0} MiB on disk ({:.0} B per post)",
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
