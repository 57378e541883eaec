//! "A signed thing arrived": the one code path for every item, whether it
//! came from gossip, from sync, from an import or from the local user.
//! Validation has already happened (only [`VerifiedMessage`]s get here, but
//! for gossip, whose bytes this module decodes and verifies itself); this
//! applies the moderation rules, the retraction rules, the admission rules
//! and the limits, stores the item and enforces what it changes.
//!
//! **Verdicts are properties of the message.** Only what no honest node
//! would ever send is [`Refusal::Invalid`] (the relay is penalised): a bad
//! signature or encoding, another community, a post on the wrong channel.
//! Everything judged against this node's own state or clock — a time ahead
//! of this clock, a retraction that does not match the post this node
//! holds, a report whose recipients are not the moderators this node
//! knows, a limit — is ignored (not stored, not relayed, no penalty), so an
//! honest relay that sees things differently is never punished for it.

use std::collections::{BTreeSet, HashMap, HashSet};

use protocol::sync::ItemKey;
use protocol::{
    Message, PostId, PublicKey, ValidationError, VerifiedMessage, VerifiedModAction, VerifiedPost,
};

use crate::handle::{NodeEvent, RemovalReason};
use crate::store::StoreError;

use super::{Channel, Core, PeerRef};

/// Where an item came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
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
pub enum Outcome {
    /// Newly stored / applied.
    Stored,
    /// Already known.
    Duplicate,
}

/// What gossipsub should do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stored: forward it.
    Accept,
    /// No honest node sends this: drop it and penalise the relay.
    Reject,
    /// Not taken here, for reasons of this node's own: drop it, no penalty.
    Ignore,
}

/// Why an item was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Breaks a rule no honest node breaks: the relayer is penalised.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Dated ahead of this node's clock: it may be fine once the clock
    /// catches up (sync offers it again), so it is never penalised.
    #[error("{0}; it will be taken when this node's clock catches up")]
    NotYet(String),
    /// Refused by moderation (blocked author, hidden or retracted post, an
    /// action by someone who may not take it): dropped, not relayed.
    #[error("refused by moderation: {0}")]
    Moderation(String),
    /// Refused by an admission rule judged against this node's state (a
    /// report for other moderators, an expired report, a retraction that
    /// does not match the post held here, a full bound).
    #[error("not admitted: {0}")]
    NotAdmitted(String),
    /// A post of a topic this node has not joined.
    #[error("not a joined topic")]
    NotJoined,
    /// The author is over the per-author rate limit.
    #[error("posting too fast: at most {0} posts a minute per author; wait a little")]
    RateLimited(usize),
    /// The author's or relay's live gossip is over the arrival-rate limit.
    #[error("over the arrival-rate limit: {0}")]
    Flood(&'static str),
    /// This node could not store it.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl Refusal {
    /// The gossip verdict: reject (and penalise the sender) only for what
    /// no honest relay would forward.
    pub fn verdict(&self) -> Verdict {
        match self {
            Refusal::Invalid(_) => Verdict::Reject,
            _ => Verdict::Ignore,
        }
    }

    /// The refusal of an item that failed validation.
    pub fn of_validation(e: &ValidationError) -> Refusal {
        match e {
            ValidationError::FromTheFuture { .. } => Refusal::NotYet(e.to_string()),
            _ => Refusal::Invalid(e.to_string()),
        }
    }
}

/// Reports the log may hold at once: each is up to ~64 KiB, sealed, and
/// expires after [`REPORT_TTL_MS`]; past the bound new ones are ignored.
pub const MAX_STORED_REPORTS: usize = 4096;
pub use protocol::report::REPORT_TTL_MS;

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

impl Core {
    /// A gossip message: decodes, verifies, checks it travelled on its own
    /// channel, and takes it through the arrival path. `channel` is `None`
    /// when the network does not know the gossip topic (not ours).
    pub fn gossip_arrived(
        &mut self,
        channel: Option<&Channel>,
        data: &[u8],
        source: &PeerRef,
        now_ms: u64,
    ) -> Verdict {
        let Some(channel) = channel else {
            return Verdict::Ignore;
        };
        let verified = match Message::decode_and_verify(data, &self.ctx(now_ms)) {
            Ok(v) => v,
            Err(e) => {
                let refusal = Refusal::of_validation(&e);
                tracing::debug!("gossip message refused: {refusal}");
                return refusal.verdict();
            }
        };
        // An item must travel on its own channel: a post on its topic's,
        // the rest on the community's. Every node judges this alike.
        let expected = match &verified {
            VerifiedMessage::Post(p) => Channel::Topic(p.topic.clone()),
            _ => Channel::Community,
        };
        if expected != *channel {
            tracing::debug!("gossip message on the wrong channel");
            return Verdict::Reject;
        }
        if let VerifiedMessage::Report(_) = &verified {
            if !self.limits.report_relay.allow(source) {
                return Verdict::Ignore;
            }
        }
        match self.arrive(verified, Origin::Gossip, now_ms) {
            Ok(_) => Verdict::Accept,
            Err(refusal) => {
                tracing::debug!("gossip item refused: {refusal}");
                refusal.verdict()
            }
        }
    }

    /// The single entry point for one verified item from anywhere.
    pub fn arrive(
        &mut self,
        item: VerifiedMessage,
        origin: Origin,
        now_ms: u64,
    ) -> Result<Outcome, Refusal> {
        self.arrive_all(vec![item], origin, now_ms)
            .pop()
            .unwrap_or(Ok(Outcome::Duplicate))
    }

    /// The same as [`Core::arrive`] for each item in order, with the same
    /// verdicts; consecutive posts are written in one transaction.
    pub fn arrive_all(
        &mut self,
        items: Vec<VerifiedMessage>,
        origin: Origin,
        now_ms: u64,
    ) -> Vec<Result<Outcome, Refusal>> {
        let mut out = Vec::with_capacity(items.len());
        let mut posts = Vec::new();
        // Reports last: a report sealed again to a moderator appointed
        // later is dated before the appointment, so a sync page holds it
        // first, and it is admitted only once the appointment is folded.
        let mut reports = Vec::new();
        for item in items {
            match item {
                VerifiedMessage::Post(post) => posts.push(post),
                report @ VerifiedMessage::Report(_) => {
                    self.arrived_posts(std::mem::take(&mut posts), origin, &mut out);
                    reports.push((out.len(), report));
                    out.push(Ok(Outcome::Duplicate));
                }
                other => {
                    self.arrived_posts(std::mem::take(&mut posts), origin, &mut out);
                    let outcome = self.arrived_other(other, origin, now_ms);
                    if matches!(outcome, Ok(Outcome::Stored)) {
                        self.note_stored(origin);
                    }
                    out.push(outcome);
                }
            }
        }
        self.arrived_posts(posts, origin, &mut out);
        for (slot, report) in reports {
            let outcome = self.arrived_other(report, origin, now_ms);
            if matches!(outcome, Ok(Outcome::Stored)) {
                self.note_stored(origin);
            }
            if let Some(place) = out.get_mut(slot) {
                *place = outcome;
            }
        }
        out
    }

    /// Decodes and verifies encoded items (on every core) and takes them
    /// through the arrival path: a sync page.
    pub fn arrive_encoded(
        &mut self,
        items: &[Vec<u8>],
        origin: Origin,
        now_ms: u64,
    ) -> Vec<Result<Outcome, Refusal>> {
        let verdicts = crate::verify::decode_and_verify_all(items, &self.ctx(now_ms));
        self.arrive_checked(verdicts, origin, now_ms)
    }

    /// Takes items verified elsewhere (on the blocking pool) through the
    /// arrival path; the refused ones keep their validation verdict.
    pub fn arrive_checked(
        &mut self,
        verdicts: Vec<Result<VerifiedMessage, ValidationError>>,
        origin: Origin,
        now_ms: u64,
    ) -> Vec<Result<Outcome, Refusal>> {
        let mut slots: Vec<Option<Refusal>> = Vec::with_capacity(verdicts.len());
        let mut verified = Vec::with_capacity(verdicts.len());
        for verdict in verdicts {
            match verdict {
                Ok(v) => {
                    verified.push(v);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(Refusal::of_validation(&e))),
            }
        }
        let mut outcomes = self.arrive_all(verified, origin, now_ms).into_iter();
        slots
            .into_iter()
            .map(|slot| match slot {
                Some(refusal) => Err(refusal),
                None => outcomes.next().unwrap_or(Ok(Outcome::Duplicate)),
            })
            .collect()
    }

    /// Marks the store for the next interval flush when something from
    /// the network was stored (local writes are flushed before they are
    /// acknowledged).
    fn note_stored(&mut self, origin: Origin) {
        if origin != Origin::Local {
            self.dirty = true;
        }
    }

    /// Anything but a run of posts: retractions, actions, reports.
    fn arrived_other(
        &mut self,
        item: VerifiedMessage,
        origin: Origin,
        now_ms: u64,
    ) -> Result<Outcome, Refusal> {
        match item {
            VerifiedMessage::Post(post) => {
                let mut out = Vec::with_capacity(1);
                self.arrived_posts(vec![post], origin, &mut out);
                out.pop().unwrap_or(Ok(Outcome::Duplicate))
            }
            VerifiedMessage::Retraction(r) => {
                if origin == Origin::Gossip && !self.limits.signer_log.allow(&r.author) {
                    return Err(Refusal::Flood("the author's retractions"));
                }
                if let Some(refusal) = self.admission_refusal(&r.author, r.created_at) {
                    return Err(refusal);
                }
                // A retraction binds only its author's post. One that does
                // not match the post held here is not stored (no penalty:
                // a node without the post cannot tell).
                let held = self.store.get_post(&r.post)?;
                if let Some(stored) = &held {
                    if !r.applies_to(&stored.content.author) {
                        return Err(Refusal::NotAdmitted(
                            "a retraction signed by someone other than the post's author".into(),
                        ));
                    }
                }
                let key = ItemKey {
                    created_at: r.created_at,
                    id: r.id().0,
                };
                let bytes = Message::Retraction(r.signed().clone()).encode();
                // The log entry, the retraction and the deletion are one
                // transaction: a crash leaves all or nothing.
                let done = self
                    .store
                    .apply_retraction(key, &bytes, &r.post, &r.author)?;
                if !done.new_in_log {
                    return Ok(Outcome::Duplicate);
                }
                // A hidden post keeps its bytes in its notice (to be shown
                // again on unhide): a retraction erases those too.
                let _ = self.store.remove_tombstone_of(&r.post)?;
                if let Some(removed) = done.removed {
                    self.emit(NodeEvent::PostRemoved {
                        id: r.post.to_string(),
                        topic: removed.content.topic.to_string(),
                        reason: RemovalReason::Retracted,
                    });
                }
                Ok(Outcome::Stored)
            }
            VerifiedMessage::Moderation(action) => self.arrived_action(action, origin),
            VerifiedMessage::Report(report) => {
                let sealed = report.sealed();
                if sealed.expired(now_ms) {
                    return Err(Refusal::NotAdmitted("the report has expired".into()));
                }
                // The admin's and moderators' current keys: after a key
                // succession, reports go to the new key only.
                let readers: BTreeSet<PublicKey> =
                    self.moderation.current_moderators().into_iter().collect();
                if !sealed.addressed_exactly_to(&readers) {
                    return Err(Refusal::NotAdmitted(
                        "the report is not sealed to exactly the community's moderators".into(),
                    ));
                }
                if self.stored_reports >= MAX_STORED_REPORTS {
                    return Err(Refusal::NotAdmitted(
                        "the log holds as many reports as it may".into(),
                    ));
                }
                let key = ItemKey {
                    created_at: sealed.created_at,
                    id: report.id().0,
                };
                let bytes = Message::Report(sealed.clone()).encode();
                if !self.store.insert_log(key, &bytes)? {
                    return Ok(Outcome::Duplicate);
                }
                self.stored_reports += 1;
                self.note_report(sealed);
                Ok(Outcome::Stored)
            }
        }
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
                let announce = self.followed();
                let mut announced: Vec<VerifiedPost> = Vec::new();
                for ((slot, post), new) in taken.into_iter().zip(stored) {
                    if !new {
                        if let Some(verdict) = out.get_mut(slot) {
                            *verdict = Ok(Outcome::Duplicate);
                        }
                        continue;
                    }
                    if origin == Origin::Sync {
                        self.sync.received += 1;
                    }
                    self.note_stored(origin);
                    // A post held for approval is announced to its author
                    // alone (`probation.rs`).
                    if announce
                        && !self.is_muted(&post.author)
                        && self.shows_held(&post.id(), post.content())
                    {
                        announced.push(post);
                    }
                }
                let mut names = crate::views::AuthorNames::new(&self.store, &self.moderation);
                for post in announced {
                    let view = crate::views::post_view(post.signed(), &mut names);
                    let _ = self.events.send(NodeEvent::PostStored(Box::new(view)));
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
        if let Some(refusal) = self.admission_refusal(&post.author, post.created_at) {
            return refuse(refusal);
        }
        if batch.ids.contains(&id) {
            return Err(Ok(Outcome::Duplicate));
        }
        match self.store.holds(post) {
            Ok(true) => return Err(Ok(Outcome::Duplicate)),
            Ok(false) => {}
            Err(e) => return refuse(e.into()),
        }
        // A reply lives in its parent's topic. A node that holds the parent
        // in another topic ignores the reply (one that does not hold it
        // cannot tell, so this is never penalised).
        if let Some(parent) = &post.parent {
            match self.store.topic_of(parent) {
                Ok(Some(topic)) if topic != post.topic => {
                    return refuse(Refusal::NotAdmitted(
                        "a reply to a post of another topic".into(),
                    ))
                }
                Ok(_) => {}
                Err(e) => return refuse(e.into()),
            }
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
        if origin == Origin::Gossip && !self.limits.author_gossip.allow(&post.author) {
            return refuse(Refusal::Flood("the author's posts"));
        }
        Ok(())
    }

    fn arrived_action(
        &mut self,
        action: VerifiedModAction,
        origin: Origin,
    ) -> Result<Outcome, Refusal> {
        if origin == Origin::Gossip && !self.limits.signer_log.allow(&action.signer) {
            return Err(Refusal::Flood("the signer's moderation actions"));
        }
        let key = ItemKey {
            created_at: action.created_at,
            id: action.id().0,
        };
        let applied = match self.moderation.apply(&action) {
            Ok(applied) => applied,
            // A copy of an action kept as pending (its signer does not
            // moderate, a succession that links nothing, …) is refused
            // again, not waved through as known.
            Err(protocol::state::ModerationError::Duplicate) => {
                if let Some(why) = self.moderation.why_not_effective(&action.id()) {
                    return Err(Refusal::Moderation(why.to_string()));
                }
                // Effective: stored already, or kept while pending (which
                // is not stored) and made effective since by a late
                // appointment or succession: store it now, so that it
                // survives a restart.
                let bytes = Message::Moderation(action.signed().clone()).encode();
                return Ok(if self.store.insert_log(key, &bytes)? {
                    self.emit(NodeEvent::Moderation {
                        id: action.id().to_string(),
                    });
                    Outcome::Stored
                } else {
                    Outcome::Duplicate
                });
            }
            Err(e) => return Err(Refusal::Moderation(e.to_string())),
        };
        self.shared_stale = true;
        let bytes = Message::Moderation(action.signed().clone()).encode();
        if let Err(e) = self.store.insert_log(key, &bytes) {
            // The fold must not hold what the log does not: fold again.
            self.refold();
            return Err(e.into());
        }
        // Readers and the responder filter by the new state from now on,
        // while the deletions run (a block may be thousands of them).
        if !applied.newly_blocked.is_empty() || !applied.newly_hidden.is_empty() {
            self.publish_shared();
        }
        // The log entry is written; enforcement is idempotent and runs
        // again over the whole folded state at every start, so a crash in
        // between leaves nothing shown that should not be.
        self.enforce(&applied)?;
        self.enforce_membership(&applied)?;
        self.emit(NodeEvent::Moderation {
            id: action.id().to_string(),
        });
        Ok(Outcome::Stored)
    }

    /// Rebuilds the moderation state from the stored log.
    fn refold(&mut self) {
        match super::log::load_log(
            &self.store,
            &self.manifest,
            self.community,
            &self.identity.public(),
        ) {
            Ok(stored) => self.moderation = stored.moderation,
            Err(e) => tracing::error!("folding the community log again: {e}"),
        }
        self.shared_stale = true;
    }
}
