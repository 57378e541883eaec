//! Key arithmetic and small scans shared by both sides.

use super::{ItemKey, SyncSet};

/// An item named by its creation time and the first 8 bytes of its id: what
/// id lists carry. Finding a different item with the same time and prefix
/// takes a second preimage of 64 bits, so it names one item.
pub(crate) type ShortId = (u64, [u8; 8]);

/// Bytes of an id prefix in id lists.
pub(crate) const PREFIX_BYTES: usize = 8;

pub(crate) fn id_prefix(id: &[u8; 32]) -> [u8; PREFIX_BYTES] {
    let mut p = [0u8; PREFIX_BYTES];
    for (d, s) in p.iter_mut().zip(id.iter()) {
        *d = *s;
    }
    p
}

pub(crate) fn short_id(k: &ItemKey) -> ShortId {
    (k.created_at, id_prefix(&k.id))
}

/// The smallest key greater than `k`, if any.
pub(crate) fn successor(k: &ItemKey) -> Option<ItemKey> {
    let mut id = k.id;
    for b in id.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return Some(ItemKey {
                created_at: k.created_at,
                id,
            });
        }
    }
    k.created_at.checked_add(1).map(|created_at| ItemKey {
        created_at,
        id: [0; 32],
    })
}

/// The key `b` with `before < b <= after` whose id has the fewest
/// significant bytes (zero bytes when the times differ): the cheapest bound
/// to send between two neighbouring items. Requires `before < after`.
pub(crate) fn separating(before: &ItemKey, after: &ItemKey) -> ItemKey {
    if before.created_at < after.created_at {
        return ItemKey {
            created_at: after.created_at,
            id: [0; 32],
        };
    }
    let mut id = [0u8; 32];
    for ((d, a), b) in id.iter_mut().zip(after.id.iter()).zip(before.id.iter()) {
        *d = *a;
        if a != b {
            break;
        }
    }
    ItemKey {
        created_at: after.created_at,
        id,
    }
}

/// The keys sharing a time and id prefix: `[lo, hi)`.
pub(crate) fn short_range(short: &ShortId) -> (ItemKey, ItemKey) {
    let (created_at, prefix) = short;
    let mut lo = [0u8; 32];
    let mut top = [0xffu8; 32];
    for ((l, t), p) in lo.iter_mut().zip(top.iter_mut()).zip(prefix.iter()) {
        *l = *p;
        *t = *p;
    }
    let hi = successor(&ItemKey {
        created_at: *created_at,
        id: top,
    })
    .unwrap_or(ItemKey::MAX);
    (
        ItemKey {
            created_at: *created_at,
            id: lo,
        },
        hi,
    )
}

/// At most `max` keys of `[from, to)`, ascending.
pub(crate) fn keys_up_to(
    set: &dyn SyncSet,
    from: &ItemKey,
    to: &ItemKey,
    max: usize,
) -> Vec<ItemKey> {
    let mut out = Vec::new();
    if max == 0 {
        return out;
    }
    set.for_each_in(from, to, &mut |k| {
        out.push(*k);
        out.len() < max
    });
    out
}

/// The keys in `[from, to)`, counted up to `cap` (`u64::MAX`: all).
pub(crate) fn count_up_to<S: SyncSet + ?Sized>(
    set: &S,
    from: &ItemKey,
    to: &ItemKey,
    cap: u64,
) -> u64 {
    let mut n = 0u64;
    if cap == 0 {
        return n;
    }
    set.for_each_in(from, to, &mut |_| {
        n = n.saturating_add(1);
        n < cap
    });
    n
}

/// The first key of `[from, to)`.
pub(crate) fn first_in(set: &dyn SyncSet, from: &ItemKey, to: &ItemKey) -> Option<ItemKey> {
    keys_up_to(set, from, to, 1).into_iter().next()
}

/// The key in `[from, to)` whose id is `id`.
pub(crate) fn find_id(
    set: &dyn SyncSet,
    from: &ItemKey,
    to: &ItemKey,
    id: &[u8; 32],
) -> Option<ItemKey> {
    let mut found = None;
    set.for_each_in(from, to, &mut |k| {
        if &k.id == id {
            found = Some(*k);
            false
        } else {
            true
        }
    });
    found
}

/// Whether the set holds an item with this time and id prefix.
pub(crate) fn has_short(set: &dyn SyncSet, short: &ShortId) -> bool {
    let (lo, hi) = short_range(short);
    first_in(set, &lo, &hi).is_some()
}
