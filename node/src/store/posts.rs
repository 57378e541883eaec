//! Posts and their indexes: storing a page of arrivals in one batch,
//! reading a topic, an author's posts, counts, and deleting.

use std::collections::HashSet;

use protocol::sync::ItemKey;
use protocol::{Message, PostId, PublicKey, Scope, SignedPost, TopicName, VerifiedPost};

use super::authors::{Entry as AuthorEntry, Line as AuthorLine};
use super::error::During;
use super::keys::{
    hex_tail, kind_range, prefixed, split_topic_key, topic_end, topic_key, topic_prefix,
    whole_kind, Tag, COUNT, EVER, ID_LEN, NAME, POST, TOMBSTONE, TOMBSTONE_ID,
};
use super::{id_suffix, range, Memory, Pending, Store, StoreError};

/// Where a stored post lives: its `p` key and what the other entries need.
#[derive(Clone, Copy)]
pub(super) struct Place {
    pub(super) key: ItemKey,
    pub(super) topic: Tag,
}

/// A post about to be stored: what its entries need, with its wire bytes
/// already sealed (done before the write lock is taken).
pub(super) struct NewPost {
    pub(super) id: PostId,
    pub(super) author: [u8; 32],
    pub(super) author_tag: Tag,
    pub(super) topic: TopicName,
    pub(super) key: ItemKey,
    pub(super) tag: Tag,
    pub(super) post_key: Vec<u8>,
    pub(super) sealed: Vec<u8>,
}

impl Store {
    /// Prepares a (verified, or once verified) post whose id is `id` for
    /// [`Store::insert_new`]: its keys and its sealed bytes.
    pub(super) fn new_post(&self, post: &SignedPost, id: PostId) -> NewPost {
        let key = ItemKey {
            created_at: post.content.created_at,
            id: id.0,
        };
        let tag = self.topic_tag(&post.content.topic);
        let post_key = prefixed(POST, &topic_key(&tag, &key));
        let sealed = self
            .keys
            .seal(&post_key, &Message::Post(post.clone()).encode());
        NewPost {
            id,
            author: post.content.author.0,
            author_tag: self.keys.author_tag(&post.content.author.0),
            topic: post.content.topic.clone(),
            key,
            tag,
            post_key,
            sealed,
        }
    }
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
    /// was newly stored. The duplicate and retraction checks and the counts
    /// are in memory: the write is the batch alone.
    pub fn insert_posts(&self, posts: &[&VerifiedPost]) -> Result<Vec<bool>, StoreError> {
        // Encode, seal and derive keys before taking the lock, on every
        // core: sealing is a third of a post's cost on this thread
        // (callgrind, `ingest_instructions`), and the write that follows
        // is sled's alone.
        let prepared: Vec<NewPost> = crate::verify::on_cores(posts.to_vec(), |part| {
            part.iter()
                .map(|p| self.new_post(p.signed(), p.id()))
                .collect()
        });
        self.insert_new(prepared)
    }

    /// Stores prepared posts in one atomic batch: what
    /// [`Store::insert_posts`] does once the posts are sealed (and what
    /// the migration does with the posts of an older layout).
    pub(super) fn insert_new(&self, posts: Vec<NewPost>) -> Result<Vec<bool>, StoreError> {
        let mut memory = self.lock();
        let mut pending = Pending::default();
        let mut seen: HashSet<PostId> = HashSet::with_capacity(posts.len());
        let mut stored = Vec::with_capacity(posts.len());
        let mut named: HashSet<Tag> = HashSet::new();
        let mut added: Vec<(TopicName, PostId)> = Vec::with_capacity(posts.len());
        for post in posts {
            // The duplicate check asks the in-memory author index, which
            // holds every stored post (its log entry is written in the
            // same batch as the post): no read of the tree.
            let new = !seen.contains(&post.id)
                && !memory.is_retracted_by(&post.id.0, &post.author)
                && !memory.authors.holds(&post.author_tag, &post.key);
            stored.push(new);
            if !new {
                continue;
            }
            seen.insert(post.id);
            // The post alone: its id, author and topic are found through
            // the author log line below (folded into memory).
            pending.insert(post.post_key, post.sealed);
            pending.author_lines.push(AuthorLine {
                added: true,
                author: post.author_tag,
                entry: AuthorEntry {
                    key: post.key,
                    topic: post.tag,
                },
            });
            pending.count(&post.tag, 1);
            pending.stored_one(&post.tag);
            if !memory.names.contains_key(&post.tag) && named.insert(post.tag) {
                self.name_into(&mut pending, &post.tag, &post.topic);
            }
            added.push((post.topic, post.id));
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
        for (topic, id) in added {
            if let Some(acc) = sums.get_mut(&protocol::sync::SyncScope::Topic(topic)) {
                acc.add(&id.0);
            }
        }
        Ok(stored)
    }

    /// Adds the (sealed) name entry of a topic's tag to `pending`.
    pub(super) fn name_into(&self, pending: &mut Pending, tag: &Tag, topic: &TopicName) {
        let key = prefixed(NAME, tag);
        let sealed = self.keys.seal(&key, topic.as_str().as_bytes());
        pending.insert(key, sealed);
        pending.names.push((*tag, topic.clone()));
    }

    /// Where post `id` is stored if it is, from the in-memory id index:
    /// the caller reads the post key to know (see
    /// [`AuthorIndex::place`](super::authors::AuthorIndex::place)).
    pub(super) fn place_in(memory: &Memory, id: &[u8; ID_LEN]) -> Option<Place> {
        memory.authors.place(id).map(|e| Place {
            key: e.key,
            topic: e.topic,
        })
    }

    /// A stored post; `None` if it is not stored (or its bytes are damaged,
    /// which is logged).
    pub fn get_post(&self, id: &PostId) -> Result<Option<SignedPost>, StoreError> {
        let place = Self::place_in(&self.lock(), &id.0);
        self.post_at(place, id)
    }

    /// [`Store::get_post`] for a caller that holds the memory lock.
    pub(super) fn get_post_in(
        &self,
        memory: &Memory,
        id: &PostId,
    ) -> Result<Option<SignedPost>, StoreError> {
        self.post_at(Self::place_in(memory, &id.0), id)
    }

    /// The post `id` at `place`, decoded.
    fn post_at(&self, place: Option<Place>, id: &PostId) -> Result<Option<SignedPost>, StoreError> {
        let Some(bytes) = self.bytes_at(place, id)? else {
            return Ok(None);
        };
        let post = super::decode_post(&bytes);
        if post.is_none() {
            tracing::warn!(post = %id.short(), "skipping a stored post that does not decode");
        }
        Ok(post)
    }

    /// The stored wire bytes of a post (an encoded `Message::Post`), for
    /// serving it without decoding and re-encoding.
    pub fn get_post_bytes(&self, id: &PostId) -> Result<Option<Vec<u8>>, StoreError> {
        let place = Self::place_in(&self.lock(), &id.0);
        self.bytes_at(place, id)
    }

    /// The opened bytes of post `id` at `place`; `None` if nothing is
    /// there (it is not stored) or they do not open (logged).
    fn bytes_at(&self, place: Option<Place>, id: &PostId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(place) = place else {
            return Ok(None);
        };
        let key = place.post_key();
        let Some(sealed) = self.b().items.get(&key).during("read a post")? else {
            return Ok(None);
        };
        let bytes = self.open_value(&key, &sealed);
        if bytes.is_none() {
            tracing::warn!(post = %id.short(), "a stored post does not open (damaged)");
        }
        Ok(bytes)
    }

    /// Whether this post is stored: a look-up in the in-memory author
    /// index (the same as [`Store::insert_posts`]'s duplicate check), no
    /// read of the tree.
    pub fn holds(&self, post: &VerifiedPost) -> Result<bool, StoreError> {
        let key = ItemKey {
            created_at: post.created_at,
            id: post.id().0,
        };
        let author = self.keys.author_tag(&post.author.0);
        Ok(self.lock().authors.holds(&author, &key))
    }

    /// Whether a post is stored; cheaper than [`Store::get_post`].
    pub fn contains_post(&self, id: &PostId) -> Result<bool, StoreError> {
        let place = Self::place_in(&self.lock(), &id.0);
        self.holds_at(place)
    }

    /// [`Store::contains_post`] for a caller that holds the memory lock.
    pub(super) fn contains_post_in(
        &self,
        memory: &Memory,
        id: &PostId,
    ) -> Result<bool, StoreError> {
        self.holds_at(Self::place_in(memory, &id.0))
    }

    /// Whether a post is stored at `place`.
    fn holds_at(&self, place: Option<Place>) -> Result<bool, StoreError> {
        match place {
            Some(place) => self
                .b()
                .items
                .contains_key(place.post_key())
                .during("read a post"),
            None => Ok(false),
        }
    }

    /// The topic a stored post was written in, without decoding the post:
    /// a reply must live in its parent's topic.
    pub fn topic_of(&self, id: &PostId) -> Result<Option<TopicName>, StoreError> {
        let Some(place) = Self::place_in(&self.lock(), &id.0) else {
            return Ok(None);
        };
        if !self.holds_at(Some(place))? {
            return Ok(None);
        }
        if let Some(name) = self.lock().names.get(&place.topic) {
            return Ok(Some(name.clone()));
        }
        // The name entry is gone (damage): the post itself names it.
        Ok(self.get_post(id)?.map(|p| p.content.topic))
    }

    /// Ids of stored posts that start with `prefix`, at most `limit`: how a
    /// short printable id is resolved (two results mean it is ambiguous).
    pub fn post_ids_with_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<PostId>, StoreError> {
        Ok(self
            .lock()
            .authors
            .ids_with_prefix(prefix, limit)
            .into_iter()
            .map(PostId)
            .collect())
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
            match self.open_post(&k, &v) {
                Some(p) => out.push(p),
                None => {
                    tracing::warn!(key = %hex_tail(&k), "skipping a stored post that does not open or decode")
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
        let t = &self.topic_tag(topic);
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
        let t = &self.topic_tag(topic);
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
        let t = &self.topic_tag(topic);
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

    /// The newest stored post of `author` (for a pseudonym to show).
    pub fn latest_post_of(&self, author: &PublicKey) -> Result<Option<SignedPost>, StoreError> {
        let newest = self
            .lock()
            .authors
            .of(&self.keys.author_tag(&author.0))
            .last()
            .map(|e| e.key.id);
        match newest {
            Some(id) => self.get_post(&PostId(id)),
            None => Ok(None),
        }
    }

    /// Exact number of posts stored in `topic`, in O(1): the count is kept
    /// in memory and written in the same batch as the posts.
    pub fn count_topic(&self, topic: &TopicName) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .counts
            .get(&self.topic_tag(topic)[..])
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
    /// From memory.
    pub fn count_author_between(
        &self,
        author: &PublicKey,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let tag = self.keys.author_tag(&author.0);
        Ok(self
            .lock()
            .authors
            .count_between(&tag, from_ms, to_ms, limit))
    }

    /// Adds the deletion of a post and its entries to `pending` (and its
    /// tombstone, if given). Returns the post if it was stored and
    /// readable; a post whose bytes do not decode is purged everywhere.
    pub(super) fn remove_into(
        &self,
        memory: &Memory,
        pending: &mut Pending,
        id: &PostId,
        tombstone: Option<&[u8]>,
    ) -> Result<Option<SignedPost>, StoreError> {
        let b = self.b();
        let Some(place) = Self::place_in(memory, &id.0) else {
            return Ok(None);
        };
        let post_key = place.post_key();
        let Some(sealed) = b.items.get(&post_key).during("read a post")? else {
            return Ok(None);
        };
        let Some(post) = self.open_post(&post_key, &sealed) else {
            tracing::warn!(post = %id.short(), "deleting a stored post that does not decode");
            self.purge_into(memory, pending, id)?;
            return Ok(None);
        };
        pending.remove(post_key);
        pending.author_lines.push(AuthorLine {
            added: false,
            author: self.keys.author_tag(&post.content.author.0),
            entry: AuthorEntry {
                key: place.key,
                topic: place.topic,
            },
        });
        pending.count(&place.topic, -1);
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
            let sealed = self.keys.seal(&tkey, data);
            pending.insert(prefixed(TOMBSTONE_ID, &id.0), tkey.clone());
            pending.insert(tkey, sealed);
        }
        Ok(Some(post))
    }

    /// Adds the deletion of every entry naming post `id` to `pending`, for
    /// a post whose bytes cannot be read. Finding them needs a
    /// scan of the posts and the author index: slow, but only ever needed
    /// after damage.
    fn purge_into(
        &self,
        memory: &Memory,
        pending: &mut Pending,
        id: &PostId,
    ) -> Result<(), StoreError> {
        let b = self.b();
        for k in range(&b.items, whole_kind(POST)).keys() {
            let k = k.during("read posts")?;
            if id_suffix(&k) == Some(id.0) {
                if let Some((topic, _)) = k.get(1..).and_then(split_topic_key) {
                    pending.count(&topic, -1);
                }
                pending.remove(k.to_vec());
            }
        }
        if let Some((author, entry)) = memory.authors.find(&id.0) {
            pending.author_lines.push(AuthorLine {
                added: false,
                author,
                entry,
            });
        }
        pending.forget_sums = true;
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
        let removed = self.remove_into(&memory, &mut pending, id, tombstone)?;
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
        self.delete_author_posts_dated(author, scope, |_| true)
    }

    /// [`delete_author_posts`](Self::delete_author_posts) of the posts
    /// whose `created_at` passes `dated`: when a member's membership ends,
    /// only their posts of the community's invite-only eras go.
    pub fn delete_author_posts_dated(
        &self,
        author: &PublicKey,
        scope: &Scope,
        dated: impl Fn(u64) -> bool,
    ) -> Result<Vec<(PostId, TopicName)>, StoreError> {
        let in_topic = match scope {
            Scope::Community => None,
            Scope::Topic(t) => Some(self.topic_tag(t)),
        };
        let victims: Vec<PostId> = self
            .lock()
            .authors
            .of(&self.keys.author_tag(&author.0))
            .iter()
            .filter(|e| in_topic.is_none_or(|t| e.topic == t) && dated(e.key.created_at))
            .map(|e| PostId(e.key.id))
            .collect();
        self.remove_in_batches(&victims)
    }

    /// Deletes these posts with their entries, [`DELETE_BATCH`] at a time,
    /// each batch atomic; returns the ids deleted with their topics.
    fn remove_in_batches(
        &self,
        victims: &[PostId],
    ) -> Result<Vec<(PostId, TopicName)>, StoreError> {
        let mut out = Vec::with_capacity(victims.len());
        for chunk in victims.chunks(DELETE_BATCH) {
            let mut memory = self.lock();
            let mut pending = Pending::default();
            let mut removed = Vec::with_capacity(chunk.len());
            for id in chunk {
                if let Some(post) = self.remove_into(&memory, &mut pending, id, None)? {
                    removed.push((*id, post.content.topic));
                }
            }
            self.commit(&mut memory, pending)?;
            out.extend(removed);
        }
        Ok(out)
    }
}

/// What [`Store::forget_topic`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Forgotten {
    /// Posts of the topic deleted.
    pub posts: u64,
    /// Tombstones of hidden posts of the topic deleted.
    pub tombstones: u64,
}

impl Store {
    /// Deletes everything this store holds of `topic`: its posts with
    /// their index entries, its tombstones, its count, its name entry and
    /// its stored-ever count (and that count in the record of acknowledged
    /// writes, so the deletion is not taken for damage). For `mutual leave
    /// TOPIC --forget`, after the topic was left: if it is joined again,
    /// sync fetches its posts anew. Retractions stay: they are items of
    /// the community log, which name a post id but no topic.
    pub fn forget_topic(&self, topic: &TopicName) -> Result<Forgotten, StoreError> {
        let b = self.b();
        let tag = self.topic_tag(topic);
        let mut victims = Vec::new();
        for k in range(
            &b.items,
            kind_range(POST, &topic_prefix(&tag), &topic_end(&tag)),
        )
        .keys()
        {
            let k = k.during("read a topic")?;
            match k.get(1..).and_then(split_topic_key) {
                Some((_, key)) => victims.push(PostId(key.id)),
                None => tracing::warn!(key = %hex_tail(&k), "skipping a malformed post key"),
            }
        }
        let posts = self.remove_in_batches(&victims)?.len() as u64;
        let mut memory = self.lock();
        let mut pending = Pending::default();
        let mut tombstones = 0u64;
        for k in range(
            &b.items,
            kind_range(TOMBSTONE, &topic_prefix(&tag), &topic_end(&tag)),
        )
        .keys()
        {
            let k = k.during("read tombstones")?;
            if let Some((_, key)) = k.get(1..).and_then(split_topic_key) {
                let link = prefixed(TOMBSTONE_ID, &key.id);
                if b.items
                    .get(&link)
                    .during("read a tombstone")?
                    .is_some_and(|l| l.as_ref() == k.as_ref())
                {
                    pending.remove(link);
                }
            }
            pending.remove(k.to_vec());
            tombstones += 1;
        }
        pending.remove(prefixed(NAME, &tag));
        pending.remove(prefixed(EVER, &tag));
        pending.remove(prefixed(COUNT, &tag));
        pending.forget_sums = true;
        self.commit(&mut memory, pending)?;
        memory.names.remove(&tag);
        memory.ever.remove(&tag[..]);
        memory.counts.remove(&tag[..]);
        drop(memory);
        if let Some(acked) = &self.acked {
            acked.forget(&tag).map_err(|e| StoreError::Io {
                during: "rewrite the record of acknowledged writes",
                detail: e.to_string(),
            })?;
        }
        Ok(Forgotten { posts, tombstones })
    }
}

/// Posts deleted per batch when a block is enforced: bounds how long the
/// write lock is held while readers wait on counts.
pub(super) const DELETE_BATCH: usize = 512;
