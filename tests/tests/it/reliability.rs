//! Issue 9: hostile input, floods, partitions and privacy on the wire.

use std::time::Duration;

use mutual_tests::{start, start_bulk, start_with, topic, wait_until, TestNet, TestNode, DEADLINE};
use node::{NodeConfig, NodeEvent};
use protocol::moderation::{ModActionKind, Scope};
use protocol::post::Draft;
use protocol::{Identity, Message, Post};

fn draft(body: &str) -> Draft {
    Draft {
        body: body.into(),
        ..Draft::default()
    }
}

/// Whether `node` is connected to `peer` now; `None` if it cannot say.
async fn connected(node: &TestNode, peer: &str) -> Option<bool> {
    node.handle
        .peers()
        .await
        .ok()
        .map(|p| p.iter().any(|x| x.peer_id == peer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_invalid_messages_is_disconnected_while_honest_posts_flow(
) -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let victim = start(net.admin.clone(), &[]).await?;
    let honest = start(net.member("honest")?, &[&victim.addr]).await?;
    let rogue = start(net.member("rogue")?, &[&victim.addr]).await?;
    for n in [&victim, &honest, &rogue] {
        n.handle.join(topic("work")).await?;
    }
    let rogue_peer = rogue.handle.id().await?.peer_id;
    wait_until(DEADLINE, "the rogue connected", || async {
        connected(&victim, &rogue_peer).await == Some(true)
    })
    .await?;
    let probe = rogue.handle.publish(topic("work"), draft("hello")).await?;
    wait_until(DEADLINE, "the rogue in the mesh", || async {
        victim.ids("work").await.contains(&probe.to_string())
    })
    .await?;
    // The flood: posts whose body was changed after signing.
    let community = net.manifest.id();
    let gossip_topic = net.gossip_topic(&topic("work"));
    let someone = Identity::generate(None);
    let flood = async {
        for i in 0..200 {
            let mut p = Post::write(
                &someone,
                community,
                topic("work"),
                draft(&format!("x{i}")),
                node::now_ms(),
            )?;
            p.content.body = format!("forged {i}");
            if rogue
                .handle
                .publish_raw(&gossip_topic, Message::Post(p).encode())
                .await
                .is_err()
            {
                break; // no one listens to the rogue any more
            }
        }
        anyhow::Ok(())
    };
    // Meanwhile honest posts keep flowing.
    let talk = async {
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(
                honest
                    .handle
                    .publish(topic("work"), draft(&format!("honest {i}")))
                    .await?
                    .to_string(),
            );
        }
        anyhow::Ok(ids)
    };
    let (flooded, ids) = tokio::join!(flood, talk);
    flooded?;
    let ids = ids?;
    wait_until(DEADLINE, "every honest post during the flood", || async {
        let have = victim.ids("work").await;
        ids.iter().all(|id| have.contains(id))
    })
    .await?;
    wait_until(DEADLINE, "the rogue disconnected", || async {
        connected(&victim, &rogue_peer).await == Some(false)
    })
    .await?;
    // Banned: when the rogue dials back in, the victim closes the
    // connection at once (the dial returns once it is up or refused).
    let victim_peer = victim.handle.id().await?.peer_id;
    let _ = rogue.handle.connect(&victim.addr).await;
    wait_until(DEADLINE, "the victim refusing the banned rogue", || async {
        connected(&rogue, &victim_peer).await == Some(false)
    })
    .await?;
    assert_eq!(victim.count("work").await, 21, "nothing forged was stored");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_author_cannot_drown_a_topic() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let a = start(net.admin.clone(), &[]).await?;
    let b = start(net.member("b")?, &[&a.addr]).await?;
    let c = start(net.member("c")?, &[&b.addr]).await?;
    for n in [&a, &b, &c] {
        n.handle.join(topic("t")).await?;
    }
    // The flooder's own node is not limited; its peers are.
    let flooder_dir = net.member("flooder")?;
    let mut cfg = NodeConfig::local(flooder_dir);
    cfg.bootstrap = vec![a.addr.clone()];
    cfg.author_posts_per_minute = usize::MAX;
    let flooder = start_with(cfg).await?;
    flooder.handle.join(topic("t")).await?;
    wait_until(DEADLINE, "the flooder connected", || async {
        a.handle
            .peers()
            .await
            .map(|p| p.len() >= 2)
            .unwrap_or(false)
    })
    .await?;
    for i in 0..100 {
        flooder
            .handle
            .publish(topic("t"), draft(&format!("spam {i}")))
            .await?;
    }
    // The local user of a limited node is told plainly.
    let mut refused = None;
    for i in 0..40 {
        if let Err(e) = a
            .handle
            .publish(topic("t"), draft(&format!("eager {i}")))
            .await
        {
            refused = Some(e.to_string());
            break;
        }
    }
    let refused = refused.expect("a limited node refuses its own user's 31st post in a minute");
    assert!(refused.contains("too fast"), "{refused}");
    let marker = b.handle.publish(topic("t"), draft("marker")).await?;
    for n in [&a, &b, &c] {
        wait_until(DEADLINE, "the marker", || async {
            n.ids("t").await.contains(&marker.to_string())
        })
        .await?;
    }
    let flooder_key = flooder.handle.id().await?.author;
    for n in [&a, &b, &c] {
        let posts = n
            .handle
            .read(
                topic("t"),
                node::ReadQuery {
                    limit: 1000,
                    since_ms: None,
                },
            )
            .await?;
        let spam = posts.iter().filter(|p| p.author == flooder_key).count();
        assert!(
            spam <= node::AUTHOR_POSTS_PER_MINUTE,
            "{spam} spam posts stored"
        );
    }
    Ok(())
}

async fn split(left: &[&TestNode], right: &[&TestNode], cut: bool) -> anyhow::Result<()> {
    for l in left {
        for r in right {
            let (lp, rp) = (l.handle.id().await?.peer_id, r.handle.id().await?.peer_id);
            l.handle.cut_off(&rp, cut).await?;
            r.handle.cut_off(&lp, cut).await?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_partition_converges_on_posts_and_moderation() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let admin = start_bulk(net.admin.clone(), &[]).await?;
    let mut nodes = vec![admin];
    for i in 1..6 {
        let prev = nodes[i - 1].addr.clone();
        nodes.push(start_bulk(net.member(&format!("n{i}"))?, &[&prev]).await?);
    }
    for n in &nodes {
        n.handle.join(topic("t")).await?;
    }
    mutual_tests::appoint(&nodes, 4).await?;
    let (left, right) = nodes.split_at(3);
    let left: Vec<&TestNode> = left.iter().collect();
    let right: Vec<&TestNode> = right.iter().collect();
    split(&left, &right, true).await?;
    wait_until(DEADLINE, "the halves apart", || async {
        let mut apart = true;
        for l in &left {
            let peers = l.handle.peers().await.unwrap_or_default();
            for r in &right {
                let rp = r.handle.id().await.map(|i| i.peer_id).unwrap_or_default();
                apart &= peers.iter().all(|p| p.peer_id != rp);
            }
        }
        apart
    })
    .await?;
    // Both halves talk and moderate.
    let troll = right[2].handle.id().await?.author.parse()?;
    for i in 0..10 {
        left[i % 3]
            .handle
            .publish(topic("t"), draft(&format!("left {i}")))
            .await?;
        right[i % 2]
            .handle
            .publish(topic("t"), draft(&format!("right {i}")))
            .await?;
    }
    right[2]
        .handle
        .publish(topic("t"), draft("troll in the right half"))
        .await?;
    left[0]
        .handle
        .moderate(ModActionKind::Block {
            author: troll,
            scope: Scope::Community,
            reason: "abuse".into(),
        })
        .await?;
    let hidden = right[0]
        .handle
        .publish(topic("t"), draft("to be hidden"))
        .await?;
    right[1]
        .handle
        .moderate(ModActionKind::Hide {
            post: hidden,
            reason: "off topic".into(),
        })
        .await?;
    // Heal.
    split(&left, &right, false).await?;
    let reference = || async {
        (
            nodes[0].ids("t").await,
            nodes[0].handle.mod_list().await.ok(),
        )
    };
    wait_until(
        Duration::from_secs(60),
        "every node holds the same posts and moderation state",
        || async {
            let (ids, list) = reference().await;
            let mut same = ids.len() == 20
                && list
                    .as_ref()
                    .is_some_and(|l| l.blocks.len() == 1 && l.hidden.len() == 1);
            for n in &nodes[1..] {
                same &= n.ids("t").await == ids && n.handle.mod_list().await.ok() == list;
            }
            same
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_post_carries_nothing_but_the_signed_post() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let a = start(net.admin.clone(), &[]).await?;
    let b = start(net.member("b")?, &[&a.addr]).await?;
    a.handle.join(topic("t")).await?;
    b.handle.join(topic("t")).await?;
    let mut events = b.handle.subscribe();
    let a_peer = a.handle.id().await?.peer_id;
    // Publish until b has seen one by gossip (the first may precede the mesh).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let (id, data, source, seqno) = loop {
        let id = a.handle.publish(topic("t"), draft("private words")).await?;
        let got = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match events.recv().await {
                    Ok(NodeEvent::GossipReceived {
                        source,
                        sequence_number,
                        data,
                    }) => {
                        return Some((data, source, sequence_number));
                    }
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
        })
        .await;
        if let Ok(Some((data, source, seqno))) = got {
            break (id, data, source, seqno);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no gossip message arrived"
        );
    };
    assert_eq!(source, None, "no author field");
    assert_eq!(seqno, None, "no sender sequence number");
    let Message::Post(post) = Message::decode(&data)? else {
        anyhow::bail!("the message is not a post");
    };
    assert_eq!(post.id(), id);
    assert_eq!(
        Message::Post(post).encode(),
        data,
        "the data is exactly the signed post"
    );
    let peer_bytes = a_peer.parse::<libp2p::PeerId>()?.to_bytes();
    assert!(
        !data
            .windows(peer_bytes.len())
            .any(|w| w == peer_bytes.as_slice()),
        "no transport peer id"
    );
    assert!(!data.windows(a_peer.len()).any(|w| w == a_peer.as_bytes()));
    Ok(())
}

#[test]
fn key_files_and_the_data_directory_are_private() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let net = TestNet::new()?;
    let mode = |p: &std::path::Path| -> anyhow::Result<u32> {
        Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
    };
    assert_eq!(mode(net.admin.path())?, 0o700);
    assert_eq!(mode(&net.admin.path().join("vault"))?, 0o700);
    for f in [
        "vault/master",
        "vault/author",
        "vault/transport",
        "vault/community",
    ] {
        assert_eq!(mode(&net.admin.path().join(f))?, 0o600, "{f}");
    }
    Ok(())
}
