//! The cloneable handle to a running node. Every method sends one command to
//! the event loop (which alone owns the swarm and the store) and awaits its
//! reply on a oneshot channel: the shape of rust-libp2p's file-sharing
//! example (Client / EventLoop).

use protocol::moderation::ModActionKind;
use protocol::post::Draft;
use protocol::{ActionId, PostId, PublicKey, TopicName};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::api::{
    CommunityView, ConnectView, IdView, ModListView, PeerView, PostView, ReportView, StatusView,
    TopicView,
};
use crate::core::{Origin, Outcome, Refusal};
use crate::error::NodeError;
use crate::now_ms;

/// How to read a topic.
#[derive(Clone, Debug, Default)]
pub struct ReadQuery {
    /// At most this many posts (the newest ones).
    pub limit: usize,
    /// Only posts created at or after this time (ms since the Unix epoch).
    pub since_ms: Option<u64>,
}

/// What became of a batch of imported items.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Newly stored.
    pub stored: usize,
    /// Already held.
    pub duplicates: usize,
    /// Invalid or refused.
    pub refused: usize,
}

/// Why a post left the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// Its author took it back.
    Retracted,
    /// A moderator hid it (a notice stays in its place).
    Hidden,
    /// A moderator blocked its author.
    Blocked,
}

/// Something that happened on the node, for followers (`read --follow`) and
/// tests that wait on a condition.
#[derive(Clone, Debug)]
pub enum NodeEvent {
    /// A post was stored (from anywhere) that a read would show (its author
    /// is not muted).
    PostStored(Box<PostView>),
    /// A post was deleted (retraction, block or hide).
    PostRemoved {
        /// Printable post id.
        id: String,
        /// Its topic.
        topic: String,
        /// Why.
        reason: RemovalReason,
    },
    /// A hidden post is shown again.
    PostRestored(Box<PostView>),
    /// A post was pinned or unpinned.
    PinChanged {
        /// Printable post id.
        id: String,
        /// Its topic (empty if this node does not hold the post).
        topic: String,
        /// Pinned now?
        pinned: bool,
    },
    /// A moderation action took effect.
    Moderation {
        /// Printable action id.
        id: String,
    },
    /// A gossip message arrived, as gossipsub decoded it: what the wire
    /// carried besides the data (privacy tests).
    #[cfg(feature = "test-hooks")]
    GossipReceived {
        /// The author field of the gossip message (anonymous mode: none).
        source: Option<String>,
        /// The sender's sequence number (anonymous mode: none).
        sequence_number: Option<u64>,
        /// The message data.
        data: Vec<u8>,
    },
    /// The node judged a gossip message: the proof that a negative check
    /// ("never stored") may run.
    #[cfg(feature = "test-hooks")]
    GossipJudged {
        /// The message data.
        data: Vec<u8>,
        /// What the node answered gossipsub.
        verdict: crate::core::Verdict,
    },
    /// A peer told this node it subscribed to a gossip topic (the topic
    /// string as it travelled; privacy tests).
    #[cfg(feature = "test-hooks")]
    PeerSubscribed {
        /// Peer id.
        peer: String,
        /// The gossipsub topic string.
        topic: String,
    },
    /// This node closed its connection to a peer that did not prove
    /// membership.
    #[cfg(feature = "test-hooks")]
    PeerRefused {
        /// Peer id.
        peer: String,
    },
    /// A sync session with a peer finished.
    SyncDone {
        /// Peer id.
        peer: String,
        /// Items received in that session.
        received: u64,
    },
}

/// Most posts in one page of [`NodeHandle::read_stream`].
pub const READ_PAGE_POSTS: usize = 64;

/// Most text in one page of [`NodeHandle::read_stream`], in bytes of
/// bodies, warnings, names and reasons (a page holds at least one post):
/// what a slow reader can make the node hold is bounded in bytes, whatever
/// the size of the posts.
pub const READ_PAGE_BYTES: usize = 256 * 1024;

/// The bytes a post counts for against [`READ_PAGE_BYTES`]: its texts and
/// a fixed allowance for ids, keys and JSON.
pub fn page_weight(post: &PostView) -> usize {
    const FIXED: usize = 512;
    let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
    FIXED
        + text(&post.body)
        + text(&post.content_warning)
        + text(&post.author_name)
        + text(&post.hidden_reason)
        + post.hidden_by.as_ref().map_or(0, |a| text(&a.name))
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// The network's part of `status`.
#[derive(Clone, Debug)]
pub(crate) struct NetStatus {
    pub(crate) peers: usize,
    pub(crate) reachability: String,
    pub(crate) remembered_peers: usize,
    pub(crate) problems: Vec<String>,
    pub(crate) community_peers: usize,
}

/// A request to the event loop: only what needs the swarm.
pub(crate) enum Command {
    Id(Reply<IdView>),
    /// The pseudonym changed: the loop's answer to `Id` follows.
    SetName(Option<String>, Reply<()>),
    /// The author key changed (key succession): the loop's answer to `Id`
    /// follows.
    SetAuthorKey(protocol::SecretKey, Reply<()>),
    Peers(Reply<Vec<PeerView>>),
    NetStatus(Reply<NetStatus>),
    Invite(Reply<String>),
    /// An invite code carrying an invitation key's seed.
    AdmissionInvite(Box<[u8; 32]>, Reply<String>),
    Dial(String, Reply<()>),
    Connect(String, Reply<ConnectView>),
    SyncNow(Reply<()>),
    GossipStats(Reply<crate::GossipStats>),
    CutOff(String, bool, Reply<()>),
    #[cfg(feature = "test-hooks")]
    PublishRaw(String, Vec<u8>, Reply<()>),
    /// Sends raw bytes as a sync request to a peer, whether or not it
    /// proved membership, and answers with the raw response.
    #[cfg(feature = "test-hooks")]
    SyncRaw(String, Vec<u8>, Reply<Vec<u8>>),
    /// The keys this node announces itself under in the DHT (what every
    /// DHT server it reaches is told).
    #[cfg(feature = "test-hooks")]
    DhtKeys(Reply<Vec<Vec<u8>>>),
    Shutdown(Reply<()>),
}

/// A handle to a running node; cheap to clone, usable from any task. What
/// needs the swarm goes to the event loop; everything else goes straight
/// to the core's thread.
#[derive(Clone)]
pub struct NodeHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) core: crate::core::worker::CoreLink,
    pub(crate) events: broadcast::Sender<NodeEvent>,
}

impl NodeHandle {
    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Follows what happens on the node from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Author key, pseudonym, peer id and listen addresses.
    pub async fn id(&self) -> Result<IdView, NodeError> {
        self.ask(Command::Id).await
    }

    /// The community this node belongs to, with its rules.
    pub async fn community(&self) -> Result<CommunityView, NodeError> {
        self.core.call(|c| Ok(c.community_view())).await
    }

    /// Joins a topic: subscribes, advertises in the DHT, syncs its history.
    pub async fn join(&self, topic: TopicName) -> Result<(), NodeError> {
        self.core.call(move |c| c.join(topic)).await
    }

    /// Leaves a topic (its stored posts stay until removed).
    pub async fn leave(&self, topic: TopicName) -> Result<(), NodeError> {
        self.core.call(move |c| c.leave(topic)).await
    }

    /// Leaves a topic and deletes what this node stored of it (`mutual
    /// leave TOPIC --forget`); joining it again syncs its posts anew.
    pub async fn leave_and_forget(
        &self,
        topic: TopicName,
    ) -> Result<crate::store::Forgotten, NodeError> {
        self.core.call(move |c| c.leave_and_forget(topic)).await
    }

    /// Joined topics with post counts.
    pub async fn topics(&self) -> Result<Vec<TopicView>, NodeError> {
        self.core.call(|c| c.topic_views()).await
    }

    /// Signs, stores (flushed to disk before returning) and gossips a post.
    pub async fn publish(&self, topic: TopicName, draft: Draft) -> Result<PostId, NodeError> {
        self.core
            .write(move |c| c.publish(topic, draft, now_ms()))
            .await
    }

    /// Reads a topic: the newest `limit` posts, oldest first (a post's
    /// replies after it). Runs on the blocking pool, never on the core.
    pub async fn read(
        &self,
        topic: TopicName,
        query: ReadQuery,
    ) -> Result<Vec<PostView>, NodeError> {
        let reader = self.core.call(|c| Ok(c.reader())).await?;
        tokio::task::spawn_blocking(move || reader.read(&topic, &query))
            .await
            .map_err(|_| NodeError::Stopped)?
    }

    /// Reads a topic as [`read`](Self::read) does, in pages (oldest first,
    /// each of at most [`READ_PAGE_POSTS`] posts and [`READ_PAGE_BYTES`]
    /// bytes) on a channel of capacity 1: a slow consumer stalls the reader
    /// (on the blocking pool) instead of making the node hold the whole
    /// reply. A store error arrives as the channel's last item; the channel
    /// closes after the last page, and a read with no posts closes it
    /// without any.
    pub async fn read_stream(
        &self,
        topic: TopicName,
        query: ReadQuery,
    ) -> Result<mpsc::Receiver<Result<Vec<PostView>, NodeError>>, NodeError> {
        let reader = self.core.call(|c| Ok(c.reader())).await?;
        Ok(reader.stream(topic, query))
    }

    /// Resolves a full or short (prefix) printable post id to a stored post.
    pub async fn resolve_post(&self, text: &str) -> Result<PostId, NodeError> {
        let text = text.to_string();
        self.core.call(move |c| c.resolve_post(&text)).await
    }

    /// Resolves a full printable key, or the short fingerprint commands
    /// print, to a key this node knows (`Core::resolve_key`).
    pub async fn resolve_key(&self, text: &str) -> Result<PublicKey, NodeError> {
        let text = text.to_string();
        self.core.call(move |c| c.resolve_key(&text)).await
    }

    /// Takes back one of this identity's own posts, everywhere.
    pub async fn retract(&self, post: PostId) -> Result<(), NodeError> {
        self.core.write(move |c| c.retract(post, now_ms())).await
    }

    /// Reports a post to the moderators (sealed to them alone).
    pub async fn report(&self, post: PostId, reason: String) -> Result<ActionId, NodeError> {
        let plan = self
            .core
            .call(move |c| c.report_plan(post, now_ms()))
            .await?;
        let (sealed, id) = tokio::task::spawn_blocking(move || plan.seal(&reason))
            .await
            .map_err(|_| NodeError::Stopped)??;
        self.core
            .write(move |c| c.publish_report(sealed, now_ms()))
            .await?;
        Ok(id)
    }

    /// Takes a moderation action; refused locally unless this identity may.
    pub async fn moderate(&self, kind: ModActionKind) -> Result<ActionId, NodeError> {
        self.core.write(move |c| c.moderate(kind, now_ms())).await
    }

    /// The public moderation state and log.
    pub async fn mod_list(&self) -> Result<ModListView, NodeError> {
        self.core.call(|c| Ok(c.mod_list())).await
    }

    /// Reports this (moderator) node can read, oldest first.
    pub async fn mod_queue(&self) -> Result<Vec<ReportView>, NodeError> {
        self.core.call(|c| Ok(c.mod_queue())).await
    }

    /// Posts waiting for a moderator's approval in the joined topics,
    /// oldest first (moderators only).
    pub async fn held_posts(&self) -> Result<Vec<PostView>, NodeError> {
        self.core.call(|c| c.held_posts(now_ms())).await
    }

    /// Approves a post waiting for approval (moderators).
    pub async fn approve(&self, post: PostId) -> Result<ActionId, NodeError> {
        self.core.write(move |c| c.approve(post, now_ms())).await
    }

    /// Rejects a post waiting for approval (moderators): deleted
    /// everywhere like a hide.
    pub async fn reject(&self, post: PostId, reason: String) -> Result<ActionId, NodeError> {
        self.core
            .write(move |c| c.reject(post, reason, now_ms()))
            .await
    }

    /// Resolves an open report (its id full or short, as `mod queue`
    /// prints it) with `outcome` and a note sealed to the moderators.
    pub async fn resolve_report(
        &self,
        report: String,
        outcome: protocol::moderation::ReportOutcome,
        note: String,
    ) -> Result<ActionId, NodeError> {
        self.core
            .write(move |c| c.resolve_report(&report, outcome, &note, now_ms()))
            .await
    }

    /// The community's topic directory, marked joined or not.
    pub async fn topic_directory(&self) -> Result<Vec<crate::api::DirectoryEntryView>, NodeError> {
        self.core.call(|c| Ok(c.topic_directory())).await
    }

    /// Moderator: describes `topic` in the directory (empty: removes it).
    pub async fn describe_topic(
        &self,
        topic: TopicName,
        description: String,
    ) -> Result<ActionId, NodeError> {
        self.core
            .write(move |c| c.describe_topic(topic, &description, now_ms()))
            .await
    }

    /// Mutes (`true`) or unmutes an author for this node alone.
    pub async fn mute(&self, author: PublicKey, muted: bool) -> Result<(), NodeError> {
        self.core.call(move |c| c.mute(author, muted)).await
    }

    /// One post as a read would show it (its notice when hidden), or
    /// `None` when a read would not show it. Runs on the blocking pool.
    pub async fn post(&self, id: PostId) -> Result<Option<PostView>, NodeError> {
        let reader = self.core.call(|c| Ok(c.reader())).await?;
        tokio::task::spawn_blocking(move || reader.post(&id))
            .await
            .map_err(|_| NodeError::Stopped)?
    }

    /// The authors this node mutes (printable keys).
    pub async fn muted(&self) -> Result<Vec<String>, NodeError> {
        self.core.call(|c| Ok(c.muted())).await
    }

    /// Signs the next posts and actions with this pseudonym (`None`: none).
    /// Checked as `init` checks one; it is not saved here: the caller
    /// keeps it with [`crate::DataDir::set_pseudonym`]. [`NodeHandle::id`]
    /// shows it at once.
    pub async fn set_pseudonym(&self, name: Option<String>) -> Result<(), NodeError> {
        let name = crate::datadir::check_pseudonym(name)?;
        let for_core = name.clone();
        self.core
            .call(move |c| {
                c.set_pseudonym(for_core);
                Ok(())
            })
            .await?;
        self.ask(|r| Command::SetName(name, r)).await
    }

    /// Moves this identity to the key `new` (key succession): publishes a
    /// succession signed by the current key and co-signed by `new`, and
    /// from then on signs with `new`. Returns once the succession is
    /// stored (durable); refused, changing nothing, when the current key
    /// was already succeeded or `new` already belongs to an author. The
    /// caller keeps `new` in the data directory first
    /// ([`crate::DataDir::replace_author_key`]), so that a crash never
    /// leaves a published succession to a key nobody holds.
    pub async fn succeed(&self, new: protocol::SecretKey) -> Result<ActionId, NodeError> {
        let for_core = new.clone();
        let id = self
            .core
            .write(move |c| c.succeed(for_core, now_ms()))
            .await?;
        self.ask(|r| Command::SetAuthorKey(new, r)).await?;
        Ok(id)
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerView>, NodeError> {
        self.ask(Command::Peers).await
    }

    /// Peers, topics, store size and sync progress.
    pub async fn status(&self) -> Result<StatusView, NodeError> {
        let net = self.ask(Command::NetStatus).await?;
        let (core, damage) = self
            .core
            .call(|c| Ok((c.status()?, c.store.damage())))
            .await?;
        let community = self.community().await?;
        Ok(StatusView {
            community: community.name,
            community_id: community.id,
            peers: net.peers,
            posts: core.topics.iter().map(|t| t.posts).sum(),
            topics: core.topics,
            store_bytes: core.store_bytes,
            sync: core.sync,
            reachability: net.reachability,
            remembered_peers: net.remembered_peers,
            problems: net.problems,
            community_peers: net.community_peers,
            damage,
        })
    }

    /// An invite code with the community and this node's addresses.
    pub async fn invite(&self) -> Result<String, NodeError> {
        self.ask(Command::Invite).await
    }

    /// Dials a multiaddress.
    pub async fn dial(&self, addr: &str) -> Result<(), NodeError> {
        let addr = addr.to_string();
        self.ask(|r| Command::Dial(addr, r)).await
    }

    /// Dials a multiaddress and waits (at most
    /// [`crate::connect::CONNECT_TIMEOUT`]) until a connection is up: the
    /// peer that answered, or why none did, with what to do.
    pub async fn connect(&self, addr: &str) -> Result<ConnectView, NodeError> {
        let addr = addr.to_string();
        let shown = addr.clone();
        let timeout = crate::connect::CONNECT_TIMEOUT;
        tokio::time::timeout(timeout, self.ask(|r| Command::Connect(addr, r)))
            .await
            .map_err(|_| {
                NodeError::Network(format!(
                    "no connection to {shown} within {} s; check the address, or connect \
                     to another member",
                    timeout.as_secs()
                ))
            })?
    }

    /// Starts a sync round with every connected peer now.
    pub async fn sync_now(&self) -> Result<(), NodeError> {
        self.ask(Command::SyncNow).await
    }

    /// Gossips raw bytes on a gossip topic string without any check: only
    /// for tests that play a hostile peer.
    #[cfg(feature = "test-hooks")]
    pub async fn publish_raw(&self, gossip_topic: &str, bytes: Vec<u8>) -> Result<(), NodeError> {
        let topic = gossip_topic.to_string();
        self.ask(|r| Command::PublishRaw(topic, bytes, r)).await
    }

    /// Sends raw bytes as a sync request to `peer` (as a hostile node
    /// would, ignoring the membership gate) and returns the raw answer:
    /// only for tests.
    #[cfg(feature = "test-hooks")]
    pub async fn sync_raw(&self, peer: &str, bytes: Vec<u8>) -> Result<Vec<u8>, NodeError> {
        let peer = peer.to_string();
        self.ask(|r| Command::SyncRaw(peer, bytes, r)).await
    }

    /// The keys this node announces itself under in the DHT: what any DHT
    /// server sees of its topics (privacy tests).
    #[cfg(feature = "test-hooks")]
    pub async fn dht_keys(&self) -> Result<Vec<Vec<u8>>, NodeError> {
        self.ask(Command::DhtKeys).await
    }

    /// Takes a signed item through exactly the checks of an item arrived
    /// from a peer, without gossiping it (imports, tests, benchmarks).
    /// Returns whether it was newly stored.
    pub async fn import(&self, message: protocol::Message) -> Result<bool, NodeError> {
        self.core
            .call(move |c| {
                let verified = message.verify(&c.ctx(now_ms()))?;
                match c.arrive(verified, Origin::Import, now_ms()) {
                    Ok(o) => Ok(o == Outcome::Stored),
                    Err(Refusal::Store(e)) => Err(e.into()),
                    Err(refusal) => Err(NodeError::NotAllowed(refusal.to_string())),
                }
            })
            .await
    }

    /// Cuts this node off from a peer (`true`: disconnect and refuse its
    /// connections) or lets it back (`false`). For operators and for tests
    /// that split the network.
    pub async fn cut_off(&self, peer_id: &str, cut: bool) -> Result<(), NodeError> {
        let peer = peer_id.to_string();
        self.ask(|r| Command::CutOff(peer, cut, r)).await
    }

    /// Imports many signed items at once: signatures are checked on every
    /// core off the core's thread (so a second call's batch is verified
    /// while the first is written), then each item takes the one arrival
    /// path in order. Refused
    /// items are counted, not errors.
    pub async fn import_many(
        &self,
        messages: Vec<protocol::Message>,
    ) -> Result<ImportReport, NodeError> {
        self.core
            .call_verified(messages, move |c, verdicts| {
                let mut report = ImportReport::default();
                for outcome in c.arrive_checked(verdicts, Origin::Import, now_ms()) {
                    match outcome {
                        Ok(Outcome::Stored) => report.stored += 1,
                        Ok(_) => report.duplicates += 1,
                        Err(_) => report.refused += 1,
                    }
                }
                Ok(report)
            })
            .await
    }

    /// Sync traffic counters: (round trips, bytes sent, bytes received).
    pub async fn sync_counters(&self) -> Result<(u64, u64, u64), NodeError> {
        self.core.call(|c| Ok(c.sync.counters())).await
    }

    /// Gossip counters since start: copies received (duplicates included),
    /// unique messages, IWANT and IDONTWANT (diagnostics, benchmarks).
    pub async fn gossip_stats(&self) -> Result<crate::GossipStats, NodeError> {
        self.ask(Command::GossipStats).await
    }

    /// Flushes the store and stops the node.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.ask(Command::Shutdown).await
    }
}
