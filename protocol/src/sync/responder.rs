//! The responder: answers one request from its set, statelessly.

use std::collections::BTreeSet;

use super::accumulator::Accumulator;
use super::error::SyncError;
use super::keys::{
    count_up_to, find_id, first_in, id_prefix, keys_up_to, separating, short_id, short_range,
    successor, ShortId,
};
use super::message::{
    decode_shorts, encode_shorts, Bound, QueryMode, RangeReply, ResponseStatus, Summary,
    SyncRequest, SyncResponse,
};
use super::{
    ItemKey, ItemSource, SyncSet, FIRST_SPLIT, MAX_HAVE_IDS, MAX_IDS_PER_SUMMARY,
    MAX_ITEMS_PER_RESPONSE, MAX_ITEMS_PER_WANT, MAX_ITEM_BYTES_PER_RESPONSE,
    MAX_RANGES_PER_REQUEST, MAX_REMAINING_COUNTED, MAX_SUMMARIES_PER_RESPONSE,
    MAX_WANTS_PER_REQUEST, SPLIT,
};
use crate::wire::MAX_MESSAGE_BYTES;

/// Answers one request from `set`, taking item bytes from `items`. Never
/// fails and never panics: a malformed request gets a
/// [`ResponseStatus::BadRequest`] answer. Work is bounded by the request's
/// caps: at most three passes over each (disjoint) range asked about, one
/// point lookup per wanted id, and one page of items.
pub fn respond(request: &SyncRequest, set: &dyn SyncSet, items: &dyn ItemSource) -> SyncResponse {
    let Ok((queries, wants)) = parse_request(request) else {
        return SyncResponse::with_status(request, ResponseStatus::BadRequest);
    };
    let mut r = Responder {
        set,
        source: items,
        items: Vec::new(),
        items_left: MAX_ITEMS_PER_RESPONSE,
        bytes_left: MAX_ITEM_BYTES_PER_RESPONSE,
        summaries_left: MAX_SUMMARIES_PER_RESPONSE,
    };
    let mut wants_done = 0u32;
    for want in &wants {
        if !r.serve_want(want) {
            break;
        }
        wants_done = wants_done.saturating_add(1);
    }
    let mut replies = Vec::new();
    for q in &queries {
        let reply = match q.mode {
            Mode::Sum(theirs) => r.serve_sum(&q.lo, &q.hi, theirs),
            Mode::Have(have) => r.serve_have(&q.lo, &q.hi, have),
        };
        match reply {
            Some(reply) => replies.push(reply),
            None => break,
        }
    }
    SyncResponse {
        round: request.round,
        status: ResponseStatus::Ok,
        replies,
        wants_done,
        items: r.items,
    }
}

enum Mode<'a> {
    Sum(&'a Accumulator),
    Have(&'a [[u8; 8]]),
}

struct Query<'a> {
    lo: ItemKey,
    hi: ItemKey,
    mode: Mode<'a>,
}

fn parse_request(request: &SyncRequest) -> Result<(Vec<Query<'_>>, Vec<ShortId>), SyncError> {
    if request.ranges.len() > MAX_RANGES_PER_REQUEST {
        return Err(SyncError::BadRequest("too many ranges"));
    }
    if request.want.len() > MAX_WANTS_PER_REQUEST {
        return Err(SyncError::BadRequest("too many wanted ids"));
    }
    let mut queries = Vec::with_capacity(request.ranges.len());
    let mut lo = ItemKey::MIN;
    for range in &request.ranges {
        let hi = range.upper.resolve(lo.created_at)?;
        if hi <= lo {
            return Err(SyncError::BadRequest("ranges out of order"));
        }
        let mode = match &range.mode {
            QueryMode::Skip => None,
            QueryMode::Sum(acc) => Some(Mode::Sum(acc)),
            QueryMode::Have(have) if have.len() <= MAX_HAVE_IDS => Some(Mode::Have(have)),
            QueryMode::Have(_) => return Err(SyncError::BadRequest("id list too long")),
        };
        if let Some(mode) = mode {
            queries.push(Query { lo, hi, mode });
        }
        lo = hi;
    }
    let wants = decode_shorts(&request.want, 0)?;
    Ok((queries, wants))
}

/// One response being built, with what is left of its budgets.
struct Responder<'a> {
    set: &'a dyn SyncSet,
    source: &'a dyn ItemSource,
    items: Vec<Vec<u8>>,
    items_left: usize,
    bytes_left: usize,
    summaries_left: usize,
}

impl Responder<'_> {
    /// Whether `n` more items of any valid size surely fit: then a page
    /// always makes progress, and oversized items are never sent.
    fn room_for(&self, n: usize) -> bool {
        self.items_left >= n && self.bytes_left >= MAX_MESSAGE_BYTES.saturating_mul(n)
    }

    /// Adds an item if it is of valid size and fits; false if it did not.
    fn push_item(&mut self, item: Vec<u8>) -> bool {
        if item.len() > MAX_MESSAGE_BYTES || item.len() > self.bytes_left || self.items_left == 0 {
            return false;
        }
        self.bytes_left -= item.len();
        self.items_left -= 1;
        self.items.push(item);
        true
    }

    fn serve_want(&mut self, want: &ShortId) -> bool {
        if !self.room_for(MAX_ITEMS_PER_WANT) {
            return false;
        }
        let (lo, hi) = short_range(want);
        let keys = keys_up_to(self.set, &lo, &hi, MAX_ITEMS_PER_WANT);
        if !keys.is_empty() {
            for item in self
                .source
                .items_by_keys(&keys)
                .into_iter()
                .take(keys.len())
            {
                self.push_item(item);
            }
        }
        true
    }

    /// Answers "here is my accumulator of `[lo, hi)`". None: out of budget,
    /// leave this range (and all after it) to the next request.
    fn serve_sum(
        &mut self,
        lo: &ItemKey,
        hi: &ItemKey,
        theirs: &Accumulator,
    ) -> Option<RangeReply> {
        let mine = self.set.accumulate_in(lo, hi);
        if mine == *theirs {
            return Some(RangeReply::Match);
        }
        if theirs.count().checked_add(1) == Some(mine.count()) {
            // Perhaps they lack exactly one of ours: the sums say which.
            if !self.room_for(1) {
                return None;
            }
            if let Some(key) = find_id(self.set, lo, hi, &mine.difference(theirs)) {
                let item = self.source.items_by_keys(&[key]).into_iter().next();
                if item.is_some_and(|item| self.push_item(item)) {
                    return Some(RangeReply::Items {
                        count: 1,
                        next: None,
                        remaining: 0,
                    });
                }
            }
        }
        self.split(lo, hi, &mine, theirs)
    }

    fn split(
        &mut self,
        lo: &ItemKey,
        hi: &ItemKey,
        mine: &Accumulator,
        theirs: &Accumulator,
    ) -> Option<RangeReply> {
        let n = mine.count();
        if n == 0 {
            if self.summaries_left == 0 {
                return None;
            }
            self.summaries_left -= 1;
            return Some(RangeReply::Split {
                first: Summary::Empty,
                rest: Vec::new(),
            });
        }
        let branching = if mine.count().checked_add(1) == Some(theirs.count()) {
            // They hold one item more: most likely that is the only
            // difference. Our accumulator alone lets them check it.
            1
        } else if *lo == ItemKey::MIN && *hi == ItemKey::MAX {
            FIRST_SPLIT
        } else {
            SPLIT
        };
        let per_ids = MAX_IDS_PER_SUMMARY as u64;
        let parts = usize::try_from(n.div_ceil(per_ids))
            .unwrap_or(usize::MAX)
            .clamp(1, branching);
        if parts.saturating_mul(1 + MAX_IDS_PER_SUMMARY) > self.summaries_left {
            return None;
        }
        // Close counts mean few differences: send accumulators so that the
        // initiator can decode them; otherwise the cheaper fingerprints.
        let use_sums = n.abs_diff(theirs.count()) <= parts as u64;
        let cut = |i: usize| (i as u128 * u128::from(n) / parts as u128) as u64;

        let mut subs = vec![Sub::new(*lo)];
        let mut pos = 0u64;
        let mut next_cut = 1usize;
        let mut prev: Option<ItemKey> = None;
        self.set.for_each_in(lo, hi, &mut |k| {
            if next_cut < parts && pos >= cut(next_cut) {
                next_cut += 1;
                if let (Some(p), Some(last)) = (prev, subs.last()) {
                    let bound = separating(&p, k);
                    if let Some(wire) = Bound::encode(&bound, last.lower.created_at) {
                        subs.push(Sub::new(bound));
                        if let Some(s) = subs.last_mut() {
                            s.bound = Some(wire);
                        }
                    }
                }
            }
            if let Some(s) = subs.last_mut() {
                s.acc.add(&k.id);
                if s.ids.len() <= MAX_IDS_PER_SUMMARY {
                    s.ids.push(short_id(k));
                }
            }
            prev = Some(*k);
            pos += 1;
            true
        });

        let mut used = 0usize;
        let mut summaries = subs.into_iter().map(|s| {
            used += 1;
            let summary = if s.acc.count() == 0 {
                Summary::Empty
            } else if s.acc.count() <= per_ids {
                match encode_shorts(&s.ids, s.lower.created_at) {
                    Some(list) => {
                        used += list.len();
                        Summary::Ids(list)
                    }
                    None => Summary::Sum(s.acc),
                }
            } else if use_sums {
                Summary::Sum(s.acc)
            } else {
                Summary::Fingerprint(s.acc.fingerprint())
            };
            (s.bound, summary)
        });
        let first = summaries.next().map_or(Summary::Empty, |(_, s)| s);
        let rest = summaries
            .filter_map(|(bound, summary)| bound.map(|b| (b, summary)))
            .collect();
        self.summaries_left = self.summaries_left.saturating_sub(used);
        Some(RangeReply::Split { first, rest })
    }

    /// Answers "these are my items in `[lo, hi)`": sends the others, one
    /// page at most.
    fn serve_have(&mut self, lo: &ItemKey, hi: &ItemKey, have: &[[u8; 8]]) -> Option<RangeReply> {
        if !self.room_for(1) {
            return None;
        }
        let before = self.items.len();
        let (last, cut) = if have.is_empty() {
            self.stream(lo, hi)
        } else {
            self.send_missing(lo, hi, have)
        };
        let count = u32::try_from(self.items.len() - before).unwrap_or(u32::MAX);
        let next = match (last, cut) {
            (Some(last), Some(cut)) => Some(separating(&last, &cut)),
            // Nothing visited but something left: no progress possible here.
            (None, Some(_)) => return None,
            _ => None,
        };
        let (next, remaining) =
            match next.and_then(|n| Bound::encode(&n, lo.created_at).map(|b| (n, b))) {
                Some((key, bound)) => {
                    let left = count_up_to(self.set, &key, hi, MAX_REMAINING_COUNTED)
                        .saturating_sub(have.len() as u64);
                    (Some(bound), left)
                }
                None => (None, 0),
            };
        Some(RangeReply::Items {
            count,
            next,
            remaining,
        })
    }

    /// Sends the items of `[lo, hi)` in key order within the budget.
    /// Returns the last key dealt with and the first key left over.
    fn stream(&mut self, lo: &ItemKey, hi: &ItemKey) -> (Option<ItemKey>, Option<ItemKey>) {
        let page = self
            .source
            .items_in(lo, hi, self.items_left, self.bytes_left);
        let mut last: Option<ItemKey> = None;
        for (key, item) in page {
            // Trust the store, but never let a bad page break the order.
            if key < *lo || key >= *hi || last.is_some_and(|l| key <= l) {
                break;
            }
            if item.len() <= MAX_MESSAGE_BYTES && !self.push_item(item) {
                return (last, Some(key));
            }
            last = Some(key);
        }
        let from = match &last {
            Some(l) => successor(l),
            None => Some(*lo),
        };
        let mut cut = from.and_then(|f| first_in(self.set, &f, hi));
        if last.is_none() {
            // The store gave nothing although the set has a key: skip that
            // key (its item is gone or unusable) rather than stall.
            if let Some(k) = cut {
                last = Some(k);
                cut = successor(&k).and_then(|f| first_in(self.set, &f, hi));
            }
        }
        (last, cut)
    }

    /// Sends the items of `[lo, hi)` whose prefixes are not in `have`.
    /// Returns the last key dealt with and the first missing key left over.
    fn send_missing(
        &mut self,
        lo: &ItemKey,
        hi: &ItemKey,
        have: &[[u8; 8]],
    ) -> (Option<ItemKey>, Option<ItemKey>) {
        let have: BTreeSet<[u8; 8]> = have.iter().copied().collect();
        let cap = self.items_left;
        let mut missing = Vec::new();
        let mut cut = None;
        self.set.for_each_in(lo, hi, &mut |k| {
            if have.contains(&id_prefix(&k.id)) {
                return true;
            }
            if missing.len() < cap {
                missing.push(*k);
                true
            } else {
                cut = Some(*k);
                false
            }
        });
        let mut last = None;
        for key in missing {
            let item = self.source.items_by_keys(&[key]).into_iter().next();
            if let Some(item) = item {
                if item.len() <= MAX_MESSAGE_BYTES && !self.push_item(item) {
                    return (last, Some(key));
                }
            }
            last = Some(key);
        }
        (last, cut)
    }
}

/// A sub-range being summarised.
struct Sub {
    lower: ItemKey,
    bound: Option<Bound>,
    acc: Accumulator,
    ids: Vec<ShortId>,
}

impl Sub {
    fn new(lower: ItemKey) -> Self {
        Sub {
            lower,
            bound: None,
            acc: Accumulator::EMPTY,
            ids: Vec::new(),
        }
    }
}
