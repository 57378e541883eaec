//! Encryption at rest, as someone holding a copy of the store directory
//! would check it: no marker word, topic name, pseudonym or key in any raw
//! file; the right keys read everything back; other keys are refused and
//! change nothing; an old store migrates into the encrypted form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use protocol::moderation::ModActionKind;
use protocol::post::Draft;
use protocol::sync::ItemKey;
use protocol::{
    CommunityManifest, Identity, Message, ModAction, Post, PostId, PublicKey, Retraction,
    SealedReport, SignedManifest, TopicName,
};
use tokio::sync::broadcast;

use super::*;
use crate::core::{Core, CoreConfig, Origin};

const T0: u64 = 1_800_000_000_000;

fn keys() -> StoreKeys {
    StoreKeys::derive(&[0x5a; 32])
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path, bytes);
            }
        }
    }
    out
}

/// Asserts that no file under `dir` contains any of `needles` (checked:
/// the files are not all empty, and a needle planted in a copy is found).
fn assert_nothing_readable(dir: &Path, needles: &[(String, Vec<u8>)]) {
    let all = files(dir);
    let total: usize = all.values().map(Vec::len).sum();
    assert!(total > 10_000, "the store wrote only {total} bytes");
    let found = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for (path, bytes) in &all {
        for (what, needle) in needles {
            assert!(
                !found(bytes, needle),
                "{what} is readable in {}",
                path.display()
            );
        }
    }
    // The search itself works: a planted needle is found.
    let (what, needle) = &needles[0];
    let mut planted = all.values().next().unwrap().clone();
    planted.extend_from_slice(needle);
    assert!(found(&planted, needle), "the search misses {what}");
}

/// What must never be readable: the words, and each key in its raw and
/// text forms.
fn needles(words: &[&str], keys: &[PublicKey]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = words
        .iter()
        .map(|w| (format!("the word {w:?}"), w.as_bytes().to_vec()))
        .collect();
    for k in keys {
        out.push((format!("key {} (raw)", k.short()), k.0.to_vec()));
        let hex: String = k.0.iter().map(|b| format!("{b:02x}")).collect();
        out.push((format!("key {} (hex)", k.short()), hex.into_bytes()));
        out.push((
            format!("key {} (printable)", k.short()),
            k.to_string().into_bytes(),
        ));
        out.push((format!("key {} (short)", k.short()), k.short().into_bytes()));
    }
    out
}

struct World {
    admin: Identity,
    manifest: SignedManifest,
}

impl World {
    fn new() -> World {
        let admin = Identity::generate(Some("heronquill".into()));
        let manifest = CommunityManifest::create("c", "be kind", &admin.secret, T0).unwrap();
        World { admin, manifest }
    }

    fn core(&self, store: Store) -> Core {
        let (events, _) = broadcast::channel(64);
        Core::open(
            store,
            self.admin.clone(),
            self.manifest.clone(),
            events,
            CoreConfig::default(),
        )
        .unwrap()
    }

    fn post(&self, who: &Identity, topic: &TopicName, body: &str, at: u64) -> Message {
        let draft = Draft {
            body: body.into(),
            ..Draft::default()
        };
        Message::Post(Post::write(who, self.manifest.id(), topic.clone(), draft, at).unwrap())
    }
}

fn id_of(m: &Message) -> PostId {
    match m {
        Message::Post(p) => p.id(),
        _ => panic!("not a post"),
    }
}

/// Everything arrives through the core's one arrival path.
fn arrive(core: &mut Core, messages: &[Message], now: u64) {
    let encoded: Vec<Vec<u8>> = messages.iter().map(Message::encode).collect();
    for outcome in core.arrive_encoded(&encoded, Origin::Sync, now) {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
}

#[test]
fn a_filled_store_shows_no_word_name_or_key_and_other_keys_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let w = World::new();
    let zebra = Identity::generate(Some("zebrafinch".into()));
    let otter = Identity::generate(Some("otterglade".into()));
    let lantern: TopicName = "lanternfish".parse().unwrap();
    let cobalt: TopicName = "cobaltmoth".parse().unwrap();
    let kept = w.post(&zebra, &lantern, "quartzmarker sleepless again", T0);
    let other = w.post(&otter, &cobalt, "saffronmarker my manager", T0 + 1);
    let hidden = w.post(&otter, &cobalt, "umbermarker too much", T0 + 2);
    let retracted = w.post(&zebra, &lantern, "violetmarker said too much", T0 + 3);
    let peer_id = b"12D3KooWpeerbytesmarker".to_vec();
    {
        let store = Store::open(&store_dir, keys()).unwrap();
        let mut core = w.core(store.clone());
        core.join(lantern.clone()).unwrap();
        core.join(cobalt.clone()).unwrap();
        arrive(
            &mut core,
            &[
                kept.clone(),
                other.clone(),
                hidden.clone(),
                retracted.clone(),
            ],
            T0 + 10,
        );
        let report = Message::Report(
            SealedReport::seal(
                &otter,
                w.manifest.id(),
                id_of(&kept),
                "reasonmarker unkind",
                &[w.admin.public()],
                T0 + 11,
                &mut rand::rngs::OsRng,
            )
            .unwrap(),
        );
        let hide = Message::Moderation(
            ModAction::create(
                &w.admin,
                w.manifest.id(),
                1,
                ModActionKind::Hide {
                    post: id_of(&hidden),
                    reason: "hidemarker off topic".into(),
                },
                T0 + 12,
            )
            .unwrap(),
        );
        let retraction = Message::Retraction(Retraction::create(
            &zebra.secret,
            w.manifest.id(),
            id_of(&retracted),
            T0 + 13,
        ));
        arrive(&mut core, &[report, hide, retraction], T0 + 20);
        core.mute(otter.public(), true).unwrap();
        store
            .put_peer(
                &peer_id,
                &PeerRecord {
                    addrs: vec!["/dns4/hostmarker.example/tcp/4001".into()],
                    last_seen_ms: T0,
                    failures: 0,
                },
            )
            .unwrap();
        assert_eq!(store.log_len().unwrap(), 3);
        drop(core);
        store.close().unwrap();
    }
    let words = [
        "quartzmarker",
        "saffronmarker",
        "umbermarker",
        "violetmarker",
        "reasonmarker",
        "hidemarker",
        "hostmarker",
        "peerbytesmarker",
        "lanternfish",
        "cobaltmoth",
        "zebrafinch",
        "otterglade",
        "heronquill",
    ];
    let authors = [zebra.public(), otter.public(), w.admin.public()];
    assert_nothing_readable(&store_dir, &needles(&words, &authors));
    assert!(
        store_dir.join(ack::RECORD_FILE).exists(),
        "the record is among the files searched"
    );

    // Other keys: a clear error, and not one byte changed.
    let before = files(&store_dir);
    match Store::open(&store_dir, StoreKeys::derive(&[0x5b; 32])) {
        Err(e @ StoreError::WrongKeys { .. }) => {
            assert!(e.to_string().contains("other keys"), "{e}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a store opened under other keys"),
    }
    assert_eq!(
        files(&store_dir),
        before,
        "opening with other keys changed the directory"
    );

    // The right keys read everything back.
    let store = Store::open(&store_dir, keys()).unwrap();
    assert!(store.check_integrity().unwrap().is_empty());
    let bodies = |t: &TopicName| -> Vec<String> {
        store
            .topic_page(t, None, 10)
            .unwrap()
            .into_iter()
            .map(|p| p.content.body)
            .collect()
    };
    assert_eq!(bodies(&lantern), ["quartzmarker sleepless again"]);
    assert_eq!(bodies(&cobalt), ["saffronmarker my manager"]);
    assert_eq!(
        store.joined_topics().unwrap(),
        [cobalt.clone(), lantern.clone()]
    );
    assert!(store.is_muted(&otter.public()).unwrap());
    assert_eq!(store.peer_records().unwrap()[0].0, peer_id);
    assert_eq!(store.log_items().unwrap().len(), 3);
    assert_eq!(
        store.retraction_authors(&id_of(&retracted)).unwrap(),
        [zebra.public()]
    );
    let tombstone = store.tombstone_of(&id_of(&hidden)).unwrap().unwrap();
    assert!(!tombstone.is_empty());
    assert_eq!(
        store.topic_of(&id_of(&kept)).unwrap(),
        Some(lantern.clone())
    );
    assert_eq!(
        store.stored_ever(),
        [
            (None, 3),
            (Some("cobaltmoth".into()), 2),
            (Some("lanternfish".into()), 2)
        ]
    );
    assert_eq!(store.acknowledged().unwrap().len(), 3);
    assert_eq!(store.damage(), None);
    let core = w.core(store.clone());
    assert_eq!(core.store().count_topic(&lantern).unwrap(), 1);
}

/// Writes a store as layout 2 wrote it (values in the clear, names and
/// keys in keys, the plain record of acknowledged writes) into `dir`.
fn layout_2_store(dir: &Path, posts: &[&SignedPost], log: &[(ItemKey, Vec<u8>)]) {
    let db = sled_config(dir).open().unwrap();
    let items = db.open_tree("items").unwrap();
    let old_topic_key = |topic: &[u8], key: &ItemKey| {
        let mut k = vec![b'p'];
        k.extend_from_slice(topic);
        k.push(0);
        k.extend_from_slice(&keys::item_key_bytes(key));
        k
    };
    let mut per_topic: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for p in posts {
        let key = ItemKey {
            created_at: p.content.created_at,
            id: p.id().0,
        };
        let topic = p.content.topic.as_str().as_bytes();
        items
            .insert(
                old_topic_key(topic, &key),
                Message::Post((*p).clone()).encode(),
            )
            .unwrap();
        let mut place = key.created_at.to_be_bytes().to_vec();
        place.extend_from_slice(topic);
        items.insert(prefixed(b'i', &key.id), place).unwrap();
        let mut a = vec![b'a'];
        a.extend_from_slice(&p.content.author.0);
        a.extend_from_slice(&keys::item_key_bytes(&key));
        items.insert(a, topic).unwrap();
        *per_topic.entry(topic.to_vec()).or_default() += 1;
    }
    for (topic, n) in &per_topic {
        items
            .insert(prefixed(b'c', topic), &encode_u64(*n)[..])
            .unwrap();
        // Two more were stored once and deleted since.
        items
            .insert(prefixed(b'n', topic), &encode_u64(*n + 2)[..])
            .unwrap();
    }
    for (key, m) in log {
        items
            .insert(prefixed(b'l', &keys::item_key_bytes(key)), m.clone())
            .unwrap();
    }
    items
        .insert(prefixed(b'n', b""), &encode_u64(log.len() as u64)[..])
        .unwrap();
    let hidden = ItemKey {
        created_at: 3,
        id: [3; 32],
    };
    let t = old_topic_key(b"lanternfish", &hidden);
    let mut tkey = vec![b't'];
    tkey.extend_from_slice(t.get(1..).unwrap());
    items.insert(&tkey, &b"hidemarker tombstone"[..]).unwrap();
    items.insert(prefixed(b'u', &hidden.id), tkey).unwrap();
    db.open_tree("topics")
        .unwrap()
        .insert(b"lanternfish", &encode_u64(T0)[..])
        .unwrap();
    db.open_tree("peers")
        .unwrap()
        .insert(
            b"12D3KooWpeerbytesmarker",
            protocol::wire::encode(&vec!["/dns4/hostmarker.example/tcp/1".to_string()]),
        )
        .unwrap();
    let muted = posts[0].content.author;
    db.open_tree("mutes")
        .unwrap()
        .insert(muted.0, &[][..])
        .unwrap();
    db.open_tree("meta")
        .unwrap()
        .insert("manifest", &b"metamarker"[..])
        .unwrap();
    db.open_tree("info")
        .unwrap()
        .insert(LAYOUT_KEY, &encode_u64(2)[..])
        .unwrap();
    db.flush().unwrap();
    drop(db);
    let mut record = ack::Counts::new();
    // More than the store holds: acknowledged writes it lost.
    record.insert(b"lanternfish".to_vec(), 6);
    record.insert(Vec::new(), log.len() as u64);
    std::fs::write(dir.join(ack::RECORD_FILE), ack::encode_v1(&record)).unwrap();
    assert!(matches!(ack::read_v1(dir), ack::Found::Intact(_)));
}

#[test]
fn a_store_of_layout_2_migrates_into_new_files_that_show_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let zebra = Identity::generate(Some("zebrafinch".into()));
    let community = protocol::CommunityId::of_bytes(b"c");
    let lantern: TopicName = "lanternfish".parse().unwrap();
    let post = |body: &str, at: u64| {
        Post::write(
            &zebra,
            community,
            lantern.clone(),
            Draft {
                body: body.into(),
                ..Draft::default()
            },
            at,
        )
        .unwrap()
    };
    let a = post("quartzmarker one", T0);
    let b = post("saffronmarker two", T0 + 1);
    let log_key = ItemKey {
        created_at: 7,
        id: [7; 32],
    };
    let log_item = Message::Post(post("violetmarker logged", T0 + 2)).encode();
    layout_2_store(&dir, &[&a, &b], &[(log_key, log_item.clone())]);

    let s = Store::open(&dir, keys()).unwrap();
    assert!(s.check_integrity().unwrap().is_empty());
    let bodies: Vec<String> = s
        .topic_page(&lantern, None, 10)
        .unwrap()
        .into_iter()
        .map(|p| p.content.body)
        .collect();
    assert_eq!(bodies, ["saffronmarker two", "quartzmarker one"]);
    assert_eq!(s.count_topic(&lantern).unwrap(), 2);
    assert_eq!(s.latest_post_of(&zebra.public()).unwrap(), Some(b.clone()));
    assert_eq!(s.log_items().unwrap(), [(log_key, log_item)]);
    assert_eq!(
        s.tombstones_page(&lantern, None, 10).unwrap(),
        [(
            ItemKey {
                created_at: 3,
                id: [3; 32]
            },
            b"hidemarker tombstone".to_vec()
        )]
    );
    assert_eq!(
        s.joined_topics_with_times().unwrap(),
        [(lantern.clone(), Some(T0))]
    );
    assert_eq!(
        s.peer_records().unwrap()[0].1.addrs,
        ["/dns4/hostmarker.example/tcp/1"]
    );
    assert!(s.is_muted(&zebra.public()).unwrap());
    assert_eq!(
        s.get_meta("manifest").unwrap().as_deref(),
        Some(&b"metamarker"[..])
    );
    // The stored-ever counts and the record came along (named by tag now):
    // 4 ever stored in the topic, 6 acknowledged: the loss is still told.
    assert_eq!(
        s.stored_ever(),
        [(None, 1), (Some("lanternfish".into()), 4)]
    );
    assert_eq!(
        s.acknowledged().unwrap(),
        [(None, 1), (Some("lanternfish".into()), 6)]
    );
    assert_eq!(s.damage().map(|d| d.missing()), Some(2));
    s.close().unwrap();

    // The old files are gone, and the new ones show nothing.
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["store"]);
    let words = [
        "quartzmarker",
        "saffronmarker",
        "violetmarker",
        "hidemarker",
        "hostmarker",
        "peerbytesmarker",
        "metamarker",
        "lanternfish",
        "zebrafinch",
    ];
    assert_nothing_readable(&dir, &needles(&words, &[zebra.public()]));

    // A stop between the swap's two renames: the next open finishes it.
    std::fs::rename(&dir, root.path().join("store.v3-migrating")).unwrap();
    std::fs::create_dir(root.path().join("store.v2-old")).unwrap();
    let s = Store::open(&dir, keys()).unwrap();
    assert_eq!(s.count_topic(&lantern).unwrap(), 2);
    drop(s);
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["store"]);
}

#[test]
fn a_half_built_migration_is_started_again() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let zebra = Identity::generate(None);
    let p = Post::write(
        &zebra,
        protocol::CommunityId::of_bytes(b"c"),
        "lanternfish".parse().unwrap(),
        Draft {
            body: "x".into(),
            ..Draft::default()
        },
        T0,
    )
    .unwrap();
    layout_2_store(&dir, &[&p], &[]);
    // A stop during the copy left a half-built store beside the old one.
    let half = root.path().join("store.v3-migrating");
    std::fs::create_dir(&half).unwrap();
    std::fs::write(half.join("junk"), b"half").unwrap();
    let s = Store::open(&dir, keys()).unwrap();
    assert_eq!(s.count_topic(&"lanternfish".parse().unwrap()).unwrap(), 1);
    assert!(!half.exists());
}
