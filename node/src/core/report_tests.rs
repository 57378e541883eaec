//! The report workflow and the topic directory in the core: the queue
//! shows the reported post to a moderator who never joined its topic, a
//! resolution empties every moderator's queue, open reports are sealed
//! again when a moderator is appointed, and moderators keep the
//! directory.

use protocol::moderation::{ModActionKind, ReportOutcome};
use protocol::{Identity, Message, SealedReport, TopicName};

use super::*;

/// A report of `post` by a new reporter, sealed to `to` with the post's
/// copy, as the reporter's node makes it.
fn report_of(w: &World, post: &Message, to: &[protocol::PublicKey], at: u64) -> Message {
    report_by(w, &Identity::generate(None), post, to, at)
}

/// A report of `post` by `reporter`, sealed to `to`.
fn report_by(
    w: &World,
    reporter: &Identity,
    post: &Message,
    to: &[protocol::PublicKey],
    at: u64,
) -> Message {
    let Message::Post(signed) = post else {
        panic!("not a post")
    };
    let (sealed, _) = SealedReport::seal_with_copy(
        reporter,
        w.community(),
        signed,
        "cruel words",
        to,
        at,
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    Message::Report(sealed)
}

/// The kept action `id` of `core`, as it travels.
fn signed_action(core: &Core, id: protocol::ActionId) -> Message {
    let action = core
        .moderation()
        .actions()
        .find(|a| a.id() == id)
        .expect("the action is kept");
    Message::Moderation(action.signed().clone())
}

fn stored(core: &mut Core, m: &Message, now: u64) {
    let outcome = core.arrive_encoded(&[m.encode()], Origin::Sync, now);
    assert!(
        matches!(outcome.as_slice(), [Ok(Outcome::Stored)]),
        "{outcome:?}"
    );
}

#[test]
fn the_queue_shows_the_reported_post_to_a_moderator_who_never_joined_its_topic() {
    let w = World::new();
    let mut admin = w.core_on(Store::temporary().unwrap(), &w.admin);
    let grief: TopicName = "grief".parse().unwrap();
    assert!(!admin.is_joined(&grief));
    let author = Identity::generate(Some("bo".into()));
    let post = w.post_in(&author, &grief, "words that hurt", None, T0);
    stored(
        &mut admin,
        &report_of(&w, &post, &[w.admin.public()], T0 + 1),
        T0 + 2,
    );
    assert!(!admin.store().contains_post(&id_of(&post)).unwrap());

    let queue = admin.mod_queue();
    let [row] = queue.as_slice() else {
        panic!("one report: {queue:?}")
    };
    let shown = row.reported.as_ref().expect("the post the report carries");
    assert_eq!(shown.topic, "grief");
    assert_eq!(shown.body, "words that hurt");
    assert_eq!(shown.author.key, author.public().to_string());
    assert_eq!(shown.author.name.as_deref(), Some("bo"));
    assert_eq!(row.reason, "cruel words");
    assert_eq!(row.post, id_of(&post).to_string());
    // The printed ids and fingerprints are taken back.
    let short = &row.id[..11];
    assert_eq!(admin.resolve_post(short).unwrap(), id_of(&post));
    assert_eq!(
        admin.resolve_key(&author.public().short()).unwrap(),
        author.public()
    );
    assert_eq!(
        admin
            .resolve_key(&row.reporter.key[..11])
            .unwrap()
            .to_string(),
        row.reporter.key
    );
}

#[test]
fn a_resolved_report_leaves_every_moderators_queue() {
    let w = World::new();
    let moderator = Identity::generate(Some("mo".into()));
    let mut admin = w.core_on(Store::temporary().unwrap(), &w.admin);
    let mut other = w.core_on(Store::temporary().unwrap(), &moderator);
    let appoint = admin
        .moderate(
            ModActionKind::AppointModerator {
                key: moderator.public(),
            },
            T0,
        )
        .unwrap();
    let appointment = signed_action(&admin, appoint);
    stored(&mut other, &appointment, T0 + 1);
    let author = Identity::generate(None);
    let post = w.post(&author, "spam spam", T0 + 2);
    let report = report_of(&w, &post, &[w.admin.public(), moderator.public()], T0 + 3);
    stored(&mut admin, &report, T0 + 4);
    stored(&mut other, &report, T0 + 4);
    let id = admin.mod_queue()[0].id.clone();
    assert_eq!(other.mod_queue()[0].id, id, "one id on every node");

    let resolution = admin
        .resolve_report(
            &id[..12],
            ReportOutcome::NoAction,
            "not spam: a poem",
            T0 + 5,
        )
        .unwrap();
    assert!(admin.mod_queue().is_empty());
    let err = admin
        .resolve_report(&id, ReportOutcome::Hidden, "", T0 + 6)
        .unwrap_err();
    assert!(err.to_string().contains("resolved already"), "{err}");

    // The other moderator's node gets the signed resolution: its queue
    // empties too, and the note opens for that moderator.
    let action = signed_action(&admin, resolution);
    assert_eq!(other.mod_queue().len(), 1);
    stored(&mut other, &action, T0 + 7);
    assert!(other.mod_queue().is_empty());
    let done = other
        .moderation()
        .resolution(&id.parse().unwrap())
        .expect("resolved");
    assert_eq!(done.outcome, ReportOutcome::NoAction);
    assert_eq!(
        protocol::report::open_note(&done.note, &moderator.secret).as_deref(),
        Some("not spam: a poem")
    );
    // A member cannot resolve.
    let mut member = w.core();
    assert!(member
        .resolve_report(&id, ReportOutcome::NoAction, "", T0 + 8)
        .is_err());
}

#[test]
fn open_reports_are_sealed_again_to_a_moderator_appointed_later() {
    let w = World::new();
    let mut admin = w.core_on(Store::temporary().unwrap(), &w.admin);
    let later = Identity::generate(Some("late".into()));
    let mut theirs = w.core_on(Store::temporary().unwrap(), &later);
    let author = Identity::generate(None);
    let post = w.post(&author, "a threat", T0);
    let report = report_of(&w, &post, &[w.admin.public()], T0 + 1);
    stored(&mut admin, &report, T0 + 2);
    assert!(
        admin.take_reseal_jobs(T0 + 3).is_empty(),
        "sealed to all now"
    );

    let appoint = admin
        .moderate(
            ModActionKind::AppointModerator {
                key: later.public(),
            },
            T0 + 4,
        )
        .unwrap();
    let jobs = admin.take_reseal_jobs(T0 + 5);
    assert_eq!(jobs.len(), 1);
    let sealed: Vec<SealedReport> = jobs.iter().map(|j| j.seal().unwrap()).collect();
    admin.take_effects();
    admin.publish_resealed(sealed, T0 + 6);
    let gossip: Vec<Message> = admin
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Gossip { bytes, .. } => Message::decode(&bytes).ok(),
            _ => None,
        })
        .collect();
    let [again @ Message::Report(_)] = gossip.as_slice() else {
        panic!("one re-sealed report gossiped: {gossip:?}")
    };
    // Nothing more to seal: the held envelopes now reach everyone.
    admin.reseal_due = true;
    assert!(admin.take_reseal_jobs(T0 + 7).is_empty());
    assert_eq!(admin.mod_queue().len(), 1, "one report, two envelopes");

    // The new moderator's node, which knows of the appointment, refuses
    // the old envelope (not sealed to the moderators now) and opens the
    // new one: the same report, by the same id.
    let appointment = signed_action(&admin, appoint);
    stored(&mut theirs, &appointment, T0 + 8);
    let old = theirs.arrive_encoded(&[report.encode()], Origin::Sync, T0 + 9);
    assert!(matches!(old.as_slice(), [Err(_)]), "{old:?}");
    assert!(theirs.mod_queue().is_empty());
    stored(&mut theirs, again, T0 + 9);
    let queue = theirs.mod_queue();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].id, admin.mod_queue()[0].id);
    assert_eq!(
        queue[0].reported.as_ref().map(|p| p.body.as_str()),
        Some("a threat")
    );
    // A member's node seals nothing (it reads no report).
    let mut member = w.core();
    member.reseal_due = true;
    assert!(member.take_reseal_jobs(T0 + 10).is_empty());
}

#[test]
fn moderators_keep_the_topic_directory_and_members_see_it() {
    let w = World::new();
    let mut admin = w.core_on(Store::temporary().unwrap(), &w.admin);
    let grief: TopicName = "grief".parse().unwrap();
    let describe = admin
        .describe_topic(grief.clone(), "losing someone\nand living on", T0)
        .unwrap();
    admin
        .describe_topic(w.topic.clone(), "work stress", T0 + 1)
        .unwrap();
    let err = admin
        .describe_topic(w.topic.clone(), " work  stress ", T0 + 2)
        .unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
    let mut member = w.core();
    assert!(member
        .describe_topic(grief.clone(), "mine now", T0 + 3)
        .is_err());
    for action in admin.moderation().actions() {
        stored(
            &mut member,
            &Message::Moderation(action.signed().clone()),
            T0 + 4,
        );
    }
    let directory = member.topic_directory();
    let shown: Vec<(&str, &str, bool)> = directory
        .iter()
        .map(|e| (e.topic.as_str(), e.description.as_str(), e.joined))
        .collect();
    assert_eq!(
        shown,
        [
            ("burnout", "work stress", true),
            ("grief", "losing someone and living on", false)
        ]
    );
    assert_eq!(directory[1].by.key, w.admin.public().to_string());
    assert!(admin.moderation().actions().any(|a| a.id() == describe));
    // An empty description removes the entry.
    admin.describe_topic(grief.clone(), "", T0 + 5).unwrap();
    assert_eq!(admin.topic_directory().len(), 1);
    assert!(admin.describe_topic(grief, " ", T0 + 6).is_err());
}

#[test]
fn in_an_invite_only_community_only_members_reports_reach_the_queue() {
    let w = World::new();
    let mut admin = w.core_on(Store::temporary().unwrap(), &w.admin);
    stored(&mut admin, &w.policy(1, true, T0), T0);
    let invitation = protocol::SecretKey::generate();
    stored(&mut admin, &w.invite(&invitation, 1, T0 + 1), T0 + 1);
    let member = Identity::generate(None);
    stored(&mut admin, &w.redeem(&member, &invitation, T0 + 2), T0 + 2);
    let post = w.post(&member, "words that hurt", T0 + 3);
    stored(&mut admin, &post, T0 + 3);
    let to = [w.admin.public()];
    // Relays cannot tell a stranger's sealed report from a member's: the
    // admin's node stores both (proof both were processed) and shows one.
    let stranger = Identity::generate(None);
    stored(
        &mut admin,
        &report_by(&w, &stranger, &post, &to, T0 + 4),
        T0 + 4,
    );
    stored(
        &mut admin,
        &report_by(&w, &member, &post, &to, T0 + 5),
        T0 + 5,
    );
    let queue = admin.mod_queue();
    let [row] = queue.as_slice() else {
        panic!("the member's report alone: {queue:?}")
    };
    assert_eq!(row.reporter.key, member.public().to_string());

    // The stranger's own node says why it will not report.
    let mut strangers = w.core_on(Store::temporary().unwrap(), &stranger);
    for m in [
        w.policy(1, true, T0),
        w.invite(&invitation, 1, T0 + 1),
        w.redeem(&member, &invitation, T0 + 2),
        post.clone(),
    ] {
        stored(&mut strangers, &m, T0 + 6);
    }
    let refused = strangers.report_plan(id_of(&post), T0 + 7);
    assert!(
        matches!(&refused, Err(NodeError::NotAllowed(why)) if why.contains("not a member")),
        "{:?}",
        refused.err()
    );
}
