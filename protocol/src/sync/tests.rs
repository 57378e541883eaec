//! Simulation of two nodes reconciling in-process, counting real bytes.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::wire;

/// A set whose items are their keys, encoded, padded to `item_size` bytes.
struct MemSet {
    keys: BTreeSet<ItemKey>,
    item_size: usize,
}

impl SyncSet for MemSet {
    fn for_each_in(&self, from: &ItemKey, to: &ItemKey, f: &mut dyn FnMut(&ItemKey) -> bool) {
        if from >= to {
            return;
        }
        for k in self.keys.range(*from..*to) {
            if !f(k) {
                break;
            }
        }
    }
}

impl MemSet {
    fn item(&self, k: &ItemKey) -> Vec<u8> {
        let mut v = k.created_at.to_le_bytes().to_vec();
        v.extend_from_slice(&k.id);
        v.resize(self.item_size.max(v.len()), 0);
        v
    }
}

impl ItemSource for MemSet {
    fn items_in(
        &self,
        from: &ItemKey,
        to: &ItemKey,
        max_items: usize,
        max_bytes: usize,
    ) -> Vec<(ItemKey, Vec<u8>)> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for k in self.keys.range(*from..*to).take(max_items) {
            let v = self.item(k);
            if !out.is_empty() && bytes + v.len() > max_bytes {
                break;
            }
            bytes += v.len();
            out.push((*k, v));
        }
        out
    }
    fn items_by_keys(&self, keys: &[ItemKey]) -> Vec<Vec<u8>> {
        keys.iter()
            .filter(|k| self.keys.contains(k))
            .map(|k| self.item(k))
            .collect()
    }
}

fn key(n: u64, ts: u64) -> ItemKey {
    let id = *blake3::hash(&n.to_le_bytes()).as_bytes();
    ItemKey { created_at: ts, id }
}

#[derive(Debug, Default)]
struct Report {
    rounds: u32,
    request_bytes: usize,
    response_bytes: usize,
    item_bytes: usize,
    items: usize,
    max_items_in_response: usize,
}

/// Runs a session with `a` initiating against `b`; adds what arrives to `a`.
fn reconcile(a: &mut MemSet, b: &MemSet) -> Report {
    let scope = SyncScope::CommunityLog;
    let mut report = Report::default();
    let (mut init, mut req) = Initiator::new(scope, a);
    loop {
        let req_bytes = wire::encode_versioned(&req);
        report.request_bytes += req_bytes.len();
        let decoded: SyncRequest =
            wire::decode_versioned(&req_bytes, wire::MAX_SYNC_FRAME_BYTES).unwrap();
        let resp = respond(&decoded, b, b);
        let resp_bytes = wire::encode_versioned(&resp);
        assert!(resp_bytes.len() <= wire::MAX_SYNC_FRAME_BYTES);
        report.response_bytes += resp_bytes.len();
        let resp: SyncResponse =
            wire::decode_versioned(&resp_bytes, wire::MAX_SYNC_FRAME_BYTES).unwrap();
        report.rounds += 1;
        let step = init.on_response(resp, a).unwrap();
        let items = init.take_items();
        report.max_items_in_response = report.max_items_in_response.max(items.len());
        for item in items {
            report.item_bytes += item.len();
            report.items += 1;
            let k = ItemKey {
                created_at: u64::from_le_bytes(item[..8].try_into().unwrap()),
                id: item[8..40].try_into().unwrap(),
            };
            a.keys.insert(k);
        }
        match step {
            Step::Continue(next) => req = next,
            Step::Done => return report,
        }
        assert!(report.rounds < 10_000, "did not converge");
    }
}

fn set(keys: impl IntoIterator<Item = ItemKey>) -> MemSet {
    MemSet {
        keys: keys.into_iter().collect(),
        item_size: 200,
    }
}

#[test]
fn identical_sets_cost_one_round_trip_and_no_item() {
    let keys: Vec<ItemKey> = (0..10_000)
        .map(|i| key(i, 1_700_000_000_000 + i * 1000))
        .collect();
    let mut a = set(keys.clone());
    let b = set(keys);
    let r = reconcile(&mut a, &b);
    assert_eq!(r.rounds, 1);
    assert_eq!(r.items, 0);
    assert!(r.request_bytes + r.response_bytes < 120, "{r:?}");
}

#[test]
fn near_identical_100k_sets_find_the_difference_cheaply() {
    let n = 100_000u64;
    let base = 1_700_000_000_000u64;
    let all: Vec<ItemKey> = (0..n).map(|i| key(i, base + i * 997)).collect();
    let a_lacks: BTreeSet<u64> = (0..5).map(|i| 7 + i * 19_991).collect();
    let b_lacks: BTreeSet<u64> = (0..5).map(|i| 3 + i * 17_777).collect();
    let mut a = set(all
        .iter()
        .enumerate()
        .filter(|(i, _)| !a_lacks.contains(&(*i as u64)))
        .map(|(_, k)| *k));
    let b = set(all
        .iter()
        .enumerate()
        .filter(|(i, _)| !b_lacks.contains(&(*i as u64)))
        .map(|(_, k)| *k));
    let r = reconcile(&mut a, &b);
    assert_eq!(r.items, 5, "{r:?}");
    let overhead = r.request_bytes + r.response_bytes - r.item_bytes;
    eprintln!(
        "near-identical 100k: {} round trips, {} bytes beyond the items",
        r.rounds, overhead
    );
    assert!(r.rounds <= 3, "{r:?}");
    assert!(overhead < 16_000, "{r:?}");
    assert_eq!(
        a.keys.len() as u64,
        n - 5 + 5 - (a_lacks.intersection(&b_lacks).count() as u64)
    );
}

#[test]
fn an_empty_node_gets_items_streamed_in_bounded_pages() {
    let keys: Vec<ItemKey> = (0..20_000).map(|i| key(i, 1_000 + i / 3)).collect();
    let mut a = set(Vec::new());
    let b = set(keys.clone());
    let r = reconcile(&mut a, &b);
    assert_eq!(r.items, 20_000);
    assert_eq!(a.keys, b.keys);
    assert!(r.max_items_in_response <= MAX_ITEMS_PER_RESPONSE);
    let overhead = r.request_bytes + r.response_bytes - r.item_bytes;
    assert!(
        (overhead as f64) < 0.02 * r.item_bytes as f64,
        "overhead {overhead} of {} item bytes",
        r.item_bytes
    );
}

#[test]
fn large_items_respect_the_byte_budget() {
    let keys: Vec<ItemKey> = (0..600).map(|i| key(i, 5 + i)).collect();
    let mut a = set(Vec::new());
    let b = MemSet {
        keys: keys.into_iter().collect(),
        item_size: 9000,
    };
    let r = reconcile(&mut a, &b);
    assert_eq!(r.items, 600);
    assert!(r.rounds >= 6, "600 × 9 KB needs several 1 MiB pages: {r:?}");
}

#[test]
fn garbled_responses_are_errors_not_panics() {
    let a = set((0..100).map(|i| key(i, i)));
    let (mut init, _) = Initiator::new(SyncScope::CommunityLog, &a);
    let bad = SyncResponse {
        ranges: Ranges {
            bounded: vec![
                WireRange {
                    ts_delta: 50,
                    id_prefix: vec![],
                    mode: Mode::Skip,
                },
                WireRange {
                    ts_delta: 0,
                    id_prefix: vec![],
                    mode: Mode::Skip,
                },
            ],
            last: Mode::Skip,
        },
        items: vec![],
        refused: false,
    };
    assert!(matches!(
        init.on_response(bad, &a),
        Err(SyncError::Malformed(_))
    ));
    let fetch = SyncResponse {
        ranges: Ranges {
            bounded: vec![],
            last: Mode::Fetch,
        },
        items: vec![],
        refused: false,
    };
    assert!(init.on_response(fetch, &a).is_err());
    let refused = SyncResponse::refused(&SyncRequest {
        scope: SyncScope::CommunityLog,
        ranges: Ranges {
            bounded: vec![],
            last: Mode::Skip,
        },
    });
    assert_eq!(init.on_response(refused, &a), Err(SyncError::Refused));
    // A garbled request gets an all-skip answer.
    let req = SyncRequest {
        scope: SyncScope::CommunityLog,
        ranges: Ranges {
            bounded: vec![WireRange {
                ts_delta: 1,
                id_prefix: vec![1; 40],
                mode: Mode::Fetch,
            }],
            last: Mode::Fetch,
        },
    };
    let resp = respond(&req, &a, &a);
    assert!(resp.items.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_two_sets_reconcile_to_the_union(
        shared in proptest::collection::vec((0u64..5000, 0u64..50), 0..300),
        only_a in proptest::collection::vec((5000u64..10_000, 0u64..50), 0..300),
        only_b in proptest::collection::vec((10_000u64..15_000, 0u64..50), 0..300),
    ) {
        let mk = |v: &Vec<(u64, u64)>| v.iter().map(|(n, ts)| key(*n, *ts)).collect::<Vec<_>>();
        let mut a = set(mk(&shared).into_iter().chain(mk(&only_a)));
        let mut b = set(mk(&shared).into_iter().chain(mk(&only_b)));
        let union: BTreeSet<ItemKey> = a.keys.union(&b.keys).copied().collect();
        let b_snapshot = set(b.keys.iter().copied());
        reconcile(&mut a, &b_snapshot);
        let a_snapshot = set(a.keys.iter().copied());
        reconcile(&mut b, &a_snapshot);
        prop_assert_eq!(&a.keys, &union);
        prop_assert_eq!(&b.keys, &union);
    }
}
