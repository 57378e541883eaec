//! The set side of history sync: a scope's keys in order, its items by
//! range or by key, and its accumulator.

use protocol::sync::{Accumulator, ItemKey, SyncScope};

use super::error::During;
use super::keys::{
    hex_tail, item_key_bytes, kind_range, parse_item_key, prefixed, split_topic_key, topic_key,
    LOG, POST,
};
use super::{range, Store, StoreError};

impl Store {
    /// The bounds of `[from, to)` of `scope` in the `items` tree (a topic
    /// through its tag).
    fn scope_range(&self, scope: &SyncScope, from: &ItemKey, to: &ItemKey) -> (Vec<u8>, Vec<u8>) {
        match scope {
            SyncScope::CommunityLog => kind_range(LOG, &item_key_bytes(from), &item_key_bytes(to)),
            SyncScope::Topic(t) => {
                let t = &self.topic_tag(t);
                kind_range(POST, &topic_key(t, from), &topic_key(t, to))
            }
        }
    }

    /// The item key in a key of `scope`.
    fn scope_key(scope: &SyncScope, k: &[u8]) -> Option<ItemKey> {
        let k = k.get(1..)?;
        match scope {
            SyncScope::CommunityLog => parse_item_key(k),
            SyncScope::Topic(_) => split_topic_key(k).map(|(_, key)| key),
        }
    }

    /// The stored bytes of the item at `key` in `scope`. A post is only
    /// served under the topic it was written in.
    fn item_bytes(&self, scope: &SyncScope, key: &ItemKey) -> Result<Option<Vec<u8>>, StoreError> {
        let b = self.b();
        let k = match scope {
            SyncScope::CommunityLog => prefixed(LOG, &item_key_bytes(key)),
            SyncScope::Topic(t) => prefixed(POST, &topic_key(&self.topic_tag(t), key)),
        };
        let Some(sealed) = b.items.get(&k).during("read items to sync")? else {
            return Ok(None);
        };
        let bytes = self.open_value(&k, &sealed);
        if bytes.is_none() {
            tracing::warn!(key = %hex_tail(&k), "skipping an item that does not open (damaged)");
        }
        Ok(bytes)
    }

    /// The accumulator of everything in `scope`: from memory once computed
    /// (one scan of the scope's keys the first time, and after a deletion
    /// or a log write).
    pub fn scope_sum(&self, scope: &SyncScope) -> Result<Accumulator, StoreError> {
        if let Some(acc) = self
            .scope_sums
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(scope)
        {
            return Ok(*acc);
        }
        let mut acc = Accumulator::EMPTY;
        self.scan_keys(scope, &ItemKey::MIN, &ItemKey::MAX, &mut |k| {
            acc.add(&k.id);
            true
        })?;
        self.scope_sums
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(scope.clone(), acc);
        Ok(acc)
    }

    /// Calls `f` on each key of `scope` in `[from, to)`, ascending, until it
    /// returns false: the set side of reconciliation. Reads only keys,
    /// never item bytes.
    pub fn scan_keys(
        &self,
        scope: &SyncScope,
        from: &ItemKey,
        to: &ItemKey,
        f: &mut dyn FnMut(&ItemKey) -> bool,
    ) -> Result<(), StoreError> {
        let b = self.b();
        for k in range(&b.items, self.scope_range(scope, from, to)).keys() {
            let k = k.during("read items to sync")?;
            match Store::scope_key(scope, &k) {
                Some(key) => {
                    if !f(&key) {
                        break;
                    }
                }
                None => tracing::warn!(key = %hex_tail(&k), "skipping a malformed item key"),
            }
        }
        Ok(())
    }

    /// The stored items (encoded `Message` bytes) of `scope` in
    /// `[from, to)`, in key order: at most `max_items`, stopping before an
    /// item that would take the total past `max_bytes`, but at least one
    /// item if there is any (so a large item can never stall a sync).
    pub fn items_in(
        &self,
        scope: &SyncScope,
        from: &ItemKey,
        to: &ItemKey,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<Vec<(ItemKey, Vec<u8>)>, StoreError> {
        let b = self.b();
        let mut out = Vec::new();
        if max_items == 0 {
            return Ok(out);
        }
        let mut bytes = 0usize;
        for kv in range(&b.items, self.scope_range(scope, from, to)) {
            let (k, v) = kv.during("read items to sync")?;
            let Some(key) = Store::scope_key(scope, &k) else {
                tracing::warn!(key = %hex_tail(&k), "skipping a malformed item key");
                continue;
            };
            let Some(v) = self.open_value(&k, &v) else {
                tracing::warn!(key = %hex_tail(&k), "skipping an item that does not open (damaged)");
                continue;
            };
            if !out.is_empty() && bytes.saturating_add(v.len()) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(v.len());
            out.push((key, v));
            if out.len() >= max_items {
                break;
            }
        }
        Ok(out)
    }

    /// The stored items of `scope` with these keys, in the order asked,
    /// skipping keys not held (or held in another topic).
    pub fn items_by_keys(
        &self,
        scope: &SyncScope,
        keys: &[ItemKey],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = self.item_bytes(scope, k)? {
                out.push(v);
            }
        }
        Ok(out)
    }
}
