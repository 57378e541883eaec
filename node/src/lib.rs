//! A mutual node, in three parts: the [`store`] (the only user of sled); the
//! [`core`], every rule about what arrives and what the user does, with no
//! libp2p type, on a thread of its own; and the network, whose event loop
//! owns only the libp2p swarm. Cloneable [`NodeHandle`]s talk to both.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod admission;
pub mod allocator;
pub mod api;
pub mod config;
pub mod control;
pub mod core;
pub mod datadir;
pub mod error;
pub mod handle;
pub mod invites;
pub mod store;
pub mod succession;
pub mod vault;

mod codec;
mod moderation_view;
mod network;
mod verify;
mod views;

pub use network::{connect, limits};

/// The framing of `/mutual/sync/1` (other implementations, and tests that
/// play a peer by hand, speak it too).
pub use codec::{FrameCodec, SYNC_PROTOCOL};
pub use config::NodeConfig;
pub use core::Verdict as GossipVerdict;
pub use datadir::DataDir;
pub use error::NodeError;
pub use handle::{ImportReport, NodeEvent, NodeHandle, ReadQuery, RemovalReason};
pub use network::gossip_stats::GossipStats;
pub use network::manifest_fetch::fetch_manifest;
pub use network::peers::PeerRecord;
pub use network::seal::{GossipSeal, SEAL_OVERHEAD};

/// Posts one author may create in any 60 s (by the signed creation time),
/// enforced the same way on every node and for every origin. A support
/// conversation is a few posts a minute at its busiest; 30 leaves room
/// while one key cannot drown a topic.
pub const AUTHOR_POSTS_PER_MINUTE: usize = 30;

/// A node that is running: its handle and the task of its event loop.
pub struct RunningNode {
    /// The handle to talk to it.
    pub handle: NodeHandle,
    /// Resolves when the event loop has stopped (after a flush).
    /// Its result says whether the node stopped because it was asked to
    /// (`Ok`) or because a part of it failed (`Err`): a supervisor must
    /// restart it then.
    pub task: tokio::task::JoinHandle<Result<(), NodeError>>,
}

/// Starts a node on `config`'s data directory: opens the store, binds the
/// listeners, dials bootstrap peers and spawns the event loop. Returns once
/// the node listens, so its addresses are known.
pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    network::start(config).await
}

/// The current time in ms since the Unix epoch; the node's only clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
