//! Posts and their indexes: storing a page of arrivals in one batch,
//! reading a topic, an author's posts, counts, and deleting.

use std::collections::HashSet;

use protocol::sync::ItemKey;
use protocol::{Message, PostId, PublicKey, Scope, SignedPost, TopicName, VerifiedPost};

use super::error::During;
use super::keys::{
    author_key, hex_tail, kind_range, parse_post_place, post_place, prefixed, split_author_key,
    split_topic_key, topic_end, topic_key, topic_prefix, whole_kind, AUTHOR, POST, POST_ID,
    TOMBSTONE, TOMBSTONE_ID,
};
use super::{decode_post, id_suffix, range, Pending, Store, StoreError};

/// Where a stored post lives: its `p` key and what the other entries need.
pub(super) struct Place {
    pub(super) key: ItemKey,
    pub(super) topic: Vec<u8>,
}

impl Place {
    pub(super) fn post_key(&self) -> Vec<u8> {
        prefixed(POST, &topic_key(&self.topic, &self.key))
    }
}

impl Store {
    /// Stores a verified post with its index entries and its topic's count,
    /// in one batch. `Ok(false)`, writing nothing: it is already stored, or
    /// its author retracted it (a retracted post never comes back, whoever
    /// relays it).
    pub fn insert_post(&self, post: &VerifiedPost) -> Result<bool, StoreError> {
        Ok(self
            .insert_posts(&[post])?
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// Stores many posts in one atomic batch (what a sync page or an import
    /// batch brings): each as [`Store::insert_post`] would, in order, so a
    /// post given twice is stored once. `result[i]` says whether `posts[i]`
    /// was newly stored. The duplicate check is one read of the id's entry;
    /// the retraction check and the counts are in memory.
    pub fn insert_posts(&self, posts: &[&VerifiedPost]) -> Result<Vec<bool>, StoreError> {
        let b = self.b();
        // Encode and derive keys before taking the lock.
        let prepared: Vec<(PostId, Vec<u8>)> = posts
            .iter()
            .map(|post| (post.id(), Message::Post(post.signed().clone()).encode()))
            .collect();
        let mut memory = self.lock();
        let mut pending = Pending::default();
        let mut seen: HashSet<PostId> = HashSet::with_capacity(posts.len());
        let mut stored = Vec::with_capacity(posts.len());
        for (post, (id, bytes)) in posts.iter().zip(prepared) {
            let key = ItemKey {
                created_at: post.created_at,
                id: id.0,
            };
            let topic = post.topic.as_str().as_bytes();
            let post_key = prefixed(POST, &topic_key(topic, &key));
            // The duplicate check reads the post's own key: its id fixes
            // its topic and time, and that key lies where the batch
            // writes (the id entry would be a read at a random place).
            let new = !seen.contains(&id)
                && !memory.is_retracted_by(&id.0, &post.author.0)
                && !b.items.contains_key(&post_key).during("read a post")?;
            stored.push(new);
            if !new {
                continue;
            }
            seen.insert(id);
            pending.times.push((post.author.0, key.created_at, true));
            pending.insert(post_key, bytes);
            pending.insert(prefixed(POST_ID, &id.0), post_place(key.created_at, topic));
            pending.insert(prefixed(AUTHOR, &author_key(&post.author.0, &key)), topic);
            pending.count(topic, 1);
            pending.stored_one(topic);
        }
        if seen.is_empty() {
            return Ok(stored);
        }
        self.commit(&mut memory, pending)?;
        drop(memory);
        let mut sums = self
            .scope_sums
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (post, new) in posts.iter().zip(&stored) {
            let scope = protocol::sync::SyncScope::Topic(post.topic.clone());
            if let (true, Some(acc)) = (*new, sums.get_mut(&scope)) {
                acc.add(&post.id().0);
            }
        }
        Ok(stored)
    }

    /// Where a post is stored, if it is.
    pub(super) fn place_of(&self, id: &[u8; 32]) -> Result<Option<Place>, StoreError> {
        let Some(v) = self
            .b()
            .items
            .get(prefixed(POST_ID, id))
            .during("read a post")?
        else {
            return Ok(None);
        };
        match parse_post_place(&v) {
            Some((created_at, topic)) => Ok(Some(Place {
                key: ItemKey {
                    created_at,
                    id: *id,
                },
                topic: topic.to_vec(),
            })),
            None => {
                tracing::warn!(post = %PostId(*id).short(), "a post's id entry does not decode");
                Ok(None)
            }
        }
    }

    /// A stored post; `None` if it is not stored (or its bytes are damaged,
    /// which is logged).
    pub fn get_post(&self, id: &PostId) -> Result<Option<SignedPost>, StoreError> {
        let Some(bytes) = self.get_post_bytes(id)? else {
            return Ok(None);
        };
        let post = decode_post(&bytes);
        if post.is_none() {
            tracing::warn!(post = %id.short(), "skipping a stored post that does not decode");
        }
        Ok(post)
    }

    /// The stored wire bytes of a post (an encoded `Message::Post`), for
    /// serving it without decoding and re-encoding.
    pub fn get_post_bytes(&self, id: &PostId) -> Result<Option<Vec<u8>>, StoreError> {
        let b = self.b();
        let Some(place) = self.place_of(&id.0)? else {
            return Ok(None);
        };
        let bytes = b
            .items
            .get(place.post_key())
            .during("read a post")?
            .map(|v| v.to_vec());
        if bytes.is_none() {
            tracing::warn!(post = %id.short(), "a post's id entry has no post");
        }
        Ok(bytes)
    }

    /// Whether this post is stored: one read of its own key (cheaper than
    /// [`Store::contains_post`], which knows only the id).
    pub fn holds(&self, post: &VerifiedPost) -> Result<bool, StoreError> {
        let b = self.b();
        let key = ItemKey {
            created_at: post.created_at,
            id: post.id().0,
        };
        b.items
            .contains_key(prefixed(
                POST,
                &topic_key(post.topic.as_str().as_bytes(), &key),
            ))
            .during("read a post")
    }

    /// Whether a post is stored; cheaper than [`Store::get_post`].
    pub fn contains_post(&self, id: &PostId) -> Result<bool, StoreError> {
        let b = self.b();
        b.items
            .contains_key(prefixed(POST_ID, &id.0))
            .during("read a post")
    }

    /// The topic a stored post was written in, without reading the post: a
    /// reply must live in its parent's topic.
    pub fn topic_of(&self, id: &PostId) -> Result<Option<TopicName>, StoreError> {
        Ok(self.place_of(&id.0)?.and_then(|p| {
            std::str::from_utf8(&p.topic)
                .ok()
                .and_then(|t| TopicName::parse_exact(t).ok())
        }))
    }

    /// Ids of stored posts that start with `prefix`, at most `limit`: how a
    /// short printable id is resolved (two results mean it is ambiguous).
    pub fn post_ids_with_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<PostId>, StoreError> {
        let b = self.b();
        let mut out = Vec::new();
        for k in b
            .items
            .scan_prefix(prefixed(POST_ID, prefix))
            .keys()
            .take(limit)
        {
            let k = k.during("read posts")?;
            if let Some(id) = k.get(1..).and_then(|k| k.try_into().ok()) {
                out.push(PostId(id));
            }
        }
        Ok(out)
    }

    /// Decodes posts from an iterator over `p` entries until `limit` are
    /// found; damaged ones are skipped with a warning.
    fn posts_of(
        &self,
        iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        limit: usize,
    ) -> Result<Vec<SignedPost>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        if limit == 0 {
            return Ok(out);
        }
        for kv in iter {
            let (k, v) = kv.during("read a topic")?;
            match decode_post(&v) {
                Some(p) => out.push(p),
                None => {
                    tracing::warn!(key = %hex_tail(&k), "skipping a stored post that does not decode")
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Up to `limit` posts of `topic`, newest first, strictly before
    /// `before` (from the newest when `None`): one page of a thread, and the
    /// next page from the last key of this one.
    pub fn topic_page(
        &self,
        topic: &TopicName,
        before: Option<ItemKey>,
        limit: usize,
    ) -> Result<Vec<SignedPost>, StoreError> {
        let b = self.b();
        let t = topic.as_str().as_bytes();
        let end = match before {
            Some(k) => topic_key(t, &k),
            None => topic_end(t),
        };
        let iter = range(&b.items, kind_range(POST, &topic_prefix(t), &end)).rev();
        self.posts_of(iter, limit)
    }

    /// Up to `limit` posts of `topic` created at or after `since_ms`, oldest
    /// first: what a follower missed since it last looked.
    pub fn topic_since(
        &self,
        topic: &TopicName,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<SignedPost>, StoreError> {
        let b = self.b();
        let t = topic.as_str().as_bytes();
        let start = topic_key(
            t,
            &ItemKey {
                created_at: since_ms,
                id: [0; 32],
            },
        );
        let iter = range(&b.items, kind_range(POST, &start, &topic_end(t)));
        self.posts_of(iter, limit)
    }

    /// Up to `limit` posts of `topic`, oldest first, strictly after
    /// `after` (from the oldest when `None`): a reader streams a topic
    /// page by page from here.
    pub fn topic_after(
        &self,
        topic: &TopicName,
        after: Option<ItemKey>,
        limit: usize,
    ) -> Result<Vec<SignedPost>, StoreError> {
        let b = self.b();
        let t = topic.as_str().as_bytes();
        let start = match after {
            Some(k) => {
                let mut s = topic_key(t, &k);
                // The smallest key greater than `after`'s.
                s.push(0);
                s
            }
            None => topic_prefix(t),
        };
        let iter = range(&b.items, kind_range(POST, &start, &topic_end(t)));
        self.posts_of(iter, limit)
    }

    /// Authors of stored posts whose key starts with `prefix`, at most
    /// `limit`: how a printed key fingerprint is resolved. Reads one index
    /// entry per author, however many posts each has.
    pub fn authors_with_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<PublicKey>, StoreError> {
        let b = self.b();
        let scope = prefixed(AUTHOR, prefix);
        let mut start = scope.clone();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(entry) = b.items.range(start.clone()..).keys().next() else {
                break;
            };
            let k = entry.during("read the author index")?;
            if !k.starts_with(&scope) {
                break;
            }
            let Some((author, _)) = k.get(1..).and_then(split_author_key) else {
                break;
            };
            out.push(PublicKey(author));
            // Past every entry of this author: its keys all have one length.
            start = prefixed(AUTHOR, &author);
            start.extend_from_slice(&[0xff; 64]);
        }
        Ok(out)
    }

    /// The newest stored post of `author` (for a pseudonym to show).
    pub fn latest_post_of(&self, author: &PublicKey) -> Result<Option<SignedPost>, StoreError> {
        let b = self.b();
        let Some(k) = b
            .items
            .scan_prefix(prefixed(AUTHOR, author.as_bytes()))
            .keys()
            .next_back()
        else {
            return Ok(None);
        };
        let k = k.during("read the author index")?;
        match k.get(1..).and_then(split_author_key) {
            Some((_, key)) => self.get_post(&PostId(key.id)),
            None => Ok(None),
        }
    }

    /// Exact number of posts stored in `topic`, in O(1): the count is kept
    /// in memory and written in the same batch as the posts.
    pub fn count_topic(&self, topic: &TopicName) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .counts
            .get(topic.as_str().as_bytes())
            .copied()
            .unwrap_or(0))
    }

    /// Posts stored in all topics; O(number of topics).
    pub fn post_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .counts
            .values()
            .fold(0u64, |n, c| n.saturating_add(*c)))
    }

    /// How many posts `author` created in `[from_ms, to_ms]`, counting at
    /// most `limit`: the per-author rate limit asks "more than N lately?".
    /// From memory once the author's times were read.
    pub fn count_author_between(
        &self,
        author: &PublicKey,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let b = self.b();
        let mut memory = self.lock();
        memory
            .times
            .count_between(&b.items, &author.0, from_ms, to_ms, limit)
    }

    /// Adds the deletion of a post and its entries to `pending` (and its
    /// tombstone, if given). Returns the post if it was stored and
    /// readable; a post whose bytes do not decode is purged everywhere.
    pub(super) fn remove_into(
        &self,
        pending: &mut Pending,
        id: &PostId,
        tombstone: Option<&[u8]>,
    ) -> Result<Option<SignedPost>, StoreError> {
        let b = self.b();
        let Some(place) = self.place_of(&id.0)? else {
            if self.contains_post(id)? {
                // An id entry that does not decode.
                self.purge_into(pending, id)?;
            }
            return Ok(None);
        };
        let post_key = place.post_key();
        let post = b
            .items
            .get(&post_key)
            .during("read a post")?
            .and_then(|b| decode_post(&b));
        let Some(post) = post else {
            tracing::warn!(post = %id.short(), "deleting a stored post that does not decode");
            self.purge_into(pending, id)?;
            return Ok(None);
        };
        pending.remove(post_key);
        pending.remove(prefixed(POST_ID, &id.0));
        pending.remove(prefixed(
            AUTHOR,
            &author_key(post.content.author.as_bytes(), &place.key),
        ));
        pending.count(&place.topic, -1);
        pending
            .times
            .push((post.content.author.0, place.key.created_at, false));
        pending.forget_sums = true;
        if let Some(data) = tombstone {
            let tkey = prefixed(TOMBSTONE, &topic_key(&place.topic, &place.key));
            if let Some(old) = b
                .items
                .get(prefixed(TOMBSTONE_ID, &id.0))
                .during("read a tombstone")?
            {
                if old.as_ref() != tkey.as_slice() {
                    pending.remove(old.to_vec());
                }
            }
            pending.insert(prefixed(TOMBSTONE_ID, &id.0), tkey.clone());
            pending.insert(tkey, data);
        }
        Ok(Some(post))
    }

    /// Adds the deletion of every entry naming post `id` to `pending`, for
    /// a post whose bytes or id entry cannot be read. Finding them needs a
    /// scan of the posts and the author index: slow, but only ever needed
    /// after damage.
    fn purge_into(&self, pending: &mut Pending, id: &PostId) -> Result<(), StoreError> {
        let b = self.b();
        for k in range(&b.items, whole_kind(POST)).keys() {
            let k = k.during("read posts")?;
            if id_suffix(&k) == Some(id.0) {
                if let Some((topic, _)) = k.get(1..).and_then(split_topic_key) {
                    pending.count(topic, -1);
                }
                pending.remove(k.to_vec());
            }
        }
        for k in range(&b.items, whole_kind(AUTHOR)).keys() {
            let k = k.during("read the author index")?;
            if id_suffix(&k) == Some(id.0) {
                pending.remove(k.to_vec());
            }
        }
        pending.remove(prefixed(POST_ID, &id.0));
        pending.forget_sums = true;
        pending.forget_times = true;
        Ok(())
    }

    /// Deletes a post, its entries and its share of the count in one batch,
    /// and writes `tombstone` in its place if given.
    fn remove_post(
        &self,
        id: &PostId,
        tombstone: Option<&[u8]>,
    ) -> Result<Option<SignedPost>, StoreError> {
        let mut memory = self.lock();
        let mut pending = Pending::default();
        let removed = self.remove_into(&mut pending, id, tombstone)?;
        self.commit(&mut memory, pending)?;
        Ok(removed)
    }

    /// Deletes a post with all its index entries, atomically (a retraction,
    /// a block). Returns the deleted post, `None` if it was not stored.
    pub fn delete_post(&self, id: &PostId) -> Result<Option<SignedPost>, StoreError> {
        self.remove_post(id, None)
    }

    /// Deletes a post and keeps `tombstone` (the caller's bytes: author,
    /// parent, who hid it and why) in its place, in one batch, so a crash
    /// can never leave a hidden post with neither body nor tombstone.
    /// Returns the hidden post; `None` (nothing written) if it was not
    /// stored.
    pub fn hide_post(
        &self,
        id: &PostId,
        tombstone: &[u8],
    ) -> Result<Option<SignedPost>, StoreError> {
        self.remove_post(id, Some(tombstone))
    }

    /// Deletes every post of `author` in `scope` (all topics for
    /// [`Scope::Community`]) when a block takes effect, in batches of
    /// [`DELETE_BATCH`] posts, each batch atomic. Returns the ids deleted
    /// and their topics. Found through the author index, so the cost is the
    /// author's posts, not the store.
    pub fn delete_author_posts(
        &self,
        author: &PublicKey,
        scope: &Scope,
    ) -> Result<Vec<(PostId, TopicName)>, StoreError> {
        let b = self.b();
        let mut victims = Vec::new();
        for kv in b.items.scan_prefix(prefixed(AUTHOR, author.as_bytes())) {
            let (k, topic) = kv.during("read an author's posts")?;
            let Some((_, key)) = k.get(1..).and_then(split_author_key) else {
                tracing::warn!(key = %hex_tail(&k), "skipping a malformed author index entry");
                continue;
            };
            let in_scope = match scope {
                Scope::Community => true,
                Scope::Topic(t) => topic.as_ref() == t.as_str().as_bytes(),
            };
            if in_scope {
                victims.push(PostId(key.id));
            }
        }
        let mut out = Vec::with_capacity(victims.len());
        for chunk in victims.chunks(DELETE_BATCH) {
            let mut memory = self.lock();
            let mut pending = Pending::default();
            let mut removed = Vec::with_capacity(chunk.len());
            for id in chunk {
                if let Some(post) = self.remove_into(&mut pending, id, None)? {
                    removed.push((*id, post.content.topic));
                }
            }
            self.commit(&mut memory, pending)?;
            out.extend(removed);
        }
        Ok(out)
    }
}

/// Posts deleted per batch when a block is enforced: bounds how long the
/// write lock is held while readers wait on counts.
pub(super) const DELETE_BATCH: usize = 512;
