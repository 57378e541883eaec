//! The one place that knows the byte format. Every encoding and decoding of
//! the project goes through here (gossip, sync, the store's values), so the
//! format (bincode 2 today, no longer maintained upstream) can be swapped in
//! one file.
//!
//! Rules: a leading version byte on everything that travels; a size limit
//! checked before decoding; trailing bytes rejected; and canonical form
//! enforced by re-encoding what was decoded and comparing, so one value has
//! exactly one byte string (ids are hashes of it).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version byte of the current wire format.
pub const WIRE_VERSION: u8 = 1;
/// Largest gossip message: a full post (8 KiB body) plus headroom; a report
/// sealed to many moderators is the biggest legitimate item.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest sync request or response frame.
pub const MAX_SYNC_FRAME_BYTES: usize = 2 * 1024 * 1024;

/// Why bytes did not decode. Decoding never panics; it returns one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Nothing to decode.
    #[error("malformed message: it is empty")]
    Empty,
    /// Larger than the limit for its kind; not even looked at.
    #[error("too large: the message is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit that applies.
        limit: usize,
    },
    /// A version byte this node does not speak.
    #[error("unknown version {0}: this node speaks version {WIRE_VERSION}; upgrade mutual")]
    UnknownVersion(u8),
    /// A text field holds bytes that are not UTF-8.
    #[error("text is not valid UTF-8")]
    NotUtf8,
    /// Bytes left over after a complete value.
    #[error("malformed message: {0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// The value decodes, but not from its one canonical encoding.
    #[error("malformed message: not in canonical encoding")]
    NotCanonical,
    /// Anything else the decoder refused (a bad tag, a short read, a field
    /// rule such as a topic name).
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// bincode's standard configuration with a decode limit. bincode allocates
/// a string or byte list of the length the input claims before reading it,
/// so without a limit a forged length (a few bytes saying 2^60) panics with
/// a capacity overflow or aborts the process out of memory. With it, a
/// claim past the largest frame is refused as too large. Encoding ignores
/// the limit.
type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_SYNC_FRAME_BYTES>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_SYNC_FRAME_BYTES>()
}

/// Encodes a value canonically (without a version byte): signing input,
/// ids and stored values.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our types hold only sized sequences, strings, integers and options:
    // serialising them cannot fail. Should a future type break that, the
    // empty output fails every later decode instead of panicking here.
    encode_after(Vec::with_capacity(ENCODE_CAPACITY), value)
}

/// `out` followed by the encoding of `value` (`out` alone should the
/// encoding fail, see [`encode`]).
fn encode_after<T: Serialize>(mut out: Vec<u8>, value: &T) -> Vec<u8> {
    let len = out.len();
    if bincode::serde::encode_into_std_write(value, &mut out, config()).is_err() {
        out.truncate(len);
    }
    out
}

/// The first allocation of an encoding: most messages (a post of a few
/// hundred bytes) fit, so encoding does not grow its buffer step by step.
const ENCODE_CAPACITY: usize = 512;

/// Decodes a value encoded by [`encode`], refusing oversized, trailing or
/// non-canonical input.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, WireError> {
    if bytes.is_empty() {
        return Err(WireError::Empty);
    }
    if bytes.len() > limit {
        return Err(WireError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    let (value, read): (T, usize) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(map_decode_error)?;
    if read != bytes.len() {
        return Err(WireError::TrailingBytes(bytes.len().saturating_sub(read)));
    }
    if encode(&value) != bytes {
        return Err(WireError::NotCanonical);
    }
    Ok(value)
}

/// Encodes a value for travel: version byte, then [`encode`].
pub fn encode_versioned<T: Serialize>(value: &T) -> Vec<u8> {
    encode_versioned_as(WIRE_VERSION, value)
}

/// Encodes a value for travel with the given version byte (a message
/// kind that older nodes must refuse by its version: see
/// [`crate::message::SUCCESSION_WIRE_VERSION`]).
pub fn encode_versioned_as<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENCODE_CAPACITY);
    out.push(version);
    encode_after(out, value)
}

/// Decodes what [`encode_versioned`] wrote. Cheap checks (size, version)
/// come first.
pub fn decode_versioned<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, WireError> {
    decode_versioned_in(bytes, limit, &[WIRE_VERSION])
}

/// [`decode_versioned`] accepting any of `versions` (the caller checks
/// that the version fits what was decoded).
pub fn decode_versioned_in<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
    versions: &[u8],
) -> Result<T, WireError> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err(WireError::Empty);
    };
    if bytes.len() > limit {
        return Err(WireError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    if !versions.contains(&version) {
        return Err(WireError::UnknownVersion(version));
    }
    decode(rest, limit)
}

/// The bytes a signature covers: a domain tag (so a signature over one kind
/// of item can never pass as another), a zero byte, the canonical encoding.
pub fn signing_bytes<T: Serialize>(domain: &str, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(domain.len() + 256);
    out.extend_from_slice(domain.as_bytes());
    out.push(0);
    out.extend_from_slice(&encode(value));
    out
}

fn map_decode_error(e: bincode::error::DecodeError) -> WireError {
    use bincode::error::DecodeError;
    match e {
        DecodeError::Utf8 { .. } => WireError::NotUtf8,
        // A field rule's own message (e.g. a topic name): bincode's Display
        // of this variant is its Debug form, quotes escaped.
        DecodeError::OtherString(text) => WireError::Malformed(text),
        DecodeError::LimitExceeded => WireError::TooLarge {
            size: 0,
            limit: MAX_SYNC_FRAME_BYTES,
        },
        other => WireError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode_versioned(&(1u32, String::from("x")));
        bytes.push(0);
        assert_eq!(
            decode_versioned::<(u32, String)>(&bytes, 100),
            Err(WireError::TrailingBytes(1))
        );
    }

    #[test]
    fn unknown_version_is_named() {
        let mut bytes = encode_versioned(&7u32);
        bytes[0] = 9;
        assert_eq!(
            decode_versioned::<u32>(&bytes, 100),
            Err(WireError::UnknownVersion(9))
        );
    }

    #[test]
    fn non_canonical_varint_is_rejected() {
        // 5 encoded as a 3-byte varint (tag 251 + u16) instead of one byte.
        let bytes = [WIRE_VERSION, 251, 5, 0];
        assert_eq!(
            decode_versioned::<u64>(&bytes, 100),
            Err(WireError::NotCanonical)
        );
    }

    #[test]
    fn invalid_utf8_is_named() {
        let bytes = [WIRE_VERSION, 2, 0xff, 0xfe];
        assert_eq!(
            decode_versioned::<String>(&bytes, 100),
            Err(WireError::NotUtf8)
        );
    }

    #[test]
    fn a_forged_length_is_refused_not_allocated() {
        // A string, a byte list and a list of lists whose lengths claim
        // 2^64 - 1, 2^40 and 2^32 elements, in a few bytes.
        let mut huge = vec![WIRE_VERSION, 253];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_versioned::<String>(&huge, 100),
            Err(WireError::TooLarge { .. })
        ));
        let mut big = vec![WIRE_VERSION, 253];
        big.extend_from_slice(&(1u64 << 40).to_le_bytes());
        // (Lists go through serde's cautious preallocation: refused when
        // the input runs out.)
        assert!(decode_versioned::<Vec<u8>>(&big, 100).is_err());
        assert!(matches!(
            decode_versioned::<String>(&big, 100),
            Err(WireError::TooLarge { .. })
        ));
        let mut many = vec![WIRE_VERSION, 253];
        many.extend_from_slice(&(1u64 << 32).to_le_bytes());
        assert!(decode_versioned::<Vec<Vec<u8>>>(&many, 100).is_err());
    }

    #[test]
    fn values_up_to_the_frame_limit_still_decode() {
        let value = vec![7u8; MAX_SYNC_FRAME_BYTES - 16];
        let bytes = encode_versioned(&value);
        assert_eq!(
            decode_versioned::<Vec<u8>>(&bytes, MAX_SYNC_FRAME_BYTES),
            Ok(value)
        );
        let items = vec![vec![1u8; 1000]; 2000];
        let bytes = encode_versioned(&items);
        assert!(bytes.len() < MAX_SYNC_FRAME_BYTES);
        assert_eq!(
            decode_versioned::<Vec<Vec<u8>>>(&bytes, MAX_SYNC_FRAME_BYTES),
            Ok(items)
        );
    }

    #[test]
    fn oversize_is_refused_before_decoding() {
        let bytes = vec![WIRE_VERSION; 101];
        assert!(matches!(
            decode_versioned::<Vec<u8>>(&bytes, 100),
            Err(WireError::TooLarge {
                size: 101,
                limit: 100
            })
        ));
    }
}
