//! Properties of the moderation fold over random sets of real, signed and
//! verified actions by a fixed pool of keys (an admin, three keys that may
//! be appointed moderators, two outsiders who never are):
//!
//! - [`ModerationState::fold`] does not depend on the order of the set, and
//!   agrees with a small reference model of the rules in `state.rs`.
//! - [`ModerationState::apply`], in any arrival order, ends in exactly the
//!   state the fold of the same set gives (an action that arrives before
//!   the appointment that makes it effective is kept and takes effect when
//!   the appointment comes; a late revocation undoes later actions); what
//!   each `apply` reports as changed is the real difference; a refused
//!   action changes no decision.
//! - Accumulating what each `apply` reports, from the empty state, gives
//!   exactly the blocks, hidden and pinned posts of the fold.
//! - Actions by outsiders, appointments by anyone but the admin, blocks of
//!   the admin and actions of another community change nothing.
//! - Revocation is final: a revoked moderator's actions count only up to
//!   the number the revocation names, so actions signed afterwards and
//!   dated before it have no effect in any arrival order, and a number
//!   used twice voids both actions. Only the admin blocks a moderator.
//! - `check_new` says an action changes nothing exactly when applying it
//!   (dated after what decides its target) would change nothing.
//! - A forged action (changed after signing) does not verify.
//! - Key successions (chains, competing successions, cycles, a blocked
//!   key's succession, the admin's succession) are in every random set:
//!   the reference model resolves every key through its author's chain
//!   written naively, and every property above holds with them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use proptest::prelude::*;
use protocol::moderation::{ModAction, ModActionKind, Scope, VerifiedModAction};
use protocol::state::{Applied, Decision, ModerationError, NoEffect};
use protocol::{
    ActionId, CommunityId, Identity, PostId, PublicKey, Signed, TopicName, ValidationContext,
    ValidationError,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Index of the admin in [`POOL`].
const ADMIN: usize = 0;
/// Indices of the keys that may be appointed.
const CANDIDATES: [usize; 3] = [1, 2, 3];
/// Indices of the keys that are never appointed.
const OUTSIDERS: [usize; 2] = [4, 5];
/// Indices of fresh keys: only ever named as successors (or blocked).
const FRESH: [usize; 2] = [6, 7];

/// The keys, from fixed seeds, with pseudonyms.
static POOL: LazyLock<Vec<Identity>> = LazyLock::new(|| {
    [
        (common::ADMIN, "admin"),
        (20, "mod-a"),
        (21, "mod-b"),
        (22, "mod-c"),
        (30, "member-x"),
        (31, "member-y"),
        (40, "fresh-1"),
        (41, "fresh-2"),
    ]
    .into_iter()
    .map(|(seed, name)| common::identity(seed, Some(name)))
    .collect()
});

static COMMUNITY: LazyLock<CommunityId> = LazyLock::new(common::community);
static OTHER_COMMUNITY: LazyLock<CommunityId> = LazyLock::new(common::other_community);

fn public(i: usize) -> PublicKey {
    POOL[i].public()
}

fn admin() -> PublicKey {
    public(ADMIN)
}

fn scope(i: u8) -> Scope {
    match i % 3 {
        0 => Scope::Community,
        1 => Scope::Topic(common::topic("burnout")),
        _ => Scope::Topic(common::topic("grief")),
    }
}

fn post(i: u8) -> PostId {
    PostId::of_bytes(&[i % 3])
}

/// What an action does, in terms of pool indices.
#[derive(Clone, Debug)]
enum Kind {
    Appoint(usize),
    /// Revoke a key, counting its actions up to this number.
    Revoke(usize, Option<u64>),
    Block(usize, u8),
    Unblock(usize, u8),
    Hide(u8),
    Unhide(u8),
    Pin(u8),
    Unpin(u8),
    /// The signer's key is succeeded by this one (which co-signs).
    Succeed(usize),
    /// Name a key co-admin.
    CoAdmin(usize),
    /// A key is no longer co-admin, counting its actions up to this number.
    RemoveCoAdmin(usize, Option<u64>),
    /// An invitation (index into [`INVITATIONS`]) with uses and expiry.
    Invite(usize, u32, u64),
    /// Withdraw an invitation.
    RevokeInvite(usize),
    /// The signer redeems an invitation (co-signed by its key).
    Redeem(usize),
    /// A lockdown in a scope, holding members admitted this many days.
    Lockdown(u8, Option<u32>),
    /// Lift the lockdown of a scope.
    Lift(u8),
    /// Approve a post, naming a key as its author.
    Approve(u8, usize),
    /// Reject a post.
    Reject(u8),
}

/// Invitation keys, from fixed seeds.
static INVITATIONS: LazyLock<Vec<Identity>> =
    LazyLock::new(|| (50..53).map(|seed| common::identity(seed, None)).collect());

/// An action to sign: who, what, when, with which sequence number, in
/// which community.
#[derive(Clone, Debug)]
struct Spec {
    signer: usize,
    kind: Kind,
    at: u64,
    seq: u64,
    other_community: bool,
}

impl Spec {
    fn kind(&self) -> ModActionKind {
        self.kind_in(*COMMUNITY)
    }

    fn kind_in(&self, community: CommunityId) -> ModActionKind {
        match self.kind {
            Kind::Appoint(k) => ModActionKind::AppointModerator { key: public(k) },
            Kind::Revoke(k, upto_seq) => ModActionKind::RevokeModerator {
                key: public(k),
                upto_seq,
            },
            Kind::Block(a, s) => ModActionKind::Block {
                author: public(a),
                scope: scope(s),
                reason: format!("reason {s}"),
            },
            Kind::Unblock(a, s) => ModActionKind::Unblock {
                author: public(a),
                scope: scope(s),
            },
            Kind::Hide(p) => ModActionKind::Hide {
                post: post(p),
                reason: String::new(),
            },
            Kind::Unhide(p) => ModActionKind::Unhide { post: post(p) },
            Kind::Pin(p) => ModActionKind::Pin { post: post(p) },
            Kind::Unpin(p) => ModActionKind::Unpin { post: post(p) },
            Kind::Succeed(_) => self.signed(*COMMUNITY).content.kind,
            Kind::CoAdmin(k) => ModActionKind::AppointCoAdmin { key: public(k) },
            Kind::RemoveCoAdmin(k, upto_seq) => ModActionKind::RemoveCoAdmin {
                key: public(k),
                upto_seq,
            },
            Kind::Invite(i, uses, expires_at) => ModActionKind::Invite {
                invitation: INVITATIONS[i].public(),
                uses,
                expires_at,
            },
            Kind::RevokeInvite(i) => ModActionKind::RevokeInvite {
                invitation: INVITATIONS[i].public(),
            },
            Kind::Redeem(i) => {
                let invitation = INVITATIONS[i].public();
                ModActionKind::Redeem {
                    invitation,
                    invitation_signature: INVITATIONS[i].secret.sign(
                        &protocol::moderation::redemption_statement(
                            &community,
                            &invitation,
                            &public(self.signer),
                        ),
                    ),
                }
            }
            Kind::Lockdown(s, hold_recent_days) => ModActionKind::Lockdown {
                scope: scope(s),
                hold_recent_days,
                reason: "raid".into(),
            },
            Kind::Lift(s) => ModActionKind::LiftLockdown { scope: scope(s) },
            Kind::Approve(p, a) => ModActionKind::Approve {
                post: post(p),
                author: public(a),
            },
            Kind::Reject(p) => ModActionKind::Reject {
                post: post(p),
                reason: format!("reject {p}"),
            },
        }
    }

    /// Signs the action with its signer's key (a succession co-signed by
    /// its new key).
    fn signed(&self, community: CommunityId) -> protocol::SignedModAction {
        match self.kind {
            Kind::Succeed(new) => ModAction::succeed(
                &POOL[self.signer],
                &POOL[new].secret,
                community,
                self.seq,
                self.at,
            ),
            _ => ModAction::create(
                &POOL[self.signer],
                community,
                self.seq,
                self.kind_in(community),
                self.at,
            ),
        }
        .expect("valid fields")
    }

    /// Signs the action with its signer's key and verifies it in its own
    /// community, as a node receiving it would.
    fn verified(&self) -> VerifiedModAction {
        let community = if self.other_community {
            *OTHER_COMMUNITY
        } else {
            *COMMUNITY
        };
        self.signed(community)
            .verify(&ValidationContext {
                community,
                now_ms: 1_000,
            })
            .expect("a freshly signed action verifies")
    }
}

fn candidate() -> impl Strategy<Value = usize> {
    prop::sample::select(CANDIDATES.to_vec())
}

fn any_key() -> impl Strategy<Value = usize> {
    0..POOL.len()
}

/// A block/unblock/hide/unhide/pin/unpin.
fn effect_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (any_key(), 0u8..3).prop_map(|(a, s)| Kind::Block(a, s)),
        (any_key(), 0u8..3).prop_map(|(a, s)| Kind::Unblock(a, s)),
        (0u8..3).prop_map(Kind::Hide),
        (0u8..3).prop_map(Kind::Unhide),
        (0u8..3).prop_map(Kind::Pin),
        (0u8..3).prop_map(Kind::Unpin),
    ]
}

/// What a revocation counts: none, or numbers up to one in the range the
/// actions use (so some actions of the revoked period count, some not).
fn upto_seq() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), (0u64..3).prop_map(Some)]
}

fn role_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        candidate().prop_map(Kind::Appoint),
        (candidate(), upto_seq()).prop_map(|(k, u)| Kind::Revoke(k, u)),
    ]
}

/// Small times and sequence numbers, so that ties (and numbers used twice
/// by one signer) are frequent.
fn when() -> impl Strategy<Value = (u64, u64)> {
    (0u64..12, 0u64..3)
}

/// An action that can count: appoint/revoke by the admin, or an effect by
/// the admin or a candidate (effective only while appointed).
fn honest() -> impl Strategy<Value = Spec> {
    prop_oneof![
        1 => (role_kind(), when()).prop_map(|(kind, (at, seq))| Spec {
            signer: ADMIN,
            kind,
            at,
            seq,
            other_community: false,
        }),
        3 => (prop::sample::select(vec![ADMIN, 1, 2, 3]), effect_kind(), when()).prop_map(
            |(signer, kind, (at, seq))| Spec {
                signer,
                kind,
                at,
                seq,
                other_community: false,
            }
        ),
    ]
}

/// An action that must change nothing: an effect by an outsider, an
/// appoint/revoke by anyone but the admin, a block or unblock of the admin,
/// or anything of another community.
fn junk() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (
            prop::sample::select(OUTSIDERS.to_vec()),
            effect_kind(),
            when()
        )
            .prop_map(|(signer, kind, (at, seq))| Spec {
                signer,
                kind,
                at,
                seq,
                other_community: false,
            }),
        (
            1..POOL.len(),
            prop_oneof![
                any_key().prop_map(Kind::Appoint),
                (any_key(), upto_seq()).prop_map(|(k, u)| Kind::Revoke(k, u))
            ],
            when()
        )
            .prop_map(|(signer, kind, (at, seq))| Spec {
                signer,
                kind,
                at,
                seq,
                other_community: false,
            }),
        (
            prop::sample::select(vec![ADMIN, 1, 2, 3, 4, 5]),
            0u8..3,
            any::<bool>(),
            when()
        )
            .prop_map(|(signer, s, unblock, (at, seq))| Spec {
                signer,
                kind: if unblock {
                    Kind::Unblock(ADMIN, s)
                } else {
                    Kind::Block(ADMIN, s)
                },
                at,
                seq,
                other_community: false,
            }),
        (honest(), any::<bool>()).prop_map(|(mut spec, appoint_outsider)| {
            if appoint_outsider {
                spec.kind = Kind::Appoint(OUTSIDERS[0]);
                spec.signer = ADMIN;
            }
            spec.other_community = true;
            spec
        }),
    ]
}

/// A key succession by any key to another: to a fresh key mostly (so
/// chains form), to a pool key sometimes (competing successions, cycles,
/// a member taking a moderator's key with its consent).
fn succession() -> impl Strategy<Value = Spec> {
    (
        any_key(),
        prop_oneof![2 => prop::sample::select(FRESH.to_vec()), 1 => any_key()],
        when(),
    )
        .prop_filter("a key cannot succeed itself", |(signer, new, _)| {
            signer != new
        })
        .prop_map(|(signer, new, (at, seq))| Spec {
            signer,
            kind: Kind::Succeed(new),
            at,
            seq,
            other_community: false,
        })
}

/// Co-admins: the admin names or removes one (a candidate, sometimes
/// the admin or an outsider), or a candidate appoints or revokes a key
/// (counting only while a co-admin, and never of a co-admin).
fn co_admin_spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (
            prop_oneof![
                4 => candidate(),
                1 => prop::sample::select(vec![ADMIN, OUTSIDERS[0]])
            ],
            upto_seq(),
            any::<bool>(),
            when()
        )
            .prop_map(|(k, u, remove, (at, seq))| Spec {
                signer: ADMIN,
                kind: if remove {
                    Kind::RemoveCoAdmin(k, u)
                } else {
                    Kind::CoAdmin(k)
                },
                at,
                seq,
                other_community: false,
            }),
        (candidate(), any_key(), upto_seq(), any::<bool>(), when()).prop_map(
            |(signer, k, u, revoke, (at, seq))| Spec {
                signer,
                kind: if revoke {
                    Kind::Revoke(k, u)
                } else {
                    Kind::Appoint(k)
                },
                at,
                seq,
                other_community: false,
            }
        ),
        // A co-admin change by someone else than the admin: never counts.
        (1..POOL.len(), candidate(), when()).prop_map(|(signer, k, (at, seq))| Spec {
            signer,
            kind: Kind::CoAdmin(k),
            at,
            seq,
            other_community: false,
        }),
    ]
}

/// Invitations (by moderators, sometimes by an outsider), their
/// revocations, redemptions by any key (often racing for one use),
/// lockdowns and lifts: membership's actions.
fn membership_spec() -> impl Strategy<Value = Spec> {
    let signer = || prop::sample::select(vec![ADMIN, 1, 2, 3, OUTSIDERS[0]]);
    let spec = |signer, kind, (at, seq)| Spec {
        signer,
        kind,
        at,
        seq,
        other_community: false,
    };
    prop_oneof![
        2 => (signer(), 0usize..3, 1u32..3, 0u64..14, when())
            .prop_map(move |(s, i, uses, exp, w)| spec(s, Kind::Invite(i, uses, exp), w)),
        1 => (signer(), 0usize..3, when()).prop_map(move |(s, i, w)| spec(s, Kind::RevokeInvite(i), w)),
        4 => (any_key(), 0usize..3, when()).prop_map(move |(s, i, w)| spec(s, Kind::Redeem(i), w)),
        1 => (signer(), 0u8..3, prop::option::of(0u32..3), when())
            .prop_map(move |(s, sc, hold, w)| spec(s, Kind::Lockdown(sc, hold), w)),
        1 => (signer(), 0u8..3, when()).prop_map(move |(s, sc, w)| spec(s, Kind::Lift(sc), w)),
    ]
}

/// Any action at all.
fn any_spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        6 => honest(),
        2 => junk(),
        1 => succession(),
        2 => co_admin_spec(),
        3 => membership_spec()
    ]
}

/// The clean actions, the junk, and both together.
fn with_junk(
    specs: &[Spec],
    junk_specs: &[Spec],
) -> (
    Vec<VerifiedModAction>,
    Vec<VerifiedModAction>,
    Vec<VerifiedModAction>,
) {
    let actions = verify_all(specs);
    let junk = verify_all(junk_specs);
    let mut all = actions.clone();
    all.extend(junk.iter().cloned());
    (actions, junk, all)
}

fn verify_all(specs: &[Spec]) -> Vec<VerifiedModAction> {
    specs.iter().map(Spec::verified).collect()
}

fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    out.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    out
}

fn fold(actions: &[VerifiedModAction]) -> protocol::ModerationState {
    protocol::ModerationState::fold(*COMMUNITY, admin(), actions)
}

/// Applies `actions` one by one to a new state; returns the state and what
/// was accepted. Checks on the way that what each call reports is what
/// changed, and that a refused action decides nothing: one of another
/// community, an appointment by a non-admin, a block of the admin or a
/// duplicate leaves the state as it was; one that does not count (signer
/// not a moderator at its time, revoked, a reused number, a moderator
/// blocking a moderator) changes no decision and is kept aside for a later
/// appoint/revoke.
fn apply_all(actions: &[VerifiedModAction]) -> (protocol::ModerationState, Vec<VerifiedModAction>) {
    let mut state = protocol::ModerationState::new(*COMMUNITY, admin());
    let mut accepted = Vec::new();
    for a in actions {
        let before = state.clone();
        match state.apply(a) {
            Ok(applied) => {
                assert_eq!(applied, changes(&before, &state), "{:?}", a.content());
                accepted.push(a.clone());
            }
            Err(
                ModerationError::NotModerator { .. }
                | ModerationError::Revoked { .. }
                | ModerationError::Equivocation { .. }
                | ModerationError::ModeratorTarget { .. }
                | ModerationError::CoAdminTarget { .. }
                | ModerationError::NotAdmin { .. }
                | ModerationError::AdminSuccessorTarget { .. }
                | ModerationError::SuccessionNoEffect { .. }
                | ModerationError::RedemptionNoEffect { .. },
            ) => {
                assert_eq!(
                    state.decisions(),
                    before.decisions(),
                    "a refused action decided"
                );
                assert_eq!(effect(&state), effect(&before), "a refused action decided");
                assert!(state.contains(&a.id()), "a pending action was not kept");
                assert_eq!(state.len(), before.len() + 1);
            }
            Err(_) => assert_eq!(state, before, "a refused action changed the state"),
        }
    }
    (state, accepted)
}

/// What changed between two states, computed naively from their targets.
fn changes(before: &protocol::ModerationState, after: &protocol::ModerationState) -> Applied {
    fn gone<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> Vec<T> {
        a.difference(b).cloned().collect()
    }
    let pinned =
        |s: &protocol::ModerationState| -> BTreeSet<PostId> { s.pinned().into_iter().collect() };
    let (b_blocks, a_blocks) = (before.block_targets(), after.block_targets());
    let (b_hidden, a_hidden) = (before.hidden_targets(), after.hidden_targets());
    let (b_pinned, a_pinned) = (pinned(before), pinned(after));
    Applied {
        newly_blocked: gone(&a_blocks, &b_blocks),
        unblocked: gone(&b_blocks, &a_blocks),
        newly_hidden: gone(&a_hidden, &b_hidden),
        unhidden: gone(&b_hidden, &a_hidden),
        newly_pinned: gone(&a_pinned, &b_pinned),
        unpinned: gone(&b_pinned, &a_pinned),
        moderators_changed: before.current_moderators() != after.current_moderators(),
        authors_changed: before.lineage().effective() != after.lineage().effective(),
        co_admins_changed: before.co_admins() != after.co_admins(),
        manifest_changed: before.manifest_update() != after.manifest_update(),
        members_changed: before.members() != after.members(),
        members_joined: gone(&after.members(), &before.members()),
        members_left: gone(&before.members(), &after.members()),
        newly_approved: gone(&approved(after), &approved(before)),
        unapproved: gone(&approved(before), &approved(after)),
        probation_changed: {
            let (b, a) = (before.counted_approvals(), after.counted_approvals());
            b.keys()
                .chain(a.keys())
                .filter(|k| b.get(*k) != a.get(*k))
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        },
    }
}

fn approved(state: &protocol::ModerationState) -> BTreeSet<PostId> {
    state.approvals().into_keys().collect()
}

/// What the state decides, as a person or the node sees it.
#[derive(Debug, PartialEq, Eq)]
struct Effect {
    moderators: Vec<PublicKey>,
    blocks: Vec<((PublicKey, Scope), Decision)>,
    hidden: Vec<(PostId, Decision)>,
    pinned: Vec<PostId>,
    log: Vec<ActionId>,
}

fn effect(state: &protocol::ModerationState) -> Effect {
    Effect {
        moderators: state.current_moderators(),
        blocks: state
            .blocks()
            .into_iter()
            .map(|(k, d)| (k, d.clone()))
            .collect(),
        hidden: state
            .hidden_posts()
            .into_iter()
            .map(|(k, d)| (k, d.clone()))
            .collect(),
        pinned: state.pinned(),
        log: state.log_with_ids().into_iter().map(|a| a.id()).collect(),
    }
}

// ---------------------------------------------------------------------
// Reference model: the rules of `state.rs`, written naively.
// ---------------------------------------------------------------------

type Key = (u64, PublicKey, u64, ActionId);

fn key_of(a: &VerifiedModAction) -> Key {
    (a.created_at, a.signer, a.seq, a.id())
}

/// Targets in force after the rules: (blocks, hidden, pinned, moderators
/// now).
type Model = (
    BTreeSet<(PublicKey, Scope)>,
    BTreeSet<PostId>,
    BTreeSet<PostId>,
    BTreeSet<PublicKey>,
);

/// The author a block or unblock names.
fn block_author(a: &VerifiedModAction) -> Option<PublicKey> {
    match &a.kind {
        ModActionKind::Block { author, .. } | ModActionKind::Unblock { author, .. } => {
            Some(*author)
        }
        _ => None,
    }
}

/// Whether the state keeps `a` at all (rule 7).
fn kept_by_rules(a: &VerifiedModAction) -> bool {
    a.community == *COMMUNITY && block_author(a) != Some(admin())
}

/// `(old key, new key, (created_at, id))`.
type Link = (PublicKey, PublicKey, (u64, ActionId));

/// The chains of keys, written naively from the rules of `lineage.rs`:
/// the root of every key, and the effective links.
fn roots(
    kept: &BTreeMap<ActionId, &VerifiedModAction>,
) -> (BTreeMap<PublicKey, PublicKey>, Vec<Link>) {
    let all: Vec<Link> = kept
        .values()
        .filter_map(|a| match a.kind {
            ModActionKind::Succeed { new, .. } => Some((a.signer, new, (a.created_at, a.id()))),
            _ => None,
        })
        .collect();
    // Each old key's least; then each new key's least of those.
    let first: Vec<Link> = all
        .iter()
        .filter(|l| !all.iter().any(|m| m.0 == l.0 && m.2 < l.2))
        .copied()
        .collect();
    let mut links: Vec<Link> = first
        .iter()
        .filter(|l| !first.iter().any(|m| m.1 == l.1 && m.2 < l.2))
        .copied()
        .collect();
    // Open every cycle at its greatest link.
    loop {
        let next = |k: PublicKey, links: &[Link]| links.iter().find(|l| l.0 == k).copied();
        let closing = links.iter().find_map(|start| {
            let mut cycle = vec![*start];
            let mut at = start.1;
            while let Some(l) = next(at, &links) {
                if l.0 == start.0 || cycle.len() > links.len() {
                    break;
                }
                cycle.push(l);
                at = l.1;
            }
            (at == start.0).then(|| cycle.into_iter().max_by_key(|l| l.2))?
        });
        match closing {
            Some(c) => links.retain(|l| *l != c),
            None => break,
        }
    }
    let mut out = BTreeMap::new();
    for k in POOL.iter().map(Identity::public) {
        let mut root = k;
        while let Some(l) = links.iter().find(|l| l.1 == root) {
            root = l.0;
        }
        out.insert(k, root);
    }
    (out, links)
}

fn model(actions: &[VerifiedModAction]) -> Model {
    // Rule 7, and duplicates.
    let mut kept: BTreeMap<ActionId, &VerifiedModAction> = BTreeMap::new();
    for a in actions.iter().filter(|a| kept_by_rules(a)) {
        kept.insert(a.id(), a);
    }
    // Rule 0: every key resolves to its author.
    let (roots, links) = roots(&kept);
    let root = |k: &PublicKey| roots.get(k).copied().unwrap_or(*k);
    let is_admin = |k: &PublicKey| root(k) == root(&admin());
    let current = |author: PublicKey| {
        let mut at = author;
        while let Some(l) = links.iter().find(|l| l.0 == at) {
            at = l.1;
        }
        at
    };
    // The admin's role changes by author (rule 2), with `ModActionKind`
    // saying which.
    let role_of = |a: &VerifiedModAction| match a.kind {
        ModActionKind::AppointModerator { key }
        | ModActionKind::RevokeModerator { key, .. }
        | ModActionKind::AppointCoAdmin { key }
        | ModActionKind::RemoveCoAdmin { key, .. } => Some((key_of(a), root(&key), a.kind.clone())),
        _ => None,
    };
    let admin_roles: Vec<(Key, PublicKey, ModActionKind)> = kept
        .values()
        .filter(|a| is_admin(&a.signer))
        .filter_map(|a| role_of(a))
        .collect();
    let co_admin_at = |k: &PublicKey, t: u64| {
        !is_admin(k)
            && admin_roles
                .iter()
                .filter(|(key, target, _)| *target == root(k) && key.0 <= t)
                .max_by_key(|(key, _, _)| *key)
                .is_some_and(|(_, _, kind)| matches!(kind, ModActionKind::AppointCoAdmin { .. }))
    };
    // What the admin's first change after `t` that is not a co-admin
    // appointment counts of `k`'s co-admin period.
    let co_admin_end = |k: &PublicKey, t: u64| {
        admin_roles
            .iter()
            .filter(|(key, target, kind)| {
                *target == root(k)
                    && key.0 > t
                    && !matches!(kind, ModActionKind::AppointCoAdmin { .. })
            })
            .min_by_key(|(key, _, _)| *key)
            .map(|(_, _, kind)| match kind {
                ModActionKind::RevokeModerator { upto_seq, .. }
                | ModActionKind::RemoveCoAdmin { upto_seq, .. } => *upto_seq,
                _ => None,
            })
    };
    let numbered = |b: &VerifiedModAction| {
        !b.kind.admin_only()
            || is_admin(&b.signer)
            || (!b.kind.is_co_admin_change() && co_admin_at(&b.signer, b.created_at))
    };
    let unique_number = |a: &VerifiedModAction| {
        kept.values()
            .filter(|b| root(&b.signer) == root(&a.signer) && b.seq == a.seq)
            .filter(|b| numbered(b))
            .count()
            == 1
    };
    // A co-admin's appoint/revoke of a moderator.
    let co_admin_counts = |a: &VerifiedModAction| {
        let t = a.created_at;
        let target = match a.kind {
            ModActionKind::AppointModerator { key }
            | ModActionKind::RevokeModerator { key, .. } => key,
            _ => return false,
        };
        co_admin_at(&a.signer, t)
            && !is_admin(&target)
            && !co_admin_at(&target, t)
            && co_admin_end(&a.signer, t)
                .is_none_or(|upto| upto.is_some_and(|u| a.seq <= u) && unique_number(a))
    };
    // `None`: moderates; `Some(upto_seq)`: a revocation. The admin's and
    // the counting co-admins', by author.
    let roles: Vec<(Key, PublicKey, Option<Option<u64>>)> = kept
        .values()
        .filter(|a| is_admin(&a.signer) || co_admin_counts(a))
        .filter_map(|a| role_of(a))
        .map(|(key, target, kind)| match kind {
            ModActionKind::RevokeModerator { upto_seq, .. } => (key, target, Some(upto_seq)),
            _ => (key, target, None),
        })
        .collect();
    // Rule 3.
    let appointed = |k: &PublicKey, t: u64| {
        roles
            .iter()
            .filter(|(key, target, _)| *target == root(k) && key.0 <= t)
            .max_by_key(|(key, _, _)| *key)
            .is_some_and(|(_, _, role)| role.is_none())
    };
    // Rule 4b: the first revocation of `k` after `t`.
    let revoked_after = |k: &PublicKey, t: u64| {
        roles
            .iter()
            .filter(|(key, target, role)| *target == root(k) && key.0 > t && role.is_some())
            .min_by_key(|(key, _, _)| *key)
            .and_then(|(_, _, role)| *role)
    };
    let counts = |a: &VerifiedModAction| {
        if block_author(a).is_some_and(|author| is_admin(&author)) {
            return false;
        }
        if block_author(a).is_some_and(|author| co_admin_at(&author, a.created_at)) {
            return false;
        }
        if is_admin(&a.signer) {
            return true;
        }
        if a.kind.admin_only() {
            return false;
        }
        let t = a.created_at;
        let by_number = match revoked_after(&a.signer, t) {
            None => true,
            Some(upto) => upto.is_some_and(|u| a.seq <= u) && unique_number(a),
        };
        let target_ok = block_author(a).is_none_or(|author| !appointed(&author, t));
        appointed(&a.signer, t) && by_number && target_ok
    };
    // Rule 5: latest effective action per target wins.
    let mut blocks: BTreeMap<(PublicKey, Scope), (Key, bool)> = BTreeMap::new();
    let mut hides: BTreeMap<PostId, (Key, bool)> = BTreeMap::new();
    let mut pins: BTreeMap<PostId, (Key, bool)> = BTreeMap::new();
    fn win<T: Ord>(map: &mut BTreeMap<T, (Key, bool)>, target: T, key: Key, on: bool) {
        let entry = map.entry(target).or_insert((key, on));
        if key > entry.0 {
            *entry = (key, on);
        }
    }
    for a in kept.values().filter(|a| {
        !a.kind.admin_only() && !matches!(a.kind, ModActionKind::Succeed { .. }) && counts(a)
    }) {
        let key = key_of(a);
        match &a.kind {
            ModActionKind::Block { author, scope, .. } => {
                win(&mut blocks, (root(author), scope.clone()), key, true)
            }
            ModActionKind::Unblock { author, scope } => {
                win(&mut blocks, (root(author), scope.clone()), key, false)
            }
            ModActionKind::Hide { post, .. } | ModActionKind::Reject { post, .. } => {
                win(&mut hides, *post, key, true)
            }
            ModActionKind::Unhide { post } => win(&mut hides, *post, key, false),
            // Approvals and manifests decide no block, hide or pin
            // (`probation_*` below).
            ModActionKind::Approve { .. } | ModActionKind::UpdateManifest { .. } => {}
            ModActionKind::Pin { post } => win(&mut pins, *post, key, true),
            ModActionKind::Unpin { post } => win(&mut pins, *post, key, false),
            // Invitations, redemptions, lockdowns, manifest updates:
            // no block, hide or pin.
            _ => {}
        }
    }
    fn on<T: Ord>(m: BTreeMap<T, (Key, bool)>) -> BTreeSet<T> {
        m.into_iter()
            .filter(|(_, (_, on))| *on)
            .map(|(t, _)| t)
            .collect()
    }
    // Every key of a blocked author is blocked.
    let blocked: BTreeSet<(PublicKey, Scope)> = on(blocks)
        .into_iter()
        .flat_map(|(author, scope)| {
            POOL.iter()
                .map(Identity::public)
                .filter(move |k| root(k) == author)
                .map(move |k| (k, scope.clone()))
        })
        .collect();
    // Moderators now: the latest appoint/revoke of each author is an
    // appoint; each shown by its current key.
    let mut latest: BTreeMap<PublicKey, (Key, bool)> = BTreeMap::new();
    for (key, target, role) in &roles {
        if !is_admin(target) {
            win(&mut latest, *target, *key, role.is_none());
        }
    }
    let mut moderators: BTreeSet<PublicKey> = on(latest).into_iter().map(current).collect();
    moderators.insert(current(root(&admin())));
    (blocked, on(hides), on(pins), moderators)
}

fn observed(state: &protocol::ModerationState) -> Model {
    (
        state.block_targets(),
        state.hidden_targets(),
        state.pinned().into_iter().collect(),
        state.current_moderators().into_iter().collect(),
    )
}

// ---------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Every order of one set folds to one state, and that state is what
    /// the rules say.
    #[test]
    fn fold_does_not_depend_on_order(
        specs in prop::collection::vec(any_spec(), 0..28),
        seeds in prop::collection::vec(any::<u64>(), 3),
    ) {
        let actions = verify_all(&specs);
        let state = fold(&actions);
        for seed in seeds {
            prop_assert_eq!(&fold(&shuffled(&actions, seed)), &state);
        }
        let mut reversed = actions.clone();
        reversed.reverse();
        prop_assert_eq!(&fold(&reversed), &state);
        prop_assert_eq!(observed(&state), model(&actions));
    }

    /// Whatever the arrival order, `apply` ends in the very state (kept
    /// actions included) that the fold of the whole set gives.
    #[test]
    fn apply_in_any_order_equals_the_fold(
        specs in prop::collection::vec(any_spec(), 0..28),
        seeds in (any::<u64>(), any::<u64>()),
    ) {
        let actions = verify_all(&specs);
        let whole = fold(&actions);
        let (one, accepted) = apply_all(&shuffled(&actions, seeds.0));
        let (two, _) = apply_all(&shuffled(&actions, seeds.1));
        prop_assert_eq!(&one, &whole);
        prop_assert_eq!(&two, &whole);
        prop_assert_eq!(effect(&one), effect(&whole));
        prop_assert_eq!(observed(&one), model(&actions));
        prop_assert!(accepted.iter().all(|a| a.community == *COMMUNITY));
        // Applying everything again changes nothing: all duplicates.
        let mut again = one.clone();
        for a in &actions {
            if kept_by_rules(a) {
                prop_assert_eq!(again.apply(a), Err(ModerationError::Duplicate));
            }
        }
        prop_assert_eq!(&again, &whole);
    }

    /// What each `apply` reports, added up from the empty state, is exactly
    /// what the fold of the set has in force: the node can enforce from the
    /// reports alone.
    #[test]
    fn applied_reports_add_up_to_the_fold(
        specs in prop::collection::vec(any_spec(), 0..28),
        seed in any::<u64>(),
    ) {
        let actions = verify_all(&specs);
        let mut state = protocol::ModerationState::new(*COMMUNITY, admin());
        let mut blocks = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        let mut pinned = BTreeSet::new();
        let mut moderators = state.current_moderators();
        for a in shuffled(&actions, seed) {
            let Ok(applied) = state.apply(&a) else { continue };
            for t in applied.newly_blocked {
                prop_assert!(blocks.insert(t), "reported blocked twice");
            }
            for t in applied.unblocked {
                prop_assert!(blocks.remove(&t), "reported unblocked but was not blocked");
            }
            for p in applied.newly_hidden {
                prop_assert!(hidden.insert(p));
            }
            for p in applied.unhidden {
                prop_assert!(hidden.remove(&p));
            }
            for p in applied.newly_pinned {
                prop_assert!(pinned.insert(p));
            }
            for p in applied.unpinned {
                prop_assert!(pinned.remove(&p));
            }
            let now = state.current_moderators();
            prop_assert_eq!(applied.moderators_changed, now != moderators);
            moderators = now;
        }
        let whole = fold(&actions);
        prop_assert_eq!(blocks, whole.block_targets());
        prop_assert_eq!(hidden, whole.hidden_targets());
        prop_assert_eq!(pinned, whole.pinned().into_iter().collect::<BTreeSet<_>>());
        prop_assert_eq!(moderators, whole.current_moderators());
    }

    /// After a revocation that counts what the admin's node held, anything
    /// the revoked moderator signs afterwards has no effect, however it is
    /// dated and in whatever order it all arrives.
    #[test]
    fn backdated_actions_after_a_revocation_have_no_effect(
        specs in prop::collection::vec(honest(), 0..20),
        m in candidate(),
        appointed_at in 0u64..6,
        revoked_at in 6u64..12,
        forged in prop::collection::vec((effect_kind(), 0u64..14), 1..6),
        seed in any::<u64>(),
    ) {
        // m's role is decided here alone: one appointment, one revocation.
        let specs: Vec<Spec> = specs
            .into_iter()
            .filter(|s| !matches!(s.kind, Kind::Appoint(k) | Kind::Revoke(k, _) if k == m))
            .collect();
        let mut held = verify_all(&specs);
        held.push(spec(ADMIN, Kind::Appoint(m), appointed_at, 100));
        let upto_seq = fold(&held).highest_seq(&public(m));
        let revoke = spec(ADMIN, Kind::Revoke(m, upto_seq), revoked_at, 101);
        held.push(revoke);
        let next = upto_seq.map_or(0, |u| u + 1);
        let forged: Vec<VerifiedModAction> = forged
            .into_iter()
            .enumerate()
            .map(|(i, (kind, at))| spec(m, kind, at, next + i as u64))
            .collect();
        let clean = fold(&held);
        let mut all = held.clone();
        all.extend(forged.iter().cloned());
        prop_assert_eq!(fold(&all).decisions(), clean.decisions());
        let (state, _) = apply_all(&shuffled(&all, seed));
        prop_assert_eq!(state.decisions(), clean.decisions());
        // Arriving last, from the network: each is refused.
        let mut state = clean.clone();
        for f in &forged {
            prop_assert!(state.apply(f).is_err(), "{:?}", f.content());
        }
        prop_assert_eq!(state.decisions(), clean.decisions());
    }

    /// `check_new` refuses exactly the actions that, signed as the node
    /// signs them (dated after what decides the target, the signer's next
    /// number, a revocation counting what is held), would change nothing.
    #[test]
    fn check_new_agrees_with_what_applying_would_change(
        specs in prop::collection::vec(
            prop_oneof![4 => honest(), 1 => succession(), 2 => co_admin_spec()],
            0..24,
        ),
        signer in prop::sample::select(vec![ADMIN, 1, 2, 3, 4]),
        kind in prop_oneof![
            3 => effect_kind(),
            1 => any_key().prop_map(Kind::Appoint),
            1 => any_key().prop_map(|k| Kind::Revoke(k, None)),
            1 => any_key().prop_map(Kind::CoAdmin),
            1 => any_key().prop_map(|k| Kind::RemoveCoAdmin(k, None)),
        ],
    ) {
        let state = fold(&verify_all(&specs));
        let kind = match (Spec { signer, kind, at: 0, seq: 0, other_community: false }).kind() {
            ModActionKind::RevokeModerator { key, .. } => ModActionKind::RevokeModerator {
                key,
                upto_seq: state.highest_seq(&key),
            },
            ModActionKind::RemoveCoAdmin { key, .. } => ModActionKind::RemoveCoAdmin {
                key,
                upto_seq: state.highest_seq(&key),
            },
            other => other,
        };
        // Every time in the set is below 12; the node's clock is past them.
        let at = state.latest_on_target(&kind).map_or(11, |t| (t + 1).max(11));
        let seq = state.highest_seq(&public(signer)).map_or(1, |s| s + 1);
        let action = ModAction::create(&POOL[signer], *COMMUNITY, seq, kind.clone(), at)
            .expect("valid fields")
            .verify(&ValidationContext { community: *COMMUNITY, now_ms: 1_000 })
            .expect("verifies");
        let mut after = state.clone();
        let changed = matches!(after.apply(&action), Ok(applied) if !applied.is_empty());
        let verdict = state.check_new(&public(signer), &kind);
        // Stricter than the fold: removing as co-admin a key that is not
        // one would make it a moderator; the node never signs that.
        // Likewise appointing a co-admin as a plain moderator (it would
        // end the co-admin period counting none of its appointments: the
        // node signs `RemoveCoAdmin` instead).
        let stricter = match &kind {
            ModActionKind::RemoveCoAdmin { key, .. } => !state.is_co_admin(key),
            ModActionKind::AppointModerator { key } => state.is_co_admin(key),
            _ => false,
        };
        if stricter {
            prop_assert!(verdict.is_err());
            return Ok(());
        }
        prop_assert_eq!(verdict.is_ok(), changed, "{:?} by {}: {:?}", kind, signer, verdict);
    }

    /// Outsiders' actions, appointments by non-admins and actions of
    /// another community change nothing, folded or applied.
    #[test]
    fn junk_changes_nothing(
        specs in prop::collection::vec(honest(), 0..20),
        junk_specs in prop::collection::vec(junk(), 1..10),
        seed in any::<u64>(),
    ) {
        let (actions, junk, with_junk) = with_junk(&specs, &junk_specs);
        let clean = fold(&actions);
        prop_assert_eq!(fold(&with_junk).decisions(), clean.decisions());
        prop_assert_eq!(effect(&fold(&with_junk)), effect(&clean));
        prop_assert_eq!(
            model(&with_junk), model(&actions),
            "the reference model agrees the junk is inert"
        );

        let (state, accepted) = apply_all(&shuffled(&with_junk, seed));
        prop_assert_eq!(state.decisions(), clean.decisions());
        prop_assert_eq!(effect(&state), effect(&clean));
        for j in &junk {
            prop_assert!(!accepted.contains(j), "junk was accepted: {:?}", j.content());
        }
    }
}

// ---------------------------------------------------------------------
// Probation: approvals and rejections in the random sets
// ---------------------------------------------------------------------

/// An approval or rejection by the admin, a candidate (counting only while
/// appointed) or an outsider (never counting), of one of the three posts,
/// naming any key as the author.
fn approval_spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(vec![ADMIN, 1, 2, 3, OUTSIDERS[0]]),
        0u8..3,
        any_key(),
        prop_oneof![3 => Just(false), 1 => Just(true)],
        when(),
    )
        .prop_map(|(signer, p, author, reject, (at, seq))| Spec {
            signer,
            kind: if reject {
                Kind::Reject(p)
            } else {
                Kind::Approve(p, author)
            },
            at,
            seq,
            other_community: false,
        })
}

/// The admin's manifest update setting a probation of two posts.
fn probation_manifest() -> VerifiedModAction {
    ModAction::create(
        &POOL[ADMIN],
        *COMMUNITY,
        99,
        ModActionKind::UpdateManifest {
            version: 1,
            rules: String::new(),
            policy: protocol::CommunityPolicy {
                admission: protocol::Admission::InviteOnly,
                probation_posts: 2,
            },
        },
        0,
    )
    .expect("valid fields")
    .verify(&ValidationContext {
        community: *COMMUNITY,
        now_ms: 1_000,
    })
    .expect("verifies")
}

/// Any action, approvals and rejections included.
fn any_spec_with_approvals() -> impl Strategy<Value = Spec> {
    prop_oneof![4 => any_spec(), 2 => approval_spec()]
}

/// What an outsider's approval or rejection, or one of another community,
/// is: junk.
fn approval_junk() -> impl Strategy<Value = Spec> {
    (approval_spec(), any::<bool>()).prop_map(|(mut spec, other)| {
        if other {
            spec.other_community = true;
        } else {
            spec.signer = OUTSIDERS[1];
        }
        spec
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Approvals and rejections fold alike in every order (approvals and
    /// what counts toward each author's probation included), agree with
    /// the reference model on hides, and `apply` in any order ends in
    /// the fold, reporting exactly what changed (checked in `apply_all`).
    #[test]
    fn probation_does_not_depend_on_order(
        specs in prop::collection::vec(any_spec_with_approvals(), 0..28),
        seeds in (any::<u64>(), any::<u64>()),
    ) {
        let mut actions = verify_all(&specs);
        actions.push(probation_manifest());
        let state = fold(&actions);
        prop_assert_eq!(&fold(&shuffled(&actions, seeds.0)), &state);
        let mut reversed = actions.clone();
        reversed.reverse();
        prop_assert_eq!(&fold(&reversed), &state);
        prop_assert_eq!(observed(&state), model(&actions));
        let (one, _) = apply_all(&shuffled(&actions, seeds.1));
        prop_assert_eq!(&one, &state);
        prop_assert_eq!(one.approvals(), state.approvals());
        prop_assert_eq!(one.counted_approvals(), state.counted_approvals());
        for author in 0..POOL.len() {
            for at in [0, 6, 13] {
                for p in 0u8..3 {
                    prop_assert_eq!(
                        one.is_held(&post(p), &public(author), &burnout(), at),
                        state.is_held(&post(p), &public(author), &burnout(), at)
                    );
                }
            }
        }
    }

    /// Approvals and rejections by outsiders, or of another community,
    /// change nothing: not what is approved, not who is on probation.
    #[test]
    fn approval_junk_changes_nothing(
        specs in prop::collection::vec(
            prop_oneof![3 => honest(), 2 => approval_spec()],
            0..20,
        ),
        junk_specs in prop::collection::vec(approval_junk(), 1..10),
        seed in any::<u64>(),
    ) {
        // The approval specs by an outsider are junk too: keep them out of
        // the clean set.
        let specs: Vec<Spec> = specs
            .into_iter()
            .filter(|s| !OUTSIDERS.contains(&s.signer))
            .collect();
        let (actions, junk, with_junk) = with_junk(&specs, &junk_specs);
        let clean = fold(&actions);
        prop_assert_eq!(fold(&with_junk).decisions(), clean.decisions());
        let (state, accepted) = apply_all(&shuffled(&with_junk, seed));
        prop_assert_eq!(state.decisions(), clean.decisions());
        prop_assert_eq!(state.counted_approvals(), clean.counted_approvals());
        for j in &junk {
            prop_assert!(!accepted.contains(j), "junk was accepted: {:?}", j.content());
        }
    }
}

// ---------------------------------------------------------------------
// Specific rules
// ---------------------------------------------------------------------

fn spec(signer: usize, kind: Kind, at: u64, seq: u64) -> VerifiedModAction {
    Spec {
        signer,
        kind,
        at,
        seq,
        other_community: false,
    }
    .verified()
}

fn burnout() -> TopicName {
    common::topic("burnout")
}

#[test]
fn a_block_after_revocation_has_no_effect() {
    let m = CANDIDATES[0];
    let x = OUTSIDERS[0];
    let appoint = spec(ADMIN, Kind::Appoint(m), 10, 0);
    let revoke = spec(ADMIN, Kind::Revoke(m, Some(0)), 20, 1);
    for at in [20, 21, 100] {
        let block = spec(m, Kind::Block(x, 0), at, 0);
        let actions = [appoint.clone(), revoke.clone(), block.clone()];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let ordered: Vec<_> = order.iter().map(|&i| actions[i].clone()).collect();
            let state = fold(&ordered);
            assert!(
                state.is_blocked(&public(x), &burnout()).is_none(),
                "a block at {at}, after the revocation at 20, took effect"
            );
            assert!(!state.log_with_ids().iter().any(|a| a.id() == block.id()));
        }
        let (mut state, _) = apply_all(&[appoint.clone(), revoke.clone()]);
        assert_eq!(
            state.apply(&block),
            Err(ModerationError::NotModerator {
                signer: public(m).short(),
                at_ms: at,
            })
        );
        assert!(state.is_blocked(&public(x), &burnout()).is_none());
    }
    // Before the revocation (from the appointment on) it takes effect, and
    // a revocation arriving later keeps it if it counted it (the admin's
    // node held it: its number is at most `upto_seq`)...
    for at in [10, 19] {
        let block = spec(m, Kind::Block(x, 0), at, 0);
        let (state, accepted) = apply_all(&[appoint.clone(), block.clone(), revoke.clone()]);
        assert_eq!(accepted.len(), 3);
        let info = state
            .is_blocked(&public(x), &burnout())
            .expect("a block while appointed and counted holds");
        assert_eq!(info.by, public(m));
        assert_eq!(info.action, block.id());
        assert_eq!(state, fold(&[revoke.clone(), block, appoint.clone()]));
    }
    // ... and undoes it if it did not: the date alone proves nothing, since
    // the revoked moderator could have signed it after the revocation.
    for (number, upto_seq) in [(1, Some(0)), (0, None)] {
        let block = spec(m, Kind::Block(x, 0), 15, number);
        let revoke = spec(ADMIN, Kind::Revoke(m, upto_seq), 20, 1);
        let (state, _) = apply_all(&[appoint.clone(), block.clone(), revoke.clone()]);
        assert!(
            state.is_blocked(&public(x), &burnout()).is_none(),
            "block number {number}, revocation counting up to {upto_seq:?}"
        );
        assert_eq!(state, fold(&[revoke, block, appoint.clone()]));
    }
}

/// Every order of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            out.push(p);
        }
    }
    out
}

/// Checks that every arrival order of `actions`, folded or applied one by
/// one, gives the same state; returns it.
fn same_in_every_order(actions: &[VerifiedModAction]) -> protocol::ModerationState {
    let whole = fold(actions);
    for order in permutations(actions.len()) {
        let ordered: Vec<_> = order.iter().map(|&i| actions[i].clone()).collect();
        assert_eq!(fold(&ordered), whole, "fold, order {order:?}");
        let (applied, _) = apply_all(&ordered);
        assert_eq!(applied, whole, "apply, order {order:?}");
    }
    whole
}

#[test]
fn a_backdated_action_signed_after_the_revocation_has_no_effect() {
    let m = CANDIDATES[0];
    let x = OUTSIDERS[0];
    let appoint = spec(ADMIN, Kind::Appoint(m), 10, 1);
    let counted = spec(m, Kind::Hide(0), 12, 1);
    // The admin's node held m's actions up to number 1 when revoking.
    let revoke = spec(ADMIN, Kind::Revoke(m, Some(1)), 20, 2);
    // Signed after the revocation with m's next number, dated inside the
    // appointment.
    let backdated = spec(m, Kind::Block(x, 0), 15, 2);
    let all = [
        appoint.clone(),
        counted.clone(),
        revoke.clone(),
        backdated.clone(),
    ];
    let state = same_in_every_order(&all);
    assert!(state.is_blocked(&public(x), &burnout()).is_none());
    assert!(state.hidden(&post(0)).is_some(), "the counted hide stays");
    assert!(!state.log().iter().any(|a| a.id() == backdated.id()));

    // Arriving from the network after the revocation, it is refused with
    // the reason, and kept aside (decides nothing).
    let (mut state, _) = apply_all(&all[..3]);
    let refusal = state.apply(&backdated).unwrap_err();
    assert_eq!(
        refusal,
        ModerationError::Revoked {
            signer: public(m).short(),
            seq: 2,
            upto_seq: Some(1),
        }
    );
    assert!(refusal.to_string().contains("numbers up to 1"));
    assert!(state.is_blocked(&public(x), &burnout()).is_none());

    // A revocation that counted nothing takes the hide away too.
    let revoke_all = spec(ADMIN, Kind::Revoke(m, None), 20, 2);
    let state = same_in_every_order(&[appoint, counted, revoke_all]);
    assert!(state.hidden(&post(0)).is_none());
}

#[test]
fn a_number_used_twice_by_a_revoked_moderator_voids_both_actions() {
    let m = CANDIDATES[1];
    let x = OUTSIDERS[1];
    let appoint = spec(ADMIN, Kind::Appoint(m), 10, 1);
    let block = spec(m, Kind::Block(x, 0), 15, 1);
    let revoke = spec(ADMIN, Kind::Revoke(m, Some(1)), 20, 2);
    // Signed after the revocation, reusing the counted number 1.
    let twin = spec(m, Kind::Hide(2), 16, 1);
    let state =
        same_in_every_order(&[appoint.clone(), block.clone(), revoke.clone(), twin.clone()]);
    assert!(state.is_blocked(&public(x), &burnout()).is_none());
    assert!(state.hidden(&post(2)).is_none());
    assert_eq!(state.len(), 4, "both are kept, as evidence");

    // Arriving last, the twin is reported with what it voided, so the node
    // stores and relays it and every node voids both.
    let (mut state, _) = apply_all(&[appoint.clone(), block.clone(), revoke]);
    assert!(state.is_blocked(&public(x), &burnout()).is_some());
    assert_eq!(
        state.apply(&twin),
        Ok(Applied {
            unblocked: vec![(public(x), Scope::Community)],
            ..Applied::default()
        })
    );
    // A third use of the number changes nothing more and says why.
    let third = spec(m, Kind::Pin(1), 17, 1);
    let refusal = state.apply(&third).unwrap_err();
    assert_eq!(
        refusal,
        ModerationError::Equivocation {
            signer: public(m).short(),
            seq: 1,
        }
    );
    assert!(refusal.to_string().contains("neither action counts"));

    // A moderator still appointed is not judged by number: both count.
    let state = same_in_every_order(&[appoint, block, twin]);
    assert!(state.is_blocked(&public(x), &burnout()).is_some());
    assert!(state.hidden(&post(2)).is_some());
}

#[test]
fn nobody_blocks_the_admin() {
    let m = CANDIDATES[0];
    let appoint = spec(ADMIN, Kind::Appoint(m), 1, 1);
    let (mut state, _) = apply_all(std::slice::from_ref(&appoint));
    let before = state.clone();
    for (signer, kind) in [
        (ADMIN, Kind::Block(ADMIN, 0)),
        (m, Kind::Block(ADMIN, 1)),
        (m, Kind::Unblock(ADMIN, 0)),
        (OUTSIDERS[0], Kind::Block(ADMIN, 2)),
    ] {
        let action = spec(signer, kind, 5, 2);
        let refusal = state.apply(&action).unwrap_err();
        assert_eq!(refusal, ModerationError::AdminTarget);
        assert!(refusal
            .to_string()
            .starts_with("nobody can block the admin"));
        assert_eq!(state, before, "not even kept");
        assert_eq!(fold(&[appoint.clone(), action]), before);
    }
    for topic in [burnout(), common::topic("grief")] {
        assert!(state.is_blocked(&admin(), &topic).is_none());
    }
}

#[test]
fn only_the_admin_blocks_or_unblocks_a_moderator() {
    let (a, b) = (CANDIDATES[0], CANDIDATES[1]);
    let appoint_a = spec(ADMIN, Kind::Appoint(a), 1, 1);
    let appoint_b = spec(ADMIN, Kind::Appoint(b), 2, 2);
    let (mut state, _) = apply_all(&[appoint_a.clone(), appoint_b.clone()]);
    let by_a = spec(a, Kind::Block(b, 0), 5, 1);
    let refusal = state.apply(&by_a).unwrap_err();
    assert_eq!(
        refusal,
        ModerationError::ModeratorTarget {
            signer: public(a).short(),
            author: public(b).short(),
        }
    );
    assert!(refusal
        .to_string()
        .starts_with("only the admin can block or unblock a moderator"));
    assert!(state.block(&public(b), &Scope::Community).is_none());

    let by_admin = spec(ADMIN, Kind::Block(b, 0), 6, 3);
    assert_eq!(
        state.apply(&by_admin).map(|applied| applied.newly_blocked),
        Ok(vec![(public(b), Scope::Community)])
    );
    let unblock_by_a = spec(a, Kind::Unblock(b, 0), 7, 2);
    assert!(matches!(
        state.apply(&unblock_by_a),
        Err(ModerationError::ModeratorTarget { .. })
    ));
    assert!(state.block(&public(b), &Scope::Community).is_some());

    // Once b is revoked, a may block them like anyone else.
    let revoke_b = spec(ADMIN, Kind::Revoke(b, None), 8, 4);
    state.apply(&revoke_b).expect("the admin may revoke");
    let later = spec(a, Kind::Block(b, 1), 9, 3);
    assert_eq!(
        state.apply(&later).map(|applied| applied.newly_blocked),
        Ok(vec![(public(b), scope(1))])
    );
    let all = [
        appoint_a,
        appoint_b,
        by_a,
        by_admin,
        unblock_by_a,
        revoke_b,
        later,
    ];
    assert_eq!(state, fold(&all));
}

#[test]
fn a_late_appointment_of_the_target_lifts_a_moderators_block() {
    let (a, x) = (CANDIDATES[0], CANDIDATES[2]);
    let appoint_a = spec(ADMIN, Kind::Appoint(a), 1, 1);
    let block = spec(a, Kind::Block(x, 0), 5, 1);
    let (mut state, _) = apply_all(&[appoint_a.clone(), block.clone()]);
    assert!(state.is_blocked(&public(x), &burnout()).is_some());
    // The admin had appointed x at 3: x was a moderator when a blocked them.
    let appoint_x = spec(ADMIN, Kind::Appoint(x), 3, 2);
    assert_eq!(
        state.apply(&appoint_x),
        Ok(Applied {
            unblocked: vec![(public(x), Scope::Community)],
            // x, a moderator, is a member (it always was: the block ended).
            members_changed: true,
            members_joined: vec![public(x)],
            moderators_changed: true,
            ..Applied::default()
        })
    );
    assert_eq!(state, same_in_every_order(&[appoint_a, block, appoint_x]));
}

#[test]
fn check_new_names_what_would_change_nothing() {
    let (a, b) = (CANDIDATES[0], CANDIDATES[1]);
    let x = OUTSIDERS[0];
    let state = fold(&[
        spec(ADMIN, Kind::Appoint(a), 1, 1),
        spec(ADMIN, Kind::Appoint(b), 2, 2),
        spec(ADMIN, Kind::Block(x, 0), 3, 3),
        spec(a, Kind::Hide(0), 4, 1),
        spec(b, Kind::Pin(1), 5, 1),
    ]);
    let kind = |kind: Kind| {
        Spec {
            signer: ADMIN,
            kind,
            at: 0,
            seq: 0,
            other_community: false,
        }
        .kind()
    };
    use NoEffect::*;
    let refused = [
        (
            x,
            Kind::Pin(2),
            NotModerator,
            "you are not a moderator of this community",
        ),
        (
            a,
            Kind::Appoint(x),
            NotAdmin,
            "only the community admin (or, for moderators, a co-admin) can change who moderates",
        ),
        (
            ADMIN,
            Kind::Appoint(ADMIN),
            AdminIsAlwaysModerator,
            "the admin is always a moderator",
        ),
        (
            ADMIN,
            Kind::Revoke(ADMIN, None),
            AdminIsAlwaysModerator,
            "the admin is always a moderator",
        ),
        (
            ADMIN,
            Kind::Appoint(a),
            AlreadyModerator,
            "already a moderator",
        ),
        (
            ADMIN,
            Kind::Revoke(x, None),
            NothingToRevoke,
            "not a moderator, nothing to revoke",
        ),
        (
            a,
            Kind::Block(ADMIN, 0),
            CannotBlockAdmin,
            "you cannot block the admin",
        ),
        (
            ADMIN,
            Kind::Block(ADMIN, 1),
            CannotBlockAdmin,
            "you cannot block the admin",
        ),
        (
            a,
            Kind::Unblock(ADMIN, 1),
            AdminNeverBlocked,
            "the admin is never blocked, nothing to unblock",
        ),
        (
            a,
            Kind::Block(b, 1),
            ModeratorTarget,
            "only the admin can block or unblock a moderator",
        ),
        (
            a,
            Kind::Block(x, 0),
            AlreadyBlocked(Scope::Community),
            "already blocked in the whole community",
        ),
        (
            b,
            Kind::Unblock(x, 1),
            NotBlocked(scope(1)),
            "not blocked in topic burnout",
        ),
        (b, Kind::Hide(0), AlreadyHidden, "already hidden"),
        (a, Kind::Unhide(1), NotHidden, "not hidden"),
        (a, Kind::Pin(1), AlreadyPinned, "already pinned"),
        (a, Kind::Unpin(0), NotPinned, "not pinned"),
    ];
    for (signer, k, expected, text) in refused {
        let err = state
            .check_new(&public(signer), &kind(k.clone()))
            .unwrap_err();
        assert_eq!(err, expected, "{k:?}");
        assert_eq!(err.to_string(), text);
    }
    for (signer, k) in [
        (ADMIN, Kind::Appoint(x)),
        (ADMIN, Kind::Revoke(a, None)),
        (ADMIN, Kind::Block(b, 0)),
        (a, Kind::Block(x, 1)),
        (a, Kind::Unblock(x, 0)),
        (b, Kind::Unhide(0)),
        (a, Kind::Hide(1)),
        (a, Kind::Unpin(1)),
        (b, Kind::Pin(0)),
    ] {
        assert_eq!(
            state.check_new(&public(signer), &kind(k.clone())),
            Ok(()),
            "{k:?}"
        );
    }
}

#[test]
fn latest_on_target_is_the_time_of_what_decides_it() {
    let m = CANDIDATES[0];
    let x = OUTSIDERS[0];
    let state = fold(&[
        spec(ADMIN, Kind::Appoint(m), 1, 1),
        spec(ADMIN, Kind::Block(x, 0), 5, 2),
        spec(m, Kind::Block(x, 0), 6, 1),
        spec(m, Kind::Unblock(x, 0), 7, 2),
        spec(ADMIN, Kind::Revoke(m, Some(2)), 9, 3),
        // An outsider's hide decides nothing.
        spec(OUTSIDERS[1], Kind::Hide(0), 8, 1),
    ]);
    let latest = |k: Kind| {
        state.latest_on_target(
            &Spec {
                signer: ADMIN,
                kind: k,
                at: 0,
                seq: 0,
                other_community: false,
            }
            .kind(),
        )
    };
    assert_eq!(latest(Kind::Block(x, 0)), Some(7), "the unblock decides");
    assert_eq!(latest(Kind::Unblock(x, 0)), Some(7));
    assert_eq!(latest(Kind::Block(x, 1)), None, "another scope");
    assert_eq!(latest(Kind::Hide(0)), None);
    assert_eq!(latest(Kind::Appoint(m)), Some(9), "the revocation");
    assert_eq!(latest(Kind::Revoke(m, None)), Some(9));
    assert_eq!(latest(Kind::Appoint(CANDIDATES[1])), None);
}

#[test]
fn highest_seq_is_the_greatest_number_held_of_that_signer() {
    let m = CANDIDATES[0];
    let state = fold(&[
        spec(ADMIN, Kind::Appoint(m), 1, 4),
        spec(m, Kind::Hide(0), 2, 3),
        spec(m, Kind::Pin(1), 3, 7),
        // Dated before the appointment: pending, but held all the same.
        spec(m, Kind::Block(OUTSIDERS[0], 0), 0, 9),
    ]);
    assert_eq!(state.highest_seq(&public(m)), Some(9));
    assert_eq!(state.highest_seq(&admin()), Some(4));
    assert_eq!(state.highest_seq(&public(OUTSIDERS[1])), None);
}

#[test]
fn a_revocation_arriving_later_removes_the_effect_of_later_actions() {
    let m = CANDIDATES[1];
    let appoint = spec(ADMIN, Kind::Appoint(m), 10, 0);
    let hide = spec(m, Kind::Hide(0), 30, 0);
    // Even counting the hide's number: it is dated after the revocation.
    let revoke = spec(ADMIN, Kind::Revoke(m, Some(0)), 20, 1);
    let (mut state, _) = apply_all(&[appoint, hide]);
    assert!(state.hidden(&post(0)).is_some());
    state.apply(&revoke).expect("the admin may revoke");
    assert!(
        state.hidden(&post(0)).is_none(),
        "the hide was signed after the revocation"
    );
}

#[test]
fn only_the_admin_can_appoint_or_revoke() {
    let m = CANDIDATES[0];
    let (mut state, _) = apply_all(&[spec(ADMIN, Kind::Appoint(m), 1, 0)]);
    let before = state.clone();
    for signer in [m, CANDIDATES[1], OUTSIDERS[0]] {
        for kind in [Kind::Appoint(OUTSIDERS[1]), Kind::Revoke(m, None)] {
            let action = spec(signer, kind, 5, 0);
            assert_eq!(
                state.apply(&action),
                Err(ModerationError::NotAdmin {
                    signer: public(signer).short()
                })
            );
            assert_eq!(state.decisions(), before.decisions());
        }
    }
    assert!(state.is_moderator(&public(m), 5));
    assert!(!state.is_moderator(&public(OUTSIDERS[1]), 5));
}

#[test]
fn an_action_of_another_community_is_refused() {
    let mut state = protocol::ModerationState::new(*COMMUNITY, admin());
    let foreign = Spec {
        signer: ADMIN,
        kind: Kind::Pin(0),
        at: 1,
        seq: 0,
        other_community: true,
    }
    .verified();
    assert_eq!(
        state.apply(&foreign),
        Err(ModerationError::WrongCommunity {
            expected: COMMUNITY.short(),
            found: OTHER_COMMUNITY.short(),
        })
    );
    assert!(state.is_empty());
    assert!(fold(&[foreign]).is_empty());
}

#[test]
fn latest_action_on_a_target_wins_with_ties_broken_by_signer_then_seq() {
    let a = spec(ADMIN, Kind::Pin(0), 5, 0);
    let b = spec(ADMIN, Kind::Unpin(0), 5, 1);
    assert!(!fold(&[a.clone(), b.clone()]).is_pinned(&post(0)));
    let c = spec(ADMIN, Kind::Pin(0), 6, 0);
    assert!(fold(&[c, b, a]).is_pinned(&post(0)));
    // Same time and seq: the signer key orders them.
    let m = CANDIDATES[2];
    let appoint = spec(ADMIN, Kind::Appoint(m), 0, 0);
    let by_admin = spec(ADMIN, Kind::Block(OUTSIDERS[0], 1), 7, 0);
    let by_mod = spec(m, Kind::Unblock(OUTSIDERS[0], 1), 7, 0);
    let state = fold(&[appoint, by_admin, by_mod]);
    let admin_wins = admin() > public(m);
    assert_eq!(
        state
            .is_blocked(&public(OUTSIDERS[0]), &burnout())
            .is_some(),
        admin_wins
    );
}

#[test]
fn a_community_block_covers_every_topic() {
    let x = OUTSIDERS[1];
    let state = fold(&[spec(ADMIN, Kind::Block(x, 0), 1, 0)]);
    assert!(state.is_blocked(&public(x), &burnout()).is_some());
    assert!(state
        .is_blocked(&public(x), &common::topic("anything"))
        .is_some());
    let state = fold(&[spec(ADMIN, Kind::Block(x, 2), 1, 0)]);
    assert!(state
        .is_blocked(&public(x), &common::topic("grief"))
        .is_some());
    assert!(state.is_blocked(&public(x), &burnout()).is_none());
}

#[test]
fn a_forged_action_fails_with_bad_signature() {
    let signed = ModAction::create(
        &POOL[ADMIN],
        *COMMUNITY,
        3,
        spec(ADMIN, Kind::Block(4, 1), 0, 0).content().kind.clone(),
        500,
    )
    .expect("valid fields");
    let ctx = ValidationContext {
        community: *COMMUNITY,
        now_ms: 1_000,
    };
    signed.clone().verify(&ctx).expect("the original verifies");
    type Forgery = fn(&mut ModAction);
    let forgeries: [(&str, Forgery); 7] = [
        ("seq", |a| a.seq += 1),
        ("time", |a| a.created_at -= 1),
        ("pseudonym", |a| a.signer_name = Some("someone".into())),
        ("reason", |a| {
            if let ModActionKind::Block { reason, .. } = &mut a.kind {
                reason.push('!');
            }
        }),
        ("target", |a| {
            a.kind = ModActionKind::Block {
                author: public(5),
                scope: scope(1),
                reason: "reason 1".into(),
            }
        }),
        ("kind", |a| {
            a.kind = ModActionKind::AppointModerator { key: public(4) }
        }),
        ("community", |a| a.community = *OTHER_COMMUNITY),
    ];
    for (what, forge) in forgeries {
        let mut forged: Signed<ModAction> = signed.clone();
        forge(&mut forged.content);
        assert_ne!(forged, signed, "{what}: nothing was changed");
        let ctx = ValidationContext {
            community: forged.content.community,
            ..ctx
        };
        assert_eq!(
            forged.verify(&ctx),
            Err(ValidationError::BadSignature(admin().short())),
            "{what}"
        );
    }
    // A moderator's action re-signed by someone else under their name.
    let mut stolen = signed;
    stolen.content.signer = public(CANDIDATES[0]);
    assert!(matches!(
        stolen.verify(&ctx),
        Err(ValidationError::BadSignature(_))
    ));
}

#[test]
fn an_action_that_arrives_before_its_signers_appointment_takes_effect_with_it() {
    let m = CANDIDATES[0];
    let x = OUTSIDERS[0];
    let appoint = spec(ADMIN, Kind::Appoint(m), 10, 0);
    let block = spec(m, Kind::Block(x, 0), 15, 0);
    let hide = spec(m, Kind::Hide(1), 16, 1);
    let mut state = protocol::ModerationState::new(*COMMUNITY, admin());
    for a in [&block, &hide] {
        assert!(matches!(
            state.apply(a),
            Err(ModerationError::NotModerator { .. })
        ));
    }
    assert!(state.is_blocked(&public(x), &burnout()).is_none());
    assert_eq!(state.pending().len(), 2);
    assert!(state.log().is_empty());

    let applied = state.apply(&appoint).expect("the admin may appoint");
    assert_eq!(
        applied,
        Applied {
            newly_blocked: vec![(public(x), Scope::Community)],
            newly_hidden: vec![post(1)],
            moderators_changed: true,
            // m became a member by the appointment, x stopped by the block.
            members_changed: true,
            members_joined: vec![public(m)],
            ..Applied::default()
        }
    );
    assert!(state.pending().is_empty());
    let info = state
        .is_blocked(&public(x), &burnout())
        .expect("blocked now");
    assert_eq!(info.by, public(m));
    assert_eq!(info.by_name.as_deref(), Some("mod-a"));
    assert_eq!(info.reason, "reason 0");
    assert_eq!(info.at, 15);
    assert_eq!(info.action, block.id());
    assert_eq!(state, fold(&[appoint, block, hide]));
}

#[test]
fn a_late_revocation_reports_what_it_lifts() {
    let m = CANDIDATES[1];
    let x = OUTSIDERS[1];
    let (mut state, _) = apply_all(&[
        spec(ADMIN, Kind::Appoint(m), 10, 0),
        spec(m, Kind::Block(x, 1), 30, 0),
        spec(m, Kind::Pin(2), 31, 1),
        spec(m, Kind::Hide(0), 12, 2),
    ]);
    assert_eq!(state.blocks().len(), 1);
    let applied = state
        .apply(&spec(ADMIN, Kind::Revoke(m, Some(2)), 20, 1))
        .expect("the admin may revoke");
    assert_eq!(
        applied,
        Applied {
            unblocked: vec![(public(x), scope(1))],
            unpinned: vec![post(2)],
            moderators_changed: true,
            ..Applied::default()
        }
    );
    assert!(
        state.hidden(&post(0)).is_some(),
        "the hide at 12 predates the revocation at 20"
    );
    assert_eq!(state.pending().len(), 2);
}

#[test]
fn an_unblock_in_one_scope_leaves_the_other_in_force() {
    let x = OUTSIDERS[0];
    let grief = common::topic("grief");
    let state = fold(&[
        spec(ADMIN, Kind::Block(x, 0), 1, 0),
        spec(ADMIN, Kind::Block(x, 1), 2, 0),
        spec(ADMIN, Kind::Unblock(x, 0), 3, 0),
    ]);
    assert!(state.is_blocked(&public(x), &burnout()).is_some());
    assert!(state.is_blocked(&public(x), &grief).is_none());
    assert_eq!(state.block_targets().len(), 1);
    let state = fold(&[
        spec(ADMIN, Kind::Block(x, 0), 1, 0),
        spec(ADMIN, Kind::Unblock(x, 1), 3, 0),
    ]);
    assert!(
        state.is_blocked(&public(x), &burnout()).is_some(),
        "a topic unblock does not lift a community block"
    );
}

#[test]
fn moderators_log_and_pins_say_who_did_what() {
    let (a, b) = (CANDIDATES[0], CANDIDATES[1]);
    let state = fold(&[
        spec(ADMIN, Kind::Appoint(a), 1, 0),
        spec(ADMIN, Kind::Appoint(b), 2, 1),
        spec(ADMIN, Kind::Revoke(b, Some(0)), 9, 2),
        spec(a, Kind::Pin(0), 3, 0),
        spec(b, Kind::Hide(1), 4, 0),
        spec(OUTSIDERS[0], Kind::Unpin(0), 5, 0),
    ]);
    assert_eq!(state.moderators(), vec![(public(a), Some("mod-a".into()))]);
    let mut at_5 = state.moderators_at(5);
    at_5.sort();
    let mut expected = vec![
        (public(a), Some("mod-a".to_string())),
        (public(b), Some("mod-b".to_string())),
    ];
    expected.sort();
    assert_eq!(at_5, expected);
    assert!(state.moderators_at(0).is_empty());
    assert_eq!(state.current_moderators(), vec![admin(), public(a)]);
    assert!(
        state.is_moderator(&admin(), 0),
        "the admin always moderates"
    );
    assert!(state.is_moderator(&public(b), 4));
    assert!(!state.is_moderator(&public(b), 9));

    let pin = state.pin(&post(0)).expect("pinned");
    assert_eq!((pin.by, pin.at), (public(a), 3));
    assert!(state.is_pinned(&post(0)), "the outsider's unpin is inert");
    assert_eq!(state.pinned(), vec![post(0)]);
    assert_eq!(state.hidden(&post(1)).map(|h| h.by), Some(public(b)));

    let log: Vec<(u64, Option<&str>)> = state
        .log()
        .iter()
        .map(|a| (a.created_at, a.signer_name.as_deref()))
        .collect();
    assert_eq!(
        log,
        vec![
            (1, Some("admin")),
            (2, Some("admin")),
            (3, Some("mod-a")),
            (4, Some("mod-b")),
            (9, Some("admin")),
        ]
    );
    assert_eq!(state.len(), 6);
    assert_eq!(state.pending().len(), 1);
    assert_eq!(state.admin(), admin());
    assert_eq!(state.community(), *COMMUNITY);
}

/// A member signing actions by the thousand cannot grow a node's memory
/// without bound: at most `MAX_PENDING` of them are kept, the rest are
/// refused the same way and nothing they name is decided.
#[test]
fn pending_actions_are_bounded() {
    use protocol::state::MAX_PENDING;
    let mut state = protocol::ModerationState::new(*COMMUNITY, admin());
    let extra = 50;
    for i in 0..(MAX_PENDING + extra) {
        let junk = Spec {
            signer: 1,
            kind: Kind::Hide((i % 250) as u8),
            at: 10 + i as u64,
            seq: i as u64,
            other_community: false,
        }
        .verified();
        match state.apply(&junk) {
            Err(ModerationError::NotModerator { .. }) => {}
            other => panic!("action {i}: expected NotModerator, got {other:?}"),
        }
    }
    assert_eq!(state.pending().len(), MAX_PENDING);
    assert!(state.hidden_targets().is_empty(), "junk decides nothing");
    // The admin still acts, and appointing the signer makes the kept ones
    // effective, as the fold would.
    let appoint = Spec {
        signer: 0,
        kind: Kind::Appoint(1),
        at: 1,
        seq: 1,
        other_community: false,
    }
    .verified();
    state.apply(&appoint).expect("the admin appoints");
    assert!(state.pending().is_empty());
    assert!(!state.hidden_targets().is_empty());
}

// ---------------------------------------------------------------------
// Key succession
// ---------------------------------------------------------------------

/// Folded, and applied in every rotation of the list: the same decisions.
fn fold_and_apply(actions: &[VerifiedModAction]) -> protocol::ModerationState {
    let whole = fold(actions);
    for start in 0..actions.len() {
        let mut order = actions.to_vec();
        order.rotate_left(start);
        let (state, _) = apply_all(&order);
        assert_eq!(state, whole, "rotation {start}");
    }
    whole
}

#[test]
fn a_block_covers_every_key_of_the_author_before_or_after_the_succession() {
    let (x, new) = (OUTSIDERS[0], FRESH[0]);
    // Blocked first, then succeeded: the successor is blocked too.
    let state = fold_and_apply(&[
        spec(ADMIN, Kind::Block(x, 0), 1, 1),
        spec(x, Kind::Succeed(new), 2, 1),
    ]);
    assert!(state.is_blocked(&public(new), &burnout()).is_some());
    assert!(state
        .block_targets()
        .contains(&(public(new), Scope::Community)));
    // Succeeded first, then the old key blocked: the new key is covered.
    let state = fold_and_apply(&[
        spec(x, Kind::Succeed(new), 2, 1),
        spec(ADMIN, Kind::Block(x, 0), 3, 1),
    ]);
    assert!(state.is_blocked(&public(new), &burnout()).is_some());
    // The new key blocked: the old key is covered, and unblocking the old
    // key lifts it for both.
    let state = fold_and_apply(&[
        spec(x, Kind::Succeed(new), 2, 1),
        spec(ADMIN, Kind::Block(new, 1), 3, 1),
    ]);
    assert!(state.is_blocked(&public(x), &burnout()).is_some());
    let state = fold_and_apply(&[
        spec(x, Kind::Succeed(new), 2, 1),
        spec(ADMIN, Kind::Block(new, 1), 3, 1),
        spec(ADMIN, Kind::Unblock(x, 1), 4, 2),
    ]);
    assert!(state.is_blocked(&public(new), &burnout()).is_none());
}

#[test]
fn a_succession_applied_reports_the_new_keys_block() {
    let (x, new) = (OUTSIDERS[1], FRESH[1]);
    let (mut state, _) = apply_all(&[spec(ADMIN, Kind::Block(x, 0), 1, 1)]);
    let applied = state
        .apply(&spec(x, Kind::Succeed(new), 2, 1))
        .expect("the succession links the keys");
    assert_eq!(applied.newly_blocked, vec![(public(new), Scope::Community)]);
    assert!(applied.authors_changed);
}

#[test]
fn a_moderator_role_carries_over_and_the_admin_role_moves() {
    let (m, new) = (CANDIDATES[0], FRESH[0]);
    let x = OUTSIDERS[0];
    let state = fold_and_apply(&[
        spec(ADMIN, Kind::Appoint(m), 1, 1),
        spec(m, Kind::Succeed(new), 2, 1),
        spec(new, Kind::Hide(0), 3, 2),
    ]);
    assert!(state.is_moderator(&public(new), 3));
    assert!(state.hidden(&post(0)).is_some(), "the new key moderates");
    assert_eq!(
        state.moderators(),
        vec![(public(new), Some("fresh-1".into()))]
    );
    // Revoking the old key revokes the author.
    let state = fold_and_apply(&[
        spec(ADMIN, Kind::Appoint(m), 1, 1),
        spec(m, Kind::Succeed(new), 2, 1),
        spec(ADMIN, Kind::Revoke(m, Some(1)), 3, 2),
        spec(new, Kind::Hide(0), 4, 2),
    ]);
    assert!(!state.is_moderator(&public(new), 4));
    assert!(state.hidden(&post(0)).is_none());

    // The admin's succession: the new key appoints, and nobody blocks it.
    let admin_new = FRESH[1];
    let state = fold_and_apply(&[
        spec(ADMIN, Kind::Succeed(admin_new), 1, 1),
        spec(admin_new, Kind::Appoint(x), 2, 2),
        spec(admin_new, Kind::Appoint(m), 2, 3),
        spec(m, Kind::Block(admin_new, 0), 3, 1),
    ]);
    assert!(state.is_admin(&public(admin_new)));
    assert!(
        state.is_moderator(&public(x), 2),
        "the new admin key appointed"
    );
    assert!(state.is_blocked(&public(admin_new), &burnout()).is_none());
    assert_eq!(state.current_moderators()[0], public(admin_new));
    assert_eq!(
        state.check_new(
            &public(m),
            &spec(m, Kind::Block(admin_new, 0), 0, 0).kind.clone()
        ),
        Err(NoEffect::CannotBlockAdmin)
    );
}

#[test]
fn a_key_is_succeeded_once_and_a_taken_key_is_not_taken_again() {
    let (a, b) = (OUTSIDERS[0], OUTSIDERS[1]);
    let (f1, f2) = (FRESH[0], FRESH[1]);
    // Two successions of one key: the earlier counts.
    let state = fold_and_apply(&[
        spec(a, Kind::Succeed(f2), 5, 2),
        spec(a, Kind::Succeed(f1), 3, 1),
    ]);
    assert_eq!(state.lineage().current(&public(a)), public(f1));
    assert!(!state.lineage().in_chain(&public(f2)));
    assert_eq!(
        state.check_succession(&public(a), &public(f2)),
        Err(NoEffect::AlreadySucceeded)
    );
    // A key already in a chain cannot be named by another.
    let state = fold_and_apply(&[
        spec(a, Kind::Succeed(f1), 3, 1),
        spec(b, Kind::Succeed(f1), 4, 1),
    ]);
    assert_eq!(state.lineage().root(&public(f1)), public(a));
    assert!(!state.lineage().same(&public(a), &public(b)));
    assert_eq!(
        state.check_succession(&public(b), &public(f1)),
        Err(NoEffect::SuccessorTaken)
    );
    // A chain a -> f1 -> f2 -> a: the cycle is opened at its last link.
    let state = fold_and_apply(&[
        spec(a, Kind::Succeed(f1), 1, 1),
        spec(f1, Kind::Succeed(f2), 2, 1),
        spec(f2, Kind::Succeed(a), 3, 1),
    ]);
    assert_eq!(
        state.lineage().keys_of(&public(f2)),
        vec![public(a), public(f1), public(f2)]
    );
    // A blocked key's successor stays blocked, whoever arrives first.
    let state = fold_and_apply(&[
        spec(ADMIN, Kind::Block(b, 0), 1, 1),
        spec(b, Kind::Succeed(f2), 2, 1),
        spec(f2, Kind::Succeed(f1), 3, 1),
    ]);
    assert!(state.is_blocked(&public(f1), &burnout()).is_some());
}

#[test]
fn a_succession_without_the_new_keys_signature_does_not_verify() {
    let ctx = ValidationContext {
        community: *COMMUNITY,
        now_ms: 1_000,
    };
    let good = ModAction::succeed(&POOL[4], &POOL[6].secret, *COMMUNITY, 1, 5).expect("valid");
    good.clone().verify(&ctx).expect("co-signed by the new key");
    // The co-signature names another new key: refused, naming the new key.
    let mut forged = good.clone();
    if let ModActionKind::Succeed { new, .. } = &mut forged.content.kind {
        *new = public(1);
    }
    let forged = Signed::sign(forged.content, &POOL[4].secret);
    assert_eq!(
        forged.clone().verify(&ctx),
        Err(ValidationError::BadSignature(public(1).short()))
    );
    let batch = protocol::Message::verify_many(
        vec![
            protocol::Message::Moderation(forged),
            protocol::Message::Moderation(good.clone()),
        ],
        &ctx,
        &mut rand::rngs::StdRng::seed_from_u64(1),
    );
    assert!(matches!(&batch[0], Err(ValidationError::BadSignature(k)) if *k == public(1).short()));
    assert!(batch[1].is_ok());
    // Travels as version 2, so older nodes refuse it by its version.
    let bytes = protocol::Message::Moderation(good).encode();
    assert_eq!(bytes[0], protocol::message::SUCCESSION_WIRE_VERSION);
    let mut as_v1 = bytes.clone();
    as_v1[0] = protocol::wire::WIRE_VERSION;
    assert!(protocol::Message::decode(&as_v1).is_err());
    assert!(protocol::Message::decode(&bytes).is_ok());
}

// ---------------------------------------------------------------------
// Co-admins
// ---------------------------------------------------------------------

fn is_moderator_now(state: &protocol::ModerationState, i: usize) -> bool {
    state.current_moderators().contains(&public(i))
}

#[test]
fn a_co_admin_appoints_and_revokes_moderators() {
    let member = public(4);
    let actions = vec![
        spec(ADMIN, Kind::CoAdmin(1), 1, 0),
        spec(1, Kind::Appoint(2), 2, 0),
        spec(2, Kind::Block(4, 0), 3, 0),
    ];
    let state = same_in_every_order(&actions);
    assert_eq!(state.co_admins(), vec![public(1)]);
    assert!(is_moderator_now(&state, 1), "a co-admin moderates");
    assert!(is_moderator_now(&state, 2));
    assert!(state.block(&member, &Scope::Community).is_some());

    let mut more = actions.clone();
    more.push(spec(1, Kind::Revoke(2, Some(0)), 5, 1));
    more.push(spec(2, Kind::Block(5, 0), 6, 1));
    let state = same_in_every_order(&more);
    assert!(!is_moderator_now(&state, 2));
    assert!(state.block(&member, &Scope::Community).is_some(), "counted");
    assert!(state.block(&public(5), &Scope::Community).is_none());
}

#[test]
fn an_appointment_by_someone_who_is_not_yet_co_admin_waits_for_it() {
    // The co-admin's appointment arrives first, the admin's naming later,
    // dated before it: the appointment counts then.
    let appoint = spec(1, Kind::Appoint(2), 5, 0);
    let mut state = protocol::ModerationState::new(*COMMUNITY, admin());
    assert!(matches!(
        state.apply(&appoint),
        Err(ModerationError::NotAdmin { .. })
    ));
    assert!(!is_moderator_now(&state, 2));
    let applied = state
        .apply(&spec(ADMIN, Kind::CoAdmin(1), 1, 0))
        .expect("the admin names a co-admin");
    assert!(applied.moderators_changed);
    assert!(is_moderator_now(&state, 2));
    // Named after the appointment: it never counts.
    let late = same_in_every_order(&[
        spec(ADMIN, Kind::CoAdmin(1), 6, 0),
        spec(1, Kind::Appoint(2), 5, 0),
    ]);
    assert!(!is_moderator_now(&late, 2));
}

#[test]
fn nobody_blocks_a_co_admin_not_even_the_admin() {
    let co_admin = public(1);
    let actions = vec![
        spec(ADMIN, Kind::CoAdmin(1), 1, 0),
        spec(ADMIN, Kind::Appoint(2), 1, 1),
        spec(ADMIN, Kind::Block(1, 0), 2, 2),
        spec(2, Kind::Block(1, 1), 3, 0),
    ];
    let state = same_in_every_order(&actions);
    assert!(state.block(&co_admin, &Scope::Community).is_none());
    assert!(state.block(&co_admin, &scope(1)).is_none());
    assert!(matches!(
        state.why_not_effective(&actions[2].id()),
        Some(ModerationError::CoAdminTarget { .. })
    ));
    let block = ModActionKind::Block {
        author: co_admin,
        scope: Scope::Community,
        reason: "x".into(),
    };
    assert_eq!(
        state.check_new(&admin(), &block),
        Err(protocol::state::NoEffect::CannotBlockCoAdmin)
    );
    // Removed as co-admin first, then blocked: the block counts.
    let mut more = actions.clone();
    more.push(spec(ADMIN, Kind::RemoveCoAdmin(1, None), 4, 3));
    more.push(spec(ADMIN, Kind::Block(1, 0), 5, 4));
    let state = same_in_every_order(&more);
    assert!(state.block(&co_admin, &Scope::Community).is_some());
}

#[test]
fn removal_as_co_admin_is_final_for_backdated_appointments() {
    let actions = vec![
        spec(ADMIN, Kind::CoAdmin(1), 1, 0),
        spec(1, Kind::Appoint(2), 2, 0),
        spec(ADMIN, Kind::RemoveCoAdmin(1, Some(0)), 5, 1),
        // Signed after the removal, dated before it.
        spec(1, Kind::Appoint(3), 3, 1),
        // Still a moderator: a block counts.
        spec(1, Kind::Block(4, 0), 6, 2),
    ];
    let state = same_in_every_order(&actions);
    assert!(state.co_admins().is_empty());
    assert!(
        is_moderator_now(&state, 1),
        "a removed co-admin still moderates"
    );
    assert!(is_moderator_now(&state, 2), "counted by the removal");
    assert!(!is_moderator_now(&state, 3), "numbered after the removal");
    assert!(matches!(
        state.why_not_effective(&actions[3].id()),
        Some(ModerationError::Revoked { .. })
    ));
    assert!(state.block(&public(4), &Scope::Community).is_some());
}

#[test]
fn co_admins_cannot_appoint_or_revoke_each_other_or_name_co_admins() {
    let actions = vec![
        spec(ADMIN, Kind::CoAdmin(1), 1, 0),
        spec(ADMIN, Kind::CoAdmin(2), 1, 1),
        spec(1, Kind::Revoke(2, None), 2, 0),
        spec(1, Kind::CoAdmin(3), 2, 1),
    ];
    let state = same_in_every_order(&actions);
    assert_eq!(
        state.co_admins(),
        vec![public(1), public(2)]
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert!(!is_moderator_now(&state, 3));
    use protocol::state::NoEffect;
    assert_eq!(
        state.check_new(
            &public(1),
            &ModActionKind::RevokeModerator {
                key: public(2),
                upto_seq: None
            }
        ),
        Err(NoEffect::CoAdminTarget)
    );
    assert_eq!(
        state.check_new(
            &public(1),
            &ModActionKind::AppointCoAdmin { key: public(3) }
        ),
        Err(NoEffect::NotAdmin)
    );
    assert_eq!(
        state.check_new(
            &public(1),
            &ModActionKind::AppointModerator { key: public(3) }
        ),
        Ok(())
    );
}

#[test]
fn the_co_admin_role_follows_the_key_succession() {
    let actions = vec![
        spec(ADMIN, Kind::CoAdmin(1), 1, 0),
        spec(1, Kind::Succeed(6), 2, 0),
        spec(6, Kind::Appoint(3), 3, 1),
        spec(ADMIN, Kind::Block(6, 0), 4, 1),
    ];
    let state = fold_and_apply(&actions);
    assert_eq!(state.co_admins(), vec![public(6)]);
    assert!(is_moderator_now(&state, 3));
    assert!(state.block(&public(6), &Scope::Community).is_none());
    assert!(state.block(&public(1), &Scope::Community).is_none());
}

#[test]
fn a_co_admin_change_travels_with_its_own_version_byte() {
    let action = ModAction::create(
        &POOL[ADMIN],
        *COMMUNITY,
        1,
        ModActionKind::AppointCoAdmin { key: public(1) },
        5,
    )
    .expect("valid fields");
    let bytes = protocol::Message::Moderation(action.clone()).encode();
    assert_eq!(bytes[0], protocol::message::MEMBERSHIP_WIRE_VERSION);
    assert_eq!(
        protocol::Message::decode(&bytes).expect("decodes"),
        protocol::Message::Moderation(action)
    );
}

// ---------------------------------------------------------------------
// Membership (rule 8), policy per time (rule 9), manifest updates
// ---------------------------------------------------------------------

/// Index of the one-use invitation in most tests below.
const INV: usize = 0;

fn redeem(signer: usize, at: u64) -> VerifiedModAction {
    spec(signer, Kind::Redeem(INV), at, 0)
}

fn invite(uses: u32, expires_at: u64, at: u64) -> VerifiedModAction {
    spec(ADMIN, Kind::Invite(INV, uses, expires_at), at, 0)
}

#[test]
fn a_redemption_admits_its_signer_only_with_a_known_invitation() {
    let x = OUTSIDERS[0];
    let r = redeem(x, 5);
    let mut state = protocol::ModerationState::new(*COMMUNITY, admin());
    assert!(matches!(
        state.apply(&r),
        Err(ModerationError::RedemptionNoEffect { .. })
    ));
    assert!(!state.is_member(&public(x)));
    let applied = state.apply(&invite(1, 100, 1)).expect("the admin invites");
    assert!(applied.members_changed, "the waiting redemption admits");
    assert!(state.is_member(&public(x)));
    assert_eq!(state.admitted_at(&public(x)), Some(5));
    assert_eq!(state, fold(&[r, invite(1, 100, 1)]));
    // An invitation by a key that does not moderate admits nobody.
    let by_outsider = spec(OUTSIDERS[1], Kind::Invite(INV, 1, 100), 1, 0);
    assert!(!fold(&[by_outsider, redeem(x, 5)]).is_member(&public(x)));
}

#[test]
fn racing_redemptions_of_a_one_use_invitation_admit_the_same_one_in_every_order() {
    let (x, y) = (OUTSIDERS[0], OUTSIDERS[1]);
    let actions = vec![invite(1, 100, 1), redeem(y, 7), redeem(x, 6)];
    let state = same_in_every_order(&actions);
    assert!(state.is_member(&public(x)), "the earlier redemption wins");
    assert!(!state.is_member(&public(y)));
    // Same time: the lesser key wins.
    let tie = same_in_every_order(&[invite(1, 100, 1), redeem(y, 6), redeem(x, 6)]);
    let first = public(x).min(public(y));
    assert!(tie.is_member(&first));
    assert_eq!(tie.invitations()[0].admitted.len(), 1);
    // A later-arriving, earlier-dated redemption displaces the admitted one.
    let mut state = fold(&[invite(1, 100, 1), redeem(y, 7)]);
    assert!(state.is_member(&public(y)));
    let applied = state.apply(&redeem(x, 6)).expect("it admits");
    assert!(applied.members_changed);
    assert!(!state.is_member(&public(y)));
    // Two uses admit both.
    let two = same_in_every_order(&[invite(2, 100, 1), redeem(y, 7), redeem(x, 6)]);
    assert!(two.is_member(&public(x)) && two.is_member(&public(y)));
}

#[test]
fn an_expired_or_revoked_invitation_admits_nobody() {
    let x = OUTSIDERS[0];
    assert!(!fold(&[invite(1, 5, 1), redeem(x, 6)]).is_member(&public(x)));
    assert!(fold(&[invite(1, 6, 1), redeem(x, 6)]).is_member(&public(x)));
    let revoke = spec(1, Kind::RevokeInvite(INV), 4, 0);
    let appoint = spec(ADMIN, Kind::Appoint(1), 0, 0);
    let revoked = same_in_every_order(&[appoint.clone(), invite(1, 100, 1), revoke, redeem(x, 6)]);
    assert!(!revoked.is_member(&public(x)));
    assert!(revoked.invitations()[0].revoked_at == Some(4));
    // A redemption dated before the revocation still counts.
    let before = fold(&[
        appoint,
        invite(1, 100, 1),
        spec(1, Kind::RevokeInvite(INV), 9, 0),
        redeem(x, 6),
    ]);
    assert!(before.is_member(&public(x)));
}

#[test]
fn a_lockdown_stops_a_redemption_dated_after_it_and_lifting_lets_the_next_in() {
    let (x, y) = (OUTSIDERS[0], OUTSIDERS[1]);
    let lock = spec(ADMIN, Kind::Lockdown(0, None), 3, 1);
    let lift = spec(ADMIN, Kind::Lift(0), 8, 2);
    let state = same_in_every_order(&[invite(1, 100, 1), lock.clone(), redeem(x, 5)]);
    assert!(!state.is_member(&public(x)));
    assert_eq!(state.lockdowns().len(), 1);
    let lifted = same_in_every_order(&[
        invite(1, 100, 1),
        lock.clone(),
        redeem(x, 5),
        lift.clone(),
        redeem(y, 9),
    ]);
    assert!(!lifted.is_member(&public(x)));
    assert!(
        lifted.is_member(&public(y)),
        "the next one in after the lift"
    );
    assert!(lifted.lockdowns().is_empty());
    // A topic lockdown stops no admission.
    let topic_lock = spec(ADMIN, Kind::Lockdown(1, Some(2)), 3, 1);
    let state = fold(&[invite(1, 100, 1), topic_lock, redeem(x, 5)]);
    assert!(state.is_member(&public(x)));
    // ...but holds the posts of members admitted within its days.
    let hold = spec(ADMIN, Kind::Lockdown(1, Some(2)), 6, 3);
    let state = fold(&[invite(1, 100, 1), hold, redeem(x, 5)]);
    assert!(state.lockdown_holds(&public(x), &burnout(), 7));
    assert!(!state.lockdown_holds(&public(x), &common::topic("grief"), 7));
    assert!(
        !state.lockdown_holds(&public(x), &burnout(), 5),
        "before it"
    );
    assert!(!state.lockdown_holds(&public(ADMIN), &burnout(), 7));
    let three_days = 5 + 3 * protocol::membership::DAY_MS;
    assert!(!state.lockdown_holds(&public(x), &burnout(), three_days));
}

#[test]
fn a_community_block_ends_membership_and_an_unblock_restores_it() {
    let x = OUTSIDERS[0];
    let mut state = fold(&[invite(1, 100, 1), redeem(x, 5)]);
    let applied = state.apply(&spec(ADMIN, Kind::Block(x, 0), 6, 1)).unwrap();
    assert!(applied.members_changed);
    assert!(!state.is_member(&public(x)));
    // A topic block does not end membership.
    let topic = fold(&[
        invite(1, 100, 1),
        redeem(x, 5),
        spec(ADMIN, Kind::Block(x, 1), 6, 1),
    ]);
    assert!(topic.is_member(&public(x)));
    let applied = state
        .apply(&spec(ADMIN, Kind::Unblock(x, 0), 7, 2))
        .unwrap();
    assert!(applied.members_changed);
    assert!(state.is_member(&public(x)));
    // A new key of a blocked member's own making is not a member.
    let state = fold(&[
        invite(1, 100, 1),
        redeem(x, 5),
        spec(ADMIN, Kind::Block(x, 0), 6, 1),
    ]);
    assert!(!state.is_member(&public(FRESH[0])));
}

#[test]
fn a_successor_key_keeps_membership() {
    let x = OUTSIDERS[0];
    let succeed = spec(x, Kind::Succeed(FRESH[0]), 6, 1);
    let state = same_in_every_order(&[invite(1, 100, 1), redeem(x, 5), succeed]);
    assert!(state.is_member(&public(FRESH[0])));
    assert_eq!(state.admitted_at(&public(FRESH[0])), Some(5));
    // The successor redeeming the same invitation again uses nothing more.
    let again = spec(FRESH[0], Kind::Redeem(INV), 7, 0);
    let state = fold(&[
        invite(1, 100, 1),
        redeem(x, 5),
        spec(x, Kind::Succeed(FRESH[0]), 6, 1),
        again,
    ]);
    assert_eq!(state.invitations()[0].admitted.len(), 1);
}

#[test]
fn moderators_and_the_admin_are_members_without_an_invitation() {
    let state = fold(&[
        spec(ADMIN, Kind::Appoint(1), 1, 0),
        spec(ADMIN, Kind::Appoint(2), 1, 1),
        spec(ADMIN, Kind::Revoke(2, None), 2, 2),
    ]);
    assert!(state.is_member(&admin()));
    assert!(state.is_member(&public(1)));
    assert!(
        state.is_member(&public(2)),
        "a revoked moderator stays a member"
    );
    assert!(!state.is_member(&public(OUTSIDERS[0])));
}

fn manifest(version: u64, invite_only: bool, at: u64, signer: usize) -> VerifiedModAction {
    let policy = if invite_only {
        protocol::CommunityPolicy::NEW_COMMUNITY
    } else {
        protocol::CommunityPolicy::LEGACY
    };
    ModAction::create(
        &POOL[signer],
        *COMMUNITY,
        version,
        ModActionKind::UpdateManifest {
            version,
            rules: format!("rules v{version}"),
            policy,
        },
        at,
    )
    .expect("valid")
    .verify(&ValidationContext {
        community: *COMMUNITY,
        now_ms: 1_000,
    })
    .expect("verifies")
}

#[test]
fn the_newest_manifest_version_wins_and_an_older_one_replayed_changes_nothing() {
    let v1 = manifest(1, true, 1, ADMIN);
    let v2 = manifest(2, false, 5, ADMIN);
    let mut state = same_in_every_order(&[v1.clone(), v2.clone()]);
    let m = state.manifest_update().expect("an update");
    assert_eq!((m.version, m.rules.as_str()), (2, "rules v2"));
    assert_eq!(state.apply(&v1), Err(ModerationError::Duplicate));
    // An older version dated later changes nothing either.
    let old_late = manifest(1, true, 9, ADMIN);
    let applied = state.apply(&old_late).expect("kept");
    assert!(!applied.manifest_changed);
    assert_eq!(state.manifest_update().map(|m| m.version), Some(2));
    // A non-admin's update has no effect, even a moderator's.
    let by_mod = manifest(7, true, 9, 1);
    let mut with_mod = fold(&[spec(ADMIN, Kind::Appoint(1), 0, 0), v2.clone()]);
    assert!(with_mod.apply(&by_mod).is_err());
    assert_eq!(with_mod.manifest_update().map(|m| m.version), Some(2));
}

#[test]
fn the_policy_of_an_items_time_is_the_update_in_force_then() {
    let born = 1;
    let v1 = manifest(1, true, born, ADMIN);
    let v2 = manifest(2, false, 5, ADMIN);
    let state = fold(&[v1.clone(), v2.clone()]).born_at(born);
    assert!(state.invite_only_at(0), "born invite-only: its whole past");
    assert!(state.invite_only_at(4));
    assert!(!state.invite_only_at(5));
    // An open community switched to invite-only keeps its open era.
    let switched = fold(&[manifest(1, true, 5, ADMIN)]).born_at(born);
    assert!(!switched.invite_only_at(4));
    assert!(switched.invite_only_at(5));
    // Without an update: legacy (open).
    assert!(!fold(&[]).born_at(born).invite_only_at(10));
}

// --- The report workflow and the topic directory (issue 18) -------------

/// A resolution of one of three reports, or a description (or removal)
/// of one of two topics, by any key of the pool (counting only while
/// the signer moderates), verified as a node would.
fn workflow_action() -> impl Strategy<Value = VerifiedModAction> {
    use protocol::moderation::ReportOutcome;
    let outcome = prop::sample::select(vec![
        ReportOutcome::Hidden,
        ReportOutcome::Blocked,
        ReportOutcome::NoAction,
    ]);
    let kind = prop_oneof![
        (0u8..3, outcome).prop_map(|(r, outcome)| ModActionKind::ResolveReport {
            report: ActionId::of_bytes(&[r]),
            outcome,
            note: Vec::new(),
        }),
        (
            0u8..2,
            prop::sample::select(vec!["", "peer support", "for carers"])
        )
            .prop_map(|(t, d)| ModActionKind::DescribeTopic {
                topic: common::topic(if t == 0 { "burnout" } else { "grief" }),
                description: d.to_string(),
            }),
    ];
    (any_key(), kind, when()).prop_map(|(signer, kind, (at, seq))| {
        ModAction::create(&POOL[signer], *COMMUNITY, seq, kind, at)
            .expect("valid fields")
            .verify(&ValidationContext {
                community: *COMMUNITY,
                now_ms: 1_000,
            })
            .expect("a freshly signed action verifies")
    })
}

/// What the directory and the resolutions should be, written naively:
/// per topic (per report), the action with the greatest order key among
/// the effective ones (the fold's verdict, tested above); an empty
/// description lists nothing.
fn workflow_model(
    state: &protocol::ModerationState,
    actions: &[VerifiedModAction],
) -> (BTreeMap<TopicName, String>, BTreeMap<ActionId, String>) {
    let mut directory: BTreeMap<TopicName, (Key, String)> = BTreeMap::new();
    let mut resolved: BTreeMap<ActionId, (Key, String)> = BTreeMap::new();
    let effective: BTreeSet<ActionId> = state.log().iter().map(|a| a.id()).collect();
    for a in actions {
        if !effective.contains(&a.id()) {
            continue;
        }
        let key = key_of(a);
        let (map_entry, value) = match &a.kind {
            ModActionKind::DescribeTopic { topic, description } => {
                (directory.entry(topic.clone()), description.clone())
            }
            ModActionKind::ResolveReport {
                report, outcome, ..
            } => {
                let slot = resolved
                    .entry(*report)
                    .or_insert((key, outcome.to_string()));
                if key > slot.0 {
                    *slot = (key, outcome.to_string());
                }
                continue;
            }
            _ => continue,
        };
        let slot = map_entry.or_insert((key, value.clone()));
        if key > slot.0 {
            *slot = (key, value);
        }
    }
    (
        directory
            .into_iter()
            .filter(|(_, (_, d))| !d.is_empty())
            .map(|(t, (_, d))| (t, d))
            .collect(),
        resolved.into_iter().map(|(r, (_, o))| (r, o)).collect(),
    )
}

fn workflow_observed(
    state: &protocol::ModerationState,
) -> (BTreeMap<TopicName, String>, BTreeMap<ActionId, String>) {
    (
        state
            .topic_directory()
            .into_iter()
            .map(|(t, e)| (t, e.description))
            .collect(),
        state
            .resolutions()
            .into_iter()
            .map(|(r, res)| (r, res.outcome.to_string()))
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The topic directory and the resolved reports are the same in every
    /// arrival order (folded or applied one by one, with appointments and
    /// revocations of their signers mixed in), and are the latest
    /// effective description per topic and resolution per report.
    #[test]
    fn directory_and_resolutions_do_not_depend_on_order(
        specs in prop::collection::vec(prop_oneof![2 => honest(), 1 => junk()], 0..12),
        workflow in prop::collection::vec(workflow_action(), 0..16),
        seeds in (any::<u64>(), any::<u64>()),
    ) {
        let mut actions = verify_all(&specs);
        actions.extend(workflow);
        let whole = fold(&actions);
        let shown = workflow_observed(&whole);
        prop_assert_eq!(&shown, &workflow_model(&whole, &actions));
        prop_assert_eq!(&workflow_observed(&fold(&shuffled(&actions, seeds.0))), &shown);
        let (applied, _) = apply_all(&shuffled(&actions, seeds.1));
        prop_assert_eq!(&applied, &whole);
        prop_assert_eq!(&workflow_observed(&applied), &shown);
    }
}

/// A member's resolution or description is kept aside and counts only
/// once (and if) the member is appointed as of its time.
#[test]
fn only_moderators_resolve_reports_and_describe_topics() {
    use protocol::moderation::ReportOutcome;
    let report = ActionId::of_bytes(b"report");
    let resolve = spec_kind(
        1,
        ModActionKind::ResolveReport {
            report,
            outcome: ReportOutcome::NoAction,
            note: Vec::new(),
        },
        5,
        0,
    );
    let describe = spec_kind(
        1,
        ModActionKind::DescribeTopic {
            topic: burnout(),
            description: "work stress".into(),
        },
        5,
        1,
    );
    let mut state = fold(&[resolve.clone(), describe.clone()]);
    assert!(state.resolutions().is_empty(), "not a moderator");
    assert!(state.topic_directory().is_empty());
    state
        .apply(&spec(ADMIN, Kind::Appoint(1), 1, 0))
        .expect("the admin appoints");
    assert_eq!(
        state.resolution(&report).map(|r| r.outcome),
        Some(ReportOutcome::NoAction)
    );
    assert_eq!(
        state
            .topic_directory()
            .get(&burnout())
            .map(|e| e.description.clone()),
        Some("work stress".to_string())
    );
    // An empty description, later, removes the entry.
    let removal = spec_kind(
        ADMIN,
        ModActionKind::DescribeTopic {
            topic: burnout(),
            description: String::new(),
        },
        9,
        0,
    );
    state.apply(&removal).expect("the admin moderates");
    assert!(state.topic_directory().is_empty());
    // A description longer than one line's bound is refused before signing.
    assert!(ModAction::create(
        &POOL[ADMIN],
        *COMMUNITY,
        3,
        ModActionKind::DescribeTopic {
            topic: burnout(),
            description: "x".repeat(protocol::moderation::MAX_TOPIC_DESCRIPTION_BYTES + 1),
        },
        10,
    )
    .is_err());
}

fn spec_kind(signer: usize, kind: ModActionKind, at: u64, seq: u64) -> VerifiedModAction {
    ModAction::create(&POOL[signer], *COMMUNITY, seq, kind, at)
        .expect("valid fields")
        .verify(&ValidationContext {
            community: *COMMUNITY,
            now_ms: 1_000,
        })
        .expect("verifies")
}
