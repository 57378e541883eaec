//! A mutual node: the store, the libp2p swarm, history sync and moderation
//! enforcement. One task (the event loop) owns the swarm and the store and is
//! driven by commands from cloneable [`NodeHandle`]s and by swarm events.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod api;
pub mod config;
pub mod connect;
pub mod control;
pub mod datadir;
pub mod error;
pub mod handle;
pub mod invites;
pub mod limits;
pub mod store;

mod behaviour;
mod codec;
mod commands;
mod event_loop;
mod gossip_stats;
mod ingest;
mod manifest_fetch;
mod moderation_view;
mod peers;
mod sync_driver;
mod transport;
mod verify;
mod views;

pub use config::NodeConfig;
pub use datadir::DataDir;
pub use error::NodeError;
pub use gossip_stats::GossipStats;
#[cfg(feature = "test-hooks")]
pub use handle::GossipVerdict;
pub use handle::{ImportReport, NodeEvent, NodeHandle, ReadQuery};
pub use ingest::{AUTHOR_BURST, AUTHOR_GOSSIP_PER_MINUTE, AUTHOR_POSTS_PER_MINUTE};
pub use manifest_fetch::fetch_manifest;
pub use peers::PeerRecord;
pub use sync_driver::{INBOUND_REQUESTS_PER_WINDOW, INBOUND_WINDOW};

/// A node that is running: its handle and the task of its event loop.
pub struct RunningNode {
    /// The handle to talk to it.
    pub handle: NodeHandle,
    /// Resolves when the event loop has stopped (after a flush).
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a node on `config`'s data directory: opens the store, binds the
/// listeners, dials bootstrap peers and spawns the event loop. Returns once
/// the node listens, so its addresses are known.
pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    event_loop::start(config).await
}

/// The current time in ms since the Unix epoch; the node's only clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
