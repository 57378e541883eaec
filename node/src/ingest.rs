//! "A signed thing arrived": the one code path for every item, whether it
//! came from gossip, from sync, or from the local user. Validation has
//! already happened (only [`VerifiedMessage`]s get here); this applies the
//! moderation rules, the retraction rules and the per-author rate limit,
//! stores the item and enforces what it changes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use libp2p::gossipsub::MessageAcceptance;
use protocol::sync::ItemKey;
use protocol::{
    CommunityId, Message, ModerationState, PostId, PublicKey, Scope, SealedReport, SignedManifest,
    TopicName, VerifiedMessage, VerifiedModAction, VerifiedPost,
};

use crate::api::ReportView;
use crate::error::NodeError;
use crate::event_loop::EventLoop;
use crate::handle::{NodeEvent, RemovalReason};
use crate::store::Store;

/// Where an item came from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Origin {
    /// Written by this node's user.
    Local,
    /// Relayed by a gossip peer.
    Gossip,
    /// Received from a peer by history sync.
    Sync,
    /// Handed in through [`crate::NodeHandle::import`].
    Import,
}

/// What became of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Newly stored / applied.
    Stored,
    /// Already known.
    Duplicate,
}

/// Why an item was not taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// Breaks a rule no honest node breaks: the relayer is penalised.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Refused by moderation (blocked author, hidden or retracted post, an
    /// action by someone who may not take it): dropped, not relayed.
    #[error("refused by moderation: {0}")]
    Moderation(String),
    /// A post of a topic this node has not joined.
    #[error("not a joined topic")]
    NotJoined,
    /// The author is over the per-author rate limit.
    #[error("posting too fast: at most {0} posts a minute per author; wait a little")]
    RateLimited(usize),
    /// The author's live gossip is over the arrival-rate limit.
    #[error("the author's gossip is over the arrival-rate limit")]
    GossipFlood,
    /// This node could not store it.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl Refusal {
    /// What gossipsub should do with the message: reject (and penalise the
    /// sender) only for what no honest relay would forward.
    pub(crate) fn gossip_verdict(&self) -> MessageAcceptance {
        match self {
            Refusal::Invalid(_) => MessageAcceptance::Reject,
            _ => MessageAcceptance::Ignore,
        }
    }
}

/// Posts one author may create in any 60 s (by the signed creation time),
/// enforced the same way on every node and for every origin. A support
/// conversation is a few posts a minute at its busiest; 30 leaves room
/// while one key cannot drown a topic.
pub const AUTHOR_POSTS_PER_MINUTE: usize = 30;
/// Posts one author may have gossiped to this node per minute of arrival
/// time, sustained: stops a key that backdates its posts to dodge the
/// creation-time window from flooding live gossip.
pub const AUTHOR_GOSSIP_PER_MINUTE: f64 = 60.0;
/// Burst of live gossip an author may send before the sustained rate applies.
pub const AUTHOR_BURST: f64 = 60.0;
/// Authors tracked at most (the oldest buckets are dropped beyond this).
const MAX_TRACKED_AUTHORS: usize = 100_000;

/// A token bucket per author, applied to live gossip. Sync (bounded per
/// peer) and the local user are not limited by it.
#[derive(Debug)]
pub(crate) struct AuthorRateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: HashMap<PublicKey, (f64, Instant)>,
}

impl Default for AuthorRateLimiter {
    fn default() -> Self {
        AuthorRateLimiter::new(AUTHOR_GOSSIP_PER_MINUTE, AUTHOR_BURST)
    }
}

impl AuthorRateLimiter {
    pub(crate) fn new(per_minute: f64, burst: f64) -> Self {
        AuthorRateLimiter {
            per_minute,
            burst,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `author`; false when none is left.
    pub(crate) fn allow(&mut self, author: &PublicKey, now: Instant) -> bool {
        if self.buckets.len() >= MAX_TRACKED_AUTHORS && !self.buckets.contains_key(author) {
            let full = self.burst;
            self.buckets.retain(|_, (tokens, _)| *tokens < full);
        }
        let (tokens, last) = self.buckets.entry(*author).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.per_minute / 60.0;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The posts of one batch taken so far, for the checks of the next ones.
#[derive(Default)]
struct PostBatch {
    ids: HashSet<PostId>,
    times: HashMap<PublicKey, Vec<u64>>,
}

impl PostBatch {
    fn add(&mut self, post: &VerifiedPost) {
        self.ids.insert(post.id());
        self.times
            .entry(post.author)
            .or_default()
            .push(post.created_at);
    }

    /// Posts of `author` in this batch created in `[from, to]`.
    fn by_author_between(&self, author: &PublicKey, from: u64, to: u64) -> usize {
        self.times
            .get(author)
            .map_or(0, |t| t.iter().filter(|c| (from..=to).contains(*c)).count())
    }
}

/// What start-up takes from the stored community log, read in one pass.
pub(crate) struct StoredLog {
    /// The fold of every stored moderation action.
    pub(crate) moderation: ModerationState,
    /// The stored reports with a copy sealed to this node's key (opened by
    /// [`EventLoop::open_reports`]).
    pub(crate) reports: Vec<SealedReport>,
}

/// Reads the stored community log once at start-up: folds its moderation
/// actions and keeps the reports sealed to `me`.
///
/// Every item was verified before it was stored (the store is this node's
/// own directory, mode 0700), so signatures are not checked again: that
/// was most of the start-up time with a long log. The checks that need no
/// cryptography (community, field sizes) still run, and the fold applies
/// the moderation rules (who may take which action) again.
pub(crate) fn load_log(
    store: &Store,
    manifest: &SignedManifest,
    community: CommunityId,
    me: &PublicKey,
) -> Result<StoredLog, NodeError> {
    let ctx = protocol::ValidationContext {
        community,
        // Stored items were checked when they arrived; time is not re-judged.
        now_ms: u64::MAX,
    };
    let mut actions: Vec<VerifiedModAction> = Vec::new();
    let mut reports = Vec::new();
    for (_, bytes) in store.log_items()? {
        match Message::decode(&bytes) {
            Ok(Message::Moderation(signed)) => match signed.trusted_from_store(&ctx) {
                Ok(action) => actions.push(action),
                Err(e) => tracing::warn!("skipping a stored moderation action: {e}"),
            },
            Ok(Message::Report(sealed)) => {
                if sealed.copies.iter().any(|c| c.recipient == *me) {
                    reports.push(sealed);
                }
            }
            // Retractions are looked up in their own tree.
            Ok(_) => {}
            Err(e) => tracing::warn!("skipping a stored log item that does not decode: {e}"),
        }
    }
    Ok(StoredLog {
        moderation: ModerationState::fold(community, manifest.content.admin, actions.iter()),
        reports,
    })
}

impl EventLoop {
    /// The single entry point for a verified item from anywhere.
    pub(crate) fn arrived(
        &mut self,
        item: VerifiedMessage,
        origin: Origin,
    ) -> Result<Outcome, Refusal> {
        self.arrived_all(vec![item], origin)
            .pop()
            .unwrap_or(Ok(Outcome::Duplicate))
    }

    /// The same as [`EventLoop::arrived`] for each item in order, with the
    /// same verdicts; consecutive posts are written in one transaction.
    pub(crate) fn arrived_all(
        &mut self,
        items: Vec<VerifiedMessage>,
        origin: Origin,
    ) -> Vec<Result<Outcome, Refusal>> {
        let mut out = Vec::with_capacity(items.len());
        let mut posts = Vec::new();
        for item in items {
            match item {
                VerifiedMessage::Post(post) => posts.push(post),
                other => {
                    self.arrived_posts(std::mem::take(&mut posts), origin, &mut out);
                    let outcome = self.arrived_other(other, origin);
                    if matches!(outcome, Ok(Outcome::Stored)) {
                        self.note_stored(origin);
                    }
                    out.push(outcome);
                }
            }
        }
        self.arrived_posts(posts, origin, &mut out);
        out
    }

    /// Marks the store for the next interval flush when something from
    /// the network was stored (local writes are flushed before they are
    /// acknowledged).
    fn note_stored(&mut self, origin: Origin) {
        if !matches!(origin, Origin::Local) {
            self.dirty = true;
        }
    }

    /// Anything but a run of posts: retractions, actions, reports.
    fn arrived_other(&mut self, item: VerifiedMessage, origin: Origin) -> Result<Outcome, Refusal> {
        Ok(match item {
            VerifiedMessage::Post(post) => {
                let mut out = Vec::with_capacity(1);
                self.arrived_posts(vec![post], origin, &mut out);
                return out.pop().unwrap_or(Ok(Outcome::Duplicate));
            }
            VerifiedMessage::Retraction(r) => {
                let key = ItemKey {
                    created_at: r.created_at,
                    id: r.id().0,
                };
                if let Some(stored) = self.store.get_post(&r.post)? {
                    if !r.applies_to(&stored.content.author) {
                        return Err(Refusal::Invalid(
                            "a retraction signed by someone other than the post's author".into(),
                        ));
                    }
                }
                let bytes = Message::Retraction(r.signed().clone()).encode();
                if !self.store.insert_log(key, &bytes)? {
                    return Ok(Outcome::Duplicate);
                }
                self.store.add_retraction(&r.post, &r.author)?;
                if let Some(removed) = self.store.delete_post(&r.post)? {
                    self.emit(NodeEvent::PostRemoved {
                        id: r.post.to_string(),
                        topic: removed.content.topic.to_string(),
                        reason: RemovalReason::Retracted,
                    });
                }
                Outcome::Stored
            }
            VerifiedMessage::Moderation(action) => self.arrived_action(action)?,
            VerifiedMessage::Report(report) => {
                let key = ItemKey {
                    created_at: report.sealed().created_at,
                    id: report.id().0,
                };
                let bytes = Message::Report(report.sealed().clone()).encode();
                if !self.store.insert_log(key, &bytes)? {
                    return Ok(Outcome::Duplicate);
                }
                if let Some(view) = self.open_report(report.sealed()) {
                    self.reports.push(view);
                }
                Outcome::Stored
            }
        })
    }

    /// Judges a run of posts one by one (each as if the ones before it were
    /// already stored), then stores those taken in one transaction.
    fn arrived_posts(
        &mut self,
        posts: Vec<VerifiedPost>,
        origin: Origin,
        out: &mut Vec<Result<Outcome, Refusal>>,
    ) {
        if posts.is_empty() {
            return;
        }
        let mut taken: Vec<(usize, VerifiedPost)> = Vec::with_capacity(posts.len());
        let mut batch = PostBatch::default();
        for post in posts {
            match self.judge_post(&post, origin, &batch) {
                Ok(()) => {
                    batch.add(&post);
                    out.push(Ok(Outcome::Stored));
                    taken.push((out.len() - 1, post));
                }
                Err(verdict) => out.push(verdict),
            }
        }
        if taken.is_empty() {
            return;
        }
        let refs: Vec<&VerifiedPost> = taken.iter().map(|(_, p)| p).collect();
        match self.store.insert_posts(&refs) {
            Ok(stored) => {
                let announce = self.events.receiver_count() > 0;
                for ((slot, post), new) in taken.into_iter().zip(stored) {
                    if !new {
                        if let Some(verdict) = out.get_mut(slot) {
                            *verdict = Ok(Outcome::Duplicate);
                        }
                        continue;
                    }
                    if let Origin::Sync = origin {
                        self.sync.received += 1;
                    }
                    self.note_stored(origin);
                    if announce {
                        let view = self.post_view(post.signed());
                        self.emit(NodeEvent::PostStored(Box::new(view)));
                    }
                }
            }
            Err(e) => {
                tracing::error!("storing {} posts: {e}", taken.len());
                // This node's failure, not the senders': no post of the
                // batch is reported invalid (that would penalise peers).
                for (slot, _) in taken {
                    if let Some(verdict) = out.get_mut(slot) {
                        *verdict = Err(Refusal::Store(e.clone()));
                    }
                }
            }
        }
    }

    /// Every rule a post must pass before it is stored, given the posts of
    /// the same batch taken before it. `Err(Ok(Duplicate))`: already known.
    fn judge_post(
        &mut self,
        post: &VerifiedPost,
        origin: Origin,
        batch: &PostBatch,
    ) -> Result<(), Result<Outcome, Refusal>> {
        let id = post.id();
        if !self.joined.contains(&post.topic) {
            return Err(Err(Refusal::NotJoined));
        }
        let refuse = |r: Refusal| Err(Err(r));
        // Only the author's own retraction binds (a bogus one by someone
        // else may also be stored).
        match self.store.is_retracted_by(&id, &post.author) {
            Ok(true) => {
                return refuse(Refusal::Moderation("the author retracted this post".into()))
            }
            Ok(false) => {}
            Err(e) => return refuse(e.into()),
        }
        if let Some(block) = self.moderation.is_blocked(&post.author, &post.topic) {
            return refuse(Refusal::Moderation(format!(
                "the author is blocked: {}",
                block.reason
            )));
        }
        if self.moderation.hidden(&id).is_some() {
            return refuse(Refusal::Moderation("a moderator hid this post".into()));
        }
        if batch.ids.contains(&id) {
            return Err(Ok(Outcome::Duplicate));
        }
        match self.store.contains_post(&id) {
            Ok(true) => return Err(Ok(Outcome::Duplicate)),
            Ok(false) => {}
            Err(e) => return refuse(e.into()),
        }
        // Posts within a minute on either side: whatever order posts arrive
        // in, no 60 s window of creation time ends up with more than `limit`.
        let limit = self.config.author_posts_per_minute;
        if limit != usize::MAX {
            let from = post.created_at.saturating_sub(59_999);
            let to = post.created_at.saturating_add(59_999);
            let in_batch = batch.by_author_between(&post.author, from, to);
            let stored = match self
                .store
                .count_author_between(&post.author, from, to, limit)
            {
                Ok(n) => n,
                Err(e) => return refuse(e.into()),
            };
            if stored.saturating_add(in_batch) >= limit {
                return refuse(Refusal::RateLimited(limit));
            }
        }
        if matches!(origin, Origin::Gossip) && !self.rate.allow(&post.author, Instant::now()) {
            return refuse(Refusal::GossipFlood);
        }
        Ok(())
    }

    fn arrived_action(&mut self, action: VerifiedModAction) -> Result<Outcome, Refusal> {
        let key = ItemKey {
            created_at: action.created_at,
            id: action.id().0,
        };
        let blocks_before: BTreeSet<(PublicKey, Scope)> = self.moderation.block_targets();
        let hidden_before: BTreeSet<PostId> = self.moderation.hidden_targets();
        match self.moderation.apply(&action) {
            Ok(_) => {}
            // A copy of an action kept as pending (its signer does not
            // moderate) is refused again, not waved through as known.
            Err(protocol::state::ModerationError::Duplicate)
                if !action.kind.admin_only()
                    && !self
                        .moderation
                        .is_moderator(&action.signer, action.created_at) =>
            {
                return Err(Refusal::Moderation(
                    protocol::state::ModerationError::NotModerator {
                        signer: action.signer.short(),
                        at_ms: action.created_at,
                    }
                    .to_string(),
                ))
            }
            Err(protocol::state::ModerationError::Duplicate) => return Ok(Outcome::Duplicate),
            Err(e) => return Err(Refusal::Moderation(e.to_string())),
        }
        let bytes = Message::Moderation(action.signed().clone()).encode();
        self.store.insert_log(key, &bytes)?;
        self.enforce(&blocks_before, &hidden_before)?;
        self.emit(NodeEvent::Moderation {
            id: action.id().to_string(),
        });
        Ok(Outcome::Stored)
    }

    /// Deletes what newly became blocked or hidden. Every node runs this
    /// after the same fold, so every node deletes the same posts.
    fn enforce(
        &mut self,
        blocks_before: &BTreeSet<(PublicKey, Scope)>,
        hidden_before: &BTreeSet<PostId>,
    ) -> Result<(), Refusal> {
        for (author, scope) in self.moderation.block_targets() {
            if blocks_before.contains(&(author, scope.clone())) {
                continue;
            }
            // The topic of a community block's posts is not at hand here
            // (empty); the core fills it.
            let topic = match &scope {
                Scope::Topic(t) => t.to_string(),
                Scope::Community => String::new(),
            };
            for id in self.store.delete_author_posts(&author, &scope)? {
                self.emit(NodeEvent::PostRemoved {
                    id: id.to_string(),
                    topic: topic.clone(),
                    reason: RemovalReason::Blocked,
                });
            }
        }
        let hidden_now = self.moderation.hidden_targets();
        let mut lifted = self.moderation.block_targets().len() < blocks_before.len();
        for post in hidden_before.difference(&hidden_now) {
            // Unhidden: the tombstone goes; the post may come back by sync.
            self.store.remove_tombstone_of(post)?;
            lifted = true;
        }
        if lifted {
            self.sync_all_peers();
        }
        for post in hidden_now {
            if hidden_before.contains(&post) {
                continue;
            }
            if let Some(removed) = self.store.delete_post(&post)? {
                let key = ItemKey {
                    created_at: removed.content.created_at,
                    id: post.0,
                };
                let tomb = crate::views::Tombstone::of(&removed);
                self.store
                    .put_tombstone(&removed.content.topic, key, &tomb.encode())?;
                self.emit(NodeEvent::PostRemoved {
                    id: post.to_string(),
                    topic: removed.content.topic.to_string(),
                    reason: RemovalReason::Hidden,
                });
            }
        }
        self.dirty = true;
        Ok(())
    }

    /// Opens a sealed report if it is addressed to this node's key.
    pub(crate) fn open_report(&self, sealed: &protocol::SealedReport) -> Option<ReportView> {
        let ctx = protocol::ValidationContext {
            community: self.community,
            now_ms: u64::MAX,
        };
        match sealed.open(&self.identity.secret, &ctx)? {
            Ok(body) => Some(ReportView {
                id: sealed.id().to_string(),
                post: body.post.to_string(),
                reporter: crate::views::actor(&body.reporter, None),
                reason: body.reason.clone(),
                at: body.created_at,
            }),
            Err(e) => {
                tracing::warn!("a report addressed to this node did not open: {e}");
                None
            }
        }
    }

    /// Opens the stored reports addressed to this node (at start-up, from
    /// [`load_log`]).
    pub(crate) fn open_reports(&self, sealed: &[SealedReport]) -> Vec<ReportView> {
        sealed.iter().filter_map(|s| self.open_report(s)).collect()
    }

    /// Topics of `topic` the node is joined to (helper for sync).
    pub(crate) fn is_joined(&self, topic: &TopicName) -> bool {
        self.joined.contains(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_limiter_allows_burst_then_sustained_rate() {
        let mut rl = AuthorRateLimiter::new(60.0, 5.0);
        let a = protocol::SecretKey::generate().public();
        let b = protocol::SecretKey::generate().public();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(rl.allow(&a, t0));
        }
        assert!(!rl.allow(&a, t0), "burst exhausted");
        assert!(rl.allow(&b, t0), "other authors are not affected");
        assert!(
            rl.allow(&a, t0 + Duration::from_secs(1)),
            "one token per second refills"
        );
        assert!(!rl.allow(&a, t0 + Duration::from_secs(1)));
    }
}
