//! Running the real `mutual` binary in tests: its commands on temporary
//! data directories, asserting as they go, and waiting on conditions with a
//! deadline (never a sleep as synchronisation). Shared by the test files
//! that drive the binary (`mod support;`). The daemons themselves (`mutual
//! run` child processes) are `mutual_tests::daemon::Daemon`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

/// How long a test waits for a condition before failing.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);
/// How often it looks again.
pub(crate) const POLL: Duration = Duration::from_millis(100);
// The daemons (`mutual run` child processes) are the crate's one harness.
#[allow(unused_imports)]
pub(crate) use mutual_tests::daemon::{mutual_bin, Daemon};
/// Listen on loopback only, on a port the system picks.
#[allow(dead_code)]
pub(crate) const LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// `mutual --data-dir DIR …`, ready to run.
pub(crate) fn mutual(dir: &Path) -> Command {
    let mut c = Command::new(mutual_bin());
    c.arg("--data-dir").arg(dir).env_remove("MUTUAL_DATA_DIR");
    c
}

pub(crate) fn run(dir: &Path, args: &[&str]) -> Output {
    mutual(dir).args(args).output().expect("mutual runs")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; its stdout.
pub(crate) fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "`mutual {}` failed: {}",
        args.join(" "),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs a command that must fail with a one-line message containing
/// `message`, a non-zero exit and nothing on stdout.
pub(crate) fn fails(dir: &Path, args: &[&str], message: &str) -> String {
    let out = run(dir, args);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "`mutual {}` should have failed",
        args.join(" ")
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(message),
        "`mutual {}`: expected {message:?} in {stderr:?}",
        args.join(" ")
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {:?}",
        text(&out.stdout)
    );
    stderr
}

pub(crate) fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(dir, &all)).expect("one JSON value")
}

/// JSON lines of a `--json read`.
pub(crate) fn read_json(dir: &Path, topic: &str) -> Vec<Value> {
    ok(dir, &["--json", "read", topic])
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

pub(crate) fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !check() {
        assert!(
            Instant::now() < end,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Names and contents of every file under `dir`, to show nothing changed.
pub(crate) fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    mutual_tests::daemon::files_under(dir)
}

pub(crate) fn init(dir: &Path, name: &str) {
    ok(dir, &["init", "--name", name]);
}

/// A community of two running daemons under `root`: the admin "ada"
/// (who created it) and the member "kit" (who joined by an invite and is
/// connected to the admin). Returns their directories and daemons.
pub(crate) fn admin_and_member(root: &Path) -> (PathBuf, PathBuf, Daemon, Daemon) {
    let admin = root.join("ada");
    let member = root.join("kit");
    init(&admin, "ada");
    init(&member, "kit");
    // Invite-only, without probation (tests/tests/probation.rs covers it).
    ok(
        &admin,
        &["community", "create", "Circle", "--probation", "0"],
    );
    let a = Daemon::start(&admin, &[]).expect("the admin's daemon starts");
    let code = ok(&admin, &["invite"]);
    ok(&member, &["community", "join", code.trim()]);
    let k = Daemon::start(&member, &[&a.addr]).expect("the member's daemon starts");
    k.wait_for_peers()
        .expect("the member connects to the admin");
    (admin, member, a, k)
}
