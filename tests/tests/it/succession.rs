//! Issue 16, key succession across a network of four nodes: a member moves
//! to a new key while one node is offline, and every node (the offline one
//! after it restarts and syncs) shows the member's posts from both keys as
//! one author with the newest pseudonym; a blocked key's succession
//! escapes nothing; the admin's succession moves the admin role.

use mutual_tests::{draft, start, topic, wait_until, TestNet, TestNode, DEADLINE};
use protocol::moderation::{ModActionKind, Scope};
use protocol::{Identity, Message, Post, SecretKey};

/// The admin (node 0) and three members, each started from node 0.
async fn community(net: &mut TestNet) -> anyhow::Result<Vec<TestNode>> {
    let mut nodes = vec![start(net.admin.clone(), &[]).await?];
    for i in 1..4 {
        let hub = nodes[0].addr.clone();
        nodes.push(start(net.member(&format!("member{i}"))?, &[&hub]).await?);
    }
    for n in &nodes {
        n.handle.join(topic("t")).await?;
    }
    Ok(nodes)
}

/// Whether `n` shows exactly `bodies`, all by `author` named `name`.
async fn shows_one_author(n: &TestNode, bodies: &[&str], author: &str, name: &str) -> bool {
    let posts = n.read("t").await;
    let mut seen: Vec<&str> = posts.iter().filter_map(|p| p.body.as_deref()).collect();
    seen.sort();
    let mut want = bodies.to_vec();
    want.sort();
    seen == want
        && posts
            .iter()
            .all(|p| p.author == author && p.author_name.as_deref() == Some(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_new_key_is_one_author_everywhere_even_on_a_node_offline_at_the_time(
) -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let mut nodes = community(&mut net).await?;
    let member = &nodes[1];
    let first_key = member.key().await?.to_string();
    member.handle.publish(topic("t"), draft("before")).await?;
    for n in &nodes {
        wait_until(DEADLINE, "the first post everywhere", || async {
            n.count("t").await == 1
        })
        .await?;
    }
    // Node 3 goes offline; the member moves to a new key and a new name.
    let offline = nodes.pop().expect("four nodes").stop().await;
    let member = &nodes[1];
    let new = SecretKey::generate();
    member.data.replace_author_key(&new)?;
    member.handle.succeed(new.clone()).await?;
    assert_eq!(
        member.key().await?,
        new.public(),
        "the node signs with the new key"
    );
    member.handle.set_pseudonym(Some("willow".into())).await?;
    member.handle.publish(topic("t"), draft("after")).await?;
    for n in &nodes {
        wait_until(
            DEADLINE,
            "both posts as one author, newest name",
            || async { shows_one_author(n, &["before", "after"], &first_key, "willow").await },
        )
        .await?;
    }
    // Node 3 comes back and catches up by sync.
    let back = start(offline, &[&nodes[0].addr]).await?;
    wait_until(DEADLINE, "the node that was offline caught up", || async {
        shows_one_author(&back, &["before", "after"], &first_key, "willow").await
    })
    .await?;
    // The member's own node, restarted, keeps signing with the new key.
    let member = nodes.remove(1);
    let data = member.stop().await;
    assert_eq!(data.identity()?.public(), new.public());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_key_escapes_nothing_and_the_admins_new_key_appoints() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let nodes = community(&mut net).await?;
    let troll = &nodes[1];
    let troll_key = troll.key().await?;
    nodes[0]
        .handle
        .moderate(ModActionKind::Block {
            author: troll_key,
            scope: Scope::Community,
            reason: "threats".into(),
        })
        .await?;
    for n in &nodes {
        wait_until(DEADLINE, "the block everywhere", || async {
            n.handle.mod_list().await.is_ok_and(|l| l.blocks.len() == 1)
        })
        .await?;
    }
    // The troll moves to a fresh key to escape.
    let fresh = SecretKey::generate();
    troll.handle.succeed(fresh.clone()).await?;
    let moved = format!("moved to the new key {}", fresh.public());
    for n in &nodes {
        wait_until(DEADLINE, "the succession in every log", || async {
            n.handle
                .mod_list()
                .await
                .is_ok_and(|l| l.log.iter().any(|e| e.action == moved))
        })
        .await?;
    }
    // A post signed with the new key, handed to every node: each refuses
    // it (after the succession was processed there, proven above).
    let escapee = Identity {
        secret: fresh,
        name: Some("new me".into()),
    };
    let post = Post::write(
        &escapee,
        net.manifest.id(),
        topic("t"),
        draft("I'm back"),
        node::now_ms(),
    )?;
    for n in &nodes {
        let verdict = n.handle.import(Message::Post(post.clone())).await;
        assert!(
            matches!(&verdict, Err(e) if e.to_string().contains("blocked")),
            "{verdict:?}"
        );
        assert_eq!(n.count("t").await, 0);
    }
    assert!(
        troll
            .handle
            .publish(topic("t"), draft("again"))
            .await
            .is_err(),
        "the troll's own node refuses too"
    );

    // The admin moves to a new key; the new key appoints a moderator.
    let admin_new = SecretKey::generate();
    nodes[0].data.replace_author_key(&admin_new)?;
    nodes[0].handle.succeed(admin_new.clone()).await?;
    let moderator = nodes[2].key().await?;
    nodes[0]
        .handle
        .moderate(ModActionKind::AppointModerator { key: moderator })
        .await?;
    for n in &nodes {
        wait_until(
            DEADLINE,
            "the new admin key's appointment everywhere",
            || async {
                n.handle.mod_list().await.is_ok_and(|l| {
                    l.admin.key == admin_new.public().to_string()
                        && l.moderators.iter().any(|m| m.key == moderator.to_string())
                })
            },
        )
        .await?;
    }
    // The moderator acts and it counts everywhere.
    let note = nodes[3].handle.publish(topic("t"), draft("hello")).await?;
    for n in &nodes {
        wait_until(DEADLINE, "the post everywhere", || async {
            n.count("t").await == 1
        })
        .await?;
    }
    nodes[2]
        .handle
        .moderate(ModActionKind::Pin { post: note })
        .await?;
    for n in &nodes {
        wait_until(DEADLINE, "the new moderator's pin everywhere", || async {
            n.read("t").await.iter().any(|p| p.pinned)
        })
        .await?;
    }
    Ok(())
}
