//! How long a store takes to open after a crash, by how much was written
//! since it was last opened: sled 0.34 replays its log from the snapshot
//! it wrote at the last open. Measures the store alone (no node).
//!
//! `cargo run --release -p mutual-bench --example crash_replay [N...]`
//! for each N (default 100,000 and 300,000), twice (without and with the
//! store's checkpoints, `Store::checkpoint_if_due` after each batch as the
//! node's core calls it between requests): a child process writes N posts
//! into a fresh store in batches of 512, flushes, says so, and is killed
//! with SIGKILL; the parent times opening what it left, checks it holds
//! the N posts and is consistent, closes it and times a clean open.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use node::store::Store;
use protocol::post::Draft;
use protocol::{CommunityId, Identity, Post, TopicName, ValidationContext, VerifiedPost};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The child: fills `dir` with `n` posts, flushes, prints "filled", waits.
fn fill(dir: &Path, n: usize, checkpoints: bool) -> Result<()> {
    let community = CommunityId::of_bytes(b"crash replay");
    let topic = TopicName::parse("bench")?;
    let authors: Vec<Identity> = (0..100).map(|_| Identity::generate(None)).collect();
    let body = "x".repeat(300);
    let store = Store::open(dir, node::store::BARE_STORE_SECRET.keys())?;
    let mut written = 0;
    let mut done = 0;
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
            .collect::<std::result::Result<_, _>>()?;
        written += batch.len();
        store.insert_posts(&batch.iter().collect::<Vec<_>>())?;
        if checkpoints && store.checkpoint_if_due()? {
            done += 1;
        }
    }
    store.flush()?;
    println!("filled {done}");
    // Wait to be killed.
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--fill") {
        let dir = Path::new(&args[2]);
        return fill(dir, args[3].parse()?, args[4] == "1");
    }
    let sizes: Vec<usize> = args[1..]
        .iter()
        .map(|a| a.parse())
        .collect::<std::result::Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![100_000, 300_000]
    } else {
        sizes
    };
    for n in sizes {
        for checkpoints in [false, true] {
            let root = tempfile::tempdir()?;
            let dir = root.path().join("store");
            let t = Instant::now();
            let mut child = Command::new(&args[0])
                .args(["--fill", &dir.to_string_lossy(), &n.to_string()])
                .arg(if checkpoints { "1" } else { "0" })
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let mut line = String::new();
            BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
            let fill = t.elapsed();
            if !line.starts_with("filled") {
                return Err(format!("the child did not fill the store: {line:?}").into());
            }
            child.kill()?;
            child.wait()?;
            let t = Instant::now();
            let s = Store::open(&dir, node::store::BARE_STORE_SECRET.keys())?;
            let crash = t.elapsed();
            let held = s.post_count()?;
            let problems = s.check_integrity()?;
            s.close()?;
            let t = Instant::now();
            let s = Store::open(&dir, node::store::BARE_STORE_SECRET.keys())?;
            let clean = t.elapsed();
            drop(s);
            println!(
                "{n:>8} posts, {:<22} open after SIGKILL {:>7.1} ms, after a clean stop {:>6.1} ms; holds {held}, {} integrity problems; fill {:.1} s",
                if checkpoints {
                    format!("{} checkpoints:", line.trim().trim_start_matches("filled "))
                } else {
                    "no checkpoints:".to_string()
                },
                crash.as_secs_f64() * 1e3,
                clean.as_secs_f64() * 1e3,
                problems.len(),
                fill.as_secs_f64(),
            );
        }
    }
    Ok(())
}
