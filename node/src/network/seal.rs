//! Gossip payloads sealed under the community's gossip key
//! ([`protocol::CommunitySecret::gossip_key`]), as gossipsub's data
//! transform: a node in a mesh without the secret reads nothing and cannot
//! inject anything (a payload that does not open is an invalid message,
//! which costs its sender score like any other).
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce (random nonces are safe
//! at this size), the topic string as associated data (a payload moved to
//! another topic does not open). On the wire: nonce, then ciphertext and
//! tag: 40 bytes more per message. gossipsub computes the message id on the
//! opened data (inbound) and on the data before sealing (publish), so
//! duplicates are still recognised by content whatever nonce each copy
//! was sealed with.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use libp2p::gossipsub::{DataTransform, Message, RawMessage, TopicHash};
use rand::RngCore;

/// Bytes of the nonce in front of every sealed payload.
const NONCE_BYTES: usize = 24;
/// Bytes sealing adds to a payload (nonce and tag).
pub const SEAL_OVERHEAD: usize = NONCE_BYTES + 16;

/// Seals and opens a community's gossip payloads.
#[derive(Clone)]
pub struct GossipSeal {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for GossipSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GossipSeal(..)")
    }
}

impl GossipSeal {
    /// The seal of the community whose gossip key is `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        GossipSeal {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// `data` sealed for gossip topic `topic`.
    pub fn seal(&self, topic: &str, data: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: data,
                    aad: topic.as_bytes(),
                },
            )
            .map_err(|_| std::io::Error::other("sealing a gossip payload failed"))?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The payload sealed in `sealed` for `topic`, or an error if it was
    /// not sealed under this community's key for that topic.
    pub fn open(&self, topic: &str, sealed: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a gossip payload not sealed under this community's key",
            )
        };
        if sealed.len() < SEAL_OVERHEAD {
            return Err(bad());
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: topic.as_bytes(),
                },
            )
            .map_err(|_| bad())
    }
}

impl DataTransform for GossipSeal {
    fn inbound_transform(&self, raw: RawMessage) -> Result<Message, std::io::Error> {
        let data = self.open(raw.topic.as_str(), &raw.data)?;
        Ok(Message {
            source: raw.source,
            data,
            sequence_number: raw.sequence_number,
            topic: raw.topic,
        })
    }

    fn outbound_transform(
        &self,
        topic: &TopicHash,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, std::io::Error> {
        self.seal(topic.as_str(), &data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_key_and_topic_open_a_payload() {
        let seal = GossipSeal::new(&[1; 32]);
        let sealed = seal.seal("/mutual/2/aa/t/bb", b"a post").unwrap();
        assert_eq!(sealed.len(), b"a post".len() + SEAL_OVERHEAD);
        assert!(!sealed.windows(6).any(|w| w == b"a post"), "not in clear");
        assert_eq!(seal.open("/mutual/2/aa/t/bb", &sealed).unwrap(), b"a post");
        // Another topic, another key, a flipped bit, a truncation: refused.
        assert!(seal.open("/mutual/2/aa/t/cc", &sealed).is_err());
        assert!(GossipSeal::new(&[2; 32])
            .open("/mutual/2/aa/t/bb", &sealed)
            .is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(seal.open("/mutual/2/aa/t/bb", &flipped).is_err());
        assert!(seal.open("/mutual/2/aa/t/bb", &sealed[..20]).is_err());
        // A fresh nonce each time: two seals of one payload differ.
        assert_ne!(sealed, seal.seal("/mutual/2/aa/t/bb", b"a post").unwrap());
    }
}
