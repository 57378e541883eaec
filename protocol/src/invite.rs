//! Invite codes: one copy-pasteable string holding a community's signed
//! manifest and the addresses of the inviting node. It is all a newcomer
//! needs to join.
//!
//! Form: `mutual-invite:` then base64url (no padding) of the canonical
//! encoding of [`Invite`] followed by a 4-byte BLAKE3 checksum, so a
//! truncated or mistyped code gives a clear error instead of a wrong
//! community.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::community::SignedManifest;
use crate::error::ValidationError;
use crate::ids::CommunityId;
use crate::wire;

/// The text every invite code starts with.
pub const INVITE_PREFIX: &str = "mutual-invite:";
/// Most addresses carried in one invite.
pub const MAX_INVITE_ADDRS: usize = 16;
/// Largest decoded invite (a manifest with 16 KiB of rules plus addresses).
pub const MAX_INVITE_BYTES: usize = 24 * 1024;
const CHECKSUM_LEN: usize = 4;

/// What an invite code holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The community's signed manifest.
    pub manifest: SignedManifest,
    /// Multiaddresses (as text) of the inviting node, to bootstrap from.
    pub addrs: Vec<String>,
}

/// Why an invite code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// Missing the `mutual-invite:` prefix.
    #[error("malformed invite: it should start with `{INVITE_PREFIX}`")]
    Prefix,
    /// Not base64url.
    #[error("malformed invite: it contains characters that are not part of an invite code (was it copied whole?)")]
    Encoding,
    /// The checksum does not match: truncated or mistyped.
    #[error("malformed invite: the checksum does not match (was it copied whole, without typos?)")]
    Checksum,
    /// Decoded, but not an invite.
    #[error("malformed invite: {0}")]
    Content(String),
    /// The manifest inside is not validly signed.
    #[error("invalid invite: {0}")]
    Manifest(ValidationError),
}

impl Invite {
    /// The invite code text.
    pub fn encode(&self) -> String {
        let mut bytes = wire::encode(self);
        let sum = blake3::hash(&bytes);
        bytes.extend(sum.as_bytes().iter().take(CHECKSUM_LEN));
        format!("{INVITE_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses and checks an invite code; returns it with its community id.
    pub fn decode(code: &str, now_ms: u64) -> Result<(Invite, CommunityId), InviteError> {
        let body = code
            .trim()
            .strip_prefix(INVITE_PREFIX)
            .ok_or(InviteError::Prefix)?;
        if body.len() > MAX_INVITE_BYTES * 2 {
            return Err(InviteError::Content("it is too long".into()));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| InviteError::Encoding)?;
        if bytes.len() <= CHECKSUM_LEN {
            return Err(InviteError::Checksum);
        }
        let (payload, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if blake3::hash(payload).as_bytes().get(..CHECKSUM_LEN) != Some(sum) {
            return Err(InviteError::Checksum);
        }
        let invite: Invite = wire::decode(payload, MAX_INVITE_BYTES)
            .map_err(|e| InviteError::Content(e.to_string()))?;
        if invite.addrs.len() > MAX_INVITE_ADDRS {
            return Err(InviteError::Content(format!(
                "it lists {} addresses, the limit is {MAX_INVITE_ADDRS}",
                invite.addrs.len()
            )));
        }
        let id = invite
            .manifest
            .verify_manifest(now_ms)
            .map_err(InviteError::Manifest)?;
        Ok((invite, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::community::CommunityManifest;
    use crate::keys::SecretKey;

    fn invite() -> Invite {
        let admin = SecretKey::generate();
        Invite {
            manifest: CommunityManifest::create("Circle", "Be kind", &admin, 5).unwrap(),
            addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
        }
    }

    #[test]
    fn round_trips() {
        let inv = invite();
        let code = inv.encode();
        let (back, id) = Invite::decode(&code, 10).unwrap();
        assert_eq!(back, inv);
        assert_eq!(id, inv.manifest.id());
    }

    #[test]
    fn truncated_or_mistyped_codes_are_refused_clearly() {
        let code = invite().encode();
        let truncated = &code[..code.len() - 3];
        assert!(Invite::decode(truncated, 10).is_err());
        let mut typo: Vec<char> = code.chars().collect();
        let i = INVITE_PREFIX.len() + 5;
        typo[i] = if typo[i] == 'A' { 'B' } else { 'A' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(Invite::decode(&typo, 10), Err(InviteError::Checksum));
        assert_eq!(Invite::decode("hello", 10), Err(InviteError::Prefix));
        assert_eq!(
            Invite::decode("mutual-invite:!!!", 10),
            Err(InviteError::Encoding)
        );
    }
}
