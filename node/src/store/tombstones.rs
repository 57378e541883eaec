//! Tombstones: what remains of a hidden post (who hid it and why), at its
//! place in its topic, linked from its id.

use protocol::sync::ItemKey;
use protocol::{PostId, TopicName};

use super::error::During;
use super::keys::{
    hex_tail, kind_range, prefixed, split_topic_key, topic_end, topic_key, topic_prefix, TOMBSTONE,
    TOMBSTONE_ID,
};
use super::{range, Pending, Store, StoreError};

impl Store {
    /// Keeps what remains of a hidden post (the caller's bytes) at its
    /// place in `topic`, replacing an earlier tombstone of the same post.
    /// Prefer [`Store::hide_post`], which also deletes the post atomically.
    pub fn put_tombstone(
        &self,
        topic: &TopicName,
        key: ItemKey,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let b = self.b();
        let mut memory = self.lock();
        let mut pending = Pending::default();
        let tag = self.topic_tag(topic);
        let tkey = prefixed(TOMBSTONE, &topic_key(&tag, &key));
        let link = prefixed(TOMBSTONE_ID, &key.id);
        if let Some(old) = b.items.get(&link).during("read a tombstone")? {
            if old.as_ref() != tkey.as_slice() {
                pending.remove(old.to_vec());
            }
        }
        if !memory.names.contains_key(&tag) {
            self.name_into(&mut pending, &tag, topic);
        }
        let sealed = self.keys.seal(&tkey, data);
        pending.insert(link, tkey.clone());
        pending.insert(tkey, sealed);
        self.commit(&mut memory, pending)
    }

    /// Removes the tombstone at `key` in `topic`, if any.
    pub fn remove_tombstone(&self, topic: &TopicName, key: ItemKey) -> Result<(), StoreError> {
        let b = self.b();
        let mut memory = self.lock();
        let mut pending = Pending::default();
        let tkey = prefixed(TOMBSTONE, &topic_key(&self.topic_tag(topic), &key));
        let link = prefixed(TOMBSTONE_ID, &key.id);
        if b.items
            .get(&link)
            .during("read a tombstone")?
            .is_some_and(|k| k.as_ref() == tkey.as_slice())
        {
            pending.remove(link);
        }
        pending.remove(tkey);
        self.commit(&mut memory, pending)
    }

    /// Removes the tombstone of `post` wherever it is (when a post is
    /// unhidden, so it may come back by sync). `Ok(false)`: it had none.
    pub fn remove_tombstone_of(&self, post: &PostId) -> Result<bool, StoreError> {
        let b = self.b();
        let mut memory = self.lock();
        let link = prefixed(TOMBSTONE_ID, &post.0);
        let Some(tkey) = b.items.get(&link).during("read a tombstone")? else {
            return Ok(false);
        };
        let mut pending = Pending::default();
        pending.remove(link);
        pending.remove(tkey.to_vec());
        self.commit(&mut memory, pending)?;
        Ok(true)
    }

    /// The tombstone bytes of `post`, if it was hidden: lets a reader asking
    /// for a hidden post by id learn why it is gone.
    pub fn tombstone_of(&self, post: &PostId) -> Result<Option<Vec<u8>>, StoreError> {
        let b = self.b();
        let Some(tkey) = b
            .items
            .get(prefixed(TOMBSTONE_ID, &post.0))
            .during("read a tombstone")?
        else {
            return Ok(None);
        };
        let Some(sealed) = b.items.get(&tkey).during("read a tombstone")? else {
            return Ok(None);
        };
        let data = self.open_value(&tkey, &sealed);
        if data.is_none() {
            tracing::warn!(post = %post.short(), "a tombstone does not open (damaged)");
        }
        Ok(data)
    }

    /// Up to `limit` tombstones of `topic`, newest first, strictly before
    /// `before`: shown in a thread in place of the hidden posts.
    pub fn tombstones_page(
        &self,
        topic: &TopicName,
        before: Option<ItemKey>,
        limit: usize,
    ) -> Result<Vec<(ItemKey, Vec<u8>)>, StoreError> {
        let b = self.b();
        let t = &self.topic_tag(topic);
        let end = match before {
            Some(k) => topic_key(t, &k),
            None => topic_end(t),
        };
        let mut out = Vec::new();
        for kv in range(&b.items, kind_range(TOMBSTONE, &topic_prefix(t), &end))
            .rev()
            .take(limit)
        {
            let (k, v) = kv.during("read tombstones")?;
            match (
                k.get(1..).and_then(split_topic_key),
                self.open_value(&k, &v),
            ) {
                (Some((_, key)), Some(data)) => out.push((key, data)),
                _ => tracing::warn!(key = %hex_tail(&k), "skipping an unreadable tombstone"),
            }
        }
        Ok(out)
    }
}
