//! A stranger who floods a node's port with connections cannot take the
//! node from its own user or its members.
//!
//! A real `mutual run` whose file-descriptor limit is 1,024 (soft and hard,
//! set for this test with the shell's `ulimit`, so the node cannot raise
//! it) gets 1,100 TCP connections to its port on 127.0.0.1 that never send
//! a byte; the flooder reopens those the node closes, keeping up to 1,100
//! open, for at most [`FLOOD_MAX`]. While it lasts, `mutual status` must
//! answer within [`ANSWER_WITHIN`] and a post made on either of two members
//! must reach the other. Without the connection limits the node ran out of
//! descriptors and its control socket stopped answering (see
//! ARCHITECTURE.md, "Limits").

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mutual_tests::daemon::{
    admin_dir, json, member_dir, mutual, ok, output_within, text, wait_until, Daemon,
};

/// Connections the flood holds open at once.
const FLOOD_CONNECTIONS: usize = 1_100;
/// The node's descriptor limit in this test: a common default.
const NODE_FD_LIMIT: u64 = 1_024;
/// The flood stops by itself after this long, whatever the test does.
const FLOOD_MAX: Duration = Duration::from_secs(90);
/// How long `mutual status` may take under the flood.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How long a post may take to reach the other member under the flood.
const DEADLINE: Duration = Duration::from_secs(30);
/// Reopened connections per round after the first fill, and the pause
/// between rounds: bounds the churn (and the loopback ports it uses).
const REOPEN_PER_ROUND: usize = 100;
const ROUND: Duration = Duration::from_millis(100);

/// What the flood did.
#[derive(Debug, Default)]
struct FloodReport {
    /// Connections opened in all.
    opened: usize,
    /// Connections the node closed while the flood held them.
    closed_by_node: usize,
    /// Connection attempts that failed or timed out.
    failed: usize,
}

/// A running flood of silent connections, stopped on drop.
struct Flood {
    stop: Arc<AtomicBool>,
    /// Connections opened so far (for waiting until the first fill).
    opened: Arc<AtomicUsize>,
    started: Instant,
    thread: Option<JoinHandle<FloodReport>>,
}

impl Flood {
    fn start(target: SocketAddr) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let (s, o) = (Arc::clone(&stop), Arc::clone(&opened));
        let thread = std::thread::spawn(move || flood(target, &s, &o));
        Flood {
            stop,
            opened,
            started: Instant::now(),
            thread: Some(thread),
        }
    }

    /// Whether the flood still runs (it was not stopped and did not end).
    fn running(&self) -> bool {
        self.started.elapsed() < FLOOD_MAX && self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn finish(mut self) -> FloodReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("the flood thread ends"))
            .unwrap_or_default()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Keeps up to [`FLOOD_CONNECTIONS`] silent connections to `target` open
/// until stopped or [`FLOOD_MAX`] has passed; then closes them all.
fn flood(target: SocketAddr, stop: &AtomicBool, opened: &AtomicUsize) -> FloodReport {
    let mut report = FloodReport::default();
    let mut held: Vec<TcpStream> = Vec::with_capacity(FLOOD_CONNECTIONS);
    let end = Instant::now() + FLOOD_MAX;
    let mut first_fill = true;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        // Drop what the node closed (a read of 0 bytes or an error).
        let before = held.len();
        let mut probe = [0u8; 1];
        held.retain(|s| matches!(s.peek(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock));
        report.closed_by_node += before - held.len();
        let room = FLOOD_CONNECTIONS - held.len();
        let batch = if first_fill {
            room
        } else {
            room.min(REOPEN_PER_ROUND)
        };
        for _ in 0..batch {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                Ok(s) if s.set_nonblocking(true).is_ok() => {
                    held.push(s);
                    report.opened += 1;
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                _ => report.failed += 1,
            }
        }
        first_fill = false;
        std::thread::sleep(ROUND);
    }
    drop(held);
    report
}

/// Descriptors a process holds now (Linux).
fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

/// The soft limit on open files of a process, from /proc (Linux).
fn fd_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `mutual status --json` on `dir`, which must answer within
/// [`ANSWER_WITHIN`]; how long it took.
fn status_answers(dir: &std::path::Path) -> Duration {
    let mut cmd = mutual(dir);
    cmd.args(["--json", "status"]);
    let start = Instant::now();
    let out = output_within(cmd, ANSWER_WITHIN, "`mutual status` under the flood")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "status failed: {}", text(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["community"], "Circle");
    start.elapsed()
}

/// Whether `dir`'s node holds a post with `body` in `burnout`.
fn holds(dir: &std::path::Path, body: &str) -> bool {
    ok(dir, &["--json", "read", "burnout"]).is_ok_and(|o| o.contains(body))
}

#[test]
fn a_flood_of_silent_connections_leaves_the_node_usable() {
    if !cfg!(target_os = "linux") {
        panic!("this test reads /proc to check the node's descriptor limit: Linux only");
    }
    // The flood holds 1,100 sockets in this process.
    node_limits_for_the_test();
    let root = tempfile::tempdir().unwrap();
    let a_dir = admin_dir(root.path(), "ada").unwrap();
    let limit = format!(
        "ulimit -S -n {NODE_FD_LIMIT} && ulimit -H -n {NODE_FD_LIMIT} && exec \"$0\" \"$@\""
    );
    let a = Daemon::start_via(&a_dir, &[], &["sh", "-c", &limit]).unwrap();
    assert_eq!(
        fd_limit(a.pid()),
        Some(NODE_FD_LIMIT),
        "the node runs with the test's descriptor limit"
    );
    assert!(
        a.log_text()
            .contains(&format!("open-file limit stays at {NODE_FD_LIMIT}")),
        "the node logs its limit: {}",
        a.log_text()
    );
    let b_dir = member_dir(root.path(), "kit", &a).unwrap();
    let b = Daemon::start(&b_dir, &[&a.addr]).unwrap();
    for d in [&a_dir, &b_dir] {
        ok(d, &["join", "burnout"]).unwrap();
    }
    for d in [&a, &b] {
        wait_until(DEADLINE, "the other member in the topic", || {
            d.community_peers().is_some_and(|n| n >= 1)
        })
        .unwrap();
    }
    ok(&a_dir, &["post", "burnout", "before the flood"]).unwrap();
    wait_until(DEADLINE, "the first post on kit's node", || {
        holds(&b_dir, "before the flood")
    })
    .unwrap();

    let flood = Flood::start(SocketAddr::from(([127, 0, 0, 1], a.port)));
    wait_until(DEADLINE, "the flood's first 1,100 connections", || {
        flood.opened.load(Ordering::Relaxed) >= FLOOD_CONNECTIONS
    })
    .unwrap();
    let fds_under_flood = open_fds(a.pid());

    // The node's own user is still served, at once, while the flood lasts.
    let took = status_answers(&a_dir);
    // Members still post to each other, both ways.
    let out = ok(&a_dir, &["post", "burnout", "during the flood, from ada"]).unwrap();
    assert!(out.trim().starts_with("mp1"), "{out}");
    ok(&b_dir, &["post", "burnout", "during the flood, from kit"]).unwrap();
    wait_until(DEADLINE, "ada's post on kit's node", || {
        holds(&b_dir, "during the flood, from ada")
    })
    .unwrap();
    wait_until(DEADLINE, "kit's post on ada's node", || {
        holds(&a_dir, "during the flood, from kit")
    })
    .unwrap();
    let took_again = status_answers(&a_dir);
    assert!(
        flood.running(),
        "the checks ran while the flood lasted (at most {FLOOD_MAX:?})"
    );
    let fds_late = open_fds(a.pid());
    let report = flood.finish();
    println!(
        "flood: {} connections opened, {} closed by the node, {} failed; node descriptors \
         {fds_under_flood:?} after the first fill, {fds_late:?} at the end (limit \
         {NODE_FD_LIMIT}); status answered in {took:?} and {took_again:?}",
        report.opened, report.closed_by_node, report.failed
    );
    assert!(report.opened >= FLOOD_CONNECTIONS, "{report:?}");
    // The node refused the surplus at once rather than holding it.
    assert!(report.closed_by_node > 0, "{report:?}");
    for fds in [fds_under_flood, fds_late].into_iter().flatten() {
        assert!(fds < NODE_FD_LIMIT as usize / 2, "{fds} descriptors open");
    }
    // Still a member after it: the node answers and holds every post.
    let status = json(&a_dir, &["status"]).unwrap();
    assert_eq!(status["posts"], 3, "{status}");
    drop((a, b));
}

/// Raises this test process's own soft limit, for the sockets it holds.
fn node_limits_for_the_test() {
    let _ = mutual_tests::node::limits::raise_fd_limit();
    let needed = (FLOOD_CONNECTIONS + 200) as u64;
    let soft = fd_limit(std::process::id()).unwrap_or(0);
    assert!(
        soft >= needed,
        "the test needs {needed} open files for its flood; its limit is {soft} \
         (raise the hard limit: `ulimit -Hn {needed}`)"
    );
}
