//! Peer management: which peers to dial and when, the address book that
//! survives restarts, relay reservations for a node behind NAT or hiding
//! its address, and what the node can say about its own reachability.
//!
//! It holds no swarm: the event loop feeds it what happened (a connection,
//! an identify report, a failed dial, a confirmed external address) and
//! carries out the [`PeerAction`]s it returns. Time is passed in, so the
//! rules are unit-tested without a network.

mod book;

use std::collections::{HashMap, HashSet, VecDeque};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

pub use book::PeerRecord;
pub(crate) use book::{AddressBook, BookChange};

/// Below this many connected peers, the node redials remembered ones: a
/// gossip mesh (D_lo 2) plus one spare.
pub(crate) const TARGET_PEERS: usize = 3;
/// Most dials of remembered peers under way at once, so a node with a
/// large, stale book does not open hundreds of sockets at start.
pub(crate) const MAX_DIALS_AT_ONCE: usize = 8;
/// How long a dial of a remembered peer counts as under way: longer than
/// the transport's own timeout (10 s), so its outcome normally arrives
/// first.
pub(crate) const DIAL_TIMEOUT_MS: u64 = 20_000;
/// How many relays a node behind NAT (or hiding its address) keeps a
/// reservation on: one, and a second in case the first goes away.
pub(crate) const RELAYS_WANTED: usize = 2;
/// How long a node waits for AutoNAT (or UPnP) to confirm a public address
/// before it looks for relays.
pub(crate) const REACHABILITY_GRACE_MS: u64 = 8_000;
/// How many recent problems with user-given addresses `status` shows.
const MAX_PROBLEMS: usize = 8;
/// The relay protocol a peer must support to be asked for a reservation.
pub(crate) const RELAY_HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// What the node can say about how others reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reachability {
    /// Not known yet (AutoNAT has not answered).
    Unknown,
    /// Others can dial it at these addresses.
    Public(Vec<Multiaddr>),
    /// Behind NAT; reachable through these relayed addresses (none yet
    /// while it looks for a relay).
    BehindNat(Vec<Multiaddr>),
    /// Hiding its address: reachable only through these relayed
    /// addresses.
    Hidden(Vec<Multiaddr>),
    /// Listens on loopback only (tests, or a node kept to this machine).
    LocalOnly,
}

impl Reachability {
    /// One line for `status`.
    pub(crate) fn describe(&self) -> String {
        let list = |a: &[Multiaddr]| {
            a.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Reachability::Unknown => "checking (AutoNAT has not answered yet)".into(),
            Reachability::Public(a) => format!("public at {}", list(a)),
            Reachability::BehindNat(a) if a.is_empty() => {
                "behind NAT, looking for a relay (others cannot dial this node yet)".into()
            }
            Reachability::BehindNat(a) => format!("behind NAT, reachable via relay {}", list(a)),
            Reachability::Hidden(a) if a.is_empty() => {
                "hidden, waiting for a relay reservation".into()
            }
            Reachability::Hidden(a) => format!("hidden, reachable only via relay {}", list(a)),
            Reachability::LocalOnly => "this machine only (listening on loopback)".into(),
        }
    }
}

/// Something the event loop should do for peer management.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PeerAction {
    /// Dial this peer at these addresses (if not connected or dialling).
    Dial(PeerId, Vec<Multiaddr>),
    /// Ask the relay at this address (ending in `/p2p/<relay>`) for a
    /// reservation: listen on it with `/p2p-circuit` appended.
    Reserve(PeerId, Multiaddr),
    /// Write this change of the address book to the store.
    Book(BookChange),
}

#[derive(Debug)]
struct Reservation {
    listener: Option<ListenerId>,
    accepted: bool,
}

/// How this node takes part in the network (from the command line).
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerPolicy {
    /// `--hide-address`: relays only, and these relays (`--via`; empty:
    /// the community's, from the bootstrap addresses).
    pub(crate) hidden: bool,
    /// Relays given with `--via`, each ending in `/p2p/<relay>`.
    pub(crate) via: Vec<Multiaddr>,
    /// Whether the node listens only on loopback (no relay needed, nothing
    /// to learn from AutoNAT).
    pub(crate) loopback_only: bool,
}

/// Peer management state (see the module docs).
#[derive(Debug)]
pub(crate) struct PeerManager {
    policy: PeerPolicy,
    book: AddressBook,
    /// Open connections: id, remote address, and whether this node dialled.
    conns: HashMap<PeerId, Vec<(ConnectionId, Multiaddr, bool)>>,
    /// Peers that said (identify) they relay, with the address this node
    /// reached them at directly.
    relays: HashMap<PeerId, Multiaddr>,
    reservations: HashMap<PeerId, Reservation>,
    /// Relays that refused or dropped a reservation recently: not asked
    /// again before this time (ms).
    relay_backoff: HashMap<PeerId, u64>,
    external: Vec<Multiaddr>,
    /// Local addresses at which other machines' peers dialled this node
    /// directly in this run: evidence that it is reachable there, which
    /// AutoNAT v2 alone may never give (it asks only peers this node
    /// dialled).
    reached_at: Vec<Multiaddr>,
    started_ms: u64,
    /// Recent problems with addresses the user gave (bootstrap, invite,
    /// `connect`), newest last.
    problems: VecDeque<String>,
    /// Addresses the user gave, to tell their failures apart.
    user_peers: HashSet<PeerId>,
    /// Dials of book peers started by this manager and not finished.
    dialling: HashSet<PeerId>,
}

/// The addresses of `relay` to reserve on: its address with `/p2p/relay`.
fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    let mut a = book::without_peer(addr);
    a.push(Protocol::P2p(peer));
    a
}

/// Whether an address goes through a relay.
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// The peer id at the end of an address, if any.
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) => Some(p),
        _ => None,
    }
}

impl PeerManager {
    /// A manager with the stored address book.
    pub(crate) fn new(
        policy: PeerPolicy,
        records: impl IntoIterator<Item = (PeerId, PeerRecord)>,
        now_ms: u64,
    ) -> Self {
        let mut relays = HashMap::new();
        for via in &policy.via {
            if let Some(p) = peer_of(via) {
                relays.insert(p, book::without_peer(via));
            }
        }
        PeerManager {
            policy,
            book: AddressBook::from_records(records),
            conns: HashMap::new(),
            relays,
            reservations: HashMap::new(),
            relay_backoff: HashMap::new(),
            external: Vec::new(),
            reached_at: Vec::new(),
            started_ms: now_ms,
            problems: VecDeque::new(),
            user_peers: HashSet::new(),
            dialling: HashSet::new(),
        }
    }

    /// The address book, for the DHT and `status`.
    pub(crate) fn book(&self) -> &AddressBook {
        &self.book
    }

    /// Whether this node hides its address.
    pub(crate) fn hidden(&self) -> bool {
        self.policy.hidden
    }

    /// The user gave this address (bootstrap, invite, `connect`): its
    /// failures are reported, not only retried.
    pub(crate) fn user_address(&mut self, addr: &Multiaddr) {
        if let Some(p) = peer_of(addr) {
            self.user_peers.insert(p);
        }
    }

    /// Records a problem the user should see (`status`).
    pub(crate) fn problem(&mut self, text: String) {
        if self.problems.back() == Some(&text) {
            return;
        }
        if self.problems.len() >= MAX_PROBLEMS {
            self.problems.pop_front();
        }
        tracing::warn!("{text}");
        self.problems.push_back(text);
    }

    /// Recent problems, oldest first.
    pub(crate) fn problems(&self) -> Vec<String> {
        self.problems.iter().cloned().collect()
    }

    /// The remote addresses of the connections to `peer`.
    pub(crate) fn connection_addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.conns
            .get(peer)
            .map(|c| c.iter().map(|(_, a, _)| a.clone()).collect())
            .unwrap_or_default()
    }

    /// A connection was established.
    pub(crate) fn connected(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        remote: Multiaddr,
        dialer: bool,
        now_ms: u64,
    ) -> Vec<PeerAction> {
        self.dialling.remove(&peer);
        self.user_peers.remove(&peer);
        let conns = self.conns.entry(peer).or_default();
        conns.push((id, remote, dialer));
        self.book
            .connected(peer, now_ms)
            .into_iter()
            .map(PeerAction::Book)
            .collect()
    }

    /// A connection was closed.
    pub(crate) fn closed(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(conns) = self.conns.get_mut(&peer) {
            conns.retain(|(c, _, _)| *c != id);
            if conns.is_empty() {
                self.conns.remove(&peer);
            }
        }
    }

    /// A peer on another machine dialled this node directly at `local`.
    /// True the first time: the caller then confirms it as an external
    /// address (a relay hands its external addresses out in every
    /// reservation, and a reservation without any is refused by the
    /// client).
    pub(crate) fn reached_directly(&mut self, local: Multiaddr) -> bool {
        if is_relayed(&local) || self.reached_at.contains(&local) || self.reached_at.len() >= 4 {
            return false;
        }
        self.reached_at.push(local);
        true
    }

    /// A peer said where it listens and what it speaks (identify).
    pub(crate) fn identified(
        &mut self,
        peer: PeerId,
        listen_addrs: &[Multiaddr],
        relays: bool,
        now_ms: u64,
    ) -> Vec<PeerAction> {
        if relays {
            // Reached directly, as dialer: others behind NAT can reach it
            // the same way, so it can relay for this node.
            let direct = self.conns.get(&peer).and_then(|c| {
                c.iter()
                    .find(|(_, a, dialer)| *dialer && !is_relayed(a))
                    .map(|(_, a, _)| book::without_peer(a))
            });
            if let Some(addr) = direct {
                self.relays.entry(peer).or_insert(addr);
            }
        }
        // A hidden node never learns other members' direct addresses for
        // dialling: it could not use them.
        let keep: Vec<Multiaddr> = if self.policy.hidden {
            listen_addrs
                .iter()
                .filter(|a| is_relayed(a))
                .cloned()
                .collect()
        } else {
            listen_addrs.to_vec()
        };
        self.book
            .listens_on(peer, &keep, now_ms)
            .into_iter()
            .map(PeerAction::Book)
            .collect()
    }

    /// A dial failed (`peer` if it was known). `addr_text` names what was
    /// dialled for the user's report.
    pub(crate) fn dial_failed(
        &mut self,
        peer: Option<PeerId>,
        error: &str,
        now_ms: u64,
    ) -> Vec<PeerAction> {
        let Some(peer) = peer else {
            return Vec::new();
        };
        self.dialling.remove(&peer);
        if self.user_peers.contains(&peer) && !self.conns.contains_key(&peer) {
            self.problem(format!(
                "could not reach {peer}: {error}. If it came from an invite, the invite may be \
                 stale: ask for a fresh one, or run `mutual connect ADDRESS` with an address \
                 of a member who is online"
            ));
        }
        if self.conns.contains_key(&peer) {
            return Vec::new();
        }
        self.book
            .dial_failed(peer, now_ms)
            .into_iter()
            .map(PeerAction::Book)
            .collect()
    }

    /// An address of this node was confirmed reachable from outside
    /// (AutoNAT or UPnP; relayed addresses are reservations).
    pub(crate) fn external_confirmed(&mut self, addr: Multiaddr) {
        if !self.external.contains(&addr) {
            self.external.push(addr);
        }
    }

    /// An external address is no longer reachable.
    pub(crate) fn external_expired(&mut self, addr: &Multiaddr) {
        self.external.retain(|a| a != addr);
    }

    /// The relay accepted a reservation.
    pub(crate) fn reservation_accepted(&mut self, relay: PeerId) {
        if let Some(r) = self.reservations.get_mut(&relay) {
            r.accepted = true;
        }
    }

    /// The listener through `relay` was created.
    pub(crate) fn reservation_listening(&mut self, relay: PeerId, listener: ListenerId) {
        self.reservations.insert(
            relay,
            Reservation {
                listener: Some(listener),
                accepted: false,
            },
        );
    }

    /// A listener closed: if it was a reservation, look for another relay
    /// later.
    pub(crate) fn listener_closed(&mut self, listener: ListenerId, now_ms: u64) {
        let gone: Vec<PeerId> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.listener == Some(listener))
            .map(|(p, _)| *p)
            .collect();
        for relay in gone {
            self.reservations.remove(&relay);
            self.relay_backoff
                .insert(relay, now_ms.saturating_add(book::FIRST_BACKOFF_MS * 5));
        }
    }

    /// Whether a public address is confirmed, or peers elsewhere dialled
    /// this node directly.
    fn public(&self) -> bool {
        self.external.iter().any(|a| !is_relayed(a)) || !self.reached_at.is_empty()
    }

    /// How others reach this node; `listen` are its listen addresses
    /// (relayed ones among them once a reservation is up).
    pub(crate) fn reachability(&self, listen: &[Multiaddr], now_ms: u64) -> Reachability {
        let relayed: Vec<Multiaddr> = listen
            .iter()
            .chain(self.external.iter())
            .filter(|a| is_relayed(a))
            .fold(Vec::new(), |mut v, a| {
                if !v.contains(a) {
                    v.push(a.clone());
                }
                v
            });
        if self.policy.hidden {
            return Reachability::Hidden(relayed);
        }
        if self.policy.loopback_only {
            return Reachability::LocalOnly;
        }
        if self.public() {
            let mut at: Vec<Multiaddr> = self
                .external
                .iter()
                .filter(|a| !is_relayed(a))
                .cloned()
                .collect();
            for a in &self.reached_at {
                if !at.contains(a) {
                    at.push(a.clone());
                }
            }
            return Reachability::Public(at);
        }
        if !relayed.is_empty() || now_ms.saturating_sub(self.started_ms) >= REACHABILITY_GRACE_MS {
            return Reachability::BehindNat(relayed);
        }
        Reachability::Unknown
    }

    /// Periodic work: redial remembered peers while fewer than
    /// [`TARGET_PEERS`] are connected, and keep [`RELAYS_WANTED`] relay
    /// reservations while this node is hidden or not publicly reachable.
    pub(crate) fn tick(&mut self, now_ms: u64) -> Vec<PeerAction> {
        let mut actions = Vec::new();
        if self.conns.len() < TARGET_PEERS {
            let room = MAX_DIALS_AT_ONCE.saturating_sub(self.dialling.len());
            let conns = &self.conns;
            let dialling = &self.dialling;
            let due = self.book.due(
                now_ms,
                |p| conns.contains_key(p) || dialling.contains(p),
                room,
            );
            for (peer, addrs) in due {
                let addrs = self.dial_addrs(peer, addrs);
                if addrs.is_empty() {
                    continue;
                }
                self.book.dialling(&peer, now_ms, DIAL_TIMEOUT_MS);
                self.dialling.insert(peer);
                actions.push(PeerAction::Dial(peer, addrs));
            }
        }
        let wants_relay = self.policy.hidden
            || (!self.policy.loopback_only
                && !self.public()
                && now_ms.saturating_sub(self.started_ms) >= REACHABILITY_GRACE_MS);
        if wants_relay && self.reservations.len() < RELAYS_WANTED {
            self.relay_backoff.retain(|_, until| *until > now_ms);
            let mut candidates: Vec<(&PeerId, &Multiaddr)> = self
                .relays
                .iter()
                .filter(|(p, _)| {
                    !self.reservations.contains_key(p) && !self.relay_backoff.contains_key(p)
                })
                // A `--via` relay is used whether or not it is connected
                // yet (the reservation dials it); others only while
                // connected.
                .filter(|(p, _)| self.policy.hidden || self.conns.contains_key(p))
                .collect();
            candidates.sort_by_key(|(p, _)| p.to_bytes());
            let take = RELAYS_WANTED - self.reservations.len();
            for (relay, addr) in candidates.into_iter().take(take) {
                actions.push(PeerAction::Reserve(*relay, with_peer(addr, *relay)));
            }
            // Marked now, so the next tick does not ask again before the
            // listener exists; the event loop replaces it with the real
            // listener or drops it if `listen_on` failed.
            for a in &actions {
                if let PeerAction::Reserve(relay, _) = a {
                    self.reservations.insert(
                        *relay,
                        Reservation {
                            listener: None,
                            accepted: false,
                        },
                    );
                }
            }
        }
        actions
    }

    /// A dial was not started (already connected or dialling).
    pub(crate) fn dial_skipped(&mut self, peer: PeerId) {
        self.dialling.remove(&peer);
    }

    /// A reservation could not even be started.
    pub(crate) fn reservation_failed(&mut self, relay: PeerId, now_ms: u64) {
        self.reservations.remove(&relay);
        self.relay_backoff
            .insert(relay, now_ms.saturating_add(book::FIRST_BACKOFF_MS * 5));
    }

    /// Relays this node holds an accepted reservation on.
    #[cfg(test)]
    pub(crate) fn reserved_relays(&self) -> Vec<PeerId> {
        self.reservations
            .iter()
            .filter(|(_, r)| r.accepted)
            .map(|(p, _)| *p)
            .collect()
    }

    /// The addresses to dial `peer` at: as remembered, or, for a hidden
    /// node, only relayed ones through its own relays (any other dial
    /// would show its address).
    fn dial_addrs(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
        if !self.policy.hidden {
            return addrs;
        }
        if self.relays.contains_key(&peer) {
            // One of its own relays: dialled directly, on purpose.
            return addrs;
        }
        self.relays
            .iter()
            .map(|(relay, addr)| {
                let mut a = with_peer(addr, *relay);
                a.push(Protocol::P2pCircuit);
                a.push(Protocol::P2p(peer));
                a
            })
            .collect()
    }

    /// The book's changes that `forget` makes for a banned peer.
    pub(crate) fn forget(&mut self, peer: &PeerId) -> Vec<PeerAction> {
        self.book
            .forget(peer)
            .into_iter()
            .map(PeerAction::Book)
            .collect()
    }
}

#[cfg(test)]
mod tests;
