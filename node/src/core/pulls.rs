//! Which peers are pulling a scope from this node right now, and how much
//! they said they hold.
//!
//! Every connection syncs both ways: each node runs its own session towards
//! the other. When one of the two is far behind (a new member catching up
//! on 100,000 posts), the full node's own session towards it is wasted
//! work on both machines: the other side keeps filling, so the full node
//! keeps finding differences, splits ranges and re-reads its own keys for
//! every page, and all of that competes with the catch-up for the same
//! cores. So the node holds its own session with a peer that is pulling
//! the same scope from it and said it holds fewer items, and tries again
//! once the pull is over. The peer with fewer items never holds, so two
//! nodes never wait for each other.
//!
//! The responder records a pull when it answers a request (on the blocking
//! pool); the core asks before each page of its own session. A peer that
//! lies about its count can only make this node put off fetching from that
//! one peer (it fetches from the others, and tries again later). The map is
//! bounded: stale entries are dropped, and past [`MAX_TRACKED`] a new pull
//! is not recorded (the session then simply runs, as before).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol::sync::{QueryMode, SyncRequest, SyncScope};

use super::PeerRef;

/// A pull counts as going on for this long after its last request.
pub(crate) const ACTIVE: Duration = Duration::from_secs(1);

/// Pulls remembered at most (peers times scopes).
const MAX_TRACKED: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Pull {
    /// What the peer said it holds in the scope, at the session's start.
    count: u64,
    /// When its last request was answered.
    last: Instant,
}

/// Pulls in progress, shared by the responder and the core.
#[derive(Default)]
pub(crate) struct Pulls {
    inner: Mutex<HashMap<(PeerRef, SyncScope), Pull>>,
}

impl Pulls {
    /// Notes a request `peer` sent: the first of a session (round 0, one
    /// range over the whole key space) says how many items it holds; a
    /// later one only says the pull goes on.
    pub(crate) fn served(&self, peer: &PeerRef, request: &SyncRequest, now: Instant) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = (peer.clone(), request.scope.clone());
        let count = match (request.round, request.ranges.as_slice()) {
            (0, [whole]) => match &whole.mode {
                QueryMode::Sum(acc) => Some(acc.count()),
                QueryMode::Have(ids) => Some(ids.len() as u64),
                QueryMode::Skip => None,
            },
            _ => None,
        };
        if let Some(pull) = map.get_mut(&key) {
            pull.last = now;
            if let Some(c) = count {
                pull.count = c;
            }
            return;
        }
        let Some(count) = count else {
            // A session already running when this node started keeping
            // track: nothing known about its size.
            return;
        };
        if map.len() >= MAX_TRACKED {
            map.retain(|_, p| now.saturating_duration_since(p.last) < ACTIVE);
            if map.len() >= MAX_TRACKED {
                return;
            }
        }
        map.insert(key, Pull { count, last: now });
    }

    /// The count `peer` said it holds in `scope`, if it is pulling that
    /// scope from this node now.
    pub(crate) fn active(&self, peer: &PeerRef, scope: &SyncScope, now: Instant) -> Option<u64> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let pull = map.get(&(peer.clone(), scope.clone()))?;
        (now.saturating_duration_since(pull.last) < ACTIVE).then_some(pull.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::sync::{Accumulator, Bound, RangeQuery};
    use protocol::TopicName;

    fn request(round: u32, mode: QueryMode) -> SyncRequest {
        SyncRequest {
            scope: SyncScope::Topic(TopicName::parse("t").unwrap()),
            round,
            ranges: vec![RangeQuery {
                upper: Bound {
                    ts: 0,
                    prefix: Vec::new(),
                },
                mode,
            }],
            want: Vec::new(),
        }
    }

    #[test]
    fn a_pull_is_active_until_its_requests_stop() {
        let pulls = Pulls::default();
        let peer = PeerRef("p".into());
        let t0 = Instant::now();
        let mut acc = Accumulator::default();
        acc.add(&[1; 32]);
        acc.add(&[2; 32]);
        let first = request(0, QueryMode::Sum(acc));
        let scope = first.scope.clone();
        assert_eq!(pulls.active(&peer, &scope, t0), None);
        pulls.served(&peer, &first, t0);
        assert_eq!(pulls.active(&peer, &scope, t0), Some(2));
        // A later request keeps it going without changing the count.
        let later = t0 + ACTIVE / 2;
        pulls.served(&peer, &request(3, QueryMode::Have(vec![[0; 8]; 7])), later);
        assert_eq!(pulls.active(&peer, &scope, later + ACTIVE / 2), Some(2));
        assert_eq!(pulls.active(&peer, &scope, later + ACTIVE), None);
        // Another peer, another scope: nothing.
        assert_eq!(pulls.active(&PeerRef("q".into()), &scope, later), None);
        assert_eq!(pulls.active(&peer, &SyncScope::CommunityLog, later), None);
    }

    #[test]
    fn an_empty_node_says_it_holds_nothing() {
        let pulls = Pulls::default();
        let peer = PeerRef("p".into());
        let now = Instant::now();
        let first = request(0, QueryMode::Have(Vec::new()));
        pulls.served(&peer, &first, now);
        assert_eq!(pulls.active(&peer, &first.scope, now), Some(0));
    }

    #[test]
    fn the_map_is_bounded() {
        let pulls = Pulls::default();
        let now = Instant::now();
        for i in 0..MAX_TRACKED + 10 {
            pulls.served(
                &PeerRef(format!("p{i}")),
                &request(0, QueryMode::Have(Vec::new())),
                now,
            );
        }
        let len = pulls.inner.lock().unwrap().len();
        assert_eq!(len, MAX_TRACKED);
        // Once the old ones are stale, new ones are recorded again.
        let later = now + ACTIVE;
        let fresh = PeerRef("fresh".into());
        let r = request(0, QueryMode::Have(Vec::new()));
        pulls.served(&fresh, &r, later);
        assert_eq!(pulls.active(&fresh, &r.scope, later), Some(0));
    }
}
