//! The arrival rules, against a temporary store and no network.

use protocol::moderation::{ModActionKind, Scope};
use protocol::post::Draft;
use protocol::sync::ItemKey;
use protocol::{
    CommunityManifest, Identity, Message, ModAction, Post, PostId, Retraction, SealedReport,
    SignedManifest, TopicName,
};
use tokio::sync::broadcast;

use super::*;
use crate::handle::ReadQuery;

mod probation;

const T0: u64 = 1_800_000_000_000;

struct World {
    admin: Identity,
    manifest: SignedManifest,
    topic: TopicName,
}

impl World {
    fn new() -> World {
        let admin = Identity::generate(Some("ada".into()));
        let manifest = CommunityManifest::create("c", "be kind", &admin.secret, T0).unwrap();
        World {
            admin,
            manifest,
            topic: "burnout".parse().unwrap(),
        }
    }

    fn core_on(&self, store: Store, me: &Identity) -> Core {
        let (events, _) = broadcast::channel(64);
        let mut core = Core::open(
            store,
            me.clone(),
            self.manifest.clone(),
            events,
            CoreConfig::default(),
        )
        .unwrap();
        core.join(self.topic.clone()).unwrap();
        core.publish_shared();
        core
    }

    fn core(&self) -> Core {
        self.core_on(Store::temporary().unwrap(), &Identity::generate(None))
    }

    fn community(&self) -> protocol::CommunityId {
        self.manifest.id()
    }

    fn post(&self, who: &Identity, body: &str, at: u64) -> Message {
        self.post_in(who, &self.topic, body, None, at)
    }

    fn post_in(
        &self,
        who: &Identity,
        topic: &TopicName,
        body: &str,
        parent: Option<PostId>,
        at: u64,
    ) -> Message {
        let draft = Draft {
            body: body.into(),
            parent,
            content_warning: None,
        };
        Message::Post(Post::write(who, self.community(), topic.clone(), draft, at).unwrap())
    }

    fn action(&self, who: &Identity, seq: u64, kind: ModActionKind, at: u64) -> Message {
        Message::Moderation(ModAction::create(who, self.community(), seq, kind, at).unwrap())
    }

    /// The admin hides `post`.
    fn hide(&self, seq: u64, post: &Message, reason: &str, at: u64) -> Message {
        self.action(
            &self.admin,
            seq,
            ModActionKind::Hide {
                post: id_of(post),
                reason: reason.into(),
            },
            at,
        )
    }
}

fn peer(n: u8) -> PeerRef {
    PeerRef(format!("peer-{n}"))
}

fn gossip(core: &mut Core, m: &Message, now: u64) -> Verdict {
    let channel = match m {
        Message::Post(p) => Channel::Topic(p.content.topic.clone()),
        _ => Channel::Community,
    };
    core.gossip_arrived(Some(&channel), &m.encode(), &peer(1), now)
}

fn id_of(m: &Message) -> PostId {
    match m {
        Message::Post(p) => p.id(),
        _ => panic!("not a post"),
    }
}

fn shown(core: &Core, topic: &TopicName) -> Vec<crate::api::PostView> {
    core.reader()
        .read(
            topic,
            &ReadQuery {
                limit: 1000,
                since_ms: None,
            },
        )
        .unwrap()
}

#[test]
fn a_forged_retraction_of_a_held_post_is_ignored_not_penalised() {
    let w = World::new();
    let mut core = w.core();
    let author = Identity::generate(None);
    let forger = Identity::generate(None);
    let post = w.post(&author, "hard week", T0);
    assert_eq!(gossip(&mut core, &post, T0), Verdict::Accept);
    let forged = Message::Retraction(Retraction::create(
        &forger.secret,
        w.community(),
        id_of(&post),
        T0 + 1,
    ));
    assert_eq!(
        gossip(&mut core, &forged, T0 + 2),
        Verdict::Ignore,
        "a node holding the post must not penalise a relay of a forged retraction"
    );
    assert!(core.store().contains_post(&id_of(&post)).unwrap());
    assert_eq!(core.store().log_len().unwrap(), 0, "nothing was logged");
}

#[test]
fn an_item_from_the_future_is_ignored_and_taken_once_the_clock_catches_up() {
    let w = World::new();
    let mut core = w.core();
    let author = Identity::generate(None);
    let ahead = T0 + 6 * 60 * 1000;
    let post = w.post(&author, "from a fast clock", ahead);
    assert_eq!(gossip(&mut core, &post, T0), Verdict::Ignore);
    assert!(!core.store().contains_post(&id_of(&post)).unwrap());
    // By sync, it is not counted as invalid either.
    let outcome = core.arrive_encoded(&[post.encode()], Origin::Sync, T0);
    assert!(matches!(outcome.as_slice(), [Err(Refusal::NotYet(_))]));
    assert_eq!(gossip(&mut core, &post, ahead), Verdict::Accept);
}

#[test]
fn a_retraction_deletes_the_post_and_keeps_it_out() {
    let w = World::new();
    let mut core = w.core();
    let author = Identity::generate(None);
    let post = w.post(&author, "I said too much", T0);
    assert_eq!(gossip(&mut core, &post, T0), Verdict::Accept);
    let r = Message::Retraction(Retraction::create(
        &author.secret,
        w.community(),
        id_of(&post),
        T0 + 1,
    ));
    assert_eq!(gossip(&mut core, &r, T0 + 2), Verdict::Accept);
    assert!(!core.store().contains_post(&id_of(&post)).unwrap());
    assert!(shown(&core, &w.topic).is_empty());
    // A copy that arrives again by sync is refused for good.
    let again = core.arrive_encoded(&[post.encode()], Origin::Sync, T0 + 3);
    assert!(matches!(again.as_slice(), [Err(Refusal::Moderation(_))]));
}

#[test]
fn reports_must_be_sealed_to_exactly_the_moderators_and_a_flood_is_bounded() {
    let w = World::new();
    let mut core = w.core();
    let author = Identity::generate(None);
    let post = w.post(&author, "hmm", T0);
    gossip(&mut core, &post, T0);
    let reporter = Identity::generate(None);
    let stranger = Identity::generate(None);
    let seal = |to: &[protocol::PublicKey], at: u64| {
        Message::Report(
            SealedReport::seal(
                &reporter,
                w.community(),
                id_of(&post),
                "unkind",
                to,
                at,
                &mut rand::rngs::OsRng,
            )
            .unwrap(),
        )
    };
    let wrong = seal(&[w.admin.public(), stranger.public()], T0 + 1);
    let outcome = core.arrive_encoded(&[wrong.encode()], Origin::Sync, T0 + 1);
    assert!(matches!(outcome.as_slice(), [Err(Refusal::NotAdmitted(_))]));
    assert_eq!(core.store().log_len().unwrap(), 0);
    // One peer relaying many well-formed reports: past its budget they are
    // ignored and the log stops growing.
    // Sealed first (each takes a proof of work), then relayed at once, so
    // the per-minute budget gets no time to refill.
    let flood: Vec<Message> = (0..14)
        .map(|i| seal(&[w.admin.public()], T0 + 10 + i))
        .collect();
    let mut accepted = 0;
    for (i, r) in flood.iter().enumerate() {
        if gossip(&mut core, r, T0 + 10 + i as u64) == Verdict::Accept {
            accepted += 1;
        }
    }
    assert_eq!(accepted, limits::REPORTS_PER_PEER_PER_MINUTE as usize);
    assert_eq!(core.store().log_len().unwrap(), accepted as u64);
    // An expired report is ignored.
    let old = seal(&[w.admin.public()], T0);
    let later = T0 + arrival::REPORT_TTL_MS + 1;
    let outcome = core.arrive_encoded(&[old.encode()], Origin::Sync, later);
    assert!(matches!(outcome.as_slice(), [Err(Refusal::NotAdmitted(_))]));
}

#[test]
fn a_block_deletes_the_authors_posts_and_a_crash_before_enforcement_is_repaired_at_start() {
    let w = World::new();
    let store = Store::temporary().unwrap();
    let me = Identity::generate(None);
    let mut core = w.core_on(store.clone(), &me);
    let troll = Identity::generate(None);
    for i in 0..50 {
        let p = w.post(&troll, &format!("spam {i}"), T0 + i * 61_000);
        assert_eq!(gossip(&mut core, &p, T0 + i * 61_000), Verdict::Accept);
    }
    let kind_post = w.post(&me, "welcome", T0);
    gossip(&mut core, &kind_post, T0);
    // The block's log entry is written but the deletion "crashed": write
    // the action into the log directly, as a crash between the two would
    // leave it.
    let block = w.action(
        &w.admin,
        1,
        ModActionKind::Block {
            author: troll.public(),
            scope: Scope::Community,
            reason: "spam".into(),
        },
        T0 + 100_000_000,
    );
    let Message::Moderation(signed) = &block else {
        unreachable!()
    };
    let key = ItemKey {
        created_at: T0 + 100_000_000,
        id: signed.id().0,
    };
    store.insert_log(key, &block.encode()).unwrap();
    assert_eq!(store.count_topic(&w.topic).unwrap(), 51);
    drop(core);
    // At start the folded state is enforced again.
    let core = w.core_on(store.clone(), &me);
    assert_eq!(core.store().count_topic(&w.topic).unwrap(), 1);
    let views = shown(&core, &w.topic);
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].body.as_deref(), Some("welcome"));
}

#[test]
fn unhide_shows_the_post_again_from_its_notice() {
    let w = World::new();
    let mut core = w.core();
    let author = Identity::generate(None);
    let post = w.post(&author, "a bad day", T0);
    gossip(&mut core, &post, T0);
    let hide = w.hide(1, &post, "needs a content warning", T0 + 1);
    assert_eq!(gossip(&mut core, &hide, T0 + 1), Verdict::Accept);
    core.publish_shared();
    let views = shown(&core, &w.topic);
    assert_eq!(views.len(), 1);
    assert!(views[0].hidden && views[0].body.is_none());
    let unhide = w.action(
        &w.admin,
        2,
        ModActionKind::Unhide { post: id_of(&post) },
        T0 + 2,
    );
    assert_eq!(gossip(&mut core, &unhide, T0 + 2), Verdict::Accept);
    core.publish_shared();
    let views = shown(&core, &w.topic);
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].body.as_deref(), Some("a bad day"));
    assert!(!views[0].hidden);
}

#[test]
fn a_reply_into_another_topic_is_ignored_and_refused_locally() {
    let w = World::new();
    let mut core = w.core();
    let other: TopicName = "anxiety".parse().unwrap();
    core.join(other.clone()).unwrap();
    let author = Identity::generate(None);
    let parent = w.post(&author, "parent", T0);
    gossip(&mut core, &parent, T0);
    let stray = w.post_in(&author, &other, "reply", Some(id_of(&parent)), T0 + 1);
    assert_eq!(gossip(&mut core, &stray, T0 + 1), Verdict::Ignore);
    let draft = Draft {
        body: "reply".into(),
        parent: Some(id_of(&parent)),
        content_warning: None,
    };
    assert!(matches!(
        core.publish(other, draft, T0 + 2),
        Err(crate::NodeError::BadInput(_))
    ));
}

#[test]
fn actions_that_change_nothing_are_not_signed_and_nobody_blocks_the_admin() {
    let w = World::new();
    let store = Store::temporary().unwrap();
    let mut core = w.core_on(store, &w.admin);
    let post = core
        .publish(
            w.topic.clone(),
            Draft {
                body: "rules".into(),
                parent: None,
                content_warning: None,
            },
            T0,
        )
        .unwrap();
    core.moderate(ModActionKind::Pin { post }, T0 + 1).unwrap();
    let log = core.store().log_len().unwrap();
    assert!(core.moderate(ModActionKind::Pin { post }, T0 + 2).is_err());
    assert!(core
        .moderate(
            ModActionKind::AppointModerator {
                key: w.admin.public()
            },
            T0 + 3
        )
        .is_err());
    let nobody = Identity::generate(None);
    assert!(core
        .moderate(
            ModActionKind::RevokeModerator {
                key: nobody.public(),
                upto_seq: None
            },
            T0 + 4
        )
        .is_err());
    assert!(core
        .moderate(
            ModActionKind::Block {
                author: w.admin.public(),
                scope: Scope::Community,
                reason: "x".into()
            },
            T0 + 5
        )
        .is_err());
    assert_eq!(
        core.store().log_len().unwrap(),
        log,
        "nothing more was logged"
    );
}

#[test]
fn own_items_are_dated_strictly_after_each_other_even_in_one_millisecond() {
    let w = World::new();
    let store = Store::temporary().unwrap();
    let me = Identity::generate(None);
    let mut core = w.core_on(store, &me);
    let draft = |b: &str| Draft {
        body: b.into(),
        parent: None,
        content_warning: None,
    };
    let a = core.publish(w.topic.clone(), draft("first"), T0).unwrap();
    let b = core.publish(w.topic.clone(), draft("second"), T0).unwrap();
    let pa = core.store().get_post(&a).unwrap().unwrap();
    let pb = core.store().get_post(&b).unwrap().unwrap();
    assert!(pa.content.created_at < pb.content.created_at);
    let views = shown(&core, &w.topic);
    let bodies: Vec<_> = views.iter().map(|v| v.body.clone().unwrap()).collect();
    assert_eq!(bodies, ["first", "second"]);
}

#[test]
fn a_reply_dated_before_its_parent_is_read_after_it() {
    let w = World::new();
    let mut core = w.core();
    let a = Identity::generate(None);
    let b = Identity::generate(None);
    let parent = w.post(&a, "parent", T0 + 10_000);
    gossip(&mut core, &parent, T0 + 10_000);
    // b's clock is behind.
    let reply = w.post_in(&b, &w.topic, "reply", Some(id_of(&parent)), T0);
    assert_eq!(gossip(&mut core, &reply, T0 + 10_001), Verdict::Accept);
    let bodies: Vec<_> = shown(&core, &w.topic)
        .into_iter()
        .map(|v| v.body.unwrap())
        .collect();
    assert_eq!(bodies, ["parent", "reply"]);
}

#[test]
fn expired_reports_leave_the_log() {
    let w = World::new();
    let mut core = w.core();
    let author = Identity::generate(None);
    let post = w.post(&author, "hmm", T0);
    gossip(&mut core, &post, T0);
    let reporter = Identity::generate(None);
    let report = Message::Report(
        SealedReport::seal(
            &reporter,
            w.community(),
            id_of(&post),
            "unkind",
            &[w.admin.public()],
            T0 + 1,
            &mut rand::rngs::OsRng,
        )
        .unwrap(),
    );
    let log_before = core.store().log_len().unwrap();
    let outcome = core.arrive_encoded(&[report.encode()], Origin::Sync, T0 + 2);
    assert!(matches!(outcome.as_slice(), [Ok(Outcome::Stored)]));
    assert_eq!(core.store().log_len().unwrap(), log_before + 1);
    assert_eq!(core.prune_reports(T0 + 3).unwrap(), 0, "not expired yet");
    let later = T0 + 1 + arrival::REPORT_TTL_MS + 1;
    assert_eq!(core.prune_reports(later).unwrap(), 1);
    assert_eq!(core.store().log_len().unwrap(), log_before);
}

#[test]
fn a_late_failure_of_an_old_sync_request_does_not_end_the_current_session() {
    let w = World::new();
    let mut core = w.core();
    let p = peer(7);
    core.sync_with(p.clone(), vec![w.topic.clone()]);
    let first = core
        .take_effects()
        .into_iter()
        .find_map(|e| match e {
            Effect::SyncRequest { ticket, .. } => Some(ticket),
            _ => None,
        })
        .expect("a sync request");
    assert_eq!(core.sync.progress().active_sessions, 1);
    // A failure naming another (older) request changes nothing.
    core.sync_failed(&p, first + 1000);
    assert_eq!(core.sync.progress().active_sessions, 1);
    // The failure of the request in flight ends that session; the next
    // scope (the topic) starts.
    core.sync_failed(&p, first);
    assert_eq!(core.sync.progress().completed_sessions, 1);
    assert!(core
        .take_effects()
        .iter()
        .any(|e| matches!(e, Effect::SyncRequest { .. })));
}

/// A session whose request fails while a page it took is still being
/// verified (two phases per answer) ends only once that page is stored:
/// its end never comes before what it received is on disk.
#[test]
fn a_failed_session_ends_only_after_the_page_it_took_is_stored() {
    use super::sync::{CheckedPage, DecodedPage};
    use protocol::sync::SyncScope;

    let w = World::new();
    let mut full = w.core();
    let authors: Vec<Identity> = (0..10).map(|_| Identity::generate(None)).collect();
    let items: Vec<Vec<u8>> = (0..700u64)
        .map(|i| {
            let who = &authors[(i % 10) as usize];
            w.post(who, &format!("post {i}"), T0 + i * 1_000).encode()
        })
        .collect();
    let now = T0 + 10_000_000;
    for chunk in items.chunks(350) {
        let outcomes = full.arrive_encoded(chunk, Origin::Sync, now);
        assert!(outcomes.iter().all(|o| matches!(o, Ok(Outcome::Stored))));
    }
    let p = peer(3);
    let mut empty = w.core();
    empty.sync_with(p.clone(), vec![w.topic.clone()]);
    // Both logs agree: that session ends on its first answer.
    let (log_ticket, request) = only_request_sent(&mut empty, &SyncScope::CommunityLog);
    let answer = full.responder().answer(&p, &request);
    empty.sync_decoded(&p, log_ticket, DecodedPage::decode(&answer), now);
    empty.sync_checked(
        &p,
        log_ticket,
        CheckedPage::check(&[], &empty.ctx(now)),
        now,
    );
    assert_eq!(empty.sync.progress().completed_sessions, 1);

    // The topic: the first answer is a page of posts, and more remain.
    let scope = SyncScope::Topic(w.topic.clone());
    let (ticket, request) = only_request_sent(&mut empty, &scope);
    let answer = full.responder().answer(&p, &request);
    let page = DecodedPage::decode(&answer);
    let page_items = page.items();
    assert!(!page_items.is_empty() && page_items.len() < items.len());
    empty.sync_decoded(&p, ticket, page, now);
    let next = only_request(&mut empty, &scope);
    // The next request fails while the page is being verified: the
    // session does not end yet.
    empty.sync_failed(&p, next);
    assert_eq!(empty.sync.progress().completed_sessions, 1);
    assert_eq!(empty.store().count_topic(&w.topic).unwrap(), 0);
    // The page is stored, then the session ends.
    let checked = CheckedPage::check(&page_items, &empty.ctx(now));
    empty.sync_checked(&p, ticket, checked, now);
    assert_eq!(
        empty.store().count_topic(&w.topic).unwrap(),
        page_items.len() as u64
    );
    assert_eq!(empty.sync.progress().completed_sessions, 2);
}

#[test]
fn a_revoked_moderators_backdated_block_from_the_network_has_no_effect() {
    let w = World::new();
    let mut core = w.core();
    let m = Identity::generate(Some("mo".into()));
    let author = Identity::generate(None);
    let post = w.post(&author, "hello", T0);
    gossip(&mut core, &post, T0);
    let appoint = w.action(
        &w.admin,
        1,
        ModActionKind::AppointModerator { key: m.public() },
        T0 + 1,
    );
    assert_eq!(gossip(&mut core, &appoint, T0 + 1), Verdict::Accept);
    let pin = w.action(&m, 1, ModActionKind::Pin { post: id_of(&post) }, T0 + 2);
    assert_eq!(gossip(&mut core, &pin, T0 + 2), Verdict::Accept);
    let revoke = w.action(
        &w.admin,
        2,
        ModActionKind::RevokeModerator {
            key: m.public(),
            upto_seq: Some(1),
        },
        T0 + 10,
    );
    assert_eq!(gossip(&mut core, &revoke, T0 + 10), Verdict::Accept);
    // After the revocation, m signs a block dated before it.
    let backdated = w.action(
        &m,
        2,
        ModActionKind::Block {
            author: author.public(),
            scope: Scope::Community,
            reason: "revenge".into(),
        },
        T0 + 5,
    );
    assert_ne!(gossip(&mut core, &backdated, T0 + 20), Verdict::Accept);
    assert!(core
        .moderation()
        .is_blocked(&author.public(), &w.topic)
        .is_none());
    assert!(core.store().contains_post(&id_of(&post)).unwrap());
    // What m did before the revocation stands.
    assert!(core.moderation().is_pinned(&id_of(&post)));
}

#[test]
fn a_hidden_post_is_found_by_the_short_id_read_printed() {
    let w = World::new();
    let mut core = w.core();
    let author = Identity::generate(None);
    let post = w.post(&author, "a bad day", T0);
    gossip(&mut core, &post, T0);
    let hide = w.hide(1, &post, "cw", T0 + 1);
    gossip(&mut core, &hide, T0 + 1);
    let short: String = id_of(&post).to_string().chars().take(11).collect();
    assert_eq!(core.resolve_post(&short).unwrap(), id_of(&post));
}

// ---------------------------------------------------------------------
// Key succession
// ---------------------------------------------------------------------

impl World {
    /// `old` moves to `new` (which co-signs).
    fn succession(&self, old: &Identity, new: &Identity, seq: u64, at: u64) -> Message {
        Message::Moderation(
            ModAction::succeed(old, &new.secret, self.community(), seq, at).unwrap(),
        )
    }
}

/// The items a core's local writes gossip.
fn gossiped(core: &mut Core) -> Vec<Message> {
    core.take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Gossip { bytes, .. } => Message::decode(&bytes).ok(),
            _ => None,
        })
        .collect()
}

fn post_refused_by_moderation(core: &mut Core, m: &Message, now: u64) -> bool {
    let outcome = core.arrive_encoded(&[m.encode()], Origin::Sync, now);
    matches!(outcome.as_slice(), [Err(Refusal::Moderation(_))])
}

#[test]
fn a_blocked_keys_succession_does_not_escape_the_block() {
    let w = World::new();
    let mut core = w.core();
    let troll = Identity::generate(None);
    let fresh = Identity::generate(None);
    // The new key's post arrives before anything links it.
    let early = w.post(&fresh, "hello again", T0 + 1);
    assert_eq!(gossip(&mut core, &early, T0 + 1), Verdict::Accept);
    let block = w.action(
        &w.admin,
        1,
        ModActionKind::Block {
            author: troll.public(),
            scope: Scope::Community,
            reason: "abuse".into(),
        },
        T0 + 2,
    );
    assert_eq!(gossip(&mut core, &block, T0 + 2), Verdict::Accept);
    let escape = w.succession(&troll, &fresh, 1, T0 + 3);
    assert_eq!(gossip(&mut core, &escape, T0 + 3), Verdict::Accept);
    assert!(
        !core.store().contains_post(&id_of(&early)).unwrap(),
        "the new key's post was deleted with the block"
    );
    let later = w.post(&fresh, "you cannot stop me", T0 + 4);
    assert!(post_refused_by_moderation(&mut core, &later, T0 + 4));
    assert!(shown(&core, &w.topic).is_empty());
    // The same after a restart (the fold of the stored log).
    let store = core.store().clone();
    drop(core);
    let mut core = w.core_on(store, &Identity::generate(None));
    assert!(post_refused_by_moderation(&mut core, &later, T0 + 5));
}

#[test]
fn a_mute_of_either_key_covers_both() {
    let w = World::new();
    let mut core = w.core();
    let member = Identity::generate(Some("river".into()));
    let fresh = Identity::generate(Some("river".into()));
    let old_post = w.post(&member, "first", T0);
    gossip(&mut core, &old_post, T0);
    core.mute(member.public(), true).unwrap();
    gossip(&mut core, &w.succession(&member, &fresh, 1, T0 + 1), T0 + 1);
    let new_post = w.post(&fresh, "second", T0 + 2);
    assert_eq!(gossip(&mut core, &new_post, T0 + 2), Verdict::Accept);
    core.publish_shared();
    assert!(shown(&core, &w.topic).is_empty(), "both keys are muted");
    core.mute(member.public(), false).unwrap();
    core.mute(fresh.public(), true).unwrap();
    core.publish_shared();
    assert!(
        shown(&core, &w.topic).is_empty(),
        "muting the new key mutes the old"
    );
}

#[test]
fn both_keys_show_as_one_author_with_the_newest_pseudonym() {
    let w = World::new();
    let mut core = w.core();
    let member = Identity::generate(Some("river".into()));
    let fresh = Identity::generate(Some("ocean".into()));
    let renamed = Identity {
        secret: member.secret.clone(),
        name: Some("stream".into()),
    };
    gossip(&mut core, &w.post(&member, "one", T0), T0);
    gossip(&mut core, &w.post(&renamed, "two", T0 + 1), T0 + 1);
    core.publish_shared();
    let names: Vec<Option<String>> = shown(&core, &w.topic)
        .into_iter()
        .map(|p| p.author_name)
        .collect();
    assert_eq!(names, vec![Some("stream".into()), Some("stream".into())]);
    gossip(&mut core, &w.succession(&member, &fresh, 1, T0 + 2), T0 + 2);
    gossip(&mut core, &w.post(&fresh, "three", T0 + 3), T0 + 3);
    core.publish_shared();
    let shown = shown(&core, &w.topic);
    assert_eq!(shown.len(), 3);
    for p in &shown {
        assert_eq!(p.author, member.public().to_string(), "the first key");
        assert_eq!(p.author_name.as_deref(), Some("ocean"), "the newest name");
    }
}

#[test]
fn a_moderators_role_carries_over_and_the_admins_moves_with_its_succession() {
    let w = World::new();
    let admin_store = Store::temporary().unwrap();
    let mut admin = w.core_on(admin_store, &w.admin);
    let mut member = w.core();
    let m = Identity::generate(Some("mo".into()));
    let m2 = Identity::generate(Some("mo".into()));
    let author = Identity::generate(None);
    let post = w.post(&author, "hello", T0);
    gossip(&mut member, &post, T0);
    admin
        .moderate(ModActionKind::AppointModerator { key: m.public() }, T0 + 1)
        .unwrap();
    // The admin moves to a new key, then appoints with it.
    let admin_new = protocol::SecretKey::generate();
    admin.succeed(admin_new.clone(), T0 + 2).unwrap();
    assert_eq!(admin.identity.public(), admin_new.public());
    let other = Identity::generate(None);
    admin
        .moderate(
            ModActionKind::AppointModerator {
                key: other.public(),
            },
            T0 + 3,
        )
        .unwrap();
    assert!(
        admin
            .moderate(
                ModActionKind::Block {
                    author: admin_new.public(),
                    scope: Scope::Community,
                    reason: "x".into()
                },
                T0 + 4
            )
            .is_err(),
        "nobody blocks the admin's new key"
    );
    for m in gossiped(&mut admin) {
        assert_eq!(gossip(&mut member, &m, T0 + 5), Verdict::Accept);
    }
    assert!(member.moderation().is_moderator(&other.public(), T0 + 5));
    // The moderator moves too; the new key's hide counts.
    gossip(&mut member, &w.succession(&m, &m2, 1, T0 + 6), T0 + 6);
    let hide = w.action(
        &m2,
        2,
        ModActionKind::Hide {
            post: id_of(&post),
            reason: "cw".into(),
        },
        T0 + 7,
    );
    assert_eq!(gossip(&mut member, &hide, T0 + 7), Verdict::Accept);
    assert!(member.moderation().hidden(&id_of(&post)).is_some());
    // A succession of a key already succeeded is refused before signing.
    assert!(admin
        .succeed(protocol::SecretKey::generate(), T0 + 8)
        .is_ok());
    let mut again = w.core_on(Store::temporary().unwrap(), &m);
    gossip(&mut again, &w.succession(&m, &m2, 1, T0 + 6), T0 + 9);
    assert!(matches!(
        again.succeed(protocol::SecretKey::generate(), T0 + 9),
        Err(NodeError::NotAllowed(_))
    ));
}

#[test]
fn two_devices_of_one_moderator_number_their_actions_apart_and_both_count() {
    let w = World::new();
    let m = Identity::generate(Some("mo".into()));
    let author = Identity::generate(None);
    let posts: Vec<Message> = (0..2)
        .map(|i| w.post(&author, &format!("post {i}"), T0 + i))
        .collect();
    let appoint = w.action(
        &w.admin,
        1,
        ModActionKind::AppointModerator { key: m.public() },
        T0 + 5,
    );
    // Two data directories restored from one phrase: the same key, each
    // with its own device tag (fixed here, random in use).
    let mut devices: Vec<Core> = (0..2u16)
        .map(|tag| {
            let store = Store::temporary().unwrap();
            store
                .set_meta("device_tag", &(tag + 7).to_be_bytes())
                .unwrap();
            let mut core = w.core_on(store, &m);
            for p in &posts {
                gossip(&mut core, p, T0 + 10);
            }
            gossip(&mut core, &appoint, T0 + 10);
            core
        })
        .collect();
    // Both act in the same millisecond, without hearing of each other.
    let mut actions = Vec::new();
    for (device, post) in devices.iter_mut().zip(&posts) {
        device
            .moderate(ModActionKind::Pin { post: id_of(post) }, T0 + 20)
            .unwrap();
        actions.extend(gossiped(device));
    }
    let seqs: Vec<u64> = actions
        .iter()
        .map(|a| match a {
            Message::Moderation(a) => a.content.seq,
            _ => panic!("not an action"),
        })
        .collect();
    assert_ne!(seqs[0], seqs[1], "two devices never share a number");
    // The admin revokes m, counting both; everyone still pins both posts.
    let mut admin = w.core_on(Store::temporary().unwrap(), &w.admin);
    gossip(&mut admin, &appoint, T0 + 30);
    for a in &actions {
        assert_eq!(gossip(&mut admin, a, T0 + 30), Verdict::Accept);
    }
    admin
        .moderate(
            ModActionKind::RevokeModerator {
                key: m.public(),
                upto_seq: None,
            },
            T0 + 31,
        )
        .unwrap();
    let revoke = gossiped(&mut admin);
    let mut reader = w.core();
    for item in revoke.iter().chain(actions.iter().rev()).chain([&appoint]) {
        gossip(&mut reader, item, T0 + 40);
    }
    for p in &posts {
        assert!(reader.moderation().is_pinned(&id_of(p)), "both count");
    }
}

#[test]
fn an_action_made_effective_late_is_stored_when_offered_again() {
    let w = World::new();
    let store = Store::temporary().unwrap();
    let mut core = w.core_on(store.clone(), &Identity::generate(None));
    let m = Identity::generate(Some("mo".into()));
    let fresh = Identity::generate(Some("mo".into()));
    let author = Identity::generate(None);
    let post = w.post(&author, "hello", T0);
    gossip(&mut core, &post, T0);
    // The new key's hide comes before anything makes it a moderator: kept
    // aside, not stored.
    let hide = w.action(
        &fresh,
        2,
        ModActionKind::Hide {
            post: id_of(&post),
            reason: "cw".into(),
        },
        T0 + 3,
    );
    assert!(post_refused_by_moderation(&mut core, &hide, T0 + 3));
    let appoint = w.action(
        &w.admin,
        1,
        ModActionKind::AppointModerator { key: m.public() },
        T0 + 1,
    );
    gossip(&mut core, &appoint, T0 + 4);
    gossip(&mut core, &w.succession(&m, &fresh, 1, T0 + 2), T0 + 4);
    assert!(core.moderation().hidden(&id_of(&post)).is_some());
    // Offered again by sync: now it is stored, and survives a restart.
    let again = core.arrive_encoded(&[hide.encode()], Origin::Sync, T0 + 5);
    assert!(
        matches!(again.as_slice(), [Ok(Outcome::Stored)]),
        "{again:?}"
    );
    drop(core);
    let core = w.core_on(store, &Identity::generate(None));
    assert!(core.moderation().hidden(&id_of(&post)).is_some());
}

/// A figure, not a check (run with `--ignored --nocapture`): what showing
/// each author's newest pseudonym costs a read of the newest 50 posts of
/// 50 distinct authors (one author-index look-up per author).
#[test]
#[ignore]
fn measure_the_newest_pseudonym_lookups_of_a_read() {
    let w = World::new();
    let mut core = w.core();
    let authors: Vec<Identity> = (0..50)
        .map(|i| Identity::generate(Some(format!("author-{i}"))))
        .collect();
    let mut items = Vec::new();
    for i in 0..10_000u64 {
        let who = &authors[(i % 50) as usize];
        items.push(w.post(who, &format!("post {i}"), T0 + i * 1_000).encode());
    }
    for chunk in items.chunks(500) {
        core.arrive_encoded(chunk, Origin::Sync, T0 + 20_000_000);
    }
    core.publish_shared();
    let reader = core.reader();
    let q = ReadQuery {
        limit: 50,
        since_ms: None,
    };
    let runs = 200;
    let t = std::time::Instant::now();
    for _ in 0..runs {
        assert_eq!(reader.read(&w.topic, &q).unwrap().len(), 50);
    }
    let read = t.elapsed() / runs;
    let moderation = core.moderation().clone();
    let t = std::time::Instant::now();
    for _ in 0..runs {
        let mut names = crate::views::AuthorNames::new(core.store(), &moderation);
        for a in &authors {
            names.of_author(&a.public());
        }
    }
    let lookups = t.elapsed() / runs;
    println!(
        "read of the newest 50 (50 authors): {read:?}; of which 50 name look-ups: {lookups:?}"
    );
}

/// Every connection syncs both ways; a node does not run its own session
/// towards a peer that is pulling the same topic from it and holds fewer
/// items (it asks for a sync later instead), and the peer with fewer items
/// never holds, so two nodes never wait for each other.
#[test]
fn a_full_node_holds_its_own_session_while_a_peer_behind_it_pulls() {
    use protocol::sync::{Initiator, SyncScope};
    use std::collections::BTreeMap;

    let w = World::new();
    let mut full = w.core();
    let author = Identity::generate(None);
    for i in 0..20 {
        let m = w.post(&author, &format!("p{i}"), T0 + i);
        assert!(matches!(gossip(&mut full, &m, T0 + 100), Verdict::Accept));
    }
    let behind = peer(1);
    let scope = SyncScope::Topic(w.topic.clone());
    // The peer behind starts pulling the topic (it holds 3 of the items).
    let mut theirs: BTreeMap<ItemKey, Vec<u8>> = BTreeMap::new();
    for i in 0..3 {
        let m = w.post(&author, &format!("p{i}"), T0 + i);
        let Message::Post(p) = &m else { unreachable!() };
        theirs.insert(key_of(p), m.encode());
    }
    let (_, first) = Initiator::new(scope.clone(), &theirs);
    let answer = full
        .responder()
        .answer(&behind, &protocol::wire::encode_versioned(&first));
    assert!(!answer.is_empty(), "the pull was served");
    full.take_effects();
    full.sync_with(behind.clone(), vec![w.topic.clone()]);
    // The community log is synced first (the peer is not pulling it).
    let log_ticket = only_request(&mut full, &SyncScope::CommunityLog);
    full.sync_failed(&behind, log_ticket);
    // Then the topic is held, and a sync asked for again later.
    let effects = full.take_effects();
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::SyncRequest { .. })));
    assert!(effects.contains(&Effect::SyncLater(behind.clone())));

    // A peer that holds as many items as this node is never held for.
    let mut equal = w.core();
    let level = peer(2);
    let mut all: BTreeMap<ItemKey, Vec<u8>> = BTreeMap::new();
    for i in 0..5 {
        let m = w.post(&author, &format!("q{i}"), T0 + i);
        assert!(matches!(gossip(&mut equal, &m, T0 + 100), Verdict::Accept));
        let Message::Post(p) = &m else { unreachable!() };
        all.insert(key_of(p), m.encode());
    }
    let (_, first) = Initiator::new(scope.clone(), &all);
    equal
        .responder()
        .answer(&level, &protocol::wire::encode_versioned(&first));
    equal.take_effects();
    equal.sync_with(level.clone(), vec![w.topic.clone()]);
    let log_ticket = only_request(&mut equal, &SyncScope::CommunityLog);
    // The log's session ends; the topic's starts, not held.
    equal.sync_failed(&level, log_ticket);
    only_request(&mut equal, &scope);
}

fn key_of(p: &protocol::SignedPost) -> ItemKey {
    ItemKey {
        created_at: p.content.created_at,
        id: p.id().0,
    }
}

/// The one sync request among the core's effects, which must be for
/// `scope`; no session is held. Its ticket.
fn only_request(core: &mut Core, scope: &protocol::sync::SyncScope) -> SyncTicket {
    only_request_sent(core, scope).0
}

/// [`only_request`], with the request's bytes (to answer it).
fn only_request_sent(core: &mut Core, scope: &protocol::sync::SyncScope) -> (SyncTicket, Vec<u8>) {
    let effects = core.take_effects();
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::SyncLater(_))),
        "no session held"
    );
    let requests: Vec<_> = effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::SyncRequest { ticket, bytes, .. } => {
                let r: protocol::sync::SyncRequest =
                    protocol::wire::decode_versioned(&bytes, usize::MAX).unwrap();
                Some((ticket, r.scope, bytes))
            }
            _ => None,
        })
        .collect();
    assert_eq!(requests.len(), 1, "one request");
    let Some((ticket, sent_scope, bytes)) = requests.into_iter().next() else {
        unreachable!()
    };
    assert_eq!(&sent_scope, scope);
    (ticket, bytes)
}

#[test]
fn a_co_admins_appointment_counts_and_nobody_blocks_the_co_admin() {
    let w = World::new();
    let mut core = w.core();
    let co = Identity::generate(Some("co".into()));
    let m = Identity::generate(Some("mo".into()));
    let author = Identity::generate(None);
    let post = w.post(&author, "hello", T0);
    gossip(&mut core, &post, T0);
    let name = w.action(
        &w.admin,
        1,
        ModActionKind::AppointCoAdmin { key: co.public() },
        T0 + 1,
    );
    assert_eq!(gossip(&mut core, &name, T0 + 1), Verdict::Accept);
    let appoint = w.action(
        &co,
        1,
        ModActionKind::AppointModerator { key: m.public() },
        T0 + 2,
    );
    assert_eq!(gossip(&mut core, &appoint, T0 + 2), Verdict::Accept);
    let block = w.action(
        &m,
        1,
        ModActionKind::Block {
            author: author.public(),
            scope: Scope::Community,
            reason: "spam".into(),
        },
        T0 + 3,
    );
    assert_eq!(gossip(&mut core, &block, T0 + 3), Verdict::Accept);
    assert!(!core.store().contains_post(&id_of(&post)).unwrap());
    // The admin's block of the co-admin has no effect.
    let block_co = w.action(
        &w.admin,
        2,
        ModActionKind::Block {
            author: co.public(),
            scope: Scope::Community,
            reason: "x".into(),
        },
        T0 + 4,
    );
    assert_ne!(gossip(&mut core, &block_co, T0 + 4), Verdict::Accept);
    let Message::Moderation(signed) = &block_co else {
        panic!("an action")
    };
    assert!(core.moderation().contains(&signed.id()), "kept aside");
    assert!(core
        .moderation()
        .is_blocked(&co.public(), &w.topic)
        .is_none());
    assert_eq!(core.mod_list().co_admins, vec![co.public().to_string()]);
}

// ---------------------------------------------------------------------
// Admission (issue 18): invite-only communities
// ---------------------------------------------------------------------

impl World {
    /// The admin's manifest update `version` with this admission mode (no
    /// probation), dated `at`.
    fn policy(&self, version: u64, invite_only: bool, at: u64) -> Message {
        let policy = protocol::CommunityPolicy {
            admission: if invite_only {
                protocol::Admission::InviteOnly
            } else {
                protocol::Admission::Open
            },
            probation_posts: 0,
        };
        let kind = ModActionKind::UpdateManifest {
            version,
            rules: format!("rules v{version}"),
            policy,
        };
        self.action(&self.admin, 100 + version, kind, at)
    }

    /// The admin's invitation with key `invitation`.
    fn invite(&self, invitation: &protocol::SecretKey, uses: u32, at: u64) -> Message {
        let kind = ModActionKind::Invite {
            invitation: invitation.public(),
            uses,
            expires_at: at + 7 * protocol::membership::DAY_MS,
        };
        self.action(&self.admin, 200 + at % 1000, kind, at)
    }

    /// `who` redeems the invitation with key `invitation`.
    fn redeem(&self, who: &Identity, invitation: &protocol::SecretKey, at: u64) -> Message {
        let statement = protocol::moderation::redemption_statement(
            &self.community(),
            &invitation.public(),
            &who.public(),
        );
        let kind = ModActionKind::Redeem {
            invitation: invitation.public(),
            invitation_signature: invitation.sign(&statement),
        };
        self.action(who, 1, kind, at)
    }
}

fn not_admitted(core: &mut Core, m: &Message, now: u64) -> bool {
    let outcome = core.arrive_encoded(&[m.encode()], Origin::Sync, now);
    matches!(outcome.as_slice(), [Err(Refusal::NotAdmitted(_))])
}

fn stored_by_sync(core: &mut Core, m: &Message, now: u64) -> bool {
    let outcome = core.arrive_encoded(&[m.encode()], Origin::Sync, now);
    matches!(outcome.as_slice(), [Ok(Outcome::Stored)])
}

#[test]
fn a_non_member_is_refused_until_admitted_and_a_community_block_ends_it() {
    let w = World::new();
    let mut core = w.core();
    // Born invite-only: the update is dated at the manifest's creation.
    assert_eq!(
        gossip(&mut core, &w.policy(1, true, T0), T0),
        Verdict::Accept
    );
    let stranger = Identity::generate(None);
    let early = w.post(&stranger, "hello?", T0 + 10);
    // Ignored (no penalty), by gossip and by sync alike, and not stored.
    assert_eq!(gossip(&mut core, &early, T0 + 10), Verdict::Ignore);
    assert!(not_admitted(&mut core, &early, T0 + 10));
    assert_eq!(core.store().count_topic(&w.topic).unwrap(), 0);
    let retraction = Message::Retraction(Retraction::create(
        &stranger.secret,
        w.community(),
        id_of(&early),
        T0 + 11,
    ));
    assert!(not_admitted(&mut core, &retraction, T0 + 11));
    // Admitted by a redemption that arrives before its invitation.
    let invitation = protocol::SecretKey::generate();
    let redeem = w.redeem(&stranger, &invitation, T0 + 20);
    assert_eq!(gossip(&mut core, &redeem, T0 + 20), Verdict::Ignore);
    assert!(!core.moderation().is_member(&stranger.public()));
    core.take_effects();
    assert_eq!(
        gossip(&mut core, &w.invite(&invitation, 1, T0 + 5), T0 + 20),
        Verdict::Accept
    );
    assert!(core.moderation().is_member(&stranger.public()));
    // What was refused may come back from peers.
    assert!(core.take_effects().contains(&Effect::SyncWithAll));
    // The redemption, kept in memory while it waited, is stored when
    // offered again.
    assert!(stored_by_sync(&mut core, &redeem, T0 + 21));
    assert!(stored_by_sync(&mut core, &early, T0 + 21));
    // A community block ends the membership and deletes the posts.
    let block = w.action(
        &w.admin,
        2,
        ModActionKind::Block {
            author: stranger.public(),
            scope: Scope::Community,
            reason: "harassment".into(),
        },
        T0 + 30,
    );
    assert_eq!(gossip(&mut core, &block, T0 + 30), Verdict::Accept);
    assert!(!core.moderation().is_member(&stranger.public()));
    assert_eq!(core.store().count_topic(&w.topic).unwrap(), 0);
    // A fresh key of the blocked person is not a member.
    let fresh = Identity::generate(None);
    assert!(not_admitted(
        &mut core,
        &w.post(&fresh, "it's me again", T0 + 40),
        T0 + 40
    ));
}

#[test]
fn posts_of_the_open_era_stay_when_the_community_turns_invite_only() {
    let w = World::new();
    let mut core = w.core();
    let someone = Identity::generate(None);
    let open_era = w.post(&someone, "from the open days", T0 + 10);
    assert_eq!(gossip(&mut core, &open_era, T0 + 10), Verdict::Accept);
    assert_eq!(
        gossip(&mut core, &w.policy(1, true, T0 + 20), T0 + 20),
        Verdict::Accept
    );
    assert_eq!(core.store().count_topic(&w.topic).unwrap(), 1);
    assert!(not_admitted(
        &mut core,
        &w.post(&someone, "after", T0 + 30),
        T0 + 30
    ));
    // Switched back to open: content of the new open era comes by sync.
    core.take_effects();
    assert_eq!(
        gossip(&mut core, &w.policy(2, false, T0 + 40), T0 + 40),
        Verdict::Accept
    );
    assert!(core.take_effects().contains(&Effect::SyncWithAll));
    let open_again = w.post(&someone, "open again", T0 + 45);
    assert!(stored_by_sync(&mut core, &open_again, T0 + 45));
    // What was dated in the invite-only era stays refused.
    assert!(not_admitted(
        &mut core,
        &w.post(&someone, "after", T0 + 30),
        T0 + 45
    ));
}

#[test]
fn an_earlier_redemption_arriving_late_takes_the_use_and_the_loser_loses_its_posts() {
    let w = World::new();
    let mut core = w.core();
    gossip(&mut core, &w.policy(1, true, T0), T0);
    let invitation = protocol::SecretKey::generate();
    gossip(&mut core, &w.invite(&invitation, 1, T0 + 5), T0 + 5);
    let (x, y) = (Identity::generate(None), Identity::generate(None));
    assert_eq!(
        gossip(&mut core, &w.redeem(&y, &invitation, T0 + 20), T0 + 20),
        Verdict::Accept
    );
    assert_eq!(
        gossip(&mut core, &w.post(&y, "hi", T0 + 30), T0 + 30),
        Verdict::Accept
    );
    // x redeemed first (by date): x is the one admitted, on every node.
    assert_eq!(
        gossip(&mut core, &w.redeem(&x, &invitation, T0 + 10), T0 + 31),
        Verdict::Accept
    );
    assert!(core.moderation().is_member(&x.public()));
    assert!(!core.moderation().is_member(&y.public()));
    assert_eq!(core.store().count_topic(&w.topic).unwrap(), 0);
}

#[test]
fn queued_admission_work_is_done_at_start_and_a_waiting_redemption_is_kept_in_the_log() {
    let w = World::new();
    let store = Store::temporary().unwrap();
    let newcomer = Identity::generate(None);
    let mut core = w.core_on(store.clone(), &newcomer);
    let invitation = protocol::SecretKey::generate();
    let work = [crate::admission::AdmissionWork::Redeem(
        invitation.to_bytes(),
    )];
    assert!(core.settle_admission(&work, T0 + 50));
    // Its invitation is not known here yet: kept in the log, gossiped.
    assert!(gossiped(&mut core)
        .iter()
        .any(|m| matches!(m, Message::Moderation(a) if matches!(a.content.kind, ModActionKind::Redeem { .. }))));
    drop(core);
    let mut core = w.core_on(store.clone(), &newcomer);
    assert_eq!(core.moderation().pending().len(), 1, "folded from the log");
    // Doing it again signs nothing new.
    assert!(core.settle_admission(&work, T0 + 60));
    assert!(gossiped(&mut core).is_empty());
    gossip(&mut core, &w.policy(1, true, T0), T0 + 70);
    gossip(&mut core, &w.invite(&invitation, 1, T0 + 5), T0 + 70);
    assert!(core.moderation().is_member(&newcomer.public()));
    // The admin's first update is dated at the manifest's creation.
    let admin_core = &mut w.core_on(Store::temporary().unwrap(), &w.admin);
    let first = [crate::admission::AdmissionWork::FirstManifest(
        protocol::CommunityPolicy::NEW_COMMUNITY,
    )];
    assert!(admin_core.settle_admission(&first, T0 + 80));
    let update = admin_core
        .moderation()
        .manifest_update()
        .expect("published");
    assert_eq!((update.version, update.decision.at), (1, T0));
    assert!(admin_core.moderation().invite_only_at(T0 - 1));
}
#[path = "report_tests.rs"]
mod report_tests;
