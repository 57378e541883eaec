//! The real `mutual` binary as separate processes: `mutual run` daemons on
//! 127.0.0.1 and the commands a person types, each bounded in time.
//!
//! The binary lives in another package (`cli`), so the first use builds
//! it with `cargo build -p mutual` into the running test's own target
//! directory (a no-op when it is fresh).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Where the daemons listen: loopback only, a port of the system's choice.
pub const LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// How long one command may take before it counts as hung.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The `mutual` binary of this build profile, built first if needed (a
/// no-op when fresh), so a stale binary is never used. Tests run from
/// `<target>/<profile>/deps/`, the bench from `<target>/<profile>/`; the
/// binary is in `<target>/<profile>/` (whatever CARGO_TARGET_DIR says).
pub fn mutual_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_mutual().unwrap_or_else(|e| panic!("{e:#}")))
}

fn build_mutual() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("the running program's own path")?;
    let mut profile_dir = exe
        .parent()
        .context("the running program has no directory")?
        .to_path_buf();
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir = profile_dir
            .parent()
            .context("no profile directory")?
            .to_path_buf();
    }
    let target = profile_dir.parent().context("no target directory")?;
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "--quiet", "-p", "mutual", "--bin", "mutual"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().context("running cargo to build `mutual`")?;
    if !status.success() {
        bail!("building the mutual binary failed");
    }
    let bin = profile_dir.join(format!("mutual{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        bail!("no mutual binary at {}", bin.display());
    }
    Ok(bin)
}

/// Every file under `dir` with its bytes, sorted by path: to show that a
/// refused command wrote nothing, or to search a data directory's raw
/// bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// `mutual --data-dir DIR`, ready for more arguments.
pub fn mutual(dir: &Path) -> Command {
    let mut c = Command::new(mutual_bin());
    c.arg("--data-dir").arg(dir).env_remove("MUTUAL_DATA_DIR");
    c
}

/// Runs `cmd` to its end, killing it after `timeout`: a hung command is an
/// error naming `what`, not a hung test.
pub fn output_within(mut cmd: Command, timeout: Duration, what: &str) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let end = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `mutual --data-dir DIR ARGS…` (at most [`COMMAND_TIMEOUT`]).
pub fn run(dir: &Path, args: &[&str]) -> Result<Output> {
    let mut cmd = mutual(dir);
    cmd.args(args);
    output_within(
        cmd,
        COMMAND_TIMEOUT,
        &format!("`mutual {}`", args.join(" ")),
    )
}

/// Text of captured output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; its stdout.
pub fn ok(dir: &Path, args: &[&str]) -> Result<String> {
    let out = run(dir, args)?;
    if !out.status.success() {
        bail!("`mutual {}` failed: {}", args.join(" "), text(&out.stderr));
    }
    Ok(text(&out.stdout))
}

/// Runs a command with `--json` that must succeed; its one JSON value.
pub fn json(dir: &Path, args: &[&str]) -> Result<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ok(dir, &all)?;
    serde_json::from_str(&out).with_context(|| format!("`mutual {}`: {out}", all.join(" ")))
}

/// Polls `check` every 100 ms until it holds, or fails after `deadline`.
pub fn wait_until(deadline: Duration, what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let end = Instant::now() + deadline;
    while !check() {
        if Instant::now() >= end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// `mutual init` then `mutual community create` (the admin) or
/// `mutual community join INVITE` (a member).
pub fn init(dir: &Path, name: &str) -> Result<()> {
    ok(dir, &["init", "--name", name])?;
    Ok(())
}

/// A `mutual run` child process on 127.0.0.1, killed when dropped.
pub struct Daemon {
    child: Child,
    /// Its data directory.
    pub dir: PathBuf,
    /// A dialable address with `/p2p/<peer id>`.
    pub addr: String,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its peer id.
    pub peer_id: String,
    /// Its author key.
    pub key: String,
    /// Where its log (stderr) goes.
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `mutual run` on `dir`, listening on 127.0.0.1 only, without
    /// mDNS, dialling `bootstrap`.
    pub fn start(dir: &Path, bootstrap: &[&str]) -> Result<Daemon> {
        Daemon::start_via(dir, bootstrap, &[])
    }

    /// Like [`Daemon::start`], but through `wrapper` (a command and its
    /// arguments that ends by running the rest, such as `prlimit …`).
    pub fn start_via(dir: &Path, bootstrap: &[&str], wrapper: &[&str]) -> Result<Daemon> {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(mutual_bin());
                c
            }
            None => Command::new(mutual_bin()),
        };
        let log = dir.with_extension("log");
        let log_file = std::fs::File::create(&log)?;
        cmd.arg("--data-dir")
            .arg(dir)
            // No UPnP: it would search the LAN for a router (multicast).
            .args(["run", "--listen", LISTEN, "--no-upnp"])
            .env_remove("MUTUAL_DATA_DIR")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        for b in bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        let child = cmd.spawn().context("mutual run starts")?;
        let mut daemon = Daemon {
            child,
            dir: dir.to_path_buf(),
            addr: String::new(),
            port: 0,
            peer_id: String::new(),
            key: String::new(),
            log,
        };
        let mut id = Value::Null;
        let mut exited = None;
        wait_until(COMMAND_TIMEOUT, "the daemon to answer `mutual id`", || {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                exited = Some(status);
                return true;
            }
            match json(dir, &["id"]) {
                Ok(v) => {
                    id = v;
                    true
                }
                Err(_) => false,
            }
        })?;
        if let Some(status) = exited {
            bail!("mutual run exited early ({status}): {}", daemon.log_text());
        }
        daemon.peer_id = id["peer_id"].as_str().context("peer_id")?.to_string();
        daemon.key = id["author"].as_str().context("author")?.to_string();
        let tcp = id["listen_addrs"]
            .as_array()
            .context("listen_addrs")?
            .iter()
            .filter_map(Value::as_str)
            .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
            .context("a loopback TCP address")?
            .to_string();
        daemon.port = tcp
            .trim_start_matches("/ip4/127.0.0.1/tcp/")
            .parse()
            .context("a TCP port")?;
        daemon.addr = format!("{tcp}/p2p/{}", daemon.peer_id);
        Ok(daemon)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `mutual peers` lists at least one connected peer.
    pub fn wait_for_peers(&self) -> Result<()> {
        wait_until(COMMAND_TIMEOUT, "a peer connection", || {
            json(&self.dir, &["peers"]).is_ok_and(|p| p.as_array().is_some_and(|p| !p.is_empty()))
        })
    }

    /// Stops it with SIGTERM and waits for a clean stop: exit status 0 and
    /// its control socket removed.
    pub fn terminate(mut self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM failed: {status}");
        }
        let mut exit = None;
        wait_until(COMMAND_TIMEOUT, "the daemon to exit after SIGTERM", || {
            exit = self.child.try_wait().ok().flatten();
            exit.is_some()
        })?;
        if !exit.is_some_and(|s| s.success()) {
            bail!("exit status after SIGTERM: {exit:?}: {}", self.log_text());
        }
        if self.dir.join("mutual.sock").exists() {
            bail!("the control socket is still there after a clean exit");
        }
        Ok(())
    }

    /// Waits until the process has exited by itself (a `shutdown`
    /// request, say); its exit status.
    pub fn wait_exit(&mut self) -> Result<std::process::ExitStatus> {
        let mut exit = None;
        wait_until(COMMAND_TIMEOUT, "the daemon to exit", || {
            exit = self.child.try_wait().ok().flatten();
            exit.is_some()
        })?;
        exit.context("no exit status")
    }

    /// Connected peers subscribed to the community topic, as `status`
    /// reports them (`None` if `status` failed).
    pub fn community_peers(&self) -> Option<u64> {
        json(&self.dir, &["status"])
            .ok()
            .and_then(|s| s["community_peers"].as_u64())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A community of real daemons' data directories: the admin's, made with
/// `community create`, and members joined with the admin's invite.
pub fn admin_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join(name);
    init(&dir, name)?;
    // No probation: these tests are about other things (tests/tests/
    // probation.rs is about it); the community stays invite-only.
    ok(&dir, &["community", "create", "Circle", "--probation", "0"])?;
    Ok(dir)
}

/// A member's data directory, joined with the invite of the running
/// `admin` daemon.
pub fn member_dir(root: &Path, name: &str, admin: &Daemon) -> Result<PathBuf> {
    let dir = root.join(name);
    init(&dir, name)?;
    let code = ok(&admin.dir, &["invite"])?;
    ok(&dir, &["community", "join", code.trim()])?;
    Ok(dir)
}
