//! Range-based set reconciliation for history sync.
//!
//! Two nodes each hold a set of items ordered by [`ItemKey`] (creation time,
//! then id). They find what one has and the other lacks by exchanging
//! fingerprints of ranges, recursing only into ranges that differ. Pure: the
//! node drives it over libp2p request-response and supplies the items.

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
