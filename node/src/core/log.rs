//! Reading the stored community log at start-up.

use protocol::{
    CommunityId, Message, ModerationState, PublicKey, SealedReport, SignedManifest,
    VerifiedModAction,
};

use crate::error::NodeError;
use crate::store::Store;

/// What start-up takes from the stored community log, read in one pass.
pub(crate) struct StoredLog {
    /// The fold of every stored moderation action.
    pub(crate) moderation: ModerationState,
    /// The stored reports with a copy sealed to this node's key.
    pub(crate) reports: Vec<SealedReport>,
    /// How many reports the log holds (for the stored-reports bound).
    pub(crate) report_count: usize,
}

/// Reads the stored community log once: folds its moderation actions and
/// keeps the reports sealed to `me`.
///
/// Every item was verified before it was stored (the store is this node's
/// own directory, mode 0700), so signatures are not checked again: that
/// was most of the start-up time with a long log. The checks that need no
/// cryptography (community, field sizes) still run, and the fold applies
/// the moderation rules (who may take which action) again.
pub(crate) fn load_log(
    store: &Store,
    manifest: &SignedManifest,
    community: CommunityId,
    me: &PublicKey,
) -> Result<StoredLog, NodeError> {
    let ctx = protocol::ValidationContext {
        community,
        // Stored items were checked when they arrived; time is not re-judged.
        now_ms: u64::MAX,
    };
    let mut actions: Vec<VerifiedModAction> = Vec::new();
    let mut reports = Vec::new();
    let mut report_count = 0;
    for (_, bytes) in store.log_items()? {
        match Message::decode(&bytes) {
            Ok(Message::Moderation(signed)) => match signed.trusted_from_store(&ctx) {
                Ok(action) => actions.push(action),
                Err(e) => tracing::warn!("skipping a stored moderation action: {e}"),
            },
            Ok(Message::Report(sealed)) => {
                report_count += 1;
                if sealed.copies.iter().any(|c| c.recipient == *me) {
                    reports.push(sealed);
                }
            }
            // Retractions are looked up in their own tree.
            Ok(_) => {}
            Err(e) => tracing::warn!("skipping a stored log item that does not decode: {e}"),
        }
    }
    Ok(StoredLog {
        moderation: ModerationState::fold(community, manifest.content.admin, actions.iter())
            .born_at(manifest.content.created_at),
        reports,
        report_count,
    })
}
