//! The address book: the peers this node has been connected to, where they
//! said they listen, when they were last reachable and how often dialling
//! them has failed since. It is what lets a node find its community again
//! after a restart, a sleep or a move to another network, without an
//! invite. Pure state: time is passed in, and the caller persists the
//! records it is handed back.

use std::collections::HashMap;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// Most peers remembered: a community's active members fit many times over,
/// and a stranger announcing itself under thousands of peer ids cannot grow
/// the book (the oldest entries make room).
pub(crate) const MAX_PEERS_REMEMBERED: usize = 512;
/// Most addresses kept per peer: its listen addresses on a few transports
/// and a relay or two.
pub(crate) const MAX_ADDRS_PER_PEER: usize = 8;
/// Longest address kept, in bytes (a relayed address is about 120).
pub(crate) const MAX_ADDR_BYTES: usize = 512;
/// The first retry after a failed dial waits this long; each further
/// failure doubles it, up to [`MAX_BACKOFF_MS`].
pub(crate) const FIRST_BACKOFF_MS: u64 = 2_000;
/// Longest wait between two dials of an unreachable peer: a laptop that
/// comes back from sleep is found again within this time.
pub(crate) const MAX_BACKOFF_MS: u64 = 10 * 60 * 1_000;
/// A peer that failed this many dials in a row and was last reachable
/// longer than [`FORGET_AFTER_MS`] ago is forgotten.
pub(crate) const FORGET_AFTER_FAILURES: u32 = 12;
/// See [`FORGET_AFTER_FAILURES`]: a member away on holiday for a few weeks
/// is still dialled (rarely) when they come back.
pub(crate) const FORGET_AFTER_MS: u64 = 30 * 24 * 60 * 60 * 1_000;

/// What is remembered of one peer, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Where it said it listens (identify), newest first, as text.
    pub addrs: Vec<String>,
    /// When this node was last connected to it, ms since the Unix epoch.
    pub last_seen_ms: u64,
    /// Dials that failed since it was last reachable.
    pub failures: u32,
}

#[derive(Clone, Debug)]
struct Entry {
    addrs: Vec<Multiaddr>,
    last_seen_ms: u64,
    failures: u32,
    /// Not dialled again before this time (ms).
    next_dial_ms: u64,
}

impl Entry {
    fn record(&self) -> PeerRecord {
        PeerRecord {
            addrs: self.addrs.iter().map(|a| a.to_string()).collect(),
            last_seen_ms: self.last_seen_ms,
            failures: self.failures,
        }
    }
}

/// A change the caller writes to disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BookChange {
    /// Store (or replace) this peer's record.
    Put(PeerId, PeerRecord),
    /// Forget this peer.
    Forget(PeerId),
}

/// The address book (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct AddressBook {
    entries: HashMap<PeerId, Entry>,
}

/// Whether an address is worth remembering for a later dial: not an
/// unspecified address (`0.0.0.0`), not absurdly long, and not a relayed
/// address through the peer itself.
pub(crate) fn dialable(addr: &Multiaddr) -> bool {
    if addr.len() > MAX_ADDR_BYTES {
        return false;
    }
    addr.iter().all(|p| match p {
        Protocol::Ip4(ip) => !ip.is_unspecified(),
        Protocol::Ip6(ip) => !ip.is_unspecified(),
        _ => true,
    }) && addr.iter().next().is_some()
}

/// The address without a trailing `/p2p/<peer>` (the book keys by peer).
pub(crate) fn without_peer(addr: &Multiaddr) -> Multiaddr {
    let mut a = addr.clone();
    if matches!(a.iter().last(), Some(Protocol::P2p(_))) {
        a.pop();
    }
    a
}

/// A deterministic jitter factor in [0.5, 1.5) for the `n`th retry of
/// `peer`: peers that failed together do not all come back at once, and
/// tests can predict the schedule's bounds.
fn jitter(peer: &PeerId, n: u32) -> f64 {
    let mut input = peer.to_bytes();
    input.extend_from_slice(&n.to_le_bytes());
    let h = blake3::hash(&input);
    let b = h.as_bytes();
    let x = u16::from_le_bytes([b[0], b[1]]);
    0.5 + f64::from(x) / 65_536.0
}

/// How long to wait after the `failures`th failure in a row.
pub(crate) fn backoff_ms(peer: &PeerId, failures: u32) -> u64 {
    let exp = failures.saturating_sub(1).min(20);
    let base = FIRST_BACKOFF_MS
        .saturating_mul(1u64 << exp)
        .min(MAX_BACKOFF_MS);
    (base as f64 * jitter(peer, failures)) as u64
}

impl AddressBook {
    /// The book as it was stored. Records that do not parse are skipped;
    /// a peer that failed before the restart keeps its back-off count but
    /// may be dialled at once (the network may have changed).
    pub(crate) fn from_records(records: impl IntoIterator<Item = (PeerId, PeerRecord)>) -> Self {
        let mut book = AddressBook::default();
        for (peer, r) in records {
            let addrs: Vec<Multiaddr> = r
                .addrs
                .iter()
                .filter_map(|a| a.parse::<Multiaddr>().ok())
                .filter(dialable)
                .take(MAX_ADDRS_PER_PEER)
                .collect();
            if addrs.is_empty() {
                continue;
            }
            book.entries.insert(
                peer,
                Entry {
                    addrs,
                    last_seen_ms: r.last_seen_ms,
                    failures: r.failures,
                    next_dial_ms: 0,
                },
            );
        }
        book
    }

    /// How many peers are remembered.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The remembered addresses of `peer`.
    #[cfg(test)]
    pub(crate) fn addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.entries
            .get(peer)
            .map(|e| e.addrs.clone())
            .unwrap_or_default()
    }

    /// Every remembered peer with its addresses.
    pub(crate) fn all(&self) -> impl Iterator<Item = (&PeerId, &[Multiaddr])> {
        self.entries.iter().map(|(p, e)| (p, e.addrs.as_slice()))
    }

    /// The peer is connected now: it is reachable, its failures are over.
    pub(crate) fn connected(&mut self, peer: PeerId, now_ms: u64) -> Vec<BookChange> {
        match self.entries.get_mut(&peer) {
            Some(e) => {
                e.last_seen_ms = now_ms;
                e.failures = 0;
                e.next_dial_ms = 0;
                vec![BookChange::Put(peer, e.record())]
            }
            // Nothing to remember until it says where it listens.
            None => Vec::new(),
        }
    }

    /// The peer said where it listens (identify, on any connection: the
    /// ones it dialled too). The newest addresses come first.
    pub(crate) fn listens_on(
        &mut self,
        peer: PeerId,
        addrs: &[Multiaddr],
        now_ms: u64,
    ) -> Vec<BookChange> {
        let fresh: Vec<Multiaddr> = addrs
            .iter()
            .map(without_peer)
            .filter(dialable)
            .take(MAX_ADDRS_PER_PEER)
            .collect();
        if fresh.is_empty() {
            return Vec::new();
        }
        let mut changes = Vec::new();
        if !self.entries.contains_key(&peer) && self.entries.len() >= MAX_PEERS_REMEMBERED {
            // Room for the newcomer: the peer seen longest ago goes.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(p, e)| (e.last_seen_ms, p.to_bytes()))
                .map(|(p, _)| *p)
            {
                self.entries.remove(&oldest);
                changes.push(BookChange::Forget(oldest));
            }
        }
        let e = self.entries.entry(peer).or_insert_with(|| Entry {
            addrs: Vec::new(),
            last_seen_ms: now_ms,
            failures: 0,
            next_dial_ms: 0,
        });
        let mut merged = fresh;
        for old in &e.addrs {
            if merged.len() >= MAX_ADDRS_PER_PEER {
                break;
            }
            if !merged.contains(old) {
                merged.push(old.clone());
            }
        }
        e.addrs = merged;
        e.last_seen_ms = now_ms;
        e.failures = 0;
        changes.push(BookChange::Put(peer, e.record()));
        changes
    }

    /// A dial of `peer` failed: wait longer before the next one, and forget
    /// a peer that has kept failing for long.
    pub(crate) fn dial_failed(&mut self, peer: PeerId, now_ms: u64) -> Vec<BookChange> {
        let Some(e) = self.entries.get_mut(&peer) else {
            return Vec::new();
        };
        e.failures = e.failures.saturating_add(1);
        e.next_dial_ms = now_ms.saturating_add(backoff_ms(&peer, e.failures));
        if e.failures >= FORGET_AFTER_FAILURES
            && now_ms.saturating_sub(e.last_seen_ms) > FORGET_AFTER_MS
        {
            self.entries.remove(&peer);
            return vec![BookChange::Forget(peer)];
        }
        vec![BookChange::Put(peer, e.record())]
    }

    /// Forgets a peer (banned, or cut off by the user).
    pub(crate) fn forget(&mut self, peer: &PeerId) -> Vec<BookChange> {
        match self.entries.remove(peer) {
            Some(_) => vec![BookChange::Forget(*peer)],
            None => Vec::new(),
        }
    }

    /// Up to `limit` peers to dial now: not connected, not being dialled,
    /// past their back-off; the most recently seen first (they are the
    /// likeliest to be up).
    pub(crate) fn due(
        &self,
        now_ms: u64,
        skip: impl Fn(&PeerId) -> bool,
        limit: usize,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut due: Vec<(&PeerId, &Entry)> = self
            .entries
            .iter()
            .filter(|(p, e)| e.next_dial_ms <= now_ms && !skip(p))
            .collect();
        due.sort_by(|a, b| {
            b.1.last_seen_ms
                .cmp(&a.1.last_seen_ms)
                .then_with(|| a.0.to_bytes().cmp(&b.0.to_bytes()))
        });
        due.into_iter()
            .take(limit)
            .map(|(p, e)| (*p, e.addrs.clone()))
            .collect()
    }

    /// Marks a peer as being dialled now, so a slow dial is not repeated at
    /// every tick; its outcome is reported through `connected` or
    /// `dial_failed`.
    pub(crate) fn dialling(&mut self, peer: &PeerId, now_ms: u64, timeout_ms: u64) {
        if let Some(e) = self.entries.get_mut(peer) {
            e.next_dial_ms = now_ms.saturating_add(timeout_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn remembers_listen_addresses_newest_first_and_bounded() {
        let mut book = AddressBook::default();
        let p = PeerId::random();
        book.listens_on(p, &[addr("/ip4/10.0.0.1/tcp/1")], 1);
        book.listens_on(p, &[addr("/ip4/10.0.0.2/tcp/2")], 2);
        assert_eq!(
            book.addrs(&p),
            vec![addr("/ip4/10.0.0.2/tcp/2"), addr("/ip4/10.0.0.1/tcp/1")]
        );
        let many: Vec<Multiaddr> = (0..20)
            .map(|i| addr(&format!("/ip4/10.0.1.{i}/tcp/1")))
            .collect();
        book.listens_on(p, &many, 3);
        assert_eq!(book.addrs(&p).len(), MAX_ADDRS_PER_PEER);
    }

    #[test]
    fn unspecified_addresses_and_peer_suffixes_are_not_kept() {
        let mut book = AddressBook::default();
        let p = PeerId::random();
        let with_peer = addr(&format!("/ip4/10.0.0.1/tcp/1/p2p/{p}"));
        book.listens_on(p, &[addr("/ip4/0.0.0.0/tcp/1"), with_peer], 1);
        assert_eq!(book.addrs(&p), vec![addr("/ip4/10.0.0.1/tcp/1")]);
        let q = PeerId::random();
        assert!(book
            .listens_on(q, &[addr("/ip4/0.0.0.0/tcp/1")], 1)
            .is_empty());
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn the_book_is_bounded_and_drops_the_peer_seen_longest_ago() {
        let mut book = AddressBook::default();
        let first = PeerId::random();
        book.listens_on(first, &[addr("/ip4/10.0.0.1/tcp/1")], 0);
        for i in 1..MAX_PEERS_REMEMBERED as u64 {
            book.listens_on(PeerId::random(), &[addr("/ip4/10.0.0.1/tcp/1")], i);
        }
        assert_eq!(book.len(), MAX_PEERS_REMEMBERED);
        let changes = book.listens_on(PeerId::random(), &[addr("/ip4/10.0.0.9/tcp/1")], 10_000);
        assert_eq!(book.len(), MAX_PEERS_REMEMBERED);
        assert!(changes.contains(&BookChange::Forget(first)));
        assert!(book.addrs(&first).is_empty());
    }

    #[test]
    fn due_peers_come_most_recently_seen_first_and_limited() {
        let mut book = AddressBook::default();
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        for (i, p) in peers.iter().enumerate() {
            book.listens_on(*p, &[addr("/ip4/10.0.0.1/tcp/1")], i as u64 * 10);
        }
        let due = book.due(100, |p| *p == peers[4], 3);
        let order: Vec<PeerId> = due.iter().map(|(p, _)| *p).collect();
        assert_eq!(order, vec![peers[3], peers[2], peers[1]]);
    }

    #[test]
    fn failures_back_off_exponentially_with_jitter_and_success_resets() {
        let mut book = AddressBook::default();
        let p = PeerId::random();
        book.listens_on(p, &[addr("/ip4/10.0.0.1/tcp/1")], 0);
        let mut now = 1_000;
        let mut last_wait = 0;
        for n in 1..=6u32 {
            book.dial_failed(p, now);
            let base = FIRST_BACKOFF_MS << (n - 1);
            let wait = backoff_ms(&p, n);
            assert!(
                wait >= base / 2 && wait < base * 3 / 2,
                "retry {n}: {wait} ms"
            );
            // Not due before its back-off, due after it.
            assert!(book.due(now + wait - 1, |_| false, 10).is_empty());
            assert_eq!(book.due(now + wait, |_| false, 10).len(), 1);
            assert!(n == 1 || wait > last_wait / 2);
            last_wait = wait;
            now += wait;
        }
        assert!(backoff_ms(&p, 40) < MAX_BACKOFF_MS * 3 / 2);
        book.connected(p, now);
        assert_eq!(book.due(now, |_| false, 10).len(), 1);
    }

    #[test]
    fn a_peer_failing_for_long_is_forgotten_but_not_a_recent_one() {
        let mut book = AddressBook::default();
        let p = PeerId::random();
        book.listens_on(p, &[addr("/ip4/10.0.0.1/tcp/1")], 0);
        for _ in 0..FORGET_AFTER_FAILURES + 3 {
            book.dial_failed(p, 1_000);
        }
        assert_eq!(book.len(), 1, "seen recently: kept however often it failed");
        let changes = book.dial_failed(p, FORGET_AFTER_MS + 1);
        assert_eq!(changes, vec![BookChange::Forget(p)]);
        assert_eq!(book.len(), 0);
    }

    #[test]
    fn records_round_trip() {
        let mut book = AddressBook::default();
        let p = PeerId::random();
        let changes = book.listens_on(p, &[addr("/ip4/10.0.0.1/tcp/1")], 7);
        let BookChange::Put(_, record) = changes.last().unwrap().clone() else {
            panic!("expected a put")
        };
        let back = AddressBook::from_records([(p, record)]);
        assert_eq!(back.addrs(&p), vec![addr("/ip4/10.0.0.1/tcp/1")]);
        let junk = PeerRecord {
            addrs: vec!["not an address".into()],
            ..PeerRecord::default()
        };
        assert_eq!(AddressBook::from_records([(p, junk)]).len(), 0);
    }
}
