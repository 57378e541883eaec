//! A node killed with SIGKILL while it applies a retraction and while it
//! enforces the block of an author with thousands of posts shows and
//! serves none of them after a restart.
//!
//! The node holding the posts runs in its own process (`mutual-testnode
//! import`) on a copy of one prepared data directory, takes the retraction
//! and then the admin's block through the arrival path, and is killed at a
//! different point each time: as the retraction arrives, once it was
//! answered, a while into the block's enforcement (random points, changing
//! from run to run), and right after the node answered the block. What the
//! kill left on disk is read from the store itself; then the node is
//! restarted on the same directory and must show, serve (to a raw sync
//! client that applies no rule, and to a fresh node) and even still store
//! nothing blocked or retracted: reads and the responder filter on their
//! own, so "stored = shown" is what proves that start-up re-enforcement
//! finished the interrupted work.
//!
//! Only a kill that left the block logged but partly enforced on disk
//! tests that; the test fails if none of its kills did.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mutual_tests::child::spawn_lines;
use mutual_tests::{start_bulk, topic, wait_until, TestNet, TestNode, DEADLINE};
use node::store::Store;
use node::DataDir;
use protocol::post::Draft;
use protocol::sync::ItemKey;
use protocol::{
    Message, ModAction, ModActionKind, Post, PostId, PublicKey, Retraction, Scope, SignedPost,
};

/// Posts of the author who gets blocked.
const BLOCKED_POSTS: u64 = 5000;
/// Posts of another member, which must all stay.
const KEPT_POSTS: u64 = 20;
/// Attempts at a kill in the middle of the block's enforcement.
const MAX_MID_KILLS: usize = 6;

/// Where the test node is killed.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// As soon as it says it takes the retraction.
    AtRetraction,
    /// As soon as it answered the retraction (as it takes the block).
    AfterRetractionAnswered,
    /// This long after it says it takes the block.
    DuringBlock(Duration),
    /// As soon as it answered the block (enforced, maybe not on disk).
    AfterBlockAnswered,
}

/// What a kill left on disk.
#[derive(Debug)]
struct Left {
    /// The block is in the community log.
    block_logged: bool,
    /// The retraction is recorded.
    retracted: bool,
    /// The retracted post is still stored.
    retracted_post_stored: bool,
    /// Posts of the blocked author still stored.
    blocked_posts_stored: usize,
    /// The node had answered the block before it died.
    block_answered: bool,
}

impl Left {
    /// The block logged but its posts not all deleted: only start-up
    /// enforcement can finish it.
    fn mid_enforcement(&self) -> bool {
        self.block_logged && self.blocked_posts_stored > 0
    }
}

/// Everything prepared once.
struct World {
    net: TestNet,
    /// A data directory (cleanly closed) that holds every post.
    template: PathBuf,
    /// The retraction then the block, for `mutual-testnode import`.
    messages: PathBuf,
    blocked: PublicKey,
    blocked_ids: BTreeSet<String>,
    kept_ids: BTreeSet<String>,
    retracted: PostId,
    retracter: PublicKey,
    block_key: ItemKey,
}

fn post(
    author: &protocol::Identity,
    net: &TestNet,
    body: String,
    at: u64,
) -> anyhow::Result<SignedPost> {
    Ok(Post::write(
        author,
        net.manifest.id(),
        topic("t"),
        Draft {
            body,
            ..Draft::default()
        },
        at,
    )?)
}

async fn prepare() -> anyhow::Result<World> {
    let mut net = TestNet::new()?;
    let troll = net.member("troll")?.identity()?;
    let writer = net.member("writer")?.identity()?;
    let now = node::now_ms();
    let base = now - 10_000_000;
    let mut messages = Vec::new();
    let mut blocked_ids = BTreeSet::new();
    for i in 0..BLOCKED_POSTS {
        let p = post(&troll, &net, format!("blocked {i}"), base + i)?;
        blocked_ids.insert(p.id().to_string());
        messages.push(Message::Post(p));
    }
    let mut kept_ids = BTreeSet::new();
    for i in 0..KEPT_POSTS {
        let p = post(
            &writer,
            &net,
            format!("kept {i}"),
            base + 100_000 + i * 1000,
        )?;
        kept_ids.insert(p.id().to_string());
        messages.push(Message::Post(p));
    }
    let gone = post(&writer, &net, "taken back".into(), base + 200_000)?;
    let retracted = gone.id();
    messages.push(Message::Post(gone));

    let holder = net.member("holder")?;
    let template = holder.path().to_path_buf();
    let node = start_bulk(holder, &[]).await?;
    node.handle.join(topic("t")).await?;
    let total = messages.len();
    let report = node.handle.import_many(messages).await?;
    anyhow::ensure!(report.stored == total, "imported: {report:?}");
    node.stop().await;

    let retraction = Retraction::create(&writer.secret, net.manifest.id(), retracted, now - 2000);
    let block = ModAction::create(
        &net.admin.identity()?,
        net.manifest.id(),
        1,
        ModActionKind::Block {
            author: troll.public(),
            scope: Scope::Community,
            reason: "flooding".into(),
        },
        now - 1000,
    )?;
    let block_key = ItemKey {
        created_at: block.content.created_at,
        id: block.id().0,
    };
    let mut file = Vec::new();
    for m in [Message::Retraction(retraction), Message::Moderation(block)] {
        let bytes = m.encode();
        file.extend_from_slice(&u32::try_from(bytes.len())?.to_be_bytes());
        file.extend_from_slice(&bytes);
    }
    let messages = net.root.path().join("moderation.bin");
    std::fs::write(&messages, file)?;
    Ok(World {
        template,
        messages,
        blocked: troll.public(),
        blocked_ids,
        kept_ids,
        retracted,
        retracter: writer.public(),
        block_key,
        net,
    })
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Runs the test node on a fresh copy of the template, kills it at `kill`,
/// and reads what it left. Also returns how long the node took to answer
/// the block, when it did before the kill.
fn crash(world: &World, dir: &Path, kill: Kill) -> anyhow::Result<(Left, Option<Duration>)> {
    copy_dir(&world.template, dir)?;
    // A port of the system's choice (the test node remembers it).
    let _ = std::fs::remove_file(dir.join("port"));
    let log = dir.with_extension("log");
    let (mut child, lines) = spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_mutual-testnode"))
            .arg("import")
            .arg(dir)
            .arg(&world.messages)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log)?),
    )?;
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut seen = Vec::new();
    let mut wait_for = |what: &str| -> anyhow::Result<Instant> {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line == what;
                    seen.push(line);
                    if done {
                        return Ok(Instant::now());
                    }
                }
                Err(e) => anyhow::bail!(
                    "the test node never said {what:?} ({e}); it said {seen:?}; its log: {}",
                    logged()
                ),
            }
        }
    };
    wait_for("READY")?;
    let mut answered_after = None;
    match kill {
        Kill::AtRetraction => {
            wait_for("GO 0")?;
        }
        Kill::AfterRetractionAnswered => {
            wait_for("DONE 0 true")?;
        }
        Kill::DuringBlock(delay) => {
            wait_for("GO 1")?;
            // Where to kill, not a wait for anything: what the kill left is
            // read from the store below.
            std::thread::sleep(delay);
        }
        Kill::AfterBlockAnswered => {
            let go = wait_for("GO 1")?;
            answered_after = Some(wait_for("DONE 1 true")?.duration_since(go));
        }
    }
    child.0.kill()?; // SIGKILL
    child.0.wait()?;
    let mut block_answered = seen.iter().any(|l| l.starts_with("DONE 1"));
    while let Ok(line) = lines.try_recv() {
        block_answered |= line.starts_with("DONE 1");
    }
    let data = DataDir::new(dir);
    let store = Store::open(&data.store_path(), data.store_keys()?)?;
    let problems = store.check_integrity()?;
    anyhow::ensure!(problems.is_empty(), "after {kill:?}: {problems:?}");
    let left = Left {
        block_logged: store.contains_log(&world.block_key)?,
        retracted: store.is_retracted_by(&world.retracted, &world.retracter)?,
        retracted_post_stored: store.contains_post(&world.retracted)?,
        blocked_posts_stored: store.count_author_between(
            &world.blocked,
            0,
            u64::MAX,
            usize::MAX,
        )?,
        block_answered,
    };
    store.close()?;
    Ok((left, answered_after))
}

/// The node restarted on `dir` after a kill that left `left`: what it
/// shows, counts and serves, and what a fresh node gets from it.
async fn check_restart(world: &mut World, dir: &Path, n: usize, left: &Left) -> anyhow::Result<()> {
    // A retraction is one transaction with its deletion.
    anyhow::ensure!(
        !(left.retracted && left.retracted_post_stored),
        "the retraction is on disk without its deletion: {left:?}"
    );
    let back = start_bulk(DataDir::new(dir), &[]).await?;
    let blocks = back.handle.mod_list().await?.blocks.len();
    anyhow::ensure!(
        blocks == usize::from(left.block_logged),
        "the node knows {blocks} blocks after a kill that left {left:?}"
    );
    let shown: BTreeSet<String> = back.ids("t").await.into_iter().collect();
    let retracted = world.retracted.to_string();
    if left.block_logged {
        let blocked: Vec<&String> = shown.intersection(&world.blocked_ids).collect();
        anyhow::ensure!(
            blocked.is_empty(),
            "{} posts of the blocked author shown after a kill that left {left:?}",
            blocked.len()
        );
    }
    if left.retracted {
        anyhow::ensure!(
            !shown.contains(&retracted),
            "the retracted post is shown after a kill that left {left:?}"
        );
    }
    let missing: Vec<&String> = world.kept_ids.difference(&shown).collect();
    anyhow::ensure!(
        missing.is_empty(),
        "posts that must stay are gone: {missing:?}"
    );
    // Nothing left on disk that is not shown: start-up enforcement
    // finished what the kill interrupted.
    let stored = back.count("t").await;
    anyhow::ensure!(
        stored == shown.len(),
        "{stored} posts stored but {} shown after a kill that left {left:?}",
        shown.len()
    );
    // A fresh node that syncs from it ends with exactly what it shows.
    let fresh = start_bulk(world.net.member(&format!("fresh{n}"))?, &[]).await?;
    fresh.handle.join(topic("t")).await?;
    fresh.handle.connect(&back.addr).await?;
    wait_until(DEADLINE, "the fresh node's sync to finish", || async {
        let idle = fresh
            .handle
            .status()
            .await
            .is_ok_and(|s| s.sync.active_sessions == 0 && s.sync.completed_sessions >= 2);
        idle && fresh.count("t").await >= shown.len()
    })
    .await?;
    let got: BTreeSet<String> = fresh.ids("t").await.into_iter().collect();
    anyhow::ensure!(
        got == shown,
        "the fresh node holds {} posts ({} of the blocked author, retracted one: {}) while {} are shown",
        got.len(),
        got.intersection(&world.blocked_ids).count(),
        got.contains(&retracted),
        shown.len()
    );
    // Served: exactly what is shown, to a client that applies no rule
    // (raw requests of a member's node, which has proved membership).
    let served = raw_sync::topic_items(&fresh, &back.addr, topic("t")).await?;
    let served: BTreeSet<String> = served
        .iter()
        .filter_map(|b| match Message::decode(b) {
            Ok(Message::Post(p)) => Some(p.id().to_string()),
            _ => None,
        })
        .collect();
    anyhow::ensure!(
        served == shown,
        "served {} posts ({} of the blocked author, retracted one: {}) while {} are shown",
        served.len(),
        served.intersection(&world.blocked_ids).count(),
        served.contains(&retracted),
        shown.len()
    );
    stop(fresh).await;
    stop(back).await;
    Ok(())
}

async fn stop(node: TestNode) {
    let _ = node.stop().await;
}

/// A small xorshift generator: where the kills land changes from run to
/// run; `MUTUAL_CRASH_SEED` (printed) repeats a run's choice of points, as
/// fractions of the enforcement's measured duration.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("MUTUAL_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1);
                nanos ^ u64::from(std::process::id()).rotate_left(32)
            });
        eprintln!("MUTUAL_CRASH_SEED={seed}");
        Rng(seed.max(1))
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs the test node until `kill`, then restarts it and checks it.
async fn kill_and_check(
    world: &mut World,
    n: usize,
    kill: Kill,
) -> anyhow::Result<(Left, Option<Duration>)> {
    let dir = world.net.root.path().join(format!("victim{n}"));
    let at = Instant::now();
    let (left, answered_after) = crash(world, &dir, kill)?;
    check_restart(world, &dir, n, &left).await?;
    eprintln!("kill {n} {kill:?} ({:?}): {left:?}", at.elapsed());
    Ok((left, answered_after))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_enforcing_a_block_and_a_retraction_shows_and_serves_none_after_restart(
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut rng = Rng::new();
    let mut world = prepare().await?;
    eprintln!("prepared in {:?}", started.elapsed());
    let mut n = 0;
    let mut caught = 0;
    // First the kill that also measures how long the block's enforcement
    // takes (from the node's word that it takes the block to its answer).
    let mut enforcement = None;
    for kill in [
        Kill::AfterBlockAnswered,
        Kill::AtRetraction,
        Kill::AfterRetractionAnswered,
    ] {
        n += 1;
        let (left, answered_after) = kill_and_check(&mut world, n, kill).await?;
        enforcement = enforcement.or(answered_after);
        caught += usize::from(left.mid_enforcement());
    }
    let enforcement =
        enforcement.ok_or_else(|| anyhow::anyhow!("the node never answered the block"))?;
    // Then kills a while into the enforcement: one at a random point of
    // each third of it, then more (earlier if the block was already
    // answered, later if it was not on disk yet) until one left the block
    // logged and partly enforced.
    let mut fraction = 0.5;
    for mid in 0..MAX_MID_KILLS {
        if mid >= 3 && caught > 0 {
            break;
        }
        if mid < 3 {
            fraction = (mid as f64 + rng.unit()) / 3.0;
        }
        n += 1;
        let kill = Kill::DuringBlock(enforcement.mul_f64(fraction));
        let (left, _) = kill_and_check(&mut world, n, kill).await?;
        caught += usize::from(left.mid_enforcement());
        if !left.block_logged {
            fraction = (fraction + 1.0) / 2.0;
        } else if left.block_answered {
            fraction /= 2.0;
        }
    }
    eprintln!(
        "{n} kills, {caught} with the block logged and partly enforced on disk \
         (enforcement took {enforcement:?}), in {:?}",
        started.elapsed()
    );
    anyhow::ensure!(
        caught > 0,
        "no kill left the block logged and partly enforced (it took {enforcement:?}); \
         on a much faster machine, raise BLOCKED_POSTS"
    );
    Ok(())
}

/// A client of `/mutual/sync/1` that asks for a whole topic from an empty
/// set and applies no rule to what it gets: raw requests sent by a member's
/// node (which proved membership, so it is served) through the test hook.
mod raw_sync {
    use std::collections::BTreeSet;

    use mutual_tests::TestNode;
    use protocol::sync::{Initiator, ItemKey, Step, SyncResponse, SyncScope};
    use protocol::wire::{self, MAX_SYNC_FRAME_BYTES};
    use protocol::TopicName;

    /// Most requests of one session.
    const MAX_REQUESTS: usize = 100;

    /// Every item of `topic` the node at `addr` (with `/p2p/<id>`) serves
    /// to `via`, which is connected to it.
    pub(crate) async fn topic_items(
        via: &TestNode,
        addr: &str,
        topic: TopicName,
    ) -> anyhow::Result<Vec<Vec<u8>>> {
        let Some(peer) = addr.rsplit("/p2p/").next().filter(|p| *p != addr) else {
            anyhow::bail!("{addr} names no peer");
        };
        let empty: BTreeSet<ItemKey> = BTreeSet::new();
        let (mut initiator, mut request) = Initiator::new(SyncScope::Topic(topic), &empty);
        let mut items = Vec::new();
        for _ in 0..MAX_REQUESTS {
            let bytes = via
                .handle
                .sync_raw(peer, wire::encode_versioned(&request))
                .await?;
            let response: SyncResponse = wire::decode_versioned(&bytes, MAX_SYNC_FRAME_BYTES)
                .map_err(|e| anyhow::anyhow!("the node refused a sync request: {e}"))?;
            let step = initiator.on_response(response, &empty)?;
            items.extend(initiator.take_items());
            match step {
                Step::Continue(next) => request = next,
                Step::Done => return Ok(items),
            }
        }
        anyhow::bail!("the raw sync session took more than {MAX_REQUESTS} requests")
    }
}
