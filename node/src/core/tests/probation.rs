//! Posts held for approval on a node: stored and relayed like any post,
//! shown only to their author (marked as waiting) and to moderators (in
//! the list of held posts) until approved; a rejection deletes them.

use protocol::moderation::{Admission, CommunityPolicy, ModActionKind};
use protocol::Identity;

use super::*;

/// The admin's core with probation `n` published, and the update itself.
fn admin_core(w: &World, n: u32) -> (Core, Vec<Vec<u8>>) {
    let mut admin = w.core_on(Store::temporary().unwrap(), &w.admin);
    admin.take_effects();
    admin
        .moderate(
            ModActionKind::UpdateManifest {
                version: 1,
                rules: "be kind".into(),
                policy: CommunityPolicy {
                    admission: Admission::Open,
                    probation_posts: n,
                },
            },
            T0 + 1,
        )
        .unwrap();
    let update = gossiped(&mut admin);
    (admin, update)
}

/// The admin's core (probation 2), a newcomer's and a member's, both
/// knowing the policy; and the newcomer.
fn three_cores(w: &World) -> (Core, Core, Core, Identity) {
    let (admin, update) = admin_core(w, 2);
    let newcomer = Identity::generate(None);
    let mut author = w.core_on(Store::temporary().unwrap(), &newcomer);
    let mut member = w.core();
    deliver(&mut author, &update, T0 + 2);
    deliver(&mut member, &update, T0 + 2);
    (admin, author, member, newcomer)
}

/// What a core queued to gossip since the last call.
fn gossiped(core: &mut Core) -> Vec<Vec<u8>> {
    core.take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Gossip { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect()
}

/// Hands encoded items to a core as gossip; each must be taken.
fn deliver(core: &mut Core, items: &[Vec<u8>], now: u64) {
    for bytes in items {
        let m = Message::decode(bytes).unwrap();
        assert_eq!(gossip(core, &m, now), Verdict::Accept, "{m:?}");
    }
}

/// What a read on `core` shows now (readers see the state the core
/// published last: publish it first, as the worker does after each
/// request).
fn seen_by(core: &mut Core, topic: &TopicName) -> Vec<crate::api::PostView> {
    core.publish_shared();
    shown(core, topic)
}

fn ids(views: &[crate::api::PostView]) -> Vec<String> {
    views.iter().map(|v| v.id.clone()).collect()
}

#[test]
fn a_held_post_is_stored_everywhere_and_shown_only_to_its_author_and_moderators() {
    let w = World::new();
    let (mut admin, mut author, mut member, newcomer) = three_cores(&w);
    let post = w.post(&newcomer, "first time here", T0 + 10);
    let id = id_of(&post).to_string();
    for core in [&mut admin, &mut author, &mut member] {
        assert_eq!(
            gossip(core, &post, T0 + 20),
            Verdict::Accept,
            "stored and relayed"
        );
        assert!(core.store().contains_post(&id_of(&post)).unwrap());
    }
    assert!(
        seen_by(&mut member, &w.topic).is_empty(),
        "nobody else sees it"
    );
    let own = seen_by(&mut author, &w.topic);
    assert_eq!(ids(&own), vec![id.clone()]);
    assert!(own[0].held, "its author sees it marked as waiting");
    assert!(
        seen_by(&mut admin, &w.topic).is_empty(),
        "moderators see it in the queue"
    );
    let queue = admin.held_posts(T0 + 20).unwrap();
    assert_eq!(ids(&queue), vec![id.clone()]);
    assert_eq!(queue[0].body.as_deref(), Some("first time here"));
    assert!(member.held_posts(T0 + 20).unwrap().is_empty());

    admin.approve(id_of(&post), T0 + 30).unwrap();
    let approval = gossiped(&mut admin);
    deliver(&mut member, &approval, T0 + 31);
    deliver(&mut author, &approval, T0 + 31);
    let seen = seen_by(&mut member, &w.topic);
    assert_eq!(ids(&seen), vec![id.clone()]);
    assert!(!seen[0].held);
    assert!(!seen_by(&mut author, &w.topic)[0].held);
    assert!(admin.held_posts(T0 + 40).unwrap().is_empty());
    assert!(
        admin.approve(id_of(&post), T0 + 40).is_err(),
        "an approved post is not waiting any more"
    );
}

#[test]
fn after_enough_approvals_the_next_post_is_shown_at_once() {
    let w = World::new();
    let (mut admin, update) = admin_core(&w, 2);
    let newcomer = Identity::generate(None);
    let mut member = w.core();
    deliver(&mut member, &update, T0 + 2);
    let first = w.post(&newcomer, "one", T0 + 10);
    let second = w.post(&newcomer, "two", T0 + 11);
    for p in [&first, &second] {
        assert_eq!(gossip(&mut admin, p, T0 + 20), Verdict::Accept);
        assert_eq!(gossip(&mut member, p, T0 + 20), Verdict::Accept);
    }
    admin.approve(id_of(&first), T0 + 30).unwrap();
    let third = w.post(&newcomer, "three", T0 + 35);
    admin.approve(id_of(&second), T0 + 40).unwrap();
    let approvals = gossiped(&mut admin);
    deliver(&mut member, &approvals, T0 + 41);
    // Written between the two approvals: still on probation then.
    assert_eq!(gossip(&mut member, &third, T0 + 42), Verdict::Accept);
    let fourth = w.post(&newcomer, "four", T0 + 50);
    assert_eq!(gossip(&mut member, &fourth, T0 + 51), Verdict::Accept);
    let seen = ids(&seen_by(&mut member, &w.topic));
    assert_eq!(
        seen,
        vec![
            id_of(&first).to_string(),
            id_of(&second).to_string(),
            id_of(&fourth).to_string()
        ]
    );
    assert_eq!(member.moderation().approved_count(&newcomer.public()), 2);
}

#[test]
fn a_rejected_post_is_deleted_everywhere_and_only_its_author_sees_why() {
    let w = World::new();
    let (mut admin, mut author, mut member, newcomer) = three_cores(&w);
    let post = w.post(&newcomer, "buy my pills", T0 + 10);
    for core in [&mut admin, &mut author, &mut member] {
        assert_eq!(gossip(core, &post, T0 + 20), Verdict::Accept);
    }
    admin
        .reject(id_of(&post), "selling things".into(), T0 + 30)
        .unwrap();
    let rejection = gossiped(&mut admin);
    deliver(&mut member, &rejection, T0 + 31);
    deliver(&mut author, &rejection, T0 + 31);
    for core in [&admin, &author, &member] {
        assert!(!core.store().contains_post(&id_of(&post)).unwrap());
    }
    assert!(
        seen_by(&mut member, &w.topic).is_empty(),
        "no notice for others"
    );
    assert!(admin.held_posts(T0 + 40).unwrap().is_empty());
    let own = seen_by(&mut author, &w.topic);
    assert_eq!(own.len(), 1);
    assert!(own[0].rejected && own[0].hidden && own[0].body.is_none());
    assert_eq!(own[0].hidden_reason.as_deref(), Some("selling things"));
    // Sent again, it is refused like a hidden post.
    assert_ne!(gossip(&mut member, &post, T0 + 50), Verdict::Accept);
}

#[test]
fn only_a_held_post_is_approved_or_rejected_and_only_by_a_moderator() {
    let w = World::new();
    let (mut admin, update) = admin_core(&w, 2);
    let mut member = w.core();
    deliver(&mut member, &update, T0 + 2);
    let own = admin
        .publish(
            w.topic.clone(),
            protocol::post::Draft {
                body: "welcome".into(),
                parent: None,
                content_warning: None,
            },
            T0 + 5,
        )
        .unwrap();
    let err = admin.reject(own, "no".into(), T0 + 6).unwrap_err();
    assert!(
        err.to_string().contains("not waiting for approval"),
        "{err}"
    );
    let newcomer = Identity::generate(None);
    let post = w.post(&newcomer, "hello", T0 + 10);
    assert_eq!(gossip(&mut member, &post, T0 + 20), Verdict::Accept);
    assert!(matches!(
        member.approve(id_of(&post), T0 + 30),
        Err(NodeError::NotAllowed(_))
    ));
    assert!(member
        .moderation()
        .is_held(&id_of(&post), &newcomer.public(), &w.topic, T0 + 10));
}
