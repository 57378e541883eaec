//! Bounded rate limits, on `governor`'s keyed GCRA limiters: every map a
//! stranger can grow (one entry per author key or peer id, which cost
//! nothing to make) is pruned of entries that are back to full and has a
//! hard bound; past it, new keys are refused (ignored, never penalised)
//! until pruning makes room.

use std::hash::Hash;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use protocol::PublicKey;

use super::PeerRef;

/// Posts one author may have gossiped to this node per minute of arrival
/// time, sustained: stops a key that backdates its posts to dodge the
/// creation-time window from flooding live gossip.
pub const AUTHOR_GOSSIP_PER_MINUTE: u32 = 60;
/// Burst of live gossip an author may send before the sustained rate applies.
pub const AUTHOR_BURST: u32 = 60;
/// Retractions and moderation actions one signer may have gossiped per
/// minute (and as a burst): a moderator cleaning up acts a few times a
/// minute; nobody retracts more.
pub const SIGNER_LOG_PER_MINUTE: u32 = 30;
/// Reports one relaying peer may pass on per minute (and as a burst).
pub const REPORTS_PER_PEER_PER_MINUTE: u32 = 10;
/// Sync requests one peer may make per 10 s: enough for a full catch-up of
/// a large topic in pages, too few to keep a node busy.
pub const SYNC_REQUESTS_PER_PEER_PER_10S: u32 = 200;
/// Sync requests this node answers per second from all peers together: a
/// new peer id costs nothing, so the per-peer budget alone is no bound.
pub const SYNC_REQUESTS_PER_SECOND: u32 = 100;
/// Keys a keyed limiter tracks at most.
pub const MAX_TRACKED_KEYS: usize = 100_000;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// A keyed limiter with a bound on its keys.
pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K, DefaultClock> {
    /// `per_minute` sustained with a burst of `burst`.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self::with_clock(
            Quota::per_minute(nz(per_minute)).allow_burst(nz(burst)),
            MAX_TRACKED_KEYS,
            DefaultClock::default(),
        )
    }
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimiter<K, C> {
    /// A limiter on `clock` (tests pass a fake one).
    pub fn with_clock(quota: Quota, max_keys: usize, clock: C) -> Self {
        KeyedLimiter {
            limiter: RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock),
            max_keys,
        }
    }

    /// Takes one cell for `key`; false when over its rate or when the
    /// limiter is full of keys that are all still recent.
    pub fn allow(&self, key: &K) -> bool {
        if self.limiter.len() >= self.max_keys {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
            if self.limiter.len() >= self.max_keys {
                return false;
            }
        }
        self.limiter.check_key(key).is_ok()
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Forgets keys whose state is back to full (called periodically).
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The core's limits on live gossip.
pub struct Limits {
    /// Posts per author.
    pub author_gossip: KeyedLimiter<PublicKey>,
    /// Retractions and moderation actions per signer.
    pub signer_log: KeyedLimiter<PublicKey>,
    /// Reports per relaying peer.
    pub report_relay: KeyedLimiter<PeerRef>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            author_gossip: KeyedLimiter::per_minute(AUTHOR_GOSSIP_PER_MINUTE, AUTHOR_BURST),
            signer_log: KeyedLimiter::per_minute(SIGNER_LOG_PER_MINUTE, SIGNER_LOG_PER_MINUTE),
            report_relay: KeyedLimiter::per_minute(
                REPORTS_PER_PEER_PER_MINUTE,
                REPORTS_PER_PEER_PER_MINUTE,
            ),
        }
    }
}

impl Limits {
    /// Forgets keys that are back to full.
    pub fn prune(&self) {
        self.author_gossip.prune();
        self.signer_log.prune();
        self.report_relay.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::time::Duration;

    fn limiter(clock: &FakeRelativeClock, max_keys: usize) -> KeyedLimiter<u64, FakeRelativeClock> {
        KeyedLimiter::with_clock(
            Quota::per_minute(nz(60)).allow_burst(nz(5)),
            max_keys,
            clock.clone(),
        )
    }

    #[test]
    fn a_key_gets_its_burst_then_the_sustained_rate() {
        let clock = FakeRelativeClock::default();
        let l = limiter(&clock, 1000);
        assert_eq!((0..100).filter(|_| l.allow(&1)).count(), 5);
        assert!(l.allow(&2), "other keys keep their budget");
        clock.advance(Duration::from_secs(1));
        assert!(l.allow(&1), "one cell a second comes back");
        assert!(!l.allow(&1));
    }

    #[test]
    fn keys_that_are_back_to_full_are_forgotten_and_the_map_is_bounded() {
        let clock = FakeRelativeClock::default();
        let l = limiter(&clock, 1000);
        for k in 0..1000 {
            assert!(l.allow(&k));
        }
        // Full of recent keys: a new key is refused, not tracked.
        assert!(!l.allow(&5000));
        assert_eq!(l.len(), 1000);
        // Once their cells are back, the old keys make room.
        clock.advance(Duration::from_secs(60));
        assert!(l.allow(&5000));
        assert_eq!(l.len(), 1, "only the new key is tracked after pruning");
    }
}
