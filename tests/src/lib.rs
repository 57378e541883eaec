//! Shared helpers for the multi-node integration tests: in-process nodes on
//! 127.0.0.1 in temporary directories, and waiting on a condition with a
//! deadline (never a fixed sleep).

use std::future::Future;
use std::time::Duration;

use node::{DataDir, GossipVerdict, NodeConfig, NodeEvent, NodeHandle, ReadQuery};
use protocol::{CommunitySecret, SignedManifest, TopicName};
use tempfile::TempDir;
use tokio::sync::broadcast::{self, error::RecvError};

pub mod child;
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

/// Reads `events` (subscribed before the cause, so nothing is missed) until
/// `pick` recognises one, for at most `deadline`; every event read is
/// appended to `seen`. Fails if events were dropped (the reader lagged)
/// rather than risk having missed the awaited one.
pub async fn next_event<T>(
    events: &mut broadcast::Receiver<NodeEvent>,
    deadline: Duration,
    what: &str,
    seen: &mut Vec<NodeEvent>,
    pick: impl FnMut(&NodeEvent) -> Option<T>,
) -> anyhow::Result<T> {
    let until = tokio::time::Instant::now() + deadline;
    match event_until(events, until, what, seen, pick).await? {
        Some(v) => Ok(v),
        None => anyhow::bail!("timed out after {deadline:?} waiting for {what}"),
    }
}

/// [`next_event`] until the instant `until`: `None` if it passed first.
async fn event_until<T>(
    events: &mut broadcast::Receiver<NodeEvent>,
    until: tokio::time::Instant,
    what: &str,
    seen: &mut Vec<NodeEvent>,
    mut pick: impl FnMut(&NodeEvent) -> Option<T>,
) -> anyhow::Result<Option<T>> {
    loop {
        match tokio::time::timeout_at(until, events.recv()).await {
            Err(_) => return Ok(None),
            Ok(Err(RecvError::Lagged(n))) => {
                anyhow::bail!("missed {n} node events while waiting for {what}")
            }
            Ok(Err(RecvError::Closed)) => anyhow::bail!("the node stopped before {what}"),
            Ok(Ok(event)) => {
                let picked = pick(&event);
                seen.push(event);
                if picked.is_some() {
                    return Ok(picked);
                }
            }
        }
    }
}

/// The verdict in `event` if it is the judgement of gossip message `data`.
pub fn judged(event: &NodeEvent, data: &[u8]) -> Option<GossipVerdict> {
    match event {
        NodeEvent::GossipJudged { data: d, verdict } if d == data => Some(*verdict),
        _ => None,
    }
}

/// A message gossiped until a node judged it (see [`gossip_until_judged`]).
pub struct Judged {
    /// Which of the messages made was judged first (`make`'s argument).
    pub index: usize,
    /// Its bytes.
    pub data: Vec<u8>,
    /// The receiving node's verdict.
    pub verdict: GossipVerdict,
}

/// Has `sender` gossip the raw bytes `make(i)` on `gossip_topic` (as any
/// peer, honest or not, can), a new message every second, until the node
/// whose `events` these are has judged one of them (at most [`DEADLINE`]).
/// Proves that gossip from `sender` reaches that node, however long the
/// mesh took to form; every event read is appended to `seen`.
pub async fn gossip_until_judged(
    sender: &TestNode,
    gossip_topic: &str,
    events: &mut broadcast::Receiver<NodeEvent>,
    seen: &mut Vec<NodeEvent>,
    mut make: impl FnMut(usize) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Judged> {
    let end = tokio::time::Instant::now() + DEADLINE;
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut i = 0;
    while tokio::time::Instant::now() < end {
        let data = make(i)?;
        i += 1;
        // Refused while the sender knows no subscriber yet: tried again.
        let _ = sender.handle.publish_raw(gossip_topic, data.clone()).await;
        sent.push(data);
        let until = end.min(tokio::time::Instant::now() + Duration::from_secs(1));
        let got = event_until(events, until, "a judgement", seen, |e| {
            sent.iter()
                .enumerate()
                .find_map(|(i, d)| judged(e, d).map(|v| (i, v)))
        })
        .await?;
        if let Some((index, verdict)) = got {
            return Ok(Judged {
                index,
                data: sent.swap_remove(index),
                verdict,
            });
        }
    }
    anyhow::bail!("no gossip from the sender was judged within {DEADLINE:?}")
}

/// A node running in this process.
pub struct TestNode {
    /// Its data directory.
    pub data: DataDir,
    /// Its handle.
    pub handle: NodeHandle,
    /// Its event loop task.
    pub task: tokio::task::JoinHandle<Result<(), node::NodeError>>,
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

    /// The author key this node signs with now.
    pub async fn key(&self) -> anyhow::Result<protocol::PublicKey> {
        Ok(self.handle.id().await?.author.parse()?)
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

    /// What a read of `topic` shows on this node (all of it, notices of
    /// hidden posts included).
    pub async fn read(&self, topic: &str) -> Vec<node::api::PostView> {
        let Ok(topic) = TopicName::parse(topic) else {
            return Vec::new();
        };
        self.handle
            .read(
                topic,
                ReadQuery {
                    limit: 1_000_000,
                    since_ms: None,
                },
            )
            .await
            .unwrap_or_default()
    }

    /// Sorted ids of the visible posts of `topic` this node holds.
    pub async fn ids(&self, topic: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .read(topic)
            .await
            .into_iter()
            .filter(|p| !p.hidden)
            .map(|p| p.id)
            .collect();
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
    /// The community secret (made by the admin's node, given to members).
    pub secret: CommunitySecret,
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
        let secret = admin
            .community_secret()?
            .ok_or_else(|| anyhow::anyhow!("the new community has no secret"))?;
        Ok(TestNet {
            root,
            manifest,
            secret,
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
        // (tests/tests/it/invites.rs); here the manifest is written directly.
        dir.join_community(&self.manifest, &self.secret, &[], node::now_ms())?;
        Ok(dir)
    }

    /// The gossipsub topic string of `topic` in this community.
    pub fn gossip_topic(&self, topic: &TopicName) -> String {
        self.secret.topic_gossip_topic(&self.manifest.id(), topic)
    }

    /// The gossipsub topic string of the community log.
    pub fn community_topic(&self) -> String {
        self.secret.community_gossip_topic(&self.manifest.id())
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

/// A draft post with this body and nothing else.
pub fn draft(body: &str) -> protocol::post::Draft {
    protocol::post::Draft {
        body: body.into(),
        ..protocol::post::Draft::default()
    }
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
