//! Why a sync session was abandoned.

use super::{MAX_DEPTH, MAX_PENDING, MAX_ROUNDS};

/// Why the initiator abandoned a session (or, inside the responder, why a
/// request was refused). Every variant is a peer that is broken, hostile or
/// unwilling; the node ends the session and may try another peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The peer does not serve this scope (e.g. a topic it never joined).
    #[error("the peer does not sync this scope")]
    Refused,
    /// The peer found our request malformed: a version mismatch or a bug.
    #[error("the peer rejected our sync request as malformed")]
    RequestRejected,
    /// A response arrived while no request was outstanding.
    #[error("a sync response arrived but no request is outstanding")]
    NotOutstanding,
    /// The response answers another request than the outstanding one.
    #[error("the sync response answers round {got}, but round {expected} is outstanding")]
    WrongRound {
        /// Round of the outstanding request.
        expected: u32,
        /// Round the response names.
        got: u32,
    },
    /// The response answers more ranges or wanted ids than were asked.
    #[error("the sync response answers {replies} ranges and {wants} wants; we asked {asked} and {asked_wants}")]
    TooManyReplies {
        /// Range replies in the response.
        replies: usize,
        /// Wanted ids the response claims to have served.
        wants: usize,
        /// Ranges we asked about.
        asked: usize,
        /// Ids we wanted.
        asked_wants: usize,
    },
    /// A reply does not fit the range it answers.
    #[error("sync reply {index} does not fit its range: {why}")]
    BadReply {
        /// Position of the reply.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// A range bound is malformed, out of order or outside its range.
    #[error("malformed sync range bound: {0}")]
    BadBound(&'static str),
    /// More items than a response may carry, or than the replies account
    /// for.
    #[error("the sync response carries {got} items, more than the {limit} it may")]
    TooManyItems {
        /// Items in the response.
        got: usize,
        /// What it may carry.
        limit: usize,
    },
    /// An item larger than any valid item.
    #[error("a synced item of {size} bytes exceeds the {limit}-byte limit")]
    ItemTooLarge {
        /// Its size.
        size: usize,
        /// The largest valid item.
        limit: usize,
    },
    /// The response answered nothing although something was asked.
    #[error("the sync response made no progress")]
    NoProgress,
    /// The session went on for more than [`MAX_ROUNDS`] round trips.
    #[error("the sync session exceeded {MAX_ROUNDS} round trips")]
    TooManyRounds,
    /// The peer split ranges more finely than any honest peer could.
    #[error("the peer split ranges more than {MAX_DEPTH} levels deep")]
    TooDeep,
    /// The peer's splits left more than [`MAX_PENDING`] ranges to ask about.
    #[error("the peer's answers left more than {MAX_PENDING} ranges pending")]
    TooMuchWork,
    /// A request broke a rule (seen by the responder).
    #[error("malformed sync request: {0}")]
    BadRequest(&'static str),
}
