//! Part 5, moderation at scale: how long a block takes to delete every
//! stored post of an author, imported or arriving from another node, and
//! how long the enforcing node's event loop takes to answer meanwhile; how
//! long folding many moderation actions takes, and how long a node takes
//! to start with them in its log.

use std::time::{Duration, Instant};

use node::DataDir;
use protocol::moderation::{ModActionKind, Scope};
use protocol::sync::ItemKey;
use protocol::{
    Identity, Message, ModAction, ModerationState, PostId, PublicKey, VerifiedModAction,
};
use tokio::runtime::Runtime;

use crate::fixtures::{self, BenchNode, Community, Probe};
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
    block_by_import(rt, report, sizes.blocked_posts)?;
    block_by_gossip(rt, report, sizes.blocked_posts)?;
    fold(rt, report, sizes.actions)
}

/// Fills the store of `data` with `n` posts of `troll` and `n` of 100
/// others, in the bench topic (joined).
fn fill_with_troll(
    com: &Community,
    data: &DataDir,
    troll: &Identity,
    n: usize,
) -> anyhow::Result<()> {
    let topic = fixtures::topic();
    let others = fixtures::authors(100);
    let start_ms = node::now_ms() - 3_600_000;
    let ctx = com.ctx();
    let mut posts = fixtures::verified(
        &fixtures::signed_posts(com.id, &topic, std::slice::from_ref(troll), n, start_ms, 5),
        &ctx,
    );
    posts.extend(fixtures::verified(
        &fixtures::signed_posts(com.id, &topic, &others, n, start_ms + 2, 5),
        &ctx,
    ));
    let stored = fixtures::fill_store(data, &topic, &posts)?;
    anyhow::ensure!(
        stored == 2 * n as u64,
        "the store took {stored} of {} posts",
        2 * n
    );
    Ok(())
}

fn block_kind(troll: &Identity) -> ModActionKind {
    ModActionKind::Block {
        author: troll.public(),
        scope: Scope::Community,
        reason: "benchmark".into(),
    }
}

/// The admin's node imports a block of an author with `n` stored posts,
/// its event loop probed meanwhile.
fn block_by_import(rt: &Runtime, report: &mut Report, n: usize) -> anyhow::Result<()> {
    let com = Community::new()?;
    let topic = fixtures::topic();
    let admin = com.admin_identity()?;
    let troll = Identity::generate(Some("troll".into()));
    fill_with_troll(&com, &com.admin, &troll, n)?;
    let action = ModAction::create(&admin, com.id, 1, block_kind(&troll), node::now_ms())?;
    rt.block_on(async {
        let node = BenchNode::start(fixtures::config(com.admin.clone(), Vec::new())).await?;
        let before = node.count(&topic).await;
        anyhow::ensure!(before == 2 * n as u64, "the store holds {before} posts, not {}", 2 * n);
        let probe = Probe::start(vec![node.handle.clone()]);
        let t = Instant::now();
        let applied = node.handle.import(Message::Moderation(action)).await;
        let import = t.elapsed();
        let done = fixtures::wait_until(
            Duration::from_secs(120),
            Duration::from_millis(5),
            "the blocked author's posts to be deleted",
            || async { node.count(&topic).await == n as u64 },
        )
        .await;
        let total = t.elapsed();
        let answers = probe.stop().await;
        node.stop().await;
        anyhow::ensure!(applied?, "the block was not applied");
        done?;
        let answers = answers?;
        report
            .add(PART, &format!("block → {n} posts of the author deleted"), fixtures::ms(total), "ms")
            .note(format!(
                "import of the Block action to topics() showing the count down by {n} (as many posts of 100 others stay); the import call itself took {:.0} ms, in which the core's thread did nothing else (the event loop's answer time meanwhile is below)",
                fixtures::ms(import)
            ));
        report
            .add(PART, "deletions per second during a block", n as f64 / total.as_secs_f64(), "posts/s");
        answers.report(
            report,
            PART,
            &format!("while a block of {n} posts is enforced (import)"),
            Some("< 5 ms"),
            "the enforcing node, from the import call to the count down",
        );
        anyhow::Ok(())
    })
}

/// A member's node holding `n` posts of an author gets the admin's block of
/// that author from the admin's node over loopback, its event loop probed
/// meanwhile.
fn block_by_gossip(rt: &Runtime, report: &mut Report, n: usize) -> anyhow::Result<()> {
    let mut com = Community::new()?;
    let topic = fixtures::topic();
    let troll = Identity::generate(Some("troll".into()));
    let member = com.member()?;
    fill_with_troll(&com, &member, &troll, n)?;
    rt.block_on(async {
        let enforcer = BenchNode::start(fixtures::config(member, Vec::new())).await?;
        let admin = BenchNode::start(fixtures::config(
            com.admin.clone(),
            vec![enforcer.addr.clone()],
        ))
        .await?;
        let measured = async {
            let before = enforcer.count(&topic).await;
            anyhow::ensure!(before == 2 * n as u64, "the store holds {before} posts, not {}", 2 * n);
            let warm_ups = until_gossip_flows(&admin, &enforcer).await?;
            let gossip_before = enforcer.handle.gossip_stats().await?.unique;
            let probe = Probe::start(vec![enforcer.handle.clone()]);
            let t = Instant::now();
            let sent = admin.handle.moderate(block_kind(&troll)).await;
            let done = fixtures::wait_until(
                Duration::from_secs(120),
                Duration::from_millis(5),
                "the blocked author's posts to be deleted",
                || async { enforcer.count(&topic).await == n as u64 },
            )
            .await;
            let total = t.elapsed();
            let answers = probe.stop().await;
            sent?;
            done?;
            let by_gossip = enforcer.handle.gossip_stats().await?.unique > gossip_before;
            anyhow::Ok((total, answers?, by_gossip, warm_ups))
        }
        .await;
        admin.stop().await;
        enforcer.stop().await;
        let (total, answers, by_gossip, warm_ups) = measured?;
        let how = if by_gossip { "by gossip" } else { "by sync (no gossip copy came)" };
        report
            .add(PART, &format!("block from another node → {n} posts deleted"), fixtures::ms(total), "ms")
            .note(format!(
                "the admin's node takes the Block action (signed, flushed, gossiped); it reached the member's node {how}, which deleted the author's {n} posts; until topics() there showed the count down by {n}; {warm_ups} harmless action(s) first, until one came by gossip"
            ));
        answers.report(
            report,
            PART,
            &format!("while a block of {n} posts is enforced (gossip)"),
            Some("< 5 ms"),
            "the member's node, from the admin's moderate call to the count down there",
        );
        anyhow::Ok(())
    })
}

/// Has the admin's node appoint a moderator with a fresh key, again every
/// 2 s, until one reaches `enforcer` by gossip: the community channel's
/// mesh has formed then. Returns how many actions it took.
async fn until_gossip_flows(admin: &BenchNode, enforcer: &BenchNode) -> anyhow::Result<usize> {
    let start = Instant::now();
    let mut tries = 0;
    while start.elapsed() < Duration::from_secs(60) {
        let before = enforcer.handle.gossip_stats().await?.unique;
        admin
            .handle
            .moderate(ModActionKind::AppointModerator {
                key: Identity::generate(None).public(),
            })
            .await?;
        tries += 1;
        let came = fixtures::wait_until(
            Duration::from_secs(2),
            Duration::from_millis(20),
            "an action by gossip",
            || async {
                enforcer
                    .handle
                    .gossip_stats()
                    .await
                    .map(|s| s.unique > before)
                    .unwrap_or(false)
            },
        )
        .await;
        if came.is_ok() {
            return Ok(tries);
        }
    }
    anyhow::bail!("no action of the admin's node came by gossip within 60 s ({tries} sent)")
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
        let store = node::store::Store::open(&data.store_path(), data.store_keys()?)?;
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
