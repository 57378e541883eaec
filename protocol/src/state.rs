//! The moderation fold: the moderation state as a pure function of a set of
//! verified moderation actions. Every node that holds the same actions
//! computes the same state, whatever order they arrived in.
//!
//! Rules:
//! 1. The admin is fixed by the community manifest and is always a moderator.
//! 2. Only the admin's `AppointModerator` / `RevokeModerator` actions count;
//!    anyone else's are refused (`NotAdmin`).
//! 3. A key is a moderator at time `t` iff the latest (by order key
//!    `(created_at, signer, seq)`, then action id) admin appoint/revoke for
//!    that key with `created_at <= t` is an appoint.
//! 4. Any other action is effective iff its signer is the admin or was a
//!    moderator at the action's `created_at`. An action signed after its
//!    signer's revocation has no effect.
//! 5. For each target — `(author, scope)` for block/unblock, the post for
//!    hide/unhide, the post for pin/unpin — the effective action with the
//!    greatest order key wins.
//! 6. An author is blocked in topic `T` if the winner for
//!    `(author, Community)` is a block or the winner for
//!    `(author, Topic(T))` is a block.
//! 7. Actions of another community are refused (`WrongCommunity`).
//!
//! Every action that passes rule 7 and (for appoint/revoke) rule 2 is kept in
//! the state, effective or not, so that a later appointment can make an
//! earlier-received action effective: the incremental [`ModerationState::apply`]
//! always agrees with [`ModerationState::fold`] over the same set.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{ActionId, CommunityId, PostId};
use crate::keys::PublicKey;
use crate::moderation::{ModAction, ModActionKind, Scope, VerifiedModAction};
use crate::topic::TopicName;

/// Why an action can have no effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModerationError {
    /// It names another community.
    #[error("the action belongs to another community")]
    WrongCommunity,
    /// Appoint/revoke by someone other than the admin.
    #[error("only the community admin can appoint or revoke moderators")]
    NotAdmin,
    /// The signer was not a moderator when they signed it.
    #[error("{0} was not a moderator at the time of the action")]
    NotModerator(String),
    /// Already applied.
    #[error("the action is already known")]
    Duplicate,
}

/// Who decided a block, hide or pin, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The moderator (or admin) key.
    pub by: PublicKey,
    /// Their pseudonym at the time.
    pub by_name: Option<String>,
    /// The reason given (empty when none).
    pub reason: String,
    /// When, ms since the Unix epoch.
    pub at: u64,
    /// The deciding action.
    pub action: ActionId,
}

/// A block in force.
pub type BlockInfo = Decision;
/// A hide in force.
pub type HideInfo = Decision;

type OrderKey = (u64, PublicKey, u64, ActionId);

fn order_key(a: &VerifiedModAction) -> OrderKey {
    (a.created_at, a.signer, a.seq, a.id())
}

/// What the actions decide: moderators, blocks, hidden and pinned posts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModerationState {
    community: CommunityId,
    admin: PublicKey,
    /// Every kept action, by order key (effective or not).
    actions: BTreeMap<OrderKey, VerifiedModAction>,
    ids: BTreeSet<ActionId>,
    /// Admin appoint/revoke history per key: order key → appointed?
    roles: BTreeMap<PublicKey, BTreeMap<OrderKey, bool>>,
    blocks: BTreeMap<(PublicKey, Scope), (OrderKey, Option<Decision>)>,
    hidden: BTreeMap<PostId, (OrderKey, Option<Decision>)>,
    pinned: BTreeMap<PostId, (OrderKey, bool)>,
}

impl ModerationState {
    /// The state of a community with no actions yet.
    pub fn new(community: CommunityId, admin: PublicKey) -> Self {
        ModerationState {
            community,
            admin,
            actions: BTreeMap::new(),
            ids: BTreeSet::new(),
            roles: BTreeMap::new(),
            blocks: BTreeMap::new(),
            hidden: BTreeMap::new(),
            pinned: BTreeMap::new(),
        }
    }

    /// Folds a set of actions; the order of `actions` does not matter.
    pub fn fold<'a>(
        community: CommunityId,
        admin: PublicKey,
        actions: impl IntoIterator<Item = &'a VerifiedModAction>,
    ) -> Self {
        let mut state = ModerationState::new(community, admin);
        for a in actions {
            let _ = state.admit(a);
        }
        state.recompute();
        state
    }

    /// Checks the rules that refuse an action outright and keeps it.
    fn admit(&mut self, a: &VerifiedModAction) -> Result<(), ModerationError> {
        if a.community != self.community {
            return Err(ModerationError::WrongCommunity);
        }
        if self.ids.contains(&a.id()) {
            return Err(ModerationError::Duplicate);
        }
        if a.kind.admin_only() {
            if a.signer != self.admin {
                return Err(ModerationError::NotAdmin);
            }
            let (key, appointed) = match &a.kind {
                ModActionKind::AppointModerator { key } => (*key, true),
                ModActionKind::RevokeModerator { key } => (*key, false),
                _ => return Err(ModerationError::NotAdmin),
            };
            self.roles
                .entry(key)
                .or_default()
                .insert(order_key(a), appointed);
        }
        self.ids.insert(a.id());
        self.actions.insert(order_key(a), a.clone());
        Ok(())
    }

    /// Applies one action incrementally. The result equals folding every
    /// action applied so far, in any order. A refused action changes nothing.
    pub fn apply(&mut self, a: &VerifiedModAction) -> Result<(), ModerationError> {
        if a.community != self.community {
            return Err(ModerationError::WrongCommunity);
        }
        if self.ids.contains(&a.id()) {
            return Err(ModerationError::Duplicate);
        }
        if !a.kind.admin_only() && !self.is_moderator(&a.signer, a.created_at) {
            // Kept out: refused with a reason. (Sync brings it back should
            // an appointment that makes it effective arrive later.)
            return Err(ModerationError::NotModerator(a.signer.short()));
        }
        self.admit(a)?;
        if a.kind.admin_only() {
            self.recompute();
        } else {
            self.apply_effect(a);
        }
        Ok(())
    }

    /// Whether `key` moderates at time `at_ms` (the admin always does).
    pub fn is_moderator(&self, key: &PublicKey, at_ms: u64) -> bool {
        if *key == self.admin {
            return true;
        }
        self.roles.get(key).is_some_and(|history| {
            history
                .range(..=(at_ms, PublicKey([0xff; 32]), u64::MAX, ActionId([0xff; 32])))
                .next_back()
                .is_some_and(|(_, appointed)| *appointed)
        })
    }

    fn recompute(&mut self) {
        self.blocks.clear();
        self.hidden.clear();
        self.pinned.clear();
        let effective: Vec<VerifiedModAction> = self
            .actions
            .values()
            .filter(|a| !a.kind.admin_only() && self.is_moderator(&a.signer, a.created_at))
            .cloned()
            .collect();
        for a in &effective {
            self.apply_effect(a);
        }
        // Drop kept actions that can never be effective? No: a later
        // appointment could make them effective, so they stay.
    }

    fn decision(a: &VerifiedModAction, reason: &str) -> Decision {
        Decision {
            by: a.signer,
            by_name: a.signer_name.clone(),
            reason: reason.to_string(),
            at: a.created_at,
            action: a.id(),
        }
    }

    /// Latest-wins update of one target.
    fn apply_effect(&mut self, a: &VerifiedModAction) {
        let key = order_key(a);
        match &a.kind {
            ModActionKind::Block {
                author,
                scope,
                reason,
            } => upsert(
                &mut self.blocks,
                (*author, scope.clone()),
                key,
                Some(Self::decision(a, reason)),
            ),
            ModActionKind::Unblock { author, scope } => {
                upsert(&mut self.blocks, (*author, scope.clone()), key, None)
            }
            ModActionKind::Hide { post, reason } => upsert(
                &mut self.hidden,
                *post,
                key,
                Some(Self::decision(a, reason)),
            ),
            ModActionKind::Unhide { post } => upsert(&mut self.hidden, *post, key, None),
            ModActionKind::Pin { post } => upsert(&mut self.pinned, *post, key, true),
            ModActionKind::Unpin { post } => upsert(&mut self.pinned, *post, key, false),
            ModActionKind::AppointModerator { .. } | ModActionKind::RevokeModerator { .. } => {}
        }
    }

    /// The community admin.
    pub fn admin(&self) -> PublicKey {
        self.admin
    }

    /// The community.
    pub fn community(&self) -> CommunityId {
        self.community
    }

    /// Number of actions kept.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether no action is kept.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Current moderators (not counting the admin) with their latest
    /// pseudonym, as of the latest appointment/revocation.
    pub fn moderators(&self) -> Vec<(PublicKey, Option<String>)> {
        self.roles
            .iter()
            .filter(|(_, h)| h.values().next_back().copied().unwrap_or(false))
            .map(|(k, _)| {
                let name = self
                    .actions
                    .values()
                    .rev()
                    .find(|a| a.signer == *k)
                    .and_then(|a| a.signer_name.clone());
                (*k, name)
            })
            .collect()
    }

    /// Keys that may moderate now: the admin and current moderators.
    pub fn current_moderators(&self) -> Vec<PublicKey> {
        let mut out = vec![self.admin];
        out.extend(self.moderators().into_iter().map(|(k, _)| k));
        out
    }

    /// The block that applies to `author` in `topic`, if any.
    pub fn is_blocked(&self, author: &PublicKey, topic: &TopicName) -> Option<&BlockInfo> {
        let whole = self
            .blocks
            .get(&(*author, Scope::Community))
            .and_then(|(_, d)| d.as_ref());
        whole.or_else(|| {
            self.blocks
                .get(&(*author, Scope::Topic(topic.clone())))
                .and_then(|(_, d)| d.as_ref())
        })
    }

    /// Blocks in force.
    pub fn blocks(&self) -> Vec<((PublicKey, Scope), &BlockInfo)> {
        self.blocks
            .iter()
            .filter_map(|(k, (_, d))| d.as_ref().map(|d| (k.clone(), d)))
            .collect()
    }

    /// The targets of the blocks in force.
    pub fn block_targets(&self) -> BTreeSet<(PublicKey, Scope)> {
        self.blocks().into_iter().map(|(k, _)| k).collect()
    }

    /// Why `post` is hidden, if it is.
    pub fn hidden(&self, post: &PostId) -> Option<&HideInfo> {
        self.hidden.get(post).and_then(|(_, d)| d.as_ref())
    }

    /// Hidden posts.
    pub fn hidden_posts(&self) -> Vec<(PostId, &HideInfo)> {
        self.hidden
            .iter()
            .filter_map(|(k, (_, d))| d.as_ref().map(|d| (*k, d)))
            .collect()
    }

    /// Ids of hidden posts.
    pub fn hidden_targets(&self) -> BTreeSet<PostId> {
        self.hidden_posts().into_iter().map(|(k, _)| k).collect()
    }

    /// Whether `post` is pinned.
    pub fn is_pinned(&self, post: &PostId) -> bool {
        self.pinned.get(post).is_some_and(|(_, p)| *p)
    }

    /// Pinned posts.
    pub fn pinned(&self) -> Vec<PostId> {
        self.pinned
            .iter()
            .filter(|(_, (_, p))| *p)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Every effective action, oldest first: the public moderation log.
    pub fn log(&self) -> Vec<&ModAction> {
        self.actions
            .values()
            .filter(|a| a.kind.admin_only() || self.is_moderator(&a.signer, a.created_at))
            .map(|a| a.content())
            .collect()
    }

    /// Every effective action with its id, oldest first.
    pub fn log_with_ids(&self) -> Vec<&VerifiedModAction> {
        self.actions
            .values()
            .filter(|a| a.kind.admin_only() || self.is_moderator(&a.signer, a.created_at))
            .collect()
    }
}

fn upsert<K: Ord, V>(map: &mut BTreeMap<K, (OrderKey, V)>, key: K, order: OrderKey, value: V) {
    match map.get(&key) {
        Some((existing, _)) if *existing >= order => {}
        _ => {
            map.insert(key, (order, value));
        }
    }
}
