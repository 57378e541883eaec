//! Range-based set reconciliation for history sync (the family of
//! Negentropy; our own design and code).
//!
//! Two nodes each hold a set of items ordered by [`ItemKey`] (creation time,
//! then id). The *initiator* learns what the *responder* holds that it lacks
//! and pulls those items; union in both directions comes from both nodes
//! initiating. Messages carry a list of contiguous ranges covering the whole
//! key space, each with a [`Mode`]:
//!
//! - `Fingerprint{count, fp}` — "this is my range": the receiver compares its
//!   own fingerprint and, if they differ, answers with finer ranges, an id
//!   list, or the items;
//! - `Have(prefixes)` — the initiator's ids (8-byte prefixes) in a small
//!   range: the responder sends the items whose ids are not listed;
//! - `Fetch` — the initiator has nothing in the range: the responder streams
//!   the items themselves (paged), never a list of ids first;
//! - `Again` — the responder ran out of its per-response budget: ask again;
//! - `Skip` — nothing to do here.
//!
//! A fingerprint is BLAKE3 (truncated to 16 bytes) of the item count and the
//! sum of the ids as 256-bit integers: over content only, so clock skew does
//! not matter, and additive, so it could be cached. Range bounds travel
//! compressed: a timestamp delta and the shortest id prefix that separates
//! two neighbouring items.
//!
//! This module is pure: the node supplies the set ([`SyncSet`]) and the item
//! bytes ([`ItemSource`]) and carries the messages.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::topic::TopicName;

/// The position of an item in reconciliation order: by the author's
/// creation time, then by id. Content, not local receive time, so clock skew
/// between nodes cannot make two equal sets look different.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemKey {
    /// Creation time, ms since the Unix epoch, as signed by the author.
    pub created_at: u64,
    /// The item's content id.
    pub id: [u8; 32],
}

impl ItemKey {
    /// The smallest key.
    pub const MIN: ItemKey = ItemKey {
        created_at: 0,
        id: [0; 32],
    };
    /// The largest key.
    pub const MAX: ItemKey = ItemKey {
        created_at: u64::MAX,
        id: [0xff; 32],
    };

    fn prefix(&self) -> [u8; 8] {
        let mut p = [0u8; 8];
        p.copy_from_slice(self.id.get(..8).unwrap_or(&[0; 8]));
        p
    }
}

/// Which set two nodes reconcile: one topic's posts, or the community log
/// (moderation actions, retractions, reports), which is always synced first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SyncScope {
    /// Moderation actions, retractions and sealed reports.
    CommunityLog,
    /// The posts of one topic.
    Topic(TopicName),
}

/// Ranges one split produces: 16 keeps each level's message small while a
/// 100k set narrows to a few dozen items in three levels.
pub const BRANCHING: usize = 16;
/// A range with at most this many items is settled by listing ids (8-byte
/// prefixes, 512 bytes at most) instead of splitting further.
pub const ID_LIST_THRESHOLD: usize = 64;
/// Most items in one response: a page of a catch-up.
pub const MAX_ITEMS_PER_RESPONSE: usize = 1024;
/// Most item bytes in one response: well below the 2 MiB frame limit.
pub const MAX_ITEM_BYTES_PER_RESPONSE: usize = 1024 * 1024;
/// Most ranges in one message: bounds the work a peer can ask for in one
/// request (each range costs a scan) and the memory of one message.
pub const MAX_RANGES: usize = 4096;
/// Most rounds of one session: a 1M-item catch-up pages in ~1,000 rounds;
/// a peer cannot keep a session going forever.
pub const MAX_ROUNDS: u32 = 4096;

/// What to do with one range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Nothing to do.
    Skip,
    /// The sender's count and fingerprint of the range.
    Fingerprint {
        /// Items in the range.
        count: u64,
        /// Fingerprint of the range.
        fp: [u8; 16],
    },
    /// The initiator holds nothing here: send every item.
    Fetch,
    /// The initiator's ids in the range (8-byte prefixes): send the rest.
    Have(Vec<[u8; 8]>),
    /// The responder's budget ran out before this range: ask again.
    Again,
}

/// One range on the wire: its upper bound (exclusive), compressed as a
/// timestamp delta from the previous bound and an id prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRange {
    /// Upper bound's timestamp minus the previous bound's.
    pub ts_delta: u64,
    /// Upper bound's id prefix (the rest is zeros).
    pub id_prefix: Vec<u8>,
    /// What to do.
    pub mode: Mode,
}

/// Contiguous ranges covering the whole key space: `bounded` ranges in
/// ascending order, then `last` up to [`ItemKey::MAX`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges {
    /// Ranges with an explicit upper bound.
    pub bounded: Vec<WireRange>,
    /// The final range, up to the end of the key space.
    pub last: Mode,
}

/// The initiator's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Which set.
    pub scope: SyncScope,
    /// The ranges and what to do with each.
    pub ranges: Ranges,
}

/// The responder's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The responder's answer for each range.
    pub ranges: Ranges,
    /// Items the initiator lacks (opaque encoded messages).
    pub items: Vec<Vec<u8>>,
    /// The responder does not serve this scope (e.g. a topic it never
    /// joined).
    pub refused: bool,
}

impl SyncResponse {
    /// The answer of a node that does not serve the request's scope.
    pub fn refused(_request: &SyncRequest) -> Self {
        SyncResponse {
            ranges: Ranges {
                bounded: Vec::new(),
                last: Mode::Skip,
            },
            items: Vec::new(),
            refused: true,
        }
    }
}

/// Why a sync session was abandoned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Bounds out of order, too many ranges, an impossible mode.
    #[error("malformed sync message: {0}")]
    Malformed(&'static str),
    /// The peer does not serve this scope.
    #[error("the peer does not serve this scope")]
    Refused,
    /// The session went on for more than [`MAX_ROUNDS`].
    #[error("the sync session exceeded {MAX_ROUNDS} rounds")]
    TooManyRounds,
}

/// One side's set, read in key order. The node implements it over its store;
/// tests over a `BTreeSet`.
pub trait SyncSet {
    /// Calls `f` on each key in `[from, to)` in ascending order until it
    /// returns false.
    fn for_each_in(&self, from: &ItemKey, to: &ItemKey, f: &mut dyn FnMut(&ItemKey) -> bool);
}

/// Where the responder gets item bytes from.
pub trait ItemSource {
    /// Items in `[from, to)` in key order, at most `max_items` and about
    /// `max_bytes` (at least one item if there is any).
    fn items_in(
        &self,
        from: &ItemKey,
        to: &ItemKey,
        max_items: usize,
        max_bytes: usize,
    ) -> Vec<(ItemKey, Vec<u8>)>;
    /// Items with these keys (those it has).
    fn items_by_keys(&self, keys: &[ItemKey]) -> Vec<Vec<u8>>;
}

/// Count and fingerprint of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// Items.
    pub count: u64,
    /// Digest of count and id sum.
    pub fp: [u8; 16],
}

/// An additive accumulator of ids.
#[derive(Clone, Copy, Debug, Default)]
struct Accumulator {
    sum: [u64; 4],
    count: u64,
}

impl Accumulator {
    fn add(&mut self, id: &[u8; 32]) {
        let mut carry = 0u128;
        for (i, limb) in self.sum.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(id.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
            let v = *limb as u128 + u64::from_le_bytes(word) as u128 + carry;
            *limb = v as u64;
            carry = v >> 64;
        }
        self.count += 1;
    }

    fn finish(&self) -> Fingerprint {
        let mut h = blake3::Hasher::new();
        h.update(&self.count.to_le_bytes());
        for limb in self.sum {
            h.update(&limb.to_le_bytes());
        }
        let mut fp = [0u8; 16];
        fp.copy_from_slice(h.finalize().as_bytes().get(..16).unwrap_or(&[0; 16]));
        Fingerprint {
            count: self.count,
            fp,
        }
    }
}

/// Fingerprint of a range of a set.
pub fn fingerprint(set: &dyn SyncSet, from: &ItemKey, to: &ItemKey) -> Fingerprint {
    let mut acc = Accumulator::default();
    set.for_each_in(from, to, &mut |k| {
        acc.add(&k.id);
        true
    });
    acc.finish()
}

fn keys_in(set: &dyn SyncSet, from: &ItemKey, to: &ItemKey, limit: usize) -> Vec<ItemKey> {
    let mut out = Vec::new();
    set.for_each_in(from, to, &mut |k| {
        out.push(*k);
        out.len() < limit
    });
    out
}

/// The shortest bound `b` with `before < b <= after`, as an [`ItemKey`].
fn separating_bound(before: &ItemKey, after: &ItemKey) -> ItemKey {
    if before.created_at < after.created_at {
        return ItemKey {
            created_at: after.created_at,
            id: [0; 32],
        };
    }
    let common = before
        .id
        .iter()
        .zip(after.id.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let mut id = [0u8; 32];
    for (dst, src) in id.iter_mut().zip(after.id.iter()).take(common + 1) {
        *dst = *src;
    }
    ItemKey {
        created_at: after.created_at,
        id,
    }
}

/// Splits `[from, to)` of `set` into up to [`BRANCHING`] ranges of about
/// equal counts, each with its fingerprint. `count` is the range's size.
fn split(
    set: &dyn SyncSet,
    from: &ItemKey,
    to: &ItemKey,
    count: u64,
) -> Vec<(ItemKey, ItemKey, Mode)> {
    let per = (count as usize).div_ceil(BRANCHING).max(1);
    let mut out = Vec::new();
    let mut lo = *from;
    let mut acc = Accumulator::default();
    let mut prev: Option<ItemKey> = None;
    set.for_each_in(from, to, &mut |k| {
        if acc.count as usize == per {
            if let Some(p) = prev {
                let bound = separating_bound(&p, k);
                let f = acc.finish();
                out.push((
                    lo,
                    bound,
                    Mode::Fingerprint {
                        count: f.count,
                        fp: f.fp,
                    },
                ));
                lo = bound;
                acc = Accumulator::default();
            }
        }
        acc.add(&k.id);
        prev = Some(*k);
        true
    });
    let f = acc.finish();
    out.push((
        lo,
        *to,
        Mode::Fingerprint {
            count: f.count,
            fp: f.fp,
        },
    ));
    out
}

/// Encodes `(lo, hi, mode)` ranges covering the key space.
fn encode_ranges(ranges: Vec<(ItemKey, ItemKey, Mode)>) -> Ranges {
    // Merge neighbouring skips first: they carry no information.
    let mut merged: Vec<(ItemKey, ItemKey, Mode)> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if last.2 == Mode::Skip && r.2 == Mode::Skip => last.1 = r.1,
            _ => merged.push(r),
        }
    }
    let mut bounded = Vec::with_capacity(merged.len());
    let mut prev_ts = 0u64;
    let mut last = Mode::Skip;
    let n = merged.len();
    for (i, (_, hi, mode)) in merged.into_iter().enumerate() {
        if i + 1 == n {
            last = mode;
            break;
        }
        let significant = hi.id.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
        bounded.push(WireRange {
            ts_delta: hi.created_at.saturating_sub(prev_ts),
            id_prefix: hi.id.get(..significant).unwrap_or(&[]).to_vec(),
            mode,
        });
        prev_ts = hi.created_at;
    }
    Ranges { bounded, last }
}

/// Decodes ranges, checking order and limits.
fn decode_ranges(ranges: &Ranges) -> Result<Vec<(ItemKey, ItemKey, Mode)>, SyncError> {
    if ranges.bounded.len() + 1 > MAX_RANGES {
        return Err(SyncError::Malformed("too many ranges"));
    }
    let mut out = Vec::with_capacity(ranges.bounded.len() + 1);
    let mut lo = ItemKey::MIN;
    let mut ts = 0u64;
    for r in &ranges.bounded {
        if r.id_prefix.len() > 32 {
            return Err(SyncError::Malformed("bound id longer than 32 bytes"));
        }
        ts = ts
            .checked_add(r.ts_delta)
            .ok_or(SyncError::Malformed("bound time overflows"))?;
        let mut id = [0u8; 32];
        for (d, s) in id.iter_mut().zip(r.id_prefix.iter()) {
            *d = *s;
        }
        let hi = ItemKey { created_at: ts, id };
        if hi <= lo {
            return Err(SyncError::Malformed("bounds out of order"));
        }
        out.push((lo, hi, r.mode.clone()));
        lo = hi;
    }
    out.push((lo, ItemKey::MAX, ranges.last.clone()));
    Ok(out)
}

/// The mode the initiator sends for a range given its own content.
fn initiator_mode(set: &dyn SyncSet, lo: &ItemKey, hi: &ItemKey) -> Vec<(ItemKey, ItemKey, Mode)> {
    let mine = fingerprint(set, lo, hi);
    if mine.count == 0 {
        return vec![(*lo, *hi, Mode::Fetch)];
    }
    vec![(
        *lo,
        *hi,
        Mode::Fingerprint {
            count: mine.count,
            fp: mine.fp,
        },
    )]
}

/// Progress of a session, for status and progress bars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Items known to be missing and not yet received.
    pub missing: u64,
    /// Items received so far.
    pub received: u64,
    /// Round trips so far.
    pub rounds: u32,
}

/// What the initiator does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this request.
    Continue(SyncRequest),
    /// The sets are reconciled (for this scope).
    Done,
}

/// The initiator's side of one session.
#[derive(Debug)]
pub struct Initiator {
    scope: SyncScope,
    sent: Vec<(ItemKey, ItemKey, Mode)>,
    items: Vec<Vec<u8>>,
    progress: Progress,
}

impl Initiator {
    /// Starts a session over `scope`, returning the first request.
    pub fn new(scope: SyncScope, set: &dyn SyncSet) -> (Initiator, SyncRequest) {
        let sent = initiator_mode(set, &ItemKey::MIN, &ItemKey::MAX);
        let request = SyncRequest {
            scope: scope.clone(),
            ranges: encode_ranges(sent.clone()),
        };
        (
            Initiator {
                scope,
                sent,
                items: Vec::new(),
                progress: Progress::default(),
            },
            request,
        )
    }

    /// The scope of this session.
    pub fn scope(&self) -> &SyncScope {
        &self.scope
    }

    /// Progress so far.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// Items received by the last response, for the node to validate and
    /// store (the machine does not assume they are accepted).
    pub fn take_items(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.items)
    }

    /// Handles a response; returns the next request or `Done`.
    pub fn on_response(
        &mut self,
        response: SyncResponse,
        set: &dyn SyncSet,
    ) -> Result<Step, SyncError> {
        self.progress.rounds += 1;
        if self.progress.rounds > MAX_ROUNDS {
            return Err(SyncError::TooManyRounds);
        }
        if response.refused {
            return Err(SyncError::Refused);
        }
        if response.items.len() > MAX_ITEMS_PER_RESPONSE {
            return Err(SyncError::Malformed("too many items"));
        }
        let received = response.items.len() as u64;
        self.progress.received += received;
        self.progress.missing = self.progress.missing.saturating_sub(received);
        self.items = response.items;
        let ranges = decode_ranges(&response.ranges)?;
        let mut next: Vec<(ItemKey, ItemKey, Mode)> = Vec::new();
        for (lo, hi, mode) in ranges {
            match mode {
                Mode::Skip => next.push((lo, hi, Mode::Skip)),
                Mode::Fingerprint { count, fp } => {
                    let mine = fingerprint(set, &lo, &hi);
                    if count == 0 || (mine.count == count && mine.fp == fp) {
                        next.push((lo, hi, Mode::Skip));
                    } else if mine.count == 0 {
                        self.progress.missing += count;
                        next.push((lo, hi, Mode::Fetch));
                    } else if mine.count as usize <= ID_LIST_THRESHOLD {
                        let have = keys_in(set, &lo, &hi, ID_LIST_THRESHOLD)
                            .iter()
                            .map(ItemKey::prefix)
                            .collect();
                        self.progress.missing += count.saturating_sub(mine.count);
                        next.push((lo, hi, Mode::Have(have)));
                    } else {
                        next.extend(split(set, &lo, &hi, mine.count));
                    }
                }
                Mode::Again => {
                    // Resend what was sent for the range that contains it.
                    let previous = self
                        .sent
                        .iter()
                        .find(|(slo, shi, _)| *slo <= lo && hi <= *shi)
                        .map(|(_, _, m)| m.clone());
                    match previous {
                        Some(Mode::Fetch) => next.push((lo, hi, Mode::Fetch)),
                        Some(Mode::Have(h)) => next.push((lo, hi, Mode::Have(h))),
                        Some(Mode::Fingerprint { .. }) => {
                            next.extend(initiator_mode(set, &lo, &hi))
                        }
                        _ => return Err(SyncError::Malformed("`again` for a range never asked")),
                    }
                }
                Mode::Fetch | Mode::Have(_) => {
                    return Err(SyncError::Malformed("a responder cannot fetch"))
                }
            }
        }
        if next.len() > MAX_RANGES {
            // Keep the session bounded: settle the excess next round.
            let tail_lo = next
                .get(MAX_RANGES - 1)
                .map(|r| r.0)
                .unwrap_or(ItemKey::MIN);
            next.truncate(MAX_RANGES - 1);
            next.extend(initiator_mode(set, &tail_lo, &ItemKey::MAX));
        }
        if next.iter().all(|(_, _, m)| *m == Mode::Skip) {
            self.progress.missing = 0;
            return Ok(Step::Done);
        }
        self.sent = next.clone();
        Ok(Step::Continue(SyncRequest {
            scope: self.scope.clone(),
            ranges: encode_ranges(next),
        }))
    }
}

/// The responder's side: answers one request from its set and items. Never
/// fails: a malformed request gets an empty (all-skip) answer.
pub fn respond(request: &SyncRequest, set: &dyn SyncSet, source: &dyn ItemSource) -> SyncResponse {
    let Ok(ranges) = decode_ranges(&request.ranges) else {
        return SyncResponse {
            ranges: Ranges {
                bounded: Vec::new(),
                last: Mode::Skip,
            },
            items: Vec::new(),
            refused: false,
        };
    };
    let mut items: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0usize;
    let mut out: Vec<(ItemKey, ItemKey, Mode)> = Vec::new();
    let budget_left = |items: &Vec<Vec<u8>>, bytes: usize| {
        (
            MAX_ITEMS_PER_RESPONSE.saturating_sub(items.len()),
            MAX_ITEM_BYTES_PER_RESPONSE.saturating_sub(bytes),
        )
    };
    for (lo, hi, mode) in ranges {
        match mode {
            Mode::Skip | Mode::Again => out.push((lo, hi, Mode::Skip)),
            Mode::Fingerprint { count, fp } => {
                let mine = fingerprint(set, &lo, &hi);
                if mine.count == 0 || (mine.count == count && mine.fp == fp) {
                    out.push((lo, hi, Mode::Skip));
                } else if count == 0 {
                    out.extend(stream(source, lo, hi, &mut items, &mut bytes));
                } else if (mine.count as usize) <= ID_LIST_THRESHOLD {
                    // Small: the initiator answers with its ids.
                    out.push((
                        lo,
                        hi,
                        Mode::Fingerprint {
                            count: mine.count,
                            fp: mine.fp,
                        },
                    ));
                } else {
                    out.extend(split(set, &lo, &hi, mine.count));
                }
            }
            Mode::Fetch => out.extend(stream(source, lo, hi, &mut items, &mut bytes)),
            Mode::Have(have) => {
                let have: HashSet<[u8; 8]> = have.into_iter().take(ID_LIST_THRESHOLD).collect();
                let (max_items, _) = budget_left(&items, bytes);
                let mut missing = Vec::new();
                let mut total = 0usize;
                set.for_each_in(&lo, &hi, &mut |k| {
                    total += 1;
                    if !have.contains(&k.prefix()) {
                        missing.push(*k);
                    }
                    missing.len() <= MAX_ITEMS_PER_RESPONSE
                });
                if missing.is_empty() {
                    out.push((lo, hi, Mode::Skip));
                } else if missing.len() > max_items {
                    if items.is_empty() {
                        // Too many for one page: narrow the range instead.
                        let count = fingerprint(set, &lo, &hi).count;
                        out.extend(split(set, &lo, &hi, count.max(total as u64)));
                    } else {
                        out.push((lo, hi, Mode::Again));
                    }
                } else {
                    let got = source.items_by_keys(&missing);
                    let size: usize = got.iter().map(Vec::len).sum();
                    if !items.is_empty() && bytes + size > MAX_ITEM_BYTES_PER_RESPONSE {
                        out.push((lo, hi, Mode::Again));
                    } else {
                        bytes += size;
                        items.extend(got);
                        out.push((lo, hi, Mode::Skip));
                    }
                }
            }
        }
    }
    SyncResponse {
        ranges: encode_ranges(out),
        items,
        refused: false,
    }
}

/// Streams the items of `[lo, hi)` within the response budget; what does
/// not fit is left as an `Again` range starting at the first item not sent.
fn stream(
    source: &dyn ItemSource,
    lo: ItemKey,
    hi: ItemKey,
    items: &mut Vec<Vec<u8>>,
    bytes: &mut usize,
) -> Vec<(ItemKey, ItemKey, Mode)> {
    let max_items = MAX_ITEMS_PER_RESPONSE.saturating_sub(items.len());
    if max_items == 0 || (*bytes >= MAX_ITEM_BYTES_PER_RESPONSE && !items.is_empty()) {
        return vec![(lo, hi, Mode::Again)];
    }
    // One extra item tells whether the range continues past this page; the
    // byte budget is applied here so a cut is always seen.
    let page = source.items_in(&lo, &hi, max_items + 1, usize::MAX);
    let mut last: Option<ItemKey> = None;
    for (key, value) in page {
        let fits = items.len() < MAX_ITEMS_PER_RESPONSE
            && (items.is_empty() || *bytes + value.len() <= MAX_ITEM_BYTES_PER_RESPONSE);
        if !fits {
            return match last {
                Some(prev) => {
                    let bound = separating_bound(&prev, &key);
                    vec![(lo, bound, Mode::Skip), (bound, hi, Mode::Again)]
                }
                None => vec![(lo, hi, Mode::Again)],
            };
        }
        *bytes += value.len();
        items.push(value);
        last = Some(key);
    }
    vec![(lo, hi, Mode::Skip)]
}

#[cfg(test)]
mod tests;
