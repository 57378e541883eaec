//! The composed libp2p behaviour and the reasoned parameters of gossipsub
//! and its peer scoring (see ARCHITECTURE.md, "Gossip and peer scoring").

use std::time::Duration;

use libp2p::gossipsub::{
    self, MessageAuthenticity, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::{behaviour::toggle::Toggle, NetworkBehaviour};
use libp2p::{
    allow_block_list, autonat, dcutr, identify, mdns, ping, relay, request_response, upnp,
    StreamProtocol,
};
use prometheus_client::registry::Registry;

use crate::codec::{FrameCodec, SYNC_PROTOCOL};

/// Mesh degree D. Each node receives a message from most of its mesh
/// peers (up to D_hi between heartbeats): one first copy, the rest
/// duplicates that IDONTWANT cancels only when it outruns the forward.
/// Measured with the propagation benchmark (20 nodes on loopback, 1,000
/// posts, duplicates per post per receiving node, gossipsub's counters),
/// see ARCHITECTURE.md "Gossip and peer scoring":
///
/// | D / D_lo / D_hi | flood publish | IDONTWANT above | duplicates |
/// |---|---|---|---|
/// | 6 / 4 / 8 | on | 1,000 B (default) | 4.82 |
/// | 6 / 4 / 8 | off | 0 B | 3.89 |
/// | 4 / 2 / 6 | off | 0 B | 2.19 (2.31, 2.38 on later runs; 1.99 quiet) |
/// | 4 / 3 / 5 | off | 0 B | 2.03, 2.02, 1.95 (quiet machine) |
/// | 3 / 1 / 5 | off | 0 B | 1.61 (2 of 19,000 deliveries left to sync) |
/// | 3 / 2 / 4 | off | 0 B | 0.69, 0.79 (all 19,000 by gossip) |
///
/// On loopback a forward takes about a millisecond, so IDONTWANT rarely
/// outruns it and each node receives about (mesh degree − 2) duplicates:
/// with D 4 and D_hi 5 or 6 that sat right at the target of 2. D 3 with
/// D_lo 2 keeps every node on at least two mesh paths (a mesh of 3 with
/// D_lo 1 let messages fall through to sync) and lazy gossip (IHAVE to
/// D_lazy more peers every heartbeat) repairs any gap; sync is the
/// backstop.
pub(crate) const MESH_N: usize = 3;
/// Below this many mesh peers, graft more at the next heartbeat: two, so
/// that no node hangs off the mesh by a single link.
pub(crate) const MESH_N_LOW: usize = 2;
/// Above this many, prune.
pub(crate) const MESH_N_HIGH: usize = 4;
/// A node dials providers of a topic found in the DHT only while it knows
/// fewer peers in the topic than this: a full mesh (D_hi) plus as many for
/// lazy gossip (D_lazy = D), not every member of a large topic.
pub(crate) const TOPIC_PEERS: usize = MESH_N_HIGH + MESH_N;
/// Above this many connections, a node closes those to peers in none of
/// its meshes (DHT queries connect to many peers, and gossipsub's open
/// streams would keep every such connection forever).
pub(crate) const MAX_PEERS: usize = TOPIC_PEERS + 2;
/// A new connection is never closed as surplus before this age: the mesh
/// forms at the next heartbeats and the first sync needs a moment.
pub(crate) const PEER_GRACE: Duration = Duration::from_secs(10);
/// Score below which a peer is disconnected and banned for a while: the same
/// as gossipsub's graylist threshold, where it stops listening to the peer.
pub(crate) const DISCONNECT_SCORE: f64 = -80.0;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Peers this node refuses to talk to (misbehaving, or cut off by the
    /// operator); checked before any other behaviour sees a connection.
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Gossip, its payloads sealed under the community's key
    /// ([`super::seal`]).
    pub(crate) gossipsub: gossipsub::Behaviour<super::seal::GossipSeal>,
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) sync: request_response::Behaviour<FrameCodec>,
    /// Reservations on relays, for a node behind NAT or hiding its address.
    pub(crate) relay_client: relay::client::Behaviour,
    /// Relaying for other members (off with `--no-relay-service` and for a
    /// hidden node).
    pub(crate) relay: Toggle<relay::Behaviour>,
    /// Hole punching: upgrades a relayed connection to a direct one.
    pub(crate) dcutr: Toggle<dcutr::Behaviour>,
    /// Asks peers whether this node's addresses are reachable from outside.
    pub(crate) autonat: Toggle<autonat::v2::client::Behaviour>,
    /// Answers other nodes' AutoNAT questions.
    pub(crate) autonat_server: Toggle<autonat::v2::server::Behaviour>,
    /// Port mapping on the home router.
    pub(crate) upnp: Toggle<upnp::tokio::Behaviour>,
    /// Connections in total, per peer and in their handshake
    /// ([`super::limits`]).
    pub(crate) limits: libp2p::connection_limits::Behaviour,
    /// Inbound connections per remote address ([`super::limits::PerIp`]).
    pub(crate) per_ip: super::limits::PerIp,
    /// Hands out the community manifest to nodes joining by invite.
    pub(crate) manifest: request_response::Behaviour<FrameCodec>,
    /// Shows newcomers the newest rules and the topic directory
    /// ([`super::welcome`]).
    pub(crate) welcome: request_response::Behaviour<FrameCodec>,
    /// Membership proofs ([`super::membership`]).
    pub(crate) member: request_response::Behaviour<FrameCodec>,
}

/// What the behaviour is built with (from [`crate::NodeConfig`]).
pub(crate) struct BehaviourOptions {
    pub(crate) mdns: bool,
    pub(crate) upnp: bool,
    pub(crate) relay_service: bool,
    /// Hiding its address: no DCUtR, AutoNAT, UPnP, mDNS or relay service,
    /// and a DHT client only (a DHT server's address is handed to anyone).
    pub(crate) hidden: bool,
    pub(crate) max_transmit: usize,
    /// Seals and opens gossip payloads with the community's gossip key.
    pub(crate) seal: super::seal::GossipSeal,
}

/// Relay service limits. A relay is a member's own laptop or small server:
/// it carries gossip and sync for a few members behind NAT, not a public
/// service. See ARCHITECTURE.md, "Relays".
pub(crate) mod relay_limits {
    use std::time::Duration;
    /// Members behind NAT it holds reservations for at once.
    pub(crate) const MAX_RESERVATIONS: usize = 32;
    /// A member needs one reservation; a second covers a reconnect race.
    pub(crate) const MAX_RESERVATIONS_PER_PEER: usize = 2;
    /// Renewed by the client before it ends.
    pub(crate) const RESERVATION_DURATION: Duration = Duration::from_secs(60 * 60);
    /// Relayed connections at once: a few members each talking to a few.
    pub(crate) const MAX_CIRCUITS: usize = 64;
    /// Per source peer.
    pub(crate) const MAX_CIRCUITS_PER_PEER: usize = 8;
    /// A relayed connection lasts this long, then is dialled again (or
    /// replaced by a direct one): long enough for a conversation's gossip
    /// and a catch-up, short enough that the relay's cost stays bounded.
    pub(crate) const MAX_CIRCUIT_DURATION: Duration = Duration::from_secs(30 * 60);
    /// Bytes per relayed connection (each way counted together): about
    /// 40,000 posts, or a catch-up of a busy topic.
    pub(crate) const MAX_CIRCUIT_BYTES: u64 = 16 * 1024 * 1024;
}

/// The relay service's limits (see [`relay_limits`]). Rate limits per
/// peer and per IP stay the library's (a reservation per peer every 2
/// minutes on average, 60 per IP per minute).
fn relay_config() -> relay::Config {
    use relay_limits::*;
    relay::Config {
        max_reservations: MAX_RESERVATIONS,
        max_reservations_per_peer: MAX_RESERVATIONS_PER_PEER,
        reservation_duration: RESERVATION_DURATION,
        max_circuits: MAX_CIRCUITS,
        max_circuits_per_peer: MAX_CIRCUITS_PER_PEER,
        max_circuit_duration: MAX_CIRCUIT_DURATION,
        max_circuit_bytes: MAX_CIRCUIT_BYTES,
        ..relay::Config::default()
    }
}

/// Score parameters of one topic (posts or the community topic).
pub(crate) fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        // P1: staying in the mesh earns a little (at most +36 after an hour).
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 3600.0,
        // P2: delivering a message first earns up to +50.
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.5,
        first_message_deliveries_cap: 50.0,
        // P3/P3b off: support topics are quiet for hours; an expected
        // delivery rate would punish honest peers of a silent topic.
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // P4: each invalid message costs count² × 10: one bad message is
        // forgiven (clock skew), three put the peer below the graylist.
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.9,
        ..TopicScoreParams::default()
    }
}

fn score_params() -> (PeerScoreParams, PeerScoreThresholds) {
    let params = PeerScoreParams {
        // Many honest nodes share one address (home NAT, a test machine):
        // counting peers per IP would punish them, so it is off.
        ip_colocation_factor_weight: 0.0,
        app_specific_weight: 1.0,
        ..PeerScoreParams::default()
    };
    let thresholds = PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: DISCONNECT_SCORE,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    };
    (params, thresholds)
}

impl Behaviour {
    /// The behaviour of a node; gossipsub records its metrics in `metrics`
    /// (read back as [`crate::GossipStats`]).
    pub(crate) fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        options: &BehaviourOptions,
        metrics: &mut Registry,
    ) -> Result<Self, String> {
        let peer_id = key.public().to_peer_id();
        let max_transmit = options.max_transmit;
        let mdns_on = options.mdns && !options.hidden;
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(ValidationMode::Anonymous)
            .validate_messages()
            .message_id_fn(|m: &gossipsub::Message| {
                MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
            })
            .mesh_n(MESH_N)
            .mesh_n_low(MESH_N_LOW)
            .mesh_n_high(MESH_N_HIGH)
            .gossip_lazy(MESH_N)
            // The publisher sends to its mesh only, not to every peer of
            // the topic: one copy per mesh edge instead of one per peer.
            .flood_publish(false)
            // IDONTWANT for every message (the default is only above
            // 1,000 bytes; posts are ~250–400): a ~40-byte control message
            // saves a duplicate of a few hundred bytes whenever it arrives
            // before the peer forwards; the publisher sends it first too.
            .idontwant_message_size_threshold(0)
            .idontwant_on_publish(true)
            // gossipsub allows at most D / 2 outbound peers as the minimum.
            .mesh_outbound_min(1)
            .heartbeat_interval(Duration::from_millis(700))
            // A message waits in gossipsub's cache for its verdict, which
            // the core sends from its own thread; after `history_length`
            // heartbeats it is dropped and a late verdict (and the penalty
            // of an invalid message) is lost. 15 × 700 ms leaves a busy
            // core about 10 s (the default, 5, left 3.5 s: under load a
            // flood of forged posts went unpunished).
            .history_length(15)
            .max_transmit_size(max_transmit)
            .duplicate_cache_time(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        let mut gossipsub = gossipsub::Behaviour::new_with_transform(
            MessageAuthenticity::Anonymous,
            gossip_config,
            options.seal.clone(),
        )
        .map_err(str::to_string)?
        .with_metrics(
            metrics.sub_registry_with_prefix(super::gossip_stats::PREFIX),
            gossipsub::MetricsConfig::default(),
        );
        let (params, thresholds) = score_params();
        gossipsub.with_peer_score(params, thresholds)?;

        let mut kad_config = kad::Config::new(StreamProtocol::new("/mutual/kad/1"));
        kad_config.set_provider_publication_interval(Some(Duration::from_secs(600)));
        let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
        kad.set_mode(Some(if options.hidden {
            kad::Mode::Client
        } else {
            kad::Mode::Server
        }));

        // Listen addresses are pushed when they change (a new port, a new
        // relay reservation), so peers that know this node find it again.
        let identify = identify::Behaviour::new(
            identify::Config::new("/mutual/id/1".into(), key.public())
                .with_agent_version(format!("mutual/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
        );
        let mdns = if mdns_on {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let sync = request_response::Behaviour::with_codec(
            FrameCodec,
            [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );
        Ok(Behaviour {
            blocked: allow_block_list::Behaviour::default(),
            gossipsub,
            kad,
            identify,
            ping: ping::Behaviour::default(),
            mdns: Toggle::from(mdns),
            sync,
            relay_client,
            relay: Toggle::from((options.relay_service && !options.hidden).then(|| {
                let mut relay = relay::Behaviour::new(peer_id, relay_config());
                // Advertised from the start rather than once AutoNAT
                // confirms an address (the library's default): AutoNAT v2
                // asks only peers this node dialled, and a member's public
                // node is mostly dialled by others, so it would never
                // relay. Only peers that reached this node by dialling it
                // directly use it as a relay (`peers`), so a node behind
                // NAT is never picked.
                relay.set_status(Some(relay::Status::Enable));
                relay
            })),
            dcutr: Toggle::from((!options.hidden).then(|| dcutr::Behaviour::new(peer_id))),
            autonat: Toggle::from((!options.hidden).then(autonat::v2::client::Behaviour::default)),
            autonat_server: Toggle::from(
                (!options.hidden).then(autonat::v2::server::Behaviour::default),
            ),
            upnp: Toggle::from(
                (options.upnp && !options.hidden).then(upnp::tokio::Behaviour::default),
            ),
            limits: super::limits::connection_limits(),
            per_ip: super::limits::PerIp::new(super::limits::MAX_PER_IP),
            manifest: super::manifest_fetch::serving_behaviour(),
            welcome: super::welcome::serving_behaviour(),
            member: super::membership::behaviour(),
        })
    }
}
