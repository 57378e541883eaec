//! Issue 9: a node killed with SIGKILL mid-work loses nothing it
//! acknowledged, its store opens consistent, and sync fills in the rest.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mutual_tests::child::{spawn_lines, Killed};
use mutual_tests::{start_bulk, topic, wait_until, TestNet, TestNode};
use node::store::Store;
use protocol::post::Draft;
use protocol::{Message, Post, PostId};

/// Runs the test node and returns it with a channel of its stdout lines.
fn spawn(
    dir: &std::path::Path,
    bootstrap: &str,
    publish: usize,
) -> anyhow::Result<(Killed, mpsc::Receiver<String>)> {
    spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_mutual-testnode"))
            .arg(dir)
            .arg("t")
            .arg(bootstrap)
            .arg(publish.to_string())
            .stderr(Stdio::null()),
    )
}

/// A peer holding `n` posts of topic t, signed by another member.
async fn full_peer(net: &mut TestNet, n: u64) -> anyhow::Result<TestNode> {
    let peer = start_bulk(net.admin.clone(), &[]).await?;
    peer.handle.join(topic("t")).await?;
    let author = net.admin.identity()?;
    let now = node::now_ms();
    for i in 0..n {
        let post = Post::write(
            &author,
            net.manifest.id(),
            topic("t"),
            Draft {
                body: format!("history {i}"),
                ..Draft::default()
            },
            now - 10_000_000 + i,
        )?;
        peer.handle.import(Message::Post(post)).await?;
    }
    Ok(peer)
}

fn sigkill(child: &mut Killed) -> anyhow::Result<()> {
    child.0.kill()?; // SIGKILL on Unix
    child.0.wait()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_ingesting_and_publishing_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let peer = full_peer(&mut net, 5000).await?;
    let dir = net.member("victim")?;
    let (mut child, lines) = spawn(dir.path(), &peer.addr, 100_000)?;
    let mut acked: Vec<PostId> = Vec::new();
    let mut have = 0u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Kill once it acknowledged some of its own posts and ingested some
    // (not all) of the peer's.
    while acked.len() < 200 || have < 500 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the node made no progress"
        );
        match lines.recv_timeout(Duration::from_secs(10))? {
            l if l.starts_with("ACK ") => acked.push(l[4..].parse()?),
            l if l.starts_with("HAVE ") => have = l[5..].parse()?,
            _ => {}
        }
    }
    sigkill(&mut child)?;
    while let Ok(l) = lines.try_recv() {
        if let Some(id) = l.strip_prefix("ACK ") {
            acked.push(id.parse()?);
        }
    }
    {
        let store = Store::open(&dir.store_path(), dir.store_keys()?)?;
        let problems = store.check_integrity()?;
        assert!(problems.is_empty(), "{problems:?}");
        for id in &acked {
            assert!(store.contains_post(id)?, "acknowledged post {id} lost");
        }
    }
    // Back up: sync fills in the rest.
    let back = start_bulk(dir, &[&peer.addr]).await?;
    let target = 5000 + acked.len();
    wait_until(
        Duration::from_secs(60),
        "sync to fill in the rest",
        || async { back.count("t").await >= target },
    )
    .await?;
    let ids = back.ids("t").await;
    for id in &acked {
        assert!(ids.contains(&id.to_string()));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_in_the_middle_of_a_sync_recovers() -> anyhow::Result<()> {
    let mut net = TestNet::new()?;
    let peer = full_peer(&mut net, 20_000).await?;
    let dir = net.member("syncer")?;
    let (mut child, lines) = spawn(dir.path(), &peer.addr, 0)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut have = 0u64;
    while have == 0 {
        anyhow::ensure!(std::time::Instant::now() < deadline, "sync never started");
        if let Some(n) = lines
            .recv_timeout(Duration::from_secs(10))?
            .strip_prefix("HAVE ")
        {
            have = n.parse()?;
        }
    }
    sigkill(&mut child)?;
    assert!(have < 20_000, "killed before the sync finished ({have})");
    {
        let store = Store::open(&dir.store_path(), dir.store_keys()?)?;
        let problems = store.check_integrity()?;
        assert!(problems.is_empty(), "{problems:?}");
    }
    let back = start_bulk(dir, &[&peer.addr]).await?;
    wait_until(
        Duration::from_secs(60),
        "the interrupted sync completes",
        || async { back.count("t").await == 20_000 },
    )
    .await?;
    assert_eq!(back.ids("t").await, peer.ids("t").await);
    Ok(())
}
