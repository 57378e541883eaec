use super::*;
use keys::{author_key, topic_key, AUTHOR, AUTHOR_LOG, COUNT, LOG, POST, POST_ID};

/// The keys every on-disk store of these tests is sealed under.
fn keys() -> StoreKeys {
    StoreKeys::derive(&[0; 32])
}

/// A layout-1/2 topic key: `topic ‖ 0x00 ‖ created_at ‖ id`.
fn old_topic_key(topic: &[u8], key: &ItemKey) -> Vec<u8> {
    let mut k = topic.to_vec();
    k.push(0);
    k.extend_from_slice(&keys::item_key_bytes(key));
    k
}
use protocol::post::Draft;
use protocol::sync::ItemKey;
use protocol::{
    CommunityId, Identity, Post, PostId, Scope, TopicName, ValidationContext, VerifiedPost,
};
use std::sync::atomic::{AtomicBool, Ordering};

fn community() -> CommunityId {
    CommunityId::of_bytes(b"test community")
}

fn topic(name: &str) -> TopicName {
    TopicName::parse(name).unwrap()
}

fn post(who: &Identity, topic_name: &str, body: &str, at: u64) -> VerifiedPost {
    Post::write(
        who,
        community(),
        topic(topic_name),
        Draft {
            body: body.into(),
            ..Draft::default()
        },
        at,
    )
    .unwrap()
    .verify(&ValidationContext {
        community: community(),
        now_ms: at,
    })
    .unwrap()
}

fn key_of(p: &SignedPost) -> ItemKey {
    ItemKey {
        created_at: p.content.created_at,
        id: p.id().0,
    }
}

fn bodies(posts: &[SignedPost]) -> Vec<&str> {
    posts.iter().map(|p| p.content.body.as_str()).collect()
}

/// Some valid `Message` bytes, for log entries whose content does not
/// matter.
fn log_msg() -> Vec<u8> {
    Message::Post(post(&Identity::generate(None), "log", "x", 1).into_signed()).encode()
}

fn assert_consistent(s: &Store) {
    let problems = s.check_integrity().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn insert_get_and_idempotent_insert() {
    let s = Store::temporary().unwrap();
    let me = Identity::generate(None);
    let p = post(&me, "t", "hello", 1000);
    assert!(!s.contains_post(&p.id()).unwrap());
    assert!(s.get_post(&p.id()).unwrap().is_none());
    assert!(s.insert_post(&p).unwrap());
    assert!(s.contains_post(&p.id()).unwrap());
    assert_eq!(s.get_post(&p.id()).unwrap().unwrap(), *p.signed());
    let bytes = s.get_post_bytes(&p.id()).unwrap().unwrap();
    assert_eq!(bytes, Message::Post(p.signed().clone()).encode());
    assert!(!s.insert_post(&p).unwrap(), "second insert stores nothing");
    assert_eq!(s.count_topic(&topic("t")).unwrap(), 1);
    assert_eq!(s.post_count().unwrap(), 1);
    assert_consistent(&s);
}

#[test]
fn topic_pages_newest_first_and_since_oldest_first() {
    let s = Store::temporary().unwrap();
    let me = Identity::generate(None);
    let t = topic("t");
    // Inserted out of order: the order comes from created_at.
    for i in [3u64, 0, 9, 1, 7, 2, 8, 4, 6, 5] {
        assert!(s
            .insert_post(&post(&me, "t", &format!("p{i}"), 1000 + i))
            .unwrap());
    }
    s.insert_post(&post(&me, "other", "elsewhere", 1005))
        .unwrap();
    assert_eq!(s.count_topic(&t).unwrap(), 10);
    assert_eq!(s.post_count().unwrap(), 11);

    let page = s.topic_page(&t, None, 4).unwrap();
    assert_eq!(bodies(&page), ["p9", "p8", "p7", "p6"]);
    let page2 = s
        .topic_page(&t, Some(key_of(page.last().unwrap())), 4)
        .unwrap();
    assert_eq!(bodies(&page2), ["p5", "p4", "p3", "p2"]);
    let page3 = s
        .topic_page(&t, Some(key_of(page2.last().unwrap())), 4)
        .unwrap();
    assert_eq!(bodies(&page3), ["p1", "p0"]);
    let page4 = s
        .topic_page(&t, Some(key_of(page3.last().unwrap())), 4)
        .unwrap();
    assert!(page4.is_empty());
    assert!(s.topic_page(&t, None, 0).unwrap().is_empty());
    assert!(s
        .topic_page(&topic("nothing"), None, 10)
        .unwrap()
        .is_empty());
    // A topic whose name extends another's never leaks into it.
    s.insert_post(&post(&me, "t-2", "neighbour", 1003)).unwrap();
    assert_eq!(s.topic_page(&t, None, 100).unwrap().len(), 10);

    let since = s.topic_since(&t, 1006, 10).unwrap();
    assert_eq!(bodies(&since), ["p6", "p7", "p8", "p9"]);
    assert_eq!(bodies(&s.topic_since(&t, 0, 2).unwrap()), ["p0", "p1"]);
    assert!(s.topic_since(&t, 5000, 10).unwrap().is_empty());
    assert!(s.topic_since(&t, u64::MAX, 10).unwrap().is_empty());
    assert_consistent(&s);
}

#[test]
fn counts_stay_exact_across_deletes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate(None);
    let t = topic("t");
    let posts: Vec<_> = (0..6)
        .map(|i| post(&me, "t", &format!("p{i}"), 100 + i))
        .collect();
    {
        let s = Store::open(dir.path(), keys()).unwrap();
        for p in &posts {
            s.insert_post(p).unwrap();
        }
        assert_eq!(
            s.delete_post(&posts[0].id()).unwrap().unwrap(),
            *posts[0].signed()
        );
        assert!(
            s.delete_post(&posts[0].id()).unwrap().is_none(),
            "a second delete finds nothing"
        );
        assert_eq!(s.count_topic(&t).unwrap(), 5);
        s.flush().unwrap();
    }
    {
        let s = Store::open(dir.path(), keys()).unwrap();
        assert_eq!(s.count_topic(&t).unwrap(), 5);
        s.delete_post(&posts[1].id()).unwrap();
        assert!(
            s.insert_post(&posts[0]).unwrap(),
            "not retracted: may return"
        );
        assert_eq!(s.count_topic(&t).unwrap(), 5);
        for p in &posts {
            s.delete_post(&p.id()).unwrap();
        }
        assert_eq!(s.count_topic(&t).unwrap(), 0);
        assert_eq!(s.post_count().unwrap(), 0);
        assert_consistent(&s);
    }
    let s = Store::open(dir.path(), keys()).unwrap();
    assert_eq!(s.count_topic(&t).unwrap(), 0);
    assert_consistent(&s);
}

#[test]
fn reopening_gives_back_everything() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate(None);
    let other = Identity::generate(None);
    let p = post(&me, "t", "hello", 5);
    let hidden = post(&other, "t", "hidden", 6);
    let retracted = post(&me, "t", "oops", 7);
    let log_key = ItemKey {
        created_at: 9,
        id: [4; 32],
    };
    let log_bytes = Message::Post(p.signed().clone()).encode();
    {
        let s = Store::open(dir.path(), keys()).unwrap();
        s.insert_post(&p).unwrap();
        s.insert_post(&hidden).unwrap();
        s.hide_post(&hidden.id(), b"hidden: spam").unwrap().unwrap();
        s.add_retraction(&retracted.id(), &me.public()).unwrap();
        assert!(s.insert_log(log_key, &log_bytes).unwrap());
        s.join_topic(&topic("t")).unwrap();
        s.put_peer(b"peer", &record(&["/ip4/1.2.3.4/tcp/1"]))
            .unwrap();
        s.mute(&other.public()).unwrap();
        s.set_meta("manifest", b"m").unwrap();
        s.flush().unwrap();
    }
    let s = Store::open(dir.path(), keys()).unwrap();
    assert_eq!(s.get_post(&p.id()).unwrap().unwrap(), *p.signed());
    assert!(!s.contains_post(&hidden.id()).unwrap());
    assert_eq!(
        s.tombstone_of(&hidden.id()).unwrap().as_deref(),
        Some(&b"hidden: spam"[..])
    );
    assert_eq!(
        s.retraction_author(&retracted.id()).unwrap(),
        Some(me.public())
    );
    assert!(!s.insert_post(&retracted).unwrap());
    assert_eq!(s.log_items().unwrap(), vec![(log_key, log_bytes)]);
    assert!(s.contains_log(&log_key).unwrap());
    let joined = s.joined_topics_with_times().unwrap();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].0, topic("t"));
    assert!(joined[0].1.is_some_and(|at| at > 0));
    assert_eq!(
        s.peer_records().unwrap(),
        vec![(b"peer".to_vec(), record(&["/ip4/1.2.3.4/tcp/1"]))]
    );
    assert!(s.is_muted(&other.public()).unwrap());
    assert_eq!(s.get_meta("manifest").unwrap().as_deref(), Some(&b"m"[..]));
    assert_eq!(s.count_topic(&topic("t")).unwrap(), 1);
    assert_consistent(&s);
}

#[test]
fn blocking_an_author_in_a_topic_or_the_community_deletes_index_entries_too() {
    let s = Store::temporary().unwrap();
    let troll = Identity::generate(None);
    let kind = Identity::generate(None);
    for i in 0..5 {
        s.insert_post(&post(&troll, "a", &format!("x{i}"), 10 + i))
            .unwrap();
        s.insert_post(&post(&troll, "b", &format!("y{i}"), 10 + i))
            .unwrap();
        s.insert_post(&post(&troll, "c", &format!("w{i}"), 10 + i))
            .unwrap();
        s.insert_post(&post(&kind, "a", &format!("z{i}"), 10 + i))
            .unwrap();
    }
    let (a, b, c) = (topic("a"), topic("b"), topic("c"));
    let gone = s
        .delete_author_posts(&troll.public(), &Scope::Topic(a.clone()))
        .unwrap();
    assert_eq!(gone.len(), 5);
    assert!(gone
        .iter()
        .all(|(id, t)| !s.contains_post(id).unwrap() && *t == a));
    assert_eq!(s.count_topic(&a).unwrap(), 5);
    assert_eq!(s.count_topic(&b).unwrap(), 5);
    assert!(s
        .topic_page(&a, None, 100)
        .unwrap()
        .iter()
        .all(|p| p.content.author == kind.public()));
    assert_consistent(&s);

    let gone = s
        .delete_author_posts(&troll.public(), &Scope::Community)
        .unwrap();
    assert_eq!(gone.len(), 10);
    assert_eq!(s.count_topic(&b).unwrap(), 0);
    assert_eq!(s.count_topic(&c).unwrap(), 0);
    assert_eq!(s.count_topic(&a).unwrap(), 5);
    assert!(s
        .delete_author_posts(&troll.public(), &Scope::Community)
        .unwrap()
        .is_empty());
    assert_eq!(
        s.count_author_between(&troll.public(), 0, u64::MAX, 100)
            .unwrap(),
        0
    );
    assert_eq!(
        s.count_author_between(&kind.public(), 11, 12, 100).unwrap(),
        2
    );
    assert_eq!(
        s.count_author_between(&kind.public(), 12, 11, 100).unwrap(),
        0
    );
    assert_consistent(&s);
}

#[test]
fn a_retraction_refuses_the_post_forever_but_only_from_its_author() {
    let s = Store::temporary().unwrap();
    let me = Identity::generate(None);
    let p = post(&me, "t", "regret", 50);
    assert!(s.insert_post(&p).unwrap());
    s.add_retraction(&p.id(), &me.public()).unwrap();
    s.delete_post(&p.id()).unwrap();
    assert!(!s.insert_post(&p).unwrap());
    assert!(!s.contains_post(&p.id()).unwrap());
    assert_eq!(s.count_topic(&topic("t")).unwrap(), 0);
    // A bogus retraction recorded later under another key neither binds
    // the author's post nor undoes the author's own retraction.
    let q = post(&me, "t", "mine", 51);
    let mallory = Identity::generate(None).public();
    s.add_retraction(&q.id(), &mallory).unwrap();
    assert!(s.insert_post(&q).unwrap());
    s.add_retraction(&p.id(), &mallory).unwrap();
    assert!(!s.insert_post(&p).unwrap(), "still refused");
    assert!(s.is_retracted_by(&p.id(), &me.public()).unwrap());
    assert_consistent(&s);
}

#[test]
fn tombstones_page_and_unhide() {
    let s = Store::temporary().unwrap();
    let me = Identity::generate(None);
    let t = topic("t");
    let posts: Vec<_> = (0..4)
        .map(|i| post(&me, "t", &format!("p{i}"), 10 + i))
        .collect();
    for p in &posts {
        s.insert_post(p).unwrap();
    }
    for (i, p) in posts.iter().enumerate() {
        let hidden = s.hide_post(&p.id(), format!("why {i}").as_bytes()).unwrap();
        assert_eq!(hidden.unwrap(), *p.signed());
    }
    assert!(
        s.hide_post(&posts[0].id(), b"again").unwrap().is_none(),
        "nothing stored: nothing hidden, nothing written"
    );
    assert_eq!(s.count_topic(&t).unwrap(), 0);
    let page = s.tombstones_page(&t, None, 3).unwrap();
    let whys: Vec<_> = page.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        whys,
        [b"why 3".to_vec(), b"why 2".to_vec(), b"why 1".to_vec()]
    );
    let rest = s.tombstones_page(&t, Some(page[2].0), 3).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, key_of(posts[0].signed()));
    assert_consistent(&s);

    assert!(s.remove_tombstone_of(&posts[1].id()).unwrap());
    assert!(!s.remove_tombstone_of(&posts[1].id()).unwrap());
    s.remove_tombstone(&t, key_of(posts[2].signed())).unwrap();
    assert!(s.tombstone_of(&posts[2].id()).unwrap().is_none());
    assert_eq!(s.tombstones_page(&t, None, 10).unwrap().len(), 2);
    // The unhidden post may come back.
    assert!(s.insert_post(&posts[1]).unwrap());
    // put_tombstone replaces an earlier tombstone of the same post.
    s.put_tombstone(&t, key_of(posts[3].signed()), b"new reason")
        .unwrap();
    assert_eq!(
        s.tombstone_of(&posts[3].id()).unwrap().as_deref(),
        Some(&b"new reason"[..])
    );
    assert_eq!(s.tombstones_page(&t, None, 10).unwrap().len(), 2);
    assert_consistent(&s);
}

#[test]
fn sync_scans_are_ordered_and_bounded() {
    let s = Store::temporary().unwrap();
    let me = Identity::generate(None);
    for i in 0..20 {
        s.insert_post(&post(&me, "t", &format!("p{i}"), 100 + i))
            .unwrap();
        s.insert_post(&post(&me, "u", &format!("q{i}"), 100 + i))
            .unwrap();
    }
    let scope = SyncScope::Topic(topic("t"));
    let mut keys = Vec::new();
    s.scan_keys(&scope, &ItemKey::MIN, &ItemKey::MAX, &mut |k| {
        keys.push(*k);
        true
    })
    .unwrap();
    assert_eq!(keys.len(), 20, "only this topic's keys");
    assert!(keys.windows(2).all(|w| w[0] < w[1]));

    // Stops when told to.
    let mut seen = 0;
    s.scan_keys(&scope, &ItemKey::MIN, &ItemKey::MAX, &mut |_| {
        seen += 1;
        seen < 3
    })
    .unwrap();
    assert_eq!(seen, 3);

    // Half-open bounds; empty and inverted ranges are empty.
    let mut inner = Vec::new();
    s.scan_keys(&scope, &keys[3], &keys[7], &mut |k| {
        inner.push(*k);
        true
    })
    .unwrap();
    assert_eq!(inner, keys[3..7].to_vec());
    for (from, to) in [(&keys[7], &keys[3]), (&keys[5], &keys[5])] {
        s.scan_keys(&scope, from, to, &mut |_| panic!("nothing in range"))
            .unwrap();
        assert!(s
            .items_in(&scope, from, to, 10, usize::MAX)
            .unwrap()
            .is_empty());
    }

    let items = s
        .items_in(&scope, &keys[5], &ItemKey::MAX, 3, usize::MAX)
        .unwrap();
    assert_eq!(
        items.iter().map(|i| i.0).collect::<Vec<_>>(),
        keys[5..8].to_vec()
    );
    for (k, bytes) in &items {
        match Message::decode(bytes).unwrap() {
            Message::Post(p) => assert_eq!(p.id().0, k.id),
            other => panic!("not a post: {other:?}"),
        }
    }
    // Byte bound: stops before the item that would exceed it, but always
    // returns at least one.
    let one = items[0].1.len();
    let two = s
        .items_in(&scope, &keys[0], &ItemKey::MAX, 100, one * 2 + 1)
        .unwrap();
    assert_eq!(two.len(), 2);
    let at_least_one = s.items_in(&scope, &keys[0], &ItemKey::MAX, 100, 1).unwrap();
    assert_eq!(at_least_one.len(), 1);
    assert!(s
        .items_in(&scope, &keys[0], &ItemKey::MAX, 0, usize::MAX)
        .unwrap()
        .is_empty());

    let by_keys = s
        .items_by_keys(&scope, &[keys[1], ItemKey::MIN, keys[0]])
        .unwrap();
    assert_eq!(by_keys.len(), 2, "unknown keys are skipped");
    assert_eq!(by_keys[0], items_at(&s, &scope, &keys[1]));
    // A post is not served under another topic.
    assert!(s
        .items_by_keys(&SyncScope::Topic(topic("u")), &keys[..2])
        .unwrap()
        .is_empty());
}

fn items_at(s: &Store, scope: &SyncScope, key: &ItemKey) -> Vec<u8> {
    let mut items = s
        .items_in(scope, key, &ItemKey::MAX, 1, usize::MAX)
        .unwrap();
    items.remove(0).1
}

#[test]
fn community_log_is_ordered_and_insert_once() {
    let s = Store::temporary().unwrap();
    let key = |at: u64, b: u8| ItemKey {
        created_at: at,
        id: [b; 32],
    };
    assert!(s.insert_log(key(300, 1), b"c").unwrap());
    assert!(s.insert_log(key(100, 9), b"a").unwrap());
    assert!(s.insert_log(key(200, 5), b"b").unwrap());
    assert!(
        !s.insert_log(key(200, 5), b"other").unwrap(),
        "already there"
    );
    let items = s.log_items().unwrap();
    assert_eq!(
        items,
        vec![
            (key(100, 9), b"a".to_vec()),
            (key(200, 5), b"b".to_vec()),
            (key(300, 1), b"c".to_vec())
        ]
    );
    assert_eq!(s.log_len().unwrap(), 3);
    let scope = SyncScope::CommunityLog;
    let mut keys = Vec::new();
    s.scan_keys(&scope, &key(150, 0), &ItemKey::MAX, &mut |k| {
        keys.push(*k);
        true
    })
    .unwrap();
    assert_eq!(keys, [key(200, 5), key(300, 1)]);
    let items = s
        .items_in(&scope, &ItemKey::MIN, &key(300, 1), 10, usize::MAX)
        .unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        s.items_by_keys(&scope, &[key(300, 1), key(1, 1)]).unwrap(),
        vec![b"c".to_vec()]
    );
    assert!(s.contains_log(&key(100, 9)).unwrap());
    assert!(!s.contains_log(&key(100, 8)).unwrap());
}

#[test]
fn a_store_in_use_is_named_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), keys()).unwrap();
    match Store::open(dir.path(), keys()) {
        Err(e @ StoreError::InUse { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("in use by another mutual node"), "{msg}");
            assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second open of the same directory must fail"),
    }
    drop(first);
    Store::open(dir.path(), keys()).expect("free again once the first store is dropped");
}

#[test]
fn joined_topics_peers_mutes_and_meta() {
    let s = Store::temporary().unwrap();
    s.join_topic(&topic("b")).unwrap();
    s.join_topic(&topic("a")).unwrap();
    let first = s.joined_topics_with_times().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    s.join_topic(&topic("a")).unwrap();
    assert_eq!(
        s.joined_topics_with_times().unwrap(),
        first,
        "rejoining keeps the first time"
    );
    assert_eq!(s.joined_topics().unwrap(), [topic("a"), topic("b")]);
    s.leave_topic(&topic("a")).unwrap();
    assert_eq!(s.joined_topics().unwrap(), [topic("b")]);

    s.put_peer(b"p1", &record(&["/ip4/10.0.0.1/tcp/1"]))
        .unwrap();
    s.put_peer(b"p2", &record(&["/dns/example.org/tcp/4001"]))
        .unwrap();
    let huge: Vec<String> = (0..64).map(|_| "x".repeat(512)).collect();
    let huge: Vec<&str> = huge.iter().map(String::as_str).collect();
    s.put_peer(b"p3", &record(&huge)).unwrap();
    // A record written in the clear (layouts before 3 did; the migration
    // reads those) is not one of this store's: skipped.
    s.b()
        .peers
        .insert(
            b"p4",
            protocol::wire::encode(&vec!["/ip4/10.0.0.4/tcp/1".to_string()]),
        )
        .unwrap();
    let book = s.peer_records().unwrap();
    assert_eq!(book.len(), 2, "the oversized record was refused");
    assert_eq!(book[0], (b"p1".to_vec(), record(&["/ip4/10.0.0.1/tcp/1"])));
    s.remove_peer(b"p1").unwrap();
    assert_eq!(s.peer_records().unwrap().len(), 1);

    let who = Identity::generate(None).public();
    assert!(!s.is_muted(&who).unwrap());
    s.mute(&who).unwrap();
    assert!(s.mutes().unwrap().contains(&who));
    s.unmute(&who).unwrap();
    assert!(s.mutes().unwrap().is_empty());

    assert_eq!(s.get_meta("seq").unwrap(), None);
    s.set_meta("seq", &7u64.to_be_bytes()).unwrap();
    assert_eq!(
        s.get_meta("seq").unwrap(),
        Some(7u64.to_be_bytes().to_vec())
    );
    s.remove_meta("seq").unwrap();
    assert_eq!(s.get_meta("seq").unwrap(), None);
}

#[test]
fn flushing_tracks_what_is_dirty() {
    let s = Store::temporary().unwrap();
    s.flush().unwrap();
    assert!(!s.is_dirty());
    assert!(!s.flush_if_dirty().unwrap());
    s.insert_post(&post(&Identity::generate(None), "t", "x", 1))
        .unwrap();
    assert!(s.is_dirty());
    assert!(s.flush_if_dirty().unwrap());
    assert!(!s.is_dirty());
    s.set_meta("k", b"v").unwrap();
    let flusher = s.flusher();
    std::thread::spawn(move || flusher.flush())
        .join()
        .unwrap()
        .unwrap();
    assert!(!s.is_dirty());
    assert!(s.size_on_disk().unwrap() > 0);
}

#[test]
fn damaged_values_are_skipped_reported_and_repaired() {
    let s = Store::temporary().unwrap();
    let me = Identity::generate(None);
    let posts: Vec<_> = (0..5)
        .map(|i| post(&me, "t", &format!("body-{i}"), 10 + i))
        .collect();
    for p in &posts {
        s.insert_post(p).unwrap();
    }
    // Damage behind the store's back: a post's bytes, an author index
    // entry without its post, a missing author entry, a wrong count, junk
    // values elsewhere.
    let broken = posts[1].id();
    let t = topic("t");
    let tag = s.topic_tag(&t);
    let broken_key = prefixed(POST, &topic_key(&tag, &key_of(posts[1].signed())));
    s.b()
        .items
        .insert(&broken_key, &b"\x01garbage"[..])
        .unwrap();
    // The author index names a post that is not stored (a ghost), lost
    // post 3 (as if its log line were gone), and the author log holds an
    // entry that does not decode.
    s.lock().authors.apply(
        99,
        &[
            authors::Line {
                added: true,
                author: s.keys.author_tag(&me.public().0),
                entry: authors::Entry {
                    key: ItemKey {
                        created_at: 12,
                        id: [0xee; 32],
                    },
                    topic: tag,
                },
            },
            authors::Line {
                added: false,
                author: s.keys.author_tag(&me.public().0),
                entry: authors::Entry {
                    key: key_of(posts[3].signed()),
                    topic: tag,
                },
            },
        ],
    );
    assert!(!s.contains_post(&PostId([0xee; 32])).unwrap(), "a ghost");
    s.b()
        .items
        .insert(prefixed(AUTHOR_LOG, &encode_u64(98)), &b"junk"[..])
        .unwrap();
    s.b()
        .items
        .insert(prefixed(COUNT, &tag), &encode_u64(42)[..])
        .unwrap();
    s.b().peers.insert(b"p", &b"junk"[..]).unwrap();
    s.b().topics.insert(&b"\xff"[..], &[][..]).unwrap();
    s.b().mutes.insert(&b"short"[..], &[][..]).unwrap();
    s.b()
        .items
        .insert(prefixed(LOG, b"bad"), &b"x"[..])
        .unwrap();

    // Reads skip, never panic.
    let page = s.topic_page(&t, None, 10).unwrap();
    assert_eq!(bodies(&page), ["body-4", "body-3", "body-2", "body-0"]);
    assert!(s.get_post(&broken).unwrap().is_none());
    assert!(s.peer_records().unwrap().is_empty());
    assert!(s.joined_topics().unwrap().is_empty());
    assert!(s.mutes().unwrap().is_empty());
    assert!(s.log_items().unwrap().is_empty());
    let scope = SyncScope::Topic(t.clone());
    let items = s
        .items_in(&scope, &ItemKey::MIN, &ItemKey::MAX, 100, usize::MAX)
        .unwrap();
    assert_eq!(
        items.len(),
        4,
        "neither the damaged post (it does not open) nor the ghost is served"
    );

    let problems = s.check_integrity().unwrap();
    let text = problems.join("\n");
    assert!(text.contains("does not open or decode"), "{text}");
    assert!(text.contains("has no matching post"), "{text}");
    assert!(
        text.contains("has no matching author index entry"),
        "{text}"
    );
    assert!(text.contains("author log entry"), "{text}");
    assert!(text.contains("counts 42"), "{text}");
    assert!(text.contains("community log"), "{text}");
    assert!(!text.contains("body-"), "no content in reports");

    let fixed = s.repair().unwrap();
    assert!(fixed >= 4, "{fixed}");
    let after: Vec<_> = s
        .check_integrity()
        .unwrap()
        .into_iter()
        .filter(|p| !p.contains("community log"))
        .collect();
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(s.count_topic(&t).unwrap(), 4);
    assert_eq!(s.repair().unwrap(), 0, "repair is idempotent");

    // Deleting a post whose bytes are damaged cleans its index entries.
    let s = Store::temporary().unwrap();
    for p in &posts {
        s.insert_post(p).unwrap();
    }
    let broken_key = prefixed(
        POST,
        &topic_key(&s.topic_tag(&t), &key_of(posts[1].signed())),
    );
    s.b()
        .items
        .insert(&broken_key, &b"\x01garbage"[..])
        .unwrap();
    assert!(s.delete_post(&broken).unwrap().is_none());
    assert!(!s.contains_post(&broken).unwrap());
    assert_eq!(s.count_topic(&t).unwrap(), 4);
    assert_consistent(&s);
}

#[test]
fn a_newer_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), keys()).unwrap();
        s.b()
            .info
            .insert(LAYOUT_KEY, &encode_u64(LAYOUT_VERSION + 1)[..])
            .unwrap();
        s.flush().unwrap();
    }
    match Store::open(dir.path(), keys()) {
        Err(e @ StoreError::NewerLayout { .. }) => {
            assert!(e.to_string().contains("upgrade mutual"), "{e}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer layout must be refused"),
    }
}

#[test]
fn a_store_of_layout_1_is_migrated_forward_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate(None);
    let kept = post(&me, "t", "kept", 5);
    let gone = post(&me, "t", "gone", 6);
    let hidden = ItemKey {
        created_at: 3,
        id: [3; 32],
    };
    let log_key = ItemKey {
        created_at: 7,
        id: [7; 32],
    };
    // A store as layout 1 (or the layout before it) wrote it: a tree per
    // kind, a retraction as post id → author, a tombstone without its
    // link, no layout version.
    {
        let db = sled_config(dir.path()).open().unwrap();
        let tree = |n: &str| db.open_tree(n).unwrap();
        let k = key_of(kept.signed());
        tree("posts")
            .insert(
                &kept.id().0[..],
                Message::Post(kept.signed().clone()).encode(),
            )
            .unwrap();
        tree("topic_index")
            .insert(old_topic_key(b"t", &k), &[][..])
            .unwrap();
        let mut old_author_key = me.public().0.to_vec();
        old_author_key.extend_from_slice(&keys::item_key_bytes(&k));
        tree("author_index")
            .insert(old_author_key, &b"t"[..])
            .unwrap();
        tree("counts").insert(b"t", &encode_u64(1)[..]).unwrap();
        tree("log")
            .insert(&keys::item_key_bytes(&log_key)[..], log_msg())
            .unwrap();
        tree("retractions")
            .insert(&gone.id().0[..], &me.public().0[..])
            .unwrap();
        tree("tombstones")
            .insert(old_topic_key(b"t", &hidden), &b"old"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let s = Store::open(dir.path(), keys()).unwrap();
    assert_consistent(&s);
    let t = topic("t");
    assert_eq!(s.count_topic(&t).unwrap(), 1);
    assert_eq!(bodies(&s.topic_page(&t, None, 10).unwrap()), ["kept"]);
    assert_eq!(
        s.latest_post_of(&me.public()).unwrap().unwrap(),
        *kept.signed()
    );
    assert!(s.contains_log(&log_key).unwrap());
    assert_eq!(s.retraction_author(&gone.id()).unwrap(), Some(me.public()));
    assert!(!s.insert_post(&gone).unwrap(), "the retraction still binds");
    assert_eq!(s.tombstones_page(&t, None, 10).unwrap().len(), 1);
    assert!(s.remove_tombstone_of(&PostId(hidden.id)).unwrap());
    assert!(!s.b().db.tree_names().iter().any(|n| n.as_ref() == b"posts"));
    s.close().unwrap();
    let s = Store::open(dir.path(), keys()).unwrap();
    assert_eq!(s.count_topic(&t).unwrap(), 1);
    assert_consistent(&s);
}

#[test]
fn applying_a_retraction_logs_remembers_and_deletes_at_once() {
    let s = Store::temporary().unwrap();
    let me = Identity::generate(None);
    let other = Identity::generate(None);
    let p = post(&me, "t", "regret", 50);
    let theirs = post(&other, "t", "not mine", 51);
    s.insert_post(&p).unwrap();
    s.insert_post(&theirs).unwrap();
    let key = ItemKey {
        created_at: 60,
        id: [6; 32],
    };
    let done = s
        .apply_retraction(key, &log_msg(), &p.id(), &me.public())
        .unwrap();
    assert!(done.new_in_log);
    assert_eq!(done.removed.unwrap(), *p.signed());
    assert!(s.contains_log(&key).unwrap());
    assert_eq!(s.retraction_author(&p.id()).unwrap(), Some(me.public()));
    assert!(!s.insert_post(&p).unwrap(), "refused from now on");
    assert_eq!(s.count_topic(&topic("t")).unwrap(), 1);
    let again = s
        .apply_retraction(key, &log_msg(), &p.id(), &me.public())
        .unwrap();
    assert_eq!(
        again,
        Retracted {
            new_in_log: false,
            removed: None
        }
    );
    // Someone else's post is not deleted by my retraction of its id.
    let key2 = ItemKey {
        created_at: 61,
        id: [7; 32],
    };
    let none = s
        .apply_retraction(key2, &log_msg(), &theirs.id(), &me.public())
        .unwrap();
    assert!(none.new_in_log);
    assert!(none.removed.is_none());
    assert!(s.contains_post(&theirs.id()).unwrap());
    // It is recorded, but binds nothing: the post may still arrive, and a
    // later retraction by its author still applies.
    assert!(s.is_retracted_by(&theirs.id(), &me.public()).unwrap());
    assert!(!s.is_retracted_by(&theirs.id(), &other.public()).unwrap());
    let key3 = ItemKey {
        created_at: 62,
        id: [8; 32],
    };
    let own = s
        .apply_retraction(key3, &log_msg(), &theirs.id(), &other.public())
        .unwrap();
    assert!(own.removed.is_some());
    assert_eq!(
        s.retraction_authors(&theirs.id()).unwrap().len(),
        2,
        "neither retraction overwrote the other"
    );
    assert_consistent(&s);
}

/// sled's snapshot files in a store directory.
fn snapshots(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snap."))
        .collect();
    names.sort();
    names
}

#[test]
fn closing_leaves_a_fresh_snapshot_and_everything_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate(None);
    let posts: Vec<VerifiedPost> = (0..50)
        .map(|i| post(&me, "t", &format!("p{i}"), 10 + i))
        .collect();
    let s = Store::open(dir.path(), keys()).unwrap();
    for p in &posts {
        assert!(s.insert_post(p).unwrap());
    }
    s.flush().unwrap();
    let before = snapshots(dir.path());
    s.close().unwrap();
    let after = snapshots(dir.path());
    assert!(
        after.iter().any(|n| !before.contains(n)),
        "no new snapshot: {before:?} then {after:?}"
    );
    let s = Store::open(dir.path(), keys()).unwrap();
    assert_eq!(s.count_topic(&topic("t")).unwrap(), 50);
    for p in &posts {
        assert_eq!(s.get_post(&p.id()).unwrap().unwrap(), *p.signed());
    }
    assert_consistent(&s);
    // A temporary store has nothing to reopen.
    Store::temporary().unwrap().close().unwrap();
}

/// What a fresh scan of a scope's keys sums to.
fn scanned_sum(s: &Store, scope: &SyncScope) -> Accumulator {
    let mut acc = Accumulator::EMPTY;
    s.scan_keys(scope, &ItemKey::MIN, &ItemKey::MAX, &mut |k| {
        acc.add(&k.id);
        true
    })
    .unwrap();
    acc
}

#[test]
fn the_cached_scope_sums_follow_every_write() {
    let s = Store::temporary().unwrap();
    let me = Identity::generate(None);
    let other = Identity::generate(None);
    let t = SyncScope::Topic(topic("t"));
    let u = SyncScope::Topic(topic("u"));
    let log = SyncScope::CommunityLog;
    let check = |s: &Store| {
        for scope in [&t, &u, &log] {
            assert_eq!(
                s.scope_sum(scope).unwrap(),
                scanned_sum(s, scope),
                "{scope:?}"
            );
        }
    };
    check(&s); // caches the empty sets
    let mine: Vec<_> = (0..6)
        .map(|i| post(&me, "t", &format!("mine {i}"), 100 + i))
        .collect();
    let theirs = post(&other, "u", "theirs", 200);
    s.insert_post(&mine[0]).unwrap();
    check(&s);
    // A batch with a duplicate inside it and one already stored.
    let batch = vec![&mine[0], &mine[1], &mine[2], &mine[2], &mine[3], &theirs];
    assert_eq!(
        s.insert_posts(&batch).unwrap(),
        vec![false, true, true, false, true, true]
    );
    check(&s);
    assert_eq!(s.scope_sum(&t).unwrap().count(), 4);
    s.delete_post(&mine[1].id()).unwrap();
    check(&s);
    s.hide_post(&mine[2].id(), b"hidden").unwrap();
    check(&s);
    s.insert_post(&mine[4]).unwrap();
    check(&s);
    let key = ItemKey {
        created_at: 300,
        id: [9; 32],
    };
    assert!(s.insert_log(key, &log_msg()).unwrap());
    check(&s);
    let rkey = ItemKey {
        created_at: 301,
        id: [8; 32],
    };
    s.apply_retraction(rkey, &log_msg(), &mine[3].id(), &me.public())
        .unwrap();
    check(&s);
    s.insert_post(&mine[5]).unwrap();
    s.delete_author_posts(&other.public(), &Scope::Community)
        .unwrap();
    check(&s);
    assert_eq!(
        s.scope_sum(&t).unwrap().count(),
        s.count_topic(&topic("t")).unwrap()
    );
    assert_eq!(s.scope_sum(&u).unwrap(), Accumulator::EMPTY);
}

fn record(addrs: &[&str]) -> PeerRecord {
    PeerRecord {
        addrs: addrs.iter().map(|a| a.to_string()).collect(),
        last_seen_ms: 7,
        failures: 1,
    }
}

#[test]
fn author_windows_follow_inserts_and_deletions_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), keys()).unwrap();
    let me = Identity::generate(None);
    let first: Vec<_> = (0..10)
        .map(|i| post(&me, "t", &format!("a{i}"), 1000 + i * 10))
        .collect();
    for p in &first {
        s.insert_post(p).unwrap();
    }
    let count = |s: &Store| {
        s.count_author_between(&me.public(), 1000, 1095, 100)
            .unwrap()
    };
    assert_eq!(count(&s), 10);
    let more: Vec<_> = (0..5)
        .map(|i| post(&me, "u", &format!("b{i}"), 1005 + i * 10))
        .collect();
    s.insert_posts(&more.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(count(&s), 15, "the index follows inserts");
    s.delete_post(&first[0].id()).unwrap();
    s.hide_post(&first[1].id(), b"notice").unwrap();
    assert_eq!(count(&s), 13, "and deletions");
    s.delete_author_posts(&me.public(), &Scope::Topic(topic("u")))
        .unwrap();
    assert_eq!(count(&s), 8, "and a block's deletions");
    assert_eq!(
        s.count_author_between(&me.public(), 1000, 1095, 3).unwrap(),
        3,
        "counts at most the limit"
    );
    s.close().unwrap();
    let s = Store::open(dir.path(), keys()).unwrap();
    assert_eq!(count(&s), 8, "the index read from the author log agrees");
    assert_eq!(
        s.latest_post_of(&me.public()).unwrap().unwrap(),
        *first[9].signed()
    );
}

#[test]
fn a_layout_3_store_moves_its_author_index_into_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate(None);
    let posts: Vec<_> = (0..(2 * super::migrate::BATCH_FOR_TESTS + 5) as u64)
        .map(|i| post(&me, "t", &format!("p{i}"), 1000 + i))
        .collect();
    {
        let s = Store::open(dir.path(), keys()).unwrap();
        s.insert_posts(&posts.iter().collect::<Vec<_>>()).unwrap();
        // Back to layout 3: the author index as one `a` entry per post.
        let b = s.b();
        let mut batch = sled::Batch::default();
        for k in b.items.scan_prefix([AUTHOR_LOG]).keys() {
            batch.remove(k.unwrap());
        }
        for p in &posts {
            batch.insert(
                prefixed(
                    AUTHOR,
                    &author_key(&s.keys.author_tag(&me.public().0), &key_of(p.signed())),
                ),
                &s.topic_tag(&topic("t"))[..],
            );
        }
        b.items.apply_batch(batch).unwrap();
        b.info.insert(LAYOUT_KEY, &encode_u64(3)[..]).unwrap();
        drop(b);
        s.close().unwrap();
    }
    let s = Store::open(dir.path(), keys()).unwrap();
    assert_consistent(&s);
    assert_eq!(
        s.count_author_between(&me.public(), 0, u64::MAX, usize::MAX)
            .unwrap(),
        posts.len()
    );
    assert_eq!(s.b().items.scan_prefix([AUTHOR]).count(), 0);
    assert_eq!(s.b().items.scan_prefix([POST_ID]).count(), 0);
    assert_eq!(
        layout_of(&s.b().db, dir.path()).unwrap(),
        Some(LAYOUT_VERSION)
    );
    let gone = s
        .delete_author_posts(&me.public(), &Scope::Community)
        .unwrap();
    assert_eq!(gone.len(), posts.len());
    assert_consistent(&s);
}

#[test]
fn a_layout_4_store_drops_its_id_entries_and_finds_every_post_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate(None);
    let posts: Vec<_> = (0..(2 * super::migrate::BATCH_FOR_TESTS + 5) as u64)
        .map(|i| {
            post(
                &me,
                if i % 2 == 0 { "t" } else { "u" },
                &format!("p{i}"),
                1000 + i,
            )
        })
        .collect();
    {
        let s = Store::open(dir.path(), keys()).unwrap();
        s.insert_posts(&posts.iter().collect::<Vec<_>>()).unwrap();
        // Back to layout 4: an `i` entry (id → created_at ‖ T(topic)) per
        // post.
        let b = s.b();
        let mut batch = sled::Batch::default();
        for p in &posts {
            let mut place = p.created_at.to_be_bytes().to_vec();
            place.extend_from_slice(&s.topic_tag(&p.topic));
            batch.insert(prefixed(POST_ID, &p.id().0), place);
        }
        b.items.apply_batch(batch).unwrap();
        b.info.insert(LAYOUT_KEY, &encode_u64(4)[..]).unwrap();
        drop(b);
        s.close().unwrap();
    }
    let s = Store::open(dir.path(), keys()).unwrap();
    assert_eq!(s.b().items.scan_prefix([POST_ID]).count(), 0);
    assert_eq!(
        layout_of(&s.b().db, dir.path()).unwrap(),
        Some(LAYOUT_VERSION)
    );
    assert_consistent(&s);
    for p in &posts {
        assert_eq!(s.get_post(&p.id()).unwrap().as_ref(), Some(p.signed()));
        assert_eq!(s.topic_of(&p.id()).unwrap().as_ref(), Some(&p.topic));
    }
    let short = &posts[7].id().0[..3];
    assert!(s
        .post_ids_with_prefix(short, 2)
        .unwrap()
        .contains(&posts[7].id()));
    assert_eq!(
        s.delete_post(&posts[0].id()).unwrap().as_ref(),
        Some(posts[0].signed())
    );
    assert!(!s.contains_post(&posts[0].id()).unwrap());
    assert!(s.contains_post(&posts[1].id()).unwrap());
    assert_consistent(&s);
}

#[test]
fn a_checkpoint_reopens_under_readers_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), keys()).unwrap();
    let me = Identity::generate(None);
    let posts: Vec<VerifiedPost> = (0..200)
        .map(|i| post(&me, "t", &format!("p{i}"), 10 + i))
        .collect();
    for chunk in posts[..100].chunks(16) {
        s.insert_posts(&chunk.iter().collect::<Vec<_>>()).unwrap();
    }
    s.join_topic(&topic("t")).unwrap();
    let before = snapshots(dir.path());
    // Readers on other threads keep reading through the checkpoint.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (s, stop) = (s.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let page = s.topic_page(&topic("t"), None, 10).unwrap();
                    assert_eq!(page.len(), 10);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    assert!(
        s.checkpoint_now().unwrap(),
        "no reader holds the database long"
    );
    assert!(
        snapshots(dir.path()).iter().any(|n| !before.contains(n)),
        "the reopen wrote a fresh snapshot"
    );
    for chunk in posts[100..].chunks(16) {
        s.insert_posts(&chunk.iter().collect::<Vec<_>>()).unwrap();
    }
    stop.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(s.count_topic(&topic("t")).unwrap(), 200);
    assert_eq!(s.joined_topics().unwrap(), vec![topic("t")]);
    assert_consistent(&s);
    s.close().unwrap();
    let s = Store::open(dir.path(), keys()).unwrap();
    assert_eq!(s.count_topic(&topic("t")).unwrap(), 200);
    assert_consistent(&s);
}

#[test]
fn forgetting_a_topic_deletes_its_posts_tombstones_and_counts_only() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate(None);
    let s = Store::open(dir.path(), keys()).unwrap();
    let gone: Vec<_> = (0..5)
        .map(|i| post(&me, "gone", &format!("g{i}"), 10 + i))
        .collect();
    let kept = post(&me, "kept", "k", 20);
    for p in gone.iter().chain([&kept]) {
        s.insert_post(p).unwrap();
    }
    s.hide_post(&gone[0].id(), b"why").unwrap();
    s.flush().unwrap();
    assert_eq!(s.acknowledged().unwrap().len(), 2);

    let f = s.forget_topic(&topic("gone")).unwrap();
    assert_eq!(
        f,
        Forgotten {
            posts: 4,
            tombstones: 1
        }
    );
    assert_eq!(s.count_topic(&topic("gone")).unwrap(), 0);
    assert!(s.topic_page(&topic("gone"), None, 10).unwrap().is_empty());
    assert!(s
        .tombstones_page(&topic("gone"), None, 10)
        .unwrap()
        .is_empty());
    assert!(s.tombstone_of(&gone[0].id()).unwrap().is_none());
    assert!(!s.contains_post(&gone[1].id()).unwrap());
    assert_eq!(
        s.latest_post_of(&me.public()).unwrap().unwrap(),
        *kept.signed()
    );
    assert_eq!(s.stored_ever(), [(Some("kept".into()), 1)]);
    assert_eq!(s.acknowledged().unwrap(), [(Some("kept".into()), 1)]);
    assert_eq!(s.damage(), None, "a deletion on purpose is not damage");
    assert_consistent(&s);
    // Forgetting it again finds nothing; its posts may come back by sync.
    assert_eq!(
        s.forget_topic(&topic("gone")).unwrap(),
        Forgotten::default()
    );
    assert!(s.insert_post(&gone[1]).unwrap());
    assert_eq!(s.count_topic(&topic("gone")).unwrap(), 1);
    s.close().unwrap();
    let s = Store::open(dir.path(), keys()).unwrap();
    assert_eq!(s.count_topic(&topic("gone")).unwrap(), 1);
    assert_eq!(s.damage(), None);
    assert_consistent(&s);
}

/// The duplicate check trusts the in-memory author index: an author log
/// entry that does not decode at open would leave its posts out of it (and
/// a post arriving again would be stored and counted twice), so the store
/// rebuilds the index from the posts at once.
#[test]
fn a_damaged_author_log_entry_is_rebuilt_from_the_posts_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate(None);
    let posts: Vec<_> = (0..3)
        .map(|i| post(&me, "t", &format!("p{i}"), 100 + i))
        .collect();
    {
        let s = Store::open(dir.path(), keys()).unwrap();
        s.insert_posts(&posts.iter().collect::<Vec<_>>()).unwrap();
        let b = s.b();
        let entries: Vec<_> = b
            .items
            .scan_prefix([AUTHOR_LOG])
            .keys()
            .map(Result::unwrap)
            .collect();
        assert_eq!(entries.len(), 1, "one author log entry for the batch");
        b.items.insert(&entries[0], &b"junk"[..]).unwrap();
        s.flush().unwrap();
    }
    let s = Store::open(dir.path(), keys()).unwrap();
    for p in &posts {
        assert!(s.holds(p).unwrap(), "post {} known again", p.body);
    }
    assert_eq!(
        s.insert_posts(&posts.iter().collect::<Vec<_>>()).unwrap(),
        vec![false; 3],
        "duplicates, not stored again"
    );
    assert_eq!(s.count_topic(&topic("t")).unwrap(), 3);
    assert_consistent(&s);
}
