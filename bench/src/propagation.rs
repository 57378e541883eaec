//! Part 2, propagation: nodes on 127.0.0.1, each bootstrapped from two
//! others, all in one topic; posts published from random nodes at a steady
//! rate; for each post the time until every node has stored it, and how
//! many copies of it each node's gossip layer received (gossipsub's own
//! counters, [`node::GossipStats`]: the node itself only ever sees the
//! first copy).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node::NodeEvent;
use protocol::post::Draft;
use protocol::Message;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;

use crate::fixtures::{self, BenchNode, Community};
use crate::report::Report;

const PART: &str = "propagation";

/// Sizes of the propagation part.
pub(crate) struct Sizes {
    /// Nodes in the network.
    pub(crate) nodes: usize,
    /// Posts published.
    pub(crate) posts: usize,
    /// Posts per second across the network.
    pub(crate) rate: f64,
    /// How long to wait for the last delivery after the last publish.
    pub(crate) deadline: Duration,
}

/// What one node saw, written by its follower task.
#[derive(Default)]
struct NodeLog {
    /// First time each post (printable id) was stored.
    stored: HashMap<String, Instant>,
    /// Posts gossip handed to the node (first copies only).
    gossip: HashMap<String, u32>,
    /// Events the follower missed (broadcast lag).
    lagged: u64,
    /// Bytes of the post messages gossip handed over, and how many.
    post_bytes: u64,
    posts: u64,
}

type Log = Arc<Mutex<NodeLog>>;

fn lock(log: &Log) -> std::sync::MutexGuard<'_, NodeLog> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

fn follow(handle: &node::NodeHandle) -> Log {
    let log: Log = Arc::default();
    let mut rx = handle.subscribe();
    let out = log.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(NodeEvent::PostStored(view)) => {
                    let now = Instant::now();
                    lock(&out).stored.entry(view.id).or_insert(now);
                }
                Ok(NodeEvent::GossipReceived { data, .. }) => {
                    if let Ok(Message::Post(p)) = Message::decode(&data) {
                        let mut l = lock(&out);
                        *l.gossip.entry(p.id().to_string()).or_default() += 1;
                        l.post_bytes += data.len() as u64;
                        l.posts += 1;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => lock(&out).lagged += n,
                Err(RecvError::Closed) => break,
            }
        }
    });
    log
}

/// Bytes received on the loopback interface so far (the whole network
/// namespace: other programs on 127.0.0.1 count too).
fn loopback_rx_bytes() -> Option<u64> {
    let dev = std::fs::read_to_string("/proc/net/dev").ok()?;
    let line = dev.lines().find(|l| l.trim_start().starts_with("lo:"))?;
    line.split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Connected peers of every node.
async fn peer_counts(nodes: &[BenchNode]) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(n.handle.peers().await?.len());
    }
    Ok(out)
}

/// Gossip counters of every node, summed.
async fn gossip_totals(nodes: &[BenchNode]) -> anyhow::Result<node::GossipStats> {
    let mut t = node::GossipStats::default();
    for n in nodes {
        let s = n.handle.gossip_stats().await?;
        t.received += s.received;
        t.unique += s.unique;
        t.published += s.published;
        t.sent += s.sent;
        t.iwant_requested += s.iwant_requested;
        t.idontwant_received += s.idontwant_received;
        t.idontwant_ids_received += s.idontwant_ids_received;
    }
    Ok(t)
}

/// `min, mean, max` of peer counts.
fn spread(counts: &[usize]) -> (usize, f64, usize) {
    (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64,
        counts.iter().max().copied().unwrap_or(0),
    )
}

/// How long each node's event loop takes to answer a trivial command
/// while the posts flow: its queueing delay, which every gossip message
/// handled by that node also waits.
async fn probe_event_loops(handles: Vec<node::NodeHandle>, stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut out = Vec::new();
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let h = &handles[k % handles.len()];
        k += 1;
        let t = Instant::now();
        if h.id().await.is_ok() {
            out.push(fixtures::ms(t.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    out
}

/// Runs the part and adds its rows.
pub(crate) fn run(rt: &Runtime, report: &mut Report, sizes: &Sizes) -> anyhow::Result<()> {
    rt.block_on(run_async(report, sizes))
}

async fn run_async(report: &mut Report, sizes: &Sizes) -> anyhow::Result<()> {
    let mut com = Community::new()?;
    let topic = fixtures::topic();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);

    // A sparse start: node i dials two random earlier nodes; discovery of
    // the topic's providers does the rest.
    let mut nodes: Vec<BenchNode> = Vec::new();
    let mut logs: Vec<Log> = Vec::new();
    let setup = Instant::now();
    for i in 0..sizes.nodes {
        let data = if i == 0 {
            com.admin.clone()
        } else {
            com.member()?
        };
        let mut earlier: Vec<usize> = (0..i).collect();
        earlier.shuffle(&mut rng);
        let bootstrap = earlier
            .iter()
            .take(2)
            .map(|j| nodes[*j].addr.clone())
            .collect();
        let mut c = fixtures::config(data, bootstrap);
        // The production interval, not the tests' 5 s. With 5 s, 20
        // nodes in one process run a session with every peer that often;
        // before stores kept their whole-set sums, those sessions held
        // event loops for tens of ms (answer p99 34 ms, propagation p99
        // 410 ms). With the sums, loops answer within 3 ms, yet p99 stays
        // near 200 ms (196, 236 ms in two runs; 44–131 ms at 60 s): not
        // yet explained, see ARCHITECTURE.md "Where the time goes".
        c.sync_interval = std::time::Duration::from_secs(60);
        let node = BenchNode::start(c).await?;
        logs.push(follow(&node.handle));
        node.handle.join(topic.clone()).await?;
        nodes.push(node);
    }
    let min_peers = 3.min(sizes.nodes - 1);
    fixtures::wait_until(
        Duration::from_secs(60),
        Duration::from_millis(100),
        "every node to have 3 peers",
        || async {
            for n in &nodes {
                if n.handle.peers().await.map(|p| p.len()).unwrap_or(0) < min_peers {
                    return false;
                }
            }
            true
        },
    )
    .await?;
    // Warm-up posts from three nodes must reach everyone: the mesh works.
    let mut warm = Vec::new();
    for (i, node) in nodes.iter().enumerate().take(3) {
        let id = node
            .handle
            .publish(
                topic.clone(),
                Draft {
                    body: format!("warm-up {i}"),
                    ..Draft::default()
                },
            )
            .await?;
        warm.push(id.to_string());
    }
    fixtures::wait_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        "the warm-up posts to reach every node",
        || async {
            logs.iter()
                .all(|l| warm.iter().all(|w| lock(l).stored.contains_key(w)))
        },
    )
    .await?;
    // Until the topology settles: nodes close surplus connections (those
    // outside their meshes) once they are 10 s old; posting starts when the
    // peer counts stayed the same for 3 s (or after 40 s).
    let settle = Instant::now();
    let mut last = peer_counts(&nodes).await?;
    let mut same_since = Instant::now();
    while settle.elapsed() < Duration::from_secs(40)
        && same_since.elapsed() < Duration::from_secs(3)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = peer_counts(&nodes).await?;
        if now != last || settle.elapsed() < Duration::from_secs(12) {
            last = now;
            same_since = Instant::now();
        }
    }
    let peers_before = peer_counts(&nodes).await?;
    let setup_s = setup.elapsed().as_secs_f64();

    // Idle loopback traffic, to subtract from the traffic while posting.
    let idle_window = Duration::from_secs(3);
    let lo0 = loopback_rx_bytes();
    tokio::time::sleep(idle_window).await;
    let lo1 = loopback_rx_bytes();
    let idle_rate = match (lo0, lo1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / idle_window.as_secs_f64()),
        _ => None,
    };

    // Each node publishes the same share, in a random order, at a steady
    // overall rate (every node's key stays under the gossip burst of 60).
    let mut order: Vec<usize> = (0..sizes.posts).map(|k| k % sizes.nodes).collect();
    order.shuffle(&mut rng);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / sizes.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut publishing: JoinSet<(usize, Instant, Duration, Result<String, node::NodeError>)> =
        JoinSet::new();
    let stats_before = gossip_totals(&nodes).await?;
    let stop_probe = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(probe_event_loops(
        nodes.iter().map(|n| n.handle.clone()).collect(),
        stop_probe.clone(),
    ));
    let publish_start = Instant::now();
    for (k, origin) in order.iter().enumerate() {
        ticker.tick().await;
        let handle = nodes[*origin].handle.clone();
        let topic = topic.clone();
        let origin = *origin;
        let filler: u32 = rng.gen();
        publishing.spawn(async move {
            let t0 = Instant::now();
            let r = handle
                .publish(topic, Draft {
                    body: format!("post {k} from node {origin} ({filler:08x}): I hear you, and you are not alone in this."),
                    ..Draft::default()
                })
                .await
                .map(|id| id.to_string());
            (origin, t0, t0.elapsed(), r)
        });
    }
    let mut published: Vec<(String, usize, Instant)> = Vec::new();
    let mut publish_ms: Vec<f64> = Vec::new();
    let mut publish_errors = 0usize;
    while let Some(r) = publishing.join_next().await {
        let (origin, t0, took, id) = r?;
        match id {
            Ok(id) => {
                published.push((id, origin, t0));
                publish_ms.push(fixtures::ms(took));
            }
            Err(e) => {
                publish_errors += 1;
                eprintln!("propagation: a publish failed: {e}");
            }
        }
    }
    let publish_span = publish_start.elapsed();
    let all_in = fixtures::wait_until(
        sizes.deadline,
        Duration::from_millis(100),
        "every post to reach every node",
        || async {
            logs.iter().all(|l| {
                let l = lock(l);
                published.iter().all(|(id, _, _)| l.stored.contains_key(id))
            })
        },
    )
    .await;
    let traffic_span = publish_start.elapsed();
    let lo2 = loopback_rx_bytes();
    stop_probe.store(true, Ordering::Relaxed);
    let mut probe_ms = probe.await?;
    probe_ms.sort_by(f64::total_cmp);
    let stats_after = gossip_totals(&nodes).await?;
    let peers_after = peer_counts(&nodes).await?;

    // Latency of each post to its last node, delivery, copies.
    let mut to_last: Vec<f64> = Vec::new();
    let mut each: Vec<f64> = Vec::new();
    let mut delivered = 0usize;
    let mut by_gossip_pairs = 0u64;
    let mut not_by_gossip = 0u64;
    let mut lagged = 0u64;
    let (mut post_bytes, mut post_msgs) = (0u64, 0u64);
    let locked: Vec<_> = logs.iter().map(lock).collect();
    for l in &locked {
        lagged += l.lagged;
        post_bytes += l.post_bytes;
        post_msgs += l.posts;
    }
    let mean_post = post_bytes as f64 / post_msgs.max(1) as f64;
    for (id, origin, t0) in &published {
        let mut last: Option<f64> = Some(0.0);
        for (i, l) in locked.iter().enumerate() {
            match l.stored.get(id) {
                Some(at) => {
                    delivered += 1;
                    let lat = fixtures::ms(at.saturating_duration_since(*t0));
                    if i != *origin {
                        each.push(lat);
                        match l.gossip.get(id) {
                            Some(_) => by_gossip_pairs += 1,
                            None => not_by_gossip += 1,
                        }
                    }
                    last = last.map(|m| m.max(lat));
                }
                None => last = None,
            }
        }
        if let Some(l) = last {
            to_last.push(l);
        }
    }
    drop(locked);
    to_last.sort_by(f64::total_cmp);
    each.sort_by(f64::total_cmp);
    publish_ms.sort_by(f64::total_cmp);
    let pairs = sizes.posts * sizes.nodes;
    let ratio = delivered as f64 / pairs as f64;

    let shape = format!(
        "{} nodes, {} posts at {}/s",
        sizes.nodes, sizes.posts, sizes.rate
    );
    report
        .add(PART, "delivery ratio (post × node)", ratio, "")
        .note(format!(
            "{shape}; {delivered} of {pairs} within {:.0} s of the last publish; {publish_errors} publish errors",
            sizes.deadline.as_secs_f64()
        ));
    report
        .add(
            PART,
            "latency to the last node, p50",
            fixtures::quantile(&to_last, 0.5),
            "ms",
        )
        .note("from the publish call to PostStored on the last node");
    report.add(
        PART,
        "latency to the last node, p99",
        fixtures::quantile(&to_last, 0.99),
        "ms",
    );
    report.add(
        PART,
        "latency to the last node, max",
        to_last.last().copied().unwrap_or(f64::NAN),
        "ms",
    );
    report
        .add(
            PART,
            "latency per delivery, p50",
            fixtures::quantile(&each, 0.5),
            "ms",
        )
        .note("every (post, other node) pair");
    report
        .add(
            PART,
            "publish command, p50",
            fixtures::quantile(&publish_ms, 0.5),
            "ms",
        )
        .note(format!(
            "sign, store, flush to disk, gossip; p99 {:.1} ms; posting took {:.1} s",
            fixtures::quantile(&publish_ms, 0.99),
            publish_span.as_secs_f64()
        ));
    // Gossip counters over the posting window, every node summed. Each
    // post is published once and should reach `nodes − 1` other nodes.
    let received = stats_after.received - stats_before.received;
    let unique = stats_after.unique - stats_before.unique;
    let dups = received.saturating_sub(unique);
    let receivers = (published.len().max(1) * (sizes.nodes - 1)) as f64;
    report
        .add(
            PART,
            "duplicates per post per node",
            dups as f64 / receivers,
            "",
        )
        .target("≤ 2")
        .note(format!(
            "gossipsub's counters: {received} copies received, {unique} first copies, over {} posts × {} other nodes (echoes to the publisher count as duplicates); {by_gossip_pairs} deliveries by gossip, {not_by_gossip} by sync; {lagged} events lagged",
            published.len(),
            sizes.nodes - 1
        ));
    report
        .add(
            PART,
            "IWANT requests per post per node",
            (stats_after.iwant_requested - stats_before.iwant_requested) as f64 / receivers,
            "",
        )
        .note(format!(
            "ids asked for after an IHAVE came before any mesh copy (the lazy path); IDONTWANT received: {} messages carrying {} ids; messages sent: {}",
            stats_after.idontwant_received - stats_before.idontwant_received,
            stats_after.idontwant_ids_received - stats_before.idontwant_ids_received,
            stats_after.sent - stats_before.sent
        ));
    report
        .add(
            PART,
            "event loop answer time while posting, p99",
            fixtures::quantile(&probe_ms, 0.99),
            "ms",
        )
        .note(format!(
            "a trivial command to one node after another every 10 ms: the queueing delay a gossip message also meets; p50 {:.2} ms, max {:.1} ms, {} probes",
            fixtures::quantile(&probe_ms, 0.5),
            probe_ms.last().copied().unwrap_or(f64::NAN),
            probe_ms.len()
        ));
    if let (Some(idle), Some(a), Some(b)) = (idle_rate, lo1, lo2) {
        let net = (b.saturating_sub(a) as f64 - idle * traffic_span.as_secs_f64()).max(0.0);
        let per = net / (published.len().max(1) * (sizes.nodes - 1)) as f64;
        report
            .add(PART, "loopback bytes per post per receiving node (estimate)", per, "B")
            .note(format!(
                "all of 127.0.0.1 minus the idle rate ({:.0} B/s): gossip, IHAVE/IWANT/IDONTWANT, noise+yamux+TCP/IP headers, sync; {:.1}× the {}-byte post (every copy also pays ~100–200 B of framing)",
                idle,
                per / mean_post.max(1.0),
                mean_post.round()
            ));
    }
    let (lo, mean, hi) = spread(&peers_before);
    report
        .add(PART, "peers per node when posting began, mean", mean, "")
        .note(format!(
            "min {lo}, max {hi}; network formed in {setup_s:.1} s"
        ));
    let (lo, mean, hi) = spread(&peers_after);
    report
        .add(PART, "peers per node at the end, mean", mean, "")
        .note(format!("min {lo}, max {hi}"));

    let mut stops = JoinSet::new();
    for n in nodes {
        stops.spawn(n.stop());
    }
    while stops.join_next().await.is_some() {}
    if let Err(e) = all_in {
        report.failures.push(format!(
            "propagation: {e} ({delivered} of {pairs} delivered)"
        ));
    }
    Ok(())
}
