//! The additive summary of a range and its fingerprint.

use serde::{Deserialize, Serialize};

/// Domain of the fingerprint hash, so a fingerprint can never be confused
/// with any other BLAKE3 output of the project.
const FINGERPRINT_CONTEXT: &str = "mutual sync range fingerprint v1";

/// The summary of a set of ids: how many, and their sum as 256-bit
/// little-endian integers mod 2^256. Additive (a range's accumulator is the
/// sum of its parts', and an item can be removed again), so a store can
/// cache it per bucket and never rescan; and when two ranges differ by
/// exactly one item, the difference of the sums *is* that item's id.
///
/// A sum is not collision resistant against someone who creates very many
/// items to make two different sets sum alike (a generalised birthday
/// attack): that could hide items from one sync. Negentropy accepts the same
/// trade-off; gossip, not sync, is the main path of an item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Accumulator {
    count: u64,
    sum: [u8; 32],
}

/// A 16-byte digest of an [`Accumulator`]: what two nodes compare when the
/// raw sum would not help them decode a difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 16]);

impl Accumulator {
    /// The summary of no items.
    pub const EMPTY: Accumulator = Accumulator {
        count: 0,
        sum: [0; 32],
    };

    /// Rebuilds an accumulator from a cached count and sum.
    pub fn from_parts(count: u64, sum: [u8; 32]) -> Self {
        Accumulator { count, sum }
    }

    /// Adds one id.
    pub fn add(&mut self, id: &[u8; 32]) {
        self.count = self.count.wrapping_add(1);
        self.sum = add256(&self.sum, id);
    }

    /// Removes one id added before (for a cache when an item is deleted).
    pub fn remove(&mut self, id: &[u8; 32]) {
        self.count = self.count.wrapping_sub(1);
        self.sum = sub256(&self.sum, id);
    }

    /// Adds every id summarised by `other` (two adjacent cached buckets).
    pub fn merge(&mut self, other: &Accumulator) {
        self.count = self.count.wrapping_add(other.count);
        self.sum = add256(&self.sum, &other.sum);
    }

    /// Number of ids.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the ids, 256-bit little-endian.
    pub fn sum(&self) -> &[u8; 32] {
        &self.sum
    }

    /// `self.sum - other.sum`: if `self` summarises `other`'s ids plus one,
    /// this is the id of that one.
    pub fn difference(&self, other: &Accumulator) -> [u8; 32] {
        sub256(&self.sum, &other.sum)
    }

    /// BLAKE3 of count and sum, truncated to 16 bytes.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
        h.update(&self.count.to_le_bytes());
        h.update(&self.sum);
        let mut fp = [0u8; 16];
        for (d, s) in fp.iter_mut().zip(h.finalize().as_bytes().iter()) {
            *d = *s;
        }
        Fingerprint(fp)
    }
}

fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(bytes) {
        *d = *s;
    }
    u64::from_le_bytes(w)
}

fn add256(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = false;
    for ((o, x), y) in out
        .chunks_exact_mut(8)
        .zip(a.chunks_exact(8))
        .zip(b.chunks_exact(8))
    {
        let (s, c1) = word(x).overflowing_add(word(y));
        let (s, c2) = s.overflowing_add(u64::from(carry));
        carry = c1 || c2;
        o.copy_from_slice(&s.to_le_bytes());
    }
    out
}

fn sub256(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = false;
    for ((o, x), y) in out
        .chunks_exact_mut(8)
        .zip(a.chunks_exact(8))
        .zip(b.chunks_exact(8))
    {
        let (s, b1) = word(x).overflowing_sub(word(y));
        let (s, b2) = s.overflowing_sub(u64::from(borrow));
        borrow = b1 || b2;
        o.copy_from_slice(&s.to_le_bytes());
    }
    out
}
