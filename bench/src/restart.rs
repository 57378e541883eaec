//! Part 6, restarts: how long a node that restarts (with no bootstrap
//! address, from its address book alone) takes to be connected again, and
//! to hold a post made while it was down.

use std::time::{Duration, Instant};

use node::NodeConfig;
use protocol::post::Draft;
use tokio::runtime::Runtime;

use crate::fixtures::{self, BenchNode, Community};
use crate::report::Report;

const PART: &str = "restart";
const NODES: usize = 4;

/// Sizes of the restart part.
pub(crate) struct Sizes {
    /// Restarts measured (nodes restarted in turn).
    pub(crate) restarts: usize,
}

/// A bench node that keeps its port across restarts (the production
/// default), on loopback.
fn config(data: node::DataDir, bootstrap: Vec<String>) -> NodeConfig {
    let mut c = NodeConfig::local(data);
    c.bootstrap = bootstrap;
    c.author_posts_per_minute = usize::MAX;
    c
}

/// Runs the part and adds its rows.
pub(crate) fn run(rt: &Runtime, report: &mut Report, sizes: &Sizes) -> anyhow::Result<()> {
    let mut com = Community::new()?;
    let topic = fixtures::topic();
    let mut dirs = vec![com.admin.clone()];
    for _ in 1..NODES {
        dirs.push(com.member()?);
    }
    let (connected, caught_up) = rt.block_on(async {
        let first = BenchNode::start(config(dirs[0].clone(), Vec::new())).await?;
        let hub = first.addr.clone();
        let mut nodes = vec![Some(first)];
        for d in &dirs[1..] {
            nodes.push(Some(
                BenchNode::start(config(d.clone(), vec![hub.clone()])).await?,
            ));
        }
        for n in nodes.iter().flatten() {
            n.handle.join(topic.clone()).await?;
        }
        for n in nodes.iter().flatten() {
            fixtures::wait_until(
                Duration::from_secs(60),
                Duration::from_millis(20),
                "every node remembering the others",
                || async {
                    n.handle
                        .status()
                        .await
                        .map(|s| s.remembered_peers >= NODES - 1)
                        .unwrap_or(false)
                },
            )
            .await?;
        }
        let mut connected = Vec::new();
        let mut caught_up = Vec::new();
        for r in 0..sizes.restarts {
            let i = r % NODES;
            let node = nodes[i]
                .take()
                .ok_or_else(|| anyhow::anyhow!("node {i} missing"))?;
            node.stop().await;
            let poster = nodes[(i + 1) % NODES]
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("node missing"))?;
            let before = poster.count(&topic).await;
            poster
                .handle
                .publish(
                    topic.clone(),
                    Draft {
                        body: format!("posted while node {i} was down ({r})"),
                        ..Draft::default()
                    },
                )
                .await?;
            let t = Instant::now();
            let back = BenchNode::start(config(dirs[i].clone(), Vec::new())).await?;
            fixtures::wait_until(
                Duration::from_secs(60),
                Duration::from_millis(2),
                "the restarted node to be connected",
                || async {
                    back.handle
                        .peers()
                        .await
                        .map(|p| !p.is_empty())
                        .unwrap_or(false)
                },
            )
            .await?;
            connected.push(fixtures::ms(t.elapsed()));
            fixtures::wait_until(
                Duration::from_secs(120),
                Duration::from_millis(2),
                "the restarted node to hold the post it missed",
                || async { back.count(&topic).await > before },
            )
            .await?;
            caught_up.push(fixtures::ms(t.elapsed()));
            nodes[i] = Some(back);
        }
        for n in nodes.into_iter().flatten() {
            n.stop().await;
        }
        anyhow::Ok((connected, caught_up))
    })?;
    let mut rows = [
        ("restarted node connected again (from start)", connected),
        ("restarted node holds the post it missed", caught_up),
    ];
    for (what, v) in rows.iter_mut() {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        report
            .add(PART, &format!("{what}, p50"), fixtures::quantile(v, 0.5), "ms")
            .note(format!(
                "{n} restarts of {NODES} loopback nodes in turn, no bootstrap address; max {:.1} ms",
                v.last().copied().unwrap_or(0.0)
            ));
    }
    Ok(())
}
