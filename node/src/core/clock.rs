//! This node's own times and sequence numbers: strictly increasing per key
//! and persisted, so two items signed in the same millisecond (or after the
//! system clock stepped back) are still ordered as they were made, and a
//! moderation action is always dated after the one it overrides.

use crate::store::{Store, StoreError};

/// Meta key of the last `created_at` this node signed.
const LAST_SIGNED: &str = "last_signed_at";
/// Meta key of the last moderation `seq` this node signed.
const MOD_SEQ: &str = "moderation_seq";

/// The last time and moderation sequence number this node's key signed.
pub(crate) struct SignerClock {
    last: u64,
    seq: u64,
}

fn read_u64(store: &Store, key: &str) -> Result<u64, StoreError> {
    Ok(store
        .get_meta(key)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

impl SignerClock {
    pub(crate) fn load(store: &Store) -> Result<SignerClock, StoreError> {
        Ok(SignerClock {
            last: read_u64(store, LAST_SIGNED)?,
            seq: read_u64(store, MOD_SEQ)?,
        })
    }

    /// The time to sign a new item with: `now_ms`, or later than anything
    /// signed before and than `after` (the action it overrides). Persisted
    /// before it is used.
    pub(crate) fn next_time(
        &mut self,
        store: &Store,
        now_ms: u64,
        after: Option<u64>,
    ) -> Result<u64, StoreError> {
        let floor = self.last.max(after.unwrap_or(0)).saturating_add(1);
        let t = now_ms.max(floor);
        store.set_meta(LAST_SIGNED, &t.to_be_bytes())?;
        self.last = t;
        Ok(t)
    }

    /// The next moderation sequence number, persisted before it is used.
    pub(crate) fn next_seq(&mut self, store: &Store) -> Result<u64, StoreError> {
        let seq = self.seq + 1;
        store.set_meta(MOD_SEQ, &seq.to_be_bytes())?;
        self.seq = seq;
        Ok(seq)
    }
}
