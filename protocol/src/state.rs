//! The moderation fold: the moderation state as a pure function of a set of
//! verified moderation actions. Every node that holds the same actions
//! computes the same state, whatever order they arrived in, so every node
//! deletes and refuses the same posts.
//!
//! Rules:
//! 0. Key succession (`Succeed`, any member): keys linked by effective
//!    successions are one *author*, named by its first key; which
//!    successions are effective depends on the successions alone
//!    ([`crate::lineage`]: a key is succeeded once, named once, cycles
//!    opened at their latest link). Everything below that is about a key
//!    is about its author: the admin is the author of the manifest's key
//!    (its later keys act as the admin, and nobody blocks them), an
//!    appointment or revocation of any key of an author is of the author,
//!    a block of any key covers all of them (so a blocked key's succession
//!    escapes nothing), and `seq` numbers are compared across the
//!    author's keys.
//! 1. The admin is fixed by the community manifest and is always a moderator.
//! 2. Role changes: `AppointCoAdmin` / `RemoveCoAdmin` count only when the
//!    admin signs them. A key is a *co-admin* at time `t` iff the latest
//!    (by order key `(created_at, signer, seq)`, then action id) of the
//!    admin's role changes for that key's author with `created_at <= t`
//!    (appoint, revoke, appoint co-admin, remove co-admin) is an
//!    `AppointCoAdmin`; these depend on the admin's actions alone.
//!    `AppointModerator` / `RevokeModerator` count when the admin signs
//!    them, or when a co-admin does and all of:
//!    - the signer was a co-admin at the action's `created_at`;
//!    - the target's author was neither the admin nor a co-admin then
//!      (co-admins cannot appoint or revoke each other: `CoAdminTarget`);
//!    - co-admin removal is final, as in rule 4: if the admin's first role
//!      change of the signer after `created_at` that is not an
//!      `AppointCoAdmin` ended that period, the action's `seq` is at most
//!      its `upto_seq` (a `RemoveCoAdmin`'s or a `RevokeModerator`'s; an
//!      `AppointModerator` of a co-admin counts none) and no other kept
//!      numbered action of the signer has the same `seq`.
//!
//!    Anything else is kept aside (`NotAdmin`, bounded like every pending
//!    action: a succession making the signer the admin's, or an
//!    appointment as co-admin, may come later).
//! 3. A key is a moderator at time `t` iff the latest (by order key) of the
//!    counting role changes for that key's author with `created_at <= t`
//!    is an appoint, an appoint as co-admin or a removal as co-admin (a
//!    removed co-admin stays a moderator).
//! 4. Any other action is effective iff its signer is the admin, or all of:
//!    - its signer was a moderator at the action's `created_at` (rule 3);
//!    - revocation is final: if a revocation ended that appointment (the
//!      signer's first revocation after `created_at`), the action's `seq`
//!      is at most the revocation's `upto_seq` (`None`: no action counts)
//!      and no other kept action of the signer has the same `seq`. A
//!      revoked moderator who dates a new action before their revocation
//!      must give it a number the admin did not count (it has no effect)
//!      or one already used (then neither counts: honest nodes never reuse
//!      a number, so two actions with one number prove a forged date, and
//!      which of the two is the forgery cannot be told);
//!    - a block or unblock of a key that was a moderator at the action's
//!      time counts only if the admin signed it (moderators cannot block
//!      each other);
//!    - a block or unblock of a key that was a co-admin at the action's
//!      time never counts, whoever signs it, the admin included
//!      (`CoAdminTarget`: nobody blocks a co-admin; the admin removes the
//!      co-admin first, then blocks).
//! 5. For each target — `(author, scope)` for block/unblock, the post for
//!    hide/unhide/reject, the post for pin/unpin — the effective action with the
//!    greatest order key `(created_at, signer, seq, action id)` wins (the id
//!    makes the order total).
//! 6. An author is blocked in topic `T` if the winner for
//!    `(author, Community)` is a block or the winner for
//!    `(author, Topic(T))` is a block.
//! 8. Membership and lockdowns ([`crate::membership`]): invitations,
//!    revocations of invitations and lockdowns count by rule 4 (the
//!    admin's or a moderator's in force); a `Redeem` is effective iff it
//!    admits its signer by the membership rules, and is kept aside
//!    otherwise (`RedemptionNoEffect`, bounded like every pending action).
//!    Every action of these kinds recomputes the membership.
//! 9. The admission policy that judges an item dated `t`
//!    ([`ModerationState::policy_at`]) is that of the winning (highest
//!    version) effective manifest update dated `<= t`; before every
//!    update, the earliest update's if it is dated at the community's
//!    creation (a community born invite-only), else
//!    [`CommunityPolicy::LEGACY`].
//! 7. Actions of another community are refused (`WrongCommunity`) and not
//!    kept, and so is any block or unblock of the manifest's admin key,
//!    whoever signs it (`AdminTarget`: nobody blocks the admin); one of a
//!    later key of the admin is kept aside (`AdminSuccessorTarget`) and
//!    never counts. Forged signatures never get here: only
//!    [`crate::Signed::verify`] makes a [`VerifiedModAction`] (a
//!    succession's co-signature by its new key included).
//!
//! Approvals (`Approve`) are judged like a hide and decide which posts
//! wait for approval ([`crate::probation`]); a `Reject` is a hide.
//!
//! Hides are not restricted by author: a hide names only a post id, and
//! whether that post is the admin's or a co-admin's cannot be told from the
//! actions (a node may not hold the post). A moderator can hide the
//! admin's post; the admin can unhide it (a later action wins) and revoke
//! the moderator.
//!
//! Every action that passes rule 7 is kept in the state, effective or
//! not: an appointment that arrives late (but is dated earlier) makes an
//! earlier-received action effective, and a late revocation or a second
//! action with the same number makes one ineffective. On a role change by
//! the admin or by a key the admin ever named in one (a possible
//! co-admin), a succession (or a reused number) the effects are recomputed from the
//! kept actions, so the incremental [`ModerationState::apply`] always gives exactly the
//! state [`ModerationState::fold`] gives over the same set.
//! Kept-but-ineffective actions ("pending") decide nothing: compare
//! [`ModerationState::decisions`] to ask whether two states decide the same.
//! All maps are `BTreeMap`s: nothing depends on hash iteration order.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::ids::{ActionId, CommunityId, PostId};
use crate::keys::PublicKey;
use crate::lineage::Lineage;
use crate::membership::{Invitation, LockdownInfo, Membership, RedemptionRefusal};
use crate::moderation::{Admission, CommunityPolicy, ModActionKind, Scope, VerifiedModAction};
use crate::probation::Approvals;
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
    /// Appoint/revoke by someone other than the admin (or a successor
    /// of the admin's key). Kept aside like `NotModerator`: a succession
    /// that makes the signer the admin's successor may arrive later.
    #[error("not the admin: only the community admin can appoint or revoke moderators, and {signer} is not the admin")]
    NotAdmin {
        /// The signer's key fingerprint.
        signer: String,
    },
    /// A block or unblock of a co-admin (rule 4), or a co-admin's
    /// appointment or revocation of the admin or of a co-admin (rule 2).
    /// Kept aside: a removal of the co-admin dated before it would make it
    /// count.
    #[error("nobody can block a co-admin, and co-admins cannot appoint or revoke each other: {author} was a co-admin (or the admin) at the action's time, so it has no effect")]
    CoAdminTarget {
        /// The target's key fingerprint.
        author: String,
    },
    /// A block or unblock of a later key of the admin (after the admin's
    /// key succession): nobody blocks the admin. Kept aside.
    #[error("nobody can block the admin: {author} is a key of the community admin, so a block or unblock of it has no effect")]
    AdminSuccessorTarget {
        /// The target's key fingerprint.
        author: String,
    },
    /// A key succession that links nothing: its old key was succeeded
    /// first, or its new key already follows another key (`lineage.rs`).
    /// Kept, as it may win once the succession it lost to is known.
    #[error("the key succession changes nothing: {signer} was already succeeded by another key, or the new key already follows another key")]
    SuccessionNoEffect {
        /// The signer's (old key's) fingerprint.
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
    /// A block or unblock of the admin, by anyone: nobody blocks the admin.
    /// Not kept.
    #[error("nobody can block the admin: a block or unblock of the community admin has no effect")]
    AdminTarget,
    /// Signed by a revoked moderator with a number the revocation did not
    /// count (rule 4, revocation is final): signed after the revocation,
    /// whatever its date.
    /// Kept aside like `NotModerator`.
    #[error("revoked: {signer}'s action number {seq} is not among the actions the admin counted when revoking them ({}), so it has no effect", counted(*.upto_seq))]
    Revoked {
        /// The signer's key fingerprint.
        signer: String,
        /// The action's `seq`.
        seq: u64,
        /// The revocation's `upto_seq`.
        upto_seq: Option<u64>,
    },
    /// A revoked moderator's action whose number another of their actions
    /// also has (rule 4, revocation is final): neither counts. Kept, as
    /// evidence.
    #[error("reused number: {signer} signed two different actions numbered {seq} and was then revoked; honest nodes never reuse a number, so neither action counts")]
    Equivocation {
        /// The signer's key fingerprint.
        signer: String,
        /// The number used twice.
        seq: u64,
    },
    /// A moderator blocking or unblocking another moderator (rule 4:
    /// moderators cannot block each other).
    /// Kept aside: a revocation dated before it would make it count.
    #[error("only the admin can block or unblock a moderator: {author} was a moderator at the action's time and {signer} is not the admin")]
    ModeratorTarget {
        /// The signer's key fingerprint.
        signer: String,
        /// The target's key fingerprint.
        author: String,
    },
    /// A redemption that admits nobody (rule 8): its invitation is not
    /// known (yet), expired, was revoked or used up before it, or a
    /// lockdown was in force. Kept aside: the invitation may arrive later,
    /// or an earlier redemption may lose its place.
    #[error("the redemption admits nobody: {signer}'s invitation is unknown here, expired, revoked, used up, or the community was in lockdown at its time")]
    RedemptionNoEffect {
        /// The signer's key fingerprint.
        signer: String,
    },
    /// Keeping this action would put more than [`MAX_PENDING`] actions
    /// aside. Not kept.
    #[error("too many actions are waiting to take effect; this one is not kept")]
    TooManyPending,
}

/// How [`ModerationError::Revoked`] names what the revocation counted.
fn counted(upto_seq: Option<u64>) -> String {
    match upto_seq {
        Some(n) => format!("numbers up to {n}"),
        None => "none of them".into(),
    }
}

/// Why a new action would change nothing, said to the person about to take
/// it: the node asks [`ModerationState::check_new`] before signing, so the
/// public log holds no empty actions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoEffect {
    /// Appoint/revoke by someone other than the admin or a co-admin, or
    /// a co-admin change by someone other than the admin.
    #[error("only the community admin (or, for moderators, a co-admin) can change who moderates")]
    NotAdmin,
    /// Naming a co-admin who already is one.
    #[error("already a co-admin (`mutual mod co-admin remove KEY` makes them a plain moderator)")]
    AlreadyCoAdmin,
    /// Removing a co-admin who is not one.
    #[error("not a co-admin, nothing to remove")]
    NotCoAdmin,
    /// Blocking or unblocking a co-admin.
    #[error("you cannot block a co-admin (the admin can remove them as co-admin first)")]
    CannotBlockCoAdmin,
    /// A co-admin revoking another co-admin.
    #[error("only the admin can revoke a co-admin")]
    CoAdminTarget,
    /// A block, hide or pin by someone who does not moderate now.
    #[error("you are not a moderator of this community")]
    NotModerator,
    /// Appointing or revoking the admin.
    #[error("the admin is always a moderator")]
    AdminIsAlwaysModerator,
    /// Appointing a current moderator.
    #[error("already a moderator")]
    AlreadyModerator,
    /// Revoking a key that does not moderate now.
    #[error("not a moderator, nothing to revoke")]
    NothingToRevoke,
    /// Blocking the admin.
    #[error("you cannot block the admin")]
    CannotBlockAdmin,
    /// Unblocking the admin.
    #[error("the admin is never blocked, nothing to unblock")]
    AdminNeverBlocked,
    /// A moderator blocking or unblocking a moderator.
    #[error("only the admin can block or unblock a moderator")]
    ModeratorTarget,
    /// The author is already blocked in exactly that scope.
    #[error("already blocked in {0}")]
    AlreadyBlocked(Scope),
    /// The author is not blocked in exactly that scope (a community block
    /// is lifted by a community unblock, not a topic one).
    #[error("not blocked in {0}")]
    NotBlocked(Scope),
    /// The post is already hidden.
    #[error("already hidden")]
    AlreadyHidden,
    /// The post is not hidden.
    #[error("not hidden")]
    NotHidden,
    /// The post is already approved.
    #[error("already approved")]
    AlreadyApproved,
    /// Approving a hidden or rejected post (it stays deleted).
    #[error("the post is hidden or rejected: show it again first (`mutual mod unhide`)")]
    HiddenNotApproved,
    /// The post is already pinned.
    #[error("already pinned")]
    AlreadyPinned,
    /// The post is not pinned.
    #[error("not pinned")]
    NotPinned,
    /// A succession of a key that was already succeeded.
    #[error("this key was already succeeded by another key: sign with that one")]
    AlreadySucceeded,
    /// A succession to a key that already belongs to an author's chain.
    #[error("the new key already belongs to an author's keys: make a fresh key")]
    SuccessorTaken,
    /// A succession is made with [`ModerationState::check_succession`],
    /// not as a moderation action.
    #[error("a key succession is made with `mutual id succeed`, not as a moderation action")]
    NotAModerationAction,
    /// Revoking an invitation the log does not hold.
    #[error("no such invitation (list them with `mutual invite --list`)")]
    UnknownInvitation,
    /// Revoking an invitation that is already revoked.
    #[error("that invitation is already revoked")]
    AlreadyRevoked,
    /// Lifting a lockdown that is not in force in that scope.
    #[error("no lockdown in force in {0}")]
    NotLockedDown(Scope),
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

/// The admin's newest rules and admission policy in force
/// ([`ModActionKind::UpdateManifest`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestUpdate {
    /// The update's version number.
    pub version: u64,
    /// The rules / welcome text in force.
    pub rules: String,
    /// Admission and probation in force.
    pub policy: CommunityPolicy,
    /// Who published it, when.
    pub decision: Decision,
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
    /// Whether a key succession linked or unlinked keys (mutes, pseudonyms
    /// and everything else resolved by author must be looked at again).
    pub authors_changed: bool,
    /// Whether the current co-admin set changed (the moderator list shows
    /// it; who may appoint moderators and who cannot be blocked changed).
    pub co_admins_changed: bool,
    /// Whether the rules or the admission policy in force changed.
    pub manifest_changed: bool,
    /// Whether the set of members changed (an admission, a displaced
    /// redemption, a block or unblock, an appointment): the node deletes
    /// the posts of keys that are no longer members and lets refused
    /// content come back by sync.
    pub members_changed: bool,
    /// Authors (root keys) who became members.
    pub members_joined: Vec<PublicKey>,
    /// Authors (root keys) who are no longer members.
    pub members_left: Vec<PublicKey>,
    /// Posts that became approved ([`crate::probation`]): shown to
    /// everyone from now on.
    pub newly_approved: Vec<PostId>,
    /// Posts whose approval lost its effect (its signer turned out to be
    /// revoked at that time).
    pub unapproved: Vec<PostId>,
    /// Authors (first keys) whose approvals that count changed: which of
    /// their posts are held may have changed.
    pub probation_changed: Vec<PublicKey>,
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
    /// Current moderators (not counting the admin; co-admins included).
    pub moderators: Vec<PublicKey>,
    /// Current co-admins.
    pub co_admins: Vec<PublicKey>,
    /// Blocks in force per target.
    pub blocks: BTreeMap<(PublicKey, Scope), BlockInfo>,
    /// Hidden posts.
    pub hidden: BTreeMap<PostId, HideInfo>,
    /// Pinned posts.
    pub pinned: BTreeMap<PostId, PinInfo>,
    /// Ids of the effective actions, in order (this also pins down the whole
    /// appointment history).
    pub log: Vec<ActionId>,
    /// Members now (authors, by root key).
    pub members: BTreeSet<PublicKey>,
    /// Lockdowns in force now.
    pub lockdowns: Vec<LockdownInfo>,
    /// Approved posts, with the author each counts for and when.
    pub approved: BTreeMap<PostId, (PublicKey, u64)>,
}

/// `(created_at, signer, seq, id)`: [`crate::ModAction::order_key`] made total.
pub(crate) type OrderKey = (u64, PublicKey, u64, ActionId);

fn order_key(a: &VerifiedModAction) -> OrderKey {
    (a.created_at, a.signer, a.seq, a.id())
}

/// The greatest order key with `created_at <= at_ms`.
fn upper_key(at_ms: u64) -> OrderKey {
    (at_ms, PublicKey([0xff; 32]), u64::MAX, ActionId([0xff; 32]))
}

/// One admin decision about a key's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Appointed,
    /// Revoked, counting the key's actions up to this number.
    Revoked {
        upto_seq: Option<u64>,
    },
    /// Appointed co-admin (a moderator too).
    CoAdmin,
    /// No longer co-admin (still a moderator), counting the key's
    /// co-admin actions up to this number.
    Demoted {
        upto_seq: Option<u64>,
    },
}

impl Role {
    /// Whether the key moderates under this role (rule 3).
    fn moderates(self) -> bool {
        !matches!(self, Role::Revoked { .. })
    }

    /// What a change to this role counts of an ended co-admin period.
    fn co_admin_upto(self) -> Option<Option<u64>> {
        match self {
            Role::CoAdmin => None,
            Role::Appointed => Some(None),
            Role::Revoked { upto_seq } | Role::Demoted { upto_seq } => Some(upto_seq),
        }
    }
}

/// The key an appoint or revoke is about, and the decision.
fn role_change(kind: &ModActionKind) -> Option<(PublicKey, Role)> {
    match kind {
        ModActionKind::AppointModerator { key } => Some((*key, Role::Appointed)),
        ModActionKind::RevokeModerator { key, upto_seq } => Some((
            *key,
            Role::Revoked {
                upto_seq: *upto_seq,
            },
        )),
        ModActionKind::AppointCoAdmin { key } => Some((*key, Role::CoAdmin)),
        ModActionKind::RemoveCoAdmin { key, upto_seq } => Some((
            *key,
            Role::Demoted {
                upto_seq: *upto_seq,
            },
        )),
        _ => None,
    }
}

/// The author a block or unblock is about.
fn block_author(kind: &ModActionKind) -> Option<&PublicKey> {
    match kind {
        ModActionKind::Block { author, .. } | ModActionKind::Unblock { author, .. } => Some(author),
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
    /// Appoint/revoke history per named key, by order key, whoever
    /// signed it (kept as signed; only the admin's count).
    roles: BTreeMap<PublicKey, BTreeMap<OrderKey, Role>>,
    /// Derived: the admin's role changes per author (root key of the
    /// named key's chain), rebuilt by every recompute: who is a co-admin.
    admin_roles: BTreeMap<PublicKey, BTreeMap<OrderKey, Role>>,
    /// Derived: the counting role changes per author (the admin's and the
    /// co-admins' that count, rule 2), rebuilt by every recompute: who
    /// moderates.
    author_roles: BTreeMap<PublicKey, BTreeMap<OrderKey, Role>>,
    /// The kept key successions and the chains they make.
    lineage: Lineage,
    /// The kept actions of each `(signer, seq)` (more than one: a reused
    /// number, rule 4).
    seqs: BTreeMap<(PublicKey, u64), BTreeSet<ActionId>>,
    blocks: BTreeMap<(PublicKey, Scope), Winner>,
    hidden: BTreeMap<PostId, Winner>,
    pins: BTreeMap<PostId, Winner>,
    /// Derived: the winning manifest update (rules and policy), if any.
    manifest: Option<ManifestUpdate>,
    /// Derived: every effective manifest update's time, rank (version,
    /// order key) and policy (rule 9).
    policies: Vec<(u64, (u64, OrderKey), CommunityPolicy)>,
    /// Derived: invitations, admissions and lockdowns (rule 8).
    membership: Membership,
    /// The community manifest's `created_at`, if the node told it
    /// ([`ModerationState::born_at`]): rule 9.
    born_at: Option<u64>,
    /// Derived: the effective approvals ([`crate::probation`]).
    pub(crate) probation: Approvals,
    /// How many kept actions are pending (see [`MAX_PENDING`]).
    pending_len: usize,
}

/// Most pending actions [`ModerationState::apply`] keeps. Anyone can sign
/// an action, so without a bound a member's junk would grow every node's
/// memory; past it a not-yet-effective action is refused without being
/// kept, and a late appointment makes it effective only when log sync
/// offers it again (peers that saw the appointment first keep it in their
/// logs); likewise a revoked moderator's reused number refused past the
/// bound voids its twin only when sync offers it again. Appointments
/// arrive before their moderators' actions in any normal order, so honest
/// actions almost never wait here.
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
            admin_roles: BTreeMap::new(),
            author_roles: BTreeMap::new(),
            lineage: Lineage::default(),
            seqs: BTreeMap::new(),
            blocks: BTreeMap::new(),
            hidden: BTreeMap::new(),
            pins: BTreeMap::new(),
            manifest: None,
            policies: Vec::new(),
            membership: Membership::default(),
            born_at: None,
            probation: Approvals::default(),
            pending_len: 0,
        }
    }

    /// Tells the state when the community was created (the manifest's
    /// `created_at`): a manifest update dated then sets the policy of the
    /// community's whole past (rule 9). Recomputes nothing else.
    pub fn born_at(mut self, created_at: u64) -> Self {
        self.born_at = Some(created_at);
        self
    }

    /// Folds a set of actions (at start-up, from the stored log). The order
    /// of `actions` does not matter and duplicates count once; actions that
    /// [`apply`](Self::apply) would refuse with `WrongCommunity`,
    /// `NotAdmin` or `AdminTarget` are skipped.
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
        if block_author(&a.kind) == Some(&self.admin) {
            return Err(ModerationError::AdminTarget);
        }
        if let Some((target, role)) = role_change(&a.kind) {
            self.roles.entry(target).or_default().insert(key, role);
        }
        if let Some(new) = a.kind.successor() {
            self.lineage.insert(a.signer, *new, a.created_at, id);
        }
        self.seqs.entry((a.signer, a.seq)).or_default().insert(id);
        self.ids.insert(id, key);
        self.actions.insert(key, a.clone());
        Ok(())
    }

    /// The refusals of [`admit`](Self::admit), without keeping anything.
    fn refusal(&self, a: &VerifiedModAction) -> Option<ModerationError> {
        if a.community != self.community {
            return Some(ModerationError::WrongCommunity {
                expected: self.community.short(),
                found: a.community.short(),
            });
        }
        if self.ids.contains_key(&a.id()) {
            return Some(ModerationError::Duplicate);
        }
        if block_author(&a.kind) == Some(&self.admin) {
            return Some(ModerationError::AdminTarget);
        }
        None
    }

    /// Applies one action as it arrives. The resulting state equals
    /// [`fold`](Self::fold) over every action applied so far, in any order.
    ///
    /// `Ok` with what changed when the action counts, or when it does not
    /// but voids another (a revoked moderator's reused number voids the
    /// other action with it, possibly with nothing else changed: store and
    /// relay it all the same, so that every node voids both).
    ///
    /// `Err(NotModerator | Revoked | Equivocation | ModeratorTarget)`
    /// changes no decision; the action is kept as pending (up to
    /// [`MAX_PENDING`]) so that a later appoint/revoke dated before it
    /// decides it exactly as the fold would. The other errors leave the
    /// state untouched.
    pub fn apply(&mut self, a: &VerifiedModAction) -> Result<Applied, ModerationError> {
        let members = self.members();
        let mut applied = if is_membership_kind(&a.kind) {
            self.apply_membership(a)?
        } else {
            self.apply_roles_and_effects(a)?
        };
        let now = self.members();
        applied.members_joined = now.difference(&members).copied().collect();
        applied.members_left = members.difference(&now).copied().collect();
        applied.members_changed = members != now;
        Ok(applied)
    }

    /// An invitation, a revocation of one, a redemption or a lockdown:
    /// whom it admits depends on every other such action, so membership is
    /// recomputed (rule 8).
    fn apply_membership(&mut self, a: &VerifiedModAction) -> Result<Applied, ModerationError> {
        if let Some(refusal) = self.refusal(a) {
            return Err(refusal);
        }
        let decided = self.decisions();
        let before = self.targets_in_force();
        let moderators = self.current_moderators();
        let co_admins = self.co_admins();
        let manifest = self.manifest.clone();
        let approvals = self.probation.clone();
        let pending = self.pending_len;
        self.admit(a)?;
        self.recompute();
        if self.pending_len > pending && self.pending_len > MAX_PENDING {
            self.forget(a);
            self.recompute();
            return Err(ModerationError::TooManyPending);
        }
        let mut applied = diff(&before, &self.targets_in_force());
        // A recompute re-judges every kept approval, so a lockdown can end
        // an approval's count (or restore one): report it like any change.
        self.probation.diff_into(&approvals, &mut applied);
        applied.moderators_changed = moderators != self.current_moderators();
        applied.co_admins_changed = co_admins != self.co_admins();
        applied.manifest_changed = manifest != self.manifest;
        if let Err(reason) = self.verdict(a) {
            if decided == self.decisions() {
                return Err(reason);
            }
        }
        Ok(applied)
    }

    /// Undoes [`admit`](Self::admit) of an action that touches neither
    /// roles nor successions; the caller recomputes.
    fn forget(&mut self, a: &VerifiedModAction) {
        let id = a.id();
        if let Some(key) = self.ids.remove(&id) {
            self.actions.remove(&key);
        }
        if let Some(ids) = self.seqs.get_mut(&(a.signer, a.seq)) {
            ids.remove(&id);
            if ids.is_empty() {
                self.seqs.remove(&(a.signer, a.seq));
            }
        }
    }

    /// [`apply`](Self::apply) of every kind but the membership kinds.
    fn apply_roles_and_effects(
        &mut self,
        a: &VerifiedModAction,
    ) -> Result<Applied, ModerationError> {
        if let Some(refusal) = self.refusal(a) {
            return Err(refusal);
        }
        let relinks = a.kind.successor().is_some();
        // A role change by the admin, or by a key the admin ever named in
        // one (a possible co-admin: whether it counts is only known after
        // a recompute), can change who moderates.
        let role_path = a.kind.admin_only()
            && (self.is_admin(&a.signer)
                || self.admin_roles.contains_key(&self.lineage.root(&a.signer)));
        if relinks || role_path {
            let moderators = self.current_moderators();
            let co_admins = self.co_admins();
            let links = self.lineage.effective().clone();
            // A succession that links nothing may still void an action
            // with its number (rule 4): then it is not refused.
            // So may a co-admin's that does not count (a reused number).
            let decided = (relinks || !self.is_admin(&a.signer)).then(|| self.decisions());
            let before = self.targets_in_force();
            let manifest = self.manifest.clone();
            let approvals = self.probation.clone();
            self.admit(a)?;
            self.recompute();
            let mut applied = diff(&before, &self.targets_in_force());
            self.probation.diff_into(&approvals, &mut applied);
            applied.manifest_changed = manifest != self.manifest;
            applied.moderators_changed = moderators != self.current_moderators();
            applied.authors_changed = links != *self.lineage.effective();
            applied.co_admins_changed = co_admins != self.co_admins();
            if relinks && !applied.authors_changed && decided == Some(self.decisions()) {
                return Err(ModerationError::SuccessionNoEffect {
                    signer: a.signer.short(),
                });
            }
            if !relinks {
                if let Err(reason) = self.verdict(a) {
                    if decided == Some(self.decisions()) {
                        return Err(reason);
                    }
                }
            }
            return Ok(applied);
        }
        let verdict = self.verdict(a);
        if let Err(reason) = &verdict {
            if self.pending_len >= MAX_PENDING {
                return Err(reason.clone());
            }
        }
        // A number the signer used before can void the actions that have
        // it (rule 4, revocation is final): only a recompute knows what that
        // changes. Keys never appointed (and the admin) are never judged
        // by number.
        let twins = if !self.is_admin(&a.signer)
            && self
                .author_roles
                .contains_key(&self.lineage.root(&a.signer))
        {
            self.twins(a)
        } else {
            Vec::new()
        };
        if !twins.is_empty() {
            let counted: Vec<bool> = twins.iter().map(|k| self.is_effective_key(k)).collect();
            let before = self.targets_in_force();
            // A voided twin may be a co-admin's appointment.
            let moderators = self.current_moderators();
            let manifest = self.manifest.clone();
            let approvals = self.probation.clone();
            self.admit(a)?;
            self.recompute();
            let mut applied = diff(&before, &self.targets_in_force());
            self.probation.diff_into(&approvals, &mut applied);
            applied.moderators_changed = moderators != self.current_moderators();
            applied.manifest_changed = manifest != self.manifest;
            let voided = twins
                .iter()
                .zip(counted)
                .any(|(k, was)| was && !self.is_effective_key(k));
            return match verdict {
                Err(reason) if !voided => Err(reason),
                _ => Ok(applied),
            };
        }
        self.admit(a)?;
        if let Err(reason) = verdict {
            self.pending_len += 1;
            return Err(reason);
        }
        if let ModActionKind::UpdateManifest { .. } = a.kind {
            let before = self.manifest.clone();
            self.recompute_manifest();
            return Ok(Applied {
                manifest_changed: before != self.manifest,
                ..Applied::default()
            });
        }
        if let ModActionKind::Approve { post, author } = &a.kind {
            return Ok(self.apply_approval(*post, order_key(a), *author));
        }
        let Some(target) = target_of(&a.kind) else {
            return Ok(Applied::default());
        };
        let was = self.in_force(&target);
        // A hide, unhide or rejection of an approved post may change what
        // counts toward its author's probation.
        let approvals = match &target {
            Target::Hide(post) if self.probation.contains(post) => Some(self.probation.clone()),
            _ => None,
        };
        self.apply_effect(a);
        let now = self.in_force(&target);
        let mut applied = Applied::default();
        if let Some(approvals) = approvals {
            self.recount_approvals();
            self.probation.diff_into(&approvals, &mut applied);
        }
        let every_key = |author: &PublicKey, scope: &Scope| -> Vec<(PublicKey, Scope)> {
            let mut keys: Vec<(PublicKey, Scope)> = self
                .lineage
                .keys_of(author)
                .into_iter()
                .map(|k| (k, scope.clone()))
                .collect();
            keys.sort();
            keys
        };
        match (target, was, now) {
            (Target::Block(author, scope), false, true) => {
                applied.newly_blocked = every_key(&author, &scope)
            }
            (Target::Block(author, scope), true, false) => {
                applied.unblocked = every_key(&author, &scope)
            }
            (Target::Hide(post), false, true) => applied.newly_hidden.push(post),
            (Target::Hide(post), true, false) => applied.unhidden.push(post),
            (Target::Pin(post), false, true) => applied.newly_pinned.push(post),
            (Target::Pin(post), true, false) => applied.unpinned.push(post),
            _ => {}
        }
        Ok(applied)
    }

    /// Whether a new action by `signer` would change anything, judged on
    /// the current state (the node dates it now, after every action it
    /// holds: see [`latest_on_target`](Self::latest_on_target)). The node
    /// calls it before signing, so no action that changes nothing is ever
    /// signed and published. The `upto_seq` of a revocation is not judged.
    /// Stricter than the fold in one case: a `RemoveCoAdmin` of a key that
    /// is not a co-admin is refused (in the fold it would make the key a
    /// moderator; that is what `AppointModerator` is for), and so is an
    /// `AppointModerator` of a co-admin (it would end the co-admin period
    /// counting none of its actions; `RemoveCoAdmin` counts them).
    pub fn check_new(&self, signer: &PublicKey, kind: &ModActionKind) -> Result<(), NoEffect> {
        if let ModActionKind::Succeed { .. } | ModActionKind::Redeem { .. } = kind {
            return Err(NoEffect::NotAModerationAction);
        }
        if kind.admin_alone() && !self.is_admin(signer) {
            return Err(NoEffect::NotAdmin);
        }
        if kind.admin_only() {
            let co_admin_may = !kind.is_co_admin_change() && self.is_co_admin(signer);
            if !self.is_admin(signer) && !co_admin_may {
                return Err(NoEffect::NotAdmin);
            }
        } else if !self.is_current_moderator(signer) {
            return Err(NoEffect::NotModerator);
        }
        let moderates = |key: &PublicKey| !self.is_admin(key) && self.is_current_moderator(key);
        match kind {
            ModActionKind::AppointModerator { key }
            | ModActionKind::RevokeModerator { key, .. }
            | ModActionKind::AppointCoAdmin { key }
            | ModActionKind::RemoveCoAdmin { key, .. }
                if self.is_admin(key) =>
            {
                Err(NoEffect::AdminIsAlwaysModerator)
            }
            ModActionKind::AppointModerator { key } | ModActionKind::AppointCoAdmin { key }
                if self.is_co_admin(key) =>
            {
                Err(NoEffect::AlreadyCoAdmin)
            }
            ModActionKind::RevokeModerator { key, .. }
                if !self.is_admin(signer) && self.is_co_admin(key) =>
            {
                Err(NoEffect::CoAdminTarget)
            }
            ModActionKind::RemoveCoAdmin { key, .. } if !self.is_co_admin(key) => {
                Err(NoEffect::NotCoAdmin)
            }
            ModActionKind::Block { author, .. } | ModActionKind::Unblock { author, .. }
                if self.is_co_admin(author) =>
            {
                Err(NoEffect::CannotBlockCoAdmin)
            }
            ModActionKind::AppointModerator { key } if moderates(key) => {
                Err(NoEffect::AlreadyModerator)
            }
            ModActionKind::RevokeModerator { key, .. } if !moderates(key) => {
                Err(NoEffect::NothingToRevoke)
            }
            ModActionKind::Block { author, .. } if self.is_admin(author) => {
                Err(NoEffect::CannotBlockAdmin)
            }
            ModActionKind::Unblock { author, .. } if self.is_admin(author) => {
                Err(NoEffect::AdminNeverBlocked)
            }
            ModActionKind::Block { author, .. } | ModActionKind::Unblock { author, .. }
                if !self.is_admin(signer) && moderates(author) =>
            {
                Err(NoEffect::ModeratorTarget)
            }
            ModActionKind::Block { author, scope, .. } if self.block(author, scope).is_some() => {
                Err(NoEffect::AlreadyBlocked(scope.clone()))
            }
            ModActionKind::Unblock { author, scope } if self.block(author, scope).is_none() => {
                Err(NoEffect::NotBlocked(scope.clone()))
            }
            ModActionKind::Hide { post, .. } if self.hidden(post).is_some() => {
                Err(NoEffect::AlreadyHidden)
            }
            ModActionKind::Unhide { post } if self.hidden(post).is_none() => {
                Err(NoEffect::NotHidden)
            }
            ModActionKind::Approve { post, .. } if self.is_approved(post) => {
                Err(NoEffect::AlreadyApproved)
            }
            ModActionKind::Approve { post, .. } if self.hidden(post).is_some() => {
                Err(NoEffect::HiddenNotApproved)
            }
            ModActionKind::Reject { post, .. } if self.hidden(post).is_some() => {
                Err(NoEffect::AlreadyHidden)
            }
            ModActionKind::Pin { post } if self.is_pinned(post) => Err(NoEffect::AlreadyPinned),
            ModActionKind::Unpin { post } if !self.is_pinned(post) => Err(NoEffect::NotPinned),
            ModActionKind::RevokeInvite { invitation } => match self.invitation(invitation) {
                None => Err(NoEffect::UnknownInvitation),
                Some(i) if i.revoked_at.is_some() => Err(NoEffect::AlreadyRevoked),
                Some(_) => Ok(()),
            },
            ModActionKind::LiftLockdown { scope } if self.lockdown(scope).is_none() => {
                Err(NoEffect::NotLockedDown(scope.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Whether a succession of `old` by `new` would link them, judged on
    /// the current state: the node asks before signing one. Stricter than
    /// the fold: a `new` that is the first key of a chain would link (two
    /// authors merged, both keys having signed), but a node only ever names
    /// a fresh key, so it is refused here.
    pub fn check_succession(&self, old: &PublicKey, new: &PublicKey) -> Result<(), NoEffect> {
        if self.lineage.is_succeeded(old) {
            return Err(NoEffect::AlreadySucceeded);
        }
        if self.lineage.in_chain(new) || old == new {
            return Err(NoEffect::SuccessorTaken);
        }
        Ok(())
    }

    /// The key successions kept and the chains of keys they make.
    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// Whether `key` is the admin's (the manifest's key or a later key of
    /// the admin's by succession).
    pub fn is_admin(&self, key: &PublicKey) -> bool {
        self.lineage.same(key, &self.admin)
    }

    /// The `created_at` of the action that decides the target of `kind` now
    /// (for appoint/revoke: of the latest role change of that key), if
    /// any. A new action on that target must be dated strictly after it to
    /// win: the node signs it at `max(now, latest + 1)`.
    pub fn latest_on_target(&self, kind: &ModActionKind) -> Option<u64> {
        if let ModActionKind::Lockdown { scope, .. } | ModActionKind::LiftLockdown { scope } = kind
        {
            return self.membership.latest_lockdown(scope);
        }
        if let Some((key, _)) = role_change(kind) {
            return self
                .author_roles
                .get(&self.lineage.root(&key))
                .and_then(|history| history.keys().next_back())
                .map(|order| order.0);
        }
        let winner = match target_of(kind)? {
            Target::Block(author, scope) => self.blocks.get(&(self.lineage.root(&author), scope)),
            Target::Hide(post) => self.hidden.get(&post),
            Target::Pin(post) => self.pins.get(&post),
        };
        winner.map(|w| w.order.0)
    }

    /// The highest `seq` of `key`'s kept actions (effective or pending):
    /// what the admin's node puts in `RevokeModerator::upto_seq`.
    /// All of the author's keys count: `seq` keeps increasing across a
    /// succession (the node's counter is per data directory).
    pub fn highest_seq(&self, key: &PublicKey) -> Option<u64> {
        self.lineage
            .keys_of(key)
            .iter()
            .filter_map(|k| {
                self.seqs
                    .range((*k, 0)..=(*k, u64::MAX))
                    .next_back()
                    .map(|((_, seq), _)| *seq)
            })
            .max()
    }

    /// Whether `key` moderates at time `at_ms` (the admin always does).
    pub fn is_moderator(&self, key: &PublicKey, at_ms: u64) -> bool {
        self.is_admin(key) || self.appointed_at(key, at_ms)
    }

    /// Rule 3 alone, without the admin shortcut, for `key`'s author.
    fn appointed_at(&self, key: &PublicKey, at_ms: u64) -> bool {
        let author = self.lineage.root(key);
        self.author_roles.get(&author).is_some_and(|history| {
            history
                .range(..=upper_key(at_ms))
                .next_back()
                .is_some_and(|(_, role)| role.moderates())
        })
    }

    /// Rule 2: whether `key`'s author is a co-admin at `at_ms`, by the
    /// admin's decisions alone.
    fn co_admin_at(&self, key: &PublicKey, at_ms: u64) -> bool {
        let author = self.lineage.root(key);
        !self.is_admin(&author)
            && self.admin_roles.get(&author).is_some_and(|history| {
                history
                    .range(..=upper_key(at_ms))
                    .next_back()
                    .is_some_and(|(_, role)| *role == Role::CoAdmin)
            })
    }

    /// What the admin's change that ended `key`'s co-admin period covering
    /// `at_ms` counts (rule 2), or `None` if none has ended it.
    fn co_admin_end_after(&self, key: &PublicKey, at_ms: u64) -> Option<Option<u64>> {
        let author = self.lineage.root(key);
        self.admin_roles.get(&author).and_then(|history| {
            history
                .range((Bound::Excluded(upper_key(at_ms)), Bound::Unbounded))
                .find_map(|(_, role)| role.co_admin_upto())
        })
    }

    /// Rule 2 for an appoint/revoke of a moderator not signed by the admin.
    fn co_admin_verdict(&self, a: &VerifiedModAction) -> Result<(), ModerationError> {
        let at = a.created_at;
        if a.kind.is_co_admin_change() || !self.co_admin_at(&a.signer, at) {
            return Err(ModerationError::NotAdmin {
                signer: a.signer.short(),
            });
        }
        if let Some((target, _)) = role_change(&a.kind) {
            if self.is_admin(&target) || self.co_admin_at(&target, at) {
                return Err(ModerationError::CoAdminTarget {
                    author: target.short(),
                });
            }
        }
        self.counted_before_end(a, self.co_admin_end_after(&a.signer, at))?;
        Ok(())
    }

    /// Rule 4 for an action dated in a role period that `end` ended (the
    /// `upto_seq` of the revocation or removal that ended it, `None` if
    /// it has not ended): only the signer's actions numbered up to it
    /// count, and a reused number counts for neither action.
    fn counted_before_end(
        &self,
        a: &VerifiedModAction,
        end: Option<Option<u64>>,
    ) -> Result<(), ModerationError> {
        let Some(upto_seq) = end else {
            return Ok(());
        };
        if upto_seq.is_none_or(|upto| a.seq > upto) {
            return Err(ModerationError::Revoked {
                signer: a.signer.short(),
                seq: a.seq,
                upto_seq,
            });
        }
        if !self.twins(a).is_empty() {
            return Err(ModerationError::Equivocation {
                signer: a.signer.short(),
                seq: a.seq,
            });
        }
        Ok(())
    }

    /// Whether `key` is a co-admin now.
    pub fn is_co_admin(&self, key: &PublicKey) -> bool {
        self.co_admin_at(key, u64::MAX)
    }

    /// Current co-admins, each by the current key of its author.
    pub fn co_admins(&self) -> Vec<PublicKey> {
        let mut out: Vec<PublicKey> = self
            .admin_roles
            .keys()
            .filter(|k| self.co_admin_at(k, u64::MAX))
            .map(|k| self.lineage.current(k))
            .collect();
        out.sort();
        out
    }

    /// The `upto_seq` of the revocation that ended `key`'s appointment
    /// covering `at_ms` (the first revocation after it; only appointments
    /// come between), or `None` if no revocation has ended it.
    fn revocation_after(&self, key: &PublicKey, at_ms: u64) -> Option<Option<u64>> {
        let author = self.lineage.root(key);
        self.author_roles.get(&author).and_then(|history| {
            history
                .range((Bound::Excluded(upper_key(at_ms)), Bound::Unbounded))
                .find_map(|(_, role)| match role {
                    Role::Revoked { upto_seq } => Some(*upto_seq),
                    Role::Appointed | Role::CoAdmin | Role::Demoted { .. } => None,
                })
        })
    }

    /// The kept actions other than `a` with `a`'s author (any of its keys)
    /// and `seq`. An appoint/revoke by someone who is not the admin is not
    /// judged by number: it never counts, so it voids nothing.
    fn twins(&self, a: &VerifiedModAction) -> Vec<OrderKey> {
        if !self.numbered(a) {
            return Vec::new();
        }
        let id = a.id();
        self.lineage
            .keys_of(&a.signer)
            .iter()
            .filter_map(|k| self.seqs.get(&(*k, a.seq)))
            .flatten()
            .filter(|other| **other != id)
            .filter_map(|other| self.ids.get(other).copied())
            .filter(|key| self.actions.get(key).is_some_and(|b| self.numbered(b)))
            .collect()
    }

    /// Whether an action's `seq` is judged against its author's others
    /// (rule 4): not a role change by someone who is neither the admin nor,
    /// for moderators, a co-admin at its time.
    fn numbered(&self, a: &VerifiedModAction) -> bool {
        !a.kind.admin_only()
            || self.is_admin(&a.signer)
            || (!a.kind.is_co_admin_change() && self.co_admin_at(&a.signer, a.created_at))
    }

    /// Whether the kept action with this order key is effective.
    fn is_effective_key(&self, key: &OrderKey) -> bool {
        self.actions.get(key).is_some_and(|a| self.is_effective(a))
    }

    /// Rule 4: whether a non-refused action counts, and if not, why.
    fn verdict(&self, a: &VerifiedModAction) -> Result<(), ModerationError> {
        match &a.kind {
            // The admin's alone, with any key of the admin's chain.
            ModActionKind::UpdateManifest { .. } => {
                return if self.is_admin(&a.signer) {
                    Ok(())
                } else {
                    Err(ModerationError::NotAdmin {
                        signer: a.signer.short(),
                    })
                };
            }
            // Any key may claim membership; whether the claim admits it is
            // decided by the membership rules (rule 8), not by roles.
            ModActionKind::Redeem { .. } => {
                return if self.membership.admits(&a.id()) {
                    Ok(())
                } else {
                    Err(ModerationError::RedemptionNoEffect {
                        signer: a.signer.short(),
                    })
                };
            }
            _ => {}
        }
        if a.kind.successor().is_some() {
            return if self.lineage.is_effective(&a.id()) {
                Ok(())
            } else {
                Err(ModerationError::SuccessionNoEffect {
                    signer: a.signer.short(),
                })
            };
        }
        if let Some(author) = block_author(&a.kind) {
            if self.is_admin(author) {
                return Err(ModerationError::AdminSuccessorTarget {
                    author: author.short(),
                });
            }
            if self.co_admin_at(author, a.created_at) {
                return Err(ModerationError::CoAdminTarget {
                    author: author.short(),
                });
            }
        }
        if a.kind.admin_only() && !self.is_admin(&a.signer) {
            return self.co_admin_verdict(a);
        }
        if a.kind.admin_only() || self.is_admin(&a.signer) {
            return Ok(());
        }
        let at = a.created_at;
        if !self.appointed_at(&a.signer, at) {
            return Err(ModerationError::NotModerator {
                signer: a.signer.short(),
                at_ms: at,
            });
        }
        self.counted_before_end(a, self.revocation_after(&a.signer, at))?;
        if let Some(author) = block_author(&a.kind) {
            if self.appointed_at(author, at) {
                return Err(ModerationError::ModeratorTarget {
                    signer: a.signer.short(),
                    author: author.short(),
                });
            }
        }
        Ok(())
    }

    /// Whether the admin's latest decision about `key` is an appointment.
    fn is_current_moderator(&self, key: &PublicKey) -> bool {
        self.is_moderator(key, u64::MAX)
    }

    /// Whether a kept action is effective (rule 4; admin actions always are).
    fn is_effective(&self, a: &VerifiedModAction) -> bool {
        self.verdict(a).is_ok()
    }

    /// Rebuilds every target's winner from the kept actions.
    /// Rebuilds the chains of keys, the admin's role decisions per author
    /// and every target's winner from the kept actions.
    fn recompute(&mut self) {
        self.lineage.relink();
        self.admin_roles.clear();
        let mut others: Vec<(PublicKey, OrderKey, Role)> = Vec::new();
        for (target, history) in &self.roles {
            for (order, role) in history {
                // The admin's decisions always count (rule 2), signed with
                // any of the admin's keys; a co-admin's are judged below,
                // on the admin's alone.
                if self.lineage.same(&order.1, &self.admin) {
                    self.admin_roles
                        .entry(self.lineage.root(target))
                        .or_default()
                        .insert(*order, *role);
                } else {
                    others.push((*target, *order, *role));
                }
            }
        }
        self.author_roles = self.admin_roles.clone();
        for (target, order, role) in others {
            let counts = self
                .actions
                .get(&order)
                .is_some_and(|a| self.co_admin_verdict(a).is_ok());
            if counts {
                self.author_roles
                    .entry(self.lineage.root(&target))
                    .or_default()
                    .insert(order, role);
            }
        }
        let membership = Membership::compute(
            self.actions.values(),
            |a| self.is_effective(a),
            |k| self.lineage.root(k),
        );
        self.membership = membership;
        self.blocks.clear();
        self.hidden.clear();
        self.pins.clear();
        let effective: Vec<VerifiedModAction> = self
            .actions
            .values()
            .filter(|a| target_of(&a.kind).is_some() && self.is_effective(a))
            .cloned()
            .collect();
        for a in &effective {
            self.apply_effect(a);
        }
        self.recompute_manifest();
        self.rebuild_approvals();
        self.pending_len = self
            .actions
            .values()
            .filter(|a| a.kind.successor().is_none() && !self.is_effective(a))
            .count();
    }

    /// The effective manifest update with the highest version (ties: the
    /// later order key) wins.
    fn recompute_manifest(&mut self) {
        self.policies = self
            .actions
            .iter()
            .filter_map(|(order, a)| match &a.kind {
                ModActionKind::UpdateManifest {
                    version, policy, ..
                } if self.is_effective(a) => Some((a.created_at, (*version, *order), *policy)),
                _ => None,
            })
            .collect();
        let winner = self
            .actions
            .iter()
            .filter(|(_, a)| matches!(a.kind, ModActionKind::UpdateManifest { .. }))
            .filter(|(_, a)| self.is_effective(a))
            .filter_map(|(order, a)| match &a.kind {
                ModActionKind::UpdateManifest {
                    version,
                    rules,
                    policy,
                } => Some(((*version, *order), a, rules, policy)),
                _ => None,
            })
            .max_by(|x, y| x.0.cmp(&y.0));
        self.manifest = winner.map(|((version, _), a, rules, policy)| ManifestUpdate {
            version,
            rules: rules.clone(),
            policy: *policy,
            decision: Decision {
                by: a.signer,
                by_name: a.signer_name.clone(),
                reason: String::new(),
                at: a.created_at,
                action: a.id(),
            },
        });
    }

    /// The admission policy in force: the admin's newest manifest update's,
    /// or [`CommunityPolicy::LEGACY`] when there is none.
    pub fn policy(&self) -> CommunityPolicy {
        self.manifest
            .as_ref()
            .map_or(CommunityPolicy::LEGACY, |m| m.policy)
    }

    /// The admin's newest manifest update in force, if any (its rules
    /// replace the signed manifest's).
    pub fn manifest_update(&self) -> Option<&ManifestUpdate> {
        self.manifest.as_ref()
    }

    /// The highest manifest version kept (effective or not), so the admin's
    /// node numbers the next update above it.
    pub fn latest_manifest_version(&self) -> Option<u64> {
        self.actions
            .values()
            .filter_map(|a| match a.kind {
                ModActionKind::UpdateManifest { version, .. } => Some(version),
                _ => None,
            })
            .max()
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
                (self.lineage.root(author), scope.clone()),
                order,
                Some(decision(reason)),
            ),
            ModActionKind::Unblock { author, scope } => upsert(
                &mut self.blocks,
                (self.lineage.root(author), scope.clone()),
                order,
                None,
            ),
            ModActionKind::Hide { post, reason } | ModActionKind::Reject { post, reason } => {
                upsert(&mut self.hidden, *post, order, Some(decision(reason)))
            }
            ModActionKind::Unhide { post } => upsert(&mut self.hidden, *post, order, None),
            ModActionKind::Pin { post } => upsert(&mut self.pins, *post, order, Some(decision(""))),
            ModActionKind::Unpin { post } => upsert(&mut self.pins, *post, order, None),
            // Only kinds with a target reach here; `target_of` is the one
            // exhaustive list of which kinds have one.
            _ => {}
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

    /// Why the kept action with this id has no effect now; `None` when it
    /// is effective or not kept. A node asks when a copy of a kept action
    /// arrives again.
    pub fn why_not_effective(&self, id: &ActionId) -> Option<ModerationError> {
        let key = self.ids.get(id)?;
        self.actions.get(key).and_then(|a| self.verdict(a).err())
    }

    /// Whether the action with this id is kept (effective or pending).
    pub fn contains(&self, id: &ActionId) -> bool {
        self.ids.contains_key(id)
    }

    /// Moderators at time `at_ms` (not counting the admin), each by the
    /// current key of their author (the last of its key chain) with the
    /// pseudonym of their latest effective action, if any.
    pub fn moderators_at(&self, at_ms: u64) -> Vec<(PublicKey, Option<String>)> {
        let authors: Vec<PublicKey> = self
            .author_roles
            .keys()
            .filter(|k| !self.is_admin(k) && self.appointed_at(k, at_ms))
            .copied()
            .collect();
        if authors.is_empty() {
            return Vec::new();
        }
        // Names come from effective actions only: a pending action decides
        // nothing, not even how a moderator is shown.
        let mut names: BTreeMap<PublicKey, Option<String>> = BTreeMap::new();
        for a in self.actions.values() {
            let author = self.lineage.root(&a.signer);
            if authors.contains(&author) && self.is_effective(a) {
                names.insert(author, a.signer_name.clone());
            }
        }
        let mut out: Vec<(PublicKey, Option<String>)> = authors
            .into_iter()
            .map(|k| (self.lineage.current(&k), names.get(&k).cloned().flatten()))
            .collect();
        out.sort();
        out
    }

    /// Current moderators (not counting the admin): keys whose latest
    /// appoint/revoke is an appointment, with their pseudonym.
    pub fn moderators(&self) -> Vec<(PublicKey, Option<String>)> {
        self.moderators_at(u64::MAX)
    }

    /// Keys that may moderate now, admin first, each the current key of
    /// its author: who reports are sealed to.
    pub fn current_moderators(&self) -> Vec<PublicKey> {
        let mut out = vec![self.lineage.current(&self.admin)];
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
    /// A block names an author: any of its keys finds it.
    pub fn block(&self, author: &PublicKey, scope: &Scope) -> Option<&BlockInfo> {
        self.blocks
            .get(&(self.lineage.root(author), scope.clone()))
            .and_then(|w| w.decision.as_ref())
    }

    /// Blocks in force, sorted by author (its first key) then scope.
    pub fn blocks(&self) -> Vec<((PublicKey, Scope), &BlockInfo)> {
        self.blocks
            .iter()
            .filter_map(|(k, w)| w.decision.as_ref().map(|d| (k.clone(), d)))
            .collect()
    }

    /// The targets of the blocks in force, every key of a blocked author
    /// listed: whose posts are deleted and refused.
    pub fn block_targets(&self) -> BTreeSet<(PublicKey, Scope)> {
        self.blocks()
            .into_iter()
            .flat_map(|((author, scope), _)| {
                self.lineage
                    .keys_of(&author)
                    .into_iter()
                    .map(move |k| (k, scope.clone()))
            })
            .collect()
    }

    /// Why `post` is hidden, if it is.
    pub fn hidden(&self, post: &PostId) -> Option<&HideInfo> {
        self.hidden.get(post).and_then(|w| w.decision.as_ref())
    }

    /// Who rejected `post` and why, if it is deleted by a rejection
    /// (a hide whose winning action is a `Reject`).
    pub fn rejected(&self, post: &PostId) -> Option<&HideInfo> {
        self.hidden(post).filter(|d| {
            self.ids
                .get(&d.action)
                .and_then(|key| self.actions.get(key))
                .is_some_and(|a| matches!(a.kind, ModActionKind::Reject { .. }))
        })
    }

    /// Records an effective approval (the incremental path of `apply`).
    fn apply_approval(&mut self, post: PostId, order: OrderKey, author: PublicKey) -> Applied {
        let before = self.probation.clone();
        self.probation.insert(post, order, author);
        self.recount_approvals();
        let mut applied = Applied::default();
        self.probation.diff_into(&before, &mut applied);
        applied
    }

    /// Rebuilds the approvals from the kept actions (in a recompute).
    fn rebuild_approvals(&mut self) {
        let mut probation = std::mem::take(&mut self.probation);
        probation.clear();
        for (order, a) in &self.actions {
            if let ModActionKind::Approve { post, author } = &a.kind {
                if self.is_effective(a) {
                    probation.insert(*post, *order, *author);
                }
            }
        }
        self.probation = probation;
        self.recount_approvals();
    }

    /// Recounts what counts toward each author's probation.
    fn recount_approvals(&mut self) {
        let mut probation = std::mem::take(&mut self.probation);
        probation.recount(&self.lineage, |post| self.rejected(post).is_some());
        self.probation = probation;
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
            co_admins: self.co_admins(),
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
            members: self.members(),
            lockdowns: self.lockdowns(),
            approved: self.approvals(),
        }
    }

    /// Whether `key` is a member now (rule 8): the admin, an author ever
    /// appointed moderator or co-admin, or an author admitted by a
    /// redemption, and not blocked community-wide. In an invite-only
    /// community only members' posts, retractions and reports are taken.
    pub fn is_member(&self, key: &PublicKey) -> bool {
        let author = self.lineage.root(key);
        if self.is_admin(&author) {
            return true;
        }
        if self.block(&author, &Scope::Community).is_some() {
            return false;
        }
        self.membership.admitted_at(&author).is_some()
            || self
                .author_roles
                .get(&author)
                .is_some_and(|h| h.values().any(|r| r.moderates()))
    }

    /// Every member now, by author (root key).
    pub fn members(&self) -> BTreeSet<PublicKey> {
        let mut out: BTreeSet<PublicKey> = self.membership.admitted().copied().collect();
        out.extend(self.author_roles.keys().copied());
        out.insert(self.lineage.root(&self.admin));
        out.retain(|k| self.is_member(k));
        out
    }

    /// When `author` (any of its keys) was first admitted by a redemption,
    /// `None` if never (the admin and moderators are members without one).
    pub fn admitted_at(&self, author: &PublicKey) -> Option<u64> {
        self.membership.admitted_at(&self.lineage.root(author))
    }

    /// Every invitation in the log, with whom it admitted.
    pub fn invitations(&self) -> Vec<Invitation> {
        self.membership.invitations()
    }

    /// Why `redemption` admits nobody (expired, withdrawn, used up, …);
    /// `None` when it admits its signer or is no redemption.
    pub fn redemption_refusal(&self, redemption: &VerifiedModAction) -> Option<RedemptionRefusal> {
        self.membership.refusal(redemption)
    }

    /// The invitation with this key, if the log holds it.
    pub fn invitation(&self, key: &PublicKey) -> Option<Invitation> {
        self.membership.invitation(key).cloned()
    }

    /// The lockdown in force now in exactly `scope`, if any.
    pub fn lockdown(&self, scope: &Scope) -> Option<&LockdownInfo> {
        self.membership.lockdown_at(scope, u64::MAX)
    }

    /// The lockdowns in force now, community first.
    pub fn lockdowns(&self) -> Vec<LockdownInfo> {
        self.membership.lockdowns()
    }

    /// Whether a post by `author` in `topic` dated `post_created_at` is
    /// held for approval by a lockdown: one in force then in the community
    /// or that topic, with `hold_recent_days`, and the author admitted
    /// within that many days before the post.
    pub fn lockdown_holds(
        &self,
        author: &PublicKey,
        topic: &TopicName,
        post_created_at: u64,
    ) -> bool {
        self.membership
            .holds(&self.lineage.root(author), topic, post_created_at)
    }

    /// The admission policy that judges an item dated `at_ms` (rule 9).
    pub fn policy_at(&self, at_ms: u64) -> CommunityPolicy {
        let effective = &self.policies;
        if let Some((_, _, policy)) = effective
            .iter()
            .filter(|(at, _, _)| *at <= at_ms)
            .max_by(|x, y| x.1.cmp(&y.1))
        {
            return *policy;
        }
        match effective.iter().min_by_key(|(at, rank, _)| (*at, *rank)) {
            Some((at, _, policy)) if Some(*at) == self.born_at => *policy,
            _ => CommunityPolicy::LEGACY,
        }
    }

    /// Whether items dated `at_ms` are taken only from members.
    pub fn invite_only_at(&self, at_ms: u64) -> bool {
        self.policy_at(at_ms).admission == Admission::InviteOnly
    }
}

/// Whether an action is one of the membership kinds (rule 8), applied by
/// recomputing membership.
fn is_membership_kind(kind: &ModActionKind) -> bool {
    matches!(
        kind,
        ModActionKind::Invite { .. }
            | ModActionKind::RevokeInvite { .. }
            | ModActionKind::Redeem { .. }
            | ModActionKind::Lockdown { .. }
            | ModActionKind::LiftLockdown { .. }
    )
}

fn target_of(kind: &ModActionKind) -> Option<Target> {
    Some(match kind {
        ModActionKind::Block { author, scope, .. } | ModActionKind::Unblock { author, scope } => {
            Target::Block(*author, scope.clone())
        }
        // A rejection is a hide of a held post (`probation.rs`, rule 3).
        ModActionKind::Hide { post, .. }
        | ModActionKind::Unhide { post }
        | ModActionKind::Reject { post, .. } => Target::Hide(*post),
        ModActionKind::Pin { post } | ModActionKind::Unpin { post } => Target::Pin(*post),
        ModActionKind::AppointModerator { .. }
        | ModActionKind::RevokeModerator { .. }
        | ModActionKind::AppointCoAdmin { .. }
        | ModActionKind::RemoveCoAdmin { .. }
        | ModActionKind::Succeed { .. }
        | ModActionKind::UpdateManifest { .. }
        | ModActionKind::Invite { .. }
        | ModActionKind::RevokeInvite { .. }
        | ModActionKind::Redeem { .. }
        | ModActionKind::Lockdown { .. }
        | ModActionKind::LiftLockdown { .. }
        | ModActionKind::Approve { .. }
        | ModActionKind::ResolveReport { .. }
        | ModActionKind::DescribeTopic { .. } => return None,
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
        authors_changed: false,
        co_admins_changed: false,
        manifest_changed: false,
        members_changed: false,
        members_joined: Vec::new(),
        members_left: Vec::new(),
        newly_approved: Vec::new(),
        unapproved: Vec::new(),
        probation_changed: Vec::new(),
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
