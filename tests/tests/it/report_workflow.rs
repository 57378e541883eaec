//! Issue 18's report workflow across nodes: a moderator who never joined
//! the reported post's topic sees its text, topic and author in the queue;
//! a resolution leaves every moderator's queue and shows in the public log
//! by the report's id and outcome only; a report filed before a moderator
//! is appointed is sealed again to them by the admin's node and reaches
//! them through a node that is not a moderator's. Nodes listen on
//! 127.0.0.1 only; waits poll a condition with a deadline.

use mutual_tests::{draft, start, topic, wait_until, TestNet, TestNode, DEADLINE};
use node::api::ReportView;
use protocol::moderation::{ModActionKind, ReportOutcome};

async fn queue(n: &TestNode) -> Vec<ReportView> {
    n.handle.mod_queue().await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_outside_the_topic_sees_the_post_and_a_resolution_empties_every_queue(
) -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let admin = start(net.admin.clone(), &[]).await?;
    let moderator = start(net.member("mo")?, &[&admin.addr]).await?;
    let reporter = start(net.member("rae")?, &[&admin.addr]).await?;
    let author = start(net.member("bo")?, &[&reporter.addr]).await?;
    let nodes = vec![admin, moderator, reporter, author];
    mutual_tests::appoint(&nodes, 1).await?;
    // Only the two members join the topic; neither moderator does.
    for n in &nodes[2..] {
        n.handle.join(topic("grief")).await?;
    }
    let post = nodes[3]
        .handle
        .publish(topic("grief"), draft("words that hurt"))
        .await?;
    wait_until(DEADLINE, "the post on the reporter's node", || async {
        nodes[2].count("grief").await == 1
    })
    .await?;
    nodes[2].handle.report(post, "cruel words".into()).await?;

    let bo = nodes[3].key().await?;
    for n in &nodes[..2] {
        wait_until(
            DEADLINE,
            "the report in both moderators' queues",
            || async { queue(n).await.len() == 1 },
        )
        .await?;
        let rows = queue(n).await;
        let row = &rows[0];
        let shown = row
            .reported
            .as_ref()
            .expect("the post travels with the report");
        assert_eq!(shown.topic, "grief");
        assert_eq!(shown.body, "words that hurt");
        assert_eq!(shown.author.key, bo.to_string());
        assert_eq!(shown.author.name.as_deref(), Some("bo"));
        assert_eq!(row.reason, "cruel words");
        assert_eq!(row.post, post.to_string());
        assert_eq!(n.count("grief").await, 0, "a moderator who never joined");
    }
    let id = queue(&nodes[0]).await[0].id.clone();
    assert_eq!(queue(&nodes[1]).await[0].id, id, "one id on every node");

    // The moderator resolves it by the short id the queue prints.
    nodes[1]
        .handle
        .resolve_report(
            id[..11].to_string(),
            ReportOutcome::NoAction,
            "a poem".into(),
        )
        .await?;
    for n in &nodes[..2] {
        wait_until(DEADLINE, "the report out of every queue", || async {
            queue(n).await.is_empty()
        })
        .await?;
    }
    // Members see that a report was resolved and how, not what it said.
    wait_until(DEADLINE, "the resolution in a member's log", || async {
        nodes[3].handle.mod_list().await.is_ok_and(|l| {
            l.log
                .iter()
                .any(|e| e.action == format!("resolved report {id}: no action"))
        })
    })
    .await?;
    let log = serde_json::to_string(&nodes[3].handle.mod_list().await?)?;
    for secret in ["cruel", "poem", "hurt"] {
        assert!(!log.contains(secret), "{secret} in the public log");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_filed_before_a_moderator_is_appointed_is_readable_by_that_moderator(
) -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let admin = start(net.admin.clone(), &[]).await?;
    let reporter = start(net.member("rae")?, &[&admin.addr]).await?;
    let later_dir = net.member("late")?;
    let later_key = later_dir.identity()?.public();
    for n in [&admin, &reporter] {
        n.handle.join(topic("t")).await?;
    }
    let post = admin.handle.publish(topic("t"), draft("a threat")).await?;
    wait_until(DEADLINE, "the post on the reporter's node", || async {
        reporter.count("t").await == 1
    })
    .await?;
    reporter.handle.report(post, "scary".into()).await?;
    wait_until(DEADLINE, "the report in the admin's queue", || async {
        queue(&admin).await.len() == 1
    })
    .await?;

    // Appointed after the report; their node starts only now, and hears
    // of everything from the reporter's node (which reads no report).
    admin
        .handle
        .moderate(ModActionKind::AppointModerator { key: later_key })
        .await?;
    let later = start(later_dir, &[&reporter.addr]).await?;
    wait_until(
        DEADLINE,
        "the report in the new moderator's queue",
        || async { queue(&later).await.len() == 1 },
    )
    .await?;
    let theirs = queue(&later).await;
    let admins = queue(&admin).await;
    assert_eq!(theirs[0].id, admins[0].id, "the same report");
    assert_eq!(admins.len(), 1, "one row however many envelopes");
    assert_eq!(theirs[0].reason, "scary");
    assert_eq!(
        theirs[0].reported.as_ref().map(|p| p.body.as_str()),
        Some("a threat")
    );
    // And the new moderator can act on it: resolving it empties the
    // admin's queue too.
    later
        .handle
        .resolve_report(theirs[0].id.clone(), ReportOutcome::Hidden, String::new())
        .await?;
    wait_until(DEADLINE, "the admin's queue empty", || async {
        queue(&admin).await.is_empty()
    })
    .await?;
    Ok(())
}
