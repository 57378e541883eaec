//! Local data that arrivals never touch, each in its own tree: joined
//! topics, the address book, mutes and small named values. All sealed:
//! keys are tags (keyed hashes) where the key would name a topic, a peer
//! or an author, and every value is sealed with its tree and key as
//! associated data.

use std::collections::BTreeSet;

use protocol::{PublicKey, TopicName};

use super::error::During;
use super::keys::{encode_u64, hex_tail, parse_id, parse_u64};
use super::seal::local_ad;
use super::{PeerRecord, Store, StoreError};

/// Largest peer record written or read back (8 addresses of 512 bytes and
/// their lengths fit easily).
const PEER_VALUE_LIMIT: usize = 8 * 1024;

/// The peer record in (opened) address-book bytes: a record, or the first
/// layout's list of addresses (read as never seen).
pub(super) fn decode_peer_record(v: &[u8]) -> Option<PeerRecord> {
    protocol::wire::decode::<PeerRecord>(v, PEER_VALUE_LIMIT)
        .ok()
        .or_else(|| {
            protocol::wire::decode::<Vec<String>>(v, PEER_VALUE_LIMIT)
                .ok()
                .map(|addrs| PeerRecord {
                    addrs,
                    ..PeerRecord::default()
                })
        })
}

impl Store {
    /// `plain` sealed for `key` of the local tree `tree`.
    fn seal_local(&self, tree: &str, key: &[u8], plain: &[u8]) -> Vec<u8> {
        self.keys.seal(&local_ad(tree, key), plain)
    }

    /// The plaintext of the value at `key` of the local tree `tree`.
    fn open_local(&self, tree: &str, key: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        self.keys.open(&local_ad(tree, key), sealed)
    }

    // ----- joined topics ---------------------------------------------------

    /// Records that this node joined `topic` (now), so it rejoins after a
    /// restart. Joining again keeps the first time.
    pub fn join_topic(&self, topic: &TopicName) -> Result<(), StoreError> {
        self.join_topic_at(topic, Some(crate::now_ms()))
    }

    /// Records a joined topic with when it was joined (`None`: unknown, a
    /// store from before times were kept); keeps an earlier record.
    pub(super) fn join_topic_at(
        &self,
        topic: &TopicName,
        at: Option<u64>,
    ) -> Result<(), StoreError> {
        let b = self.b();
        let key = self.topic_tag(topic);
        let mut plain = Vec::with_capacity(9 + topic.as_str().len());
        match at {
            Some(at) => {
                plain.push(1);
                plain.extend_from_slice(&encode_u64(at));
            }
            None => plain.push(0),
        }
        plain.extend_from_slice(topic.as_str().as_bytes());
        let sealed = self.seal_local("topics", &key, &plain);
        let joined = b
            .topics
            .compare_and_swap(key, None as Option<&[u8]>, Some(sealed))
            .during("record a joined topic")?;
        if joined.is_ok() {
            self.touch();
        }
        Ok(())
    }

    /// Forgets a joined topic (its posts stay until pruned).
    pub fn leave_topic(&self, topic: &TopicName) -> Result<(), StoreError> {
        let b = self.b();
        b.topics
            .remove(self.topic_tag(topic))
            .during("forget a joined topic")?;
        self.touch();
        Ok(())
    }

    /// The joined topics, in name order.
    pub fn joined_topics(&self) -> Result<Vec<TopicName>, StoreError> {
        Ok(self
            .joined_topics_with_times()?
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    /// The joined topics with when they were joined (ms since the Unix
    /// epoch; `None` if a store from before this was recorded), in name
    /// order.
    pub fn joined_topics_with_times(&self) -> Result<Vec<(TopicName, Option<u64>)>, StoreError> {
        let b = self.b();
        let mut out = Vec::new();
        for kv in b.topics.iter() {
            let (k, v) = kv.during("read joined topics")?;
            let parsed = self.open_local("topics", &k, &v).and_then(|plain| {
                let (at, name) = match plain.split_first()? {
                    (1, rest) if rest.len() >= 8 => {
                        let (at, name) = rest.split_at(8);
                        (parse_u64(at), name)
                    }
                    (0, name) => (None, name),
                    _ => return None,
                };
                let name = TopicName::parse_exact(std::str::from_utf8(name).ok()?).ok()?;
                Some((name, at))
            });
            match parsed {
                Some(t) => out.push(t),
                None => tracing::warn!(
                    key = %hex_tail(&k),
                    "skipping a joined topic that does not open or parse"
                ),
            }
        }
        out.sort();
        Ok(out)
    }

    // ----- address book ----------------------------------------------------

    /// Remembers a peer's address-book record (see [`crate::network::peers`], which
    /// bounds what a record holds and how many there are). An oversized
    /// record is refused.
    pub fn put_peer(&self, peer: &[u8], record: &PeerRecord) -> Result<(), StoreError> {
        let b = self.b();
        let bytes = protocol::wire::encode(record);
        if peer.is_empty() || peer.len() > u8::MAX as usize || bytes.len() > PEER_VALUE_LIMIT {
            return Ok(());
        }
        let key = self.keys.peer_tag(peer);
        let mut plain = Vec::with_capacity(1 + peer.len() + bytes.len());
        plain.push(peer.len() as u8);
        plain.extend_from_slice(peer);
        plain.extend_from_slice(&bytes);
        let sealed = self.seal_local("peers", &key, &plain);
        b.peers
            .insert(key, sealed)
            .during("write the address book")?;
        self.touch();
        Ok(())
    }

    /// Forgets a peer and its addresses (unreachable, or cut off).
    pub fn remove_peer(&self, peer: &[u8]) -> Result<(), StoreError> {
        let b = self.b();
        b.peers
            .remove(self.keys.peer_tag(peer))
            .during("write the address book")?;
        self.touch();
        Ok(())
    }

    /// The whole address book. Unreadable entries are skipped; entries of
    /// the first layout (a list of addresses) read as never seen.
    pub fn peer_records(&self) -> Result<Vec<(Vec<u8>, PeerRecord)>, StoreError> {
        let b = self.b();
        let mut out = Vec::new();
        for kv in b.peers.iter() {
            let (k, v) = kv.during("read the address book")?;
            let entry = self.open_local("peers", &k, &v).and_then(|plain| {
                let (&len, rest) = plain.split_first()?;
                let (peer, record) = rest.split_at_checked(len as usize)?;
                Some((peer.to_vec(), decode_peer_record(record)?))
            });
            match entry {
                Some(e) => out.push(e),
                None => {
                    tracing::warn!(peer = %hex_tail(&k), "skipping unreadable stored addresses")
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    // ----- mutes and named values ------------------------------------------

    /// Mutes an author for this node alone (their posts stay stored and
    /// relayed; this node's reader just does not show them).
    pub fn mute(&self, author: &PublicKey) -> Result<(), StoreError> {
        let b = self.b();
        let key = self.keys.author_tag(&author.0);
        let sealed = self.seal_local("mutes", &key, &author.0);
        b.mutes.insert(key, sealed).during("write a mute")?;
        self.touch();
        Ok(())
    }

    /// Unmutes an author.
    pub fn unmute(&self, author: &PublicKey) -> Result<(), StoreError> {
        let b = self.b();
        b.mutes
            .remove(self.keys.author_tag(&author.0))
            .during("write a mute")?;
        self.touch();
        Ok(())
    }

    /// Whether an author is muted.
    pub fn is_muted(&self, author: &PublicKey) -> Result<bool, StoreError> {
        let b = self.b();
        b.mutes
            .contains_key(self.keys.author_tag(&author.0))
            .during("read mutes")
    }

    /// Every muted author.
    pub fn mutes(&self) -> Result<BTreeSet<PublicKey>, StoreError> {
        let b = self.b();
        let mut out = BTreeSet::new();
        for kv in b.mutes.iter() {
            let (k, v) = kv.during("read mutes")?;
            match self.open_local("mutes", &k, &v).and_then(|a| parse_id(&a)) {
                Some(a) => {
                    out.insert(PublicKey(a));
                }
                None => tracing::warn!(key = %hex_tail(&k), "skipping an unreadable mute"),
            }
        }
        Ok(out)
    }

    /// A small named value (the community manifest, the moderation
    /// sequence counter, ...): opaque bytes the caller encodes, sealed.
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let b = self.b();
        let Some(sealed) = b.meta.get(name).during("read a setting")? else {
            return Ok(None);
        };
        let value = self.open_local("meta", name.as_bytes(), &sealed);
        if value.is_none() {
            tracing::warn!(name, "a stored setting does not open (damaged)");
        }
        Ok(value)
    }

    /// Sets a small named value.
    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let b = self.b();
        let sealed = self.seal_local("meta", name.as_bytes(), value);
        b.meta.insert(name, sealed).during("write a setting")?;
        self.touch();
        Ok(())
    }

    /// Removes a small named value (nothing if it was not set).
    pub fn remove_meta(&self, name: &str) -> Result<(), StoreError> {
        let b = self.b();
        b.meta.remove(name).during("write a setting")?;
        self.touch();
        Ok(())
    }
}
