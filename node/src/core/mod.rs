//! The node's core: every rule about what arrives and what the user does —
//! the store, the moderation state, the limits, the joined topics, the
//! reports and the sync sessions — and no libp2p type. It takes arrivals
//! and commands and returns verdicts and [`Effect`]s that the network
//! carries out (iroh-gossip's `proto` shape), so its rules are unit-tested
//! against a temporary store without a network, and the benchmark measures
//! the real arrival path.
//!
//! The core runs on a thread of its own ([`worker`]); the event loop, which
//! owns only the swarm, never waits for it. Reads and the sync responder
//! run on tokio's blocking pool against a snapshot ([`reads::Reader`],
//! [`sync::Responder`]), so neither waits for the core either.

mod admission;
pub mod arrival;
mod clock;
mod directory;
mod enforce;
pub mod limits;
mod local;
mod log;
pub mod probation;
pub(crate) mod pulls;
pub mod reads;
mod reports;
pub mod sync;
pub(crate) mod worker;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use protocol::{
    CommunityId, Identity, ModerationState, PublicKey, SignedManifest, TopicName, ValidationContext,
};
use tokio::sync::broadcast;

use crate::error::NodeError;
use crate::handle::NodeEvent;
use crate::store::Store;

pub use arrival::{Origin, Outcome, Refusal, Verdict};
pub use reports::ResealJob;

/// The name of a peer as the core sees it: the network's printable peer
/// id, opaque here, for per-peer limits and sync sessions. The core never
/// dials one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerRef(pub String);

/// The gossip channel an item travels on: its topic for a post, the
/// community's channel for everything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The community's own channel (retractions, actions, reports).
    Community,
    /// A topic's channel (its posts).
    Topic(TopicName),
}

/// A sync request's number, unique per core: an answer or a failure is
/// matched to the session that asked, never to a later one.
pub type SyncTicket = u64;

/// What the core asks the network to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Gossip an encoded item (a local write, once it is durable).
    Gossip {
        /// Where.
        channel: Channel,
        /// The encoded `Message`.
        bytes: Vec<u8>,
    },
    /// Subscribe to a joined topic and look for its members.
    Subscribe(TopicName),
    /// Leave a topic's channel.
    Unsubscribe(TopicName),
    /// Sync a newly joined topic with every connected peer.
    SyncTopic(TopicName),
    /// Send a sync request to a peer.
    SyncRequest {
        /// To whom.
        peer: PeerRef,
        /// The session's request number.
        ticket: SyncTicket,
        /// The encoded request.
        bytes: Vec<u8>,
    },
    /// Content may have come back (an unblock or unhide): sync with every
    /// connected peer.
    SyncWithAll,
    /// This node held its own session with a peer that is pulling from it
    /// ([`pulls`]): sync with that peer again after a moment.
    SyncLater(PeerRef),
}

/// The core's settings.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Posts one author may create in any 60 s (by creation time).
    pub author_posts_per_minute: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            author_posts_per_minute: crate::AUTHOR_POSTS_PER_MINUTE,
        }
    }
}

/// What readers on other threads share with the core: the joined topics
/// and the moderation state, replaced (never mutated in place) when they
/// change.
#[derive(Clone)]
pub struct Shared {
    inner: Arc<RwLock<SharedState>>,
    /// Peers pulling a scope from this node now (written by the responder).
    pub(crate) pulls: Arc<pulls::Pulls>,
}

#[derive(Clone)]
struct SharedState {
    joined: Arc<BTreeSet<TopicName>>,
    moderation: Arc<ModerationState>,
    mutes: Arc<BTreeSet<PublicKey>>,
}

impl Shared {
    fn new(moderation: ModerationState) -> Shared {
        Shared {
            inner: Arc::new(RwLock::new(SharedState {
                joined: Arc::default(),
                moderation: Arc::new(moderation),
                mutes: Arc::default(),
            })),
            pulls: Arc::default(),
        }
    }

    fn read(&self) -> SharedState {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn write(&self, f: impl FnOnce(&mut SharedState)) {
        match self.inner.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The joined topics now.
    pub fn joined(&self) -> Arc<BTreeSet<TopicName>> {
        self.read().joined
    }

    /// The moderation state now.
    pub fn moderation(&self) -> Arc<ModerationState> {
        self.read().moderation
    }

    /// The muted authors now.
    pub fn mutes(&self) -> Arc<BTreeSet<PublicKey>> {
        self.read().mutes
    }
}

/// The core. See the module documentation.
pub struct Core {
    pub(crate) store: Store,
    pub(crate) identity: Identity,
    pub(crate) manifest: SignedManifest,
    pub(crate) community: CommunityId,
    /// The fold of the community log.
    pub(crate) moderation: ModerationState,
    /// Whether the moderation state, the joined topics or the mutes changed
    /// since readers last got a copy ([`Core::publish_shared`]).
    pub(crate) shared_stale: bool,
    /// Reports in the community log (all, not only this node's).
    pub(crate) stored_reports: usize,
    pub(crate) joined: BTreeSet<TopicName>,
    pub(crate) mutes: BTreeSet<PublicKey>,
    /// Reports this node can read ([`reports`]).
    pub(crate) reports: reports::Reports,
    /// Whether the moderators changed since open reports were last
    /// checked for re-sealing ([`Core::take_reseal_jobs`]).
    pub(crate) reseal_due: bool,
    pub(crate) limits: limits::Limits,
    pub(crate) sync: sync::Sessions,
    pub(crate) clock: clock::SignerClock,
    events: broadcast::Sender<NodeEvent>,
    shared: Shared,
    /// Something from the network was written since the last flush.
    pub(crate) dirty: bool,
    effects: Vec<Effect>,
    pub(crate) config: CoreConfig,
}

impl Core {
    /// Opens the core over `store`: folds the stored community log,
    /// enforces the folded state again (a crash may have left a write
    /// half-done), and loads joined topics, mutes and reports.
    pub fn open(
        store: Store,
        identity: Identity,
        manifest: SignedManifest,
        events: broadcast::Sender<NodeEvent>,
        config: CoreConfig,
    ) -> Result<Core, NodeError> {
        let community = manifest.id();
        let manifest_admin = manifest.content.admin;
        let stored = log::load_log(&store, &manifest, community, &identity.public())?;
        let joined: BTreeSet<TopicName> = store.joined_topics()?.into_iter().collect();
        let mutes = store.mutes()?;
        let clock = clock::SignerClock::load(&store)?;
        let mut core = Core {
            store,
            identity,
            manifest,
            community,
            moderation: stored.moderation,
            shared_stale: true,
            stored_reports: stored.report_count,
            joined,
            mutes,
            reports: reports::Reports::default(),
            reseal_due: true,
            limits: limits::Limits::default(),
            sync: sync::Sessions::default(),
            clock,
            events,
            shared: Shared::new(ModerationState::new(community, manifest_admin)),
            dirty: false,
            effects: Vec::new(),
            config,
        };
        for sealed in &stored.reports {
            core.note_report(sealed);
        }
        core.enforce_all()?;
        core.publish_shared();
        Ok(core)
    }

    /// The state shared with readers on other threads.
    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// Makes the current joined topics, moderation state and mutes visible
    /// to readers, if they changed: once per request the core handles, not
    /// once per item (a log catch-up applies thousands of actions).
    pub(crate) fn publish_shared(&mut self) {
        if !self.shared_stale {
            return;
        }
        self.shared_stale = false;
        let joined = Arc::new(self.joined.clone());
        let moderation = Arc::new(self.moderation.clone());
        let mutes = Arc::new(self.mutes.clone());
        self.shared.write(|s| {
            s.joined = joined;
            s.moderation = moderation;
            s.mutes = mutes;
        });
    }

    /// The validation context at `now_ms`.
    pub fn ctx(&self, now_ms: u64) -> ValidationContext {
        ValidationContext {
            community: self.community,
            now_ms,
        }
    }

    /// The store (for reads and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The moderation state now.
    pub fn moderation(&self) -> &ModerationState {
        &self.moderation
    }

    /// Whether a topic is joined.
    pub fn is_joined(&self, topic: &TopicName) -> bool {
        self.joined.contains(topic)
    }

    /// The joined topics.
    pub fn joined(&self) -> &BTreeSet<TopicName> {
        &self.joined
    }

    /// Takes the effects produced since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub(crate) fn effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    pub(crate) fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    /// Whether anyone follows the node's events (views are built only then).
    pub(crate) fn followed(&self) -> bool {
        self.events.receiver_count() > 0
    }
}
