//! sled 0.34 alone, with the keys a post costs in the store: what no work
//! on our side of `Store::insert_posts` can beat. The one place outside
//! `node/src/store/` that names sled, because it measures the engine,
//! not the project.
//!
//! `cargo run --release -p mutual-bench --example sled_floor [WORD]`
//! writes 100,000 post-shaped entries in batches of 512, several ways
//! (those whose description holds WORD), each into a fresh database with
//! the store's settings, and prints µs per post: first the store's layout
//! 5 (one tree: the sealed 420-byte post, 460 bytes, under its
//! time-ordered key behind the topic's 16-byte tag, count, ever-count and
//! one author log entry listing the batch's authors and ids; one
//! `apply_batch` per batch, as `Store::insert_posts` does), then layout 4
//! (the same with an id → place entry per post), then layout 3 (an author
//! index entry per post instead of the log, each post's key read first)
//! and variants of it, then the ways tried for layout 4 that lost (index
//! entries deferred and folded sorted), then layout 1's shape (three trees
//! and a count in one transaction per batch), then the engine's lower
//! bounds, then layout 5 again.
//! `sled_floor settings` writes layout 5 under other settings of sled
//! (mode, cache, segment size, background flush). Sealing
//! itself is CPU outside sled: see
//! `store::seal::tests::seal_cost`.

use std::time::Instant;

use sled::Transactional;

const POSTS: u64 = 100_000;
const BATCH: u64 = 512;
/// A 420-byte post sealed: nonce and tag add 40 bytes.
const VALUE: usize = 420 + 40;
/// Length of a tag (a keyed hash standing for a topic or an author).
const TAG: usize = 16;

/// A random-looking 32-byte id, as BLAKE3 post ids are.
fn id(i: u64) -> [u8; 32] {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

fn value(i: u64) -> Vec<u8> {
    let mut v = vec![0u8; VALUE];
    v[..8].copy_from_slice(&i.to_be_bytes());
    v
}

/// The tag of the one topic (a random-looking 16 bytes).
fn topic_tag() -> [u8; TAG] {
    let mut t = [0u8; TAG];
    t.copy_from_slice(&blake3::hash(b"topic").as_bytes()[..TAG]);
    t
}

fn topic_key(i: u64, id: &[u8; 32]) -> Vec<u8> {
    let mut k = topic_tag().to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k.extend_from_slice(id);
    k
}

fn author_key(i: u64, id: &[u8; 32]) -> Vec<u8> {
    let mut k = blake3::hash(&(i % 1000).to_be_bytes()).as_bytes()[..TAG].to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k.extend_from_slice(id);
    k
}

/// The store's settings (node::store::CACHE_BYTES, BACKGROUND_FLUSH_MS).
fn config(dir: &std::path::Path) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .cache_capacity(16 * 1024 * 1024)
        .flush_every_ms(Some(100))
}

/// Other settings of sled, each measured with layout 5's writes.
type Setting = fn(sled::Config) -> sled::Config;

const SETTINGS: [(&str, Setting); 6] = [
    ("the store's settings", |c| c),
    ("mode HighThroughput", |c| {
        c.mode(sled::Mode::HighThroughput)
    }),
    ("cache 64 MiB", |c| c.cache_capacity(64 * 1024 * 1024)),
    ("cache 256 MiB", |c| c.cache_capacity(256 * 1024 * 1024)),
    ("segment 8 MiB", |c| c.segment_size(8 * 1024 * 1024)),
    ("no background flush", |c| c.flush_every_ms(None)),
];

/// One way of writing the posts.
type Way = fn(&sled::Db) -> sled::Result<()>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ways: [(&str, Way); 17] = [
        (
            "layout 5: one tree, sealed post + count + ever + one author log entry per batch, one apply_batch per batch (the store's shape)",
            layout_5,
        ),
        (
            "layout 4: the same with an id → place entry per post",
            |db| write_one_tree(db, Shape::LAYOUT_4),
        ),
        (
            "layout 3: the same with an author index entry per post instead of the author log",
            layout_3,
        ),
        (
            "layout 3 without reading the post keys first",
            layout_3_blind,
        ),
        (
            "layout 3 without the author index (post + id only)",
            layout_3_no_author,
        ),
        (
            "layout 3 without the id entry (post + author only)",
            layout_3_no_id,
        ),
        (
            "layout 3 with the author entry keyed by time first (not random)",
            layout_3_author_by_time,
        ),
        (
            "id and author entries deferred: a journal entry per batch, all folded sorted in one batch every 4,096 posts",
            |db| deferred(db, 4_096, true, usize::MAX),
        ),
        (
            "the same, folded every 16,384 posts",
            |db| deferred(db, 16_384, true, usize::MAX),
        ),
        (
            "the same, folded every 65,536 posts",
            |db| deferred(db, 65_536, true, usize::MAX),
        ),
        (
            "the same, folded every 16,384 posts, without the journal entry",
            |db| deferred(db, 16_384, false, usize::MAX),
        ),
        (
            "the same, folded every 16,384 posts in sorted batches of 512, without the journal entry",
            |db| deferred(db, 16_384, false, 512),
        ),
        (
            "layout 1's shape: 3 trees + count in one transaction per batch",
            transaction,
        ),
        (
            "3 trees, one apply_batch per tree per batch (not atomic across trees)",
            batches,
        ),
        ("only the post (id → bytes), apply_batch", posts_only),
        (
            "only a time-ordered key → bytes, apply_batch",
            sequential_only,
        ),
        (
            "layout 5 again (last: the first ways run on a colder machine)",
            layout_5,
        ),
    ];
    // `sled_floor WORD`: only the ways whose description holds WORD;
    // `sled_floor settings`: layout 5 under each of [`SETTINGS`].
    let only = std::env::args().nth(1).unwrap_or_default();
    if only == "settings" {
        for (name, setting) in SETTINGS {
            measure(setting, layout_5, &format!("layout 5, {name}"))?;
        }
        return Ok(());
    }
    for (name, write) in ways.into_iter().filter(|(n, _)| n.contains(&only)) {
        measure(|c| c, write, name)?;
    }
    Ok(())
}

/// Writes the posts one way into a fresh database opened with the store's
/// settings changed by `setting`, and prints the cost.
fn measure(setting: Setting, write: Way, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = setting(config(dir.path())).open()?;
    let t = Instant::now();
    write(&db)?;
    let took = t.elapsed();
    db.flush()?;
    println!(
        "{:>6.1} µs/post  {:>7.0} posts/s  {:>4} MiB on disk  {name}",
        took.as_secs_f64() * 1e6 / POSTS as f64,
        POSTS as f64 / took.as_secs_f64(),
        db.size_on_disk()? >> 20,
    );
    Ok(())
}

/// `prefix ‖ rest`, as the store's keys are.
fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn layout_5(db: &sled::Db) -> sled::Result<()> {
    write_one_tree(db, Shape::STORE)
}

fn layout_3(db: &sled::Db) -> sled::Result<()> {
    write_one_tree(db, Shape::LAYOUT_3)
}

fn layout_3_blind(db: &sled::Db) -> sled::Result<()> {
    write_one_tree(
        db,
        Shape {
            read_first: false,
            ..Shape::LAYOUT_3
        },
    )
}

fn layout_3_no_author(db: &sled::Db) -> sled::Result<()> {
    write_one_tree(
        db,
        Shape {
            author: None,
            ..Shape::LAYOUT_3
        },
    )
}

fn layout_3_no_id(db: &sled::Db) -> sled::Result<()> {
    write_one_tree(
        db,
        Shape {
            id_entry: false,
            ..Shape::LAYOUT_3
        },
    )
}

fn layout_3_author_by_time(db: &sled::Db) -> sled::Result<()> {
    write_one_tree(
        db,
        Shape {
            author: Some(|i, k| {
                let mut key = i.to_be_bytes().to_vec();
                key.extend_from_slice(&author_key(i, k));
                key
            }),
            ..Shape::LAYOUT_3
        },
    )
}

/// A way tried for layout 4 and measured worse: a batch writes its posts,
/// counts and (with `with_journal`) one journal entry listing the batch's
/// index entries; every `fold` posts the id and author entries are written
/// sorted, in batches of `chunk`, and the journal entries deleted. sled
/// 0.34 pays per key at a random place, not per page touched, so sorting
/// and deferring save nothing.
fn deferred(db: &sled::Db, fold: u64, with_journal: bool, chunk: usize) -> sled::Result<()> {
    let items = db.open_tree("items")?;
    let mut overlay: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut journal: Vec<Vec<u8>> = Vec::new();
    for first in (0..POSTS).step_by(BATCH as usize) {
        let mut b = sled::Batch::default();
        let mut listed = Vec::with_capacity(BATCH as usize * 72);
        for i in first..first + BATCH {
            let k = id(i);
            let post_key = prefixed(b'p', &topic_key(i, &k));
            if items.contains_key(&post_key)? {
                continue;
            }
            b.insert(post_key, value(i));
            let mut place = i.to_be_bytes().to_vec();
            place.extend_from_slice(&topic_tag());
            overlay.push((prefixed(b'i', &k), place));
            overlay.push((prefixed(b'a', &author_key(i, &k)), topic_tag().to_vec()));
            listed.extend_from_slice(&author_key(i, &k));
            listed.extend_from_slice(&topic_tag());
        }
        let jkey = prefixed(b'j', &first.to_be_bytes());
        if with_journal {
            b.insert(jkey.clone(), listed);
            journal.push(jkey);
        }
        b.insert(
            prefixed(b'c', &topic_tag()),
            &(first + BATCH).to_be_bytes()[..],
        );
        b.insert(
            prefixed(b'n', &topic_tag()),
            &(first + BATCH).to_be_bytes()[..],
        );
        items.apply_batch(b)?;
        if overlay.len() as u64 >= 2 * fold || first + BATCH >= POSTS {
            overlay.sort_unstable();
            for part in overlay.chunks(chunk) {
                let mut f = sled::Batch::default();
                for (k, v) in part {
                    f.insert(k.clone(), v.clone());
                }
                items.apply_batch(f)?;
            }
            overlay.clear();
            let mut f = sled::Batch::default();
            for j in journal.drain(..) {
                f.remove(j);
            }
            items.apply_batch(f)?;
        }
    }
    Ok(())
}

/// A key made from a post's number and id.
type KeyOf = fn(u64, &[u8; 32]) -> Vec<u8>;

/// Which entries a variant of the one-tree layouts writes per post.
#[derive(Clone, Copy)]
struct Shape {
    /// Read the post's own key before writing (the duplicate check).
    read_first: bool,
    /// Write the id → place entry.
    id_entry: bool,
    /// The author entry's key, if any.
    author: Option<KeyOf>,
    /// One entry per batch listing its posts' authors.
    author_log: bool,
}

impl Shape {
    /// What `Store::insert_posts` writes (layout 5; its duplicate check
    /// and look-ups by id ask the in-memory index folded from the author
    /// log, not the tree).
    const STORE: Shape = Shape {
        read_first: false,
        id_entry: false,
        author: None,
        author_log: true,
    };
    /// What it wrote in layout 4.
    const LAYOUT_4: Shape = Shape {
        id_entry: true,
        ..Shape::STORE
    };
    /// What it wrote in layout 3.
    const LAYOUT_3: Shape = Shape {
        read_first: true,
        id_entry: true,
        author: Some(author_key),
        author_log: false,
    };
}

/// The one-tree layouts (3 to 5): everything in one tree under one-byte
/// prefixes, one atomic `apply_batch` per batch.
fn write_one_tree(db: &sled::Db, shape: Shape) -> sled::Result<()> {
    let items = db.open_tree("items")?;
    for first in (0..POSTS).step_by(BATCH as usize) {
        let mut b = sled::Batch::default();
        let mut lines = Vec::new();
        for i in first..first + BATCH {
            let k = id(i);
            let post_key = prefixed(b'p', &topic_key(i, &k));
            if shape.author_log {
                lines.extend_from_slice(&author_key(i, &k));
                lines.extend_from_slice(&topic_tag());
            }
            if shape.read_first && items.contains_key(&post_key)? {
                continue;
            }
            b.insert(post_key, value(i));
            if shape.id_entry {
                let mut place = i.to_be_bytes().to_vec();
                place.extend_from_slice(&topic_tag());
                b.insert(prefixed(b'i', &k), place);
            }
            if let Some(author) = shape.author {
                b.insert(prefixed(b'a', &author(i, &k)), &topic_tag()[..]);
            }
        }
        if shape.author_log {
            b.insert(prefixed(b'w', &first.to_be_bytes()), lines);
        }
        b.insert(
            prefixed(b'c', &topic_tag()),
            &(first + BATCH).to_be_bytes()[..],
        );
        b.insert(
            prefixed(b'n', &topic_tag()),
            &(first + BATCH).to_be_bytes()[..],
        );
        items.apply_batch(b)?;
    }
    Ok(())
}

fn transaction(db: &sled::Db) -> sled::Result<()> {
    let trees = (
        db.open_tree("posts")?,
        db.open_tree("topic_index")?,
        db.open_tree("author_index")?,
        db.open_tree("counts")?,
    );
    for first in (0..POSTS).step_by(BATCH as usize) {
        (&trees.0, &trees.1, &trees.2, &trees.3)
            .transaction(|(posts, tindex, aindex, counts)| {
                for i in first..first + BATCH {
                    let k = id(i);
                    if posts.get(k)?.is_some() {
                        continue;
                    }
                    posts.insert(&k[..], value(i))?;
                    tindex.insert(topic_key(i, &k), &[][..])?;
                    aindex.insert(author_key(i, &k), &b"topic"[..])?;
                }
                counts.insert(&b"topic"[..], &(first + BATCH).to_be_bytes()[..])?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => e,
                sled::transaction::TransactionError::Abort(()) => {
                    sled::Error::Unsupported("aborted".into())
                }
            })?;
    }
    Ok(())
}

fn batches(db: &sled::Db) -> sled::Result<()> {
    let posts = db.open_tree("posts")?;
    let tindex = db.open_tree("topic_index")?;
    let aindex = db.open_tree("author_index")?;
    for first in (0..POSTS).step_by(BATCH as usize) {
        let (mut p, mut t, mut a) = (
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        );
        for i in first..first + BATCH {
            let k = id(i);
            if posts.get(k)?.is_some() {
                continue;
            }
            p.insert(&k[..], value(i));
            t.insert(topic_key(i, &k), &[][..]);
            a.insert(author_key(i, &k), &b"topic"[..]);
        }
        posts.apply_batch(p)?;
        tindex.apply_batch(t)?;
        aindex.apply_batch(a)?;
    }
    Ok(())
}

fn posts_only(db: &sled::Db) -> sled::Result<()> {
    values_only(db, |i| id(i).to_vec())
}

fn sequential_only(db: &sled::Db) -> sled::Result<()> {
    values_only(db, |i| i.to_be_bytes().to_vec())
}

/// Only the posts' bytes, one entry each, under `key(i)`.
fn values_only(db: &sled::Db, key: fn(u64) -> Vec<u8>) -> sled::Result<()> {
    let posts = db.open_tree("posts")?;
    for first in (0..POSTS).step_by(BATCH as usize) {
        let mut p = sled::Batch::default();
        for i in first..first + BATCH {
            p.insert(key(i), value(i));
        }
        posts.apply_batch(p)?;
    }
    Ok(())
}
