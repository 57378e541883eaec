//! A small fixed ingest into a store, for instruction counts that do not
//! depend on what else the machine runs:
//!
//! ```text
//! cargo build --release -p mutual-bench --example ingest_instructions
//! valgrind --tool=callgrind --toggle-collect='*Store*insert_posts*' \
//!     target/release/examples/ingest_instructions 5120
//! ```
//!
//! Posts (420-byte bodies, 100 authors, one topic) are signed and
//! verified first, outside the collected function; then stored with
//! `Store::insert_posts` in batches of 512 into a temporary store. The
//! instructions collected are the store's alone: encoding, sealing, keys,
//! sled's batch.

use node::store::Store;
use protocol::post::Draft;
use protocol::{CommunityId, Identity, Post, TopicName, ValidationContext};

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(5120);
    let community = CommunityId::of_bytes(b"instructions");
    let topic = TopicName::parse("t").map_err(|e| anyhow::anyhow!("{e}"))?;
    let authors: Vec<Identity> = (0..100).map(|_| Identity::generate(None)).collect();
    let t0 = 1_800_000_000_000u64;
    let mut posts = Vec::with_capacity(n);
    for i in 0..n {
        let at = t0 + i as u64;
        let post = Post::write(
            &authors[i % authors.len()],
            community,
            topic.clone(),
            Draft {
                body: format!("{i:06} {}", "x".repeat(413)),
                ..Draft::default()
            },
            at,
        )?;
        posts.push(post.verify(&ValidationContext {
            community,
            now_ms: at,
        })?);
    }
    let store = Store::temporary()?;
    let started = std::time::Instant::now();
    for chunk in posts.chunks(512) {
        store.insert_posts(&chunk.iter().collect::<Vec<_>>())?;
    }
    let took = started.elapsed();
    anyhow::ensure!(store.count_topic(&topic)? == n as u64);
    // A wall time for a quick comparison; the instruction count (above)
    // is the figure that does not depend on the machine's load.
    println!(
        "stored {n} in {:.0} ms, {:.1} µs per post",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
