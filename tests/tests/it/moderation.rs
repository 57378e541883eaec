//! Issue 6: an admin appoints moderators, moderators act, and every node
//! enforces the same signed decisions, including nodes that were offline.

use mutual_tests::{
    draft, gossip_until_judged, start, topic, wait_until, TestNet, TestNode, DEADLINE,
};
use node::GossipVerdict;
use protocol::moderation::{ModActionKind, Scope};
use protocol::{Message, ModAction};

/// Admin (node 0), a moderator (node 1) and members, in a line.
async fn community(net: &mut TestNet, members: usize) -> anyhow::Result<Vec<TestNode>> {
    let mut nodes = vec![start(net.admin.clone(), &[]).await?];
    for i in 0..members {
        let prev = nodes[i].addr.clone();
        nodes.push(start(net.member(&format!("member{i}"))?, &[&prev]).await?);
    }
    for n in &nodes {
        n.handle.join(topic("t")).await?;
        n.handle.join(topic("u")).await?;
    }
    mutual_tests::appoint(&nodes, 1).await?;
    Ok(nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_is_enforced_on_every_node_and_on_late_joiners() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let nodes = community(&mut net, 4).await?;
    let troll = &nodes[4];
    for i in 0..5 {
        troll
            .handle
            .publish(topic("t"), draft(&format!("t{i}")))
            .await?;
        troll
            .handle
            .publish(topic("u"), draft(&format!("u{i}")))
            .await?;
    }
    nodes[2]
        .handle
        .publish(topic("t"), draft("kind words"))
        .await?;
    for n in &nodes {
        wait_until(DEADLINE, "all posts everywhere", || async {
            n.count("t").await == 6 && n.count("u").await == 5
        })
        .await?;
    }
    // Block in topic t only.
    nodes[1]
        .handle
        .moderate(ModActionKind::Block {
            author: troll.key().await?,
            scope: Scope::Topic(topic("t")),
            reason: "insults".into(),
        })
        .await?;
    for n in &nodes[..4] {
        wait_until(
            DEADLINE,
            "the troll's posts in t deleted everywhere",
            || async { n.count("t").await == 1 },
        )
        .await?;
        assert_eq!(n.count("u").await, 5, "posts outside the scope stay");
    }
    // The blocked author's own node enforces the block too, and refuses
    // to publish for them.
    wait_until(
        DEADLINE,
        "the troll's own node deleted its posts in t",
        || async { troll.count("t").await == 1 },
    )
    .await?;
    let refused = troll
        .handle
        .publish(topic("t"), draft("still shouting"))
        .await;
    assert!(
        refused.is_err(),
        "the blocked author's own node refuses: {refused:?}"
    );
    // A modified client signs and gossips the post anyway. The troll is cut
    // off from all but node 3 (the line's end), its one way in: node 3
    // refuses the post, so it goes no further.
    let mut others = Vec::new();
    for n in &nodes[..3] {
        let peer = n.handle.id().await?.peer_id;
        troll.handle.cut_off(&peer, true).await?;
        others.push(peer);
    }
    wait_until(DEADLINE, "the troll connected to node 3 alone", || async {
        troll
            .handle
            .peers()
            .await
            .is_ok_and(|ps| ps.iter().all(|p| !others.contains(&p.peer_id)))
    })
    .await?;
    let gossip_topic = net.gossip_topic(&topic("t"));
    let troll_id = troll.data.identity()?;
    let mut forced = Vec::new();
    let mut events = nodes[3].handle.subscribe();
    let judged = gossip_until_judged(troll, &gossip_topic, &mut events, &mut Vec::new(), |i| {
        let p = protocol::Post::write(
            &troll_id,
            net.manifest.id(),
            topic("t"),
            draft(&format!("still shouting {i}")),
            node::now_ms(),
        )?;
        forced.push(p.id().to_string());
        Ok(Message::Post(p).encode())
    })
    .await?;
    assert_ne!(
        judged.verdict,
        GossipVerdict::Accept,
        "a blocked author's post"
    );
    let fine = nodes[3]
        .handle
        .publish(topic("t"), draft("after the block"))
        .await?;
    for n in &nodes[..4] {
        wait_until(DEADLINE, "an honest post after the block", || async {
            n.ids("t").await.contains(&fine.to_string())
        })
        .await?;
        let ids = n.ids("t").await;
        assert!(
            forced.iter().all(|f| !ids.contains(f)),
            "a forced post stored"
        );
        assert_eq!(n.count("t").await, 2);
    }
    // A sixth node joins afterwards, bootstrapped from the troll itself.
    let late = start(net.member("late")?, &[&troll.addr, &nodes[0].addr]).await?;
    late.handle.join(topic("t")).await?;
    late.handle.join(topic("u")).await?;
    wait_until(DEADLINE, "the late joiner catches up", || async {
        late.count("t").await == 2 && late.count("u").await == 5
    })
    .await?;
    let list = late.handle.mod_list().await?;
    assert_eq!(list.blocks.len(), 1);
    assert_eq!(list.blocks[0].reason, "insults");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_in_any_order_give_the_same_state() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let admin_id = net.admin.identity()?;
    let m = net.member("m")?;
    let mod_id = m.identity()?;
    let community = net.manifest.id();
    let target = protocol::SecretKey::generate().public();
    let t0 = node::now_ms() - 100_000;
    let actions = vec![
        ModAction::create(
            &admin_id,
            community,
            1,
            ModActionKind::AppointModerator {
                key: mod_id.public(),
            },
            t0,
        )?,
        ModAction::create(
            &mod_id,
            community,
            1,
            ModActionKind::Block {
                author: target,
                scope: Scope::Community,
                reason: "r1".into(),
            },
            t0 + 10,
        )?,
        ModAction::create(
            &mod_id,
            community,
            2,
            ModActionKind::Unblock {
                author: target,
                scope: Scope::Community,
            },
            t0 + 20,
        )?,
        ModAction::create(
            &admin_id,
            community,
            2,
            ModActionKind::Block {
                author: target,
                scope: Scope::Topic(topic("t")),
                reason: "r2".into(),
            },
            t0 + 30,
        )?,
        ModAction::create(
            &admin_id,
            community,
            3,
            ModActionKind::RevokeModerator {
                key: mod_id.public(),
                upto_seq: Some(2),
            },
            t0 + 40,
        )?,
        ModAction::create(
            &mod_id,
            community,
            3,
            ModActionKind::Unblock {
                author: target,
                scope: Scope::Topic(topic("t")),
            },
            t0 + 50,
        )?,
    ];
    let a = start(net.admin.clone(), &[]).await?;
    let b = start(m, &[]).await?;
    for act in &actions {
        let _ = a.handle.import(Message::Moderation(act.clone())).await;
    }
    for act in actions.iter().rev() {
        let _ = b.handle.import(Message::Moderation(act.clone())).await;
    }
    // Dropped actions (the unappointed moderator's, seen before the
    // appointment) come back through sync; then both states agree.
    b.handle.dial(&a.addr).await?;
    wait_until(DEADLINE, "the same moderation state", || async {
        let (la, lb) = (a.handle.mod_list().await, b.handle.mod_list().await);
        matches!((la, lb), (Ok(x), Ok(y)) if x == y)
    })
    .await?;
    let list = a.handle.mod_list().await?;
    assert!(list.moderators.is_empty(), "the moderator was revoked");
    assert_eq!(
        list.blocks.len(),
        1,
        "the topic block stands: the unblock came after the revocation"
    );
    assert_eq!(list.blocks[0].reason, "r2");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_moderators_and_plain_members_cannot_block() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let nodes = community(&mut net, 3).await?;
    let victim = nodes[3].key().await?;
    nodes[3].handle.publish(topic("t"), draft("hello")).await?;
    for n in &nodes {
        wait_until(DEADLINE, "post everywhere", || async {
            n.count("t").await == 1
        })
        .await?;
    }
    // A plain member is refused locally...
    let refused = nodes[2]
        .handle
        .moderate(ModActionKind::Block {
            author: victim,
            scope: Scope::Community,
            reason: "x".into(),
        })
        .await;
    assert!(
        refused.is_err(),
        "a plain member's block is refused locally"
    );
    // ...and a block it signs by hand and gossips is rejected by every node.
    let member = nodes[2].data.identity()?;
    let forged = ModAction::create(
        &member,
        net.manifest.id(),
        1,
        ModActionKind::Block {
            author: victim,
            scope: Scope::Community,
            reason: "x".into(),
        },
        node::now_ms(),
    )?;
    nodes[2]
        .handle
        .publish_raw(
            &net.community_topic(),
            Message::Moderation(forged.clone()).encode(),
        )
        .await?;
    assert!(nodes[0]
        .handle
        .import(Message::Moderation(forged))
        .await
        .is_err());
    // Revoke the moderator, then its block must have no effect.
    nodes[0]
        .handle
        .moderate(ModActionKind::RevokeModerator {
            key: nodes[1].key().await?,
            upto_seq: None,
        })
        .await?;
    for n in &nodes {
        wait_until(DEADLINE, "the revocation everywhere", || async {
            n.handle
                .mod_list()
                .await
                .map(|l| l.moderators.is_empty())
                .unwrap_or(false)
        })
        .await?;
    }
    assert!(nodes[1]
        .handle
        .moderate(ModActionKind::Block {
            author: victim,
            scope: Scope::Community,
            reason: "late".into()
        })
        .await
        .is_err());
    // A marker action by the admin proves the community topic still flows.
    let marker = nodes[0].handle.publish(topic("t"), draft("marker")).await?;
    for n in &nodes {
        wait_until(DEADLINE, "marker everywhere", || async {
            n.ids("t").await.contains(&marker.to_string())
        })
        .await?;
        assert!(n.handle.mod_list().await?.blocks.is_empty());
        assert_eq!(n.count("t").await, 2, "the victim's post stands");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retraction_reaches_every_node_including_one_that_was_offline() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let a = start(net.admin.clone(), &[]).await?;
    let b = start(net.member("b")?, &[&a.addr]).await?;
    let c = start(net.member("c")?, &[&a.addr]).await?;
    for n in [&a, &b, &c] {
        n.handle.join(topic("t")).await?;
    }
    let id = b
        .handle
        .publish(topic("t"), draft("I said too much"))
        .await?;
    for n in [&a, &b, &c] {
        wait_until(DEADLINE, "post everywhere", || async {
            n.count("t").await == 1
        })
        .await?;
    }
    let c_dir = c.stop().await;
    // Someone else cannot retract it.
    assert!(a.handle.retract(id).await.is_err());
    b.handle.retract(id).await?;
    for n in [&a, &b] {
        wait_until(DEADLINE, "the body gone", || async {
            n.count("t").await == 0
        })
        .await?;
    }
    let c = start(c_dir, &[&a.addr]).await?;
    wait_until(
        DEADLINE,
        "the offline node deletes it on return",
        || async { c.count("t").await == 0 },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_readable_by_moderators_alone() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let nodes = community(&mut net, 3).await?;
    let post = nodes[3]
        .handle
        .publish(topic("t"), draft("something hurtful"))
        .await?;
    for n in &nodes {
        wait_until(DEADLINE, "post everywhere", || async {
            n.count("t").await == 1
        })
        .await?;
    }
    nodes[2].handle.report(post, "this hurt me".into()).await?;
    for m in &nodes[..2] {
        wait_until(DEADLINE, "the report in the moderators' queues", || async {
            m.handle
                .mod_queue()
                .await
                .map(|q| q.len() == 1)
                .unwrap_or(false)
        })
        .await?;
        let q = m.handle.mod_queue().await?;
        assert_eq!(q[0].reason, "this hurt me");
        assert_eq!(q[0].post, post.to_string());
    }
    // The others relayed and stored it, yet cannot read it.
    for n in &nodes[2..] {
        assert!(n.handle.mod_queue().await?.is_empty());
    }
    // After a restart the moderator still has the report and the
    // appointment, both read back from its stored log; an action of
    // another community slipped into that log is not taken.
    let mut nodes = nodes;
    let moderator = nodes.remove(1);
    let list = moderator.handle.mod_list().await?;
    let dir = moderator.stop().await;
    let elsewhere = TestNet::new()?.manifest.id();
    let foreign = ModAction::create(
        &net.admin.identity()?,
        elsewhere,
        1,
        ModActionKind::Block {
            author: nodes[2].key().await?,
            scope: Scope::Community,
            reason: "another community".into(),
        },
        node::now_ms(),
    )?;
    let store = node::store::Store::open(&dir.store_path(), dir.store_keys()?)?;
    let at = protocol::sync::ItemKey {
        created_at: foreign.content.created_at,
        id: foreign.id().0,
    };
    store.insert_log(at, &Message::Moderation(foreign).encode())?;
    store.close()?;
    let again = start(dir, &[]).await?;
    let q = again.handle.mod_queue().await?;
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].reason, "this hurt me");
    assert_eq!(again.handle.mod_list().await?, list);
    Ok(())
}

/// A retraction by someone other than the author binds nothing, and must
/// not hide the author's own: with a bogus retraction stored beside the
/// real one, a copy of the retracted post is still refused as retracted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bogus_retraction_does_not_mask_the_authors_own() -> anyhow::Result<()> {
    use protocol::post::Post;
    use protocol::{Identity, Retraction};
    let net = TestNet::new()?;
    let a = start(net.admin.clone(), &[]).await?;
    a.handle.join(topic("t")).await?;
    let community = net.manifest.id();
    let author = Identity::generate(None);
    // The stranger's key sorts first among the post's retractions.
    let stranger = loop {
        let s = Identity::generate(None);
        if s.public().as_bytes() < author.public().as_bytes() {
            break s;
        }
    };
    let now = node::now_ms();
    let post = Post::write(
        &author,
        community,
        topic("t"),
        draft("mine to take back"),
        now,
    )?;
    let id = post.id();
    // Arriving before the post, the stranger's retraction cannot be
    // checked against it, so it is kept (a stored post refuses it).
    let bogus = Retraction::create(&stranger.secret, community, id, now + 1);
    a.handle.import(Message::Retraction(bogus)).await?;
    assert!(a.handle.import(Message::Post(post.clone())).await?);
    assert_eq!(a.count("t").await, 1, "a stranger cannot retract it");
    let real = Retraction::create(&author.secret, community, id, now + 2);
    a.handle.import(Message::Retraction(real)).await?;
    assert_eq!(a.count("t").await, 0, "the author's retraction deletes it");
    let again = a.handle.import(Message::Post(post)).await;
    let err = again.expect_err("a retracted post is refused").to_string();
    assert!(err.contains("retracted"), "unexpected refusal: {err}");
    assert_eq!(a.count("t").await, 0);
    Ok(())
}
