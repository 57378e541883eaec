//! Issue 18, probation: with a probation of two posts, a new member's
//! first posts wait for a moderator. Each is stored on every node, shown
//! to its author as waiting and to the moderators in their queue, and to
//! nobody else; approved, it reaches everyone; after two approvals the
//! author's next post is shown at once; a rejected one is deleted
//! everywhere. Also `mutual mod queue` / `mutual mod approve SHORT-ID`
//! through the real binary.

use mutual_tests::{draft, start, topic, wait_until, TestNet, TestNode, DEADLINE};
use node::api::PostView;
use protocol::moderation::{Admission, CommunityPolicy, ModActionKind};

/// Admin (node 0), a moderator (node 1), a member (node 2) and a
/// newcomer (node 3), in a line, all in topic `t`, with probation 2
/// published by the admin and known to every node.
async fn community(net: &mut TestNet) -> anyhow::Result<Vec<TestNode>> {
    let mut nodes = vec![start(net.admin.clone(), &[]).await?];
    for name in ["moderator", "member", "newcomer"] {
        let prev = nodes[nodes.len() - 1].addr.clone();
        nodes.push(start(net.member(name)?, &[&prev]).await?);
    }
    for n in &nodes {
        n.handle.join(topic("t")).await?;
    }
    mutual_tests::appoint(&nodes, 1).await?;
    nodes[0]
        .handle
        .moderate(ModActionKind::UpdateManifest {
            version: 1,
            rules: "Be kind.".into(),
            policy: CommunityPolicy {
                admission: Admission::Open,
                probation_posts: 2,
            },
        })
        .await?;
    for n in &nodes {
        wait_until(DEADLINE, "the probation of 2 posts everywhere", || async {
            n.handle
                .mod_list()
                .await
                .is_ok_and(|l| l.log.iter().any(|e| e.action.contains("probation 2 posts")))
        })
        .await?;
    }
    Ok(nodes)
}

/// The ids of the posts waiting in `node`'s moderation queue.
async fn queue(node: &TestNode) -> Vec<String> {
    node.handle
        .held_posts()
        .await
        .map(|v| v.into_iter().map(|p| p.id).collect())
        .unwrap_or_default()
}

fn shows(views: &[PostView], id: &str) -> bool {
    views.iter().any(|p| p.id == id && !p.hidden)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_members_first_posts_wait_for_a_moderator() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let nodes = community(&mut net).await?;
    let (admin, moderator, member, newcomer) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let mut held = Vec::new();
    for body in [
        "hello, I'm new",
        "how do you cope with nights?",
        "buy my pills",
    ] {
        let id = newcomer.handle.publish(topic("t"), draft(body)).await?;
        held.push(id.to_string());
    }
    // Stored by every node: the moderators' queues list them, and the
    // member's store counts them.
    for m in [admin, moderator] {
        wait_until(
            DEADLINE,
            "the held posts in the moderators' queue",
            || async { queue(m).await == held },
        )
        .await?;
    }
    wait_until(
        DEADLINE,
        "the held posts stored on the member's node",
        || async { member.count("t").await == 3 },
    )
    .await?;
    // ...and shown to nobody but their author.
    for n in [admin, moderator, member] {
        let shown = n.read("t").await;
        assert!(
            held.iter().all(|id| !shows(&shown, id)),
            "a held post was shown: {shown:?}"
        );
    }
    let own = newcomer.read("t").await;
    assert_eq!(own.len(), 3);
    assert!(own.iter().all(|p| p.held), "its author sees them waiting");

    // Two approvals: each post reaches everyone's read.
    moderator.handle.approve(held[0].parse()?).await?;
    let short = held[1][..11].to_string();
    admin
        .handle
        .approve(admin.handle.resolve_post(&short).await?)
        .await?;
    for n in &nodes {
        wait_until(DEADLINE, "the approved posts shown everywhere", || async {
            let shown = n.read("t").await;
            shows(&shown, &held[0]) && shows(&shown, &held[1])
        })
        .await?;
    }
    // The third was written before the approvals: it still waits. Rejected,
    // it is deleted on every node, and only its author sees why.
    assert!(!shows(&member.read("t").await, &held[2]));
    moderator
        .handle
        .reject(held[2].parse()?, "selling things".into())
        .await?;
    for n in &nodes {
        wait_until(DEADLINE, "the rejected post deleted everywhere", || async {
            n.count("t").await == 2 && queue(n).await.is_empty()
        })
        .await?;
    }
    assert!(member.read("t").await.iter().all(|p| p.id != held[2]));
    let notice = newcomer.read("t").await;
    let rejected = notice
        .iter()
        .find(|p| p.id == held[2])
        .expect("its author sees the notice");
    assert!(rejected.rejected && rejected.body.is_none());
    assert_eq!(rejected.hidden_reason.as_deref(), Some("selling things"));

    // After two approvals the author's next post is shown at once.
    let next = newcomer
        .handle
        .publish(topic("t"), draft("thank you all"))
        .await?
        .to_string();
    assert!(newcomer
        .read("t")
        .await
        .iter()
        .any(|p| p.id == next && !p.held));
    for n in &nodes {
        wait_until(DEADLINE, "the next post shown everywhere", || async {
            shows(&n.read("t").await, &next)
        })
        .await?;
    }
    assert!(queue(moderator).await.is_empty());
    for n in nodes {
        n.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_queue_lists_a_held_post_and_mod_approve_takes_its_short_id() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let nodes = community(&mut net).await?;
    let (moderator, member, newcomer) = (&nodes[1], &nodes[2], &nodes[3]);
    let id = newcomer
        .handle
        .publish(topic("t"), draft("first post, be gentle"))
        .await?
        .to_string();
    wait_until(
        DEADLINE,
        "the held post in the moderator's queue",
        || async { queue(moderator).await == vec![id.clone()] },
    )
    .await?;
    // The real `mutual` command, against the moderator's node.
    let socket =
        node::control::serve(moderator.handle.clone(), &moderator.data.socket_path()).await?;
    let dir = moderator.data.path().to_path_buf();
    let short = id[..11].to_string();
    let (listed, approved) = tokio::task::spawn_blocking({
        let short = short.clone();
        move || -> anyhow::Result<(String, String)> {
            let listed = mutual_tests::daemon::ok(&dir, &["mod", "queue"])?;
            let approved = mutual_tests::daemon::ok(&dir, &["mod", "approve", &short])?;
            Ok((listed, approved))
        }
    })
    .await??;
    assert!(listed.contains("Waiting for approval"), "{listed}");
    assert!(listed.contains(&short), "{listed}");
    assert!(listed.contains("first post, be gentle"), "{listed}");
    assert!(
        listed.contains("newcomer ("),
        "author and short key: {listed}"
    );
    assert!(
        approved.contains(&format!("Approved {short}")),
        "{approved}"
    );
    wait_until(
        DEADLINE,
        "the approved post shown to the member",
        || async { shows(&member.read("t").await, &id) },
    )
    .await?;
    socket.abort();
    for n in nodes {
        n.stop().await;
    }
    Ok(())
}
