//! The pure heart of mutual: every type that is signed, sent or stored, its
//! encoding, its signatures and its validation, the moderation fold and the
//! sync reconciliation state machine.
//!
//! This crate does no I/O, spawns nothing and reads no clock: time is always
//! passed in (`now_ms`), so every rule can be tested exhaustively and
//! simulated. See `ARCHITECTURE.md` at the repository root.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod community;
pub mod directory;
pub mod display;
pub mod error;
pub mod ids;
pub mod invite;
pub mod keys;
pub mod lineage;
pub mod membership;
pub mod message;
pub mod moderation;
pub mod post;
pub mod probation;
pub mod report;
pub mod retraction;
pub mod secret;
pub mod sigcheck;
pub mod signed;
pub mod state;
pub mod sync;
pub mod topic;
pub mod wire;

pub use community::{CommunityManifest, SignedManifest};
pub use error::ValidationError;
pub use ids::{ActionId, CommunityId, PostId};
pub use invite::{Invite, InviteError, SignedInvite};
pub use keys::{Identity, PublicKey, SecretKey, Signature};
pub use message::{Message, ValidationContext, VerifiedMessage};
pub use moderation::{
    Admission, CommunityPolicy, ModAction, ModActionKind, Scope, SignedModAction, VerifiedModAction,
};
pub use post::{Post, SignedPost, VerifiedPost};
pub use report::{OpenedReport, ReportBody, ReportContent, SealedReport};
pub use retraction::{Retraction, SignedRetraction, VerifiedRetraction};
pub use secret::CommunitySecret;
pub use signed::{Signable, Signed, Verified};
pub use state::ModerationState;
pub use topic::TopicName;

/// Largest post body in bytes: long enough for a heartfelt message, short
/// enough that one post can never clog a gossip mesh.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Largest content warning in bytes: a warning is a short label, not a text.
pub const MAX_CONTENT_WARNING_BYTES: usize = 200;
/// Largest pseudonym in bytes.
pub const MAX_PSEUDONYM_BYTES: usize = 64;
/// Largest reason attached to a moderation action or report.
pub const MAX_REASON_BYTES: usize = 1024;
/// Largest community name in bytes.
pub const MAX_COMMUNITY_NAME_BYTES: usize = 128;
/// Largest rules / welcome text of a community in bytes.
pub const MAX_RULES_BYTES: usize = 16 * 1024;
/// How far in the future a signed item's time may be before it is rejected:
/// clocks drift, but an item from next week is a replay trap.
pub const MAX_FUTURE_SKEW_MS: u64 = 5 * 60 * 1000;
