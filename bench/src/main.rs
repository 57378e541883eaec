//! `mutual-bench`: measures a mutual node on this machine and prints the
//! figures as a table, and writes them as JSON.
//!
//! ```text
//! cargo run --release -p mutual-bench [-- --smoke] [--json FILE] [--only PARTS]
//! ```
//!
//! Parts (all by default; `--only ingest,sync` picks some):
//! 1. `ingest`: signed posts per second through the real arrival path,
//!    next to raw Ed25519 verification on one core; where the time goes;
//!    peak RSS of a node ingesting 100,000 posts (in a child process).
//! 2. `propagation`: 20 nodes on 127.0.0.1, 1,000 posts at 50/s: delivery,
//!    latency to the last node, duplicates.
//! 3. `sync`: our reconciliation next to Negentropy on the same sets
//!    (near-identical, identical, empty), and a real catch-up over TCP.
//! 4. `read`: reading the newest 50 of a 1,000,000-post topic; start-up
//!    after a clean stop and after a crash; an idle node's RSS (in a child
//!    process).
//! 5. `moderation`: a block deleting 10,000 posts; folding 100,000 actions.
//! 6. `restart`: a node restarted with no bootstrap address, connected
//!    again and caught up on what it missed.
//! 7. `nat`: two members behind NAT routers in network namespaces (needs
//!    root, iproute2, nftables): time to the first post, the direct
//!    upgrade's success per NAT mode, the relay's bytes and CPU per post.
//!
//! Two modes serve the ingest part and profiling: `--ingest-child DATA_DIR
//! POSTS_FILE` (the child process whose peak memory is measured) and
//! `--ingest-prepare POSTS` (makes such a directory and file and prints
//! their paths, to run the child under `perf`).
//!
//! `--smoke` runs every part at a small size in well under two minutes
//! (CI). The bench asserts nothing about speed; it exits non-zero only when
//! a part fails to complete. Every node listens and dials on 127.0.0.1 only,
//! except in `nat`, on addresses inside the namespaces it makes.

mod fixtures;
mod ingest;
mod moderation;
mod nat;
mod propagation;
mod read;
mod report;
mod restart;
mod sync;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use report::Report;

const PARTS: [&str; 7] = [
    "ingest",
    "propagation",
    "sync",
    "read",
    "moderation",
    "restart",
    "nat",
];

const USAGE: &str =
    "usage: mutual-bench [--smoke] [--json FILE] [--only ingest,propagation,sync,read,moderation,restart,nat]";

/// Sizes of every part for one run.
struct Plan {
    ingest: ingest::Sizes,
    propagation: propagation::Sizes,
    sync: sync::Sizes,
    read: read::Sizes,
    moderation: moderation::Sizes,
    restart: restart::Sizes,
    nat: nat::Sizes,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            ingest: ingest::Sizes {
                posts: 100_000,
                authors: 1000,
                child_posts: 100_000,
            },
            propagation: propagation::Sizes {
                nodes: 20,
                posts: 1000,
                rate: 50.0,
                deadline: Duration::from_secs(60),
            },
            sync: sync::Sizes {
                items: 100_000,
                lacking: 5,
                deadline: Duration::from_secs(300),
            },
            read: read::Sizes {
                posts: 1_000_000,
                reads: 1000,
                limit: 50,
            },
            moderation: moderation::Sizes {
                blocked_posts: 10_000,
                actions: 100_000,
            },
            restart: restart::Sizes { restarts: 20 },
            nat: nat::Sizes {
                attempts: 3,
                relayed_posts: 40,
                deadline: Duration::from_secs(90),
            },
        }
    }

    fn smoke() -> Plan {
        Plan {
            ingest: ingest::Sizes {
                posts: 1000,
                authors: 1000,
                child_posts: 1000,
            },
            propagation: propagation::Sizes {
                nodes: 5,
                posts: 50,
                rate: 50.0,
                deadline: Duration::from_secs(30),
            },
            sync: sync::Sizes {
                items: 5000,
                lacking: 5,
                deadline: Duration::from_secs(60),
            },
            read: read::Sizes {
                posts: 10_000,
                reads: 200,
                limit: 50,
            },
            moderation: moderation::Sizes {
                blocked_posts: 1000,
                actions: 5000,
            },
            restart: restart::Sizes { restarts: 4 },
            nat: nat::Sizes {
                attempts: 1,
                relayed_posts: 10,
                deadline: Duration::from_secs(90),
            },
        }
    }
}

struct Args {
    smoke: bool,
    json: PathBuf,
    only: Vec<String>,
}

/// `target/bench.json` at the root of the workspace.
fn default_json() -> PathBuf {
    let bench = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    bench
        .parent()
        .unwrap_or(bench)
        .join("target")
        .join("bench.json")
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = Args {
        smoke: false,
        json: default_json(),
        only: PARTS.iter().map(|p| p.to_string()).collect(),
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--smoke" => out.smoke = true,
            "--json" => out.json = args.next().ok_or("--json needs a file")?.into(),
            "--only" => {
                let list = args.next().ok_or("--only needs a list of parts")?;
                out.only = list.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = out.only.iter().find(|p| !PARTS.contains(&p.as_str())) {
                    return Err(format!("unknown part {bad}"));
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(out)
}

fn main() {
    // As the `mutual` binary does: the nodes measured here are the same.
    node::allocator::tune();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // The ingest part runs its memory measurement in a child process.
    if argv.first().map(String::as_str) == Some("--ingest-child") {
        let (Some(dir), Some(file)) = (argv.get(1), argv.get(2)) else {
            eprintln!("usage: mutual-bench --ingest-child DATA_DIR POSTS_FILE");
            std::process::exit(2);
        };
        if let Err(e) = ingest::child_main(dir.as_ref(), file.as_ref()) {
            eprintln!("ingest child: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    // The read part measures an idle node's memory in a child process.
    if argv.first().map(String::as_str) == Some("--idle-child") {
        let (Some(dir), Some(topic), Some(limit)) = (argv.get(1), argv.get(2), argv.get(3)) else {
            eprintln!("usage: mutual-bench --idle-child DATA_DIR TOPIC LIMIT");
            std::process::exit(2);
        };
        if let Err(e) = read::idle_child_main(dir, topic, limit) {
            eprintln!("idle child: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    if argv.first().map(String::as_str) == Some("--fill-child") {
        let [_, dir, topic, posts, start] = argv.as_slice() else {
            eprintln!("usage: mutual-bench --fill-child DATA_DIR TOPIC POSTS START_MS");
            std::process::exit(2);
        };
        if let Err(e) = read::fill_child_main(dir, topic, posts, start) {
            eprintln!("mutual-bench --fill-child: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    // Profiling aid: a data directory and posts for `--ingest-child`.
    if argv.first().map(String::as_str) == Some("--ingest-prepare") {
        let Some(n) = argv.get(1).and_then(|n| n.parse().ok()) else {
            eprintln!("usage: mutual-bench --ingest-prepare POSTS");
            std::process::exit(2);
        };
        if let Err(e) = ingest::prepare_main(n) {
            eprintln!("ingest prepare: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    let args = match parse_args(argv.into_iter()) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("mutual-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Runs the chosen parts; `Ok(false)` when one did not complete.
fn run(args: &Args) -> anyhow::Result<bool> {
    let plan = if args.smoke {
        Plan::smoke()
    } else {
        Plan::full()
    };
    let mut report = Report::new(if args.smoke { "smoke" } else { "full" });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    for part in PARTS {
        if !args.only.iter().any(|p| p == part) {
            continue;
        }
        eprintln!("mutual-bench: {part}…");
        let t = Instant::now();
        let result = match part {
            "ingest" => ingest::run(&rt, &mut report, &plan.ingest),
            "propagation" => propagation::run(&rt, &mut report, &plan.propagation),
            "sync" => sync::run(&rt, &mut report, &plan.sync),
            "read" => read::run(&rt, &mut report, &plan.read),
            "moderation" => moderation::run(&rt, &mut report, &plan.moderation),
            "restart" => restart::run(&rt, &mut report, &plan.restart),
            _ => nat::run(&mut report, &plan.nat),
        };
        if let Err(e) = result {
            report.failures.push(format!("{part}: {e:#}"));
        }
        eprintln!(
            "mutual-bench: {part} done in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.machine.load_at_end = report::loadavg();
    print!("{}", report.table());
    report.write_json(&args.json)?;
    println!("figures written to {}", args.json.display());
    Ok(report.failures.is_empty())
}
