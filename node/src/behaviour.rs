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
use libp2p::{allow_block_list, identify, mdns, ping, request_response, StreamProtocol};
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
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) sync: request_response::Behaviour<FrameCodec>,
    /// Hands out the community manifest to nodes joining by invite.
    pub(crate) manifest: request_response::Behaviour<FrameCodec>,
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
        mdns_on: bool,
        max_transmit: usize,
        metrics: &mut Registry,
    ) -> Result<Self, String> {
        let peer_id = key.public().to_peer_id();
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
            .max_transmit_size(max_transmit)
            .duplicate_cache_time(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        let mut gossipsub =
            gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)
                .map_err(str::to_string)?
                .with_metrics(
                    metrics.sub_registry_with_prefix(crate::gossip_stats::PREFIX),
                    gossipsub::MetricsConfig::default(),
                );
        let (params, thresholds) = score_params();
        gossipsub.with_peer_score(params, thresholds)?;

        let mut kad_config = kad::Config::new(StreamProtocol::new("/mutual/kad/1"));
        kad_config.set_provider_publication_interval(Some(Duration::from_secs(600)));
        let mut kad = kad::Behaviour::with_config(peer_id, MemoryStore::new(peer_id), kad_config);
        kad.set_mode(Some(kad::Mode::Server));

        let identify = identify::Behaviour::new(
            identify::Config::new("/mutual/id/1".into(), key.public())
                .with_agent_version(format!("mutual/{}", env!("CARGO_PKG_VERSION"))),
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
            manifest: crate::manifest_fetch::serving_behaviour(),
        })
    }
}
