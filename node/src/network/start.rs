//! Starting a node: the store and the core, the swarm and its listeners,
//! then the event loop.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, yamux, Multiaddr, PeerId, SwarmBuilder};
use prometheus_client::registry::Registry;
use tokio::sync::{broadcast, mpsc};

use super::behaviour::{Behaviour, BehaviourOptions};
use super::peers::{is_relayed, peer_of, PeerManager, PeerPolicy};
use super::EventLoop;
use crate::config::NodeConfig;
use crate::core::{Core, CoreConfig};
use crate::error::NodeError;
use crate::handle::NodeHandle;
use crate::store::Store;
use crate::{now_ms, RunningNode};

/// Command queue depth: enough for bursts from the control socket.
const COMMAND_QUEUE: usize = 256;
/// Event broadcast depth for followers; slow followers skip ahead.
const EVENT_QUEUE: usize = 1024;

pub(crate) async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    let data = &config.data_dir;
    data.ensure()?;
    let identity = data.identity()?;
    let manifest = data.community()?.ok_or(NodeError::NoCommunity)?;
    let community = manifest
        .verify_manifest(now_ms())
        .map_err(NodeError::Invalid)?;
    let secret = data.community_secret()?.ok_or(NodeError::NoCommunity)?;
    let key = data.transport_key()?;
    let store_path = data.store_path();
    let store_keys = data.store_keys()?;
    let store = tokio::task::spawn_blocking(move || Store::open(&store_path, store_keys))
        .await
        .map_err(|e| NodeError::Network(format!("opening the store: {e}")))??;
    // Loud: acknowledged writes lost to damage on disk. The node syncs the
    // community log and every shared topic with each peer as it connects
    // (and again as each peer subscribes), which fetches them back.
    if let Some(damage) = store.damage() {
        tracing::error!("{damage}");
    }

    let mut bootstrap: Vec<Multiaddr> = Vec::new();
    for addr in config.bootstrap.iter().chain(data.bootstrap().iter()) {
        match addr.parse::<Multiaddr>() {
            Ok(ma) => bootstrap.push(ma),
            Err(e) if config.bootstrap.contains(addr) => {
                return Err(NodeError::BadInput(format!(
                    "bad --bootstrap address {addr}: {e}"
                )))
            }
            Err(e) => tracing::warn!("ignoring a bad remembered bootstrap address {addr}: {e}"),
        }
    }
    let hidden = config.hide_address;
    let via = relays_to_use(&config, &bootstrap)?;
    let listen = listen_addrs_of(&config)?;
    let loopback_only = !hidden && listen.iter().all(is_loopback);

    let options = BehaviourOptions {
        mdns: config.mdns,
        upnp: config.upnp && !loopback_only,
        relay_service: config.relay_service,
        hidden,
        max_transmit: config.gossip_max_transmit,
        seal: super::seal::GossipSeal::new(&secret.gossip_key(&community)),
    };
    let only_to = hidden.then(|| via.clone());
    let mut gossip_metrics = Registry::default();
    let net = |e: &dyn std::fmt::Display| NodeError::Network(e.to_string());
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            super::transport::build(key, only_to)
                .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        })
        .map_err(|e| net(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| net(&e))?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, relay_client, &options, &mut gossip_metrics)
                .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        })
        .map_err(|e| net(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();

    for ma in &listen {
        swarm
            .listen_on(ma.clone())
            .map_err(|e| NodeError::Network(format!("cannot listen on {ma}: {e}")))?;
    }
    // Wait until every listener reports its address, so callers can print
    // them and tests can dial them.
    let mut listen_addrs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let port_hint = |e: &dyn std::fmt::Display| {
        NodeError::Network(format!(
            "cannot listen on {}: {e}. If the port is in use (another mutual node on this \
             machine?), start with --port PORT to choose another",
            listen
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    };
    while listen_addrs.len() < listen.len() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| NodeError::Network("listeners did not start within 10 s".into()))?;
        match event {
            SwarmEvent::NewListenAddr { address, .. } => listen_addrs.push(address),
            SwarmEvent::ListenerError { error, .. } => return Err(port_hint(&error)),
            SwarmEvent::ListenerClosed { reason: Err(e), .. } => return Err(port_hint(&e)),
            _ => {}
        }
    }
    if config.listen.is_empty() && !hidden {
        if let Some(port) = listen.first().and_then(port_of) {
            data.remember_port(port)?;
        }
    }

    let records = store
        .peer_records()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(p, r)| PeerId::from_bytes(&p).ok().map(|p| (p, r)));
    let peers = PeerManager::new(
        PeerPolicy {
            hidden,
            via: via.clone(),
            loopback_only,
        },
        records,
        now_ms(),
    );
    let book = store.clone();
    let (events, _) = broadcast::channel(EVENT_QUEUE);
    let core_config = CoreConfig {
        author_posts_per_minute: config.author_posts_per_minute,
    };
    let (core, joined) = {
        let identity = identity.clone();
        let manifest = manifest.clone();
        let events = events.clone();
        let data = data.clone();
        tokio::task::spawn_blocking(move || {
            let mut core = Core::open(store, identity, manifest, events, core_config)?;
            // Work asked for while no node ran: the first manifest update
            // of a new community, the redemption of an invitation.
            let work = crate::admission::pending(&data)?;
            if !work.is_empty() && core.settle_admission(&work, now_ms()) {
                crate::admission::clear(&data)?;
            }
            let joined = core.joined().clone();
            Ok::<_, NodeError>((core, joined))
        })
        .await
        .map_err(|e| NodeError::Network(format!("opening the core: {e}")))??
    };
    let responder = core.responder();
    let (net_tx, net_rx) = mpsc::unbounded_channel();
    let (core_link, core_thread) = crate::core::worker::spawn(core, net_tx, config.flush_interval)?;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (answers_tx, answers_rx) = mpsc::unbounded_channel();
    let community_topic = IdentTopic::new(secret.community_gossip_topic(&community));
    let mut ev = EventLoop {
        swarm,
        identity: identity.clone(),
        manifest,
        community,
        secret,
        gate: Default::default(),
        proof_deadlines: Default::default(),
        #[cfg(feature = "test-hooks")]
        raw_syncs: HashMap::new(),
        book,
        #[cfg(feature = "test-hooks")]
        events: events.clone(),
        joined: BTreeSet::new(),
        topic_hashes: HashMap::new(),
        community_topic,
        listen_addrs,
        commands: rx,
        core: core_link.clone(),
        from_core: net_rx,
        core_thread: Some(core_thread),
        responder,
        answers_tx,
        answers_rx,
        pending_gossip: HashMap::new(),
        next_ticket: 0,
        sync_requests: HashMap::new(),
        sync_later: Default::default(),
        sync_retries: Default::default(),
        banned: HashMap::new(),
        cut_off: Default::default(),
        config,
        gossip_metrics,
        connected_since: HashMap::new(),
        peers,
        pending_connects: HashMap::new(),
    };
    ev.subscribe_community()?;
    for topic in joined {
        ev.subscribe_topic(&topic)?;
    }
    for (peer, addrs) in ev.peers.book().all() {
        for a in addrs {
            ev.swarm.behaviour_mut().kad.add_address(peer, a.clone());
        }
    }
    for addr in bootstrap {
        // A hidden node dials its relays only (through reservations).
        if hidden && !via.contains(&addr) {
            continue;
        }
        ev.peers.user_address(&addr);
        if let Err(e) = ev.dial_multiaddr(addr.clone()) {
            ev.peers.problem(format!("bootstrap address {addr}: {e}"));
        }
    }
    let task = tokio::spawn(ev.run());
    Ok(RunningNode {
        handle: NodeHandle {
            commands: tx,
            core: core_link,
            events,
        },
        task,
    })
}

/// Whether an address is on loopback.
pub(super) fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// The TCP or UDP port of an address.
fn port_of(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Tcp(port) | Protocol::Udp(port) => Some(port),
        _ => None,
    })
}

/// Where to listen: `--listen` as given, else TCP (and QUIC) on the
/// remembered port (or `--port`, or a free one on the first start). A
/// hidden node listens nowhere but on its relays.
fn listen_addrs_of(config: &NodeConfig) -> Result<Vec<Multiaddr>, NodeError> {
    if config.hide_address {
        return Ok(Vec::new());
    }
    if !config.listen.is_empty() {
        return config
            .listen
            .iter()
            .map(|a| {
                a.parse::<Multiaddr>()
                    .map_err(|e| NodeError::BadInput(format!("bad listen address {a}: {e}")))
            })
            .collect();
    }
    let host = config.listen_host;
    let port = match config.port {
        Some(p) => p,
        None => match config.data_dir.listen_port()? {
            Some(p) => p,
            None => free_port(host, config.quic)?,
        },
    };
    let ip = match host {
        std::net::IpAddr::V4(ip) => Protocol::Ip4(ip),
        std::net::IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    let tcp = Multiaddr::empty()
        .with(ip.clone())
        .with(Protocol::Tcp(port));
    let mut out = vec![tcp];
    if config.quic {
        out.push(
            Multiaddr::empty()
                .with(ip)
                .with(Protocol::Udp(port))
                .with(Protocol::QuicV1),
        );
    }
    Ok(out)
}

/// A port free for TCP (and UDP, for QUIC) on `host`, for a first start.
fn free_port(host: std::net::IpAddr, udp: bool) -> Result<u16, NodeError> {
    for _ in 0..32 {
        let tcp = std::net::TcpListener::bind((host, 0))
            .map_err(|e| NodeError::io("finding a free port to listen on", e))?;
        let port = tcp
            .local_addr()
            .map_err(|e| NodeError::io("finding a free port to listen on", e))?
            .port();
        if !udp || std::net::UdpSocket::bind((host, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(NodeError::Network(
        "found no port free for both TCP and UDP; start with --port PORT".into(),
    ))
}

/// The relays a hidden node uses: `--via`, else up to two of the
/// bootstrap addresses (the community's nodes it was invited through).
fn relays_to_use(
    config: &NodeConfig,
    bootstrap: &[Multiaddr],
) -> Result<Vec<Multiaddr>, NodeError> {
    let mut via = Vec::new();
    for a in &config.via {
        let ma: Multiaddr = a
            .parse()
            .map_err(|e| NodeError::BadInput(format!("bad --via address {a}: {e}")))?;
        if peer_of(&ma).is_none() || is_relayed(&ma) {
            return Err(NodeError::BadInput(format!(
                "--via {a}: a relay's address must end with /p2p/<its peer id> and not be \
                 relayed itself (`mutual id` on the relay's node prints it)"
            )));
        }
        via.push(ma);
    }
    if config.hide_address && via.is_empty() {
        via = bootstrap
            .iter()
            .filter(|a| peer_of(a).is_some() && !is_relayed(a))
            .take(super::peers::RELAYS_WANTED)
            .cloned()
            .collect();
        if via.is_empty() {
            return Err(NodeError::BadInput(
                "--hide-address needs a relay: pass --via ADDRESS with the address of a \
                 member's node that relays (that node will see your IP address; no other \
                 member will)"
                    .into(),
            ));
        }
    }
    Ok(via)
}
