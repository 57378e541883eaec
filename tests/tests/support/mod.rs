//! Running the real `mutual` binary in tests: building it, running its
//! commands on temporary data directories, `mutual run` daemons on
//! 127.0.0.1 as child processes, and waiting on conditions with a deadline
//! (never a sleep as synchronisation). Shared by the test files that drive
//! the binary (`mod support;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

/// How long a test waits for a condition before failing.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);
/// How often it looks again.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// Where the daemons listen: loopback only, a port of the system's choice.
pub(crate) const LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

pub(crate) use mutual_tests::daemon::mutual_bin;

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

/// A `mutual run` child process, killed when dropped.
pub(crate) struct Daemon {
    child: Child,
    pub(crate) dir: PathBuf,
    /// A dialable address with `/p2p/<peer id>`.
    pub(crate) addr: String,
    /// Its author key.
    pub(crate) key: String,
}

impl Daemon {
    pub(crate) fn start(dir: &Path, bootstrap: &[&str]) -> Daemon {
        let mut cmd = StdCommand::new(mutual_bin());
        cmd.arg("--data-dir")
            .arg(dir)
            .args(["run", "--listen", LISTEN, "--no-mdns"])
            .env_remove("MUTUAL_DATA_DIR")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for b in bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        let child = cmd.spawn().expect("mutual run starts");
        let mut daemon = Daemon {
            child,
            dir: dir.to_path_buf(),
            addr: String::new(),
            key: String::new(),
        };
        let mut id = Value::Null;
        wait_until("the daemon to answer `mutual id`", || {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("mutual run exited early: {status}");
            }
            let out = run(dir, &["--json", "id"]);
            if !out.status.success() {
                return false;
            }
            id = serde_json::from_slice(&out.stdout).expect("id --json is JSON");
            true
        });
        let peer = id["peer_id"].as_str().expect("peer_id").to_string();
        let addrs = id["listen_addrs"].as_array().expect("listen_addrs");
        let tcp = addrs
            .iter()
            .filter_map(Value::as_str)
            .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
            .expect("a loopback TCP address");
        daemon.addr = format!("{tcp}/p2p/{peer}");
        daemon.key = id["author"].as_str().expect("author").to_string();
        daemon
    }

    /// Stops it with SIGTERM and waits for a clean exit.
    pub(crate) fn terminate(mut self) {
        let status = StdCommand::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let mut exit = None;
        wait_until("the daemon to exit after SIGTERM", || {
            exit = self.child.try_wait().expect("try_wait");
            exit.is_some()
        });
        assert!(exit.is_some_and(|s| s.success()), "exit status {exit:?}");
        assert!(
            !self.dir.join("mutual.sock").exists(),
            "the socket is removed"
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn init(dir: &Path, name: &str) {
    ok(dir, &["init", "--name", name]);
}

pub(crate) fn wait_for_peers(d: &Daemon) {
    wait_until("a peer connection", || {
        json(&d.dir, &["peers"])
            .as_array()
            .is_some_and(|p| !p.is_empty())
    });
}
