//! A community of real `mutual run` daemons in the namespaces of a
//! [`Lab`]: one public node that created the community, and members that
//! joined with its invite and run on their hosts (behind NAT or not). Used
//! by the NAT tests and the NAT benchmark.
//!
//! Each daemon listens on its host's address only (TCP and QUIC, port
//! 4001; a member that hides its address listens nowhere), with mDNS and
//! UPnP off, and logs to a file in its own temporary
//! directory; the `mutual` commands that drive it reach its control socket
//! through the file system.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use tempfile::TempDir;

use crate::netns::{Host, Lab};

/// The port every daemon listens on (each host has its own addresses).
pub const PORT: u16 = 4001;

/// The `mutual` binary of this build profile (see
/// [`crate::daemon::mutual_bin`]).
pub fn mutual_bin() -> anyhow::Result<PathBuf> {
    Ok(crate::daemon::mutual_bin().to_path_buf())
}

/// Polls `check` every 100 ms until it holds, or fails after `deadline`
/// naming `what` (blocking; the daemons are other processes).
pub fn wait_for(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let end = Instant::now() + deadline;
    let mut last_error = None;
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= end {
            match last_error {
                Some(e) => {
                    bail!("timed out after {deadline:?} waiting for {what} (last error: {e:#})")
                }
                None => bail!("timed out after {deadline:?} waiting for {what}"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One running daemon.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its name in the test.
    pub name: String,
    /// Its host (namespace and addresses).
    pub host: Host,
    /// Its data directory.
    pub dir: PathBuf,
    /// Its stderr (the log).
    pub log: PathBuf,
    /// The `mutual run` process.
    pub pid: u32,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its TCP listen address with `/p2p/<peer id>`.
    pub addr: String,
}

/// One connection row of `mutual peers --json`.
#[derive(Clone, Debug)]
pub struct PeerRow {
    /// The peer.
    pub peer_id: String,
    /// Remote addresses of the connections to it.
    pub addrs: Vec<String>,
    /// Whether it is reached through a relay only.
    pub relayed: bool,
}

impl PeerRow {
    /// Whether one of its connections is direct (not through a relay).
    pub fn has_direct(&self) -> bool {
        self.addrs.iter().any(|a| !a.contains("/p2p-circuit"))
    }
}

/// The community: a lab, the `mutual` binary and the running daemons.
pub struct NatNet {
    /// The network. Dropped after the daemons are killed.
    pub lab: Lab,
    /// The `mutual` binary.
    pub bin: PathBuf,
    /// Every data directory and log.
    pub root: TempDir,
    /// The public node's invite code.
    pub invite: String,
    /// `RUST_LOG` for the daemons started from now on (`info`, or what
    /// `MUTUAL_NAT_LOG` says).
    pub rust_log: String,
}

impl NatNet {
    /// Starts the community's public node on `host` (`extra` arguments to
    /// `mutual run`). The lab is given so the caller can make hosts first.
    pub fn new(lab: Lab, host: &Host, extra: &[&str]) -> anyhow::Result<(NatNet, Member)> {
        let mut net = NatNet {
            lab,
            bin: mutual_bin()?,
            root: tempfile::tempdir()?,
            invite: String::new(),
            // `MUTUAL_NAT_LOG` overrides, to diagnose a failing run.
            rust_log: std::env::var("MUTUAL_NAT_LOG").unwrap_or_else(|_| "info".into()),
        };
        let dir = net.root.path().join(&host.name);
        net.cli(&dir, &["init", "--name", &host.name])?;
        net.cli(
            &dir,
            &["community", "create", "NAT circle", "--probation", "0"],
        )?;
        let admin = net.run(host, &dir, extra)?;
        // One code for every member of the test network.
        net.invite = net
            .cli(&dir, &["invite", "--uses", "16"])?
            .trim()
            .to_string();
        Ok((net, admin))
    }

    /// A member on `host`: joins with the invite and runs with `extra`
    /// arguments (besides `--bootstrap` of the public node).
    pub fn join(
        &mut self,
        host: &Host,
        bootstrap: &Member,
        extra: &[&str],
    ) -> anyhow::Result<Member> {
        let dir = self.root.path().join(&host.name);
        self.cli(&dir, &["init", "--name", &host.name])?;
        let invite = self.invite.clone();
        // Joining fetches the community from the inviter's node: from the
        // member's own namespace, as the member's machine would.
        let join = self.lab.command(&host.ns, &self.bin);
        self.output(join, &dir, &["community", "join", &invite])?;
        let mut args = vec!["--bootstrap", bootstrap.addr.as_str()];
        args.extend_from_slice(extra);
        self.run(host, &dir, &args)
    }

    /// `mutual --data-dir DIR args…` (from the machine's namespace: the
    /// control socket is a file); its stdout, or an error with its stderr.
    pub fn cli(&self, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
        self.output(Command::new(&self.bin), dir, args)
    }

    /// Runs `command` (the binary, perhaps inside a namespace) with
    /// `--data-dir DIR args…`; its stdout, or an error with its stderr.
    fn output(&self, mut command: Command, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
        let out = command
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env_remove("MUTUAL_DATA_DIR")
            .stdin(Stdio::null())
            .output()
            .context("running mutual")?;
        if !out.status.success() {
            bail!(
                "`mutual {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `mutual --json args…` parsed.
    pub fn json(&self, m: &Member, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cli(&m.dir, &all)?;
        serde_json::from_str(&out).with_context(|| format!("`mutual {}`: {out}", all.join(" ")))
    }

    /// Starts `mutual run` for `dir` in `host`'s namespace and waits until
    /// it answers `mutual id`.
    fn run(&mut self, host: &Host, dir: &Path, extra: &[&str]) -> anyhow::Result<Member> {
        let log = self.root.path().join(format!("{}.log", host.name));
        let file = std::fs::File::create(&log)?;
        let tcp = format!("/ip4/{}/tcp/{PORT}", host.ip);
        let quic = format!("/ip4/{}/udp/{PORT}/quic-v1", host.ip);
        let mut cmd = self.lab.command(&host.ns, &self.bin);
        cmd.arg("--data-dir").arg(dir).args(["run", "--no-upnp"]);
        // A hidden member listens nowhere.
        if !extra.contains(&"--hide-address") {
            cmd.args(["--listen", &tcp, "--listen", &quic]);
        }
        cmd.args(extra)
            .env_remove("MUTUAL_DATA_DIR")
            .env("RUST_LOG", &self.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        let pid = self.lab.spawn(cmd)?;
        let mut id = Value::Null;
        wait_for(
            Duration::from_secs(30),
            "the daemon to answer `mutual id`",
            || {
                if !self.lab.running(pid) {
                    bail!(
                        "`mutual run` on {} exited: {}",
                        host.name,
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                match self.cli(dir, &["--json", "id"]) {
                    Ok(out) => {
                        id = serde_json::from_str(&out)?;
                        Ok(true)
                    }
                    Err(_) => Ok(false),
                }
            },
        )?;
        let peer_id = id["peer_id"]
            .as_str()
            .context("`id` without peer_id")?
            .to_string();
        Ok(Member {
            name: host.name.clone(),
            host: host.clone(),
            dir: dir.to_path_buf(),
            log,
            pid,
            addr: format!("{tcp}/p2p/{peer_id}"),
            peer_id,
        })
    }

    /// `mutual peers --json` of `m`.
    pub fn peers(&self, m: &Member) -> anyhow::Result<Vec<PeerRow>> {
        let v = self.json(m, &["peers"])?;
        let rows = v.as_array().context("`peers --json` is not a list")?;
        rows.iter()
            .map(|r| {
                Ok(PeerRow {
                    peer_id: r["peer_id"]
                        .as_str()
                        .context("a row without peer_id")?
                        .to_string(),
                    addrs: r["addrs"]
                        .as_array()
                        .context("a row without addrs")?
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    relayed: r["relayed"].as_bool().unwrap_or(false),
                })
            })
            .collect()
    }

    /// `m`'s row for `other`, if connected.
    pub fn peer(&self, m: &Member, other: &Member) -> anyhow::Result<Option<PeerRow>> {
        Ok(self
            .peers(m)?
            .into_iter()
            .find(|r| r.peer_id == other.peer_id))
    }

    /// Bodies of the posts `m` holds in `topic`.
    pub fn bodies(&self, m: &Member, topic: &str) -> anyhow::Result<Vec<String>> {
        let out = self.cli(&m.dir, &["--json", "read", topic, "--limit", "1000"])?;
        out.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l)?;
                Ok(v["body"].as_str().unwrap_or_default().to_string())
            })
            .collect()
    }

    /// Waits until `m` holds a post with `body` in `topic`.
    pub fn wait_post(
        &self,
        m: &Member,
        topic: &str,
        body: &str,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        wait_for(deadline, &format!("{} to receive {body:?}", m.name), || {
            Ok(self.bodies(m, topic)?.iter().any(|b| b == body))
        })
    }

    /// CPU time (user + system) `m`'s process has used, in seconds.
    pub fn cpu_seconds(&self, m: &Member) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", m.pid))?;
        // Fields after the command name (which may hold spaces) end at ')'.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .context("unreadable /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line, 12 and
        // 13 of what follows the name.
        let ticks = |i: usize| -> anyhow::Result<f64> {
            Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
        };
        let hz = clock_ticks();
        Ok((ticks(11)? + ticks(12)?) / hz)
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux by default).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

pub use crate::daemon::files_under;

/// The first of `ips` that `bytes` hold, if any.
pub fn leaked(bytes: &[u8], ips: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    ips.iter()
        .copied()
        .find(|ip| crate::netns::bytes_hold_ip(bytes, *ip))
}
