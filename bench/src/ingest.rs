//! Part 1, ingest: how many signed posts a node verifies, checks against
//! the moderation state and stores with its indexes per second, next to
//! the raw single-signature Ed25519 rate of one core: through a running
//! node's handle, and through its `Core` alone (the same arrival path,
//! without the event loop and the core's thread); where the time goes;
//! and the peak memory of a node ingesting many posts (in a child process,
//! so nothing of the parent counts).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use protocol::sync::ItemKey;
use protocol::{Message, ModerationState, Post, Signable, SignedPost, VerifiedMessage};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use crate::fixtures::{self, BenchNode, Community, ProcessTimer, Timing};
use crate::report::Report;

const PART: &str = "ingest";
/// Imports kept in flight on the pipelined handle path: enough that the
/// event loop always finds the next command queued.
const IN_FLIGHT: usize = 64;
/// Posts per `import_many` call: the size of a full sync page.
const IMPORT_MANY_BATCH: usize = 512;
/// Most posts the raw verification loops run over (about a second each).
const VERIFY_SAMPLE: usize = 20_000;

/// Sizes of the ingest part.
pub(crate) struct Sizes {
    /// Posts ingested by each in-process path.
    pub(crate) posts: usize,
    /// Distinct author keys.
    pub(crate) authors: usize,
    /// Posts ingested by the child process whose peak RSS is measured.
    pub(crate) child_posts: usize,
}

/// Spacing of the posts' creation times: with 1,000 authors each author
/// posts every 3 s, under the default per-author limit of 30 a minute, so
/// the real path (limit on) stores every post.
const STEP_MS: u64 = 3;

/// Ed25519 verification of prepared posts on this thread: the lower bound
/// every ingest figure is read against. Measured again right before and
/// after each ingest measurement, so that other work on the machine
/// skews both sides of a ratio alike.
struct RawVerify {
    items: Vec<(VerifyingKey, Vec<u8>, ed25519_dalek::Signature)>,
    /// Every single-signature rate measured (wall, CPU), in order.
    seen: Vec<(f64, f64)>,
}

impl RawVerify {
    fn new(posts: &[SignedPost]) -> anyhow::Result<RawVerify> {
        let items = posts
            .iter()
            .map(|p| {
                let key = VerifyingKey::from_bytes(p.content.author.as_bytes())?;
                let msg = protocol::wire::signing_bytes(Post::DOMAIN, &p.content);
                let sig = ed25519_dalek::Signature::from_bytes(&p.signature.0);
                Ok((key, msg, sig))
            })
            .collect::<Result<_, ed25519_dalek::SignatureError>>()?;
        Ok(RawVerify {
            items,
            seen: Vec::new(),
        })
    }

    /// `verify_strict` over the first `n` items: (sig/s wall, sig/s CPU).
    fn single(&mut self, n: usize) -> anyhow::Result<(f64, f64)> {
        let items = &self.items[..n.min(self.items.len())];
        let (ok, t) = fixtures::timed(|| {
            items
                .iter()
                .all(|(key, msg, sig)| key.verify_strict(msg, sig).is_ok())
        });
        anyhow::ensure!(ok, "a prepared signature did not verify");
        let r = (t.rate(items.len()), t.cpu_rate(items.len()));
        self.seen.push(r);
        Ok(r)
    }

    /// `verify_batch` in batches of 64 on this thread.
    fn batch(&self) -> anyhow::Result<Timing> {
        let (ok, t) = fixtures::timed(|| {
            self.items.chunks(64).all(|chunk| {
                let msgs: Vec<&[u8]> = chunk.iter().map(|i| i.1.as_slice()).collect();
                let sigs: Vec<_> = chunk.iter().map(|i| i.2).collect();
                let keys: Vec<_> = chunk.iter().map(|i| i.0).collect();
                ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
            })
        });
        anyhow::ensure!(ok, "a prepared batch did not verify");
        Ok(t)
    }

    /// `verify_strict` on every core.
    fn all_cores(&self) -> anyhow::Result<Timing> {
        let timer = ProcessTimer::start();
        let ok = fixtures::par_map(self.items.len(), |i| {
            let (key, msg, sig) = &self.items[i];
            key.verify_strict(msg, sig).is_ok()
        });
        let t = timer.stop();
        anyhow::ensure!(ok.iter().all(|b| *b), "a prepared signature did not verify");
        Ok(t)
    }

    /// The median of every rate measured: (wall, CPU).
    fn median(&self) -> (f64, f64) {
        let mut w: Vec<f64> = self.seen.iter().map(|r| r.0).collect();
        let mut c: Vec<f64> = self.seen.iter().map(|r| r.1).collect();
        w.sort_by(f64::total_cmp);
        c.sort_by(f64::total_cmp);
        (fixtures::quantile(&w, 0.5), fixtures::quantile(&c, 0.5))
    }
}

/// Signatures verified right before and after each ingest measurement.
const PAIRED_SAMPLE: usize = 5000;

/// An ingest figure with the raw rates measured around it.
struct Paired {
    took: Timing,
    /// Mean of the raw rates before and after: (wall, CPU).
    raw: (f64, f64),
}

impl Paired {
    /// Ingest rate over raw verification rate, by wall and by CPU time.
    fn ratios(&self, n: usize) -> (f64, f64) {
        (
            self.took.rate(n) / self.raw.0,
            self.took.cpu_rate(n) / self.raw.1,
        )
    }
}

fn paired(
    raw: &mut RawVerify,
    f: impl FnOnce() -> anyhow::Result<Timing>,
) -> anyhow::Result<Paired> {
    let before = raw.single(PAIRED_SAMPLE)?;
    let took = f()?;
    let after = raw.single(PAIRED_SAMPLE)?;
    Ok(Paired {
        took,
        raw: ((before.0 + after.0) / 2.0, (before.1 + after.1) / 2.0),
    })
}

/// Runs the part and adds its rows.
pub(crate) fn run(rt: &Runtime, report: &mut Report, sizes: &Sizes) -> anyhow::Result<()> {
    let mut com = Community::new()?;
    let topic = fixtures::topic();
    let authors = fixtures::authors(sizes.authors);
    let n = sizes.posts.max(sizes.child_posts);
    let start_ms = node::now_ms() - 3_600_000;
    let posts = fixtures::signed_posts(com.id, &topic, &authors, n, start_ms, STEP_MS);
    let encoded: Vec<Vec<u8>> = posts
        .iter()
        .map(|p| Message::Post(p.clone()).encode())
        .collect();
    let mean_bytes = encoded.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1) as f64;
    let m = sizes.posts;
    let ours = &posts[..m];
    let ours_bytes = &encoded[..m];
    let threads = report.machine.nproc;

    let mut raw = RawVerify::new(&posts[..m.min(VERIFY_SAMPLE)])?;
    raw.single(VERIFY_SAMPLE)?;
    let batch = raw.batch()?;
    let all_cores = raw.all_cores()?;
    let k = raw.items.len();

    // --- The real path through a running node's handle: one
    // `handle.import` command per post, 64 in flight, or pages.
    let seq = paired(&mut raw, || {
        rt.block_on(handle_path(&mut com, ours, Feed::Import { in_flight: 1 }))
    })?;
    let piped = paired(&mut raw, || {
        rt.block_on(handle_path(
            &mut com,
            ours,
            Feed::Import {
                in_flight: IN_FLIGHT,
            },
        ))
    })?;
    let many = paired(&mut raw, || {
        rt.block_on(handle_path(
            &mut com,
            ours,
            Feed::ImportMany {
                batch: IMPORT_MANY_BATCH,
                in_flight: 2,
            },
        ))
    })?;
    // --- The same arrival path without the event loop, the command
    // channel or the core's thread: a `Core` fed on this thread.
    let mut flush = None;
    let core_pages = paired(&mut raw, || {
        let (path, f) = core_path(&com, ours_bytes, CoreFeed::Batches(IMPORT_MANY_BATCH))?;
        flush = Some(f);
        Ok(path)
    })?;
    let core_single = paired(&mut raw, || {
        Ok(core_path(&com, ours_bytes, CoreFeed::OneByOne)?.0)
    })?;
    let (store_one, store_batched) = store_alone(&com, ours_bytes)?;

    // --- Peak memory, in a child process that streams posts from a file.
    let file = com.root.path().join("posts.bin");
    write_posts(&file, &encoded[..sizes.child_posts])?;
    let child_dir = com.member()?;
    let mut child = None;
    let child_paired = paired(&mut raw, || {
        let c = run_child(child_dir.path(), &file)?;
        let t = Timing {
            wall: Duration::from_secs_f64(c.posts as f64 / c.rate.max(1e-9)),
            cpu: Duration::from_secs_f64(c.cpu_us_per_post * c.posts as f64 / 1e6),
        };
        child = Some(c);
        Ok(t)
    })?;

    let (raw_wall, raw_cpu) = raw.median();
    let lowest = raw.seen.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let highest = raw.seen.iter().map(|r| r.0).fold(0.0, f64::max);
    report
        .add(PART, "raw Ed25519 verify_strict, one core", raw_wall, "sig/s")
        .note(format!(
            "ed25519-dalek, keys decompressed beforehand, post signing bytes; median of {} runs ({lowest:.0}–{highest:.0}); {raw_cpu:.0} per CPU-second",
            raw.seen.len()
        ));
    report
        .add(
            PART,
            "raw Ed25519 verify_batch (64), one core",
            batch.rate(k),
            "sig/s",
        )
        .note(format!(
            "what batch verification would allow; {:.0} per CPU-second",
            batch.cpu_rate(k)
        ));
    report
        .add(
            PART,
            "raw Ed25519 verify_strict, all cores",
            all_cores.rate(k),
            "sig/s",
        )
        .note(format!("{threads} threads"));

    let describe = |p: &Paired, n: usize| {
        let (w, c) = p.ratios(n);
        format!(
            "{:.1} µs of process CPU per post; ratio to raw verify measured around it: {w:.2} by wall time, {c:.2} by CPU time",
            p.took.cpu.as_secs_f64() * 1e6 / n as f64
        )
    };
    report
        .add(
            PART,
            "handle.import, one at a time",
            seq.took.rate(m),
            "posts/s",
        )
        .vs("raw verify", seq.raw.0)
        .note(format!(
            "{m} posts from {} authors, {mean_bytes:.0} B each, default per-author limit; {}",
            sizes.authors,
            describe(&seq, m)
        ));
    report
        .add(
            PART,
            "handle.import, 64 in flight",
            piped.took.rate(m),
            "posts/s",
        )
        .vs("raw verify", piped.raw.0)
        .note(describe(&piped, m));
    report
        .add(
            PART,
            &format!("handle.import_many, {IMPORT_MANY_BATCH} per call, 2 in flight"),
            many.took.rate(m),
            "posts/s",
        )
        .vs("raw verify", many.raw.0)
        .note(format!(
            "the shape of a sync page; verification (blocking pool, every core) of one call overlaps the core's write of the other; {}",
            describe(&many, m)
        ));
    let best = [&seq, &piped, &many]
        .into_iter()
        .max_by(|a, b| a.ratios(m).0.total_cmp(&b.ratios(m).0))
        .unwrap_or(&seq);
    report
        .add(
            PART,
            "ingest / raw verify ratio (best handle path)",
            best.ratios(m).0,
            "×",
        )
        .target("≥ 1.5")
        .note(format!("by CPU time {:.2}", best.ratios(m).1));
    report
        .add(
            PART,
            &format!("Core::arrive_encoded, {IMPORT_MANY_BATCH} per call (no event loop)"),
            core_pages.took.rate(m),
            "posts/s",
        )
        .vs("raw verify", core_pages.raw.0)
        .note(format!(
            "the real arrival path as a sync page takes it: a node::core::Core on a fresh on-disk store, fed on one thread; decode and verify on every core, the moderation, retraction, duplicate, parent and author-window checks, one insert_posts (one atomic apply_batch) per call; {}",
            describe(&core_pages, m)
        ));
    report
        .add(
            PART,
            "Core::arrive_encoded, one per call (no event loop)",
            core_single.took.rate(m),
            "posts/s",
        )
        .vs("raw verify", core_single.raw.0)
        .note(format!(
            "the same path one item at a time (verified on the calling thread, one transaction per post); {}",
            describe(&core_single, m)
        ));
    report
        .add(
            PART,
            "store alone (insert_post of verified posts), one core",
            store_one.rate(m),
            "posts/s",
        )
        .note(format!(
            "the ceiling once verification leaves the store's thread; {:.0} per CPU-second",
            store_one.cpu_rate(m)
        ));
    report
        .add(
            PART,
            &format!("store alone, insert_posts in batches of {IMPORT_MANY_BATCH}, one core"),
            store_batched.rate(m),
            "posts/s",
        )
        .note(format!(
            "one atomic apply_batch per batch; {:.1} µs of CPU per post; sled's own floor for the same keys: cargo run --release -p mutual-bench --example sled_floor",
            store_batched.cpu.as_secs_f64() * 1e6 / m as f64
        ));
    if let Some(f) = flush {
        report
            .add(
                PART,
                "store flush after the core path",
                fixtures::ms(f.wall),
                "ms",
            )
            .note(format!(
                "one sled flush after {m} posts arrived in pages of {IMPORT_MANY_BATCH}"
            ));
    }
    let phases = phase_profile(&com, ours, ours_bytes)?;
    let total = phases.total();
    for (name, d) in phases.rows() {
        report
            .add(
                PART,
                &format!("CPU per post: {name}"),
                d.as_secs_f64() * 1e6 / m as f64,
                "µs",
            )
            .note(format!(
                "{:.0}% of these steps",
                100.0 * d.as_secs_f64() / total.as_secs_f64()
            ));
    }

    if let Some(child) = child {
        report
            .add(
                PART,
                &format!("peak RSS ingesting {} posts (child)", child.posts),
                child.hwm_kib as f64 / 1024.0,
                "MiB",
            )
            .target("< 128 MiB")
            .note(format!(
                "VmHWM; {:.1} MiB before the node started, {:.1} MiB once it ran; VmRSS at the end {:.1} MiB; store {:.1} MiB on disk",
                child.hwm_before_kib as f64 / 1024.0,
                child.hwm_started_kib as f64 / 1024.0,
                child.rss_end_kib as f64 / 1024.0,
                child.store_bytes as f64 / 1048576.0
            ));
        report
            .add(
                PART,
                &format!("handle.import, 64 in flight, {} posts (child)", child.posts),
                child.rate,
                "posts/s",
            )
            .vs("raw verify", child_paired.raw.0)
            .note(format!(
                "fresh process and store, posts streamed from a file; {} stored; {}",
                child.stored,
                describe(&child_paired, child.posts)
            ));
        if child.stored != child.posts as u64 {
            report.failures.push(format!(
                "ingest child stored {} of {} posts",
                child.stored, child.posts
            ));
        }
    }
    Ok(())
}

/// Time spent in each step of the arrival path, each measured in its own
/// loop over every post.
struct Phases {
    decode: Duration,
    cheap: Duration,
    signature: Duration,
    id: Duration,
    checks: Duration,
    insert: Duration,
}

impl Phases {
    fn rows(&self) -> [(&'static str, Duration); 6] {
        [
            ("decode (canonical, re-encodes to compare)", self.decode),
            ("cheap checks (community, time, sizes)", self.cheap),
            (
                "signature (encode signing bytes, decompress key, verify_strict)",
                self.signature,
            ),
            ("id (encode + BLAKE3)", self.id),
            (
                "moderation, retraction, duplicate and author-window checks",
                self.checks,
            ),
            (
                "Store::insert_post (encode, seal, one apply_batch: post, count, author log line)",
                self.insert,
            ),
        ]
    }

    fn total(&self) -> Duration {
        self.rows().iter().map(|r| r.1).sum()
    }
}

fn phase_profile(
    com: &Community,
    posts: &[SignedPost],
    encoded: &[Vec<u8>],
) -> anyhow::Result<Phases> {
    let ctx = com.ctx();
    // Pure computation: the thread's CPU time.
    let (ok, decode) = fixtures::timed(|| encoded.iter().all(|b| Message::decode(b).is_ok()));
    anyhow::ensure!(ok, "a bench post did not decode");
    let (ok, cheap) = fixtures::timed(|| posts.iter().all(|p| p.check_cheap(&ctx).is_ok()));
    anyhow::ensure!(ok, "a bench post failed the cheap checks");
    let (ok, signature) = fixtures::timed(|| posts.iter().all(|p| p.check_signature().is_ok()));
    anyhow::ensure!(ok, "a bench post's signature did not verify");
    let (_, id) = fixtures::timed(|| {
        for p in posts {
            std::hint::black_box(p.id());
        }
    });
    // The checks and the insert, on a store of their own: the process's
    // CPU time, since sled works on background threads too.
    let dir = tempfile::tempdir()?;
    let store = node::store::Store::open(dir.path(), node::store::BARE_STORE_SECRET.keys())?;
    let verified = fixtures::verified(posts, &ctx);
    let moderation = ModerationState::new(com.id, com.manifest.content.admin);
    let check_all = || -> anyhow::Result<Timing> {
        let timer = ProcessTimer::start();
        for p in &verified {
            let id = p.id();
            std::hint::black_box(store.is_retracted_by(&id, &p.author)?);
            std::hint::black_box(moderation.is_blocked(&p.author, &p.topic));
            std::hint::black_box(moderation.hidden(&id));
            std::hint::black_box(store.contains_post(&id)?);
            std::hint::black_box(store.count_author_between(
                &p.author,
                p.created_at.saturating_sub(59_999),
                p.created_at.saturating_add(59_999),
                node::AUTHOR_POSTS_PER_MINUTE,
            )?);
        }
        Ok(timer.stop())
    };
    let checks_empty = check_all()?;
    let timer = ProcessTimer::start();
    for p in &verified {
        store.insert_post(p)?;
    }
    let insert = timer.stop();
    // Once on the empty store, once on the full one: keep the larger.
    let checks_full = check_all()?;
    Ok(Phases {
        decode: decode.cpu,
        cheap: cheap.cpu,
        signature: signature.cpu,
        id: id.cpu,
        checks: checks_empty.cpu.max(checks_full.cpu),
        insert: insert.cpu,
    })
}

/// How the core path is fed.
#[derive(Clone, Copy)]
enum CoreFeed {
    /// `arrive_encoded` with this many posts per call, as sync pages
    /// arrive (verified on every core, stored in one transaction).
    Batches(usize),
    /// `arrive_encoded` with one post per call, as imports and single
    /// items arrive (verified on the calling thread).
    OneByOne,
}

/// The real arrival path without a running node: a [`Core`] opened on a
/// fresh on-disk store, the topic joined, the default per-author limit,
/// fed the encoded posts on this thread (the core's own thread in a node).
/// Returns the time of the arrivals and of the flush after them.
///
/// [`Core`]: node::core::Core
fn core_path(
    com: &Community,
    encoded: &[Vec<u8>],
    feed: CoreFeed,
) -> anyhow::Result<(Timing, Timing)> {
    use node::core::{Core, CoreConfig, Origin, Outcome};
    let dir = tempfile::tempdir()?;
    let store = node::store::Store::open(dir.path(), node::store::BARE_STORE_SECRET.keys())?;
    // Nobody follows the events, as in a node no client follows: no
    // views are built for them.
    let (events, _) = tokio::sync::broadcast::channel::<node::NodeEvent>(16);
    let identity = protocol::Identity::generate(Some("core bench".into()));
    let mut core = Core::open(
        store,
        identity,
        com.manifest.clone(),
        events,
        CoreConfig::default(),
    )?;
    core.join(fixtures::topic())?;
    let _ = core.take_effects();
    let mut stored = 0usize;
    let mut refused = None;
    let mut tally = |outcomes: Vec<Result<Outcome, node::core::Refusal>>| {
        for o in outcomes {
            match o {
                Ok(Outcome::Stored) => stored += 1,
                Ok(Outcome::Duplicate) => {}
                Err(e) => {
                    refused.get_or_insert_with(|| e.to_string());
                }
            }
        }
    };
    let timer = ProcessTimer::start();
    match feed {
        CoreFeed::Batches(size) => {
            for page in encoded.chunks(size.max(1)) {
                tally(core.arrive_encoded(page, Origin::Import, node::now_ms()));
            }
        }
        CoreFeed::OneByOne => {
            for item in encoded {
                tally(core.arrive_encoded(
                    std::slice::from_ref(item),
                    Origin::Import,
                    node::now_ms(),
                ));
            }
        }
    }
    let path = timer.stop();
    // What the node's interval flush would write.
    let timer = ProcessTimer::start();
    core.store().flush()?;
    let flush = timer.stop();
    let _ = core.take_effects();
    drop(core);
    if let Some(why) = refused {
        anyhow::bail!("the core refused a bench post: {why}");
    }
    anyhow::ensure!(
        stored == encoded.len(),
        "the core path stored {stored} of {} posts",
        encoded.len()
    );
    Ok((path, flush))
}

/// The store alone on verified posts, one `insert_post` at a time and in
/// batches of `insert_posts` (as sync pages and queued imports are
/// stored): the ceiling once verification leaves the store's thread.
fn store_alone(com: &Community, encoded: &[Vec<u8>]) -> anyhow::Result<(Timing, Timing)> {
    let ctx = com.ctx();
    let posts: Vec<_> = encoded
        .iter()
        .map(|b| match Message::decode_and_verify(b, &ctx) {
            Ok(VerifiedMessage::Post(p)) => Ok(p),
            Ok(_) => anyhow::bail!("a bench item is not a post"),
            Err(e) => Err(e.into()),
        })
        .collect::<anyhow::Result<_>>()?;
    let dir = tempfile::tempdir()?;
    let store = node::store::Store::open(dir.path(), node::store::BARE_STORE_SECRET.keys())?;
    let timer = ProcessTimer::start();
    for p in &posts {
        store.insert_post(p)?;
    }
    let one = timer.stop();
    // Closed before the next measurement: its background work (sled
    // flushing 100,000 one-post batches) would be counted there.
    store.close()?;
    drop(dir);
    let dir = tempfile::tempdir()?;
    let store = node::store::Store::open(dir.path(), node::store::BARE_STORE_SECRET.keys())?;
    let refs: Vec<&protocol::VerifiedPost> = posts.iter().collect();
    let timer = ProcessTimer::start();
    for chunk in refs.chunks(IMPORT_MANY_BATCH) {
        store.insert_posts(chunk)?;
    }
    let batched = timer.stop();
    Ok((one, batched))
}

/// How the handle path feeds posts to the node.
#[derive(Clone, Copy)]
enum Feed {
    /// One `import` per post, this many commands outstanding.
    Import { in_flight: usize },
    /// `import_many` with this many posts per call (a sync page's shape),
    /// this many calls outstanding (2: one verified while one is written).
    ImportMany { batch: usize, in_flight: usize },
}

/// Imports every post through a fresh node's handle, fed as `feed` says,
/// with the default per-author limit.
async fn handle_path(
    com: &mut Community,
    posts: &[SignedPost],
    feed: Feed,
) -> anyhow::Result<Timing> {
    let data = com.member()?;
    let mut config = fixtures::config(data, Vec::new());
    config.author_posts_per_minute = node::AUTHOR_POSTS_PER_MINUTE;
    let node = BenchNode::start(config).await?;
    node.handle.join(fixtures::topic()).await?;
    let messages: Vec<Message> = posts.iter().map(|p| Message::Post(p.clone())).collect();
    let timer = ProcessTimer::start();
    let stored = match feed {
        Feed::Import { in_flight } => {
            import_all(&node.handle, messages.into_iter(), in_flight).await?
        }
        Feed::ImportMany { batch, in_flight } => {
            let mut stored = 0u64;
            let mut set: JoinSet<Result<node::ImportReport, node::NodeError>> = JoinSet::new();
            for chunk in messages.chunks(batch.max(1)) {
                if set.len() >= in_flight.max(1) {
                    if let Some(r) = set.join_next().await {
                        stored += r??.stored as u64;
                    }
                }
                let h = node.handle.clone();
                let chunk = chunk.to_vec();
                set.spawn(async move { h.import_many(chunk).await });
            }
            while let Some(r) = set.join_next().await {
                stored += r??.stored as u64;
            }
            stored
        }
    };
    let took = timer.stop();
    node.stop().await;
    anyhow::ensure!(
        stored == posts.len() as u64,
        "the handle path stored {stored} of {} posts",
        posts.len()
    );
    Ok(took)
}

/// Imports messages keeping `in_flight` commands outstanding; returns how
/// many were newly stored.
async fn import_all(
    handle: &node::NodeHandle,
    messages: impl Iterator<Item = Message>,
    in_flight: usize,
) -> anyhow::Result<u64> {
    let mut stored = 0u64;
    if in_flight <= 1 {
        for m in messages {
            if handle.import(m).await? {
                stored += 1;
            }
        }
        return Ok(stored);
    }
    let mut set: JoinSet<Result<bool, node::NodeError>> = JoinSet::new();
    for m in messages {
        if set.len() >= in_flight {
            if let Some(r) = set.join_next().await {
                stored += u64::from(r??);
            }
        }
        let h = handle.clone();
        set.spawn(async move { h.import(m).await });
    }
    while let Some(r) = set.join_next().await {
        stored += u64::from(r??);
    }
    Ok(stored)
}

/// Writes encoded posts as length-prefixed records.
fn write_posts(path: &Path, encoded: &[Vec<u8>]) -> anyhow::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    for b in encoded {
        w.write_all(&(b.len() as u32).to_le_bytes())?;
        w.write_all(b)?;
    }
    w.flush()?;
    Ok(())
}

/// Reads the records of [`write_posts`] one at a time.
struct PostReader<R> {
    inner: R,
}

impl<R: Read> Iterator for PostReader<R> {
    type Item = Message;
    fn next(&mut self) -> Option<Message> {
        let mut len = [0u8; 4];
        self.inner.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
        self.inner.read_exact(&mut buf).ok()?;
        Message::decode(&buf).ok()
    }
}

/// What the child reports.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChildResult {
    posts: usize,
    stored: u64,
    rate: f64,
    hwm_before_kib: u64,
    hwm_started_kib: u64,
    hwm_kib: u64,
    rss_end_kib: u64,
    store_bytes: u64,
    cpu_us_per_post: f64,
}

fn run_child(data_dir: &Path, posts_file: &Path) -> anyhow::Result<ChildResult> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .arg("--ingest-child")
        .arg(data_dir)
        .arg(posts_file)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the ingest child failed: {}",
        out.status
    );
    let line = out
        .stdout
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.starts_with('{'))
        .last()
        .ok_or_else(|| anyhow::anyhow!("the ingest child printed no result"))?;
    Ok(serde_json::from_str(&line)?)
}

/// The child process: starts a node on `data_dir`, streams the posts of
/// `posts_file` through `handle.import` and prints its peak memory as one
/// JSON line. Nothing else lives in this process.
pub(crate) fn child_main(data_dir: &Path, posts_file: &Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let hwm_before_kib = fixtures::proc_status_kib("VmHWM");
    let result = rt.block_on(async {
        let data = node::DataDir::new(data_dir);
        let mut config = fixtures::config(data, Vec::new());
        config.author_posts_per_minute = node::AUTHOR_POSTS_PER_MINUTE;
        let node = BenchNode::start(config).await?;
        node.handle.join(fixtures::topic()).await?;
        let hwm_started_kib = fixtures::proc_status_kib("VmHWM");
        let reader = PostReader {
            inner: BufReader::new(std::fs::File::open(posts_file)?),
        };
        let count = PostReader {
            inner: BufReader::new(std::fs::File::open(posts_file)?),
        }
        .count();
        let timer = ProcessTimer::start();
        let stored = import_all(&node.handle, reader, IN_FLIGHT).await?;
        let took = timer.stop();
        let hwm_kib = fixtures::proc_status_kib("VmHWM");
        let rss_end_kib = fixtures::proc_status_kib("VmRSS");
        node.stop().await;
        let store_bytes = fixtures::dir_bytes(&data_dir.join(node::datadir::STORE));
        anyhow::Ok(ChildResult {
            posts: count,
            stored,
            rate: took.rate(count),
            cpu_us_per_post: took.cpu.as_secs_f64() * 1e6 / count.max(1) as f64,
            hwm_before_kib,
            hwm_started_kib,
            hwm_kib,
            rss_end_kib,
            store_bytes,
        })
    })?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// Prepares an ingest run to profile on its own: a community data
/// directory and a file of `n` signed posts, kept on disk. Prints
/// `DATA_DIR POSTS_FILE`, the arguments of `--ingest-child`:
///
/// ```text
/// perf record -g -- mutual-bench --ingest-child DATA_DIR POSTS_FILE
/// ```
pub(crate) fn prepare_main(n: usize) -> anyhow::Result<()> {
    let mut com = Community::new()?;
    let authors = fixtures::authors(1000);
    let start_ms = node::now_ms() - 3_600_000;
    let posts = fixtures::signed_posts(com.id, &fixtures::topic(), &authors, n, start_ms, STEP_MS);
    let encoded: Vec<Vec<u8>> = posts
        .iter()
        .map(|p| Message::Post(p.clone()).encode())
        .collect();
    let file = com.root.path().join("posts.bin");
    write_posts(&file, &encoded)?;
    let data = com.member()?;
    let _kept = com.root.keep();
    println!("{} {}", data.path().display(), file.display());
    Ok(())
}

/// The key of a post in sync order (for other parts).
pub(crate) fn item_key(p: &SignedPost) -> ItemKey {
    ItemKey {
        created_at: p.content.created_at,
        id: p.id().0,
    }
}
