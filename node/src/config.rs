//! How a node is started.

use std::time::Duration;

use crate::datadir::DataDir;

/// Settings of one node. Every limit is here or a named constant.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where keys, community and store live.
    pub data_dir: DataDir,
    /// Multiaddresses to listen on (default: all interfaces, TCP and QUIC,
    /// port chosen by the system).
    pub listen: Vec<String>,
    /// Multiaddresses to dial at start (in addition to the ones remembered
    /// from the invite).
    pub bootstrap: Vec<String>,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// How often a node reconciles its topics with its peers even when
    /// nothing prompted it: slow, since gossip carries the live traffic.
    pub sync_interval: Duration,
    /// How often posts received from the network are flushed to disk.
    pub flush_interval: Duration,
    /// How often the node looks for other providers of its topics in the DHT.
    pub discovery_interval: Duration,
    /// Most posts one author may create in any 60 s of creation time; more
    /// are refused by every node, whether they come by gossip, by sync or
    /// from the local user (see ARCHITECTURE.md, "Limits").
    pub author_posts_per_minute: usize,
    /// Largest gossip frame this node sends or accepts. Only tests of
    /// hostile peers raise it, to send what honest nodes never would.
    pub gossip_max_transmit: usize,
}

impl NodeConfig {
    /// Defaults for a node on `data_dir`.
    pub fn new(data_dir: DataDir) -> Self {
        NodeConfig {
            data_dir,
            listen: vec![
                "/ip4/0.0.0.0/tcp/0".into(),
                "/ip4/0.0.0.0/udp/0/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            sync_interval: Duration::from_secs(60),
            flush_interval: Duration::from_millis(100),
            discovery_interval: Duration::from_secs(30),
            gossip_max_transmit: protocol::wire::MAX_MESSAGE_BYTES + 1024,
            author_posts_per_minute: crate::ingest::AUTHOR_POSTS_PER_MINUTE,
        }
    }

    /// Settings for tests and the demo: loopback only, no mDNS, quicker
    /// periodic work.
    pub fn local(data_dir: DataDir) -> Self {
        NodeConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            mdns: false,
            sync_interval: Duration::from_secs(5),
            discovery_interval: Duration::from_secs(2),
            ..NodeConfig::new(data_dir)
        }
    }
}
