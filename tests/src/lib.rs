//! Shared helpers for the multi-node integration tests: in-process nodes on
//! 127.0.0.1 in temporary directories, and waiting on a condition with a
//! deadline (never a fixed sleep).

use std::future::Future;
use std::time::Duration;

use node::{DataDir, NodeConfig, NodeHandle, ReadQuery};
use protocol::{SignedManifest, TopicName};
use tempfile::TempDir;

pub mod daemon;
pub mod natnet;
pub mod netns;

pub use node;
pub use protocol;

/// How long a test waits for the network to settle before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` every 50 ms until it returns true, or fails after
/// `deadline` naming `what` was awaited.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= end {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node running in this process.
pub struct TestNode {
    /// Its data directory.
    pub data: DataDir,
    /// Its handle.
    pub handle: NodeHandle,
    /// Its event loop task.
    pub task: tokio::task::JoinHandle<()>,
    /// A dialable address with `/p2p/<peer id>`.
    pub addr: String,
}

impl TestNode {
    /// Stops the node and waits for its flush.
    pub async fn stop(self) -> DataDir {
        let _ = self.handle.shutdown().await;
        let _ = self.task.await;
        self.data
    }

    /// Post count of `topic` on this node (the store's O(1) counter).
    pub async fn count(&self, topic: &str) -> usize {
        self.handle
            .topics()
            .await
            .map(|ts| {
                ts.iter()
                    .filter(|t| t.name == topic)
                    .map(|t| t.posts as usize)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Sorted ids of the visible posts of `topic` this node holds.
    pub async fn ids(&self, topic: &str) -> Vec<String> {
        let Ok(topic) = TopicName::parse(topic) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = self
            .handle
            .read(
                topic,
                ReadQuery {
                    limit: 1_000_000,
                    since_ms: None,
                },
            )
            .await
            .map(|v| v.into_iter().filter(|p| !p.hidden).map(|p| p.id).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

/// A community and the directories of its nodes, all under one temp dir.
pub struct TestNet {
    /// Holds every data directory; removed on drop.
    pub root: TempDir,
    /// The community manifest.
    pub manifest: SignedManifest,
    /// The admin's data directory (node 0's).
    pub admin: DataDir,
    next: usize,
}

impl TestNet {
    /// Makes a community whose admin is the first data directory.
    pub fn new() -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let admin = DataDir::new(root.path().join("node0"));
        admin.init(Some("admin".into()))?;
        let manifest = admin.create_community(
            "Test circle",
            "Be kind. In crisis, call your local helpline.",
            node::now_ms(),
        )?;
        Ok(TestNet {
            root,
            manifest,
            admin,
            next: 1,
        })
    }

    /// A new member data directory that joined the community.
    pub fn member(&mut self, name: &str) -> anyhow::Result<DataDir> {
        let dir = DataDir::new(self.root.path().join(format!("node{}", self.next)));
        self.next += 1;
        dir.init(Some(name.to_string()))?;
        // Joining by invite code is tested with the real binary
        // (tests/invites.rs); here the manifest is written directly.
        dir.join_community(&self.manifest, &[], node::now_ms())?;
        Ok(dir)
    }
}

/// Starts a node on `data`, bootstrapped from `bootstrap` addresses, on
/// 127.0.0.1 only, with mDNS off.
pub async fn start(data: DataDir, bootstrap: &[&str]) -> anyhow::Result<TestNode> {
    let mut config = NodeConfig::local(data.clone());
    config.bootstrap = bootstrap.iter().map(|s| s.to_string()).collect();
    start_with(config).await
}

/// Starts a node like [`start`] but without the per-author posting limit,
/// for tests that publish thousands of posts from one key in seconds.
pub async fn start_bulk(data: DataDir, bootstrap: &[&str]) -> anyhow::Result<TestNode> {
    let mut config = NodeConfig::local(data);
    config.bootstrap = bootstrap.iter().map(|s| s.to_string()).collect();
    config.author_posts_per_minute = usize::MAX;
    start_with(config).await
}

/// Starts a node with a given configuration.
pub async fn start_with(config: NodeConfig) -> anyhow::Result<TestNode> {
    let data = config.data_dir.clone();
    let running = node::start(config).await?;
    let id = running.handle.id().await?;
    let addr = id
        .listen_addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .map(|a| format!("{a}/p2p/{}", id.peer_id))
        .ok_or_else(|| anyhow::anyhow!("node has no TCP address"))?;
    Ok(TestNode {
        data,
        handle: running.handle,
        task: running.task,
        addr,
    })
}

/// Parses a topic name (test input is always valid).
pub fn topic(name: &str) -> TopicName {
    TopicName::parse(name).unwrap_or_else(|e| panic!("bad test topic {name}: {e}"))
}

/// Has the admin's node (`nodes[0]`) appoint `nodes[moderator]` and waits
/// until every node knows exactly one moderator.
pub async fn appoint(nodes: &[TestNode], moderator: usize) -> anyhow::Result<()> {
    let admin = nodes.first().ok_or_else(|| anyhow::anyhow!("no nodes"))?;
    let key = nodes
        .get(moderator)
        .ok_or_else(|| anyhow::anyhow!("no node {moderator}"))?
        .handle
        .id()
        .await?
        .author
        .parse()?;
    admin
        .handle
        .moderate(protocol::moderation::ModActionKind::AppointModerator { key })
        .await?;
    for n in nodes {
        wait_until(DEADLINE, "the appointment on every node", || async {
            n.handle
                .mod_list()
                .await
                .map(|l| l.moderators.len() == 1)
                .unwrap_or(false)
        })
        .await?;
    }
    Ok(())
}
