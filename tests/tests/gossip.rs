//! Issue 4: nodes form a network, join topics by name, and every subscribed
//! node verifies and keeps every post of its topics; hostile messages are
//! neither stored nor relayed.

use mutual_tests::{start, topic, wait_until, TestNet, TestNode, DEADLINE};
use node::ReadQuery;
use protocol::post::Draft;

fn draft(body: &str) -> Draft {
    Draft {
        body: body.into(),
        ..Draft::default()
    }
}

async fn line(net: &mut TestNet, n: usize) -> anyhow::Result<Vec<TestNode>> {
    let mut nodes: Vec<TestNode> = vec![start(net.admin.clone(), &[]).await?];
    for i in 1..n {
        let prev = nodes[i - 1].addr.clone();
        nodes.push(start(net.member(&format!("m{i}"))?, &[&prev]).await?);
    }
    Ok(nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_reaches_every_subscriber_along_a_line_and_no_one_else() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let nodes = line(&mut net, 6).await?;
    // The last node does not join: it must store nothing.
    for n in &nodes[..5] {
        n.handle.join(topic("burnout")).await?;
    }
    nodes[5].handle.join(topic("other")).await?;
    let id = nodes[0]
        .handle
        .publish(topic("burnout"), draft("hello from the start of the line"))
        .await?;
    let id2 = nodes[4]
        .handle
        .publish(topic("burnout"), draft("and from the end"))
        .await?;
    for n in &nodes[..5] {
        wait_until(DEADLINE, "both posts on every subscriber", || async {
            n.count("burnout").await == 2
        })
        .await?;
    }
    let expected = nodes[0].ids("burnout").await;
    assert!(expected.contains(&id.to_string()) && expected.contains(&id2.to_string()));
    for n in &nodes[..5] {
        assert_eq!(n.ids("burnout").await, expected);
    }
    assert_eq!(nodes[5].count("burnout").await, 0);
    let status = nodes[5].handle.status().await?;
    assert_eq!(status.posts, 0, "a node that did not join stores nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_reaches_every_subscriber_in_a_star() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let hub = start(net.admin.clone(), &[]).await?;
    let mut leaves = Vec::new();
    for i in 0..5 {
        leaves.push(start(net.member(&format!("leaf{i}"))?, &[&hub.addr]).await?);
    }
    hub.handle.join(topic("anxiety")).await?;
    for l in &leaves {
        l.handle.join(topic("anxiety")).await?;
    }
    leaves[0]
        .handle
        .publish(topic("anxiety"), draft("from a leaf"))
        .await?;
    for n in leaves.iter().chain(std::iter::once(&hub)) {
        wait_until(DEADLINE, "post on every node of the star", || async {
            n.count("anxiety").await == 1
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_still_has_every_post() -> anyhow::Result<()> {
    let net = TestNet::new()?;
    let node = start(net.admin.clone(), &[]).await?;
    node.handle.join(topic("sleep")).await?;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            node.handle
                .publish(topic("sleep"), draft(&format!("night {i}")))
                .await?
                .to_string(),
        );
    }
    ids.sort();
    let data = node.stop().await;
    let again = start(data, &[]).await?;
    assert_eq!(again.ids("sleep").await, ids);
    let topics = again.handle.topics().await?;
    assert_eq!(topics.len(), 1, "joined topics survive a restart");
    assert_eq!(topics[0].posts, 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_bootstrapped_from_different_peers_find_each_other_through_the_dht(
) -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    // hub <- p1 <- x   and   hub <- p2 <- y ; only x and y join the topic.
    let hub = start(net.admin.clone(), &[]).await?;
    let p1 = start(net.member("p1")?, &[&hub.addr]).await?;
    let p2 = start(net.member("p2")?, &[&hub.addr]).await?;
    let x = start(net.member("x")?, &[&p1.addr]).await?;
    let y = start(net.member("y")?, &[&p2.addr]).await?;
    x.handle.join(topic("grief")).await?;
    y.handle.join(topic("grief")).await?;
    let id = x
        .handle
        .publish(topic("grief"), draft("is anyone here?"))
        .await?;
    wait_until(DEADLINE, "y to receive x's post", || async {
        y.ids("grief").await.contains(&id.to_string())
    })
    .await?;
    let back = y.handle.publish(topic("grief"), draft("yes, I am")).await?;
    wait_until(DEADLINE, "x to receive y's reply", || async {
        x.ids("grief").await.contains(&back.to_string())
    })
    .await?;
    for relay in [&hub, &p1, &p2] {
        assert_eq!(
            relay.handle.status().await?.posts,
            0,
            "relays did not join, store nothing"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_neither_stored_nor_relayed() -> anyhow::Result<()> {
    use protocol::{CommunityManifest, Identity, Message, Post, SecretKey};
    let mut net = TestNet::new()?;
    let a = start(net.admin.clone(), &[]).await?;
    let mut rogue_cfg = node::NodeConfig::local(net.member("rogue")?);
    rogue_cfg.bootstrap = vec![a.addr.clone()];
    rogue_cfg.gossip_max_transmit = 2 * 1024 * 1024;
    let rogue = mutual_tests::start_with(rogue_cfg).await?;
    let c = start(net.member("c")?, &[&a.addr]).await?;
    for n in [&a, &rogue, &c] {
        n.handle.join(topic("work")).await?;
    }
    let community = net.manifest.id();
    let now = node::now_ms();
    let t = topic("work");
    let gossip_topic = t.gossip_topic(&community);
    let someone = Identity::generate(None);
    let honest = |body: &str| {
        Post::write(&someone, community, t.clone(), draft(body), now).map(Message::Post)
    };
    // 1. A bad signature: a signed post whose body was changed afterwards.
    let Message::Post(mut forged) = honest("original")? else {
        unreachable!()
    };
    forged.content.body = "changed".into();
    // 2. A post of another community.
    let other = CommunityManifest::create("Elsewhere", "", &SecretKey::generate(), now)?.id();
    let foreign = Post::write(&someone, other, t.clone(), draft("foreign"), now)?;
    let hostile: Vec<Vec<u8>> = vec![
        Message::Post(forged).encode(),
        Message::Post(foreign).encode(),
        vec![0x5a; 1024 * 1024],
        (0..3000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect(),
    ];
    // Make sure the rogue is in the mesh before it floods.
    let probe = rogue
        .handle
        .publish(t.clone(), draft("rogue's honest hello"))
        .await?;
    for n in [&a, &c] {
        wait_until(DEADLINE, "mesh formed", || async {
            n.ids("work").await.contains(&probe.to_string())
        })
        .await?;
    }
    for bytes in hostile {
        rogue.handle.publish_raw(&gossip_topic, bytes).await?;
    }
    // Honest posts still flow, after the hostile ones.
    let ok = a.handle.publish(t.clone(), draft("still here")).await?;
    wait_until(DEADLINE, "honest post after the flood", || async {
        c.ids("work").await.contains(&ok.to_string())
    })
    .await?;
    for n in [&a, &c] {
        let posts = n
            .handle
            .read(
                t.clone(),
                ReadQuery {
                    limit: 100,
                    since_ms: None,
                },
            )
            .await?;
        assert_eq!(posts.len(), 2, "only the two honest posts are stored");
        assert!(posts
            .iter()
            .all(|p| p.body.as_deref() != Some("changed") && p.body.as_deref() != Some("foreign")));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_talk_over_quic_too() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let quic = |dir| {
        let mut c = node::NodeConfig::local(dir);
        c.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".into()];
        c
    };
    let a = node::start(quic(net.admin.clone())).await?;
    let a_id = a.handle.id().await?;
    let a_addr = a_id
        .listen_addrs
        .iter()
        .find(|x| x.contains("quic-v1"))
        .map(|x| format!("{x}/p2p/{}", a_id.peer_id))
        .ok_or_else(|| anyhow::anyhow!("no QUIC address"))?;
    let mut cb = quic(net.member("b")?);
    cb.bootstrap = vec![a_addr];
    let b = node::start(cb).await?;
    a.handle.join(topic("t")).await?;
    b.handle.join(topic("t")).await?;
    let id = a.handle.publish(topic("t"), draft("over udp")).await?;
    wait_until(DEADLINE, "the post over QUIC", || async {
        b.handle
            .read(
                topic("t"),
                ReadQuery {
                    limit: 10,
                    since_ms: None,
                },
            )
            .await
            .map(|v| v.iter().any(|p| p.id == id.to_string()))
            .unwrap_or(false)
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_stats_count_every_copy_and_the_first_ones() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let hub = start(net.admin.clone(), &[]).await?;
    let a = start(net.member("a")?, &[&hub.addr]).await?;
    for n in [&hub, &a] {
        n.handle.join(topic("grief")).await?;
    }
    // Publish every 2 s until the hub has had one by gossip (the first may
    // precede the subscription exchange and travel by sync instead).
    let mut polls = 0u32;
    wait_until(DEADLINE, "a post to reach the hub by gossip", || {
        polls += 1;
        let publish = polls % 40 == 1;
        let (a, hub) = (&a, &hub);
        async move {
            if publish {
                let _ = a.handle.publish(topic("grief"), draft("counted")).await;
            }
            hub.handle.gossip_stats().await.is_ok_and(|s| s.unique >= 1)
        }
    })
    .await?;
    let sent = a.handle.gossip_stats().await?;
    assert!(sent.published >= 1 && sent.sent >= 1, "{sent:?}");
    let got = hub.handle.gossip_stats().await?;
    assert!(got.received >= got.unique, "{got:?}");
    assert_eq!(got.duplicates(), got.received - got.unique);
    Ok(())
}
