//! Issue 18, admission: in an invite-only community only keys admitted by
//! an invitation (and the admin and moderators) get posts stored; every
//! node admits the same keys, whatever order the redemptions arrive in.

use mutual_tests::{
    draft, gossip_until_judged, start, topic, wait_until, TestNet, TestNode, DEADLINE,
};
use node::admission::{queue, AdmissionWork};
use node::GossipVerdict;
use protocol::{CommunityPolicy, Message, SignedInvite};

/// An invite-only community without probation: the admin's first update is
/// queued before its node starts, like `community create` does.
fn invite_only_net() -> anyhow::Result<TestNet> {
    let net = TestNet::new()?;
    let policy = CommunityPolicy {
        probation_posts: 0,
        ..CommunityPolicy::NEW_COMMUNITY
    };
    queue(&net.admin, AdmissionWork::FirstManifest(policy))?;
    Ok(net)
}

/// The admin's node, in topic `t`, once it published the policy.
async fn invite_only_admin(net: &TestNet) -> anyhow::Result<TestNode> {
    let admin = start(net.admin.clone(), &[]).await?;
    admin.handle.join(topic("t")).await?;
    wait_until(
        DEADLINE,
        "the admin's node published the policy",
        || async {
            admin
                .handle
                .community()
                .await
                .is_ok_and(|c| c.admission == "invite-only")
        },
    )
    .await?;
    Ok(admin)
}

/// The admin's node issues an invitation; returns the seed its code holds.
async fn invitation(admin: &TestNode, uses: u32, valid_ms: u64) -> anyhow::Result<[u8; 32]> {
    let issued = admin
        .handle
        .invite_with(uses, valid_ms)
        .await?
        .ok_or_else(|| anyhow::anyhow!("an invite-only community gives an invitation"))?;
    let invite = SignedInvite::decode(&issued.invite, node::now_ms())?.content;
    invite
        .secrets
        .admission
        .ok_or_else(|| anyhow::anyhow!("the code carries no admission"))
}

const WEEK: u64 = 7 * 24 * 3600 * 1000;

/// A newcomer `name` who joined with the invitation of `seed`: their node,
/// started from the admin's and in topic `t`.
async fn newcomer(
    net: &mut TestNet,
    admin: &TestNode,
    name: &str,
    seed: [u8; 32],
) -> anyhow::Result<TestNode> {
    let dir = net.member(name)?;
    queue(&dir, AdmissionWork::Redeem(seed))?;
    let node = start(dir, &[&admin.addr]).await?;
    node.handle.join(topic("t")).await?;
    Ok(node)
}

/// The keys the log shows admitted by a redemption.
fn admitted(list: &node::api::ModListView) -> Vec<String> {
    list.log
        .iter()
        .filter(|e| e.action.starts_with("joined with invitation"))
        .map(|e| e.by.key.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admitted_keys_get_posts_stored_and_a_one_use_invitation_admits_one(
) -> anyhow::Result<()> {
    let mut net = invite_only_net()?;
    let admin = invite_only_admin(&net).await?;
    // Two newcomers race for one use; a third never had an invitation.
    let seed = invitation(&admin, 1, WEEK).await?;
    let (a, b) = (net.member("a")?, net.member("b")?);
    queue(&a, AdmissionWork::Redeem(seed))?;
    queue(&b, AdmissionWork::Redeem(seed))?;
    let stranger_dir = net.member("stranger")?;
    let a = start(a, &[&admin.addr]).await?;
    let b = start(b, &[&admin.addr]).await?;
    let stranger = start(stranger_dir, &[&admin.addr]).await?;
    for n in [&a, &b, &stranger] {
        n.handle.join(topic("t")).await?;
    }
    let nodes = [&admin, &a, &b, &stranger];
    // Every node admits the same one of the two.
    let (ka, kb) = (a.key().await?, b.key().await?);
    wait_until(DEADLINE, "both redemptions reached the admin", || async {
        admin.handle.redemptions_held().await == 2
    })
    .await?;
    let winner = admitted(&admin.handle.mod_list().await?);
    assert_eq!(winner.len(), 1, "one use admits one");
    let winner = winner[0].clone();
    for n in nodes {
        wait_until(DEADLINE, "every node admits the same one", || async {
            n.handle
                .mod_list()
                .await
                .is_ok_and(|l| admitted(&l) == vec![winner.clone()])
        })
        .await?;
    }
    let (member, loser) = if winner == ka.to_string() {
        (&a, &b)
    } else {
        assert_eq!(winner, kb.to_string());
        (&b, &a)
    };
    // The admitted newcomer's post reaches everyone.
    let hello = member.handle.publish(topic("t"), draft("hello")).await?;
    for n in nodes {
        wait_until(DEADLINE, "the newcomer's post everywhere", || async {
            n.ids("t").await.contains(&hello.to_string())
        })
        .await?;
    }
    // The loser's and the stranger's own nodes refuse to post for them,
    // saying why.
    for (n, why) in [
        (loser, "used up"),
        (&stranger, "joined without an invitation"),
    ] {
        let refused = n.handle.publish(topic("t"), draft("let me in")).await;
        assert!(
            matches!(&refused, Err(e) if e.to_string().contains(why)),
            "a non-member's own node refuses: {refused:?}"
        );
    }
    // A modified client gossips anyway: the admin's node judges it and
    // ignores it (no penalty), and it is stored nowhere.
    let gossip_topic = net.gossip_topic(&topic("t"));
    let identity = stranger.data.identity()?;
    let mut events = admin.handle.subscribe();
    let mut forced = Vec::new();
    let judged = gossip_until_judged(
        &stranger,
        &gossip_topic,
        &mut events,
        &mut Vec::new(),
        |i| {
            let p = protocol::Post::write(
                &identity,
                net.manifest.id(),
                topic("t"),
                draft(&format!("spam {i}")),
                node::now_ms(),
            )?;
            forced.push(p.id().to_string());
            Ok(Message::Post(p).encode())
        },
    )
    .await?;
    assert_eq!(judged.verdict, GossipVerdict::Ignore);
    // Proof that later gossip was processed: a member's post after it.
    let after = member.handle.publish(topic("t"), draft("after")).await?;
    for n in &nodes[..3] {
        wait_until(DEADLINE, "a member's later post everywhere", || async {
            n.ids("t").await.contains(&after.to_string())
        })
        .await?;
        let ids = n.ids("t").await;
        assert!(
            forced.iter().all(|f| !ids.contains(f)),
            "a stranger's post stored"
        );
        assert_eq!(n.count("t").await, 2);
    }
    for n in [admin, a, b, stranger] {
        n.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockdown_stops_a_redemption_and_lifting_lets_the_next_in_and_revoked_admits_nobody(
) -> anyhow::Result<()> {
    let mut net = invite_only_net()?;
    let admin = invite_only_admin(&net).await?;
    let seed = invitation(&admin, 5, WEEK).await?;
    let revoked_seed = invitation(&admin, 5, WEEK).await?;
    let revoked_key = protocol::SecretKey::from_bytes(&revoked_seed).public();
    admin.handle.revoke_invitation(&revoked_key.short()).await?;
    admin
        .handle
        .moderate(protocol::ModActionKind::Lockdown {
            scope: protocol::Scope::Community,
            hold_recent_days: None,
            reason: "a raid".into(),
        })
        .await?;
    let locked = net.member("locked")?;
    queue(&locked, AdmissionWork::Redeem(seed))?;
    let late = net.member("revoked")?;
    queue(&late, AdmissionWork::Redeem(revoked_seed))?;
    let locked = start(locked, &[&admin.addr]).await?;
    let late = start(late, &[&admin.addr]).await?;
    // Proof both redemptions were processed: the admin's node holds them
    // (pending) and the log shows the lockdown to everyone.
    wait_until(DEADLINE, "the redemptions reached the admin", || async {
        admin.handle.redemptions_held().await == 2
    })
    .await?;
    let list = admin.handle.mod_list().await?;
    assert_eq!(admitted(&list).len(), 0, "nobody admitted");
    assert_eq!(list.lockdowns.len(), 1);
    assert_eq!(list.lockdowns[0].reason, "a raid");
    for (n, why) in [(&locked, "a lockdown"), (&late, "withdrawn")] {
        n.handle.join(topic("t")).await?;
        wait_until(
            DEADLINE,
            "the lockdown and the withdrawal known",
            || async {
                n.handle.mod_list().await.is_ok_and(|l| {
                    l.lockdowns.len() == 1
                        && l.log
                            .iter()
                            .any(|e| e.action.starts_with("withdrew invitation"))
                })
            },
        )
        .await?;
        let refused = n.handle.publish(topic("t"), draft("hi")).await;
        assert!(
            matches!(&refused, Err(e) if e.to_string().contains(why)),
            "not admitted: {refused:?}"
        );
    }
    // Lifted: the next redemption counts (the one made during the
    // lockdown stays void).
    admin
        .handle
        .moderate(protocol::ModActionKind::LiftLockdown {
            scope: protocol::Scope::Community,
        })
        .await?;
    let next = newcomer(&mut net, &admin, "next", seed).await?;
    wait_until(DEADLINE, "the next one admitted", || async {
        admin
            .handle
            .mod_list()
            .await
            .is_ok_and(|l| admitted(&l).len() == 1)
    })
    .await?;
    wait_until(DEADLINE, "the new member's own node knows it", || async {
        next.handle
            .publish(topic("t"), draft("hello"))
            .await
            .is_ok()
    })
    .await?;
    wait_until(DEADLINE, "its post reaches the admin", || async {
        admin.count("t").await == 1
    })
    .await?;
    for n in [admin, locked, late, next] {
        n.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_update_reaches_a_node_that_was_offline_and_an_older_one_replayed_changes_nothing(
) -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let admin = start(net.admin.clone(), &[]).await?;
    let m = start(net.member("m")?, &[&admin.addr]).await?;
    let kind = |version: u64, rules: &str| protocol::ModActionKind::UpdateManifest {
        version,
        rules: rules.into(),
        policy: CommunityPolicy::LEGACY,
    };
    admin.handle.moderate(kind(1, "first rules")).await?;
    wait_until(DEADLINE, "the member has version 1", || async {
        m.handle
            .community()
            .await
            .is_ok_and(|c| c.rules == "first rules")
    })
    .await?;
    let offline = m.stop().await;
    admin.handle.moderate(kind(2, "second rules")).await?;
    let m = start(offline, &[&admin.addr]).await?;
    wait_until(
        DEADLINE,
        "the update reaches the node that was offline",
        || async {
            m.handle
                .community()
                .await
                .is_ok_and(|c| c.rules == "second rules" && c.rules_version == Some(2))
        },
    )
    .await?;
    // Version 1 again, signed later by the admin: replayed, it is taken
    // into the log but changes nothing.
    let replay = protocol::ModAction::create(
        &net.admin.identity()?,
        net.manifest.id(),
        u64::MAX / 2,
        kind(1, "first rules"),
        node::now_ms(),
    )?;
    assert!(m.handle.import(Message::Moderation(replay)).await?);
    let c = m.handle.community().await?;
    assert_eq!(
        (c.rules.as_str(), c.rules_version),
        ("second rules", Some(2))
    );
    for n in [admin, m] {
        n.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_invitation_admits_nobody_and_a_blocked_members_new_key_is_refused(
) -> anyhow::Result<()> {
    let mut net = invite_only_net()?;
    let admin = invite_only_admin(&net).await?;
    let witness_seed = invitation(&admin, 1, WEEK).await?;
    let troll_seed = invitation(&admin, 1, WEEK).await?;
    // Valid for 1 ms, and redeemed after that (the redemption is signed
    // when the newcomer's node starts, once the expiry has passed).
    let expiring_seed = invitation(&admin, 5, 1).await?;
    let issued = node::now_ms();
    wait_until(DEADLINE, "the invitation expired", || async {
        node::now_ms() > issued + 1
    })
    .await?;
    let expiring_key = protocol::SecretKey::from_bytes(&expiring_seed).public();
    let dirs = [
        ("witness", witness_seed),
        ("troll", troll_seed),
        ("late", expiring_seed),
    ];
    let mut nodes = Vec::new();
    for (name, seed) in dirs {
        nodes.push(newcomer(&mut net, &admin, name, seed).await?);
    }
    let [witness, troll, late] =
        <[TestNode; 3]>::try_from(nodes).map_err(|_| anyhow::anyhow!("three nodes"))?;
    wait_until(
        DEADLINE,
        "the three redemptions reached the admin",
        || async { admin.handle.redemptions_held().await == 3 },
    )
    .await?;
    let mut expected = vec![
        witness.key().await?.to_string(),
        troll.key().await?.to_string(),
    ];
    expected.sort();
    for n in [&admin, &witness, &troll, &late] {
        wait_until(DEADLINE, "the same two admitted everywhere", || async {
            n.handle.mod_list().await.is_ok_and(|l| {
                let mut keys = admitted(&l);
                keys.sort();
                keys == expected
            })
        })
        .await?;
    }
    // The late newcomer's node knows the invitation (so it no longer
    // waits for it) and refuses to post for them.
    let issued_line = format!("issued invitation {}", expiring_key.short());
    wait_until(DEADLINE, "the late node knows the invitation", || async {
        late.handle
            .mod_list()
            .await
            .is_ok_and(|l| l.log.iter().any(|e| e.action == issued_line))
    })
    .await?;
    let refused = late.handle.publish(topic("t"), draft("am I in?")).await;
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("had expired")),
        "an expired invitation admits nobody: {refused:?}"
    );

    // The troll posts, and is blocked community-wide: the post goes from
    // every node and the membership ends.
    let insult = troll.handle.publish(topic("t"), draft("insult")).await?;
    for n in [&admin, &witness] {
        wait_until(DEADLINE, "the troll's post arrived", || async {
            n.ids("t").await.contains(&insult.to_string())
        })
        .await?;
    }
    let troll_key = troll.key().await?;
    admin
        .handle
        .moderate(protocol::ModActionKind::Block {
            author: troll_key,
            scope: protocol::Scope::Community,
            reason: "abuse".into(),
        })
        .await?;
    for n in [&admin, &witness] {
        wait_until(DEADLINE, "the block enforced", || async {
            n.handle.mod_list().await.is_ok_and(|l| l.blocks.len() == 1)
                && !n.ids("t").await.contains(&insult.to_string())
        })
        .await?;
    }
    // The troll comes back with a new key and the used-up code: its
    // redemption is processed (held by the admin) and admits nobody, and
    // a post signed with the new key is refused by every node.
    let comeback = newcomer(&mut net, &admin, "comeback", troll_seed).await?;
    wait_until(
        DEADLINE,
        "the comeback's redemption reached the admin",
        || async { admin.handle.redemptions_held().await == 4 },
    )
    .await?;
    assert_eq!(admitted(&admin.handle.mod_list().await?).len(), 2);
    let post = protocol::Post::write(
        &comeback.data.identity()?,
        net.manifest.id(),
        topic("t"),
        draft("I'm back"),
        node::now_ms(),
    )?;
    for n in [&admin, &witness] {
        let verdict = n.handle.import(Message::Post(post.clone())).await;
        assert!(
            matches!(&verdict, Err(e) if e.to_string().contains("not a member")),
            "{verdict:?}"
        );
        assert!(!n.ids("t").await.contains(&post.id().to_string()));
    }
    for n in [admin, witness, troll, late, comeback] {
        n.stop().await;
    }
    Ok(())
}
