//! Content-addressed ids (BLAKE3 of a canonical signed encoding) and the one
//! printable form shared by keys and ids: a bech32m string with a prefix that
//! names what it is and a checksum that catches typos.

use std::fmt;
use std::str::FromStr;

use bech32::{Bech32m, Hrp};
use serde::{Deserialize, Serialize};

/// Why a printable key or id did not parse. The message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {what}: {reason}")]
pub struct ParseIdError {
    /// What was expected ("key", "post id", ...).
    pub what: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

pub(crate) fn encode_printable(prefix: &str, bytes: &[u8; 32]) -> String {
    let hrp = Hrp::parse_unchecked(prefix);
    // Encoding 32 bytes with a short valid prefix cannot fail; fall back to
    // an obviously broken string rather than panic if it ever did.
    bech32::encode::<Bech32m>(hrp, bytes).unwrap_or_else(|_| format!("{prefix}1<invalid>"))
}

pub(crate) fn decode_printable(
    prefix: &str,
    what: &'static str,
    s: &str,
) -> Result<[u8; 32], ParseIdError> {
    let s = s.trim();
    let err = |reason: String| ParseIdError { what, reason };
    let expected = format!("{prefix}1");
    if !s.to_ascii_lowercase().starts_with(&expected) {
        return Err(err(format!("it should start with `{expected}`")));
    }
    let checked = bech32::primitives::decode::CheckedHrpstring::new::<Bech32m>(s).map_err(|e| {
        let text = e.to_string();
        if text.contains("checksum") {
            err("checksum mismatch: check it for a typo".into())
        } else {
            err(format!("malformed ({text}): check it for a typo"))
        }
    })?;
    if checked.hrp().as_str() != prefix {
        return Err(err(format!("it should start with `{expected}`")));
    }
    let data: Vec<u8> = checked.byte_iter().collect();
    <[u8; 32]>::try_from(data.as_slice())
        .map_err(|_| err(format!("it holds {} bytes, expected 32", data.len())))
}

/// bech32's 32-character alphabet, in value order.
const BECH32_CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
/// Fewest characters a short id must have: 8 characters are 40 bits.
pub const MIN_SHORT_ID_CHARS: usize = 8;

pub(crate) fn prefix_bytes(
    prefix: &str,
    what: &'static str,
    short: &str,
) -> Result<Vec<u8>, ParseIdError> {
    let err = |reason: String| ParseIdError { what, reason };
    let lower = short.trim().to_ascii_lowercase();
    let expected = format!("{prefix}1");
    let data = lower
        .strip_prefix(&expected)
        .ok_or_else(|| err(format!("it should start with `{expected}`")))?;
    if data.len() < MIN_SHORT_ID_CHARS {
        return Err(err(format!(
            "a short id needs at least {MIN_SHORT_ID_CHARS} characters after `{expected}`"
        )));
    }
    let mut bits: u64 = 0;
    let mut nbits = 0u32;
    let mut out = Vec::new();
    for c in data.chars().take(51) {
        let v = BECH32_CHARSET
            .find(c)
            .ok_or_else(|| err(format!("{c:?} is not a character of an id")))?;
        bits = (bits << 5) | v as u64;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1u64 << nbits) - 1;
        }
    }
    Ok(out)
}

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Prefix of the printable form.
            pub const PREFIX: &'static str = $prefix;

            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The id of the given canonical encoding.
            pub fn of_bytes(canonical: &[u8]) -> Self {
                $name(*blake3::hash(canonical).as_bytes())
            }

            /// The leading id bytes named by a short form such as `mp1qy3x8z2a`
            /// (at least 8 characters after the prefix), for looking up the
            /// one stored id that starts with them.
            pub fn prefix_bytes(short: &str) -> Result<Vec<u8>, ParseIdError> {
                prefix_bytes($prefix, $what, short)
            }

            /// A short form for display (prefix and 8 characters); a node
            /// resolves it back if it is unique among what it holds.
            pub fn short(&self) -> String {
                self.to_string().chars().take($prefix.len() + 1 + 8).collect()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&encode_printable($prefix, &self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                decode_printable($prefix, $what, s).map($name)
            }
        }
    };
}

hash_id!(
    /// A post's id: BLAKE3 of its canonical signed encoding, so a post is
    /// named by its content and duplicates collapse.
    PostId,
    "mp",
    "post id"
);
hash_id!(
    /// A community's id: BLAKE3 of its signed manifest. Everything signed
    /// names it, so nothing can be replayed into another community.
    CommunityId,
    "mc",
    "community id"
);
hash_id!(
    /// A moderation action's or retraction's or report's id: BLAKE3 of its
    /// canonical signed encoding.
    ActionId,
    "ma",
    "action id"
);

impl From<[u8; 32]> for PostId {
    fn from(b: [u8; 32]) -> Self {
        PostId(b)
    }
}
impl From<[u8; 32]> for CommunityId {
    fn from(b: [u8; 32]) -> Self {
        CommunityId(b)
    }
}
impl From<[u8; 32]> for ActionId {
    fn from(b: [u8; 32]) -> Self {
        ActionId(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_id_round_trips_and_has_short_form() {
        let id = PostId::of_bytes(b"x");
        let s = id.to_string();
        assert!(s.starts_with("mp1"));
        assert_eq!(s.parse::<PostId>().unwrap(), id);
        assert_eq!(id.short().len(), 11);
        assert!(s.starts_with(&id.short()));
    }

    #[test]
    fn short_form_names_the_leading_bytes() {
        let id = PostId::of_bytes(b"y");
        let prefix = PostId::prefix_bytes(&id.short()).unwrap();
        assert_eq!(prefix.len(), 5);
        assert_eq!(&id.0[..5], prefix.as_slice());
        assert!(PostId::prefix_bytes("mp1abc").is_err());
        assert!(
            PostId::prefix_bytes("mp1bbbbbbbbb").is_err(),
            "b is not in the alphabet"
        );
    }

    #[test]
    fn key_is_not_a_post_id() {
        let id = CommunityId::of_bytes(b"x").to_string();
        let err = id.parse::<PostId>().unwrap_err();
        assert!(err.to_string().contains("post id"), "{err}");
    }
}
