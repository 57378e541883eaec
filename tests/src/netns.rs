//! Network namespaces made, and removed, by a test: a "public" segment that
//! stands for the internet, hosts on it, and hosts behind NAT routers.
//!
//! ```text
//!   [public host 10.77.0.10+k] ─┐
//!                               ├─ bridge in the "internet" namespace
//!   [NAT router 10.77.0.100+k] ─┘
//!        │ masquerade (nftables)
//!   [host 10.78.k.2], default route via 10.78.k.1 only
//! ```
//!
//! Every address exists only inside namespaces this harness made: nothing
//! in the machine's own namespace gets an address, a route or even a link
//! (each veth pair is created straight into its two namespaces). Names are
//! `mutualt<pid>x<n>-<role>`, so parallel tests and test processes never
//! clash, and a namespace left behind by a process that died is swept by
//! the next [`Lab::new`]. Everything is removed, and every process spawned
//! in it killed, when the [`Lab`] is dropped.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). When it cannot build
//! the network, [`Lab::new`] and friends return an error with the reason:
//! a test that needs namespaces fails with it rather than passing quietly.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context};

/// Names of every namespace this harness makes start with this.
const PREFIX: &str = "mutualt";

/// How a NAT router maps a host's outgoing flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatMode {
    /// Plain masquerade: a flow keeps its source port where it can, so one
    /// local port maps to one public port whatever the destination (what
    /// hole punching needs; most home routers).
    EndpointIndependent,
    /// `masquerade fully-random`: every new destination gets a new random
    /// public port (a "symmetric" NAT; hole punching cannot work, only the
    /// relay can).
    Symmetric,
}

/// A NAT router in front of one host.
#[derive(Clone, Debug)]
pub struct Nat {
    /// The router's namespace.
    pub ns: String,
    /// How it maps.
    pub mode: NatMode,
    /// Its address on the public segment (what the world sees).
    pub wan_ip: Ipv4Addr,
    /// Its address on the host's private segment (the host's gateway).
    pub lan_ip: Ipv4Addr,
}

/// A host: one namespace where a node runs.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its name in the test (`relay`, `alice`, …).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its own address (private when behind a NAT).
    pub ip: Ipv4Addr,
    /// The router it sits behind, if any.
    pub nat: Option<Nat>,
}

impl Host {
    /// The address others see when it dials out: its NAT's public address,
    /// or its own.
    pub fn public_ip(&self) -> Ipv4Addr {
        self.nat.as_ref().map(|n| n.wan_ip).unwrap_or(self.ip)
    }

    /// Every IPv4 address of its namespace and of its router's (IPv6 is off
    /// in every namespace of the lab): what must not leak when it hides.
    pub fn all_ips(&self) -> Vec<Ipv4Addr> {
        let mut ips = vec![self.ip];
        if let Some(n) = &self.nat {
            ips.push(n.wan_ip);
            ips.push(n.lan_ip);
        }
        ips
    }
}

/// Counter so that labs of one process get distinct names.
static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// One test's network: its namespaces and the processes running in them.
pub struct Lab {
    /// `mutualt<pid>x<n>`.
    id: String,
    /// The namespace holding the public segment's bridge.
    internet: String,
    /// Every namespace made, in order (removed in reverse).
    namespaces: Vec<String>,
    /// Processes spawned in the namespaces.
    children: Vec<Child>,
    /// Bridge ports made so far.
    ports: u8,
    /// Public hosts made so far.
    publics: u8,
    /// NAT routers made so far.
    nats: u8,
}

/// Runs `program args…`; its stdout, or an error with its stderr.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{program}` (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip args…`.
fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args)
}

/// Every namespace whose name starts with `prefix`.
fn namespaces_with(prefix: &str) -> anyhow::Result<Vec<String>> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect())
}

/// Kills every process in `ns` and removes it (best effort: used on drop
/// and for leftovers).
fn remove_namespace(ns: &str) {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = run("kill", &["-9", pid]);
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Removes namespaces of this harness whose process is gone.
fn sweep_leftovers() -> anyhow::Result<()> {
    for ns in namespaces_with(PREFIX)? {
        let pid = ns
            .get(PREFIX.len()..)
            .and_then(|rest| rest.split('x').next())
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            remove_namespace(&ns);
        }
    }
    Ok(())
}

impl Lab {
    /// Makes the public segment (an empty "internet" namespace with a
    /// bridge). Fails, with the reason, when namespaces cannot be made here.
    pub fn new() -> anyhow::Result<Lab> {
        for tool in ["ip", "nft"] {
            let found = std::env::var_os("PATH")
                .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()));
            if !found {
                bail!(
                    "`{tool}` is not installed: the NAT tests need iproute2 and nftables \
                     (apt-get install iproute2 nftables)"
                );
            }
        }
        sweep_leftovers().context("listing network namespaces")?;
        let id = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            internet: format!("{id}-net"),
            id,
            namespaces: Vec::new(),
            children: Vec::new(),
            ports: 0,
            publics: 0,
            nats: 0,
        };
        let internet = lab.internet.clone();
        lab.namespace(&internet).context(
            "cannot make a network namespace (the NAT tests must run as root, \
             on Linux, where `ip netns add` is allowed)",
        )?;
        lab.exec(&internet, &["ip", "link", "add", "br0", "type", "bridge"])?;
        lab.exec(&internet, &["ip", "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    /// Makes namespace `name` with loopback up and IPv6 off (so its IPv4
    /// addresses are all it has).
    fn namespace(&mut self, name: &str) -> anyhow::Result<()> {
        ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_string());
        for key in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            self.exec(name, &["sysctl", "-q", "-w", key])?;
        }
        self.exec(name, &["ip", "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Plugs `ifname` of namespace `ns` into the public bridge, with `addr`.
    fn plug(&mut self, ns: &str, ifname: &str, addr: Ipv4Addr) -> anyhow::Result<()> {
        let port = format!("p{}", self.ports);
        self.ports += 1;
        ip(&[
            "link",
            "add",
            "name",
            ifname,
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &self.internet,
        ])?;
        let internet = self.internet.clone();
        self.exec(&internet, &["ip", "link", "set", &port, "master", "br0"])?;
        self.exec(&internet, &["ip", "link", "set", &port, "up"])?;
        self.exec(
            ns,
            &["ip", "addr", "add", &format!("{addr}/24"), "dev", ifname],
        )?;
        self.exec(ns, &["ip", "link", "set", ifname, "up"])?;
        Ok(())
    }

    /// A host on the public segment (10.77.0.10, .11, …): reachable by all.
    pub fn public_host(&mut self, name: &str) -> anyhow::Result<Host> {
        let ip = Ipv4Addr::new(10, 77, 0, 10 + self.publics);
        self.publics += 1;
        let ns = format!("{}-{name}", self.id);
        self.namespace(&ns)?;
        self.plug(&ns, "eth0", ip)?;
        Ok(Host {
            name: name.to_string(),
            ns,
            ip,
            nat: None,
        })
    }

    /// A host (10.78.k.2) behind its own NAT router (public 10.77.0.100+k,
    /// private 10.78.k.1), whose only route out is that router.
    pub fn nat_host(&mut self, name: &str, mode: NatMode) -> anyhow::Result<Host> {
        let k = self.nats + 1;
        self.nats += 1;
        let wan_ip = Ipv4Addr::new(10, 77, 0, 100 + k);
        let lan_ip = Ipv4Addr::new(10, 78, k, 1);
        let ip = Ipv4Addr::new(10, 78, k, 2);
        let router = format!("{}-{name}-nat", self.id);
        let ns = format!("{}-{name}", self.id);
        self.namespace(&router)?;
        self.namespace(&ns)?;
        self.plug(&router, "wan", wan_ip)?;
        ip_cmd_pair(&router, "lan", &ns, "eth0")?;
        self.exec(
            &router,
            &["ip", "addr", "add", &format!("{lan_ip}/24"), "dev", "lan"],
        )?;
        self.exec(&router, &["ip", "link", "set", "lan", "up"])?;
        self.exec(
            &ns,
            &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        )?;
        self.exec(&ns, &["ip", "link", "set", "eth0", "up"])?;
        self.exec(
            &ns,
            &["ip", "route", "add", "default", "via", &lan_ip.to_string()],
        )?;
        self.exec(&router, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        let masquerade = match mode {
            NatMode::EndpointIndependent => "masquerade",
            NatMode::Symmetric => "masquerade fully-random",
        };
        // Outgoing flows are rewritten to the WAN address; nothing from the
        // public side reaches the host unless a flow it started maps it.
        // Unsolicited packets addressed to the router itself are dropped
        // silently, as home routers do: Linux would otherwise answer a
        // hole-punching SYN that arrives before the host's own SYN left
        // with a RST (or a UDP packet with ICMP port unreachable), which
        // tears down the mapping the host is about to use.
        let rules = format!(
            "table ip nat {{\n\
               chain post {{\n\
                 type nat hook postrouting priority srcnat; policy accept;\n\
                 oifname \"wan\" {masquerade}\n\
               }}\n\
             }}\n\
             table ip filter {{\n\
               chain input {{\n\
                 type filter hook input priority filter; policy accept;\n\
                 iifname \"wan\" ct state established,related accept\n\
                 iifname \"wan\" drop\n\
               }}\n\
               chain forward {{\n\
                 type filter hook forward priority filter; policy drop;\n\
                 ct state established,related accept\n\
                 iifname \"lan\" oifname \"wan\" accept\n\
               }}\n\
             }}\n"
        );
        self.nft(&router, &rules)
            .context("cannot load the NAT rules (nftables)")?;
        Ok(Host {
            name: name.to_string(),
            ns,
            ip,
            nat: Some(Nat {
                ns: router,
                mode,
                wan_ip,
                lan_ip,
            }),
        })
    }

    /// Loads an nftables ruleset into namespace `ns`.
    fn nft(&self, ns: &str, rules: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run nft")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(rules.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "nft -f failed in {ns}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// A command that runs `program` inside namespace `ns`; add arguments,
    /// environment and stdio, then run it or hand it to [`Lab::spawn`].
    pub fn command(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Runs `args` inside namespace `ns`; its stdout, or an error with its
    /// stderr.
    pub fn exec(&self, ns: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["netns", "exec", ns];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Starts a long-running process (made with [`Lab::command`]); it is
    /// killed when the lab is dropped, or by [`Lab::kill`]. Its pid.
    pub fn spawn(&mut self, mut command: Command) -> anyhow::Result<u32> {
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {command:?}"))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Whether spawned process `pid` is still running.
    pub fn running(&mut self, pid: u32) -> bool {
        self.children
            .iter_mut()
            .find(|c| c.id() == pid)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills spawned process `pid` (SIGKILL) and reaps it.
    pub fn kill(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut child = self.children.swap_remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks spawned process `pid` to stop (SIGTERM) and waits for it.
    pub fn terminate(&mut self, pid: u32) -> anyhow::Result<std::process::ExitStatus> {
        run("kill", &["-TERM", &pid.to_string()])?;
        let i = self
            .children
            .iter()
            .position(|c| c.id() == pid)
            .ok_or_else(|| anyhow::anyhow!("no process {pid} in this lab"))?;
        let mut child = self.children.swap_remove(i);
        Ok(child.wait()?)
    }

    /// Bytes received and sent by interface `ifname` of namespace `ns`.
    pub fn counters(&self, ns: &str, ifname: &str) -> anyhow::Result<(u64, u64)> {
        let read = |what: &str| -> anyhow::Result<u64> {
            let path = format!("/sys/class/net/{ifname}/statistics/{what}");
            let text = self.exec(ns, &["cat", &path])?;
            text.trim()
                .parse()
                .with_context(|| format!("{path} in {ns}: {text:?}"))
        };
        Ok((read("rx_bytes")?, read("tx_bytes")?))
    }
}

/// Makes a veth pair with one end (`a`) in namespace `ns_a` and the other
/// (`b`) in `ns_b`.
fn ip_cmd_pair(ns_a: &str, a: &str, ns_b: &str, b: &str) -> anyhow::Result<()> {
    ip(&[
        "link", "add", "name", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b,
    ])?;
    Ok(())
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            remove_namespace(ns);
        }
    }
}

/// Whether `text` mentions `ip` as a whole address (`10.78.1.2` is not
/// found in `10.78.1.20`).
pub fn mentions_ip(text: &str, ip: Ipv4Addr) -> bool {
    let needle = ip.to_string();
    text.match_indices(&needle).any(|(at, _)| {
        let before = text.get(..at).and_then(|s| s.chars().next_back());
        let after = text.get(at + needle.len()..).and_then(|s| s.chars().next());
        let part_of_number = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
        !part_of_number(before) && !part_of_number(after)
    })
}

/// Whether raw bytes (a store file, a log) hold `ip`: as text, or as the
/// binary multiaddress form (`0x04` then the four octets).
pub fn bytes_hold_ip(bytes: &[u8], ip: Ipv4Addr) -> bool {
    let mut binary = vec![0x04];
    binary.extend_from_slice(&ip.octets());
    bytes.windows(binary.len()).any(|w| w == binary.as_slice())
        || mentions_ip(&String::from_utf8_lossy(bytes), ip)
}
