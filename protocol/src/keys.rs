//! Ed25519 keys and signatures. A public key has one printable form
//! (`mu1…`, bech32m with a checksum) so a person can copy and paste it and a
//! typo is caught instead of silently naming someone else. Secret keys are
//! never printed: their `Debug` form is redacted and they have no `Display`.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::ids::{decode_printable, encode_printable, ParseIdError};

/// Prefix of the printable form of a public key.
pub const PUBLIC_KEY_PREFIX: &str = "mu";

/// An Ed25519 public key: an author, a moderator or a community admin.
///
/// Holds raw bytes; whether they are a valid curve point is checked when a
/// signature is verified, so decoding never fails on a bad point.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short fingerprint for display next to a pseudonym (first 8 characters
    /// after the prefix). A node resolves it back to the one key it knows
    /// that starts with it ([`PublicKey::prefix_bytes`]).
    pub fn short(&self) -> String {
        let full = self.to_string();
        full.chars()
            .skip(PUBLIC_KEY_PREFIX.len() + 1)
            .take(8)
            .collect()
    }

    /// The leading key bytes named by a short form, so a command can take
    /// the fingerprint [`PublicKey::short`] printed (with or without the
    /// `mu1` prefix) or any longer start of the printable key. The bech32
    /// alphabet has no `1`, so a bare fingerprint never looks prefixed.
    /// Text as long as a whole key must be a whole key (a typo in its
    /// checksum is an error, not a prefix).
    pub fn prefix_bytes(short: &str) -> Result<Vec<u8>, ParseIdError> {
        let trimmed = short.trim();
        if trimmed.len() >= PublicKey([0; 32]).to_string().len() {
            return trimmed.parse::<PublicKey>().map(|k| k.0.to_vec());
        }
        let expected = format!("{PUBLIC_KEY_PREFIX}1");
        let full = if trimmed.to_ascii_lowercase().starts_with(&expected) {
            trimmed.to_string()
        } else {
            format!("{expected}{trimmed}")
        };
        crate::ids::prefix_bytes(PUBLIC_KEY_PREFIX, "key", &full)
    }

    /// Checks `signature` over `message` with this key, under the one
    /// signature rule of [`crate::sigcheck`] (canonical encodings, no
    /// small-order points, the cofactored equation).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        crate::sigcheck::verify_one(self, message, signature)
    }

    /// The X25519 public key that reports to this key's holder are sealed to
    /// (the birationally equivalent Montgomery point).
    pub fn to_x25519(&self) -> Option<[u8; 32]> {
        VerifyingKey::from_bytes(&self.0)
            .ok()
            .map(|k| k.to_montgomery().to_bytes())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_printable(PUBLIC_KEY_PREFIX, &self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_printable(PUBLIC_KEY_PREFIX, "key", s).map(PublicKey)
    }
}

/// An Ed25519 signature (64 bytes), encoded as its raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The raw signature bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in self.0.iter().take(8) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (a, b) = split64(&self.0);
        (a, b).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (a, b) = <([u8; 32], [u8; 32])>::deserialize(d)?;
        let mut out = [0u8; 64];
        for (dst, src) in out.iter_mut().zip(a.iter().chain(b.iter())) {
            *dst = *src;
        }
        Ok(Signature(out))
    }
}

fn split64(bytes: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    let (left, right) = bytes.split_at(32);
    a.copy_from_slice(left);
    b.copy_from_slice(right);
    (a, b)
}

/// An Ed25519 secret key. It signs; it is never printed, logged or sent.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        SecretKey(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Rebuilds a key from its 32 seed bytes (as kept in a key file).
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(seed))
    }

    /// The 32 seed bytes, for writing the key file (mode 0600) only.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (already domain-separated by the caller).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }

    /// The X25519 secret that opens reports sealed to this key's public key.
    pub fn to_x25519(&self) -> [u8; 32] {
        self.0.to_scalar_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A person's identity: the author key and an optional pseudonym. Nothing
/// else identifying is ever asked for.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The key that signs this person's posts and actions.
    pub secret: SecretKey,
    /// The pseudonym shown next to the key fingerprint, if any.
    pub name: Option<String>,
}

impl Identity {
    /// A fresh identity with an optional pseudonym.
    pub fn generate(name: Option<String>) -> Self {
        Identity {
            secret: SecretKey::generate(),
            name,
        }
    }

    /// The public author key.
    pub fn public(&self) -> PublicKey {
        self.secret.public()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_key_round_trips() {
        let k = SecretKey::generate().public();
        let s = k.to_string();
        assert!(s.starts_with("mu1"), "{s}");
        assert_eq!(s.parse::<PublicKey>().unwrap(), k);
    }

    #[test]
    fn typo_in_printable_key_is_an_error_not_another_key() {
        let k = SecretKey::generate().public();
        let s = k.to_string();
        let mut chars: Vec<char> = s.chars().collect();
        let i = 10;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        let err = typo.parse::<PublicKey>().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn printed_fingerprint_names_the_leading_key_bytes() {
        for _ in 0..50 {
            let k = SecretKey::generate().public();
            let bare = PublicKey::prefix_bytes(&k.short()).unwrap();
            assert_eq!(bare.len(), 5, "8 characters are 40 bits");
            assert!(k.as_bytes().starts_with(&bare));
            let prefixed = PublicKey::prefix_bytes(&format!("mu1{}", k.short())).unwrap();
            assert_eq!(prefixed, bare);
            let long: String = k.to_string().chars().take(30).collect();
            assert!(k
                .as_bytes()
                .starts_with(&PublicKey::prefix_bytes(&long).unwrap()));
        }
        assert!(
            PublicKey::prefix_bytes("qy3x").is_err(),
            "too short to name a key"
        );
        assert!(
            PublicKey::prefix_bytes("mp1qy3x8z2a").is_err(),
            "a post id is no key"
        );
    }

    #[test]
    fn wrong_prefix_is_named() {
        let err = "mp1qqqqqq".parse::<PublicKey>().unwrap_err();
        assert!(err.to_string().contains("mu1"), "{err}");
    }

    #[test]
    fn secret_key_debug_is_redacted() {
        let sk = SecretKey::generate();
        let dbg = format!("{sk:?}");
        assert_eq!(dbg, "SecretKey(<redacted>)");
        let id = Identity {
            secret: sk,
            name: None,
        };
        assert!(!format!("{id:?}").contains(&format!("{:?}", id.secret.to_bytes())));
    }

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        let sk = SecretKey::generate();
        let sig = sk.sign(b"hello");
        assert!(sk.public().verify(b"hello", &sig));
        assert!(!sk.public().verify(b"hellp", &sig));
    }
}
