//! Unit tests of the pieces: arithmetic of accumulators, bounds and keys.
//! The whole protocol is simulated in `protocol/tests/sync_reconcile.rs`.

use proptest::prelude::*;

use super::keys::{separating, short_range, successor};
use super::*;

fn key(ts: u64, id: [u8; 32]) -> ItemKey {
    ItemKey { created_at: ts, id }
}

proptest! {
    #[test]
    fn accumulators_are_additive_and_decode_one_difference(
        ids in proptest::collection::vec(any::<[u8; 32]>(), 0..40),
        extra in any::<[u8; 32]>(),
        split in 0usize..40,
    ) {
        let mut whole = Accumulator::EMPTY;
        let mut left = Accumulator::EMPTY;
        let mut right = Accumulator::EMPTY;
        for (i, id) in ids.iter().enumerate() {
            whole.add(id);
            if i < split { left.add(id) } else { right.add(id) }
        }
        left.merge(&right);
        prop_assert_eq!(left, whole);
        let mut plus = whole;
        plus.add(&extra);
        prop_assert_eq!(plus.count(), whole.count() + 1);
        prop_assert_eq!(plus.difference(&whole), extra);
        prop_assert_ne!(plus.fingerprint(), whole.fingerprint());
        plus.remove(&extra);
        prop_assert_eq!(plus, whole);
        prop_assert_eq!(plus.fingerprint(), whole.fingerprint());
    }

    #[test]
    fn separating_bounds_lie_between_neighbours(
        a in any::<(u8, [u8; 32])>(),
        b in any::<(u8, [u8; 32])>(),
    ) {
        let (x, y) = (key(u64::from(a.0 % 4), a.1), key(u64::from(b.0 % 4), b.1));
        prop_assume!(x != y);
        let (lo, hi) = if x < y { (x, y) } else { (y, x) };
        let s = separating(&lo, &hi);
        prop_assert!(lo < s && s <= hi);
        let wire = Bound::encode(&s, 0).unwrap();
        prop_assert_eq!(wire.prefix.last().copied().unwrap_or(1) != 0, true);
        prop_assert_eq!(wire.resolve(0).unwrap(), s);
    }

    #[test]
    fn bounds_round_trip_relative_to_a_base(ts in 0u64..1_000_000, base in 0u64..1_000_000, id in any::<[u8; 32]>()) {
        let k = key(ts, id);
        match Bound::encode(&k, base) {
            Some(b) => prop_assert_eq!(b.resolve(base).unwrap(), k),
            None => prop_assert!(ts < base),
        }
    }
}

#[test]
fn fingerprints_have_sixteen_bytes_and_depend_on_count() {
    let mut a = Accumulator::EMPTY;
    a.add(&[0; 32]);
    // Same sum (zero), different count.
    assert_ne!(a.fingerprint(), Accumulator::EMPTY.fingerprint());
    assert_eq!(a.fingerprint().0.len(), 16);
}

#[test]
fn sums_wrap_around_two_to_the_256() {
    let mut a = Accumulator::EMPTY;
    a.add(&[0xff; 32]);
    a.add(&{
        let mut one = [0; 32];
        one[0] = 1;
        one
    });
    assert_eq!(a.sum(), &[0; 32]);
    assert_eq!(a.count(), 2);
}

#[test]
fn end_bound_and_bad_bounds() {
    let end = Bound::encode(&ItemKey::MAX, 12345).unwrap();
    assert_eq!(end.ts, 0);
    assert_eq!(end.resolve(7).unwrap(), ItemKey::MAX);
    let bad = Bound {
        ts: 0,
        prefix: vec![1],
    };
    assert!(bad.resolve(0).is_err());
    let trailing_zero = Bound {
        ts: 1,
        prefix: vec![1, 0],
    };
    assert!(trailing_zero.resolve(0).is_err());
    let too_long = Bound {
        ts: 1,
        prefix: vec![1; 33],
    };
    assert!(too_long.resolve(0).is_err());
    let overflow = Bound {
        ts: u64::MAX,
        prefix: vec![],
    };
    assert!(overflow.resolve(2).is_err());
    // A time of u64::MAX from base 0 cannot be written (no valid item has it).
    assert!(Bound::encode(&key(u64::MAX, [1; 32]), 0).is_none());
}

#[test]
fn successor_carries() {
    assert_eq!(
        successor(&key(3, [0xff; 32])),
        Some(key(4, [0; 32])),
        "carry into the time"
    );
    assert_eq!(successor(&ItemKey::MAX), None);
    let mut id = [0; 32];
    id[31] = 1;
    assert_eq!(successor(&key(3, [0; 32])), Some(key(3, id)));
}

#[test]
fn short_ranges_cover_exactly_one_prefix() {
    let mut id = [7u8; 32];
    let (lo, hi) = short_range(&(9, [7; 8]));
    assert!(lo <= key(9, id) && key(9, id) < hi);
    id[7] = 8;
    assert!(key(9, id) >= hi);
    let (_, top) = short_range(&(9, [0xff; 8]));
    assert_eq!(top, key(10, [0; 32]));
}

#[test]
fn in_memory_sets_handle_empty_and_inverted_ranges() {
    let set: std::collections::BTreeSet<ItemKey> = [key(1, [1; 32])].into_iter().collect();
    assert_eq!(set.count_in(&ItemKey::MAX, &ItemKey::MIN), 0);
    assert_eq!(set.count_in(&ItemKey::MIN, &ItemKey::MIN), 0);
    assert_eq!(set.count_in(&ItemKey::MIN, &ItemKey::MAX), 1);
    let map: std::collections::BTreeMap<ItemKey, Vec<u8>> =
        [(key(1, [1; 32]), vec![1, 2, 3])].into_iter().collect();
    assert!(map.items_in(&ItemKey::MAX, &ItemKey::MIN, 5, 5).is_empty());
    assert_eq!(map.items_in(&ItemKey::MIN, &ItemKey::MAX, 5, 1).len(), 1);
    assert_eq!(
        map.items_by_keys(&[key(1, [1; 32]), key(2, [1; 32])]).len(),
        1
    );
}
