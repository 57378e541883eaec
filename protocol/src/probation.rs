//! Probation: which posts wait for a moderator's approval, as a pure
//! function of the community log and the post (its id, author and time),
//! so every node holds back the same posts without a central queue.
//!
//! Rules (order-independent, like the rest of the fold):
//! 1. `Approve { post, author }` and `Reject { post, reason }` are
//!    moderator actions, judged like a hide (rule 4 of [`crate::state`]):
//!    the admin, a co-admin or a moderator at the action's time.
//! 2. A post is *approved* when an effective `Approve` names it; its
//!    *approval* is the least (by order key) of those, which gives the
//!    author it counts for (the one the approval names, resolved to its
//!    first key by key succession) and its time.
//! 3. A `Reject` is a hide of the post (same target, latest wins against
//!    `Hide` / `Unhide`): the post is deleted everywhere and a notice with
//!    the reason stays. An `Unhide` puts a rejected post back in the
//!    queue (it is held again if its author is still on probation).
//! 4. A post P by author X, created at `t`, is *held* iff the policy's
//!    `probation_posts` N is above 0, X was not the admin, a co-admin or
//!    a moderator at `t`, P is not approved, and fewer than N of X's
//!    approved posts (any key of X; rejected ones left out) have an
//!    approval dated before `t`. So the first posts a new author writes
//!    wait for approval, and so does anything they write before N of
//!    them are approved; what they write after that is shown at once.
//!    (A moderator whose clock runs ahead of the author's may date an
//!    approval after the author's next post: that post then waits too.)
//!
//! Who sees a held post is the node's business (`node/src/core/reads.rs`):
//! its author and the moderators; everyone else, nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::PostId;
use crate::keys::PublicKey;
use crate::lineage::Lineage;
use crate::state::{Applied, ModerationState, OrderKey};
use crate::topic::TopicName;

/// The effective approvals, per post and per author.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Approvals {
    /// Each approved post's approval (rule 2): its order key and the
    /// author it names.
    first: BTreeMap<PostId, (OrderKey, PublicKey)>,
    /// Derived: per author (first key), the sorted times of the
    /// approvals of its approved posts, rejected ones left out.
    counted: BTreeMap<PublicKey, Vec<u64>>,
}

impl Approvals {
    /// Records an effective approval; whether `post` was not approved
    /// before. [`recount`](Self::recount) makes it count.
    pub(crate) fn insert(&mut self, post: PostId, order: OrderKey, author: PublicKey) -> bool {
        match self.first.get(&post) {
            Some((existing, _)) if *existing <= order => false,
            Some(_) => {
                self.first.insert(post, (order, author));
                false
            }
            None => {
                self.first.insert(post, (order, author));
                true
            }
        }
    }

    /// Forgets every approval (before a rebuild from the kept actions).
    pub(crate) fn clear(&mut self) {
        self.first.clear();
        self.counted.clear();
    }

    /// Whether `post` is approved.
    pub(crate) fn contains(&self, post: &PostId) -> bool {
        self.first.contains_key(post)
    }

    /// Recomputes the per-author counts (after a change of approvals,
    /// rejections or key chains).
    pub(crate) fn recount(&mut self, lineage: &Lineage, rejected: impl Fn(&PostId) -> bool) {
        self.counted.clear();
        for (post, ((at, ..), author)) in &self.first {
            if !rejected(post) {
                self.counted
                    .entry(lineage.root(author))
                    .or_default()
                    .push(*at);
            }
        }
        for times in self.counted.values_mut() {
            times.sort_unstable();
        }
    }

    /// Adds to `applied` what changed from `before` to `self`.
    pub(crate) fn diff_into(&self, before: &Approvals, applied: &mut Applied) {
        let now: BTreeSet<&PostId> = self.first.keys().collect();
        let was: BTreeSet<&PostId> = before.first.keys().collect();
        applied.newly_approved = now.difference(&was).map(|p| **p).collect();
        applied.unapproved = was.difference(&now).map(|p| **p).collect();
        let authors: BTreeSet<&PublicKey> =
            self.counted.keys().chain(before.counted.keys()).collect();
        applied.probation_changed = authors
            .into_iter()
            .filter(|a| self.counted.get(*a) != before.counted.get(*a))
            .copied()
            .collect();
    }
}

impl ModerationState {
    /// Whether the post `post` by `author`, created at `created_at`, waits
    /// for a moderator's approval (rule 4): shown to its author and the
    /// moderators only.
    pub fn is_held(
        &self,
        post: &PostId,
        author: &PublicKey,
        topic: &TopicName,
        created_at: u64,
    ) -> bool {
        !self.probation.contains(post)
            && (self.probation_holds(post, author, created_at)
                || self.lockdown_holds(author, topic, created_at))
    }

    /// Rule 4 alone (probation, not lockdown).
    fn probation_holds(&self, post: &PostId, author: &PublicKey, created_at: u64) -> bool {
        // The policy in force at the post's time (rule 9).
        let needed = self.policy_at(created_at).probation_posts as usize;
        needed > 0
            && !self.is_moderator(author, created_at)
            && !self.probation.contains(post)
            && self.approved_before(author, created_at) < needed
    }

    /// How many of `author`'s posts (any of its keys) are approved and not
    /// rejected.
    pub fn approved_count(&self, author: &PublicKey) -> usize {
        self.probation
            .counted
            .get(&self.lineage().root(author))
            .map_or(0, Vec::len)
    }

    /// How many of `author`'s approved, not rejected posts have an
    /// approval dated before `at_ms`.
    pub fn approved_before(&self, author: &PublicKey, at_ms: u64) -> usize {
        self.probation
            .counted
            .get(&self.lineage().root(author))
            .map_or(0, |times| times.partition_point(|t| *t < at_ms))
    }

    /// Whether an effective approval names `post`.
    pub fn is_approved(&self, post: &PostId) -> bool {
        self.probation.contains(post)
    }

    /// Whether `author` (any of its keys) is still on probation now: a
    /// post it wrote now would be held.
    pub fn on_probation(&self, author: &PublicKey, now_ms: u64) -> bool {
        let needed = self.policy().probation_posts as usize;
        needed > 0
            && !self.is_moderator(author, now_ms)
            && self.approved_before(author, now_ms) < needed
    }

    /// Approved posts with the author (first key) each counts for and
    /// its approval's time, sorted by post: what the fold decides about
    /// probation, for comparing states.
    pub fn approvals(&self) -> BTreeMap<PostId, (PublicKey, u64)> {
        self.probation
            .first
            .iter()
            .map(|(post, ((at, ..), author))| (*post, (self.lineage().root(author), *at)))
            .collect()
    }

    /// Per author (first key), the sorted times of the approvals that
    /// count toward its probation.
    pub fn counted_approvals(&self) -> &BTreeMap<PublicKey, Vec<u64>> {
        &self.probation.counted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moderation::{Admission, CommunityPolicy, ModAction, ModActionKind};
    use crate::{CommunityId, Identity, SecretKey, ValidationContext, VerifiedModAction};

    const NOW: u64 = 1_700_000_000_000;

    fn topic() -> TopicName {
        TopicName::parse("burnout").expect("a valid name")
    }

    fn who(n: u8) -> Identity {
        Identity {
            secret: SecretKey::from_bytes(&[n; 32]),
            name: None,
        }
    }

    const ADMIN: u8 = 1;
    const MODERATOR: u8 = 2;
    const NEWCOMER: u8 = 3;
    const OUTSIDER: u8 = 4;

    fn community() -> CommunityId {
        crate::CommunityManifest::create("circle", "Be kind.", &who(ADMIN).secret, NOW)
            .expect("a manifest")
            .id()
    }

    fn act(signer: u8, seq: u64, at: u64, kind: ModActionKind) -> VerifiedModAction {
        ModAction::create(&who(signer), community(), seq, kind, NOW + at)
            .expect("valid fields")
            .verify(&ValidationContext {
                community: community(),
                now_ms: NOW + 1_000_000,
            })
            .expect("verifies")
    }

    fn key(n: u8) -> PublicKey {
        who(n).public()
    }

    fn post(n: u8) -> PostId {
        PostId::of_bytes(&[n])
    }

    fn approve(signer: u8, seq: u64, at: u64, p: u8, author: u8) -> VerifiedModAction {
        act(
            signer,
            seq,
            at,
            ModActionKind::Approve {
                post: post(p),
                author: key(author),
            },
        )
    }

    fn probation(n: u32) -> VerifiedModAction {
        act(
            ADMIN,
            1,
            1,
            ModActionKind::UpdateManifest {
                version: 1,
                rules: "Be kind.".into(),
                policy: CommunityPolicy {
                    admission: Admission::InviteOnly,
                    probation_posts: n,
                },
            },
        )
    }

    /// A community with probation 2 and one moderator.
    fn state(extra: &[VerifiedModAction]) -> ModerationState {
        let mut all = vec![
            probation(2),
            act(
                ADMIN,
                2,
                2,
                ModActionKind::AppointModerator {
                    key: key(MODERATOR),
                },
            ),
        ];
        all.extend(extra.iter().cloned());
        ModerationState::fold(community(), key(ADMIN), &all)
    }

    fn held(s: &ModerationState, p: u8, author: u8, at: u64) -> bool {
        s.is_held(&post(p), &key(author), &topic(), NOW + at)
    }

    #[test]
    fn a_newcomers_first_posts_wait_and_later_ones_do_not() {
        let s = state(&[]);
        assert!(held(&s, 10, NEWCOMER, 100));
        assert!(!held(&s, 11, MODERATOR, 100), "a moderator is never held");
        assert!(!held(&s, 12, ADMIN, 100), "the admin is never held");
        let s = state(&[approve(MODERATOR, 1, 200, 10, NEWCOMER)]);
        assert!(!held(&s, 10, NEWCOMER, 100), "an approved post is shown");
        assert!(held(&s, 13, NEWCOMER, 300), "one approval of two");
        assert_eq!(s.approved_count(&key(NEWCOMER)), 1);
        let s = state(&[
            approve(MODERATOR, 1, 200, 10, NEWCOMER),
            approve(ADMIN, 3, 400, 13, NEWCOMER),
        ]);
        assert_eq!(s.approved_count(&key(NEWCOMER)), 2);
        assert!(
            held(&s, 14, NEWCOMER, 350),
            "written before the 2nd approval"
        );
        assert!(!held(&s, 15, NEWCOMER, 500), "written after: shown at once");
        assert!(!s.on_probation(&key(NEWCOMER), NOW + 500));
    }

    #[test]
    fn no_probation_holds_nothing() {
        let s = ModerationState::fold(community(), key(ADMIN), &[probation(0)]);
        assert!(!held(&s, 10, NEWCOMER, 100));
        let legacy = ModerationState::new(community(), key(ADMIN));
        assert!(!held(&legacy, 10, NEWCOMER, 100));
    }

    #[test]
    fn an_approval_by_someone_who_does_not_moderate_counts_for_nothing() {
        let s = state(&[
            approve(OUTSIDER, 1, 200, 10, NEWCOMER),
            approve(NEWCOMER, 1, 200, 10, NEWCOMER),
        ]);
        assert!(held(&s, 10, NEWCOMER, 100));
        assert_eq!(s.approved_count(&key(NEWCOMER)), 0);
        assert_eq!(s.decisions(), state(&[]).decisions());
    }

    #[test]
    fn a_rejection_deletes_the_post_and_does_not_count() {
        let reject = act(
            MODERATOR,
            2,
            300,
            ModActionKind::Reject {
                post: post(10),
                reason: "off topic".into(),
            },
        );
        let s = state(&[approve(MODERATOR, 1, 200, 10, NEWCOMER), reject.clone()]);
        assert_eq!(
            s.hidden(&post(10)).map(|d| d.reason.as_str()),
            Some("off topic")
        );
        assert!(s.rejected(&post(10)).is_some());
        assert_eq!(s.approved_count(&key(NEWCOMER)), 0);
        // An unhide puts it back, approved.
        let unhide = act(ADMIN, 4, 400, ModActionKind::Unhide { post: post(10) });
        let s = state(&[approve(MODERATOR, 1, 200, 10, NEWCOMER), reject, unhide]);
        assert!(s.hidden(&post(10)).is_none());
        assert_eq!(s.approved_count(&key(NEWCOMER)), 1);
        // A hide (not a rejection) of an approved post leaves it counted.
        let hide = act(
            ADMIN,
            5,
            300,
            ModActionKind::Hide {
                post: post(10),
                reason: String::new(),
            },
        );
        let s = state(&[approve(MODERATOR, 1, 200, 10, NEWCOMER), hide]);
        assert!(s.rejected(&post(10)).is_none() && s.hidden(&post(10)).is_some());
        assert_eq!(s.approved_count(&key(NEWCOMER)), 1);
    }

    #[test]
    fn a_later_key_of_the_author_counts_as_the_same_author() {
        let successor = who(9);
        let succeed =
            ModAction::succeed(&who(NEWCOMER), &successor.secret, community(), 1, NOW + 50)
                .expect("valid")
                .verify(&ValidationContext {
                    community: community(),
                    now_ms: NOW + 1_000_000,
                })
                .expect("verifies");
        let s = state(&[
            succeed,
            approve(MODERATOR, 1, 200, 10, NEWCOMER),
            approve(MODERATOR, 2, 210, 11, 9),
        ]);
        assert_eq!(s.approved_count(&successor.public()), 2);
        assert!(!s.is_held(&post(12), &successor.public(), &topic(), NOW + 300));
    }

    #[test]
    fn apply_reports_approvals_and_the_authors_they_count_for() {
        let mut s = state(&[]);
        let applied = s
            .apply(&approve(MODERATOR, 1, 200, 10, NEWCOMER))
            .expect("counts");
        assert_eq!(applied.newly_approved, vec![post(10)]);
        assert_eq!(applied.probation_changed, vec![key(NEWCOMER)]);
        // A second approval of the same post changes nothing.
        let again = s
            .apply(&approve(ADMIN, 9, 250, 10, NEWCOMER))
            .expect("counts");
        assert!(again.is_empty());
        // A late revocation of the moderator dated before the approval
        // takes it back.
        let revoke = act(
            ADMIN,
            10,
            150,
            ModActionKind::RevokeModerator {
                key: key(MODERATOR),
                upto_seq: None,
            },
        );
        let applied = s.apply(&revoke).expect("counts");
        assert!(applied.unapproved.is_empty(), "the admin's approval stands");
        assert!(s.is_approved(&post(10)));
        assert_eq!(s.approvals()[&post(10)].1, NOW + 250);
    }
}
