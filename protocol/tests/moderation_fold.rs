//! Properties of the moderation fold over random sets of real, signed and
//! verified actions by a fixed pool of keys (an admin, three keys that may
//! be appointed moderators, two outsiders who never are):
//!
//! - [`ModerationState::fold`] does not depend on the order of the set, and
//!   agrees with a small reference model of the rules in `state.rs`.
//! - [`ModerationState::apply`] always equals the fold of the actions it
//!   accepted; with every appoint/revoke applied first, any order of the
//!   rest gives one and the same state, whose effect (moderators, blocks,
//!   hides, pins, public log) is that of folding the whole set.
//! - Actions by outsiders, appointments by anyone but the admin and actions
//!   of another community change nothing.
//! - A moderator's actions after their revocation have no effect; a forged
//!   action (changed after signing) does not verify.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use proptest::prelude::*;
use protocol::moderation::{ModAction, ModActionKind, Scope, VerifiedModAction};
use protocol::state::{Decision, ModerationError};
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

/// The keys, from fixed seeds, with pseudonyms.
static POOL: LazyLock<Vec<Identity>> = LazyLock::new(|| {
    [
        (common::ADMIN, "admin"),
        (20, "mod-a"),
        (21, "mod-b"),
        (22, "mod-c"),
        (30, "member-x"),
        (31, "member-y"),
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
    Revoke(usize),
    Block(usize, u8),
    Unblock(usize, u8),
    Hide(u8),
    Unhide(u8),
    Pin(u8),
    Unpin(u8),
}

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
        match self.kind {
            Kind::Appoint(k) => ModActionKind::AppointModerator { key: public(k) },
            Kind::Revoke(k) => ModActionKind::RevokeModerator { key: public(k) },
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
        }
    }

    /// Signs the action with its signer's key and verifies it in its own
    /// community, as a node receiving it would.
    fn verified(&self) -> VerifiedModAction {
        let community = if self.other_community {
            *OTHER_COMMUNITY
        } else {
            *COMMUNITY
        };
        ModAction::create(
            &POOL[self.signer],
            community,
            self.seq,
            self.kind(),
            self.at,
        )
        .expect("valid fields")
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

fn role_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        candidate().prop_map(Kind::Appoint),
        candidate().prop_map(Kind::Revoke),
    ]
}

/// Small times and sequence numbers, so that ties are frequent.
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
/// appoint/revoke by anyone but the admin, or anything of another
/// community.
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
                any_key().prop_map(Kind::Revoke)
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

/// Any action at all.
fn any_spec() -> impl Strategy<Value = Spec> {
    prop_oneof![3 => honest(), 1 => junk()]
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

/// Applies `actions` one by one; returns the state and what was accepted.
fn apply_all(actions: &[VerifiedModAction]) -> (protocol::ModerationState, Vec<VerifiedModAction>) {
    let mut state = protocol::ModerationState::new(*COMMUNITY, admin());
    let mut accepted = Vec::new();
    for a in actions {
        let before = state.clone();
        match state.apply(a) {
            Ok(()) => accepted.push(a.clone()),
            Err(_) => assert_eq!(state, before, "a refused action changed the state"),
        }
    }
    (state, accepted)
}

/// Appoints and revocations first, each group in its own shuffled order.
fn roles_first(actions: &[VerifiedModAction], seed: u64) -> Vec<VerifiedModAction> {
    let (roles, rest): (Vec<_>, Vec<_>) =
        actions.iter().cloned().partition(|a| a.kind.admin_only());
    let mut out = shuffled(&roles, seed);
    out.extend(shuffled(&rest, seed.wrapping_add(1)));
    out
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

fn model(actions: &[VerifiedModAction]) -> Model {
    let admin = admin();
    // Rule 7 and duplicates.
    let mut valid: BTreeMap<ActionId, &VerifiedModAction> = BTreeMap::new();
    for a in actions.iter().filter(|a| a.community == *COMMUNITY) {
        valid.insert(a.id(), a);
    }
    // Rule 2.
    let roles: Vec<(Key, PublicKey, bool)> = valid
        .values()
        .filter(|a| a.signer == admin)
        .filter_map(|a| match a.kind {
            ModActionKind::AppointModerator { key } => Some((key_of(a), key, true)),
            ModActionKind::RevokeModerator { key } => Some((key_of(a), key, false)),
            _ => None,
        })
        .collect();
    // Rule 3 (and 1).
    let is_moderator = |k: &PublicKey, t: u64| {
        *k == admin
            || roles
                .iter()
                .filter(|(key, target, _)| target == k && key.0 <= t)
                .max_by_key(|(key, _, _)| *key)
                .is_some_and(|(_, _, appointed)| *appointed)
    };
    // Rules 4 and 5: latest effective action per target wins.
    let mut blocks: BTreeMap<(PublicKey, Scope), (Key, bool)> = BTreeMap::new();
    let mut hides: BTreeMap<PostId, (Key, bool)> = BTreeMap::new();
    let mut pins: BTreeMap<PostId, (Key, bool)> = BTreeMap::new();
    fn win<T: Ord>(map: &mut BTreeMap<T, (Key, bool)>, target: T, key: Key, on: bool) {
        let entry = map.entry(target).or_insert((key, on));
        if key > entry.0 {
            *entry = (key, on);
        }
    }
    for a in valid
        .values()
        .filter(|a| !a.kind.admin_only() && is_moderator(&a.signer, a.created_at))
    {
        let key = key_of(a);
        match &a.kind {
            ModActionKind::Block { author, scope, .. } => {
                win(&mut blocks, (*author, scope.clone()), key, true)
            }
            ModActionKind::Unblock { author, scope } => {
                win(&mut blocks, (*author, scope.clone()), key, false)
            }
            ModActionKind::Hide { post, .. } => win(&mut hides, *post, key, true),
            ModActionKind::Unhide { post } => win(&mut hides, *post, key, false),
            ModActionKind::Pin { post } => win(&mut pins, *post, key, true),
            ModActionKind::Unpin { post } => win(&mut pins, *post, key, false),
            _ => unreachable!("filtered out"),
        }
    }
    fn on<T: Ord>(m: BTreeMap<T, (Key, bool)>) -> BTreeSet<T> {
        m.into_iter()
            .filter(|(_, (_, on))| *on)
            .map(|(t, _)| t)
            .collect()
    }
    // Moderators now: the latest appoint/revoke of each key is an appoint.
    let mut latest: BTreeMap<PublicKey, (Key, bool)> = BTreeMap::new();
    for (key, target, appointed) in &roles {
        win(&mut latest, *target, *key, *appointed);
    }
    let mut moderators = on(latest);
    moderators.insert(admin);
    (on(blocks), on(hides), on(pins), moderators)
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

    /// Whatever the order, `apply` ends in the fold of what it accepted.
    #[test]
    fn apply_equals_the_fold_of_what_it_accepted(
        specs in prop::collection::vec(any_spec(), 0..28),
        seed in any::<u64>(),
    ) {
        let actions = shuffled(&verify_all(&specs), seed);
        let (state, accepted) = apply_all(&actions);
        prop_assert_eq!(&state, &fold(&accepted));
    }

    /// With every appoint/revoke applied first, the rest may come in any
    /// order: the same state, with the effect of folding the whole set.
    #[test]
    fn apply_with_roles_first_is_order_independent(
        specs in prop::collection::vec(any_spec(), 0..28),
        seeds in (any::<u64>(), any::<u64>()),
    ) {
        let actions = verify_all(&specs);
        let (one, accepted) = apply_all(&roles_first(&actions, seeds.0));
        let (two, _) = apply_all(&roles_first(&actions, seeds.1));
        prop_assert_eq!(&one, &two);
        prop_assert_eq!(&one, &fold(&accepted));
        // `fold` also keeps the actions that are not effective (a later
        // appointment could make them so), `apply` refuses them: the kept
        // sets differ, what they decide does not.
        let whole = fold(&actions);
        prop_assert_eq!(effect(&one), effect(&whole));
        prop_assert_eq!(observed(&one), model(&actions));
    }

    /// Outsiders' actions, appointments by non-admins and actions of
    /// another community change nothing, folded or applied.
    #[test]
    fn junk_changes_nothing(
        specs in prop::collection::vec(honest(), 0..20),
        junk_specs in prop::collection::vec(junk(), 1..10),
        seed in any::<u64>(),
    ) {
        let actions = verify_all(&specs);
        let junk = verify_all(&junk_specs);
        let mut with_junk = actions.clone();
        with_junk.extend(junk.iter().cloned());
        prop_assert_eq!(effect(&fold(&with_junk)), effect(&fold(&actions)));
        prop_assert_eq!(
            model(&with_junk), model(&actions),
            "the reference model agrees the junk is inert"
        );

        let (clean, _) = apply_all(&roles_first(&actions, seed));
        let (state, accepted) = apply_all(&roles_first(&with_junk, seed));
        prop_assert_eq!(&state, &clean);
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
    let revoke = spec(ADMIN, Kind::Revoke(m), 20, 1);
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
            Err(ModerationError::NotModerator(public(m).short()))
        );
    }
    // Before the revocation (from the appointment on) it does take effect,
    // and a revocation arriving later does not undo it.
    for at in [10, 19] {
        let block = spec(m, Kind::Block(x, 0), at, 0);
        let (state, accepted) = apply_all(&[appoint.clone(), block.clone(), revoke.clone()]);
        assert_eq!(accepted.len(), 3);
        let info = state
            .is_blocked(&public(x), &burnout())
            .expect("a block while appointed holds");
        assert_eq!(info.by, public(m));
        assert_eq!(info.action, block.id());
        assert_eq!(state, fold(&[revoke.clone(), block, appoint.clone()]));
    }
}

#[test]
fn a_revocation_arriving_later_removes_the_effect_of_later_actions() {
    let m = CANDIDATES[1];
    let appoint = spec(ADMIN, Kind::Appoint(m), 10, 0);
    let hide = spec(m, Kind::Hide(0), 30, 0);
    let revoke = spec(ADMIN, Kind::Revoke(m), 20, 1);
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
        for kind in [Kind::Appoint(OUTSIDERS[1]), Kind::Revoke(m)] {
            let action = spec(signer, kind, 5, 0);
            assert_eq!(state.apply(&action), Err(ModerationError::NotAdmin));
            assert_eq!(state, before);
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
    assert_eq!(state.apply(&foreign), Err(ModerationError::WrongCommunity));
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
