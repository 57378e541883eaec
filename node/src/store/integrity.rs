//! Checking and repairing the store's invariants: every post has its
//! author log entry (which also finds it by id) and the log names no post
//! that is not stored, counts match, the log decodes, tombstones are
//! linked. `mutual doctor` runs both.

use std::collections::{BTreeMap, BTreeSet};

use protocol::sync::ItemKey;

use protocol::{Message, PostId, TopicName};

use super::authors::{AuthorIndex, Entry as AuthorEntry, Line};
use super::error::During;
use super::keys::{
    encode_u64, hex_tail, parse_item_key, prefixed, split_topic_key, topic_key, whole_kind, Tag,
    AUTHOR_LOG, COUNT, ID_LEN, LOG, POST, RETRACTION, TOMBSTONE, TOMBSTONE_ID,
};
use super::{parse_u64, range, Memory, Pending, Store, StoreError};

/// The readable posts, by id, with the entries each must have.
type Readable = BTreeMap<[u8; ID_LEN], Expected>;
/// Keys that are not readable posts, with why.
type Unreadable = Vec<(Vec<u8>, String)>;

/// What a readable post's entries must be.
struct Expected {
    author: Tag,
    key: ItemKey,
    topic: Tag,
    /// The topic's name, from the post (for a missing name entry).
    name: TopicName,
}

impl Expected {
    /// Whether the author index holds this post, under its author and
    /// topic, and finds it by its id.
    fn indexed(&self, authors: &AuthorIndex) -> bool {
        let posts = authors.of(&self.author);
        let i = posts.partition_point(|e| e.key < self.key);
        let entry = AuthorEntry {
            key: self.key,
            topic: self.topic,
        };
        posts.get(i) == Some(&entry) && authors.place(&self.key.id) == Some(entry)
    }
}

impl Store {
    /// The readable posts, each with the entries it must have, and a list
    /// of the `p` keys that are not readable posts.
    fn readable_posts(&self, memory: &Memory) -> Result<(Readable, Unreadable), StoreError> {
        let b = self.b();
        let mut good = BTreeMap::new();
        let mut bad = Vec::new();
        for kv in range(&b.items, whole_kind(POST)) {
            let (k, v) = kv.during("read posts")?;
            let Some((topic, key)) = k.get(1..).and_then(split_topic_key) else {
                bad.push((k.to_vec(), format!("posts: malformed key {}", hex_tail(&k))));
                continue;
            };
            let id = PostId(key.id);
            let Some(p) = self.open_post(&k, &v) else {
                bad.push((
                    k.to_vec(),
                    format!("post {} does not open or decode", id.short()),
                ));
                continue;
            };
            if p.id() != id
                || p.content.created_at != key.created_at
                || self.topic_tag(&p.content.topic) != topic
            {
                bad.push((
                    k.to_vec(),
                    format!("post {} is stored under another key", id.short()),
                ));
                continue;
            }
            if memory.is_retracted_by(&id.0, &p.content.author.0) {
                bad.push((
                    k.to_vec(),
                    format!("post {} was retracted but is stored", id.short()),
                ));
                continue;
            }
            good.insert(
                key.id,
                Expected {
                    author: self.keys.author_tag(&p.content.author.0),
                    key,
                    topic,
                    name: p.content.topic,
                },
            );
        }
        Ok((good, bad))
    }

    /// Walks every post and entry and lists each inconsistency: an entry
    /// without its post (or pointing at the wrong place), a post without
    /// its entries or that does not decode, a count that disagrees, a
    /// retracted post still stored, a broken tombstone link. Empty means
    /// consistent. Reads everything: for tests, `mutual doctor` and
    /// diagnostics, not the hot path. Problems name ids, never content.
    pub fn check_integrity(&self) -> Result<Vec<String>, StoreError> {
        let b = self.b();
        let memory = self.lock();
        let (good, bad) = self.readable_posts(&memory)?;
        let mut problems: Vec<String> = bad.into_iter().map(|(_, why)| why).collect();
        let mut per_topic: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for (id, e) in &good {
            let short = PostId(*id).short();
            if !e.indexed(&memory.authors) {
                problems.push(format!("post {short} has no matching author index entry"));
            }
            if !memory.names.contains_key(&e.topic) {
                problems.push(format!("post {short}'s topic has no name entry"));
            }
            *per_topic.entry(e.topic.to_vec()).or_default() += 1;
        }
        for (_, entry) in memory.authors.all() {
            if !good.contains_key(&entry.key.id) {
                problems.push(format!(
                    "author index entry of {} has no matching post",
                    PostId(entry.key.id).short()
                ));
            }
        }
        for kv in range(&b.items, whole_kind(AUTHOR_LOG)) {
            let (k, v) = kv.during("read the author log")?;
            if Line::decode_all(&v).is_none() {
                problems.push(format!("author log entry {} does not decode", hex_tail(&k)));
            }
        }
        let mut counted: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for kv in range(&b.items, whole_kind(COUNT)) {
            let (k, v) = kv.during("read topic counts")?;
            let topic = k.get(1..).unwrap_or_default().to_vec();
            match parse_u64(&v) {
                Some(n) => {
                    counted.insert(topic, n);
                }
                None => problems.push(format!(
                    "topic {}: the count does not decode",
                    hex_tail(&topic)
                )),
            }
        }
        let in_memory = &memory.counts;
        let topics: BTreeSet<&Vec<u8>> = per_topic
            .keys()
            .chain(counted.keys())
            .chain(in_memory.keys())
            .collect();
        for topic in topics {
            let posts = per_topic.get(topic).copied().unwrap_or(0);
            let count = counted.get(topic).copied().unwrap_or(0);
            let memory = in_memory.get(topic).copied().unwrap_or(0);
            if posts != count || memory != count {
                problems.push(format!(
                    "topic {} counts {count} posts (in memory {memory}) but holds {posts}",
                    hex_tail(topic)
                ));
            }
        }
        for kv in range(&b.items, whole_kind(LOG)) {
            let (k, v) = kv.during("read the community log")?;
            if k.get(1..).and_then(parse_item_key).is_none() {
                problems.push(format!("community log: malformed key {}", hex_tail(&k)));
            } else if self
                .open_value(&k, &v)
                .is_none_or(|m| Message::decode(&m).is_err())
            {
                problems.push(format!(
                    "community log item {} does not decode",
                    hex_tail(&k)
                ));
            }
        }
        for kv in range(&b.items, whole_kind(RETRACTION)) {
            let (k, v) = kv.during("read retractions")?;
            if self.retraction_of(&k, &v).is_none() {
                problems.push(format!("retraction {} is unreadable", hex_tail(&k)));
            }
        }
        problems.extend(self.tombstone_problems()?.into_iter().map(|(_, why)| why));
        Ok(problems)
    }

    /// Tombstones not linked from their id and links to no tombstone, with
    /// the key to delete to fix each.
    fn tombstone_problems(&self) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
        let b = self.b();
        let mut out = Vec::new();
        for kv in range(&b.items, whole_kind(TOMBSTONE)) {
            let (k, v) = kv.during("read tombstones")?;
            if self.open_value(&k, &v).is_none() {
                out.push((
                    k.to_vec(),
                    format!("tombstone {} does not open", hex_tail(&k)),
                ));
                continue;
            }
            let Some((_, key)) = k.get(1..).and_then(split_topic_key) else {
                out.push((
                    k.to_vec(),
                    format!("tombstones: malformed key {}", hex_tail(&k)),
                ));
                continue;
            };
            let linked = b
                .items
                .get(prefixed(TOMBSTONE_ID, &key.id))
                .during("read tombstones")?;
            if linked.as_deref() != Some(k.as_ref()) {
                out.push((
                    k.to_vec(),
                    format!(
                        "tombstone of {} is not linked from its id",
                        PostId(key.id).short()
                    ),
                ));
            }
        }
        for kv in range(&b.items, whole_kind(TOMBSTONE_ID)) {
            let (k, tkey) = kv.during("read tombstones")?;
            let ok = tkey.first() == Some(&TOMBSTONE)
                && b.items.contains_key(&tkey).during("read tombstones")?;
            if !ok {
                out.push((
                    k.to_vec(),
                    format!("tombstone link {} points at no tombstone", hex_tail(&k)),
                ));
            }
        }
        Ok(out)
    }

    /// Restores what [`Store::check_integrity`] checks, should a bug or a
    /// damaged disk ever break it: deletes posts that do not decode or were
    /// retracted, drops entries without a matching post, adds missing ones,
    /// recounts every topic and drops broken tombstone links (a tombstone
    /// whose link is missing is linked again). Each step is idempotent, so
    /// an interrupted repair is finished by running it again. Returns how
    /// many entries it changed. Reads everything: never on the hot path.
    pub fn repair(&self) -> Result<usize, StoreError> {
        let b = self.b();
        let mut memory = self.lock();
        let (good, bad) = self.readable_posts(&memory)?;
        let mut pending = Pending::default();
        let mut fixed = 0usize;
        for (k, why) in bad {
            tracing::warn!("repair: deleting an unreadable post entry ({why})");
            pending.remove(k);
            fixed += 1;
        }
        let mut per_topic: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        let mut log_broken = false;
        for e in good.values() {
            if !e.indexed(&memory.authors) {
                log_broken = true;
                fixed += 1;
            }
            if !memory.names.contains_key(&e.topic)
                && !pending.names.iter().any(|(t, _)| *t == e.topic)
            {
                self.name_into(&mut pending, &e.topic, &e.name);
                fixed += 1;
            }
            *per_topic.entry(e.topic.to_vec()).or_default() += 1;
        }
        // The author log: written anew from the posts when it disagrees.
        log_broken |= memory
            .authors
            .all()
            .any(|(_, entry)| !good.contains_key(&entry.key.id));
        for kv in range(&b.items, whole_kind(AUTHOR_LOG)) {
            let (k, v) = kv.during("read the author log")?;
            log_broken |= Line::decode_all(&v).is_none();
            if log_broken {
                pending.remove(k.to_vec());
            }
        }
        if log_broken {
            fixed += 1;
            memory.authors.clear();
            pending.author_lines = good
                .values()
                .map(|e| Line {
                    added: true,
                    author: e.author,
                    entry: AuthorEntry {
                        key: e.key,
                        topic: e.topic,
                    },
                })
                .collect();
        }
        // Counts: written whole, from the posts.
        for kv in range(&b.items, whole_kind(COUNT)) {
            let (k, v) = kv.during("read topic counts")?;
            let topic = k.get(1..).unwrap_or_default();
            if per_topic.get(topic).copied() != parse_u64(&v) {
                pending.remove(k.to_vec());
                fixed += 1;
            }
        }
        for (topic, n) in &per_topic {
            let k = prefixed(COUNT, topic);
            if b.items
                .get(&k)
                .during("read topic counts")?
                .as_deref()
                .and_then(parse_u64)
                != Some(*n)
            {
                pending.insert(k, &encode_u64(*n)[..]);
                fixed += 1;
            }
        }
        // Tombstones: relink a tombstone, drop a link to nothing.
        for (k, _) in self.tombstone_problems()? {
            match k.first() {
                Some(&TOMBSTONE) => {
                    let readable = b
                        .items
                        .get(&k)
                        .during("read tombstones")?
                        .is_some_and(|v| self.open_value(&k, &v).is_some());
                    match k.get(1..).and_then(split_topic_key) {
                        Some((topic, key)) if readable => pending.insert(
                            prefixed(TOMBSTONE_ID, &key.id),
                            prefixed(TOMBSTONE, &topic_key(&topic, &key)),
                        ),
                        Some((_, key)) => {
                            pending.remove(prefixed(TOMBSTONE_ID, &key.id));
                            pending.remove(k);
                        }
                        None => pending.remove(k),
                    }
                }
                _ => pending.remove(k),
            }
            fixed += 1;
        }
        if fixed > 0 {
            pending.forget_sums = true;
            // The counts were written whole above: memory follows them,
            // not a delta.
            let seq = memory.authors.next_seq();
            if !pending.author_lines.is_empty() {
                pending.batch.insert(
                    prefixed(AUTHOR_LOG, &encode_u64(seq)),
                    Line::encode_all(&pending.author_lines),
                );
            }
            b.items
                .apply_batch(pending.batch)
                .during("repair the store")?;
            memory.authors.apply(seq, &pending.author_lines);
            memory.counts = per_topic.into_iter().collect();
            memory.names.extend(pending.names);
            self.forget_scope_sums();
            self.touch();
            tracing::warn!(fixed, "repaired the store");
        }
        Ok(fixed)
    }
}
