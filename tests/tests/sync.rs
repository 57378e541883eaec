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
    let mut net = TestNet::new()?;
    let admin = start(net.admin.clone(), &[]).await?;
    let troll_dir = net.member("troll")?;
    let troll = start(troll_dir, &[&admin.addr]).await?;
    let away_dir = net.member("away")?;
    let away = start(away_dir, &[&admin.addr]).await?;
    for n in [&admin, &troll, &away] {
        n.handle.join(topic("t")).await?;
    }
    let away_peer = away.handle.id().await?.peer_id;
    let away_dir = away.stop().await;
    for i in 0..20 {
        troll
            .handle
            .publish(topic("t"), draft(format!("nasty {i}")))
            .await?;
    }
    let troll_id = troll.handle.id().await?;
    let troll_key: protocol::PublicKey = troll_id.author.parse()?;
    admin
        .handle
        .publish(topic("t"), draft("welcome".into()))
        .await?;
    wait_until(DEADLINE, "admin has the troll's posts", || async {
        admin.count("t").await == 21
    })
    .await?;
    // The troll's node never hears of the block (as a modified client
    // would not): it keeps its posts and serves them to whoever syncs. It
    // lets the returning node in only when the test says so.
    let admin_peer = admin.handle.id().await?.peer_id;
    troll.handle.cut_off(&admin_peer, true).await?;
    admin.handle.cut_off(&troll_id.peer_id, true).await?;
    troll.handle.cut_off(&away_peer, true).await?;
    admin
        .handle
        .moderate(ModActionKind::Block {
            author: troll_key,
            scope: Scope::Community,
            reason: "harassment".into(),
        })
        .await?;
    wait_until(DEADLINE, "admin deleted the posts", || async {
        admin.count("t").await == 1
    })
    .await?;
    assert_eq!(troll.count("t").await, 21, "the troll still has its posts");
    // The returning node meets the admin first and learns of the block…
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
    // …then the troll, who offers its posts by sync.
    troll.handle.cut_off(&away_peer, false).await?;
    away.handle.connect(&troll.addr).await?;
    // Joining again queues a sync of t with every connected peer (after the
    // community log, one session at a time): once no session is running,
    // t has been reconciled with the troll.
    away.handle.join(topic("t")).await?;
    wait_until(DEADLINE, "the sync sessions to end", || async {
        let idle = away
            .handle
            .status()
            .await
            .is_ok_and(|s| s.sync.active_sessions == 0);
        let with_troll = away
            .handle
            .peers()
            .await
            .is_ok_and(|ps| ps.iter().any(|p| p.peer_id == troll_id.peer_id));
        idle && with_troll
    })
    .await?;
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let with_troll = seen
        .iter()
        .filter(|e| matches!(e, NodeEvent::SyncDone { peer, .. } if *peer == troll_id.peer_id))
        .count();
    assert!(
        with_troll >= 2,
        "sessions with the troll: the community log and t ({with_troll})"
    );
    let stored: Vec<&PostView> = seen
        .iter()
        .filter_map(|e| match e {
            NodeEvent::PostStored(p) if p.author == troll_id.author => Some(&**p),
            _ => None,
        })
        .collect();
    assert!(
        stored.is_empty(),
        "posts of the blocked author were stored: {stored:?}"
    );
    assert_eq!(
        away.count("t").await,
        1,
        "no post of the blocked author is held"
    );
    Ok(())
}
