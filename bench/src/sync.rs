//! Part 3, sync: round trips and bytes of our reconciliation
//! (`protocol::sync`, in memory) next to Negentropy (the `negentropy`
//! crate, in memory, ids only) on the same sets; then a real catch-up of
//! an empty node from a full one over loopback TCP, with both nodes' event
//! loops probed meanwhile.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use protocol::sync::{self, Initiator, ItemKey, Step, SyncScope};
use protocol::wire::{encode_versioned, MAX_SYNC_FRAME_BYTES};
use protocol::Message;
use tokio::runtime::Runtime;

use crate::fixtures::{self, Answers, BenchNode, Community, Probe};
use crate::ingest::item_key;
use crate::report::Report;

const PART: &str = "sync";

/// Sizes of the sync part.
pub(crate) struct Sizes {
    /// Items in each set.
    pub(crate) items: usize,
    /// Items each side lacks of the other's in the near-identical case.
    pub(crate) lacking: usize,
    /// How long the loopback catch-up may take before the part fails.
    pub(crate) deadline: Duration,
}

type Set = BTreeMap<ItemKey, Vec<u8>>;

/// What one of our sessions cost.
#[derive(Default, Clone, Copy)]
struct Ours {
    round_trips: u64,
    request_bytes: u64,
    response_bytes: u64,
    items: u64,
    item_bytes: u64,
}

impl Ours {
    fn bytes(&self) -> u64 {
        self.request_bytes + self.response_bytes
    }
    /// Bytes beyond the items' own encodings (ids, summaries, framing).
    fn overhead(&self) -> u64 {
        self.bytes().saturating_sub(self.item_bytes)
    }
}

/// One session of our protocol: `local` learns what `remote` holds that it
/// lacks and stores it. Bytes are the versioned encodings on the wire.
fn ours_session(local: &mut Set, remote: &Set) -> anyhow::Result<Ours> {
    let mut cost = Ours::default();
    let scope = SyncScope::Topic(fixtures::topic());
    let (mut initiator, mut request) = Initiator::new(scope, &*local);
    loop {
        cost.request_bytes += encode_versioned(&request).len() as u64;
        let response = sync::respond(&request, remote, remote);
        cost.response_bytes += encode_versioned(&response).len() as u64;
        cost.round_trips += 1;
        let step = initiator.on_response(response, &*local)?;
        for item in initiator.take_items() {
            let Ok(Message::Post(p)) = Message::decode(&item) else {
                anyhow::bail!("sync delivered something that is not a post");
            };
            cost.items += 1;
            cost.item_bytes += item.len() as u64;
            local.insert(item_key(&p), item);
        }
        match step {
            Step::Continue(next) => request = next,
            Step::Done => return Ok(cost),
        }
    }
}

/// What one Negentropy session cost.
#[derive(Default, Clone, Copy)]
struct Neg {
    round_trips: u64,
    bytes: u64,
    have: u64,
    need: u64,
}

/// One Negentropy session, the initiator holding `local`: both sides'
/// differences as ids, no items.
fn negentropy_session(local: &Set, remote: &Set, frame_limit: u64) -> anyhow::Result<Neg> {
    let storage = |set: &Set| -> anyhow::Result<NegentropyStorageVector> {
        let mut s = NegentropyStorageVector::with_capacity(set.len());
        for k in set.keys() {
            s.insert(k.created_at, Id::from_byte_array(k.id))
                .map_err(|e| anyhow::anyhow!("negentropy: {e}"))?;
        }
        s.seal().map_err(|e| anyhow::anyhow!("negentropy: {e}"))?;
        Ok(s)
    };
    let ne = |e: negentropy::Error| anyhow::anyhow!("negentropy: {e}");
    let mut client = Negentropy::owned(storage(local)?, frame_limit).map_err(ne)?;
    let mut server = Negentropy::owned(storage(remote)?, frame_limit).map_err(ne)?;
    let mut cost = Neg::default();
    let mut msg = client.initiate().map_err(ne)?;
    cost.bytes += msg.len() as u64;
    let (mut have, mut need) = (Vec::new(), Vec::new());
    loop {
        let reply = server.reconcile(&msg).map_err(ne)?;
        cost.bytes += reply.len() as u64;
        cost.round_trips += 1;
        match client
            .reconcile_with_ids(&reply, &mut have, &mut need)
            .map_err(ne)?
        {
            Some(next) => {
                cost.bytes += next.len() as u64;
                msg = next;
            }
            None => break,
        }
    }
    cost.have = have.len() as u64;
    cost.need = need.len() as u64;
    Ok(cost)
}

/// Runs the part and adds its rows.
pub(crate) fn run(rt: &Runtime, report: &mut Report, sizes: &Sizes) -> anyhow::Result<()> {
    let com = Community::new()?;
    let topic = fixtures::topic();
    let authors = fixtures::authors(1000);
    let n = sizes.items;
    let start_ms = node::now_ms() - 7_200_000;
    let posts = fixtures::signed_posts(com.id, &topic, &authors, n, start_ms, 3);
    let full: Set = posts
        .iter()
        .map(|p| (item_key(p), Message::Post(p.clone()).encode()))
        .collect();
    let post_bytes: u64 = full.values().map(|v| v.len() as u64).sum();
    let neg_frame = MAX_SYNC_FRAME_BYTES as u64;
    let frame_note = format!("Negentropy frame limit {} KiB, ids only", neg_frame / 1024);

    // (a) near-identical: each side lacks `lacking` of the other's.
    let keys: Vec<ItemKey> = full.keys().copied().collect();
    let stride = (n / (2 * sizes.lacking + 1)).max(1);
    let mut a = full.clone();
    let mut b = full.clone();
    for j in 0..sizes.lacking {
        a.remove(&keys[(2 * j + 1) * stride]);
        b.remove(&keys[(2 * j + 2) * stride]);
    }
    let neg_a = negentropy_session(&a, &b, neg_frame)?;
    let neg_a_unbounded = negentropy_session(&a, &b, 0)?;
    let a_from_b = ours_session(&mut a, &b)?;
    let b_from_a = ours_session(&mut b, &a)?;
    anyhow::ensure!(
        a.len() == n && b.len() == n,
        "(a) did not end with the union"
    );
    let case = format!("(a) {n} vs {n}, each lacks {}", sizes.lacking);
    report
        .add(PART, &format!("{case}: round trips, one session"), a_from_b.round_trips as f64, "")
        .vs("negentropy", neg_a.round_trips as f64)
        .note(format!(
            "ours: the initiator learns and receives what it lacks; negentropy: both sides' ids (have {}, need {}); unbounded frames: {} round trips",
            neg_a.have, neg_a.need, neg_a_unbounded.round_trips
        ));
    report
        .add(
            PART,
            &format!("{case}: bytes, one session"),
            a_from_b.bytes() as f64,
            "B",
        )
        .vs("negentropy", neg_a.bytes as f64)
        .note(format!(
            "ours includes the {} items it fetched ({} B); without them {} B; {frame_note}",
            a_from_b.items,
            a_from_b.item_bytes,
            a_from_b.overhead()
        ));
    report
        .add(PART, &format!("{case}: bytes, both directions"), (a_from_b.bytes() + b_from_a.bytes()) as f64, "B")
        .vs("negentropy", neg_a.bytes as f64)
        .note(format!(
            "ours: two sessions (one per initiator, concurrent in a node: {} round trips); {} B without items; negentropy: one session, ids only",
            a_from_b.round_trips.max(b_from_a.round_trips),
            a_from_b.overhead() + b_from_a.overhead()
        ));

    // (b) identical sets.
    let mut same = full.clone();
    let neg_b = negentropy_session(&same, &full, neg_frame)?;
    let ours_b = ours_session(&mut same, &full)?;
    let case = format!("(b) identical {n}");
    report
        .add(
            PART,
            &format!("{case}: round trips"),
            ours_b.round_trips as f64,
            "",
        )
        .vs("negentropy", neg_b.round_trips as f64);
    report
        .add(PART, &format!("{case}: bytes"), ours_b.bytes() as f64, "B")
        .vs("negentropy", neg_b.bytes as f64);

    // (c) empty → full, in memory first (the protocol alone).
    let mut empty = Set::new();
    let neg_c = negentropy_session(&empty, &full, neg_frame)?;
    let ours_c = ours_session(&mut empty, &full)?;
    anyhow::ensure!(
        empty.len() == n,
        "(c) in memory did not transfer every item"
    );
    let case = format!("(c) empty ← {n}");
    report
        .add(
            PART,
            &format!("{case}, in memory: round trips"),
            ours_c.round_trips as f64,
            "",
        )
        .vs("negentropy", neg_c.round_trips as f64)
        .note("ours moves the items; negentropy only lists the ids");
    report
        .add(
            PART,
            &format!("{case}, in memory: bytes beyond the posts"),
            ours_c.overhead() as f64,
            "B",
        )
        .vs("negentropy ids", neg_c.bytes as f64)
        .note(format!(
            "{:.2}% of the {} B of posts; negentropy lists {} ids at 32 B each plus framing",
            100.0 * ours_c.overhead() as f64 / post_bytes as f64,
            post_bytes,
            neg_c.need
        ));

    // (c) over loopback TCP between two real nodes.
    drop((a, b, same, empty));
    let net = rt.block_on(catch_up(com, &posts, sizes.deadline));
    match net {
        Ok(c) => {
            report
                .add(
                    PART,
                    &format!("{case}, two nodes over TCP: time"),
                    c.secs,
                    "s",
                )
                .note(format!(
                    "from starting the empty node to its count reaching {n}; {:.0} posts/s",
                    n as f64 / c.secs
                ));
            report
                .add(PART, &format!("{case}, two nodes over TCP: sync bytes"), c.bytes as f64, "B")
                .vs("negentropy ids", neg_c.bytes as f64)
                .note(format!(
                    "both nodes' sync counters: the requests each sent and the answers each received as an initiator (every frame once); {} round trips by the empty node",
                    c.round_trips
                ));
            let over = c.bytes.saturating_sub(post_bytes);
            report
                .add(PART, &format!("{case}, two nodes over TCP: bytes beyond the posts"), 100.0 * over as f64 / post_bytes as f64, "%")
                .note(format!(
                    "{over} B over {post_bytes} B of posts ({:.0} B each); negentropy's id listing alone is {:.2}%",
                    post_bytes as f64 / n as f64,
                    100.0 * neg_c.bytes as f64 / post_bytes as f64
                ));
            if c.stalls > 0 {
                if let Some(r) = report.rows.last_mut() {
                    r.note
                        .push_str(&format!("; {} pauses of more than 1 s", c.stalls));
                }
            }
            c.serving.report(
                report,
                PART,
                &format!("while serving a catch-up of {n}"),
                Some("< 5 ms"),
                "the full node, whose sync responder runs on the blocking pool, from the empty node's start to its count reaching the end",
            );
            c.receiving.report(
                report,
                PART,
                &format!("while catching up {n}"),
                None,
                "the empty node, whose core verifies and stores each page on its own thread",
            );
        }
        Err(e) => report.failures.push(format!("sync over TCP: {e}")),
    }
    Ok(())
}

struct CatchUp {
    secs: f64,
    bytes: u64,
    round_trips: u64,
    stalls: u64,
    /// The full node's event loop's answers meanwhile.
    serving: Answers,
    /// The empty node's.
    receiving: Answers,
}

/// A node holding every post and an empty one that joined the topic; the
/// empty one starts bootstrapped from the full one and catches up by sync.
async fn catch_up(
    mut com: Community,
    posts: &[protocol::SignedPost],
    deadline: Duration,
) -> anyhow::Result<CatchUp> {
    let topic = fixtures::topic();
    let ctx = com.ctx();
    let verified = fixtures::verified(posts, &ctx);
    let full_dir = com.admin.clone();
    fixtures::fill_store(&full_dir, &topic, &verified)?;
    drop(verified);
    let empty_dir = com.member()?;
    fixtures::fill_store(&empty_dir, &topic, &[])?;
    let with_limit = |data| {
        let mut c = fixtures::config(data, Vec::new());
        c.author_posts_per_minute = node::AUTHOR_POSTS_PER_MINUTE;
        c
    };
    let full = BenchNode::start(with_limit(full_dir)).await?;
    let mut config = with_limit(empty_dir);
    config.bootstrap = vec![full.addr.clone()];
    // Both event loops are probed from before the empty node starts to
    // the end of its catch-up.
    let serving = Probe::start(vec![full.handle.clone()]);
    let t = Instant::now();
    let empty = BenchNode::start(config).await?;
    let receiving = Probe::start(vec![empty.handle.clone()]);
    let n = posts.len() as u64;
    // Polls the count; a pause of more than a second in its growth is a
    // stall (a refused or failed page waiting for the next sync round).
    let mut stalls = 0u64;
    let mut last = (0u64, Instant::now());
    let mut caught_up = false;
    while t.elapsed() < deadline {
        let c = empty.count(&topic).await;
        if c != last.0 {
            if last.1.elapsed() > Duration::from_secs(1) {
                stalls += 1;
            }
            last = (c, Instant::now());
        }
        if c >= n {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let serving = serving.stop().await?;
    let receiving = receiving.stop().await?;
    // Each node counts the requests it sends and the answers it receives
    // as an initiator; its responder (on the blocking pool) counts
    // nothing. Both initiators' frames together are every frame once.
    let (rt_e, sent_e, received_e) = empty.handle.sync_counters().await?;
    let (_, sent_f, received_f) = full.handle.sync_counters().await?;
    empty.stop().await;
    full.stop().await;
    anyhow::ensure!(
        caught_up,
        "the empty node had {} of {n} posts after {deadline:?}",
        last.0
    );
    Ok(CatchUp {
        secs,
        bytes: sent_e + received_e + sent_f + received_f,
        round_trips: rt_e,
        stalls,
        serving,
        receiving,
    })
}
