//! The community secret and everything keyed by it: what lets members
//! find and recognise each other without telling a non-member anything.
//!
//! A community's secret is 32 random bytes made by the admin's node at
//! `community create`, carried by every invite code and held by every
//! member. From it (and the community id) come, each under its own
//! BLAKE3 key-derivation context:
//! - the gossipsub topic strings of the community topic and of each topic
//!   (neither the community id nor a topic's name can be read from them or
//!   tested against them without the secret);
//! - the DHT provider key of each topic (so nobody can test names such as
//!   `bipolar` against the DHT to learn which nodes hold them);
//! - the key gossip payloads are sealed under (the node does the sealing);
//! - the membership proof key: on every connection each side proves it
//!   holds the secret by a MAC over both peer ids
//!   ([`CommunitySecret::membership_proof`]).
//!
//! A community created before secrets existed uses
//! [`CommunitySecret::legacy`], derived from its id: it hides nothing from
//! whoever knows the id.

use std::fmt;

use crate::ids::CommunityId;
use crate::topic::TopicName;

const TAG_CONTEXT: &str = "mutual/v2 community tag";
const TOPIC_TAG_CONTEXT: &str = "mutual/v2 topic tag";
const PROVIDER_CONTEXT: &str = "mutual/v2 topic provider key";
const GOSSIP_KEY_CONTEXT: &str = "mutual/v2 gossip payload key";
const PROOF_KEY_CONTEXT: &str = "mutual/v2 membership proof key";
/// What a membership proof's MAC covers first, so it can never be mistaken
/// for another MAC under the same key.
const PROOF_STATEMENT: &[u8] = b"mutual member proof";
/// Bytes of a tag in a topic string (128 bits: no collisions, short).
const TAG_BYTES: usize = 16;

/// A community's secret. Its `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct CommunitySecret([u8; 32]);

/// A membership proof: a MAC over the prover's and the verifier's peer
/// ids under the community's proof key.
pub type MembershipProof = [u8; 32];

impl fmt::Debug for CommunitySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CommunitySecret(..)")
    }
}

impl CommunitySecret {
    /// A secret from its bytes (from an invite code or the vault).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        CommunitySecret(bytes)
    }

    /// A new random secret, for a new community.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        CommunitySecret(bytes)
    }

    /// The secret of a community created before secrets existed: derived
    /// from its id ([`crate::invite::legacy_community_secret`]), so it
    /// hides nothing from whoever knows the id.
    pub fn legacy(community: &CommunityId) -> Self {
        CommunitySecret(crate::invite::legacy_community_secret(community))
    }

    /// The bytes, to put in an invite code or seal in the vault.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// A key of `context` for `community`: the secret and the id together,
    /// so one secret reused for two communities still gives two keys.
    fn derive(&self, context: &str, community: &CommunityId) -> [u8; 32] {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&self.0);
        material[32..].copy_from_slice(community.as_bytes());
        blake3::derive_key(context, &material)
    }

    /// The community's tag in topic strings.
    fn community_tag(&self, community: &CommunityId) -> String {
        hex_prefix(&self.derive(TAG_CONTEXT, community))
    }

    /// The gossipsub topic every member joins for moderation actions,
    /// retractions and reports.
    pub fn community_gossip_topic(&self, community: &CommunityId) -> String {
        format!("/mutual/2/{}/c", self.community_tag(community))
    }

    /// The gossipsub topic string of `topic`: two communities (or one
    /// community and a forger without its secret) with a topic of the
    /// same name never share a mesh, and the name cannot be read from it.
    pub fn topic_gossip_topic(&self, community: &CommunityId, topic: &TopicName) -> String {
        let key = self.derive(TOPIC_TAG_CONTEXT, community);
        let tag = blake3::keyed_hash(&key, topic.as_str().as_bytes());
        format!(
            "/mutual/2/{}/t/{}",
            self.community_tag(community),
            hex_prefix(tag.as_bytes())
        )
    }

    /// The DHT key under which the members of `topic` announce themselves.
    pub fn provider_key(&self, community: &CommunityId, topic: &TopicName) -> [u8; 32] {
        let key = self.derive(PROVIDER_CONTEXT, community);
        *blake3::keyed_hash(&key, topic.as_str().as_bytes()).as_bytes()
    }

    /// The key gossip payloads of the community are sealed under.
    pub fn gossip_key(&self, community: &CommunityId) -> [u8; 32] {
        self.derive(GOSSIP_KEY_CONTEXT, community)
    }

    /// The proof that the node `prover` holds this secret, for the node
    /// `verifier` alone: a MAC over both peer ids (as the transport
    /// authenticated them), so it is worth nothing on any other
    /// connection and names no author key.
    pub fn membership_proof(
        &self,
        community: &CommunityId,
        prover: &[u8],
        verifier: &[u8],
    ) -> MembershipProof {
        let key = self.derive(PROOF_KEY_CONTEXT, community);
        let mut mac = blake3::Hasher::new_keyed(&key);
        mac.update(PROOF_STATEMENT);
        for part in [prover, verifier] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        *mac.finalize().as_bytes()
    }

    /// Whether `proof` is `prover`'s proof for `verifier` under this
    /// secret (compared in constant time).
    pub fn verify_membership_proof(
        &self,
        community: &CommunityId,
        prover: &[u8],
        verifier: &[u8],
        proof: &[u8],
    ) -> bool {
        let Ok(proof) = <[u8; 32]>::try_from(proof) else {
            return false;
        };
        blake3::Hash::from(self.membership_proof(community, prover, verifier))
            == blake3::Hash::from(proof)
    }
}

/// The first [`TAG_BYTES`] bytes of `bytes`, in lower-case hex.
fn hex_prefix(bytes: &[u8; 32]) -> String {
    bytes
        .iter()
        .take(TAG_BYTES)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn community(n: u8) -> CommunityId {
        CommunityId::from([n; 32])
    }

    fn topic(name: &str) -> TopicName {
        TopicName::parse(name).unwrap()
    }

    #[test]
    fn topic_strings_and_keys_hide_the_id_and_the_name() {
        let c = community(7);
        let s = CommunitySecret::from_bytes([1; 32]);
        let t = topic("harassment");
        let gossip = s.topic_gossip_topic(&c, &t);
        let whole = s.community_gossip_topic(&c);
        for text in [&gossip, &whole] {
            assert!(!text.contains("harassment"), "{text}");
            assert!(!text.contains(&c.to_string()), "{text}");
            assert!(!text.contains(&hex::encode(c.as_bytes())), "{text}");
        }
        assert!(gossip.starts_with("/mutual/2/"), "{gossip}");
        // Every keyed value depends on the secret, the community and the
        // name: a forger with the id but not the secret matches nothing.
        let wrong = CommunitySecret::from_bytes([2; 32]);
        assert_ne!(gossip, wrong.topic_gossip_topic(&c, &t));
        assert_ne!(whole, wrong.community_gossip_topic(&c));
        assert_ne!(gossip, s.topic_gossip_topic(&community(8), &t));
        assert_ne!(gossip, s.topic_gossip_topic(&c, &topic("bipolar")));
        assert_ne!(s.provider_key(&c, &t), wrong.provider_key(&c, &t));
        assert_ne!(s.provider_key(&c, &t), s.provider_key(&c, &topic("other")));
        assert_ne!(s.gossip_key(&c), wrong.gossip_key(&c));
        assert_ne!(s.gossip_key(&c), s.gossip_key(&community(8)));
        // An unkeyed hash of the old topic string is not the provider key.
        let unkeyed = blake3::hash(format!("/mutual/1/{c}/t/harassment").as_bytes());
        assert_ne!(&s.provider_key(&c, &t), unkeyed.as_bytes());
        // Distinct purposes, distinct keys.
        assert_ne!(s.gossip_key(&c), s.provider_key(&c, &t));
        // Stable: every member computes the same strings.
        assert_eq!(gossip, s.clone().topic_gossip_topic(&c, &t));
    }

    #[test]
    fn a_proof_is_valid_only_for_its_secret_and_its_two_peers() {
        let c = community(7);
        let s = CommunitySecret::from_bytes([1; 32]);
        let (a, b, x) = (
            b"peer a".as_slice(),
            b"peer b".as_slice(),
            b"peer x".as_slice(),
        );
        let proof = s.membership_proof(&c, a, b);
        assert!(s.verify_membership_proof(&c, a, b, &proof));
        // Swapped peer ids: a proof cannot be reflected back.
        assert!(!s.verify_membership_proof(&c, b, a, &proof));
        // Replayed on another connection.
        assert!(!s.verify_membership_proof(&c, a, x, &proof));
        assert!(!s.verify_membership_proof(&c, x, b, &proof));
        // Made with a wrong secret (a forged membership), or for another
        // community.
        let forged = CommunitySecret::from_bytes([2; 32]).membership_proof(&c, a, b);
        assert!(!s.verify_membership_proof(&c, a, b, &forged));
        assert!(!s.verify_membership_proof(&community(8), a, b, &proof));
        // The legacy secret is not a wildcard.
        let legacy = CommunitySecret::legacy(&c).membership_proof(&c, a, b);
        assert!(!s.verify_membership_proof(&c, a, b, &legacy));
        // Truncated or empty.
        assert!(!s.verify_membership_proof(&c, a, b, &proof[..31]));
        assert!(!s.verify_membership_proof(&c, a, b, &[]));
        // Length-prefixed: moving a byte between the ids changes the MAC.
        assert_ne!(
            s.membership_proof(&c, b"ab", b"c"),
            s.membership_proof(&c, b"a", b"bc")
        );
    }

    #[test]
    fn debug_prints_nothing_secret() {
        let s = CommunitySecret::from_bytes([0xab; 32]);
        let shown = format!("{s:?}");
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
    }
}
