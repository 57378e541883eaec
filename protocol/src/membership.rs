//! Membership of an invite-only community: who is admitted, by which
//! invitation, and which lockdowns are in force. A pure function of the
//! kept moderation actions (through [`crate::ModerationState`], which
//! decides which invitations, revocations and lockdowns are effective by
//! its role rules), so every node that holds the same actions admits the
//! same keys, whatever order they arrived in.
//!
//! Rules (the fold's rule 8, `state.rs`):
//! 1. An invitation `I` exists when an effective `Invite{invitation: I}`
//!    is kept (signed by the admin or a moderator in force at its time);
//!    of several, the least by order key defines it.
//! 2. A `Redeem` by key `K` of `I` is *valid* when `I` exists, the
//!    redemption is dated no earlier than the invitation less the allowed
//!    clock skew ([`crate::MAX_FUTURE_SKEW_MS`]) and no later than its
//!    `expires_at`, no effective `RevokeInvite{I}` is dated at or before
//!    it, and no community-wide lockdown is in force at its time.
//! 3. Of the valid redemptions of `I`, taken in order `(created_at,
//!    signer, id)`, the first `uses` of distinct authors (a succession's
//!    keys are one author) *admit* their author, as of the redemption's
//!    time. So two racing redemptions of a one-use invitation admit the
//!    same one on every node; a redemption that arrives later but is dated
//!    earlier displaces a later one.
//! 4. A lockdown (`Lockdown` / `LiftLockdown`, moderators' actions) is
//!    decided per scope like a block: at time `t` the effective one with
//!    the greatest order key dated `<= t` decides.
//!
//! Members (see [`crate::ModerationState::is_member`]) are the admin,
//! everyone ever appointed moderator or co-admin by a counting role
//! change, and the admitted authors, less the authors blocked
//! community-wide (while they are: an unblock restores membership).

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::ActionId;
use crate::keys::PublicKey;
use crate::moderation::{ModActionKind, Scope, VerifiedModAction};
use crate::topic::TopicName;
use crate::MAX_FUTURE_SKEW_MS;

/// A day in milliseconds (lockdown holds are counted in days).
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// `(created_at, signer, seq, id)`, as in `state.rs`.
type OrderKey = (u64, PublicKey, u64, ActionId);

fn order_key(a: &VerifiedModAction) -> OrderKey {
    (a.created_at, a.signer, a.seq, a.id())
}

/// The greatest order key with `created_at <= at_ms`.
fn upper_key(at_ms: u64) -> OrderKey {
    (at_ms, PublicKey([0xff; 32]), u64::MAX, ActionId([0xff; 32]))
}

/// An invitation as the log defines it, with what became of it: what
/// `mutual invite --list` shows and what `--revoke` checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// The invitation's public key (its id).
    pub invitation: PublicKey,
    /// Who issued it (the admin or a moderator).
    pub by: PublicKey,
    /// The issuer's pseudonym in the action.
    pub by_name: Option<String>,
    /// When it was issued, ms since the Unix epoch.
    pub created_at: u64,
    /// How many keys it may admit.
    pub uses: u32,
    /// Last moment a redemption may be dated.
    pub expires_at: u64,
    /// When it was withdrawn (the earliest effective revocation), if it was.
    pub revoked_at: Option<u64>,
    /// The keys it admitted and when, in redemption order.
    pub admitted: Vec<(PublicKey, u64)>,
}

/// Why a redemption admits nobody (rules 2 and 3): what its signer's
/// node tells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedemptionRefusal {
    /// The invitation is not in the log held (yet).
    UnknownInvitation,
    /// Dated before the invitation (beyond the allowed clock skew).
    BeforeInvitation,
    /// Dated after the invitation's expiry.
    Expired,
    /// Dated at or after the invitation's withdrawal.
    Withdrawn,
    /// Dated while the community was locked down.
    Lockdown,
    /// Valid, but the invitation's uses went to earlier redemptions.
    UsedUp,
}

/// A lockdown in force in one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockdownInfo {
    /// Where.
    pub scope: Scope,
    /// Posts of members admitted this many days before them are held.
    pub hold_recent_days: Option<u32>,
    /// Why (shown to everyone).
    pub reason: String,
    /// The moderator who ordered it.
    pub by: PublicKey,
    /// Their pseudonym in the action.
    pub by_name: Option<String>,
    /// When, ms since the Unix epoch.
    pub at: u64,
}

/// What the membership rules derive from the kept actions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Invitations by key.
    invitations: BTreeMap<PublicKey, Invitation>,
    /// Ids of the redemptions that admit (rule 3).
    admitting: BTreeSet<ActionId>,
    /// Admitted authors (root keys) and their earliest admission time.
    admitted: BTreeMap<PublicKey, u64>,
    /// Effective lockdown decisions per scope, by order key (`None`: lifted).
    lockdowns: BTreeMap<Scope, BTreeMap<OrderKey, Option<LockdownInfo>>>,
}

impl Membership {
    /// Computes the membership rules over `actions`. `effective` tells
    /// whether an `Invite`, `RevokeInvite`, `Lockdown` or `LiftLockdown`
    /// counts by the role rules; `root` names a key's author.
    pub(crate) fn compute<'a>(
        actions: impl Iterator<Item = &'a VerifiedModAction>,
        effective: impl Fn(&VerifiedModAction) -> bool,
        root: impl Fn(&PublicKey) -> PublicKey,
    ) -> Membership {
        let mut m = Membership::default();
        let mut revoked: BTreeMap<PublicKey, u64> = BTreeMap::new();
        let mut redemptions: Vec<&VerifiedModAction> = Vec::new();
        // `actions` come in order key order: the first Invite of a key is
        // the least.
        for a in actions {
            match &a.kind {
                ModActionKind::Redeem { .. } => redemptions.push(a),
                ModActionKind::Invite {
                    invitation,
                    uses,
                    expires_at,
                } if effective(a) => {
                    m.invitations.entry(*invitation).or_insert(Invitation {
                        invitation: *invitation,
                        by: a.signer,
                        by_name: a.signer_name.clone(),
                        created_at: a.created_at,
                        uses: *uses,
                        expires_at: *expires_at,
                        revoked_at: None,
                        admitted: Vec::new(),
                    });
                }
                ModActionKind::RevokeInvite { invitation } if effective(a) => {
                    let at = revoked.entry(*invitation).or_insert(a.created_at);
                    *at = (*at).min(a.created_at);
                }
                ModActionKind::Lockdown {
                    scope,
                    hold_recent_days,
                    reason,
                } if effective(a) => {
                    m.lockdowns.entry(scope.clone()).or_default().insert(
                        order_key(a),
                        Some(LockdownInfo {
                            scope: scope.clone(),
                            hold_recent_days: *hold_recent_days,
                            reason: reason.clone(),
                            by: a.signer,
                            by_name: a.signer_name.clone(),
                            at: a.created_at,
                        }),
                    );
                }
                ModActionKind::LiftLockdown { scope } if effective(a) => {
                    m.lockdowns
                        .entry(scope.clone())
                        .or_default()
                        .insert(order_key(a), None);
                }
                _ => {}
            }
        }
        for (invitation, at) in revoked {
            if let Some(inv) = m.invitations.get_mut(&invitation) {
                inv.revoked_at = Some(at);
            }
        }
        // Rule 3: already in (created_at, signer, seq, id) order.
        let mut used: BTreeMap<PublicKey, BTreeSet<PublicKey>> = BTreeMap::new();
        for r in redemptions {
            let ModActionKind::Redeem { invitation, .. } = &r.kind else {
                continue;
            };
            let Some(inv) = m.invitations.get(invitation) else {
                continue;
            };
            if m.invalidity(inv, r.created_at).is_some() {
                continue;
            }
            let authors = used.entry(*invitation).or_default();
            let author = root(&r.signer);
            if authors.contains(&author) || authors.len() >= inv.uses as usize {
                continue;
            }
            authors.insert(author);
            m.admitting.insert(r.id());
            let since = m.admitted.entry(author).or_insert(r.created_at);
            *since = (*since).min(r.created_at);
            if let Some(inv) = m.invitations.get_mut(invitation) {
                inv.admitted.push((r.signer, r.created_at));
            }
        }
        m
    }

    /// Rule 2: why a redemption dated `at` of `inv` is not valid, if it
    /// is not (the one place the fold and [`Membership::refusal`] check).
    fn invalidity(&self, inv: &Invitation, at: u64) -> Option<RedemptionRefusal> {
        if at.saturating_add(MAX_FUTURE_SKEW_MS) < inv.created_at {
            Some(RedemptionRefusal::BeforeInvitation)
        } else if at > inv.expires_at {
            Some(RedemptionRefusal::Expired)
        } else if inv.revoked_at.is_some_and(|r| at >= r) {
            Some(RedemptionRefusal::Withdrawn)
        } else if self.lockdown_at(&Scope::Community, at).is_some() {
            Some(RedemptionRefusal::Lockdown)
        } else {
            None
        }
    }

    /// Whether this redemption admits its signer (rule 3).
    pub(crate) fn admits(&self, id: &ActionId) -> bool {
        self.admitting.contains(id)
    }

    /// Why the redemption `r` admits nobody; `None` when it admits (or is
    /// no redemption).
    pub(crate) fn refusal(&self, r: &VerifiedModAction) -> Option<RedemptionRefusal> {
        let ModActionKind::Redeem { invitation, .. } = &r.kind else {
            return None;
        };
        if self.admits(&r.id()) {
            return None;
        }
        let Some(inv) = self.invitations.get(invitation) else {
            return Some(RedemptionRefusal::UnknownInvitation);
        };
        Some(
            self.invalidity(inv, r.created_at)
                .unwrap_or(RedemptionRefusal::UsedUp),
        )
    }

    /// The invitation `key`, if it exists (rule 1).
    pub(crate) fn invitation(&self, key: &PublicKey) -> Option<&Invitation> {
        self.invitations.get(key)
    }

    /// When `author` (a root key) was first admitted by a redemption.
    pub(crate) fn admitted_at(&self, author: &PublicKey) -> Option<u64> {
        self.admitted.get(author).copied()
    }

    /// The admitted authors (root keys).
    pub(crate) fn admitted(&self) -> impl Iterator<Item = &PublicKey> + '_ {
        self.admitted.keys()
    }

    /// Every invitation, by key.
    pub(crate) fn invitations(&self) -> Vec<Invitation> {
        self.invitations.values().cloned().collect()
    }

    /// The lockdown in force in exactly `scope` at `at_ms`, if any.
    pub(crate) fn lockdown_at(&self, scope: &Scope, at_ms: u64) -> Option<&LockdownInfo> {
        self.lockdowns
            .get(scope)?
            .range(..=upper_key(at_ms))
            .next_back()?
            .1
            .as_ref()
    }

    /// The order key's time of the latest lockdown decision in `scope`.
    pub(crate) fn latest_lockdown(&self, scope: &Scope) -> Option<u64> {
        self.lockdowns
            .get(scope)?
            .keys()
            .next_back()
            .map(|order| order.0)
    }

    /// Lockdowns in force now, community first.
    pub(crate) fn lockdowns(&self) -> Vec<LockdownInfo> {
        self.lockdowns
            .keys()
            .filter_map(|scope| self.lockdown_at(scope, u64::MAX).cloned())
            .collect()
    }

    /// Whether a post by `author` (root key) in `topic` dated `at_ms` is
    /// held by a lockdown in force then (community or that topic) that
    /// holds members admitted within `hold_recent_days` before it.
    pub(crate) fn holds(&self, author: &PublicKey, topic: &TopicName, at_ms: u64) -> bool {
        let Some(admitted) = self.admitted_at(author) else {
            return false;
        };
        [Scope::Community, Scope::Topic(topic.clone())]
            .iter()
            .filter_map(|scope| self.lockdown_at(scope, at_ms))
            .filter_map(|l| l.hold_recent_days)
            .any(|days| admitted.saturating_add(u64::from(days) * DAY_MS) >= at_ms)
    }
}
