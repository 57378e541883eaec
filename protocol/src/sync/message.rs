//! The two sync messages and their compact parts. Bounds are delta-coded
//! (each time relative to the previous bound) and carry only the id bytes
//! that separate two neighbouring items, so a bound usually costs 4 to 6
//! bytes instead of 40.

use serde::{Deserialize, Serialize};

use super::accumulator::{Accumulator, Fingerprint};
use super::error::SyncError;
use super::keys::ShortId;
use super::{ItemKey, SyncScope};

/// The initiator's message: which set, and for each range of keys still in
/// question what it holds there; plus the ids it learnt it lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Which set.
    pub scope: SyncScope,
    /// Number of this request in the session, echoed by the response so a
    /// stale or misdirected response is recognised.
    pub round: u32,
    /// Contiguous ranges from [`ItemKey::MIN`], in ascending order; each
    /// ends at its `upper` bound (exclusive) and starts where the previous
    /// one ended.
    pub ranges: Vec<RangeQuery>,
    /// Items the initiator lacks, by time and id prefix, ascending; times
    /// delta-coded from 0.
    pub want: Vec<ShortKey>,
}

/// One range of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeQuery {
    /// Exclusive upper bound; time relative to the previous range's upper
    /// bound (0 for the first).
    pub upper: Bound,
    /// What the initiator says about the range.
    pub mode: QueryMode,
}

/// What the initiator says about one range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryMode {
    /// A gap: nothing to ask here.
    Skip,
    /// "This is my summary of the range": the responder matches it,
    /// decodes a single missing item, or splits the range.
    Sum(Accumulator),
    /// "These are all my items here" (8-byte id prefixes, at most
    /// [`super::MAX_HAVE_IDS`]): the responder sends its items that are not
    /// listed. Empty: stream every item.
    Have(Vec<[u8; 8]>),
}

/// The responder's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The `round` of the request answered.
    pub round: u32,
    /// Whether the request was served at all.
    pub status: ResponseStatus,
    /// One reply per non-`Skip` range of the request, in order, for a
    /// prefix of them: ranges past the end were not reached (budget) and
    /// are asked again.
    pub replies: Vec<RangeReply>,
    /// How many of the request's wanted ids (a prefix) were served.
    pub wants_done: u32,
    /// Opaque encoded items: first those for the wanted ids, then those of
    /// each reply in reply order.
    pub items: Vec<Vec<u8>>,
}

/// Whether a request was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseStatus {
    /// Served (possibly partly, see [`SyncResponse::replies`]).
    Ok,
    /// The responder does not sync this scope.
    Refused,
    /// The request broke a rule of this protocol.
    BadRequest,
}

/// The responder's answer for one range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeReply {
    /// The summaries are equal: nothing to do (answers `Sum`).
    Match,
    /// The range, cut into sub-ranges of about equal count on the
    /// responder's side, each summarised (answers `Sum`). The first
    /// sub-range starts at the range's lower bound; each later one at its
    /// bound (time relative to the previous sub-range's lower bound); the
    /// last ends at the range's upper bound.
    Split {
        /// Summary of the first sub-range.
        first: Summary,
        /// Lower bound and summary of each later sub-range.
        rest: Vec<(Bound, Summary)>,
    },
    /// Items were sent for this range: `count` of them, in order. Answers
    /// `Have`, or answers `Sum` with the single item the initiator lacked
    /// (`count` 1, no `next`).
    Items {
        /// Items of [`SyncResponse::items`] belonging to this reply.
        count: u32,
        /// Where the page was cut (time relative to the range's lower
        /// bound): ask again for `[next, upper)`. None: the range is done.
        next: Option<Bound>,
        /// About how many items remain in `[next, upper)`, for progress:
        /// counted up to [`crate::sync::MAX_REMAINING_COUNTED`], a lower
        /// bound beyond.
        remaining: u64,
    },
}

/// The responder's summary of one sub-range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Summary {
    /// It holds nothing there.
    Empty,
    /// Its fingerprint (the counts differ much, so decoding will not help).
    Fingerprint(Fingerprint),
    /// Its accumulator, so the initiator can decode a single difference.
    Sum(Accumulator),
    /// Its items there (at most [`super::MAX_IDS_PER_SUMMARY`]), times
    /// relative to the sub-range's lower bound and then to each other.
    Ids(Vec<ShortKey>),
}

/// A range bound: the key `(time, prefix ++ zeros)`. On the wire the time
/// is `0` for the end of the key space ([`ItemKey::MAX`]), otherwise one
/// more than its distance from a base time given by the context; the prefix
/// never ends in a zero byte, so each bound has one encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    /// 0: end of the key space; else the time minus the base, plus one.
    pub ts: u64,
    /// The id's leading bytes (at most 32, no trailing zero).
    pub prefix: Vec<u8>,
}

/// An item named by its time (delta-coded, see where it is used) and the
/// first 8 bytes of its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortKey {
    /// Time minus the previous time of the list (or the list's base).
    pub ts_delta: u64,
    /// The id's first 8 bytes.
    pub prefix: [u8; 8],
}

impl SyncResponse {
    /// The answer of a node that does not sync the request's scope.
    pub fn refused(request: &SyncRequest) -> Self {
        Self::with_status(request, ResponseStatus::Refused)
    }

    pub(crate) fn with_status(request: &SyncRequest, status: ResponseStatus) -> Self {
        SyncResponse {
            round: request.round,
            status,
            replies: Vec::new(),
            wants_done: 0,
            items: Vec::new(),
        }
    }
}

impl Bound {
    /// Encodes `key` relative to `base`; None if `key` is below `base` or
    /// the time cannot be represented (a time of `u64::MAX` from base 0,
    /// which no valid item has).
    pub(crate) fn encode(key: &ItemKey, base: u64) -> Option<Bound> {
        if *key == ItemKey::MAX {
            return Some(Bound {
                ts: 0,
                prefix: Vec::new(),
            });
        }
        let ts = key.created_at.checked_sub(base)?.checked_add(1)?;
        let len = key.id.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        Some(Bound {
            ts,
            prefix: key.id.iter().take(len).copied().collect(),
        })
    }

    /// The key this bound names, relative to `base`.
    pub(crate) fn resolve(&self, base: u64) -> Result<ItemKey, SyncError> {
        if self.ts == 0 {
            return if self.prefix.is_empty() {
                Ok(ItemKey::MAX)
            } else {
                Err(SyncError::BadBound("the end bound has an id prefix"))
            };
        }
        if self.prefix.len() > 32 {
            return Err(SyncError::BadBound("id prefix longer than an id"));
        }
        if self.prefix.last() == Some(&0) {
            return Err(SyncError::BadBound("id prefix ends in a zero byte"));
        }
        let created_at = base
            .checked_add(self.ts - 1)
            .ok_or(SyncError::BadBound("time overflows"))?;
        let mut id = [0u8; 32];
        for (d, s) in id.iter_mut().zip(self.prefix.iter()) {
            *d = *s;
        }
        Ok(ItemKey { created_at, id })
    }
}

/// Delta-codes ascending short ids from `base`; None if one lies below the
/// previous (never for ids taken from a range in key order).
pub(crate) fn encode_shorts<'a>(
    shorts: impl IntoIterator<Item = &'a ShortId>,
    base: u64,
) -> Option<Vec<ShortKey>> {
    let mut prev = base;
    shorts
        .into_iter()
        .map(|(ts, prefix)| {
            let ts_delta = ts.checked_sub(prev)?;
            prev = *ts;
            Some(ShortKey {
                ts_delta,
                prefix: *prefix,
            })
        })
        .collect()
}

/// Undoes [`encode_shorts`].
pub(crate) fn decode_shorts(list: &[ShortKey], base: u64) -> Result<Vec<ShortId>, SyncError> {
    let mut ts = base;
    list.iter()
        .map(|s| {
            ts = ts
                .checked_add(s.ts_delta)
                .ok_or(SyncError::BadBound("id time overflows"))?;
            Ok((ts, s.prefix))
        })
        .collect()
}
