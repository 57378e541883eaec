//! This node's own times and sequence numbers: strictly increasing per key
//! and persisted, so two items signed in the same millisecond (or after the
//! system clock stepped back) are still ordered as they were made, and a
//! moderation action is always dated after the one it overrides.
//!
//! Two devices of one identity (the same recovery phrase restored on a
//! second machine) each keep their own counter and do not talk to each
//! other, so a plain counter would give both the same numbers, and after a
//! revocation two actions with one number count for neither (rule 4 of
//! `protocol::state`). A moderation `seq` is therefore
//! `max(last + 1, created_at << 16 | device tag)`: the signing time in its
//! high bits, and in the low 16 bits a random tag drawn once per data
//! directory. Two devices collide only when they sign in the same
//! millisecond *and* drew the same tag (1 in 65,536); one device's numbers
//! still strictly increase, and a number signed later (by the clock) is
//! greater, which is what a revocation's `upto_seq` counts on.

use crate::store::{Store, StoreError};

/// Meta key of the last `created_at` this node signed.
const LAST_SIGNED: &str = "last_signed_at";
/// Meta key of the last moderation `seq` this node signed.
const MOD_SEQ: &str = "moderation_seq";
/// Meta key of this data directory's random 16-bit device tag.
const DEVICE_TAG: &str = "device_tag";

/// The last time and moderation sequence number this node's key signed.
pub(crate) struct SignerClock {
    last: u64,
    seq: u64,
    tag: u16,
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
        let stored = store
            .get_meta(DEVICE_TAG)?
            .and_then(|b| <[u8; 2]>::try_from(b.as_slice()).ok());
        let tag = match stored {
            Some(bytes) => u16::from_be_bytes(bytes),
            None => {
                let tag: u16 = rand::random();
                store.set_meta(DEVICE_TAG, &tag.to_be_bytes())?;
                tag
            }
        };
        Ok(SignerClock {
            last: read_u64(store, LAST_SIGNED)?,
            seq: read_u64(store, MOD_SEQ)?,
            tag,
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

    /// The next moderation sequence number for an action signed at `at`
    /// (see the module documentation), persisted before it is used.
    pub(crate) fn next_seq(&mut self, store: &Store, at: u64) -> Result<u64, StoreError> {
        let seq = self
            .seq
            .saturating_add(1)
            .max(at.saturating_mul(1 << 16) | u64::from(self.tag));
        store.set_meta(MOD_SEQ, &seq.to_be_bytes())?;
        self.seq = seq;
        Ok(seq)
    }
}
