//! sled 0.34 alone, with the keys a post costs in the store: what no work
//! on our side of `Store::insert_posts` can beat. The one place outside
//! `node/src/store/` that names sled, because it measures the engine,
//! not the project.
//!
//! `cargo run --release -p mutual-bench --example sled_floor` writes
//! 100,000 post-shaped entries in batches of 512, several ways, each into
//! a fresh database with the store's settings, and prints µs per post:
//! first the store's layout 3 (one tree: the sealed 420-byte post, 460
//! bytes, under its time-ordered key behind the topic's 16-byte tag,
//! id → place, author index behind the author's tag, count, ever-count;
//! one `apply_batch` per batch after a read of each post's key, as
//! `Store::insert_posts` does) and variants of it without one entry or
//! with the author entry keyed by time, then layout 1's shape (three trees
//! and a count in one transaction per batch, with layout 3's keys), then
//! the engine's lower bounds. Sealing itself is CPU outside sled: see
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

fn open(dir: &std::path::Path) -> sled::Result<sled::Db> {
    sled::Config::new()
        .path(dir)
        // The store's settings (node::store::CACHE_BYTES, BACKGROUND_FLUSH_MS).
        .cache_capacity(16 * 1024 * 1024)
        .flush_every_ms(Some(100))
        .open()
}

/// One way of writing the posts.
type Way = fn(&sled::Db) -> sled::Result<()>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ways: [(&str, Way); 9] = [
        (
            "layout 3: one tree, sealed post + id + author + count + ever, one apply_batch per batch, id read first (the store's shape)",
            layout_3,
        ),
        (
            "layout 3 without reading the ids first",
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
    ];
    for (name, write) in ways {
        let dir = tempfile::tempdir()?;
        let db = open(dir.path())?;
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
    }
    Ok(())
}

/// `prefix ‖ rest`, as the store's keys are.
fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn layout_3(db: &sled::Db) -> sled::Result<()> {
    write_layout_3(db, Shape::STORE)
}

fn layout_3_blind(db: &sled::Db) -> sled::Result<()> {
    write_layout_3(
        db,
        Shape {
            read_first: false,
            ..Shape::STORE
        },
    )
}

fn layout_3_no_author(db: &sled::Db) -> sled::Result<()> {
    write_layout_3(
        db,
        Shape {
            author: None,
            ..Shape::STORE
        },
    )
}

fn layout_3_no_id(db: &sled::Db) -> sled::Result<()> {
    write_layout_3(
        db,
        Shape {
            id_entry: false,
            ..Shape::STORE
        },
    )
}

fn layout_3_author_by_time(db: &sled::Db) -> sled::Result<()> {
    write_layout_3(
        db,
        Shape {
            author: Some(|i, k| {
                let mut key = i.to_be_bytes().to_vec();
                key.extend_from_slice(&author_key(i, k));
                key
            }),
            ..Shape::STORE
        },
    )
}

/// A key made from a post's number and id.
type KeyOf = fn(u64, &[u8; 32]) -> Vec<u8>;

/// Which entries a layout-2 variant writes per post.
#[derive(Clone, Copy)]
struct Shape {
    /// Read the post's own key before writing (the duplicate check).
    read_first: bool,
    /// Write the id → place entry.
    id_entry: bool,
    /// The author entry's key, if any.
    author: Option<KeyOf>,
}

impl Shape {
    /// What `Store::insert_posts` writes.
    const STORE: Shape = Shape {
        read_first: true,
        id_entry: true,
        author: Some(author_key),
    };
}

/// The store's layout 3: everything in one tree under one-byte prefixes,
/// one atomic `apply_batch` per batch.
fn write_layout_3(db: &sled::Db, shape: Shape) -> sled::Result<()> {
    let items = db.open_tree("items")?;
    for first in (0..POSTS).step_by(BATCH as usize) {
        let mut b = sled::Batch::default();
        for i in first..first + BATCH {
            let k = id(i);
            let post_key = prefixed(b'p', &topic_key(i, &k));
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
