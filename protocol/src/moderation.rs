//! Moderation actions: signed decisions of the admin and the moderators.
//! Their effect is computed by the pure fold in [`crate::state`].

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::{ActionId, CommunityId, PostId};
use crate::keys::{Identity, PublicKey, SecretKey, Signature};
use crate::signed::{check_len, Signable, Signed, Verified};
use crate::topic::TopicName;
use crate::{MAX_PSEUDONYM_BYTES, MAX_REASON_BYTES};

/// Where a block applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Every topic of the community.
    Community,
    /// One topic.
    Topic(TopicName),
}

impl Scope {
    /// Whether a post in `topic` falls under this scope.
    pub fn covers(&self, topic: &TopicName) -> bool {
        match self {
            Scope::Community => true,
            Scope::Topic(t) => t == topic,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Community => f.write_str("the whole community"),
            Scope::Topic(t) => write!(f, "topic {t}"),
        }
    }
}

/// What a moderation action does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModActionKind {
    /// The admin or a co-admin: make `key` a moderator.
    AppointModerator {
        /// The new moderator.
        key: PublicKey,
    },
    /// The admin or a co-admin: `key` is no longer a moderator (nor a
    /// co-admin). Final: nothing `key` signs afterwards counts, however
    /// they date it.
    RevokeModerator {
        /// The former moderator.
        key: PublicKey,
        /// The highest `seq` of `key`'s actions the admin's node held when
        /// revoking ([`crate::ModerationState::highest_seq`]), `None` if it
        /// held none. Of the appointment period this revocation ends, only
        /// `key`'s actions numbered up to it count: `seq` is a per-signer
        /// counter that honest nodes persist and increase, so an action
        /// signed after the revocation and dated before it has a greater
        /// number (or reuses one, and then neither counts).
        upto_seq: Option<u64>,
    },
    /// Block an author in a scope: their posts there are deleted and refused.
    Block {
        /// The blocked author.
        author: PublicKey,
        /// Where.
        scope: Scope,
        /// Why (shown to members; never the content of the posts).
        reason: String,
    },
    /// Lift a block in a scope.
    Unblock {
        /// The author.
        author: PublicKey,
        /// Where.
        scope: Scope,
    },
    /// Hide a post: its body is deleted, a tombstone with the reason stays.
    Hide {
        /// The post.
        post: PostId,
        /// Why.
        reason: String,
    },
    /// Lift a hide.
    Unhide {
        /// The post.
        post: PostId,
    },
    /// Pin a post to the top of its topic.
    Pin {
        /// The post.
        post: PostId,
    },
    /// Unpin a post.
    Unpin {
        /// The post.
        post: PostId,
    },
    /// Key succession: the signer (any member, moderator or the admin)
    /// moves to the key `new`, and every node treats both keys as one
    /// author (`state.rs`, "Key succession"). Signed by the old key;
    /// `new_signature` is the new key's signature over
    /// [`succession_statement`] (proof of possession: without it a blocked
    /// key could name a victim's key as its successor and drag the victim
    /// into its block, or a stranger could claim a moderator's key).
    Succeed {
        /// The key that signs for this author from now on.
        new: PublicKey,
        /// `new`'s signature over [`succession_statement`].
        new_signature: Signature,
    },
    /// Admin only: make `key` a co-admin, a moderator who may also
    /// appoint and revoke moderators and whom nobody can block (wire
    /// version [`crate::message::CO_ADMIN_WIRE_VERSION`]).
    AppointCoAdmin {
        /// The new co-admin.
        key: PublicKey,
    },
    /// Admin only: `key` is no longer a co-admin but stays a moderator
    /// (revoke it as a moderator to end that too). Final like a
    /// revocation for what only a co-admin may do: of `key`'s
    /// appointments and revocations of moderators dated in the co-admin
    /// period this ends, only those numbered up to `upto_seq` count.
    RemoveCoAdmin {
        /// The former co-admin.
        key: PublicKey,
        /// As in [`ModActionKind::RevokeModerator`].
        upto_seq: Option<u64>,
    },
}

/// Domain of the new key's co-signature of a succession.
pub const SUCCESSION_DOMAIN: &str = "mutual/v1/succession";

/// The bytes the new key of a succession signs: the community, the old
/// key and the new key. The time is not in them: the old key may only
/// ever be succeeded once (`state.rs`), so reusing the co-signature in a
/// second succession of the same two keys changes nothing.
pub fn succession_statement(community: &CommunityId, old: &PublicKey, new: &PublicKey) -> Vec<u8> {
    crate::wire::signing_bytes(SUCCESSION_DOMAIN, &(community, old, new))
}

impl ModActionKind {
    /// Whether this action changes someone's role (moderator or
    /// co-admin): only the admin, and for moderators a co-admin, may take
    /// it.
    pub fn admin_only(&self) -> bool {
        matches!(
            self,
            ModActionKind::AppointModerator { .. }
                | ModActionKind::RevokeModerator { .. }
                | ModActionKind::AppointCoAdmin { .. }
                | ModActionKind::RemoveCoAdmin { .. }
        )
    }

    /// Whether this action names or removes a co-admin (the admin's
    /// alone; it travels with [`crate::message::CO_ADMIN_WIRE_VERSION`]).
    pub fn is_co_admin_change(&self) -> bool {
        matches!(
            self,
            ModActionKind::AppointCoAdmin { .. } | ModActionKind::RemoveCoAdmin { .. }
        )
    }

    /// The new key of a succession, if this is one.
    pub fn successor(&self) -> Option<&PublicKey> {
        match self {
            ModActionKind::Succeed { new, .. } => Some(new),
            _ => None,
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            ModActionKind::Block { reason, .. } | ModActionKind::Hide { reason, .. } => {
                Some(reason)
            }
            _ => None,
        }
    }
}

/// A moderation action as its signer made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModAction {
    /// The community.
    pub community: CommunityId,
    /// The admin or moderator who took it.
    pub signer: PublicKey,
    /// The signer's pseudonym, shown in the public moderation log.
    pub signer_name: Option<String>,
    /// The signer's own counter, increasing with each action (honest nodes
    /// persist it and never reuse a number): breaks ties between actions of
    /// one signer made in the same millisecond, and tells which actions a
    /// revocation counts (`RevokeModerator::upto_seq`).
    pub seq: u64,
    /// When, ms since the Unix epoch.
    pub created_at: u64,
    /// What it does.
    pub kind: ModActionKind,
}

/// A moderation action with its signature.
pub type SignedModAction = Signed<ModAction>;
/// A moderation action whose signature and fields were checked (whether its
/// signer had the right to take it is the fold's business).
pub type VerifiedModAction = Verified<ModAction>;

impl Signable for ModAction {
    const DOMAIN: &'static str = "mutual/v1/moderation";
    type Id = ActionId;
    fn signer(&self) -> &PublicKey {
        &self.signer
    }
    fn community(&self) -> Option<&CommunityId> {
        Some(&self.community)
    }
    fn created_at(&self) -> u64 {
        self.created_at
    }
    fn check_fields(&self) -> Result<(), ValidationError> {
        if let Some(name) = &self.signer_name {
            check_len("pseudonym", name, MAX_PSEUDONYM_BYTES)?;
        }
        if let Some(reason) = self.kind.reason() {
            check_len("reason", reason, MAX_REASON_BYTES)?;
        }
        if self.kind.successor() == Some(&self.signer) {
            return Err(ValidationError::SelfSuccession);
        }
        Ok(())
    }
    fn co_signature(&self) -> Option<(PublicKey, Vec<u8>, Signature)> {
        match &self.kind {
            ModActionKind::Succeed { new, new_signature } => Some((
                *new,
                succession_statement(&self.community, &self.signer, new),
                *new_signature,
            )),
            _ => None,
        }
    }
}

impl ModAction {
    /// Makes and signs an action by `signer`.
    pub fn create(
        signer: &Identity,
        community: CommunityId,
        seq: u64,
        kind: ModActionKind,
        now_ms: u64,
    ) -> Result<SignedModAction, ValidationError> {
        let action = ModAction {
            community,
            signer: signer.public(),
            signer_name: signer.name.clone(),
            seq,
            created_at: now_ms,
            kind,
        };
        action.check_fields()?;
        Ok(Signed::sign(action, &signer.secret))
    }

    /// Makes a key succession: `old` names `new` as its successor and
    /// `new` co-signs it. Signed by `old` (with `old`'s pseudonym).
    pub fn succeed(
        old: &Identity,
        new: &SecretKey,
        community: CommunityId,
        seq: u64,
        now_ms: u64,
    ) -> Result<SignedModAction, ValidationError> {
        let new_key = new.public();
        let new_signature = new.sign(&succession_statement(&community, &old.public(), &new_key));
        ModAction::create(
            old,
            community,
            seq,
            ModActionKind::Succeed {
                new: new_key,
                new_signature,
            },
            now_ms,
        )
    }

    /// The total order used to decide which of two actions on the same
    /// target wins: later time, then signer key, then sequence number.
    pub fn order_key(&self) -> (u64, PublicKey, u64) {
        (self.created_at, self.signer, self.seq)
    }
}
