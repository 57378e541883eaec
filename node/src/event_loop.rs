//! The event loop: the one task that owns the swarm and the store. It is
//! driven by commands from [`NodeHandle`]s and by swarm events, and never
//! blocks on either for long.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::kad::{self, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{
    autonat, dcutr, identify, mdns, noise, relay, upnp, yamux, Multiaddr, PeerId, Swarm,
    SwarmBuilder,
};
use prometheus_client::registry::Registry;
use protocol::topic::community_gossip_topic;
use protocol::{
    CommunityId, Identity, Message, ModerationState, SignedManifest, TopicName, ValidationContext,
};
use rand::seq::SliceRandom;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::api::{PeerView, ReportView};
use crate::behaviour::{
    topic_score_params, Behaviour, BehaviourEvent, BehaviourOptions, DISCONNECT_SCORE, MAX_PEERS,
    PEER_GRACE, TOPIC_PEERS,
};
use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::handle::{Command, NodeEvent, NodeHandle};
use crate::ingest::Origin;
use crate::peers::{
    is_relayed, peer_of, BookChange, PeerAction, PeerManager, PeerPolicy, RELAY_HOP_PROTOCOL,
};
use crate::store::Store;
use crate::sync_driver::SyncDriver;
use crate::{now_ms, RunningNode};

/// How long a peer that was disconnected for misbehaviour stays banned.
const BAN: Duration = Duration::from_secs(600);
/// Command queue depth: enough for bursts from the control socket.
const COMMAND_QUEUE: usize = 256;
/// Event broadcast depth for followers; slow followers skip ahead.
const EVENT_QUEUE: usize = 1024;

pub(crate) struct EventLoop {
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) store: Store,
    pub(crate) identity: Identity,
    pub(crate) manifest: SignedManifest,
    pub(crate) community: CommunityId,
    pub(crate) moderation: ModerationState,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) joined: BTreeSet<TopicName>,
    pub(crate) topic_hashes: HashMap<TopicHash, TopicName>,
    pub(crate) community_topic: IdentTopic,
    pub(crate) listen_addrs: Vec<Multiaddr>,
    pub(crate) reports: Vec<ReportView>,
    pub(crate) sync: SyncDriver,
    pub(crate) dirty: bool,
    pub(crate) banned: HashMap<PeerId, tokio::time::Instant>,
    pub(crate) rate: crate::ingest::AuthorRateLimiter,
    pub(crate) commands: mpsc::Receiver<Command>,
    /// A command taken off the channel while gathering imports into one
    /// batch, handled next.
    pub(crate) read_ahead: Option<Command>,
    pub(crate) config: NodeConfig,
    /// Where gossipsub keeps its counters ([`crate::GossipStats`]).
    pub(crate) gossip_metrics: Registry,
    /// When each connected peer connected (surplus peers are closed only
    /// after [`PEER_GRACE`]).
    connected_since: HashMap<PeerId, tokio::time::Instant>,
    /// Flushes running on blocking threads: the interval flush and the
    /// acknowledgements of local writes, which wait for their flush there
    /// rather than in this loop (an fsync stalled every peer's gossip).
    pub(crate) flushes: tokio::task::JoinSet<()>,
    /// Whether the interval flush is among [`EventLoop::flushes`]; a slow
    /// disk then skips ticks rather than piling flushes up.
    interval_flush: Arc<AtomicBool>,
    /// Peer management: the address book, redials, relays, reachability.
    pub(crate) peers: PeerManager,
    /// Dials asked for by `connect`, answered when they succeed or fail.
    pub(crate) pending_connects:
        HashMap<libp2p::swarm::ConnectionId, crate::connect::PendingConnect>,
}

fn provider_key(community: &CommunityId, topic: &TopicName) -> RecordKey {
    RecordKey::new(&blake3::hash(topic.gossip_topic(community).as_bytes()).as_bytes())
}

pub(crate) async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    let data = &config.data_dir;
    data.ensure()?;
    let identity = data.identity()?;
    let manifest = data.community()?.ok_or(NodeError::NoCommunity)?;
    let community = manifest
        .verify_manifest(now_ms())
        .map_err(NodeError::Invalid)?;
    let key = data.transport_key()?;
    let store = Store::open(&data.store_path())?;

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
    };
    let only_to = hidden.then(|| via.clone());
    let mut gossip_metrics = Registry::default();
    let net = |e: &dyn std::fmt::Display| NodeError::Network(e.to_string());
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            crate::transport::build(key, only_to)
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

    let stored = crate::ingest::load_log(&store, &manifest, community, &identity.public())?;
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
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (events, _) = broadcast::channel(EVENT_QUEUE);
    let community_topic = IdentTopic::new(community_gossip_topic(&community));
    let mut ev = EventLoop {
        swarm,
        store,
        identity,
        manifest,
        community,
        moderation: stored.moderation,
        events: events.clone(),
        joined: BTreeSet::new(),
        topic_hashes: HashMap::new(),
        community_topic,
        listen_addrs,
        reports: Vec::new(),
        sync: SyncDriver::default(),
        dirty: false,
        banned: HashMap::new(),
        rate: crate::ingest::AuthorRateLimiter::default(),
        commands: rx,
        read_ahead: None,
        config,
        gossip_metrics,
        connected_since: HashMap::new(),
        flushes: tokio::task::JoinSet::new(),
        interval_flush: Arc::new(AtomicBool::new(false)),
        peers,
        pending_connects: HashMap::new(),
    };
    ev.subscribe_community()?;
    for topic in ev.store.joined_topics()? {
        ev.subscribe_topic(&topic)?;
    }
    ev.reports = ev.open_reports(&stored.reports);
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
            events,
        },
        task,
    })
}

/// Whether an address is on loopback.
fn is_loopback(addr: &Multiaddr) -> bool {
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
            .take(crate::peers::RELAYS_WANTED)
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

impl EventLoop {
    pub(crate) fn ctx(&self) -> ValidationContext {
        ValidationContext {
            community: self.community,
            now_ms: now_ms(),
        }
    }

    fn subscribe_community(&mut self) -> Result<(), NodeError> {
        let topic = self.community_topic.clone();
        self.subscribe_hash(&topic)
    }

    fn subscribe_hash(&mut self, topic: &IdentTopic) -> Result<(), NodeError> {
        let gs = &mut self.swarm.behaviour_mut().gossipsub;
        gs.subscribe(topic)
            .map_err(|e| NodeError::Network(format!("subscribe: {e}")))?;
        let _ = gs.set_topic_params(topic.clone(), topic_score_params());
        Ok(())
    }

    pub(crate) fn subscribe_topic(&mut self, topic: &TopicName) -> Result<(), NodeError> {
        let gossip = IdentTopic::new(topic.gossip_topic(&self.community));
        self.subscribe_hash(&gossip)?;
        self.topic_hashes.insert(gossip.hash(), topic.clone());
        self.joined.insert(topic.clone());
        let key = provider_key(&self.community, topic);
        let kad = &mut self.swarm.behaviour_mut().kad;
        if let Err(e) = kad.start_providing(key.clone()) {
            tracing::debug!("start_providing: {e}");
        }
        kad.get_providers(key);
        Ok(())
    }

    pub(crate) fn unsubscribe_topic(&mut self, topic: &TopicName) {
        let gossip = IdentTopic::new(topic.gossip_topic(&self.community));
        self.swarm.behaviour_mut().gossipsub.unsubscribe(&gossip);
        self.topic_hashes.remove(&gossip.hash());
        self.joined.remove(topic);
        self.swarm
            .behaviour_mut()
            .kad
            .stop_providing(&provider_key(&self.community, topic));
    }

    pub(crate) fn dial_addr(&mut self, addr: &str) -> Result<(), NodeError> {
        let ma: Multiaddr = addr
            .parse()
            .map_err(|e| NodeError::BadInput(format!("bad address {addr}: {e}")))?;
        self.peers.user_address(&ma);
        self.dial_multiaddr(ma)
    }

    fn dial_multiaddr(&mut self, ma: Multiaddr) -> Result<(), NodeError> {
        if let Some(peer) = peer_of(&ma) {
            if peer == *self.swarm.local_peer_id() {
                return Ok(());
            }
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, ma.clone());
        }
        self.swarm
            .dial(ma.clone())
            .map_err(|e| NodeError::Network(format!("dial {ma}: {e}")))
    }

    /// Carries out what peer management asked for.
    fn apply_peer_actions(&mut self, actions: Vec<PeerAction>) {
        let now = now_ms();
        for action in actions {
            match action {
                PeerAction::Dial(peer, addrs) => {
                    let opts = DialOpts::peer_id(peer)
                        .addresses(addrs)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    match self.swarm.dial(opts) {
                        Ok(()) => {}
                        Err(DialError::DialPeerConditionFalse(_)) => self.peers.dial_skipped(peer),
                        Err(e) => {
                            let more = self.peers.dial_failed(Some(peer), &e.to_string(), now);
                            self.apply_peer_actions(more);
                        }
                    }
                }
                PeerAction::Reserve(relay, addr) => {
                    match self
                        .swarm
                        .listen_on(addr.clone().with(Protocol::P2pCircuit))
                    {
                        Ok(listener) => {
                            tracing::info!(%relay, "asking a relay for a reservation");
                            self.peers.reservation_listening(relay, listener);
                        }
                        Err(e) => {
                            tracing::debug!(%relay, "reservation: {e}");
                            self.peers.reservation_failed(relay, now);
                        }
                    }
                }
                PeerAction::Book(BookChange::Put(peer, record)) => {
                    if let Err(e) = self.store.put_peer(&peer.to_bytes(), &record) {
                        tracing::warn!("writing the address book: {e}");
                    }
                }
                PeerAction::Book(BookChange::Forget(peer)) => {
                    if let Err(e) = self.store.remove_peer(&peer.to_bytes()) {
                        tracing::warn!("writing the address book: {e}");
                    }
                }
            }
        }
    }

    /// Gossips an encoded message on its topic. Having no peers yet is not
    /// an error: the item is stored, and sync spreads it later.
    pub(crate) fn gossip(&mut self, topic: TopicHash, bytes: Vec<u8>) {
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            tracing::debug!("gossip publish: {e}");
        }
    }

    pub(crate) fn topic_hash(&self, topic: &TopicName) -> TopicHash {
        IdentTopic::new(topic.gossip_topic(&self.community)).hash()
    }

    pub(crate) fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    pub(crate) fn peer_views(&self) -> Vec<PeerView> {
        let mut out: Vec<PeerView> = self
            .swarm
            .connected_peers()
            .map(|p| {
                let addrs = self.peers.connection_addrs(p);
                PeerView {
                    peer_id: p.to_string(),
                    relayed: !addrs.is_empty() && addrs.iter().all(is_relayed),
                    addrs: addrs.iter().map(|a| a.to_string()).collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        out
    }

    /// The interval flush, for what arrived from the network: on a blocking
    /// thread, at most one at a time.
    fn flush_in_background(&mut self) {
        if !self.dirty || self.interval_flush.swap(true, Ordering::AcqRel) {
            return;
        }
        self.dirty = false;
        let flusher = self.store.flusher();
        let running = Arc::clone(&self.interval_flush);
        self.flushes.spawn_blocking(move || {
            if let Err(e) = flusher.flush() {
                tracing::error!("flushing the store: {e}");
            }
            running.store(false, Ordering::Release);
        });
    }

    /// Answers a local write once it is on disk, without holding this loop
    /// during the fsync: an acknowledged item survives a crash. A refusal
    /// is answered at once.
    pub(crate) fn reply_when_durable<T: Send + 'static>(
        &mut self,
        reply: oneshot::Sender<Result<T, NodeError>>,
        result: Result<T, NodeError>,
    ) {
        let value = match result {
            Ok(value) => value,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let flusher = self.store.flusher();
        self.flushes.spawn_blocking(move || {
            let _ = reply.send(flusher.flush().map(|()| value).map_err(NodeError::from));
        });
    }

    async fn run(mut self) {
        let mut flush = tokio::time::interval(self.config.flush_interval);
        let mut resync = tokio::time::interval(self.config.sync_interval);
        let mut discover = tokio::time::interval(self.config.discovery_interval);
        let mut peer_tick = tokio::time::interval(self.config.peer_interval);
        peer_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        discover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A command read ahead while gathering a batch of imports.
            if let Some(command) = self.read_ahead.take() {
                if let Command::Shutdown(reply) = command {
                    let result = self.store.flush().map_err(NodeError::from);
                    let _ = reply.send(result);
                    break;
                }
                self.on_command(command);
                continue;
            }
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => {
                        let result = self.store.flush().map_err(NodeError::from);
                        let _ = reply.send(result);
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => {
                        let _ = self.store.flush();
                        break;
                    }
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = flush.tick() => self.flush_in_background(),
                Some(done) = self.flushes.join_next(), if !self.flushes.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!("a flush task failed: {e}");
                    }
                }
                _ = resync.tick() => self.sync_all_peers(),
                _ = discover.tick() => self.discover(),
                _ = peer_tick.tick() => {
                    let actions = self.peers.tick(now_ms());
                    self.apply_peer_actions(actions);
                }
            }
        }
        // Acknowledgements still waiting for their flush are sent, and
        // every handle on the database is gone before it is closed.
        while self.flushes.join_next().await.is_some() {}
        tracing::info!("node stopped; store flushed");
        // Last, the store: closed with a fresh snapshot, so the next start
        // does not replay what this run wrote (on a blocking thread: with
        // a large store, that is the replay, seconds).
        let EventLoop { store, swarm, .. } = self;
        drop(swarm);
        match tokio::task::spawn_blocking(move || store.close()).await {
            Ok(Ok(())) => tracing::debug!("store closed"),
            Ok(Err(e)) => tracing::warn!("closing the store: {e}"),
            Err(e) => tracing::warn!("closing the store: {e}"),
        }
    }

    /// Peers known to be subscribed to `topic`.
    fn peers_in_topic(&self, topic: &TopicName) -> usize {
        let hash = self.topic_hash(topic);
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&hash))
            .count()
    }

    /// Looks for more members of the joined topics that have fewer than
    /// [`TOPIC_PEERS`] known peers (a DHT query connects to many peers, so
    /// a node with enough does not ask), and trims surplus connections.
    fn discover(&mut self) {
        let keys: Vec<RecordKey> = self
            .joined
            .iter()
            .filter(|t| self.peers_in_topic(t) < TOPIC_PEERS)
            .map(|t| provider_key(&self.community, t))
            .collect();
        let kad = &mut self.swarm.behaviour_mut().kad;
        for key in keys {
            kad.get_providers(key);
        }
        let now = tokio::time::Instant::now();
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.banned.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        self.trim_peers();
    }

    /// Beyond [`MAX_PEERS`] connections, closes connections to peers in
    /// none of this node's meshes and connected for at least
    /// [`PEER_GRACE`], at random, down to the limit. Mesh peers are never
    /// closed, so a node keeps all the peers it relays through.
    fn trim_peers(&mut self) {
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let excess = connected.len().saturating_sub(MAX_PEERS);
        if excess == 0 {
            return;
        }
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let mesh: HashSet<PeerId> = gossipsub.all_mesh_peers().copied().collect();
        let now = tokio::time::Instant::now();
        let mut spare: Vec<PeerId> = connected
            .into_iter()
            .filter(|p| {
                !mesh.contains(p)
                    && self
                        .connected_since
                        .get(p)
                        .is_some_and(|t| now.duration_since(*t) >= PEER_GRACE)
            })
            .collect();
        spare.shuffle(&mut rand::thread_rng());
        for peer in spare.into_iter().take(excess) {
            tracing::debug!(%peer, "closing a surplus connection");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    pub(crate) fn sync_all_peers(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.start_sync_with(peer);
        }
    }

    /// Queues the community log and every shared topic for sync with `peer`.
    pub(crate) fn start_sync_with(&mut self, peer: PeerId) {
        let shared: Vec<TopicName> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(p, _)| **p == peer)
            .flat_map(|(_, topics)| {
                topics
                    .into_iter()
                    .filter_map(|h| self.topic_hashes.get(h).cloned())
                    .collect::<Vec<_>>()
            })
            .collect();
        self.sync_topics_with(peer, shared);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } if !self.listen_addrs.contains(&address) => {
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                ..
            } => {
                self.listen_addrs.retain(|a| !addresses.contains(a));
                self.peers.listener_closed(listener_id, now_ms());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                tracing::debug!(%peer_id, "connected");
                self.connect_succeeded(connection_id, peer_id);
                if let libp2p::core::ConnectedPoint::Listener {
                    local_addr,
                    send_back_addr,
                } = &endpoint
                {
                    if !is_loopback(send_back_addr)
                        && !is_relayed(send_back_addr)
                        && self.peers.reached_directly(local_addr.clone())
                    {
                        self.swarm.add_external_address(local_addr.clone());
                    }
                }
                // An inbound relayed connection's remote address is only
                // `/p2p/<peer>`; the path it came by is the local circuit
                // address (through which relay).
                let remote = match &endpoint {
                    libp2p::core::ConnectedPoint::Listener { local_addr, .. }
                        if is_relayed(local_addr) =>
                    {
                        local_addr.clone()
                    }
                    other => other.get_remote_address().clone(),
                };
                let actions = self.peers.connected(
                    peer_id,
                    connection_id,
                    remote,
                    endpoint.is_dialer(),
                    now_ms(),
                );
                self.apply_peer_actions(actions);
                if num_established.get() == 1 {
                    self.connected_since
                        .insert(peer_id, tokio::time::Instant::now());
                    self.start_sync_with(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.peers.closed(peer_id, connection_id);
                if num_established == 0 {
                    self.connected_since.remove(&peer_id);
                    self.sync.peer_gone(&peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                tracing::debug!(peer = ?peer_id, "dial failed: {error}");
                self.connect_failed(connection_id, &error);
                let actions = self
                    .peers
                    .dial_failed(peer_id, &error.to_string(), now_ms());
                self.apply_peer_actions(actions);
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "reachable from outside at this address");
                self.peers.external_confirmed(address);
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                self.peers.external_expired(&address);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Manifest(event)) => self.on_manifest_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let relays = info
                    .protocols
                    .iter()
                    .any(|p| p.as_ref() == RELAY_HOP_PROTOCOL);
                for addr in &info.listen_addrs {
                    if !self.peers.hidden() || is_relayed(addr) {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, addr.clone());
                    }
                }
                let actions = self
                    .peers
                    .identified(peer_id, &info.listen_addrs, relays, now_ms());
                self.apply_peer_actions(actions);
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
            )) => {
                tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
                self.peers.reservation_accepted(relay_peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => match result {
                Ok(_) => tracing::info!(peer = %remote_peer_id, "hole punched: direct connection"),
                Err(e) => tracing::debug!(peer = %remote_peer_id, "hole punching failed: {e}"),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Upnp(event)) => match event {
                upnp::Event::NewExternalAddr { external_addr, .. } => {
                    tracing::info!(%external_addr, "the router mapped a port (UPnP)")
                }
                upnp::Event::GatewayNotFound => tracing::debug!("no UPnP gateway"),
                upnp::Event::NonRoutableGateway => tracing::debug!("UPnP gateway not routable"),
                upnp::Event::ExpiredExternalAddr { external_addr, .. } => {
                    tracing::debug!(%external_addr, "UPnP mapping expired")
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::v2::client::Event {
                tested_addr,
                result,
                ..
            })) => {
                tracing::debug!(%tested_addr, ok = result.is_ok(), "AutoNAT test");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result:
                    kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                        key,
                        providers,
                    })),
                ..
            })) => self.dial_providers(&key, providers),
            _ => {}
        }
    }

    /// Dials providers of a joined topic, at random, while the node knows
    /// fewer than [`TOPIC_PEERS`] peers in it (dials under way count): the
    /// topology stays sparse however many members the topic has.
    fn dial_providers(&mut self, key: &RecordKey, providers: HashSet<PeerId>) {
        let Some(topic) = self
            .joined
            .iter()
            .find(|t| provider_key(&self.community, t) == *key)
        else {
            return;
        };
        let in_topic = self.peers_in_topic(topic);
        let pending = self
            .swarm
            .network_info()
            .connection_counters()
            .num_pending_outgoing() as usize;
        let room = TOPIC_PEERS.saturating_sub(in_topic + pending);
        let me = *self.swarm.local_peer_id();
        let mut candidates: Vec<PeerId> = providers
            .into_iter()
            .filter(|p| *p != me && !self.swarm.is_connected(p) && !self.banned.contains_key(p))
            .collect();
        candidates.shuffle(&mut rand::thread_rng());
        for peer in candidates.into_iter().take(room) {
            let _ = self.swarm.dial(DialOpts::peer_id(peer).build());
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                #[cfg(feature = "test-hooks")]
                if self.events.receiver_count() > 0 {
                    self.emit(NodeEvent::GossipReceived {
                        source: message.source.map(|p| p.to_string()),
                        sequence_number: message.sequence_number,
                        data: message.data.clone(),
                    });
                }
                let acceptance =
                    self.on_gossip_message(&message.topic, &message.data, propagation_source);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                #[cfg(feature = "test-hooks")]
                if self.events.receiver_count() > 0 {
                    self.emit(NodeEvent::GossipJudged {
                        data: message.data.clone(),
                        verdict: crate::handle::GossipVerdict::from(acceptance),
                    });
                }
                if acceptance == MessageAcceptance::Reject {
                    self.punish_if_needed(propagation_source);
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                if let Some(name) = self.topic_hashes.get(&topic).cloned() {
                    self.sync_topics_with(peer_id, vec![name]);
                }
            }
            _ => {}
        }
    }

    fn on_gossip_message(
        &mut self,
        topic: &TopicHash,
        data: &[u8],
        source: PeerId,
    ) -> MessageAcceptance {
        let verified = match Message::decode_and_verify(data, &self.ctx()) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(peer = %source, "rejected gossip message: {e}");
                return MessageAcceptance::Reject;
            }
        };
        // An item must travel on its own topic: a post on its topic, the
        // rest on the community topic.
        let expected = match &verified {
            protocol::VerifiedMessage::Post(p) => self.topic_hash(&p.topic),
            _ => self.community_topic.hash(),
        };
        if expected != *topic {
            tracing::debug!(peer = %source, "rejected gossip message on the wrong topic");
            return MessageAcceptance::Reject;
        }
        match self.arrived(verified, Origin::Gossip) {
            Ok(_) => MessageAcceptance::Accept,
            Err(refusal) => {
                tracing::debug!(peer = %source, "refused gossip item: {refusal}");
                refusal.gossip_verdict()
            }
        }
    }

    fn punish_if_needed(&mut self, peer: PeerId) {
        let score = self.swarm.behaviour().gossipsub.peer_score(&peer);
        if score.is_some_and(|s| s < DISCONNECT_SCORE) {
            tracing::info!(%peer, "disconnecting a peer that keeps sending invalid messages");
            self.banned.insert(peer, tokio::time::Instant::now() + BAN);
            let _ = self.swarm.disconnect_peer_id(peer);
            let forget = self.peers.forget(&peer);
            self.apply_peer_actions(forget);
        }
    }
}
