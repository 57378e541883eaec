//! Issue 13: a network that survives restarts. Nodes keep their listen
//! port and remember the peers they were connected to (both directions),
//! so after any node restarts, with no bootstrap address at all, it is
//! connected again and its posts reach everyone, and what was posted while
//! it was down reaches it.

use mutual_tests::{start, start_with, topic, wait_until, TestNet, TestNode, DEADLINE};
use node::NodeConfig;
use protocol::post::Draft;

fn draft(body: &str) -> Draft {
    Draft {
        body: body.into(),
        ..Draft::default()
    }
}

async fn everyone_has(nodes: &[Option<TestNode>], id: &str, what: &str) -> anyhow::Result<()> {
    for (i, n) in nodes.iter().enumerate() {
        let Some(n) = n else { continue };
        wait_until(DEADLINE, &format!("{what} on node {i}"), || async {
            n.ids("burnout").await.iter().any(|x| x == id)
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_restarted_twice_in_turn_reconnect_without_bootstrap() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let first = start(net.admin.clone(), &[]).await?;
    let hub = first.addr.clone();
    let mut nodes: Vec<Option<TestNode>> = vec![Some(first)];
    for i in 1..4 {
        // Only the first start knows an address (as from an invite).
        nodes.push(Some(start(net.member(&format!("m{i}"))?, &[&hub]).await?));
    }
    for n in nodes.iter().flatten() {
        n.handle.join(topic("burnout")).await?;
    }
    // Every node has learned where the others listen (identify, in both
    // directions of each connection) before anyone restarts.
    for (i, n) in nodes.iter().flatten().enumerate() {
        wait_until(
            DEADLINE,
            &format!("node {i} remembering 3 peers"),
            || async {
                n.handle
                    .status()
                    .await
                    .map(|s| s.remembered_peers >= 3)
                    .unwrap_or(false)
            },
        )
        .await?;
    }
    let ports: Vec<u16> = nodes
        .iter()
        .flatten()
        .map(|n| port(&n.addr))
        .collect::<anyhow::Result<_>>()?;

    for round in 0..2 {
        for i in 0..4 {
            let node = nodes[i]
                .take()
                .ok_or_else(|| anyhow::anyhow!("node {i} missing"))?;
            let data = node.stop().await;
            // Posted while node i is down: it must get it after its restart.
            let other = nodes[(i + 1) % 4]
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("node missing"))?;
            let missed = other
                .handle
                .publish(
                    topic("burnout"),
                    draft(&format!("round {round}: posted while node {i} was down")),
                )
                .await?
                .to_string();
            // No bootstrap address: the restarted node finds its peers from
            // its address book, at the port it had before.
            let restarted = start_with(NodeConfig::local(data)).await?;
            assert_eq!(
                port(&restarted.addr)?,
                ports[i],
                "node {i} keeps its listen port across restarts"
            );
            wait_until(
                DEADLINE,
                &format!("restarted node {i} connected again"),
                || async {
                    restarted
                        .handle
                        .peers()
                        .await
                        .map(|p| !p.is_empty())
                        .unwrap_or(false)
                },
            )
            .await?;
            let id = restarted
                .handle
                .publish(
                    topic("burnout"),
                    draft(&format!("round {round}: node {i} is back")),
                )
                .await?
                .to_string();
            nodes[i] = Some(restarted);
            everyone_has(
                &nodes,
                &id,
                &format!("node {i}'s post after restart {round}"),
            )
            .await?;
            everyone_has(&nodes, &missed, &format!("the post node {i} missed")).await?;
        }
    }
    for n in nodes.into_iter().flatten() {
        n.stop().await;
    }
    Ok(())
}

fn port(addr: &str) -> anyhow::Result<u16> {
    let ma: libp2p::Multiaddr = addr.parse()?;
    ma.iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("no TCP port in {addr}"))
}
