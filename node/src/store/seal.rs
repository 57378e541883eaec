//! Encryption at rest: the one place that seals and opens the store's
//! values and computes the keyed hashes that stand in for topic names,
//! author keys and peer ids in its keys.
//!
//! * A value is sealed with XChaCha20-Poly1305 under the store's value key,
//!   with a random 24-byte nonce (random nonces of this size never repeat
//!   in practice, so no counter has to survive a crash), and with the
//!   value's own key as associated data: a value copied under another key
//!   does not open. Stored form: `nonce (24) ‖ ciphertext ‖ tag (16)`.
//! * A name or key that would say who or what (a topic name, an author's
//!   public key, a peer id) is replaced in keys by a [`Tag`]: blake3 keyed
//!   with the store's index key, over a one-byte kind and the bytes,
//!   truncated to 16 bytes. Without the index key a tag cannot be
//!   computed, so a stolen store cannot be searched for a known name;
//!   16 bytes make an accidental collision among a node's topics or
//!   authors (2^-128 per pair) impossible in practice, and keep each index
//!   key short.

use std::path::Path;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::StoreError;

/// Length of a [`Tag`].
pub(super) const TAG_LEN: usize = 16;
/// A keyed hash standing in for a name or key (see the module docs).
pub(super) type Tag = [u8; TAG_LEN];

/// Length of a nonce.
const NONCE_LEN: usize = 24;
/// Length of the authentication tag.
const MAC_LEN: usize = 16;
/// Bytes a sealed value takes beyond its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + MAC_LEN;

/// blake3 `derive_key` context of the value key.
const VALUES_CONTEXT: &str = "mutual 2026-12 store values (XChaCha20-Poly1305)";
/// blake3 `derive_key` context of the index key.
const INDEX_CONTEXT: &str = "mutual 2026-12 store index (keyed blake3)";

/// What a [`Tag`] stands for: hashed in first, so a topic and an author
/// with the same bytes never share a tag.
#[derive(Clone, Copy)]
#[repr(u8)]
enum TagKind {
    Topic = 1,
    Author = 2,
    Peer = 3,
}

/// The store's two keys, derived from one 32-byte secret (which the data
/// directory's vault keeps): one seals values, one keys the index hashes.
/// Wiped from memory when dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct StoreKeys {
    values: [u8; 32],
    index: [u8; 32],
}

impl StoreKeys {
    /// The keys of the store sealed under `secret`: two independent keys
    /// by blake3's key derivation under distinct contexts, so that neither
    /// says anything about the other.
    pub fn derive(secret: &[u8; 32]) -> StoreKeys {
        StoreKeys {
            values: blake3::derive_key(VALUES_CONTEXT, secret),
            index: blake3::derive_key(INDEX_CONTEXT, secret),
        }
    }

    /// Fresh random keys: for a temporary store, which nothing reopens.
    pub(super) fn random() -> StoreKeys {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let keys = StoreKeys::derive(&secret);
        secret.zeroize();
        keys
    }

    /// `plain` sealed under the value key, bound to `ad` (the value's key).
    pub(super) fn seal(&self, ad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plain.len());
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&self.values));
        // Encryption of an in-memory buffer of this size cannot fail (the
        // only error is a message over 256 GiB).
        match cipher.encrypt_in_place_detached(
            XNonce::from_slice(&nonce),
            ad,
            out.get_mut(NONCE_LEN..).unwrap_or_default(),
        ) {
            Ok(mac) => out.extend_from_slice(&mac),
            Err(_) => out.clear(),
        }
        out
    }

    /// The plaintext of a value [`StoreKeys::seal`] wrote under `ad`, or
    /// `None` when it does not authenticate: other keys, another key of
    /// the store (a value moved), or damage.
    pub(super) fn open(&self, ad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < SEAL_OVERHEAD {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (body, mac) = rest.split_at(rest.len() - MAC_LEN);
        let mut plain = body.to_vec();
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&self.values));
        cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                ad,
                &mut plain,
                chacha20poly1305::Tag::from_slice(mac),
            )
            .ok()?;
        Some(plain)
    }

    fn tag(&self, kind: TagKind, bytes: &[u8]) -> Tag {
        let mut h = blake3::Hasher::new_keyed(&self.index);
        h.update(&[kind as u8]);
        h.update(bytes);
        let mut out = [0u8; TAG_LEN];
        h.finalize_xof().fill(&mut out);
        out
    }

    /// What stands for a topic's name in the store's keys.
    pub(super) fn topic_tag(&self, topic: &protocol::TopicName) -> Tag {
        self.tag(TagKind::Topic, topic.as_str().as_bytes())
    }

    /// What stands for an author's public key in the store's keys.
    pub(super) fn author_tag(&self, author: &[u8; 32]) -> Tag {
        self.tag(TagKind::Author, author)
    }

    /// What stands for a peer's id in the address book's keys.
    pub(super) fn peer_tag(&self, peer: &[u8]) -> Tag {
        self.tag(TagKind::Peer, peer)
    }
}

/// The 32-byte secret a store's keys are derived from, as the caller
/// supplies it (the data directory's vault keeps it). Never printed, wiped
/// from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct StoreSecret(pub [u8; 32]);

impl StoreSecret {
    /// The keys of the store sealed under this secret.
    pub fn keys(&self) -> StoreKeys {
        StoreKeys::derive(&self.0)
    }
}

impl std::fmt::Debug for StoreSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreSecret(..)")
    }
}

/// The secret of a store opened without a data directory (benchmarks and
/// tests of the store alone): fixed, so it protects nothing. A node's
/// store is sealed under its vault's secret ([`crate::DataDir::store_keys`]).
pub const BARE_STORE_SECRET: StoreSecret = StoreSecret([0u8; 32]);

impl std::fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKeys(..)")
    }
}

/// The associated data of a value in a tree other than `items`: a zero
/// byte (no `items` key starts with one), the tree's name, a zero byte,
/// the key.
pub(super) fn local_ad(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(2 + tree.len() + key.len());
    ad.push(0);
    ad.extend_from_slice(tree.as_bytes());
    ad.push(0);
    ad.extend_from_slice(key);
    ad
}

/// The file beside sled's that proves which keys a store is sealed under:
/// read before sled opens the directory, so opening with other keys
/// changes no byte of it.
pub(super) const CHECK_FILE: &str = "keycheck";
/// What the check file seals (its associated data is [`CHECK_FILE`]).
const CHECK_TEXT: &[u8] = b"mutual store, layout 3";

/// What the check file says about the keys given.
pub(super) enum Check {
    /// No check file: a new store, or one of a layout before 3.
    Missing,
    /// The store is sealed under these keys.
    Matches,
    /// It is sealed under others (or the file is damaged).
    Other,
}

/// Reads the check file of the store in `dir`.
pub(super) fn read_check(dir: &Path, keys: &StoreKeys) -> Result<Check, StoreError> {
    match std::fs::read(dir.join(CHECK_FILE)) {
        Ok(bytes) => Ok(match keys.open(CHECK_FILE.as_bytes(), &bytes) {
            Some(text) if text == CHECK_TEXT => Check::Matches,
            _ => Check::Other,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Check::Missing),
        Err(e) => Err(StoreError::Open {
            path: dir.to_path_buf(),
            detail: format!("cannot read {}: {e}", dir.join(CHECK_FILE).display()),
        }),
    }
}

/// Writes the check file of a new store in `dir` (durably: written aside,
/// fsynced, renamed, directory fsynced).
pub(super) fn write_check(dir: &Path, keys: &StoreKeys) -> Result<(), StoreError> {
    write_durably(
        dir,
        CHECK_FILE,
        &keys.seal(CHECK_FILE.as_bytes(), CHECK_TEXT),
    )
    .map_err(|e| StoreError::Io {
        during: "write the store's key check",
        detail: e.to_string(),
    })
}

/// Writes `name` in `dir` as a whole or not at all: to `name.tmp`,
/// fsynced, renamed over `name`, and the directory fsynced.
pub(super) fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!("{name}.tmp"));
    {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&temp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_key_and_keys() {
        let k = StoreKeys::derive(&[7; 32]);
        let sealed = k.seal(b"key-1", b"hello");
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        assert_eq!(k.open(b"key-1", &sealed).as_deref(), Some(&b"hello"[..]));
        assert_eq!(k.open(b"key-2", &sealed), None, "moved to another key");
        let other = StoreKeys::derive(&[8; 32]);
        assert_eq!(other.open(b"key-1", &sealed), None, "other keys");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(k.open(b"key-1", &bad), None, "flipped byte {i}");
        }
        assert_eq!(k.open(b"key-1", &sealed[..10]), None);
        assert_ne!(k.seal(b"k", b"x"), k.seal(b"k", b"x"), "fresh nonces");
    }

    #[test]
    fn tags_depend_on_the_kind_the_bytes_and_the_keys() {
        let k = StoreKeys::derive(&[7; 32]);
        let t = protocol::TopicName::parse("burnout").unwrap();
        assert_eq!(k.topic_tag(&t), k.topic_tag(&t));
        assert_ne!(k.topic_tag(&t), StoreKeys::derive(&[8; 32]).topic_tag(&t));
        let mut as_key = [0u8; 32];
        as_key[..7].copy_from_slice(b"burnout");
        assert_ne!(k.author_tag(&as_key), k.peer_tag(&as_key));
        assert_ne!(&k.peer_tag(b"burnout"), &k.topic_tag(&t));
    }

    /// Cost of sealing and opening one post-sized value, and of one tag:
    /// `cargo test --release -p mutual-node --lib store::seal::tests::seal_cost
    /// -- --ignored --nocapture` (the median of 11 rounds of 20,000).
    #[test]
    #[ignore]
    fn seal_cost() {
        let k = StoreKeys::derive(&[7; 32]);
        let value = vec![0x41u8; 520];
        let ad = [b'p'; 57];
        let median = |f: &mut dyn FnMut()| {
            let mut runs: Vec<f64> = (0..11)
                .map(|_| {
                    let t = std::time::Instant::now();
                    for _ in 0..20_000 {
                        f();
                    }
                    t.elapsed().as_secs_f64() * 1e6 / 20_000.0
                })
                .collect();
            runs.sort_by(f64::total_cmp);
            runs[5]
        };
        let sealed = k.seal(&ad, &value);
        let seal = median(&mut || {
            std::hint::black_box(k.seal(&ad, std::hint::black_box(&value)));
        });
        let open = median(&mut || {
            std::hint::black_box(k.open(&ad, std::hint::black_box(&sealed)));
        });
        let tag = median(&mut || {
            std::hint::black_box(k.author_tag(std::hint::black_box(&[9; 32])));
        });
        println!("per 520-byte value: seal {seal:.2} µs, open {open:.2} µs; one tag {tag:.3} µs");
    }
}
