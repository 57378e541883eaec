//! Issue 5: late joiners and offline peers get every post they missed,
//! through range-based reconciliation, with the moderation log first.

use mutual_tests::{start, start_bulk, topic, wait_until, TestNet, DEADLINE};
use node::api::PostView;
use node::NodeEvent;
use protocol::moderation::{ModActionKind, Scope};
use protocol::post::Draft;
use std::time::Duration;

fn draft(body: String) -> Draft {
    Draft {
        body,
        ..Draft::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_node_catches_up_on_a_thousand_posts() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let a = start_bulk(net.admin.clone(), &[]).await?;
    let b = start_bulk(net.member("b")?, &[&a.addr]).await?;
    let c = start_bulk(net.member("c")?, &[&a.addr]).await?;
    let late_dir = net.member("late")?;
    // The late node joins the topic once, then goes offline.
    let late = start_bulk(late_dir, &[&a.addr]).await?;
    late.handle.join(topic("burnout")).await?;
    let late_dir = late.stop().await;
    for n in [&a, &b, &c] {
        n.handle.join(topic("burnout")).await?;
    }
    let publishers = [&a, &b, &c];
    for i in 0..1000 {
        publishers[i % 3]
            .handle
            .publish(topic("burnout"), draft(format!("post {i}")))
            .await?;
    }
    for n in [&a, &b, &c] {
        wait_until(
            Duration::from_secs(60),
            "the three online nodes agree",
            || async { n.count("burnout").await == 1000 },
        )
        .await?;
    }
    let late = start_bulk(late_dir, &[&b.addr]).await?;
    wait_until(
        Duration::from_secs(60),
        "the late node has all 1000",
        || async { late.count("burnout").await == 1000 },
    )
    .await?;
    assert_eq!(late.ids("burnout").await, a.ids("burnout").await);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_with_disjoint_halves_end_with_the_union() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let a = start_bulk(net.admin.clone(), &[]).await?;
    let b = start_bulk(net.member("b")?, &[]).await?;
    a.handle.join(topic("t")).await?;
    b.handle.join(topic("t")).await?;
    for i in 0..500 {
        a.handle
            .publish(topic("t"), draft(format!("a {i}")))
            .await?;
        b.handle
            .publish(topic("t"), draft(format!("b {i}")))
            .await?;
    }
    assert_eq!(a.count("t").await, 500);
    b.handle.dial(&a.addr).await?;
    for n in [&a, &b] {
        wait_until(DEADLINE, "both hold the union", || async {
            n.count("t").await == 1000
        })
        .await?;
    }
    assert_eq!(a.ids("t").await, b.ids("t").await);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_topic_brings_its_whole_history() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let a = start_bulk(net.admin.clone(), &[]).await?;
    a.handle.join(topic("history")).await?;
    // A year of history: posts signed with times spread over the last year.
    let identity = net.admin.identity()?;
    let community = net.manifest.id();
    let now = node::now_ms();
    let year = 365 * 24 * 3600 * 1000u64;
    let mut expected = Vec::new();
    for i in 0..200u64 {
        let at = now - year + i * (year / 200);
        let post = protocol::Post::write(
            &identity,
            community,
            topic("history"),
            draft(format!("day {i}")),
            at,
        )?;
        expected.push(post.id().to_string());
        a.handle.import(protocol::Message::Post(post)).await?;
    }
    expected.sort();
    let b = start_bulk(net.member("b")?, &[&a.addr]).await?;
    b.handle.join(topic("history")).await?;
    wait_until(DEADLINE, "the joiner has the year", || async {
        b.count("history").await == 200
    })
    .await?;
    assert_eq!(b.ids("history").await, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agreeing_nodes_reconcile_in_few_round_trips_and_send_no_post() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let a = start_bulk(net.admin.clone(), &[]).await?;
    a.handle.join(topic("big")).await?;
    let identity = net.admin.identity()?;
    let community = net.manifest.id();
    let now = node::now_ms();
    let mut posts = Vec::new();
    for i in 0..10_000u64 {
        posts.push(protocol::Message::Post(protocol::Post::write(
            &identity,
            community,
            topic("big"),
            draft(format!("p{i}")),
            now - 10_000_000 + i * 1000,
        )?));
    }
    a.handle.import_many(posts.clone()).await?;
    let b_dir = net.member("b")?;
    let b = start_bulk(b_dir, &[]).await?;
    b.handle.join(topic("big")).await?;
    b.handle.import_many(posts).await?;
    let (rt0, sent0, recv0) = b.handle.sync_counters().await?;
    b.handle.dial(&a.addr).await?;
    wait_until(DEADLINE, "a sync round to complete", || async {
        b.handle
            .status()
            .await
            .map(|s| s.sync.completed_sessions >= 2)
            .unwrap_or(false)
    })
    .await?;
    let (rt, sent, recv) = b.handle.sync_counters().await?;
    let status = b.handle.status().await?;
    assert_eq!(status.sync.received, 0, "no post was transferred");
    assert_eq!(b.count("big").await, 10_000);
    // Two sessions (community log, topic), each a single round trip.
    assert!(rt - rt0 <= 4, "round trips: {}", rt - rt0);
    assert!(
        (sent - sent0) + (recv - recv0) < 4096,
        "bytes: {}",
        (sent - sent0) + (recv - recv0)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_taken_while_offline_arrives_first_and_the_posts_never_do() -> anyhow::Result<()> {
    use protocol::{Message, Post};
    let mut net = TestNet::new()?;
    let admin = start(net.admin.clone(), &[]).await?;
    let away = start(net.member("away")?, &[&admin.addr]).await?;
    for n in [&admin, &away] {
        n.handle.join(topic("t")).await?;
    }
    let away_dir = away.stop().await;
    // While one member is away, a troll posts 20 times…
    let troll = net.member("troll")?.identity()?;
    let mut troll_posts = std::collections::BTreeMap::new();
    for i in 0..20 {
        let p = Post::write(
            &troll,
            net.manifest.id(),
            topic("t"),
            draft(format!("nasty {i}")),
            node::now_ms(),
        )?;
        let key = protocol::sync::ItemKey {
            created_at: p.content.created_at,
            id: p.id().0,
        };
        let bytes = Message::Post(p.clone()).encode();
        assert!(admin.handle.import(Message::Post(p)).await?, "stored");
        troll_posts.insert(key, bytes);
    }
    admin
        .handle
        .publish(topic("t"), draft("welcome".into()))
        .await?;
    // …and is blocked.
    admin
        .handle
        .moderate(ModActionKind::Block {
            author: troll.public(),
            scope: Scope::Community,
            reason: "harassment".into(),
        })
        .await?;
    wait_until(DEADLINE, "admin deleted the posts", || async {
        admin.count("t").await == 1
    })
    .await?;
    // The troll's own modified node never applies the block: it serves all
    // 20 posts to whoever syncs topic t with it.
    let troll_node =
        hostile_sync::start(topic("t"), troll_posts, &net.secret, net.manifest.id()).await?;
    // The returning member meets the admin first and learns of the block…
    let away = start(away_dir, &[&admin.addr]).await?;
    let mut events = away.handle.subscribe();
    wait_until(DEADLINE, "the block reaches the returning node", || async {
        away.handle
            .mod_list()
            .await
            .map(|l| l.blocks.len() == 1)
            .unwrap_or(false)
    })
    .await?;
    // …then the troll's node. Joining again queues a sync of t with every
    // connected peer (after the community log, one session at a time).
    away.handle.connect(&troll_node.addr).await?;
    // Sync with a peer starts once it proved membership: the session of
    // the community log says it did.
    let mut seen = Vec::new();
    mutual_tests::next_event(
        &mut events,
        DEADLINE,
        "a sync session with the troll's node",
        &mut seen,
        |e| match e {
            NodeEvent::SyncDone { peer, .. } if *peer == troll_node.peer_id => Some(()),
            _ => None,
        },
    )
    .await?;
    away.handle.join(topic("t")).await?;
    // Proof it was processed: the troll's node served its posts, and then
    // no session is running any more (the one that received them ended).
    wait_until(
        DEADLINE,
        "the posts offered and the sessions ended",
        || async {
            let offered = troll_node.served() >= 20;
            let idle = away
                .handle
                .status()
                .await
                .is_ok_and(|s| s.sync.active_sessions == 0);
            offered && idle
        },
    )
    .await?;
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let sessions = seen
        .iter()
        .filter(|e| matches!(e, NodeEvent::SyncDone { peer, .. } if *peer == troll_node.peer_id))
        .count();
    assert!(
        sessions >= 2,
        "sessions with the troll's node: the community log and t ({sessions})"
    );
    let author = troll.public().to_string();
    let stored: Vec<&PostView> = seen
        .iter()
        .filter_map(|e| match e {
            NodeEvent::PostStored(p) if p.author == author => Some(&**p),
            _ => None,
        })
        .collect();
    assert!(
        stored.is_empty(),
        "posts of the blocked author were stored: {stored:?}"
    );
    assert_eq!(away.count("t").await, 1, "only the welcome post");
    Ok(())
}

/// A peer that proves membership (it holds the community secret) and
/// answers `/mutual/sync/1` requests from a fixed set of items, applying
/// no rule: a member's modified node, as a hostile test needs.
mod hostile_sync {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use libp2p::futures::StreamExt;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
    use libp2p::StreamProtocol;
    use protocol::sync::{ItemKey, SyncRequest, SyncScope};
    use protocol::wire::{self, MAX_SYNC_FRAME_BYTES};
    use protocol::{CommunityId, CommunitySecret, TopicName};

    #[derive(NetworkBehaviour)]
    struct Hostile {
        sync: request_response::Behaviour<Frames>,
        member: request_response::Behaviour<Frames>,
    }

    /// The running peer; stops when dropped.
    pub(crate) struct SyncPeer {
        /// A dialable address with `/p2p/<peer id>`.
        pub(crate) addr: String,
        /// Its peer id.
        pub(crate) peer_id: String,
        served: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl SyncPeer {
        /// Items of the topic sent so far.
        pub(crate) fn served(&self) -> usize {
            self.served.load(Ordering::SeqCst)
        }
    }

    impl Drop for SyncPeer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// Listens on 127.0.0.1; serves `items` for `topic`, nothing else.
    pub(crate) async fn start(
        topic: TopicName,
        items: BTreeMap<ItemKey, Vec<u8>>,
        secret: &CommunitySecret,
        community: CommunityId,
    ) -> anyhow::Result<SyncPeer> {
        let secret = secret.clone();
        let rr = |name: &'static str| {
            request_response::Behaviour::with_codec(
                Frames,
                [(StreamProtocol::new(name), ProtocolSupport::Full)],
                request_response::Config::default(),
            )
        };
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )?
            .with_behaviour(|_| Hostile {
                sync: rr("/mutual/sync/1"),
                member: rr("/mutual/member/1"),
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let peer_id = swarm.local_peer_id().to_string();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        let task = tokio::spawn(async move {
            let none = BTreeMap::new();
            let me = swarm.local_peer_id().to_bytes();
            loop {
                let (request, channel) = match swarm.select_next_some().await {
                    // Proves membership to every peer and accepts theirs.
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                        let proof = secret.membership_proof(&community, &me, &peer_id.to_bytes());
                        swarm
                            .behaviour_mut()
                            .member
                            .send_request(&peer_id, proof.to_vec());
                        continue;
                    }
                    SwarmEvent::Behaviour(HostileEvent::Member(
                        request_response::Event::Message {
                            message: request_response::Message::Request { channel, .. },
                            ..
                        },
                    )) => {
                        let _ = swarm.behaviour_mut().member.send_response(channel, vec![1]);
                        continue;
                    }
                    SwarmEvent::Behaviour(HostileEvent::Sync(
                        request_response::Event::Message {
                            message:
                                request_response::Message::Request {
                                    request, channel, ..
                                },
                            ..
                        },
                    )) => (request, channel),
                    _ => continue,
                };
                let Ok(request) =
                    wire::decode_versioned::<SyncRequest>(&request, MAX_SYNC_FRAME_BYTES)
                else {
                    continue;
                };
                let set = match &request.scope {
                    SyncScope::Topic(t) if *t == topic => &items,
                    _ => &none,
                };
                let response = protocol::sync::respond(&request, set, set);
                if set.len() == items.len() {
                    count.fetch_add(response.items.len(), Ordering::SeqCst);
                }
                let _ = swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, wire::encode_versioned(&response));
            }
        });
        Ok(SyncPeer {
            addr: format!("{addr}/p2p/{peer_id}"),
            peer_id,
            served,
            task,
        })
    }

    /// The node's own framing of `/mutual/sync/1`.
    use node::FrameCodec as Frames;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_with_forget_deletes_the_topic_here_and_joining_again_syncs_it_back(
) -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let a = start_bulk(net.admin.clone(), &[]).await?;
    let b = start_bulk(net.member("b")?, &[&a.addr]).await?;
    for n in [&a, &b] {
        n.handle.join(topic("gone")).await?;
        n.handle.join(topic("kept")).await?;
    }
    for i in 0..20 {
        for t in ["gone", "kept"] {
            a.handle
                .publish(topic(t), draft(format!("{t} {i}")))
                .await?;
        }
    }
    wait_until(DEADLINE, "b holds both topics", || async {
        b.count("gone").await == 20 && b.count("kept").await == 20
    })
    .await?;
    let expected = a.ids("gone").await;
    assert_eq!(b.ids("gone").await, expected);

    let forgotten = b.handle.leave_and_forget(topic("gone")).await?;
    assert_eq!((forgotten.posts, forgotten.tombstones), (20, 0));
    assert!(b.ids("gone").await.is_empty(), "the topic's posts are gone");
    assert_eq!(b.ids("kept").await.len(), 20, "the other topic is intact");
    assert_eq!(
        b.handle
            .topics()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect::<Vec<_>>(),
        ["kept"]
    );

    b.handle.join(topic("gone")).await?;
    wait_until(DEADLINE, "joining again syncs the topic back", || async {
        b.count("gone").await == 20
    })
    .await?;
    assert_eq!(b.ids("gone").await, expected);
    Ok(())
}
