//! The initiator: drives one session, learning what the responder holds
//! that it lacks and receiving those items.

use std::collections::{BTreeMap, BTreeSet};

use super::accumulator::{Accumulator, Fingerprint};
use super::error::SyncError;
use super::keys::{find_id, has_short, id_prefix, keys_up_to, separating, ShortId};
use super::message::{
    decode_shorts, encode_shorts, Bound, QueryMode, RangeQuery, RangeReply, ResponseStatus,
    Summary, SyncRequest, SyncResponse,
};
use super::{
    ItemKey, SyncScope, SyncSet, FIRST_SPLIT, MAX_DEPTH, MAX_HAVE_IDS, MAX_IDS_PER_SUMMARY,
    MAX_ITEMS_PER_RESPONSE, MAX_ITEMS_PER_WANT, MAX_PENDING, MAX_RANGES_PER_REQUEST, MAX_ROUNDS,
    MAX_WANTS_PER_REQUEST, SPLIT,
};
use crate::wire::MAX_MESSAGE_BYTES;

/// What the node does after a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this request to the same peer.
    Continue(SyncRequest),
    /// Nothing the responder holds is missing here any more (as far as the
    /// items received are accepted).
    Done,
}

/// How far a session got: for status displays and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Responses handled so far.
    pub round_trips: u32,
    /// Items known to be missing and not yet received: wanted ids, plus
    /// what the responder said remains in ranges being streamed, plus the
    /// count differences of ranges still being narrowed. A lower bound
    /// that rises as differences are found.
    pub missing: u64,
    /// Items received so far (before validation by the node).
    pub received: u64,
    /// Bytes of the items received so far.
    pub received_bytes: u64,
    /// Ranges still to ask about or awaiting an answer.
    pub pending_ranges: u64,
}

/// How to ask about a range.
#[derive(Clone, Debug)]
enum Plan {
    /// With our accumulator or ids, computed when sent.
    Ask,
    /// Split by us into parts, each asked about: the responder's summary
    /// shows more than one difference, which it could not decode.
    Split,
    /// This exact query again: it was sent but not reached, and computing
    /// it again would cost a pass over the range.
    Ready(QueryMode),
}

/// A range still in question.
#[derive(Clone, Debug)]
struct Task {
    hi: ItemKey,
    /// Items it is expected to bring (a lower bound, for progress).
    expected: u64,
    /// Nesting below the whole key space.
    depth: u8,
    plan: Plan,
}

/// A range asked about in the outstanding request.
#[derive(Clone, Debug)]
struct Sent {
    lo: ItemKey,
    hi: ItemKey,
    mode: QueryMode,
    expected: u64,
    depth: u8,
}

impl Sent {
    fn is_have(&self) -> bool {
        matches!(self.mode, QueryMode::Have(_))
    }
}

#[derive(Debug)]
struct Outstanding {
    round: u32,
    queries: Vec<Sent>,
    wants: Vec<ShortId>,
}

/// A sub-range of a split, with the responder's summary and ours.
struct SubRange {
    lo: ItemKey,
    hi: ItemKey,
    theirs: Theirs,
    ours: Accumulator,
}

enum Theirs {
    Empty,
    Fingerprint(Fingerprint),
    Sum(Accumulator),
    Ids(Vec<ShortId>),
}

/// What a validated reply asks us to do.
enum Effect {
    Settled,
    ContinueFrom(ItemKey, u64),
    Split(Vec<SubRange>),
}

/// The initiator's side of one session over one scope. Holds the ranges
/// still in question (bounds, not items) and the request in flight; the
/// set itself is read through [`SyncSet`] at each step, so items stored
/// meanwhile (from sync or gossip) are taken into account.
#[derive(Debug)]
pub struct Initiator {
    scope: SyncScope,
    tasks: BTreeMap<ItemKey, Task>,
    wants: BTreeSet<ShortId>,
    outstanding: Option<Outstanding>,
    items: Vec<Vec<u8>>,
    progress: Progress,
    next_round: u32,
}

impl Initiator {
    /// Starts a session over `scope`: returns the machine and the first
    /// request (the summary of the whole set, or its ids if it is small).
    pub fn new(scope: SyncScope, set: &dyn SyncSet) -> (Initiator, SyncRequest) {
        let mut tasks = BTreeMap::new();
        tasks.insert(
            ItemKey::MIN,
            Task {
                hi: ItemKey::MAX,
                expected: 0,
                depth: 0,
                plan: Plan::Ask,
            },
        );
        let mut me = Initiator {
            scope,
            tasks,
            wants: BTreeSet::new(),
            outstanding: None,
            items: Vec::new(),
            progress: Progress::default(),
            next_round: 0,
        };
        let request = me.build_request(set);
        (me, request)
    }

    /// The scope of this session.
    pub fn scope(&self) -> &SyncScope {
        &self.scope
    }

    /// Progress so far.
    pub fn progress(&self) -> Progress {
        let mut p = self.progress;
        let mut missing = self.wants.len() as u64;
        let mut pending = self.tasks.len() as u64;
        for t in self.tasks.values() {
            missing = missing.saturating_add(t.expected);
        }
        if let Some(out) = &self.outstanding {
            missing = missing.saturating_add(out.wants.len() as u64);
            pending = pending.saturating_add(out.queries.len() as u64);
            for s in &out.queries {
                missing = missing.saturating_add(s.expected);
            }
        }
        p.missing = missing;
        p.pending_ranges = pending;
        p
    }

    /// The items received since the last call, for the node to validate
    /// and store through its arrival path. Nothing here assumes they were
    /// accepted: a refused item is simply asked for again next session.
    pub fn take_items(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.items)
    }

    /// Handles the response to the outstanding request: checks it fits
    /// that request, keeps its items for [`Initiator::take_items`], and
    /// returns the next request or [`Step::Done`]. After an error the
    /// session is over (further calls fail with
    /// [`SyncError::NotOutstanding`]).
    pub fn on_response(
        &mut self,
        response: SyncResponse,
        set: &dyn SyncSet,
    ) -> Result<Step, SyncError> {
        let out = self.outstanding.take().ok_or(SyncError::NotOutstanding)?;
        self.progress.round_trips = self.progress.round_trips.saturating_add(1);
        let effects = check(&out, &response)?;

        self.progress.received = self
            .progress
            .received
            .saturating_add(response.items.len() as u64);
        for item in &response.items {
            self.progress.received_bytes = self
                .progress
                .received_bytes
                .saturating_add(item.len() as u64);
        }
        self.items.extend(response.items);

        let answered = effects.len();
        let wants_done = usize::try_from(response.wants_done).unwrap_or(usize::MAX);
        // Not reached by the responder: ask again.
        for sent in out.queries.iter().skip(answered) {
            self.tasks.insert(
                sent.lo,
                Task {
                    hi: sent.hi,
                    expected: sent.expected,
                    depth: sent.depth,
                    plan: Plan::Ready(sent.mode.clone()),
                },
            );
        }
        self.wants
            .extend(out.wants.iter().skip(wants_done).copied());
        for (effect, sent) in effects.into_iter().zip(out.queries.iter()) {
            match effect {
                Effect::Settled => {}
                Effect::ContinueFrom(next, remaining) => {
                    self.tasks.insert(
                        next,
                        Task {
                            hi: sent.hi,
                            expected: remaining,
                            depth: sent.depth,
                            plan: Plan::Ask,
                        },
                    );
                }
                Effect::Split(subs) => self.compare(subs, sent.depth, set)?,
            }
            if self.tasks.len().saturating_add(self.wants.len()) > MAX_PENDING {
                return Err(SyncError::TooMuchWork);
            }
        }

        if self.tasks.is_empty() && self.wants.is_empty() {
            return Ok(Step::Done);
        }
        if self.next_round >= MAX_ROUNDS {
            return Err(SyncError::TooManyRounds);
        }
        Ok(Step::Continue(self.build_request(set)))
    }

    /// Compares the responder's sub-ranges with ours and keeps those that
    /// still differ (or the ids we lack).
    fn compare(
        &mut self,
        mut subs: Vec<SubRange>,
        depth: u8,
        set: &dyn SyncSet,
    ) -> Result<(), SyncError> {
        let (Some(lo), Some(hi)) = (subs.first().map(|s| s.lo), subs.last().map(|s| s.hi)) else {
            return Ok(());
        };
        // One pass over our keys of the whole range.
        let mut idx = 0usize;
        set.for_each_in(&lo, &hi, &mut |k| {
            while subs.get(idx + 1).is_some_and(|next| *k >= next.lo) {
                idx += 1;
            }
            if let Some(s) = subs.get_mut(idx) {
                s.ours.add(&k.id);
            }
            true
        });
        for sub in subs {
            let ours = sub.ours;
            let follow_up = match sub.theirs {
                Theirs::Empty => None,
                Theirs::Ids(list) => {
                    for short in list {
                        if !has_short(set, &short) {
                            self.wants.insert(short);
                        }
                    }
                    None
                }
                Theirs::Fingerprint(fp) => (ours.fingerprint() != fp).then_some((0, Plan::Ask)),
                Theirs::Sum(theirs) => {
                    if ours == theirs {
                        None
                    } else if ours.count().checked_sub(1) == Some(theirs.count())
                        && find_id(set, &sub.lo, &sub.hi, &ours.difference(&theirs)).is_some()
                    {
                        // They lack exactly one of ours; we lack nothing.
                        None
                    } else if theirs.count().checked_sub(1) == Some(ours.count()) {
                        // Probably one item we lack: they can decode it.
                        Some((1, Plan::Ask))
                    } else {
                        // Several differences: split it ourselves, so they
                        // can decode each part in the same round trip.
                        Some((theirs.count().saturating_sub(ours.count()), Plan::Split))
                    }
                }
            };
            if let Some((expected, plan)) = follow_up {
                let depth = depth
                    .checked_add(1)
                    .filter(|d| *d <= MAX_DEPTH)
                    .ok_or(SyncError::TooDeep)?;
                self.tasks.insert(
                    sub.lo,
                    Task {
                        hi: sub.hi,
                        expected,
                        depth,
                        plan,
                    },
                );
            }
        }
        Ok(())
    }

    /// Builds the next request from the pending ranges (in key order, as
    /// many as a request may hold) and wanted ids, and records it as
    /// outstanding.
    fn build_request(&mut self, set: &dyn SyncSet) -> SyncRequest {
        let round = self.next_round;
        self.next_round = self.next_round.saturating_add(1);
        let mut ranges = Vec::new();
        let mut queries = Vec::new();
        let mut prev = ItemKey::MIN;
        // Room for a gap and a split task's parts.
        while ranges.len() + 1 + SPLIT <= MAX_RANGES_PER_REQUEST {
            let Some((lo, task)) = self.tasks.pop_first() else {
                break;
            };
            // Tasks never overlap; a bound that cannot be written (a time
            // of u64::MAX) is dropped: no valid item lives there.
            if lo < prev || task.hi <= lo {
                continue;
            }
            let gap = if lo > prev {
                match Bound::encode(&lo, prev.created_at) {
                    Some(b) => Some(b),
                    None => continue,
                }
            } else {
                None
            };
            let parts = parts(set, lo, &task);
            let uppers: Option<Vec<Bound>> = parts
                .iter()
                .map(|p| Bound::encode(&p.hi, p.lo.created_at))
                .collect();
            let Some(uppers) = uppers else {
                continue;
            };
            if let Some(upper) = gap {
                ranges.push(RangeQuery {
                    upper,
                    mode: QueryMode::Skip,
                });
            }
            for (upper, part) in uppers.into_iter().zip(parts) {
                ranges.push(RangeQuery {
                    upper,
                    mode: part.mode.clone(),
                });
                queries.push(part);
            }
            prev = task.hi;
        }
        let mut wants = Vec::new();
        while wants.len() < MAX_WANTS_PER_REQUEST {
            match self.wants.pop_first() {
                Some(w) => wants.push(w),
                None => break,
            }
        }
        // Ascending (popped from a sorted set), so delta-coding succeeds.
        let want = encode_shorts(&wants, 0).unwrap_or_default();
        self.outstanding = Some(Outstanding {
            round,
            queries,
            wants,
        });
        SyncRequest {
            scope: self.scope.clone(),
            round,
            ranges,
            want,
        }
    }
}

/// What to send for `[lo, task.hi)`: one query, or our own split's parts.
fn parts(set: &dyn SyncSet, lo: ItemKey, task: &Task) -> Vec<Sent> {
    let one = |mode| {
        vec![Sent {
            lo,
            hi: task.hi,
            mode,
            expected: task.expected,
            depth: task.depth,
        }]
    };
    let mine = || keys_up_to(set, &lo, &task.hi, MAX_HAVE_IDS + 1);
    match &task.plan {
        Plan::Ready(mode) => one(mode.clone()),
        Plan::Split if task.depth < MAX_DEPTH => {
            let mine = mine();
            if mine.len() <= MAX_HAVE_IDS {
                one(have(&mine))
            } else {
                split_own(set, lo, task)
            }
        }
        Plan::Ask | Plan::Split => {
            let mine = mine();
            if mine.len() <= MAX_HAVE_IDS {
                one(have(&mine))
            } else {
                one(QueryMode::Sum(set.accumulate_in(&lo, &task.hi)))
            }
        }
    }
}

fn have(keys: &[ItemKey]) -> QueryMode {
    QueryMode::Have(keys.iter().map(|k| id_prefix(&k.id)).collect())
}

/// Splits `[lo, task.hi)` into [`SPLIT`] parts of about equal count on our
/// side: a part of a few items goes as its ids, the others as their
/// accumulators.
fn split_own(set: &dyn SyncSet, lo: ItemKey, task: &Task) -> Vec<Sent> {
    struct Part {
        lo: ItemKey,
        acc: Accumulator,
        keys: Vec<ItemKey>,
    }
    let n = set.count_in(&lo, &task.hi);
    let parts = (SPLIT as u64).clamp(1, n.max(1));
    let cut = |i: u64| (u128::from(i) * u128::from(n) / u128::from(parts)) as u64;
    let mut out = vec![Part {
        lo,
        acc: Accumulator::EMPTY,
        keys: Vec::new(),
    }];
    let mut pos = 0u64;
    let mut next_cut = 1u64;
    let mut prev: Option<ItemKey> = None;
    set.for_each_in(&lo, &task.hi, &mut |k| {
        if next_cut < parts && pos >= cut(next_cut) {
            next_cut += 1;
            if let (Some(p), Some(last)) = (prev, out.last()) {
                let bound = separating(&p, k);
                if Bound::encode(&bound, last.lo.created_at).is_some() {
                    out.push(Part {
                        lo: bound,
                        acc: Accumulator::EMPTY,
                        keys: Vec::new(),
                    });
                }
            }
        }
        if let Some(part) = out.last_mut() {
            part.acc.add(&k.id);
            if part.keys.len() <= MAX_IDS_PER_SUMMARY {
                part.keys.push(*k);
            }
        }
        prev = Some(*k);
        pos += 1;
        true
    });
    let uppers: Vec<ItemKey> = out
        .iter()
        .skip(1)
        .map(|p| p.lo)
        .chain(std::iter::once(task.hi))
        .collect();
    let depth = task.depth.saturating_add(1);
    out.into_iter()
        .zip(uppers)
        .enumerate()
        .map(|(i, (part, hi))| Sent {
            lo: part.lo,
            hi,
            mode: if part.acc.count() <= MAX_IDS_PER_SUMMARY as u64 {
                have(&part.keys)
            } else {
                QueryMode::Sum(part.acc)
            },
            expected: if i == 0 { task.expected } else { 0 },
            depth,
        })
        .collect()
}

/// Checks that `response` answers `out` and turns each reply into what it
/// asks us to do, changing nothing yet.
fn check(out: &Outstanding, response: &SyncResponse) -> Result<Vec<Effect>, SyncError> {
    match response.status {
        ResponseStatus::Ok => {}
        ResponseStatus::Refused => return Err(SyncError::Refused),
        ResponseStatus::BadRequest => return Err(SyncError::RequestRejected),
    }
    if response.round != out.round {
        return Err(SyncError::WrongRound {
            expected: out.round,
            got: response.round,
        });
    }
    let wants_done = usize::try_from(response.wants_done).unwrap_or(usize::MAX);
    if response.replies.len() > out.queries.len() || wants_done > out.wants.len() {
        return Err(SyncError::TooManyReplies {
            replies: response.replies.len(),
            wants: wants_done,
            asked: out.queries.len(),
            asked_wants: out.wants.len(),
        });
    }
    if response.replies.is_empty()
        && wants_done == 0
        && !(out.queries.is_empty() && out.wants.is_empty())
    {
        return Err(SyncError::NoProgress);
    }
    if response.items.len() > MAX_ITEMS_PER_RESPONSE {
        return Err(SyncError::TooManyItems {
            got: response.items.len(),
            limit: MAX_ITEMS_PER_RESPONSE,
        });
    }
    if let Some(big) = response.items.iter().find(|i| i.len() > MAX_MESSAGE_BYTES) {
        return Err(SyncError::ItemTooLarge {
            size: big.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    let mut effects = Vec::with_capacity(response.replies.len());
    let mut reply_items = 0usize;
    for (index, (reply, sent)) in response.replies.iter().zip(out.queries.iter()).enumerate() {
        let bad = |why| SyncError::BadReply { index, why };
        let effect = match (reply, sent.is_have()) {
            (RangeReply::Match, false) => Effect::Settled,
            (
                RangeReply::Items {
                    count: 1,
                    next: None,
                    ..
                },
                false,
            ) => {
                reply_items += 1;
                Effect::Settled
            }
            (RangeReply::Split { first, rest }, false) => {
                Effect::Split(parse_split(sent, first, rest).map_err(bad)?)
            }
            (
                RangeReply::Items {
                    count,
                    next,
                    remaining,
                },
                true,
            ) => {
                reply_items =
                    reply_items.saturating_add(usize::try_from(*count).unwrap_or(usize::MAX));
                match next {
                    None => Effect::Settled,
                    Some(bound) => {
                        let next = bound.resolve(sent.lo.created_at)?;
                        if next <= sent.lo || next >= sent.hi {
                            return Err(bad("the continuation is outside the range"));
                        }
                        Effect::ContinueFrom(next, *remaining)
                    }
                }
            }
            (_, true) => return Err(bad("a list of ids must be answered with items")),
            (RangeReply::Items { .. }, false) => {
                return Err(bad(
                    "a summary can only be answered with the one item it lacks",
                ))
            }
        };
        effects.push(effect);
    }
    let want_items =
        response
            .items
            .len()
            .checked_sub(reply_items)
            .ok_or(SyncError::TooManyItems {
                got: reply_items,
                limit: response.items.len(),
            })?;
    let want_limit = wants_done.saturating_mul(MAX_ITEMS_PER_WANT);
    if want_items > want_limit {
        return Err(SyncError::TooManyItems {
            got: want_items,
            limit: want_limit,
        });
    }
    Ok(effects)
}

/// Checks a split of `sent` and resolves its bounds and id lists.
fn parse_split(
    sent: &Sent,
    first: &Summary,
    rest: &[(Bound, Summary)],
) -> Result<Vec<SubRange>, &'static str> {
    if rest.len() >= FIRST_SPLIT {
        return Err("split into too many sub-ranges");
    }
    let mut lowers = Vec::with_capacity(rest.len() + 1);
    lowers.push((sent.lo, first));
    let mut prev = sent.lo;
    for (bound, summary) in rest {
        let key = bound
            .resolve(prev.created_at)
            .map_err(|_| "malformed sub-range bound")?;
        if key <= prev || key >= sent.hi {
            return Err("sub-range bounds out of order or outside the range");
        }
        lowers.push((key, summary));
        prev = key;
    }
    let uppers = lowers
        .iter()
        .skip(1)
        .map(|(k, _)| *k)
        .chain(std::iter::once(sent.hi));
    let mut subs = Vec::with_capacity(lowers.len());
    for ((lo, summary), hi) in lowers.iter().zip(uppers) {
        let theirs = match summary {
            Summary::Empty => Theirs::Empty,
            Summary::Fingerprint(fp) => Theirs::Fingerprint(*fp),
            Summary::Sum(acc) => Theirs::Sum(*acc),
            Summary::Ids(list) => {
                if list.len() > MAX_IDS_PER_SUMMARY {
                    return Err("too many ids in a summary");
                }
                let ids = decode_shorts(list, lo.created_at).map_err(|_| "malformed id list")?;
                if ids.iter().any(|(ts, _)| *ts > hi.created_at) {
                    return Err("a listed id lies outside its sub-range");
                }
                Theirs::Ids(ids)
            }
        };
        subs.push(SubRange {
            lo: *lo,
            hi,
            theirs,
            ours: Accumulator::EMPTY,
        });
    }
    Ok(subs)
}
