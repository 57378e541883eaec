//! Local data that arrivals never touch, each in its own tree: joined
//! topics, the address book, mutes and small named values.

use std::collections::BTreeSet;

use protocol::{PublicKey, TopicName};

use super::error::During;
use super::keys::{encode_u64, hex_tail, parse_id, parse_u64};
use super::{PeerRecord, Store, StoreError};

/// Largest peer record written or read back (8 addresses of 512 bytes and
/// their lengths fit easily).
const PEER_VALUE_LIMIT: usize = 8 * 1024;

impl Store {
    // ----- joined topics ---------------------------------------------------

    /// Records that this node joined `topic` (now), so it rejoins after a
    /// restart. Joining again keeps the first time.
    pub fn join_topic(&self, topic: &TopicName) -> Result<(), StoreError> {
        let b = self.b();
        let joined = b
            .topics
            .compare_and_swap(
                topic.as_str().as_bytes(),
                None as Option<&[u8]>,
                Some(&encode_u64(crate::now_ms())[..]),
            )
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
            .remove(topic.as_str().as_bytes())
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
    /// epoch; `None` if a store from before this was recorded).
    pub fn joined_topics_with_times(&self) -> Result<Vec<(TopicName, Option<u64>)>, StoreError> {
        let b = self.b();
        let mut out = Vec::new();
        for kv in b.topics.iter() {
            let (k, v) = kv.during("read joined topics")?;
            match std::str::from_utf8(&k)
                .ok()
                .and_then(|s| TopicName::parse_exact(s).ok())
            {
                Some(t) => out.push((t, parse_u64(&v))),
                None => tracing::warn!(
                    key = %hex_tail(&k),
                    "skipping a stored topic name that does not parse"
                ),
            }
        }
        Ok(out)
    }

    // ----- address book ----------------------------------------------------

    /// Remembers a peer's address-book record (see [`crate::network::peers`], which
    /// bounds what a record holds and how many there are). An oversized
    /// record is refused.
    pub fn put_peer(&self, peer: &[u8], record: &PeerRecord) -> Result<(), StoreError> {
        let b = self.b();
        let bytes = protocol::wire::encode(record);
        if peer.is_empty() || bytes.len() > PEER_VALUE_LIMIT {
            return Ok(());
        }
        b.peers
            .insert(peer, bytes)
            .during("write the address book")?;
        self.touch();
        Ok(())
    }

    /// Forgets a peer and its addresses (unreachable, or cut off).
    pub fn remove_peer(&self, peer: &[u8]) -> Result<(), StoreError> {
        let b = self.b();
        b.peers.remove(peer).during("write the address book")?;
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
            let record = protocol::wire::decode::<PeerRecord>(&v, PEER_VALUE_LIMIT)
                .ok()
                .or_else(|| {
                    protocol::wire::decode::<Vec<String>>(&v, PEER_VALUE_LIMIT)
                        .ok()
                        .map(|addrs| PeerRecord {
                            addrs,
                            ..PeerRecord::default()
                        })
                });
            match record {
                Some(r) => out.push((k.to_vec(), r)),
                None => {
                    tracing::warn!(peer = %hex_tail(&k), "skipping unreadable stored addresses")
                }
            }
        }
        Ok(out)
    }

    // ----- mutes and named values ------------------------------------------

    /// Mutes an author for this node alone (their posts stay stored and
    /// relayed; this node's reader just does not show them).
    pub fn mute(&self, author: &PublicKey) -> Result<(), StoreError> {
        let b = self.b();
        b.mutes
            .insert(author.as_bytes(), &[][..])
            .during("write a mute")?;
        self.touch();
        Ok(())
    }

    /// Unmutes an author.
    pub fn unmute(&self, author: &PublicKey) -> Result<(), StoreError> {
        let b = self.b();
        b.mutes.remove(author.as_bytes()).during("write a mute")?;
        self.touch();
        Ok(())
    }

    /// Whether an author is muted.
    pub fn is_muted(&self, author: &PublicKey) -> Result<bool, StoreError> {
        let b = self.b();
        b.mutes.contains_key(author.as_bytes()).during("read mutes")
    }

    /// Every muted author.
    pub fn mutes(&self) -> Result<BTreeSet<PublicKey>, StoreError> {
        let b = self.b();
        let mut out = BTreeSet::new();
        for k in b.mutes.iter().keys() {
            let k = k.during("read mutes")?;
            match parse_id(&k) {
                Some(b) => {
                    out.insert(PublicKey(b));
                }
                None => tracing::warn!(key = %hex_tail(&k), "skipping a malformed mute"),
            }
        }
        Ok(out)
    }

    /// A small named value (the community manifest, the moderation
    /// sequence counter, ...): opaque bytes the caller encodes.
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let b = self.b();
        Ok(b.meta
            .get(name)
            .during("read a setting")?
            .map(|v| v.to_vec()))
    }

    /// Sets a small named value.
    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let b = self.b();
        b.meta.insert(name, value).during("write a setting")?;
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
