//! How a node is started.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::datadir::DataDir;

/// Settings of one node. Every limit is here or a named constant.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where keys, community and store live.
    pub data_dir: DataDir,
    /// Multiaddresses to listen on, as given with `--listen`. Empty (the
    /// default): TCP and QUIC on [`NodeConfig::listen_host`] at the port
    /// the data directory remembers, so peers find the node again at the
    /// same address after a restart.
    pub listen: Vec<String>,
    /// The interface to listen on when `listen` is empty.
    pub listen_host: IpAddr,
    /// The port to listen on (`--port`), instead of the remembered one;
    /// it is remembered in turn.
    pub port: Option<u16>,
    /// Listen on QUIC too when `listen` is empty.
    pub quic: bool,
    /// Multiaddresses to dial at start (in addition to the ones remembered
    /// from the invite).
    pub bootstrap: Vec<String>,
    /// Find peers on the local network with mDNS (`--lan`). Off by default:
    /// it announces a mutual node to everyone on the office network.
    pub mdns: bool,
    /// Ask the home router for a port mapping (UPnP). Only for a node that
    /// listens beyond loopback.
    pub upnp: bool,
    /// Relay for other members when this node is publicly reachable.
    pub relay_service: bool,
    /// Never listen publicly nor connect directly to another member: reach
    /// the network only through relay circuits (`--hide-address`).
    pub hide_address: bool,
    /// The relays a hidden node uses (`--via`); empty: the community's
    /// relays from the bootstrap addresses.
    pub via: Vec<String>,
    /// How often a node reconciles its topics with its peers even when
    /// nothing prompted it: slow, since gossip carries the live traffic.
    pub sync_interval: Duration,
    /// How often posts received from the network are flushed to disk.
    pub flush_interval: Duration,
    /// How often the node looks for other providers of its topics in the DHT.
    pub discovery_interval: Duration,
    /// How often peer management runs (redials, relay reservations).
    pub peer_interval: Duration,
    /// Most posts one author may create in any 60 s of creation time; more
    /// are refused by every node, whether they come by gossip, by sync or
    /// from the local user (see ARCHITECTURE.md, "Limits").
    pub author_posts_per_minute: usize,
    /// Largest gossip frame this node sends or accepts. Only tests of
    /// hostile peers raise it, to send what honest nodes never would.
    pub gossip_max_transmit: usize,
    /// Tests of a hostile peer only: never send a membership proof (the
    /// other side's gate is then what stands between it and the data).
    #[cfg(feature = "test-hooks")]
    pub withhold_membership_proof: bool,
    /// Tests of a hostile peer only: never judge other nodes' membership
    /// proofs nor close a connection for want of one (a stranger that
    /// stays connected as long as the other side lets it).
    #[cfg(feature = "test-hooks")]
    pub ignore_membership_proofs: bool,
}

impl NodeConfig {
    /// Defaults for a node on `data_dir`: every interface, TCP and QUIC on
    /// the remembered port, no mDNS, UPnP and relay service on.
    pub fn new(data_dir: DataDir) -> Self {
        NodeConfig {
            data_dir,
            listen: Vec::new(),
            listen_host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: None,
            quic: true,
            bootstrap: Vec::new(),
            mdns: false,
            upnp: true,
            relay_service: true,
            hide_address: false,
            via: Vec::new(),
            sync_interval: Duration::from_secs(60),
            flush_interval: Duration::from_millis(100),
            discovery_interval: Duration::from_secs(30),
            peer_interval: Duration::from_secs(1),
            gossip_max_transmit: protocol::wire::MAX_MESSAGE_BYTES + 1024,
            author_posts_per_minute: crate::AUTHOR_POSTS_PER_MINUTE,
            #[cfg(feature = "test-hooks")]
            withhold_membership_proof: false,
            #[cfg(feature = "test-hooks")]
            ignore_membership_proofs: false,
        }
    }

    /// Settings for tests and the demo: loopback only (TCP, port remembered
    /// in the data directory), no mDNS, no UPnP, quicker periodic work.
    pub fn local(data_dir: DataDir) -> Self {
        NodeConfig {
            listen_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            quic: false,
            mdns: false,
            upnp: false,
            sync_interval: Duration::from_secs(5),
            discovery_interval: Duration::from_secs(2),
            peer_interval: Duration::from_millis(250),
            ..NodeConfig::new(data_dir)
        }
    }
}
