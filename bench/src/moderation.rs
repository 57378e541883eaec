//! Part 5, moderation at scale: how long a block takes to delete every
//! stored post of an author, how long folding many moderation actions
//! takes, and how long a node takes to start with them in its log.

use std::time::{Duration, Instant};

use protocol::moderation::{ModActionKind, Scope};
use protocol::sync::ItemKey;
use protocol::{
    Identity, Message, ModAction, ModerationState, PostId, PublicKey, VerifiedModAction,
};
use tokio::runtime::Runtime;

use crate::fixtures::{self, BenchNode, Community};
use crate::report::Report;

const PART: &str = "moderation";
/// Moderators the admin appoints before the other actions.
const MODERATORS: usize = 100;

/// Sizes of the moderation part.
pub(crate) struct Sizes {
    /// Stored posts of the blocked author (as many again by others).
    pub(crate) blocked_posts: usize,
    /// Moderation actions folded.
    pub(crate) actions: usize,
}

/// Runs the part and adds its rows.
pub(crate) fn run(rt: &Runtime, report: &mut Report, sizes: &Sizes) -> anyhow::Result<()> {
    block(rt, report, sizes.blocked_posts)?;
    fold(rt, report, sizes.actions)
}

fn block(rt: &Runtime, report: &mut Report, n: usize) -> anyhow::Result<()> {
    let com = Community::new()?;
    let topic = fixtures::topic();
    let admin = com.admin_identity()?;
    let troll = Identity::generate(Some("troll".into()));
    let others = fixtures::authors(100);
    let start_ms = node::now_ms() - 3_600_000;
    let ctx = com.ctx();
    let mut posts = fixtures::verified(
        &fixtures::signed_posts(com.id, &topic, std::slice::from_ref(&troll), n, start_ms, 5),
        &ctx,
    );
    posts.extend(fixtures::verified(
        &fixtures::signed_posts(com.id, &topic, &others, n, start_ms + 2, 5),
        &ctx,
    ));
    fixtures::fill_store(&com.admin, &topic, &posts)?;
    drop(posts);
    let action = ModAction::create(
        &admin,
        com.id,
        1,
        ModActionKind::Block {
            author: troll.public(),
            scope: Scope::Community,
            reason: "benchmark".into(),
        },
        node::now_ms(),
    )?;
    rt.block_on(async {
        let node = BenchNode::start(fixtures::config(com.admin.clone(), Vec::new())).await?;
        let before = node.count(&topic).await;
        anyhow::ensure!(before == 2 * n as u64, "the store holds {before} posts, not {}", 2 * n);
        let t = Instant::now();
        let applied = node.handle.import(Message::Moderation(action)).await?;
        let import = t.elapsed();
        anyhow::ensure!(applied, "the block was not applied");
        let done = fixtures::wait_until(
            Duration::from_secs(120),
            Duration::from_millis(5),
            "the blocked author's posts to be deleted",
            || async { node.count(&topic).await == n as u64 },
        )
        .await;
        let total = t.elapsed();
        node.stop().await;
        done?;
        report
            .add(PART, &format!("block → {n} posts of the author deleted"), fixtures::ms(total), "ms")
            .note(format!(
                "import of the Block action to topics() showing the count down by {n} (as many posts of 100 others stay); the import call itself took {:.0} ms, so the event loop answered nothing else meanwhile",
                fixtures::ms(import)
            ));
        report
            .add(PART, "deletions per second during a block", n as f64 / total.as_secs_f64(), "posts/s");
        anyhow::Ok(())
    })
}

/// The kind of the `i`-th action after the appointments: blocks and
/// unblocks over 1,000 authors, hides, unhides, pins and unpins over
/// 10,000 posts.
fn kind(i: usize, topic: &protocol::TopicName) -> ModActionKind {
    let author = PublicKey(*blake3::hash(&(i % 1000).to_le_bytes()).as_bytes());
    let post = PostId(*blake3::hash(&(i % 10_000 + 1_000_000).to_le_bytes()).as_bytes());
    let scope = if i.is_multiple_of(2) {
        Scope::Community
    } else {
        Scope::Topic(topic.clone())
    };
    match i % 6 {
        0 => ModActionKind::Block {
            author,
            scope,
            reason: "spam".into(),
        },
        1 => ModActionKind::Unblock { author, scope },
        2 => ModActionKind::Hide {
            post,
            reason: "off topic".into(),
        },
        3 => ModActionKind::Unhide { post },
        4 => ModActionKind::Pin { post },
        _ => ModActionKind::Unpin { post },
    }
}

fn fold(rt: &Runtime, report: &mut Report, n: usize) -> anyhow::Result<()> {
    let mut com = Community::new()?;
    let topic = fixtures::topic();
    let admin = com.admin_identity()?;
    let mods = fixtures::authors(MODERATORS);
    let base = node::now_ms() - n as u64 - 60_000;
    let ctx = com.ctx();
    let community = com.id;
    // Prepared on every core, untimed: signed, then verified.
    let signed = fixtures::par_map(n, |i| {
        let (signer, kind) = if i < MODERATORS {
            (
                &admin,
                ModActionKind::AppointModerator {
                    key: mods[i].public(),
                },
            )
        } else if i.is_multiple_of(101) {
            (&admin, kind(i, &topic))
        } else {
            (&mods[i % MODERATORS], kind(i, &topic))
        };
        ModAction::create(signer, community, i as u64 + 1, kind, base + i as u64)
            .unwrap_or_else(|e| panic!("a bench action is valid: {e}"))
    });
    let actions: Vec<VerifiedModAction> = fixtures::par_map(n, |i| {
        signed[i]
            .clone()
            .verify(&ctx)
            .unwrap_or_else(|e| panic!("a bench action verifies: {e}"))
    });

    let t = Instant::now();
    let folded = ModerationState::fold(community, admin.public(), actions.iter());
    let fold_time = t.elapsed();
    let t = Instant::now();
    let mut applied = ModerationState::new(community, admin.public());
    for a in &actions {
        applied
            .apply(a)
            .map_err(|e| anyhow::anyhow!("an action was refused: {e}"))?;
    }
    let apply_time = t.elapsed();
    anyhow::ensure!(folded == applied, "fold and incremental apply disagree");
    report
        .add(PART, &format!("fold {n} actions"), fixtures::ms(fold_time), "ms")
        .note(format!(
            "ModerationState::fold of verified actions ({MODERATORS} appointments, then blocks, hides, pins by them); {:.0} actions/s; {} blocks in force",
            n as f64 / fold_time.as_secs_f64(),
            folded.blocks().len()
        ));
    report
        .add(
            PART,
            &format!("apply {n} actions one by one"),
            fixtures::ms(apply_time),
            "ms",
        )
        .note("ModerationState::apply in creation order, as they would arrive");

    // A node starting with all of them in its log decodes and folds them.
    let data = com.member()?;
    {
        let store = node::store::Store::open(&data.store_path())?;
        for s in &signed {
            let key = ItemKey {
                created_at: s.content.created_at,
                id: s.id().0,
            };
            store.insert_log(key, &Message::Moderation(s.clone()).encode())?;
        }
        store.close()?;
    }
    drop((signed, actions));
    rt.block_on(async {
        let t = Instant::now();
        let running = node::start(fixtures::config(data, Vec::new())).await?;
        running.handle.id().await?;
        let startup = t.elapsed();
        let blocks = running.handle.mod_list().await?.blocks.len();
        let node = BenchNode {
            handle: running.handle,
            task: running.task,
            addr: String::new(),
        };
        node.stop().await;
        report
            .add(
                PART,
                &format!("node start-up with {n} actions in its log"),
                fixtures::ms(startup),
                "ms",
            )
            .note(format!(
                "decodes and folds the log at start (signatures were checked before it was stored); {blocks} blocks after"
            ));
        anyhow::Ok(())
    })
}
