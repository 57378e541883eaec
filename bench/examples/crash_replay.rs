//! How long a store takes to open after a crash, by how much was written
//! since it was last opened: sled 0.34 replays its log from the snapshot
//! it wrote at the last open. Measures the store alone (no node).
//!
//! `cargo run --release -p mutual-bench --example crash_replay [N...]`
//! writes N posts (default 50,000, 100,000 and 200,000) into a fresh
//! store in batches of 512, flushes, copies the directory as a crash
//! would leave it, closes the original, and times opening each; then the
//! same with the store's checkpoints (`Store::checkpoint_if_due` after
//! each batch, as the node's core calls it between requests).

use std::time::Instant;

use node::store::Store;
use protocol::post::Draft;
use protocol::{CommunityId, Identity, Post, TopicName, ValidationContext, VerifiedPost};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![50_000, 100_000, 200_000]
    } else {
        sizes
    };
    let community = CommunityId::of_bytes(b"crash replay");
    let topic = TopicName::parse("bench")?;
    let authors: Vec<Identity> = (0..100).map(|_| Identity::generate(None)).collect();
    let body = "x".repeat(300);
    for (n, checkpoints) in sizes.iter().flat_map(|n| [(*n, false), (*n, true)]) {
        let root = tempfile::tempdir()?;
        let live = root.path().join("live");
        let store = Store::open(&live)?;
        let start = Instant::now();
        let mut written = 0;
        while written < n {
            let batch: Vec<VerifiedPost> = (written..(written + 512).min(n))
                .map(|i| {
                    let at = 1_000_000 + i as u64;
                    Post::write(
                        &authors[i % authors.len()],
                        community,
                        topic.clone(),
                        Draft {
                            body: format!("{i} {body}"),
                            ..Draft::default()
                        },
                        at,
                    )
                    .and_then(|p| {
                        p.verify(&ValidationContext {
                            community,
                            now_ms: at,
                        })
                    })
                })
                .collect::<Result<_, _>>()?;
            written += batch.len();
            store.insert_posts(&batch.iter().collect::<Vec<_>>())?;
            if checkpoints {
                store.checkpoint_if_due()?;
            }
        }
        store.flush()?;
        let fill = start.elapsed();
        let crashed = root.path().join("crashed");
        copy_dir(&live, &crashed)?;
        store.close()?;
        let t = Instant::now();
        let s = Store::open(&live)?;
        let clean = t.elapsed();
        assert_eq!(s.post_count()?, n as u64);
        drop(s);
        let t = Instant::now();
        let s = Store::open(&crashed)?;
        let crash = t.elapsed();
        assert_eq!(s.post_count()?, n as u64);
        println!(
            "{n:>8} posts{}: open after a clean stop {:>7.1} ms, after a crash {:>7.1} ms ({:.1} µs per post written since the last open); fill {:.1} s",
            if checkpoints { ", checkpoints" } else { "" },
            clean.as_secs_f64() * 1e3,
            crash.as_secs_f64() * 1e3,
            crash.as_secs_f64() * 1e6 / n as f64,
            fill.as_secs_f64(),
        );
    }
    Ok(())
}
