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
//! - Actions by outsiders, appointments by anyone but the admin and actions
//!   of another community change nothing.
//! - A moderator's actions after their revocation have no effect; a forged
//!   action (changed after signing) does not verify.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use proptest::prelude::*;
use protocol::moderation::{ModAction, ModActionKind, Scope, VerifiedModAction};
use protocol::state::{Applied, Decision, ModerationError};
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

/// Applies `actions` one by one to a new state; returns the state and what
/// was accepted. Checks on the way that what each call reports is what
/// changed, and that a refused action decides nothing: one of another
/// community, an appointment by a non-admin or a duplicate leaves the state
/// as it was; one whose signer is not a moderator at its time changes no
/// decision and is kept aside for a later appointment.
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
            Err(ModerationError::NotModerator { .. }) => {
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
    }
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
            if a.community == *COMMUNITY && (!a.kind.admin_only() || a.signer == admin()) {
                prop_assert_eq!(again.apply(a), Err(ModerationError::Duplicate));
            }
        }
        prop_assert_eq!(&again, &whole);
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
            Err(ModerationError::NotModerator {
                signer: public(m).short(),
                at_ms: at,
            })
        );
        assert!(state.is_blocked(&public(x), &burnout()).is_none());
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
            assert_eq!(
                state.apply(&action),
                Err(ModerationError::NotAdmin {
                    signer: public(signer).short()
                })
            );
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
        .apply(&spec(ADMIN, Kind::Revoke(m), 20, 1))
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
        spec(ADMIN, Kind::Revoke(b), 9, 2),
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
