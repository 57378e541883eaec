//! Key succession at the edges of the node: the data directory's one
//! function that replaces the author key, and the form in which a new
//! secret key travels over the control socket to the running node.
//!
//! The order that keeps everything acknowledged: the new key is written to
//! the data directory *before* the succession is published (so a published
//! succession never names a key nobody holds), and the old key is kept
//! beside it (sealed, [`Role::PREVIOUS_AUTHOR`]) until the succession is
//! stored; on a refusal the caller puts the old key back with the same
//! function.

use std::fmt;

use protocol::SecretKey;
use serde::{Deserialize, Serialize};

use crate::vault::{self, Role};
use crate::{DataDir, NodeError};

impl DataDir {
    /// Makes `new` the author key of this data directory (sealed in the
    /// vault like every key) and returns the key it replaces, which is kept
    /// sealed as [`Role::PREVIOUS_AUTHOR`] until the next replacement (and
    /// destroyed by `forget` with the rest). Each file is written
    /// atomically; the previous key first, so a crash between the two
    /// writes loses neither.
    pub fn replace_author_key(&self, new: &SecretKey) -> Result<SecretKey, NodeError> {
        let previous = self.identity()?.secret;
        self.write_sealed(Role::PREVIOUS_AUTHOR, &vault::author_plain(&previous))?;
        self.write_sealed(Role::AUTHOR, &vault::author_plain(new))?;
        Ok(previous)
    }

    /// The author key the last [`replace_author_key`](Self::replace_author_key)
    /// replaced, if any.
    pub fn previous_author_key(&self) -> Result<Option<SecretKey>, NodeError> {
        match self.read_sealed(Role::PREVIOUS_AUTHOR)? {
            Some(plain) => vault::author_of(&plain)
                .map(Some)
                .map_err(|e| NodeError::BadInput(format!("the previous author key: {e}"))),
            None => Ok(None),
        }
    }
}

/// A secret key on its way over the control socket (hex of its 32 seed
/// bytes): never printed, logged or shown in a `Debug` form.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretSeed(String);

impl SecretSeed {
    /// The form of `key` for a request.
    pub fn of(key: &SecretKey) -> Self {
        SecretSeed(key.to_bytes().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The key again; a clear error if the text is not 64 hex digits.
    pub fn key(&self) -> Result<SecretKey, NodeError> {
        let bad = || NodeError::BadInput("the new key is not 64 hex digits".into());
        let text = self.0.as_bytes();
        if text.len() != 64 {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (byte, pair) in seed.iter_mut().zip(text.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(SecretKey::from_bytes(&seed))
    }
}

impl fmt::Debug for SecretSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretSeed(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_round_trips_and_is_never_shown() {
        let key = SecretKey::generate();
        let seed = SecretSeed::of(&key);
        assert_eq!(seed.key().unwrap().public(), key.public());
        assert_eq!(format!("{seed:?}"), "SecretSeed(<redacted>)");
        assert!(SecretSeed("zz".repeat(32)).key().is_err());
        assert!(SecretSeed("ab".into()).key().is_err());
    }

    #[test]
    fn replacing_the_author_key_keeps_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("d"));
        let old = data.init(Some("river".into())).unwrap();
        let new = SecretKey::generate();
        let previous = data.replace_author_key(&new).unwrap();
        assert_eq!(previous.public(), old.public());
        let now = data.identity().unwrap();
        assert_eq!(now.public(), new.public());
        assert_eq!(now.name.as_deref(), Some("river"), "the pseudonym stays");
        let kept = data.previous_author_key().unwrap().unwrap();
        assert_eq!(kept.public(), old.public());
    }
}
