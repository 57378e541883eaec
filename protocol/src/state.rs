//! The moderation fold: the moderation state as a pure function of a set of
//! verified moderation actions. Every node that holds the same actions
//! computes the same state, whatever order they arrived in, so every node
//! deletes and refuses the same posts.
//!
//! Rules:
//! 1. The admin is fixed by the community manifest and is always a moderator.
//! 2. Only the admin's `AppointModerator` / `RevokeModerator` actions count;
//!    anyone else's are refused (`NotAdmin`) and not kept.
//! 3. A key is a moderator at time `t` iff the latest (by order key
//!    `(created_at, signer, seq)`, then action id) admin appoint/revoke for
//!    that key with `created_at <= t` is an appoint.
//! 4. Any other action is effective iff its signer is the admin or was a
//!    moderator at the action's `created_at`. An action signed after its
//!    signer's revocation has no effect; one signed before it keeps its
//!    effect.
//! 5. For each target — `(author, scope)` for block/unblock, the post for
//!    hide/unhide, the post for pin/unpin — the effective action with the
//!    greatest order key `(created_at, signer, seq, action id)` wins (the id
//!    makes the order total).
//! 6. An author is blocked in topic `T` if the winner for
//!    `(author, Community)` is a block or the winner for
//!    `(author, Topic(T))` is a block.
//! 7. Actions of another community are refused (`WrongCommunity`) and not
//!    kept. Forged signatures never get here: only [`crate::Signed::verify`]
//!    makes a [`VerifiedModAction`].
//!
//! Every action that passes rules 2 and 7 is kept in the state, effective or
//! not: an appointment that arrives late (but is dated earlier) makes an
//! earlier-received action effective, and a late revocation makes one
//! ineffective. On an appoint/revoke the effects are recomputed from the
//! kept actions, so the incremental [`ModerationState::apply`] always gives
//! exactly the state [`ModerationState::fold`] gives over the same set.
//! Kept-but-ineffective actions ("pending") decide nothing: compare
//! [`ModerationState::decisions`] to ask whether two states decide the same.
//! All maps are `BTreeMap`s: nothing depends on hash iteration order.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{ActionId, CommunityId, PostId};
use crate::keys::PublicKey;
use crate::moderation::{ModActionKind, Scope, VerifiedModAction};
use crate::topic::TopicName;

/// Why an action can have no effect. The text is shown to the person who
/// took the action, so it says what went wrong in their terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModerationError {
    /// It names another community (a replay or a misconfigured node).
    #[error("wrong community: the action belongs to community {found}, not {expected}")]
    WrongCommunity {
        /// This state's community (short form).
        expected: String,
        /// The community named in the action (short form).
        found: String,
    },
    /// Appoint/revoke by someone other than the admin.
    #[error("not the admin: only the community admin can appoint or revoke moderators, and {signer} is not the admin")]
    NotAdmin {
        /// The signer's key fingerprint.
        signer: String,
    },
    /// The signer was not a moderator when they signed it. The action is
    /// kept aside: should the admin's appointment covering that time arrive
    /// later, it takes effect then.
    #[error("not a moderator: {signer} was not a moderator at the action's time ({at_ms} ms), so it has no effect")]
    NotModerator {
        /// The signer's key fingerprint.
        signer: String,
        /// The action's `created_at`.
        at_ms: u64,
    },
    /// The same action (same id) is already in the state.
    #[error("duplicate: this moderation action is already known")]
    Duplicate,
}

/// Who decided a block, hide or pin, when and why: what `mod list` and a
/// tombstone show, so members can see that moderation is accountable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The signer of the deciding action (the admin or a moderator).
    pub by: PublicKey,
    /// The signer's pseudonym in that action.
    pub by_name: Option<String>,
    /// The reason given (empty when the action kind carries none).
    pub reason: String,
    /// The deciding action's `created_at`, ms since the Unix epoch.
    pub at: u64,
    /// The deciding action's id.
    pub action: ActionId,
}

/// A block in force.
pub type BlockInfo = Decision;
/// A hide in force.
pub type HideInfo = Decision;
/// A pin in force.
pub type PinInfo = Decision;

/// What one [`ModerationState::apply`] changed, so the node can enforce it
/// (delete posts of newly blocked authors, delete newly hidden posts, let
/// unblocked/unhidden content come back by sync) without diffing the whole
/// state itself. Every list is sorted and holds each item once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Targets `(author, scope)` whose winner became a block.
    pub newly_blocked: Vec<(PublicKey, Scope)>,
    /// Targets whose block was lifted (an unblock won, or the block lost its
    /// effect because its signer turned out to be revoked at that time).
    pub unblocked: Vec<(PublicKey, Scope)>,
    /// Posts that became hidden.
    pub newly_hidden: Vec<PostId>,
    /// Posts that are no longer hidden.
    pub unhidden: Vec<PostId>,
    /// Posts that became pinned.
    pub newly_pinned: Vec<PostId>,
    /// Posts that are no longer pinned.
    pub unpinned: Vec<PostId>,
    /// Whether the current moderator set changed (report recipients and the
    /// moderator list must be refreshed).
    pub moderators_changed: bool,
}

impl Applied {
    /// Whether nothing the node enforces changed: an accepted action can be
    /// superseded at once by a later one on the same target.
    pub fn is_empty(&self) -> bool {
        *self == Applied::default()
    }
}

/// An owned, comparable summary of everything a state decides, without the
/// pending actions (which decide nothing). Two states with equal
/// `Decisions` enforce exactly the same things.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decisions {
    /// Current moderators (not counting the admin).
    pub moderators: Vec<PublicKey>,
    /// Blocks in force per target.
    pub blocks: BTreeMap<(PublicKey, Scope), BlockInfo>,
    /// Hidden posts.
    pub hidden: BTreeMap<PostId, HideInfo>,
    /// Pinned posts.
    pub pinned: BTreeMap<PostId, PinInfo>,
    /// Ids of the effective actions, in order (this also pins down the whole
    /// appointment history).
    pub log: Vec<ActionId>,
}

/// `(created_at, signer, seq, id)`: [`crate::ModAction::order_key`] made total.
type OrderKey = (u64, PublicKey, u64, ActionId);

fn order_key(a: &VerifiedModAction) -> OrderKey {
    (a.created_at, a.signer, a.seq, a.id())
}

/// The greatest order key with `created_at <= at_ms`.
fn upper_key(at_ms: u64) -> OrderKey {
    (at_ms, PublicKey([0xff; 32]), u64::MAX, ActionId([0xff; 32]))
}

/// The key an appoint (`true`) or revoke (`false`) is about.
fn role_change(kind: &ModActionKind) -> Option<(PublicKey, bool)> {
    match kind {
        ModActionKind::AppointModerator { key } => Some((*key, true)),
        ModActionKind::RevokeModerator { key } => Some((*key, false)),
        _ => None,
    }
}

/// The current winner for one target: its order key and, if the winner
/// puts something in force (block, hide, pin), who decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Winner {
    order: OrderKey,
    decision: Option<Decision>,
}

/// Which target an action is about.
enum Target {
    Block(PublicKey, Scope),
    Hide(PostId),
    Pin(PostId),
}

/// What the actions decide: moderators, blocks, hidden and pinned posts.
///
/// `PartialEq` compares everything, pending actions included (two equal
/// states stay equal whatever is applied next); use
/// [`ModerationState::decisions`] to compare only what is in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModerationState {
    community: CommunityId,
    admin: PublicKey,
    /// Every kept action, effective or pending, by order key.
    actions: BTreeMap<OrderKey, VerifiedModAction>,
    /// The order key of every kept action, for duplicate checks.
    ids: BTreeMap<ActionId, OrderKey>,
    /// Admin appoint/revoke history per key: order key → appointed?
    roles: BTreeMap<PublicKey, BTreeMap<OrderKey, bool>>,
    blocks: BTreeMap<(PublicKey, Scope), Winner>,
    hidden: BTreeMap<PostId, Winner>,
    pins: BTreeMap<PostId, Winner>,
    /// How many kept actions are pending (see [`MAX_PENDING`]).
    pending_len: usize,
}

/// Most pending actions [`ModerationState::apply`] keeps. Anyone can sign
/// an action, so without a bound a member's junk would grow every node's
/// memory; past it a not-yet-effective action is refused without being
/// kept, and a late appointment makes it effective only when log sync
/// offers it again (peers that saw the appointment first keep it in their
/// logs). Appointments arrive before their moderators' actions in any
/// normal order, so honest actions almost never wait here.
pub const MAX_PENDING: usize = 1024;

impl ModerationState {
    /// The state of a community with no actions yet: only the admin
    /// moderates.
    pub fn new(community: CommunityId, admin: PublicKey) -> Self {
        ModerationState {
            community,
            admin,
            actions: BTreeMap::new(),
            ids: BTreeMap::new(),
            roles: BTreeMap::new(),
            blocks: BTreeMap::new(),
            hidden: BTreeMap::new(),
            pins: BTreeMap::new(),
            pending_len: 0,
        }
    }

    /// Folds a set of actions (at start-up, from the stored log). The order
    /// of `actions` does not matter and duplicates count once; actions that
    /// [`apply`](Self::apply) would refuse with `WrongCommunity` or
    /// `NotAdmin` are skipped.
    pub fn fold<'a>(
        community: CommunityId,
        admin: PublicKey,
        actions: impl IntoIterator<Item = &'a VerifiedModAction>,
    ) -> Self {
        let mut state = ModerationState::new(community, admin);
        for a in actions {
            // A refused action is simply not part of the state.
            let _ = state.admit(a);
        }
        state.recompute();
        state
    }

    /// Checks the rules that refuse an action outright; keeps it otherwise.
    /// Effects are not touched.
    fn admit(&mut self, a: &VerifiedModAction) -> Result<(), ModerationError> {
        if a.community != self.community {
            return Err(ModerationError::WrongCommunity {
                expected: self.community.short(),
                found: a.community.short(),
            });
        }
        let id = a.id();
        if self.ids.contains_key(&id) {
            return Err(ModerationError::Duplicate);
        }
        let key = order_key(a);
        if a.kind.admin_only() {
            if a.signer != self.admin {
                return Err(ModerationError::NotAdmin {
                    signer: a.signer.short(),
                });
            }
            if let Some((target, appointed)) = role_change(&a.kind) {
                self.roles.entry(target).or_default().insert(key, appointed);
            }
        }
        self.ids.insert(id, key);
        self.actions.insert(key, a.clone());
        Ok(())
    }

    /// Applies one action as it arrives. The resulting state equals
    /// [`fold`](Self::fold) over every action applied so far, in any order.
    ///
    /// `Err(NotModerator)` changes no decision ([`decisions`](Self::decisions)
    /// stays the same); the action is kept as pending so that an appointment
    /// dated before it, arriving later, makes it effective exactly as the
    /// fold would. The other errors leave the state untouched.
    pub fn apply(&mut self, a: &VerifiedModAction) -> Result<Applied, ModerationError> {
        let effective = a.kind.admin_only() || self.is_moderator(&a.signer, a.created_at);
        if let Some((key, _)) = role_change(&a.kind) {
            let was = self.is_current_moderator(&key);
            let before = self.targets_in_force();
            self.admit(a)?;
            self.recompute();
            let mut applied = diff(&before, &self.targets_in_force());
            applied.moderators_changed = was != self.is_current_moderator(&key);
            return Ok(applied);
        }
        if !effective {
            let refusal = ModerationError::NotModerator {
                signer: a.signer.short(),
                at_ms: a.created_at,
            };
            if self.pending_len >= MAX_PENDING {
                if a.community != self.community {
                    return Err(ModerationError::WrongCommunity {
                        expected: self.community.short(),
                        found: a.community.short(),
                    });
                }
                if self.ids.contains_key(&a.id()) {
                    return Err(ModerationError::Duplicate);
                }
                return Err(refusal);
            }
            self.admit(a)?;
            self.pending_len += 1;
            return Err(refusal);
        }
        self.admit(a)?;
        let Some(target) = target_of(&a.kind) else {
            return Ok(Applied::default());
        };
        let was = self.in_force(&target);
        self.apply_effect(a);
        let now = self.in_force(&target);
        let mut applied = Applied::default();
        match (target, was, now) {
            (Target::Block(author, scope), false, true) => {
                applied.newly_blocked.push((author, scope))
            }
            (Target::Block(author, scope), true, false) => applied.unblocked.push((author, scope)),
            (Target::Hide(post), false, true) => applied.newly_hidden.push(post),
            (Target::Hide(post), true, false) => applied.unhidden.push(post),
            (Target::Pin(post), false, true) => applied.newly_pinned.push(post),
            (Target::Pin(post), true, false) => applied.unpinned.push(post),
            _ => {}
        }
        Ok(applied)
    }

    /// Whether `key` moderates at time `at_ms` (the admin always does).
    pub fn is_moderator(&self, key: &PublicKey, at_ms: u64) -> bool {
        *key == self.admin || self.appointed_at(key, at_ms)
    }

    /// Rule 3 alone, without the admin shortcut.
    fn appointed_at(&self, key: &PublicKey, at_ms: u64) -> bool {
        self.roles.get(key).is_some_and(|history| {
            history
                .range(..=upper_key(at_ms))
                .next_back()
                .is_some_and(|(_, appointed)| *appointed)
        })
    }

    /// Whether the admin's latest decision about `key` is an appointment.
    fn is_current_moderator(&self, key: &PublicKey) -> bool {
        self.is_moderator(key, u64::MAX)
    }

    /// Whether a kept action is effective (rule 4; admin actions always are).
    fn is_effective(&self, a: &VerifiedModAction) -> bool {
        a.kind.admin_only() || self.is_moderator(&a.signer, a.created_at)
    }

    /// Rebuilds every target's winner from the kept actions.
    fn recompute(&mut self) {
        self.blocks.clear();
        self.hidden.clear();
        self.pins.clear();
        let effective: Vec<VerifiedModAction> = self
            .actions
            .values()
            .filter(|a| !a.kind.admin_only() && self.is_effective(a))
            .cloned()
            .collect();
        for a in &effective {
            self.apply_effect(a);
        }
        let admin_only = self
            .actions
            .values()
            .filter(|a| a.kind.admin_only())
            .count();
        self.pending_len = self.actions.len() - admin_only - effective.len();
    }

    /// Latest-wins update of the one target `a` is about.
    fn apply_effect(&mut self, a: &VerifiedModAction) {
        let order = order_key(a);
        let decision = |reason: &str| Decision {
            by: a.signer,
            by_name: a.signer_name.clone(),
            reason: reason.to_string(),
            at: a.created_at,
            action: a.id(),
        };
        match &a.kind {
            ModActionKind::Block {
                author,
                scope,
                reason,
            } => upsert(
                &mut self.blocks,
                (*author, scope.clone()),
                order,
                Some(decision(reason)),
            ),
            ModActionKind::Unblock { author, scope } => {
                upsert(&mut self.blocks, (*author, scope.clone()), order, None)
            }
            ModActionKind::Hide { post, reason } => {
                upsert(&mut self.hidden, *post, order, Some(decision(reason)))
            }
            ModActionKind::Unhide { post } => upsert(&mut self.hidden, *post, order, None),
            ModActionKind::Pin { post } => upsert(&mut self.pins, *post, order, Some(decision(""))),
            ModActionKind::Unpin { post } => upsert(&mut self.pins, *post, order, None),
            ModActionKind::AppointModerator { .. } | ModActionKind::RevokeModerator { .. } => {}
        }
    }

    fn in_force(&self, target: &Target) -> bool {
        match target {
            Target::Block(author, scope) => self.block(author, scope).is_some(),
            Target::Hide(post) => self.hidden(post).is_some(),
            Target::Pin(post) => self.is_pinned(post),
        }
    }

    fn targets_in_force(&self) -> InForce {
        InForce {
            blocks: self.block_targets(),
            hidden: self.hidden_targets(),
            pinned: self.pinned().into_iter().collect(),
        }
    }

    /// The community admin (from the manifest).
    pub fn admin(&self) -> PublicKey {
        self.admin
    }

    /// The community this state belongs to.
    pub fn community(&self) -> CommunityId {
        self.community
    }

    /// Number of actions kept, effective or pending.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether no action is kept.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Whether the action with this id is kept (effective or pending).
    pub fn contains(&self, id: &ActionId) -> bool {
        self.ids.contains_key(id)
    }

    /// Moderators at time `at_ms` (not counting the admin), each with the
    /// pseudonym of their latest effective action, if any.
    pub fn moderators_at(&self, at_ms: u64) -> Vec<(PublicKey, Option<String>)> {
        let keys: Vec<PublicKey> = self
            .roles
            .keys()
            .filter(|k| **k != self.admin && self.appointed_at(k, at_ms))
            .copied()
            .collect();
        if keys.is_empty() {
            return Vec::new();
        }
        // Names come from effective actions only: a pending action decides
        // nothing, not even how a moderator is shown.
        let mut names: BTreeMap<PublicKey, Option<String>> = BTreeMap::new();
        for a in self.actions.values() {
            if keys.contains(&a.signer) && self.is_effective(a) {
                names.insert(a.signer, a.signer_name.clone());
            }
        }
        keys.into_iter()
            .map(|k| (k, names.get(&k).cloned().flatten()))
            .collect()
    }

    /// Current moderators (not counting the admin): keys whose latest
    /// appoint/revoke is an appointment, with their pseudonym.
    pub fn moderators(&self) -> Vec<(PublicKey, Option<String>)> {
        self.moderators_at(u64::MAX)
    }

    /// Keys that may moderate now, admin first: who reports are sealed to.
    pub fn current_moderators(&self) -> Vec<PublicKey> {
        let mut out = vec![self.admin];
        out.extend(self.moderators().into_iter().map(|(k, _)| k));
        out
    }

    /// The block that applies to `author` in `topic`, if any; a
    /// community-wide block is reported before a topic block.
    pub fn is_blocked(&self, author: &PublicKey, topic: &TopicName) -> Option<&BlockInfo> {
        self.block(author, &Scope::Community)
            .or_else(|| self.block(author, &Scope::Topic(topic.clone())))
    }

    /// The block in force for exactly this target, if any.
    pub fn block(&self, author: &PublicKey, scope: &Scope) -> Option<&BlockInfo> {
        self.blocks
            .get(&(*author, scope.clone()))
            .and_then(|w| w.decision.as_ref())
    }

    /// Blocks in force, sorted by author then scope.
    pub fn blocks(&self) -> Vec<((PublicKey, Scope), &BlockInfo)> {
        self.blocks
            .iter()
            .filter_map(|(k, w)| w.decision.as_ref().map(|d| (k.clone(), d)))
            .collect()
    }

    /// The targets of the blocks in force.
    pub fn block_targets(&self) -> BTreeSet<(PublicKey, Scope)> {
        self.blocks().into_iter().map(|(k, _)| k).collect()
    }

    /// Why `post` is hidden, if it is.
    pub fn hidden(&self, post: &PostId) -> Option<&HideInfo> {
        self.hidden.get(post).and_then(|w| w.decision.as_ref())
    }

    /// Hidden posts, sorted by id.
    pub fn hidden_posts(&self) -> Vec<(PostId, &HideInfo)> {
        self.hidden
            .iter()
            .filter_map(|(k, w)| w.decision.as_ref().map(|d| (*k, d)))
            .collect()
    }

    /// Ids of hidden posts.
    pub fn hidden_targets(&self) -> BTreeSet<PostId> {
        self.hidden_posts().into_iter().map(|(k, _)| k).collect()
    }

    /// Whether `post` is pinned.
    pub fn is_pinned(&self, post: &PostId) -> bool {
        self.pin(post).is_some()
    }

    /// Who pinned `post`, if it is pinned.
    pub fn pin(&self, post: &PostId) -> Option<&PinInfo> {
        self.pins.get(post).and_then(|w| w.decision.as_ref())
    }

    /// Pinned posts, sorted by id.
    pub fn pinned(&self) -> Vec<PostId> {
        self.pins
            .iter()
            .filter(|(_, w)| w.decision.is_some())
            .map(|(k, _)| *k)
            .collect()
    }

    /// Every effective action, oldest first by order key: the public
    /// moderation log (who did what, when and why, with their pseudonym).
    pub fn log(&self) -> Vec<&VerifiedModAction> {
        self.actions
            .values()
            .filter(|a| self.is_effective(a))
            .collect()
    }

    /// The same as [`log`](Self::log); kept for callers that name it so.
    pub fn log_with_ids(&self) -> Vec<&VerifiedModAction> {
        self.log()
    }

    /// Kept actions that are not effective (their signer was not a
    /// moderator at their time, as far as this state knows).
    pub fn pending(&self) -> Vec<&VerifiedModAction> {
        self.actions
            .values()
            .filter(|a| !self.is_effective(a))
            .collect()
    }

    /// Every kept action, effective or pending, oldest first: what must be
    /// stored so that a later [`fold`](Self::fold) rebuilds this state.
    pub fn actions(&self) -> impl Iterator<Item = &VerifiedModAction> + '_ {
        self.actions.values()
    }

    /// Everything this state decides, owned and comparable.
    pub fn decisions(&self) -> Decisions {
        Decisions {
            moderators: self.moderators().into_iter().map(|(k, _)| k).collect(),
            blocks: self
                .blocks()
                .into_iter()
                .map(|(k, d)| (k, d.clone()))
                .collect(),
            hidden: self
                .hidden_posts()
                .into_iter()
                .map(|(k, d)| (k, d.clone()))
                .collect(),
            pinned: self
                .pins
                .iter()
                .filter_map(|(k, w)| w.decision.clone().map(|d| (*k, d)))
                .collect(),
            log: self.log().into_iter().map(|a| a.id()).collect(),
        }
    }
}

fn target_of(kind: &ModActionKind) -> Option<Target> {
    Some(match kind {
        ModActionKind::Block { author, scope, .. } | ModActionKind::Unblock { author, scope } => {
            Target::Block(*author, scope.clone())
        }
        ModActionKind::Hide { post, .. } | ModActionKind::Unhide { post } => Target::Hide(*post),
        ModActionKind::Pin { post } | ModActionKind::Unpin { post } => Target::Pin(*post),
        ModActionKind::AppointModerator { .. } | ModActionKind::RevokeModerator { .. } => {
            return None
        }
    })
}

/// The targets in force at one moment, for diffing around a recompute.
struct InForce {
    blocks: BTreeSet<(PublicKey, Scope)>,
    hidden: BTreeSet<PostId>,
    pinned: BTreeSet<PostId>,
}

fn diff(before: &InForce, after: &InForce) -> Applied {
    fn gone<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> Vec<T> {
        a.difference(b).cloned().collect()
    }
    Applied {
        newly_blocked: gone(&after.blocks, &before.blocks),
        unblocked: gone(&before.blocks, &after.blocks),
        newly_hidden: gone(&after.hidden, &before.hidden),
        unhidden: gone(&before.hidden, &after.hidden),
        newly_pinned: gone(&after.pinned, &before.pinned),
        unpinned: gone(&before.pinned, &after.pinned),
        moderators_changed: false,
    }
}

/// Rule 5: the greater order key wins, whatever order updates come in.
fn upsert<K: Ord>(
    map: &mut BTreeMap<K, Winner>,
    key: K,
    order: OrderKey,
    decision: Option<Decision>,
) {
    match map.get(&key) {
        Some(existing) if existing.order >= order => {}
        _ => {
            map.insert(key, Winner { order, decision });
        }
    }
}
