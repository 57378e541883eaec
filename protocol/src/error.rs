//! Why a signed thing was refused. One enum for every rejection rule, so the
//! node can map each to a gossip verdict and a person can read the reason.

use crate::wire::WireError;

/// A reason a message was refused. Each variant names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The bytes did not decode as a message of this protocol.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The signature does not match the signer's key and the signed content.
    #[error("bad signature: the content was changed or was not signed by {0}")]
    BadSignature(String),
    /// The item belongs to another community and must not be replayed here.
    #[error("wrong community: the item belongs to community {found}, not {expected}")]
    WrongCommunity {
        /// The community this node belongs to.
        expected: String,
        /// The community named in the item.
        found: String,
    },
    /// The item claims a time too far ahead of this node's clock.
    #[error("time too far in the future: created {ahead_ms} ms ahead of this node's clock (limit {limit_ms} ms)")]
    FromTheFuture {
        /// How far ahead of `now` the item claims to be.
        ahead_ms: u64,
        /// The allowed skew.
        limit_ms: u64,
    },
    /// A text field is larger than its limit.
    #[error("too large: {field} is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Which field.
        field: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A topic name breaks the naming rule.
    #[error(transparent)]
    BadTopic(#[from] crate::topic::TopicError),
    /// A number outside the range its rule allows (an invitation's uses,
    /// a probation's length).
    #[error("out of range: {field} is {value}, it must be from {min} to {max}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The least allowed.
        min: u64,
        /// The most allowed.
        max: u64,
    },
    /// A text field that must not be empty is empty.
    #[error("empty: {0} must not be empty")]
    Empty(&'static str),
    /// A key succession that names its own signer as the new key.
    #[error("a key cannot succeed itself: the new key of a succession must differ from the old")]
    SelfSuccession,
    /// A report carries no sealed copy for any reader.
    #[error("report has no recipients")]
    NoRecipients,
    /// A report without enough proof of work: a flood, or a client that
    /// does not seal reports as this version does.
    #[error("not enough work: a report needs a proof of work of {required} leading zero bits, this one has {bits}; seal it with an up-to-date mutual")]
    NotEnoughWork {
        /// Leading zero bits of the report's work hash.
        bits: u32,
        /// [`crate::report::REPORT_WORK_BITS`].
        required: u32,
    },
}
