//! Moderation actions: signed decisions of the admin and the moderators.
//! Their effect is computed by the pure fold in [`crate::state`].

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::{ActionId, CommunityId, PostId};
use crate::keys::{Identity, PublicKey, SecretKey, Signature};
use crate::report::{SealedCopy, MAX_REPORT_RECIPIENTS, MAX_SEALED_NOTE_BYTES};
use crate::signed::{check_len, Signable, Signed, Verified};
use crate::topic::TopicName;
use crate::{MAX_PSEUDONYM_BYTES, MAX_REASON_BYTES, MAX_RULES_BYTES};

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
    /// version [`crate::message::MEMBERSHIP_WIRE_VERSION`]).
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
    /// Admin alone (not a co-admin): a new version of the rules and of how
    /// people are admitted. The valid update with the highest `version`
    /// wins everywhere (ties: the later order key), so replaying an older
    /// one changes nothing.
    UpdateManifest {
        /// Counter the admin's node increases with each update.
        version: u64,
        /// The rules / welcome text from now on.
        rules: String,
        /// Admission and probation from now on.
        policy: CommunityPolicy,
    },
    /// Admin or a moderator: an invitation that admits up to `uses` keys,
    /// redeemed up to `expires_at`. Its public part is `invitation`; the
    /// invite code carries the matching secret, whose signature over a
    /// newcomer's key is the newcomer's proof ([`ModActionKind::Redeem`]).
    Invite {
        /// The invitation's public key (its id).
        invitation: PublicKey,
        /// How many keys it may admit.
        uses: u32,
        /// Last moment (ms since the Unix epoch) a redemption may be dated.
        expires_at: u64,
    },
    /// Admin or a moderator: withdraw an invitation; redemptions dated
    /// after this admit nobody.
    RevokeInvite {
        /// The invitation's public key.
        invitation: PublicKey,
    },
    /// Any key: the signer claims membership with an invitation.
    /// `invitation_signature` is the invitation key's signature over
    /// [`redemption_statement`] (proof that the signer holds the code).
    Redeem {
        /// The invitation's public key.
        invitation: PublicKey,
        /// The invitation key's signature over [`redemption_statement`].
        invitation_signature: Signature,
    },
    /// Moderator: no new admissions in `scope` (the whole community, or
    /// one topic for the holding below) until lifted; with
    /// `hold_recent_days`, every post of a member admitted within that
    /// many days before the post is held for approval meanwhile.
    Lockdown {
        /// Where.
        scope: Scope,
        /// Hold posts of members admitted this recently (days).
        hold_recent_days: Option<u32>,
        /// Why (shown to everyone).
        reason: String,
    },
    /// Moderator: end a lockdown in `scope`.
    LiftLockdown {
        /// Where.
        scope: Scope,
    },
    /// Moderator: a post held for approval (probation, lockdown) is shown
    /// to everyone, and counts toward its author's probation
    /// ([`crate::probation`]).
    Approve {
        /// The post.
        post: PostId,
        /// The post's author, as the approving node read it from the post:
        /// the approval counts for this author, so that every node counts
        /// alike without holding the post.
        author: PublicKey,
    },
    /// Moderator: a held post is refused and deleted everywhere, like a
    /// hide.
    Reject {
        /// The post.
        post: PostId,
        /// Why (shown to its author and moderators).
        reason: String,
    },
    /// Moderator: a report is dealt with and leaves every moderator's
    /// queue. The log names only the report's own id
    /// ([`crate::report::ReportContent::id`]: a hash of the sealed report,
    /// which no member can link to a post or reporter) and the outcome;
    /// the moderator's note is sealed to the moderators.
    ResolveReport {
        /// The report's own id.
        report: ActionId,
        /// What was done.
        outcome: ReportOutcome,
        /// The note, sealed once to each moderator of the time
        /// ([`crate::report::seal_note`]); empty: no note.
        note: Vec<SealedCopy>,
    },
    /// Moderator: the topic directory's entry for `topic` (a one-line
    /// description, so a newcomer sees which topics exist); an empty
    /// description removes the entry. The latest per topic wins.
    DescribeTopic {
        /// The topic.
        topic: TopicName,
        /// At most [`MAX_TOPIC_DESCRIPTION_BYTES`]; empty removes. Shown
        /// as one line (line breaks become spaces when shown).
        description: String,
    },
}

/// What a moderator did about a report ([`ModActionKind::ResolveReport`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ReportOutcome {
    /// The post was hidden.
    Hidden,
    /// Its author was blocked.
    Blocked,
    /// Nothing needed doing.
    NoAction,
}

impl std::fmt::Display for ReportOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReportOutcome::Hidden => "hidden",
            ReportOutcome::Blocked => "blocked",
            ReportOutcome::NoAction => "no action",
        })
    }
}

/// Longest topic description in the directory: one line.
pub const MAX_TOPIC_DESCRIPTION_BYTES: usize = 200;

/// How a community admits people. Lives in the admin's
/// [`ModActionKind::UpdateManifest`]; a community without one is
/// [`CommunityPolicy::LEGACY`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Admission {
    /// Anyone holding an invite code (the community secret) may post.
    Open,
    /// Only keys admitted by an invitation (and the admin, co-admins and
    /// moderators) may post, retract or report.
    InviteOnly,
}

/// What the admin decides about admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommunityPolicy {
    /// Who may post.
    pub admission: Admission,
    /// How many approved posts a new author needs before their posts are
    /// shown without approval (0: no probation). At most
    /// [`MAX_PROBATION_POSTS`].
    pub probation_posts: u32,
}

/// Longest probation a manifest may set.
pub const MAX_PROBATION_POSTS: u32 = 20;
/// Most keys one invitation may admit.
pub const MAX_INVITE_USES: u32 = 1000;

impl CommunityPolicy {
    /// A community created before policies existed: open, no probation.
    pub const LEGACY: CommunityPolicy = CommunityPolicy {
        admission: Admission::Open,
        probation_posts: 0,
    };
    /// What `community create` publishes unless told otherwise.
    pub const NEW_COMMUNITY: CommunityPolicy = CommunityPolicy {
        admission: Admission::InviteOnly,
        probation_posts: 2,
    };
}

/// Domain of the invitation key's signature in a redemption.
pub const REDEMPTION_DOMAIN: &str = "mutual/v1/redemption";

/// The bytes an invitation key signs to admit `newcomer`.
pub fn redemption_statement(
    community: &CommunityId,
    invitation: &PublicKey,
    newcomer: &PublicKey,
) -> Vec<u8> {
    crate::wire::signing_bytes(REDEMPTION_DOMAIN, &(community, invitation, newcomer))
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
    /// alone; it travels with [`crate::message::MEMBERSHIP_WIRE_VERSION`]).
    pub fn is_co_admin_change(&self) -> bool {
        matches!(
            self,
            ModActionKind::AppointCoAdmin { .. } | ModActionKind::RemoveCoAdmin { .. }
        )
    }

    /// Whether this action is the admin's alone (a co-admin may not take
    /// it either).
    pub fn admin_alone(&self) -> bool {
        self.is_co_admin_change() || matches!(self, ModActionKind::UpdateManifest { .. })
    }

    /// The wire version a message holding this action travels with: kinds
    /// added later carry a higher version, so older nodes refuse them as a
    /// version they do not know instead of failing on an unknown kind.
    pub fn wire_version(&self) -> u8 {
        match self {
            ModActionKind::Succeed { .. } => crate::message::SUCCESSION_WIRE_VERSION,
            ModActionKind::AppointModerator { .. }
            | ModActionKind::RevokeModerator { .. }
            | ModActionKind::Block { .. }
            | ModActionKind::Unblock { .. }
            | ModActionKind::Hide { .. }
            | ModActionKind::Unhide { .. }
            | ModActionKind::Pin { .. }
            | ModActionKind::Unpin { .. } => crate::wire::WIRE_VERSION,
            _ => crate::message::MEMBERSHIP_WIRE_VERSION,
        }
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
            ModActionKind::Block { reason, .. }
            | ModActionKind::Hide { reason, .. }
            | ModActionKind::Lockdown { reason, .. }
            | ModActionKind::Reject { reason, .. } => Some(reason),
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
        match &self.kind {
            ModActionKind::UpdateManifest { rules, policy, .. } => {
                check_len("rules", rules, MAX_RULES_BYTES)?;
                if policy.probation_posts > MAX_PROBATION_POSTS {
                    return Err(ValidationError::OutOfRange {
                        field: "probation posts",
                        value: policy.probation_posts.into(),
                        min: 0,
                        max: MAX_PROBATION_POSTS.into(),
                    });
                }
            }
            ModActionKind::ResolveReport { note, .. } => {
                if note.len() > MAX_REPORT_RECIPIENTS {
                    return Err(ValidationError::TooLarge {
                        field: "note recipients",
                        size: note.len(),
                        limit: MAX_REPORT_RECIPIENTS,
                    });
                }
                if let Some(big) = note
                    .iter()
                    .find(|c| c.ciphertext.len() > MAX_SEALED_NOTE_BYTES)
                {
                    return Err(ValidationError::TooLarge {
                        field: "sealed note",
                        size: big.ciphertext.len(),
                        limit: MAX_SEALED_NOTE_BYTES,
                    });
                }
            }
            ModActionKind::DescribeTopic { description, .. } => {
                check_len(
                    "topic description",
                    description,
                    MAX_TOPIC_DESCRIPTION_BYTES,
                )?;
            }
            ModActionKind::Invite { uses, .. } if *uses == 0 || *uses > MAX_INVITE_USES => {
                return Err(ValidationError::OutOfRange {
                    field: "invitation uses",
                    value: (*uses).into(),
                    min: 1,
                    max: MAX_INVITE_USES.into(),
                });
            }
            _ => {}
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
            ModActionKind::Redeem {
                invitation,
                invitation_signature,
            } => Some((
                *invitation,
                redemption_statement(&self.community, invitation, &self.signer),
                *invitation_signature,
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
