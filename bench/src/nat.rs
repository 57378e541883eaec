//! Part `nat`: two members behind NAT routers, a public node as relay, all
//! real `mutual run` daemons in network namespaces this part makes (the
//! harness of the NAT tests, `mutual_tests::netns`; needs root, iproute2
//! and nftables).
//!
//! For each NAT mode, over a few attempts (a fresh network each): the time
//! from the members' start to their first post delivered (relayed, since a
//! direct link needs AutoNAT and DCUtR first), whether and when the link
//! turned direct, and a post's delivery time after that. Then, behind
//! symmetric NATs where every post goes through the relay, the relay
//! node's cost per relayed post: bytes on its interface and CPU time of its
//! process, net of what it spends idle over the same time.

use std::time::{Duration, Instant};

use mutual_tests::natnet::{wait_for, Member, NatNet};
use mutual_tests::netns::{Lab, NatMode};

use crate::report::Report;

const PART: &str = "nat";
const TOPIC: &str = "nat";

/// Sizes of the part.
pub(crate) struct Sizes {
    /// Fresh networks per NAT mode.
    pub(crate) attempts: usize,
    /// Posts for the relay cost (each member posts half; a key may post
    /// 30 a minute).
    pub(crate) relayed_posts: usize,
    /// How long to wait for a post or the direct upgrade.
    pub(crate) deadline: Duration,
}

/// A public node and two members behind NATs of `mode`, joined to the
/// topic (the public node not, so posts cross a member-to-member link);
/// the instant the members were started.
fn community(mode: NatMode) -> anyhow::Result<(NatNet, Member, Member, Member, Instant)> {
    let mut lab = Lab::new()?;
    let public = lab.public_host("relay")?;
    let alice = lab.nat_host("alice", mode)?;
    let bob = lab.nat_host("bob", mode)?;
    let (mut net, relay) = NatNet::new(lab, &public, &[])?;
    let started = Instant::now();
    let a = net.join(&alice, &relay, &[])?;
    let b = net.join(&bob, &relay, &[])?;
    for m in [&a, &b] {
        net.cli(&m.dir, &["join", TOPIC])?;
    }
    Ok((net, relay, a, b, started))
}

/// Posts `body` from `from` and waits until `to` holds it; the time.
fn deliver(
    net: &NatNet,
    from: &Member,
    to: &Member,
    body: &str,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    net.cli(&from.dir, &["post", TOPIC, body])?;
    net.wait_post(to, TOPIC, body, deadline)?;
    Ok(t.elapsed())
}

fn mode_name(mode: NatMode) -> &'static str {
    match mode {
        NatMode::EndpointIndependent => "endpoint-independent NATs",
        NatMode::Symmetric => "symmetric NATs",
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Runs the part.
pub(crate) fn run(report: &mut Report, sizes: &Sizes) -> anyhow::Result<()> {
    for mode in [NatMode::EndpointIndependent, NatMode::Symmetric] {
        let name = mode_name(mode);
        let mut first = Vec::new();
        let mut upgrade = Vec::new();
        let mut after = Vec::new();
        for attempt in 0..sizes.attempts {
            let (net, _relay, a, b, started) = community(mode)?;
            let body = format!("first post, attempt {attempt}");
            deliver(&net, &a, &b, &body, sizes.deadline)?;
            first.push(started.elapsed().as_secs_f64() * 1000.0);
            let direct = wait_for(sizes.deadline, "a direct link", || {
                Ok(net
                    .peer(&a, &b)?
                    .is_some_and(|r| r.has_direct() && !r.relayed))
            });
            if direct.is_ok() {
                upgrade.push(started.elapsed().as_secs_f64() * 1000.0);
                let d = deliver(
                    &net,
                    &a,
                    &b,
                    &format!("direct post {attempt}"),
                    sizes.deadline,
                )?;
                after.push(d.as_secs_f64() * 1000.0);
            }
        }
        if let Some(ms) = median(first) {
            report
                .add(
                    PART,
                    &format!("{name}: start → first post delivered"),
                    ms,
                    "ms",
                )
                .note = format!(
                "median of {}; relayed or direct, whichever came first",
                sizes.attempts
            );
        }
        report
            .add(
                PART,
                &format!("{name}: link turned direct (DCUtR)"),
                upgrade.len() as f64,
                &format!("of {}", sizes.attempts),
            )
            .note = format!("within {:?} of the start", sizes.deadline);
        if let Some(ms) = median(upgrade) {
            report
                .add(PART, &format!("{name}: start → direct link"), ms, "ms")
                .note = "median of the attempts that upgraded".into();
        }
        if let Some(ms) = median(after) {
            report
                .add(PART, &format!("{name}: a post after the upgrade"), ms, "ms")
                .note = "post command → held by the other member".into();
        }
    }
    relay_cost(report, sizes)
}

/// The relay node's bytes and CPU per relayed post (behind symmetric NATs).
fn relay_cost(report: &mut Report, sizes: &Sizes) -> anyhow::Result<()> {
    let (net, relay, a, b, _) = community(NatMode::Symmetric)?;
    // Warm the circuit: the first post may wait for the link itself.
    deliver(&net, &a, &b, "warm-up", sizes.deadline)?;
    deliver(&net, &b, &a, "warm-up back", sizes.deadline)?;
    let sample = |net: &NatNet| -> anyhow::Result<(u64, f64)> {
        let (rx, tx) = net.lab.counters(&relay.host.ns, "eth0")?;
        Ok((rx + tx, net.cpu_seconds(&relay)?))
    };
    // Posts: half from each member, each awaited, so the last is through.
    let n = sizes.relayed_posts.max(2);
    let (bytes1, cpu1) = sample(&net)?;
    let t1 = Instant::now();
    for i in 0..n {
        let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        deliver(&net, from, to, &format!("relayed post {i}"), sizes.deadline)?;
    }
    let busy = t1.elapsed();
    let (bytes2, cpu2) = sample(&net)?;
    // Idle: what the relay spends on heartbeats and pings in a window as
    // long as the busy one, right after (a measurement, not a wait).
    std::thread::sleep(busy);
    let (bytes3, cpu3) = sample(&net)?;
    let idle_bytes = bytes3.saturating_sub(bytes2) as f64;
    let idle_cpu = (cpu3 - cpu2).max(0.0);
    let busy_bytes = bytes2.saturating_sub(bytes1) as f64;
    let busy_cpu = cpu2 - cpu1;
    let posts = n as f64;
    report
        .add(
            PART,
            "relay: bytes per relayed post",
            (busy_bytes - idle_bytes).max(0.0) / posts,
            "bytes",
        )
        .note = format!(
        "relay's interface, in + out, {n} posts over {:.1} s, net of {:.0} bytes idle in as long",
        busy.as_secs_f64(),
        idle_bytes
    );
    report
        .add(
            PART,
            "relay: CPU per relayed post",
            (busy_cpu - idle_cpu).max(0.0) / posts * 1000.0,
            "ms",
        )
        .note = format!(
        "user + system of the relay process (/proc), net of {:.0} ms idle in as long",
        idle_cpu * 1000.0
    );
    Ok(())
}
