//! The moderation fold (placeholder, filled in below).

/// Who moderates and what is blocked, hidden and pinned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModerationState {}
