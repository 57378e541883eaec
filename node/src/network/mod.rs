//! The network: the event loop, which owns only the libp2p `Swarm` and the
//! command channel (rust-libp2p's file-sharing shape), with the behaviours,
//! the transports and peer management. Every rule about content lives in
//! the [`crate::core`], which runs on its own thread: the loop hands it
//! gossip messages and sync pages and carries out the verdicts and effects
//! it sends back, so no store work or verification ever runs here. Sync
//! requests from other nodes are answered on the blocking pool.

pub(crate) mod behaviour;
pub mod connect;
pub(crate) mod gossip_stats;
pub mod limits;
pub(crate) mod manifest_fetch;
pub(crate) mod membership;
pub(crate) mod peers;
pub(crate) mod seal;
mod start;
pub(crate) mod transport;
pub(crate) mod welcome;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::kad::{self, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{autonat, dcutr, identify, mdns, relay, upnp, Multiaddr, PeerId, Swarm};
use prometheus_client::registry::Registry;
use protocol::{CommunityId, CommunitySecret, Identity, SignedManifest, TopicName};
use rand::seq::SliceRandom;
#[cfg(feature = "test-hooks")]
use tokio::sync::broadcast;
use tokio::sync::mpsc;

use crate::api::PeerView;
use crate::config::NodeConfig;
use crate::core::sync::{CheckedPage, DecodedPage, Responder};
use crate::core::worker::{CoreLink, CoreRequest, NetInput};
use crate::core::{Channel, Effect, PeerRef, SyncTicket, Verdict};
use crate::error::NodeError;
use crate::handle::Command;
#[cfg(feature = "test-hooks")]
use crate::handle::NodeEvent;
use crate::now_ms;
use crate::store::Store;
use behaviour::{
    topic_score_params, Behaviour, BehaviourEvent, DISCONNECT_SCORE, MAX_PEERS, PEER_GRACE,
    TOPIC_PEERS,
};
use peers::{is_relayed, peer_of, BookChange, PeerAction, PeerManager, RELAY_HOP_PROTOCOL};

pub(crate) use start::start;

/// How long a peer that was disconnected for misbehaviour stays banned.
const BAN: Duration = Duration::from_secs(600);

/// The event loop's state: the swarm and what it needs to route.
pub(crate) struct EventLoop {
    pub(crate) swarm: Swarm<Behaviour>,
    /// For invites (signed by the user's key) and `id`.
    pub(crate) identity: Identity,
    /// Served to joining nodes.
    pub(crate) manifest: SignedManifest,
    pub(crate) community: CommunityId,
    /// The community secret: topic strings, DHT keys and membership
    /// proofs derive from it.
    pub(crate) secret: CommunitySecret,
    /// Which connected peers proved membership ([`membership`]).
    pub(crate) gate: membership::Gate,
    /// When each connected peer must have proved membership by.
    pub(crate) proof_deadlines: FuturesUnordered<membership::Deadline>,
    /// Raw sync requests of tests, answered with the reply.
    #[cfg(feature = "test-hooks")]
    pub(crate) raw_syncs: HashMap<OutboundRequestId, crate::handle::Reply<Vec<u8>>>,
    /// The address book's records are written through this (the only
    /// store use here; small, rare writes).
    book: Store,
    #[cfg(feature = "test-hooks")]
    events: broadcast::Sender<NodeEvent>,
    /// Topics subscribed to (as the core joined them).
    joined: BTreeSet<TopicName>,
    topic_hashes: HashMap<TopicHash, TopicName>,
    pub(crate) community_topic: IdentTopic,
    pub(crate) listen_addrs: Vec<Multiaddr>,
    commands: mpsc::Receiver<Command>,
    core: CoreLink,
    from_core: mpsc::UnboundedReceiver<NetInput>,
    core_thread: Option<std::thread::JoinHandle<()>>,
    responder: Responder,
    answers_tx: mpsc::UnboundedSender<(ResponseChannel<Vec<u8>>, Vec<u8>)>,
    answers_rx: mpsc::UnboundedReceiver<(ResponseChannel<Vec<u8>>, Vec<u8>)>,
    /// Gossip messages the core is judging (with their data when a test
    /// waits for the verdict).
    pending_gossip: HashMap<u64, (MessageId, PeerId, Vec<u8>)>,
    next_ticket: u64,
    /// Sync requests in flight: whose, and which core session's.
    sync_requests: HashMap<OutboundRequestId, (PeerId, SyncTicket)>,
    /// Peers to sync with again shortly (the core held its session while
    /// they pulled from this node), each once.
    sync_later: HashSet<PeerId>,
    sync_retries: FuturesUnordered<Pin<Box<dyn Future<Output = PeerId> + Send>>>,
    /// Peers disconnected for misbehaviour, refused until then.
    banned: HashMap<PeerId, tokio::time::Instant>,
    /// Peers the operator cut off: refused until let back, whatever a ban
    /// says.
    cut_off: HashSet<PeerId>,
    pub(crate) config: NodeConfig,
    /// Where gossipsub keeps its counters ([`crate::GossipStats`]).
    gossip_metrics: Registry,
    /// When each connected peer connected (surplus peers are closed only
    /// after [`PEER_GRACE`]).
    connected_since: HashMap<PeerId, tokio::time::Instant>,
    /// Peer management: the address book, redials, relays, reachability.
    pub(crate) peers: PeerManager,
    /// Dials asked for by `connect`, answered when they succeed or fail.
    pub(crate) pending_connects: HashMap<libp2p::swarm::ConnectionId, connect::PendingConnect>,
}

/// The DHT key the members of `topic` announce themselves under: keyed by
/// the community secret, so nobody without it can test names.
fn provider_key(secret: &CommunitySecret, community: &CommunityId, topic: &TopicName) -> RecordKey {
    RecordKey::new(&secret.provider_key(community, topic))
}

fn peer_ref(peer: &PeerId) -> PeerRef {
    PeerRef(peer.to_string())
}

impl EventLoop {
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

    fn subscribe_topic(&mut self, topic: &TopicName) -> Result<(), NodeError> {
        let gossip = IdentTopic::new(self.secret.topic_gossip_topic(&self.community, topic));
        self.subscribe_hash(&gossip)?;
        self.topic_hashes.insert(gossip.hash(), topic.clone());
        self.joined.insert(topic.clone());
        let key = provider_key(&self.secret, &self.community, topic);
        let kad = &mut self.swarm.behaviour_mut().kad;
        if let Err(e) = kad.start_providing(key.clone()) {
            tracing::debug!("start_providing: {e}");
        }
        kad.get_providers(key);
        Ok(())
    }

    fn unsubscribe_topic(&mut self, topic: &TopicName) {
        let gossip = IdentTopic::new(self.secret.topic_gossip_topic(&self.community, topic));
        self.swarm.behaviour_mut().gossipsub.unsubscribe(&gossip);
        self.topic_hashes.remove(&gossip.hash());
        self.joined.remove(topic);
        self.swarm.behaviour_mut().kad.stop_providing(&provider_key(
            &self.secret,
            &self.community,
            topic,
        ));
    }

    fn dial_addr(&mut self, addr: &str) -> Result<(), NodeError> {
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
                PeerAction::Book(change) => self.write_book(change),
            }
        }
    }

    /// Writes an address-book record on the blocking pool.
    fn write_book(&self, change: BookChange) {
        let store = self.book.clone();
        tokio::task::spawn_blocking(move || {
            let result = match change {
                BookChange::Put(peer, record) => store.put_peer(&peer.to_bytes(), &record),
                BookChange::Forget(peer) => store.remove_peer(&peer.to_bytes()),
            };
            if let Err(e) = result {
                tracing::warn!("writing the address book: {e}");
            }
        });
    }

    fn topic_hash(&self, topic: &TopicName) -> TopicHash {
        IdentTopic::new(self.secret.topic_gossip_topic(&self.community, topic)).hash()
    }

    #[cfg(feature = "test-hooks")]
    fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    fn peer_views(&self) -> Vec<PeerView> {
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

    async fn run(mut self) -> Result<(), NodeError> {
        let mut resync = tokio::time::interval(self.config.sync_interval);
        let mut discover = tokio::time::interval(self.config.discovery_interval);
        let mut peer_tick = tokio::time::interval(self.config.peer_interval);
        peer_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        discover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop_reply = None;
        let mut failure: Option<NodeError> = None;
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => {
                        if let Some(reply) = self.on_command(command) {
                            stop_reply = Some(reply);
                            break;
                        }
                    }
                    None => break,
                },
                input = self.from_core.recv() => match input {
                    Some(input) => {
                        if let Some(e) = self.on_core(input) {
                            failure = Some(e);
                            break;
                        }
                    }
                    None => {
                        tracing::error!("the node's core stopped; stopping the node");
                        failure = Some(NodeError::Network(
                            "the node's core stopped unexpectedly (see the log)".into(),
                        ));
                        break;
                    }
                },
                Some((channel, bytes)) = self.answers_rx.recv() => {
                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, bytes);
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = resync.tick() => self.sync_all_peers(),
                Some(peer) = self.sync_retries.next(), if !self.sync_retries.is_empty() => {
                    self.sync_later.remove(&peer);
                    if self.swarm.is_connected(&peer) {
                        self.start_sync_with(peer);
                    }
                }
                Some((peer, spell)) = self.proof_deadlines.next(), if !self.proof_deadlines.is_empty() => {
                    self.proof_deadline(peer, spell);
                }
                _ = discover.tick() => self.discover(),
                _ = peer_tick.tick() => {
                    let actions = self.peers.tick(now_ms());
                    self.apply_peer_actions(actions);
                }
            }
        }
        // The core flushes and hands the store back; it is closed with a
        // fresh snapshot once every other handle on it is gone, so the next
        // start does not replay what this run wrote (on a blocking thread:
        // with a large store, that is the replay, seconds).
        let stopped = self.core.shutdown().await;
        if let Some(thread) = self.core_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let EventLoop {
            swarm,
            book,
            responder,
            ..
        } = self;
        drop((swarm, book, responder));
        let result = match stopped {
            Ok(store) => match tokio::task::spawn_blocking(move || store.close()).await {
                Ok(Ok(())) => {
                    tracing::info!("node stopped; store flushed and closed");
                    Ok(())
                }
                Ok(Err(e)) => {
                    tracing::warn!("closing the store: {e}");
                    Ok(())
                }
                Err(e) => Err(NodeError::Network(format!("closing the store: {e}"))),
            },
            Err(e) => Err(e),
        };
        match stop_reply {
            Some(reply) => {
                let _ = reply.send(result);
                Ok(())
            }
            None => match failure {
                Some(e) => Err(e),
                None => result,
            },
        }
    }

    /// What the core sends: gossip verdicts and effects; a store failure is
    /// handed back to [`EventLoop::run`], which stops.
    fn on_core(&mut self, input: NetInput) -> Option<NodeError> {
        match input {
            NetInput::Verdict { ticket, verdict } => {
                if let Some((id, source, _data)) = self.pending_gossip.remove(&ticket) {
                    self.report_verdict(&id, source, verdict);
                    #[cfg(feature = "test-hooks")]
                    self.emit(NodeEvent::GossipJudged {
                        data: _data,
                        verdict,
                    });
                }
            }
            NetInput::Effects(effects) => {
                for effect in effects {
                    self.on_effect(effect);
                }
            }
            NetInput::StoreFailed(e) => return Some(e),
        }
        None
    }

    fn report_verdict(&mut self, id: &MessageId, source: PeerId, verdict: Verdict) {
        let acceptance = match verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Reject => MessageAcceptance::Reject,
            Verdict::Ignore => MessageAcceptance::Ignore,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, &source, acceptance);
        if verdict == Verdict::Reject {
            self.punish_if_needed(source);
        }
    }

    fn on_effect(&mut self, effect: Effect) {
        match effect {
            Effect::Gossip { channel, bytes } => {
                let hash = match &channel {
                    Channel::Community => self.community_topic.hash(),
                    Channel::Topic(t) => self.topic_hash(t),
                };
                // Having no peers yet is not an error: the item is stored,
                // and sync spreads it later.
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(hash, bytes) {
                    tracing::debug!("gossip publish: {e}");
                }
            }
            Effect::Subscribe(topic) => {
                if let Err(e) = self.subscribe_topic(&topic) {
                    tracing::warn!("subscribing to topic {topic}: {e}");
                }
            }
            Effect::Unsubscribe(topic) => self.unsubscribe_topic(&topic),
            Effect::SyncTopic(topic) => {
                let peers: Vec<PeerId> = self
                    .swarm
                    .connected_peers()
                    .filter(|p| self.gate.is_ready(p))
                    .copied()
                    .collect();
                for peer in peers {
                    self.core.offer(CoreRequest::SyncWith {
                        peer: peer_ref(&peer),
                        topics: vec![topic.clone()],
                    });
                }
            }
            Effect::SyncWithAll => self.sync_all_peers(),
            Effect::SyncLater(peer) => {
                if let Ok(p) = peer.0.parse::<PeerId>() {
                    if self.sync_later.insert(p) {
                        self.sync_retries.push(Box::pin(async move {
                            tokio::time::sleep(crate::core::pulls::ACTIVE).await;
                            p
                        }));
                    }
                }
            }
            Effect::SyncRequest {
                peer,
                ticket,
                bytes,
            } => match peer.0.parse::<PeerId>() {
                Ok(p) => {
                    let id = self.swarm.behaviour_mut().sync.send_request(&p, bytes);
                    self.sync_requests.insert(id, (p, ticket));
                }
                Err(_) => {
                    self.core.offer(CoreRequest::SyncFailed { peer, ticket });
                }
            },
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
            .map(|t| provider_key(&self.secret, &self.community, t))
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
            if !self.cut_off.contains(&peer) {
                self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            }
        }
        self.responder.prune();
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

    fn sync_all_peers(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.start_sync_with(peer);
        }
    }

    /// Asks the core to sync the community log and every shared topic
    /// with `peer`.
    fn start_sync_with(&mut self, peer: PeerId) {
        // Only with a peer that proved membership and accepted this
        // node's proof (it would refuse the request otherwise).
        if !self.gate.is_ready(&peer) {
            return;
        }
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
        self.core.offer(CoreRequest::SyncWith {
            peer: peer_ref(&peer),
            topics: shared,
        });
    }

    fn on_sync_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if !self.gate.is_member(&peer) {
                        // Nothing for a peer that has not proved
                        // membership: the stream closes unanswered.
                        tracing::debug!(%peer, "sync request from a non-member refused");
                        return;
                    }
                    // Answered on the blocking pool; the answer comes back
                    // through `answers_rx`.
                    let responder = self.responder.clone();
                    let answers = self.answers_tx.clone();
                    let who = peer_ref(&peer);
                    tokio::task::spawn_blocking(move || {
                        let bytes = responder.answer(&who, &request);
                        let _ = answers.send((channel, bytes));
                    });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    #[cfg(feature = "test-hooks")]
                    if let Some(reply) = self.raw_syncs.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                        return;
                    }
                    let Some((peer, ticket)) = self.sync_requests.remove(&request_id) else {
                        return;
                    };
                    let peer = peer_ref(&peer);
                    // Decoded on the blocking pool and handed to the core,
                    // which asks for the next page at once; then verified
                    // there too, while the core writes the page before.
                    let core = self.core.clone();
                    tokio::task::spawn_blocking(move || {
                        let page = DecodedPage::decode(&response);
                        drop(response);
                        let items = page.items();
                        let offered = core.offer(CoreRequest::SyncDecoded {
                            peer: peer.clone(),
                            ticket,
                            page,
                        });
                        if !offered {
                            // The core is far behind: this session ends and
                            // the next round picks it up again.
                            core.offer(CoreRequest::SyncFailed { peer, ticket });
                            return;
                        }
                        let page = CheckedPage::check(&items, &core.ctx());
                        core.offer(CoreRequest::SyncChecked { peer, ticket, page });
                    });
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, "sync request failed: {error}");
                #[cfg(feature = "test-hooks")]
                if let Some(reply) = self.raw_syncs.remove(&request_id) {
                    let _ = reply.send(Err(NodeError::Network(error.to_string())));
                    return;
                }
                // Only the session that sent this request ends.
                if let Some((peer, ticket)) = self.sync_requests.remove(&request_id) {
                    self.core.offer(CoreRequest::SyncFailed {
                        peer: peer_ref(&peer),
                        ticket,
                    });
                }
            }
            _ => {}
        }
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
                    if !start::is_loopback(send_back_addr)
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
                    // Sync starts once both proofs checked out.
                    self.start_proof(peer_id);
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
                    self.gate.closed(&peer_id);
                    self.core.offer(CoreRequest::PeerGone(peer_ref(&peer_id)));
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
            SwarmEvent::Behaviour(BehaviourEvent::Welcome(event)) => self.on_welcome_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Member(event)) => self.on_member_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                // Taken in (address book, DHT routing, relays) only once
                // the peer proved membership.
                if let Some(info) = self.gate.hold_identify(&peer_id, info) {
                    self.on_identified(peer_id, info);
                }
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

    /// What a member said about itself: its addresses go into the DHT
    /// routing table and the address book, and it may serve as a relay.
    fn on_identified(&mut self, peer_id: PeerId, info: identify::Info) {
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

    /// Dials providers of a joined topic, at random, while the node knows
    /// fewer than [`TOPIC_PEERS`] peers in it (dials under way count): the
    /// topology stays sparse however many members the topic has.
    fn dial_providers(&mut self, key: &RecordKey, providers: HashSet<PeerId>) {
        let Some(topic) = self
            .joined
            .iter()
            .find(|t| provider_key(&self.secret, &self.community, t) == *key)
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
                let channel = if message.topic == self.community_topic.hash() {
                    Some(Channel::Community)
                } else {
                    self.topic_hashes
                        .get(&message.topic)
                        .cloned()
                        .map(Channel::Topic)
                };
                self.next_ticket += 1;
                let ticket = self.next_ticket;
                #[cfg(feature = "test-hooks")]
                let kept = if self.events.receiver_count() > 0 {
                    message.data.clone()
                } else {
                    Vec::new()
                };
                #[cfg(not(feature = "test-hooks"))]
                let kept = Vec::new();
                let offered = self.core.offer(CoreRequest::Gossip {
                    ticket,
                    channel,
                    data: message.data,
                    source: peer_ref(&propagation_source),
                });
                if offered {
                    self.pending_gossip
                        .insert(ticket, (message_id, propagation_source, kept));
                } else {
                    // The core is far behind: not taken, and no penalty.
                    self.report_verdict(&message_id, propagation_source, Verdict::Ignore);
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                #[cfg(feature = "test-hooks")]
                self.emit(NodeEvent::PeerSubscribed {
                    peer: peer_id.to_string(),
                    topic: topic.to_string(),
                });
                if !self.gate.is_ready(&peer_id) {
                    return;
                }
                if let Some(name) = self.topic_hashes.get(&topic).cloned() {
                    self.core.offer(CoreRequest::SyncWith {
                        peer: peer_ref(&peer_id),
                        topics: vec![name],
                    });
                }
            }
            _ => {}
        }
    }

    fn punish_if_needed(&mut self, peer: PeerId) {
        let score = self.swarm.behaviour().gossipsub.peer_score(&peer);
        if score.is_some_and(|s| s < DISCONNECT_SCORE) {
            tracing::info!(%peer, "disconnecting a peer that keeps sending invalid messages");
            self.banned.insert(peer, tokio::time::Instant::now() + BAN);
            // Refused until the ban ends (`discover` lifts it): without the
            // block list the peer could dial straight back in.
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            let forget = self.peers.forget(&peer);
            self.apply_peer_actions(forget);
        }
    }

    /// What the loop does for each network command of a handle; a
    /// shutdown is handed back to [`EventLoop::run`], which stops.
    fn on_command(&mut self, command: Command) -> Option<crate::handle::Reply<()>> {
        match command {
            Command::Id(r) => {
                let _ = r.send(Ok(crate::api::IdView {
                    author: self.identity.public().to_string(),
                    name: self.identity.name.clone(),
                    peer_id: self.swarm.local_peer_id().to_string(),
                    listen_addrs: self.listen_addrs.iter().map(|a| a.to_string()).collect(),
                }));
            }
            Command::SetName(name, r) => {
                self.identity.name = name;
                let _ = r.send(Ok(()));
            }
            Command::SetAuthorKey(secret, r) => {
                self.identity.secret = secret;
                let _ = r.send(Ok(()));
            }
            Command::Peers(r) => {
                let _ = r.send(Ok(self.peer_views()));
            }
            Command::NetStatus(r) => {
                let _ = r.send(Ok(crate::handle::NetStatus {
                    peers: self.swarm.connected_peers().count(),
                    reachability: self
                        .peers
                        .reachability(&self.listen_addrs, now_ms())
                        .describe(),
                    remembered_peers: self.peers.book().len(),
                    problems: self.peers.problems(),
                    community_peers: self.community_peers(),
                }));
            }
            Command::Invite(r) => {
                let _ = r.send(self.invite_code());
            }
            Command::AdmissionInvite(seed, r) => {
                let _ = r.send(self.invite_code_with(Some(*seed)));
            }
            Command::Dial(addr, r) => {
                let _ = r.send(self.dial_addr(&addr));
            }
            Command::Connect(addr, r) => self.connect(addr, r),
            Command::SyncNow(r) => {
                self.sync_all_peers();
                let _ = r.send(Ok(()));
            }
            Command::CutOff(peer, cut, r) => {
                let result = peer
                    .parse::<PeerId>()
                    .map_err(|e| NodeError::BadInput(format!("bad peer id {peer}: {e}")))
                    .map(|p| {
                        let blocked = &mut self.swarm.behaviour_mut().blocked;
                        if cut {
                            self.cut_off.insert(p);
                            blocked.block_peer(p);
                        } else {
                            self.cut_off.remove(&p);
                            if !self.banned.contains_key(&p) {
                                blocked.unblock_peer(p);
                            }
                        }
                    });
                let _ = r.send(result);
            }
            Command::GossipStats(r) => {
                let _ = r.send(Ok(crate::GossipStats::read(&self.gossip_metrics)));
            }
            #[cfg(feature = "test-hooks")]
            Command::PublishRaw(topic, bytes, r) => {
                let hash = IdentTopic::new(topic).hash();
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(hash, bytes)
                    .map(|_| ())
                    .map_err(|e| NodeError::Network(e.to_string()));
                let _ = r.send(result);
            }
            #[cfg(feature = "test-hooks")]
            Command::SyncRaw(peer, bytes, r) => match peer.parse::<PeerId>() {
                Ok(p) => {
                    let id = self.swarm.behaviour_mut().sync.send_request(&p, bytes);
                    self.raw_syncs.insert(id, r);
                }
                Err(e) => {
                    let _ = r.send(Err(NodeError::BadInput(format!("bad peer id {peer}: {e}"))));
                }
            },
            #[cfg(feature = "test-hooks")]
            Command::DhtKeys(r) => {
                use libp2p::kad::store::RecordStore;
                let store = self.swarm.behaviour_mut().kad.store_mut();
                let mut keys: Vec<Vec<u8>> = store.provided().map(|p| p.key.to_vec()).collect();
                keys.sort();
                keys.dedup();
                let _ = r.send(Ok(keys));
            }
            Command::Shutdown(r) => return Some(r),
        }
        None
    }
}
