//! Key succession: which keys are one author. A pure function of the set
//! of kept successions (`ModActionKind::Succeed`), whatever order they
//! arrived in, so every node that holds the same successions links the
//! same keys.
//!
//! Rules (order-independent; "least" is by `(created_at, action id)`):
//! 1. A key is succeeded at most once: of the successions its key signed,
//!    the least is its one candidate; the others change nothing.
//! 2. A key is named as a successor at most once: of the candidates
//!    naming the same new key, the least counts; the others change
//!    nothing (the new key already belongs to another chain).
//! 3. What remains links each key to at most one successor and one
//!    predecessor: chains, and possibly cycles (every key of a cycle
//!    co-signed, so it is one person's doing). In a cycle the greatest
//!    succession is the one that closed it: it changes nothing, and the
//!    cycle is a chain.
//! 4. Each chain is one author, named by its root (the first key, which
//!    has no predecessor); its current key is the last one. Every other
//!    key is an author of its own.
//!
//! Which successions are effective does not depend on moderation: a
//! blocked key's succession links the keys all the same, and the block
//! then covers both (see `state.rs`), so it cannot be escaped.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::ActionId;
use crate::keys::PublicKey;

/// `(created_at, id)`: which of two successions is the lesser.
type SuccessionKey = (u64, ActionId);

/// The chains of keys that are one author.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Every kept succession: `(old key, order) -> new key`.
    kept: BTreeMap<(PublicKey, SuccessionKey), PublicKey>,
    /// Derived: the root of every key in a chain other than its root.
    roots: BTreeMap<PublicKey, PublicKey>,
    /// Derived: the keys of each chain by its root, root first.
    chains: BTreeMap<PublicKey, Vec<PublicKey>>,
    /// Derived: the effective successions.
    effective: BTreeSet<ActionId>,
}

impl Lineage {
    /// Keeps a succession of `old` by `new`; [`relink`](Self::relink)
    /// makes it count.
    pub(crate) fn insert(&mut self, old: PublicKey, new: PublicKey, at: u64, id: ActionId) {
        self.kept.insert((old, (at, id)), new);
    }

    /// Recomputes the chains from the kept successions (rules 1–4).
    pub(crate) fn relink(&mut self) {
        // Rule 1: the least succession of each old key.
        let mut next: BTreeMap<PublicKey, (PublicKey, SuccessionKey)> = BTreeMap::new();
        for ((old, order), new) in &self.kept {
            next.entry(*old).or_insert((*new, *order));
        }
        // Rule 2: the least candidate naming each new key.
        let mut prev: BTreeMap<PublicKey, (PublicKey, SuccessionKey)> = BTreeMap::new();
        for (old, (new, order)) in &next {
            match prev.get(new) {
                Some((_, existing)) if existing <= order => {}
                _ => {
                    prev.insert(*new, (*old, *order));
                }
            }
        }
        let mut edges: BTreeMap<PublicKey, (PublicKey, SuccessionKey)> = prev
            .iter()
            .map(|(new, (old, order))| (*old, (*new, *order)))
            .collect();
        // Rule 3: open every cycle at its greatest succession.
        let mut seen: BTreeSet<PublicKey> = BTreeSet::new();
        let starts: Vec<PublicKey> = edges.keys().copied().collect();
        for start in starts {
            if seen.contains(&start) {
                continue;
            }
            let mut path = vec![start];
            let mut at = start;
            let mut closes = false;
            seen.insert(start);
            while let Some((new, _)) = edges.get(&at) {
                if *new == start {
                    closes = true;
                    break;
                }
                if !seen.insert(*new) {
                    break;
                }
                path.push(*new);
                at = *new;
            }
            if closes {
                let greatest = path
                    .iter()
                    .filter_map(|k| edges.get(k).map(|(_, order)| (*order, *k)))
                    .max();
                if let Some((_, old)) = greatest {
                    edges.remove(&old);
                }
            }
        }
        // Rule 4: walk each chain from its root.
        let has_prev: BTreeSet<PublicKey> = edges.values().map(|(new, _)| *new).collect();
        self.roots.clear();
        self.chains.clear();
        self.effective = edges.values().map(|(_, (_, id))| *id).collect();
        for root in edges.keys().filter(|k| !has_prev.contains(k)) {
            let mut chain = vec![*root];
            let mut at = *root;
            while let Some((new, _)) = edges.get(&at) {
                self.roots.insert(*new, *root);
                chain.push(*new);
                at = *new;
            }
            self.chains.insert(*root, chain);
        }
    }

    /// The author `key` signs for: the root of its chain, or itself.
    pub fn root(&self, key: &PublicKey) -> PublicKey {
        self.roots.get(key).copied().unwrap_or(*key)
    }

    /// Whether two keys are one author.
    pub fn same(&self, a: &PublicKey, b: &PublicKey) -> bool {
        self.root(a) == self.root(b)
    }

    /// Every key of `key`'s author, root first (just `key` when it is in
    /// no chain).
    pub fn keys_of(&self, key: &PublicKey) -> Vec<PublicKey> {
        self.chains
            .get(&self.root(key))
            .cloned()
            .unwrap_or_else(|| vec![*key])
    }

    /// The key `key`'s author signs with now: the last of its chain.
    pub fn current(&self, key: &PublicKey) -> PublicKey {
        self.chains
            .get(&self.root(key))
            .and_then(|chain| chain.last().copied())
            .unwrap_or(*key)
    }

    /// Whether `key` was succeeded by an effective succession.
    pub fn is_succeeded(&self, key: &PublicKey) -> bool {
        self.current(key) != *key
    }

    /// Whether `key` belongs to a chain (as its root or a later key).
    pub fn in_chain(&self, key: &PublicKey) -> bool {
        self.roots.contains_key(key) || self.chains.contains_key(key)
    }

    /// Whether the succession with this id links its keys.
    pub fn is_effective(&self, id: &ActionId) -> bool {
        self.effective.contains(id)
    }

    /// The ids of the effective successions.
    pub fn effective(&self) -> &BTreeSet<ActionId> {
        &self.effective
    }

    /// Every chain, by root, root first: for callers that resolve many
    /// keys at once (mutes, a page of posts).
    pub fn chains(&self) -> impl Iterator<Item = &[PublicKey]> + '_ {
        self.chains.values().map(Vec::as_slice)
    }

    /// Whether no succession links any key.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> PublicKey {
        PublicKey([i; 32])
    }

    fn id(i: u8) -> ActionId {
        ActionId([i; 32])
    }

    fn lineage(edges: &[(u8, u8, u64, u8)]) -> Lineage {
        let mut l = Lineage::default();
        for (old, new, at, i) in edges {
            l.insert(key(*old), key(*new), *at, id(*i));
        }
        l.relink();
        l
    }

    #[test]
    fn a_chain_is_one_author_named_by_its_first_key() {
        let l = lineage(&[(2, 3, 5, 2), (1, 2, 1, 1)]);
        assert_eq!(l.keys_of(&key(3)), vec![key(1), key(2), key(3)]);
        assert_eq!(l.root(&key(3)), key(1));
        assert_eq!(l.current(&key(1)), key(3));
        assert!(l.same(&key(1), &key(3)));
        assert!(!l.same(&key(1), &key(4)));
        assert_eq!(l.keys_of(&key(4)), vec![key(4)]);
    }

    #[test]
    fn a_key_is_succeeded_once_and_named_once() {
        // 1 names 2 and, later, 3: the first counts.
        let l = lineage(&[(1, 3, 9, 2), (1, 2, 4, 1)]);
        assert_eq!(l.current(&key(1)), key(2));
        assert!(!l.in_chain(&key(3)));
        assert!(l.is_effective(&id(1)) && !l.is_effective(&id(2)));
        // 4 names 2, already named by 1 earlier: nothing.
        let l = lineage(&[(1, 2, 4, 1), (4, 2, 6, 3)]);
        assert_eq!(l.root(&key(2)), key(1));
        assert!(!l.in_chain(&key(4)));
    }

    #[test]
    fn a_cycle_is_opened_at_its_latest_succession() {
        let l = lineage(&[(1, 2, 1, 1), (2, 3, 2, 2), (3, 1, 3, 3)]);
        assert_eq!(l.keys_of(&key(2)), vec![key(1), key(2), key(3)]);
        assert!(!l.is_effective(&id(3)));
    }
}
