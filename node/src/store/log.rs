//! The community log (moderation actions, retractions, sealed reports) and
//! the retractions it implies.

use protocol::sync::ItemKey;
use protocol::{PostId, PublicKey, SignedPost};

use super::error::During;
use super::keys::{
    hex_tail, item_key_bytes, parse_id, parse_item_key, prefixed, retraction_key, retraction_post,
    whole_kind, LOG, RETRACTION, TAG_LEN,
};
use super::{range, Pending, Store, StoreError, LOG_SCOPE};

/// What [`Store::apply_retraction`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retracted {
    /// The retraction was not in the community log before (false: a
    /// duplicate, to be neither relayed nor announced again).
    pub new_in_log: bool,
    /// The post it deleted, if it was stored and written by the retracting
    /// author.
    pub removed: Option<SignedPost>,
}

impl Store {
    /// Adds an item (encoded `Message`) to the community log. `Ok(false)`,
    /// writing nothing, if an item with this key is already there.
    pub fn insert_log(&self, key: ItemKey, message: &[u8]) -> Result<bool, StoreError> {
        let b = self.b();
        let mut memory = self.lock();
        let k = prefixed(LOG, &item_key_bytes(&key));
        if b.items.contains_key(&k).during("read the community log")? {
            return Ok(false);
        }
        let mut pending = Pending::default();
        let sealed = self.keys.seal(&k, message);
        pending.insert(k, sealed);
        pending.stored_one(LOG_SCOPE);
        pending.forget_sums = true;
        self.commit(&mut memory, pending)?;
        Ok(true)
    }

    /// Removes an item from the community log (an expired report).
    /// `Ok(false)`: it was not there.
    pub fn remove_log(&self, key: &ItemKey) -> Result<bool, StoreError> {
        let b = self.b();
        let mut memory = self.lock();
        let k = prefixed(LOG, &item_key_bytes(key));
        if !b.items.contains_key(&k).during("read the community log")? {
            return Ok(false);
        }
        let mut pending = Pending::default();
        pending.remove(k);
        pending.forget_sums = true;
        self.commit(&mut memory, pending)?;
        Ok(true)
    }

    /// Whether the community log holds the item with this key.
    pub fn contains_log(&self, key: &ItemKey) -> Result<bool, StoreError> {
        let b = self.b();
        b.items
            .contains_key(prefixed(LOG, &item_key_bytes(key)))
            .during("read the community log")
    }

    /// The whole community log, oldest first: folded at start-up to rebuild
    /// the moderation state. Malformed keys are skipped with a warning.
    pub fn log_items(&self) -> Result<Vec<(ItemKey, Vec<u8>)>, StoreError> {
        let b = self.b();
        let mut out = Vec::new();
        for kv in range(&b.items, whole_kind(LOG)) {
            let (k, v) = kv.during("read the community log")?;
            match (k.get(1..).and_then(parse_item_key), self.open_value(&k, &v)) {
                (Some(key), Some(message)) => out.push((key, message)),
                _ => {
                    tracing::warn!(key = %hex_tail(&k), "skipping an unreadable community log item")
                }
            }
        }
        Ok(out)
    }

    /// Number of items in the community log; O(n), for status displays.
    pub fn log_len(&self) -> Result<u64, StoreError> {
        let b = self.b();
        let mut n = 0u64;
        for k in range(&b.items, whole_kind(LOG)).keys() {
            k.during("read the community log")?;
            n = n.saturating_add(1);
        }
        Ok(n)
    }

    // ----- retractions -----------------------------------------------------

    /// Remembers that `author` retracted `post`, so it is refused if it
    /// ever arrives again. Does not delete the post or log the retraction:
    /// [`Store::apply_retraction`] does all three atomically.
    pub fn add_retraction(&self, post: &PostId, author: &PublicKey) -> Result<(), StoreError> {
        let mut memory = self.lock();
        let mut pending = Pending::default();
        self.retraction_into(&mut pending, post, author);
        self.commit(&mut memory, pending)
    }

    /// Adds the entry saying `author` retracted `post` to `pending`: its
    /// key names the author by tag, its sealed value by key.
    fn retraction_into(&self, pending: &mut Pending, post: &PostId, author: &PublicKey) {
        let k = prefixed(
            RETRACTION,
            &retraction_key(&post.0, &self.keys.author_tag(&author.0)),
        );
        let sealed = self.keys.seal(&k, &author.0);
        pending.insert(k, sealed);
        pending.retracted.push((post.0, author.0));
    }

    /// Applies a retraction in one batch: adds its message to the community
    /// log (under `key`), remembers that `author` retracted `post`, deletes
    /// the post if `author` wrote it. A crash can therefore never leave a logged
    /// retraction whose post is still stored (a duplicate of the log item
    /// would be ignored and the post would stay forever). Applying the same
    /// retraction again is harmless and finishes anything a damaged store
    /// missed.
    pub fn apply_retraction(
        &self,
        key: ItemKey,
        message: &[u8],
        post: &PostId,
        author: &PublicKey,
    ) -> Result<Retracted, StoreError> {
        let b = self.b();
        let mut memory = self.lock();
        let mut pending = Pending::default();
        let log_key = prefixed(LOG, &item_key_bytes(&key));
        let new_in_log = !b
            .items
            .contains_key(&log_key)
            .during("read the community log")?;
        if new_in_log {
            let sealed = self.keys.seal(&log_key, message);
            pending.insert(log_key, sealed);
            pending.stored_one(LOG_SCOPE);
            pending.forget_sums = true;
        }
        self.retraction_into(&mut pending, post, author);
        let held = self.get_post_in(&memory, post)?;
        let removed = match held {
            Some(p) if p.content.author == *author => {
                self.remove_into(&memory, &mut pending, post, None)?
            }
            Some(_) => None,
            None if self.contains_post_in(&memory, post)? => {
                // Stored but unreadable: deleted, whoever wrote it cannot
                // be told.
                self.remove_into(&memory, &mut pending, post, None)?
            }
            None => None,
        };
        self.commit(&mut memory, pending)?;
        Ok(Retracted {
            new_in_log,
            removed,
        })
    }

    /// Whether `author` retracted `post`: what decides that a post is
    /// refused forever (only its author's retraction binds it). In memory.
    pub fn is_retracted_by(&self, post: &PostId, author: &PublicKey) -> Result<bool, StoreError> {
        Ok(self.lock().is_retracted_by(&post.0, &author.0))
    }

    /// Every key that retracted `post`, in key order. Several only when
    /// someone signed a retraction of a post that is not theirs (which
    /// binds nothing).
    pub fn retraction_authors(&self, post: &PostId) -> Result<Vec<PublicKey>, StoreError> {
        let mut who = self
            .lock()
            .retracted
            .get(&post.0)
            .cloned()
            .unwrap_or_default();
        who.sort_unstable();
        Ok(who.into_iter().map(PublicKey).collect())
    }

    /// Every stored retraction as (post, retracting key): what start-up
    /// enforces again, so a post whose retraction was logged is gone
    /// whatever a crash left.
    pub fn retractions(&self) -> Result<Vec<(PostId, PublicKey)>, StoreError> {
        self.read_retractions()
    }

    /// Every readable retraction entry, in key order (a malformed or
    /// unreadable one is skipped with a warning and reported by
    /// `check_integrity`).
    pub(super) fn read_retractions(&self) -> Result<Vec<(PostId, PublicKey)>, StoreError> {
        let b = self.b();
        let mut out = Vec::new();
        for kv in range(&b.items, whole_kind(RETRACTION)) {
            let (k, v) = kv.during("read the retractions")?;
            match self.retraction_of(&k, &v) {
                Some(pair) => out.push(pair),
                None => tracing::warn!(key = %hex_tail(&k), "skipping an unreadable retraction"),
            }
        }
        Ok(out)
    }

    /// The (post, retracting key) of an `r` entry, if it is well formed,
    /// opens, and its key's tag is its author's.
    pub(super) fn retraction_of(&self, k: &[u8], v: &[u8]) -> Option<(PostId, PublicKey)> {
        let post = retraction_post(k.get(1..)?)?;
        let author = parse_id(&self.open_value(k, v)?)?;
        let tag = k.get(1 + 32..)?;
        (tag.len() == TAG_LEN && tag == self.keys.author_tag(&author))
            .then_some((PostId(post), PublicKey(author)))
    }

    /// A key that retracted `post`, if any did (the smallest when several
    /// did). To decide whether a post is refused, ask
    /// [`Store::is_retracted_by`] with its author: a bogus retraction by
    /// someone else may sort first.
    pub fn retraction_author(&self, post: &PostId) -> Result<Option<PublicKey>, StoreError> {
        Ok(self.retraction_authors(post)?.into_iter().next())
    }
}
