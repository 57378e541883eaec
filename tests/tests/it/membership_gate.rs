//! Issue 18, "non-members get nothing": a node of another community, and a
//! node with a forged membership (the community's id and manifest, a wrong
//! secret), dial every member of a community. They learn no topic name
//! (neither from gossipsub subscriptions nor from DHT keys), get no log
//! item and no post (their sync requests are refused) and their
//! connections are closed. Each negative check runs after proof that the
//! members processed traffic (and served it to each other).

use std::collections::HashSet;

use mutual_tests::{
    appoint, draft, start, start_with, topic, wait_until, TestNet, TestNode, DEADLINE,
};
use node::{DataDir, NodeConfig, NodeEvent};
use protocol::sync::{Bound, QueryMode, RangeQuery, SyncRequest, SyncResponse, SyncScope};
use protocol::{wire, CommunitySecret, TopicName};
use tokio::sync::broadcast;

/// The topics the members join: names a stranger must not learn.
const TOPICS: [&str; 2] = ["harassment", "bipolar"];

/// A request for every item of `scope` (what a stranger would ask).
fn everything(scope: SyncScope) -> Vec<u8> {
    wire::encode_versioned(&SyncRequest {
        scope,
        round: 0,
        ranges: vec![RangeQuery {
            upper: Bound {
                ts: 0,
                prefix: Vec::new(),
            },
            mode: QueryMode::Have(Vec::new()),
        }],
        want: Vec::new(),
    })
}

/// Items in a raw sync answer (an undecodable answer holds none).
fn items_in(answer: &[u8]) -> usize {
    wire::decode_versioned::<SyncResponse>(answer, protocol::wire::MAX_SYNC_FRAME_BYTES)
        .map(|r| r.items.len())
        .unwrap_or(0)
}

async fn peer_id(node: &TestNode) -> anyhow::Result<String> {
    Ok(node.handle.id().await?.peer_id)
}

/// A community of two members, A (the admin) and B, with posts in both
/// topics, a moderator appointment and a report in the log, and proof that
/// each member holds the other's items and serves them to a member.
async fn community(net: &mut TestNet) -> anyhow::Result<(TestNode, TestNode)> {
    let a = start(net.admin.clone(), &[]).await?;
    let b = start(net.member("b")?, &[&a.addr]).await?;
    for n in [&a, &b] {
        for t in TOPICS {
            n.handle.join(topic(t)).await?;
        }
    }
    let post = a
        .handle
        .publish(topic("harassment"), draft("someone keeps messaging me"))
        .await?;
    b.handle
        .publish(topic("bipolar"), draft("a hard week"))
        .await?;
    wait_until(DEADLINE, "B holds A's post", || async {
        b.ids("harassment").await.contains(&post.to_string())
    })
    .await?;
    wait_until(DEADLINE, "A holds B's post", || async {
        a.count("bipolar").await == 1
    })
    .await?;
    let nodes = vec![a, b];
    appoint(&nodes, 1).await?;
    nodes[1]
        .handle
        .report(post, "the post names someone".into())
        .await?;
    let mut nodes = nodes.into_iter();
    let (Some(a), Some(b)) = (nodes.next(), nodes.next()) else {
        anyhow::bail!("two nodes were started");
    };
    // A member asking what a stranger will ask is served: the log (the
    // appointment and the report) and the posts.
    let a_peer = peer_id(&a).await?;
    wait_until(DEADLINE, "A serving B the log with the report", || async {
        b.handle
            .sync_raw(&a_peer, everything(SyncScope::CommunityLog))
            .await
            .is_ok_and(|answer| items_in(&answer) >= 2)
    })
    .await?;
    let answer = b
        .handle
        .sync_raw(&a_peer, everything(SyncScope::Topic(topic("harassment"))))
        .await?;
    assert_eq!(items_in(&answer), 1, "A serves its post to a member");
    Ok((a, b))
}

/// Everything `events` showed of the gossipsub topics peers subscribed to.
fn subscriptions_seen(events: &mut broadcast::Receiver<NodeEvent>) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let NodeEvent::PeerSubscribed { topic, .. } = event {
            seen.push(topic);
        }
    }
    seen
}

/// The strings a non-member could recognise a topic by if they leaked:
/// its name, the unkeyed topic strings of earlier versions, and the keyed
/// ones under a wrong secret (what a forger with the id would test).
fn recognisable(net: &TestNet, wrong: &CommunitySecret) -> Vec<String> {
    let id = net.manifest.id();
    let mut out = vec![id.to_string(), format!("/mutual/1/{id}")];
    for t in TOPICS {
        let name = topic(t);
        out.push(t.to_string());
        out.push(wrong.topic_gossip_topic(&id, &name));
    }
    out.push(wrong.community_gossip_topic(&id));
    out
}

/// The DHT keys an earlier version announced topics under (an unkeyed
/// hash anyone could compute from the id and a guessed name), and those a
/// wrong secret gives.
fn guessable_keys(net: &TestNet, wrong: &CommunitySecret, t: &TopicName) -> Vec<Vec<u8>> {
    let id = net.manifest.id();
    vec![
        blake3::hash(format!("/mutual/1/{id}/t/{t}").as_bytes())
            .as_bytes()
            .to_vec(),
        wrong.provider_key(&id, t).to_vec(),
    ]
}

/// Has `stranger` dial every member and ask each for the community log
/// and a topic by name, and checks that it got nothing, learnt no name and
/// was disconnected (and that the member said why).
async fn stranger_gets_nothing(
    net: &TestNet,
    members: &[&TestNode],
    stranger: TestNode,
    wrong: &CommunitySecret,
) -> anyhow::Result<()> {
    // The stranger uses the same names in its own community.
    for t in TOPICS {
        stranger.handle.join(topic(t)).await?;
    }
    let stranger_peer = peer_id(&stranger).await?;
    let mut stranger_events = stranger.handle.subscribe();
    for member in members {
        let member_peer = peer_id(member).await?;
        let mut member_events = member.handle.subscribe();
        stranger.handle.connect(&member.addr).await?;
        for scope in [
            SyncScope::CommunityLog,
            SyncScope::Topic(topic("harassment")),
        ] {
            let answer = stranger
                .handle
                .sync_raw(&member_peer, everything(scope.clone()))
                .await;
            assert!(
                answer.is_err(),
                "a non-member's sync request for {scope:?} was answered ({} items)",
                answer.map(|a| items_in(&a)).unwrap_or(0)
            );
        }
        // The member closes the connection and says so.
        mutual_tests::next_event(
            &mut member_events,
            DEADLINE,
            "the member refusing the stranger",
            &mut Vec::new(),
            |e| match e {
                NodeEvent::PeerRefused { peer } if *peer == stranger_peer => Some(()),
                _ => None,
            },
        )
        .await?;
        wait_until(DEADLINE, "the connection closed on both sides", || async {
            let theirs = stranger.handle.peers().await.unwrap_or_default();
            let ours = member.handle.peers().await.unwrap_or_default();
            !theirs.iter().any(|p| p.peer_id == member_peer)
                && !ours.iter().any(|p| p.peer_id == stranger_peer)
        })
        .await?;
    }
    // Nothing of the community reached the stranger's store.
    for t in TOPICS {
        assert_eq!(stranger.count(t).await, 0, "posts of {t} leaked");
    }
    let list = stranger.handle.mod_list().await?;
    assert!(list.moderators.is_empty(), "the log leaked: {list:?}");
    assert!(stranger.handle.mod_queue().await?.is_empty());
    // No name, no recognisable topic string among the subscriptions it saw.
    for s in subscriptions_seen(&mut stranger_events) {
        for bad in recognisable(net, wrong) {
            assert!(
                !s.contains(&bad),
                "the stranger saw {s:?}, which names {bad:?}"
            );
        }
    }
    stranger.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_community_and_a_forged_member_get_nothing() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let (a, b) = community(&mut net).await?;
    let members = [&a, &b];

    // The members' DHT announcements are keyed: no DHT server can test a
    // name against them.
    let wrong = CommunitySecret::from_bytes([0x5a; 32]);
    for m in members {
        let keys: HashSet<Vec<u8>> = m.handle.dht_keys().await?.into_iter().collect();
        for t in TOPICS {
            let t = topic(t);
            let keyed = net.secret.provider_key(&net.manifest.id(), &t).to_vec();
            assert!(
                keys.contains(&keyed),
                "{t} is announced under its keyed key"
            );
            for guess in guessable_keys(&net, &wrong, &t) {
                assert!(
                    !keys.contains(&guess),
                    "{t} is announced under a guessable key"
                );
            }
        }
    }

    // (1) A node of another community, which does not even try to prove
    // membership: the gate alone refuses its sync requests until the
    // deadline closes the connection.
    let outsider = TestNet::new()?;
    let mut config = NodeConfig::local(outsider.admin.clone());
    config.withhold_membership_proof = true;
    config.ignore_membership_proofs = true;
    let stranger = start_with(config).await?;
    stranger_gets_nothing(&net, &members, stranger, &outsider.secret).await?;

    // (2) A forged membership: the same manifest, a wrong secret; its
    // proof is refused at once. (Both strangers ignore the members'
    // proofs, as a hostile node would, so that it is the members' gate
    // that closes each connection.)
    let forger = DataDir::new(net.root.path().join("forger"));
    forger.init(Some("forger".into()))?;
    forger.join_community(&net.manifest, &wrong, &[], node::now_ms())?;
    let mut config = NodeConfig::local(forger);
    config.ignore_membership_proofs = true;
    let stranger = start_with(config).await?;
    stranger_gets_nothing(&net, &members, stranger, &wrong).await?;

    // The members still talk to each other.
    let later = b
        .handle
        .publish(topic("harassment"), draft("still here"))
        .await?;
    wait_until(DEADLINE, "A holds B's later post", || async {
        a.ids("harassment").await.contains(&later.to_string())
    })
    .await?;
    Ok(())
}
