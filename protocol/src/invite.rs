//! Invite codes: one short copy-pasteable string that says which community
//! to join and where to find the person who invited you.
//!
//! An invite does not carry the community's manifest (whose rules may be
//! 16 KiB): it names the community by its id, the BLAKE3 of the signed
//! manifest, and the joining node fetches the manifest from the inviter and
//! checks it against that id. So a code stays under [`MAX_INVITE_CHARS`]
//! whatever the rules' length.
//!
//! The inviter signs the invite with their author key, addresses included:
//! whoever forwards a code cannot swap in their own node without the
//! signature failing (they could only sign a new invite as themselves, and
//! the newcomer is shown who invited them).
//!
//! Form: `mutual-invite:` then base64url (no padding) of a format byte, the
//! payload's length (2 bytes, big-endian) and the payload (the canonical
//! encoding of a [`SignedInvite`]). The length tells a code that was cut
//! off ("incomplete") from one that was altered; the signature catches any
//! altered character. Whitespace and line breaks inside a pasted code are
//! ignored.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::CommunityId;
use crate::keys::{PublicKey, SecretKey};
use crate::signed::{check_time, Signable, Signed};
use crate::wire;

/// The text every invite code starts with.
pub const INVITE_PREFIX: &str = "mutual-invite:";
/// The longest code an inviting node makes (characters, prefix included):
/// short enough for a chat message or a QR code.
pub const MAX_INVITE_CHARS: usize = 500;
/// Most addresses one invite carries.
pub const MAX_INVITE_ADDRS: usize = 8;
/// Largest address (a binary multiaddr; a relay circuit is about 50 bytes).
pub const MAX_INVITE_ADDR_BYTES: usize = 128;
/// Largest peer id (an Ed25519 peer id is 38 bytes).
pub const MAX_INVITE_PEER_BYTES: usize = 64;
/// The format byte of the current form.
const FORMAT: u8 = 3;
/// Format byte and payload length.
const HEADER_BYTES: usize = 3;
/// Largest payload any valid invite can have (every field at its limit).
const MAX_PAYLOAD_BYTES: usize = 2048;
/// Longer text is not an invite at all.
const MAX_CODE_CHARS: usize = 4 * (HEADER_BYTES + MAX_PAYLOAD_BYTES) / 3 + 4;

/// Decodes what the encoder wrote, and a truncated code too (a missing
/// last character leaves stray bits, which the length check then names).
/// Altered trailing bits are caught by re-encoding and comparing.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// What an inviter signs: which community, who invites, where to reach them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The community: the hash of its signed manifest, which the joining
    /// node fetches and checks against it.
    pub community: CommunityId,
    /// The inviter's author key, which signs the invite.
    pub inviter: PublicKey,
    /// The inviting node's libp2p peer id (its binary form), if given: the
    /// joining node then talks only to that node at the addresses.
    pub peer: Option<Vec<u8>>,
    /// The inviting node's addresses: binary multiaddrs without the
    /// trailing `/p2p/<peer id>`, best first.
    pub addrs: Vec<Vec<u8>>,
    /// When the invite was made, ms since the Unix epoch.
    pub created_at: u64,
    /// What only members hold: the community secret and, for an
    /// admission, the invitation's key.
    pub secrets: InviteSecrets,
}

/// The secrets an invite code hands to the newcomer, and nobody else
/// should hold: the code is the only way they travel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteSecrets {
    /// The community secret: the keys of topic ids, gossip payloads and
    /// the membership proof derive from it, so whoever lacks it learns
    /// nothing from the network.
    pub community: [u8; 32],
    /// The seed of an invitation key ([`crate::ModActionKind::Invite`]),
    /// whose signature over the newcomer's key admits them to an
    /// invite-only community; `None` for an invite that admits nobody by
    /// itself (an open community's).
    pub admission: Option<[u8; 32]>,
}

/// Domain of [`legacy_community_secret`].
const LEGACY_SECRET_DOMAIN: &str = "mutual/v1 legacy community secret";

/// The community secret of a community created before secrets existed:
/// derived from its id, so every member already holds it, and it hides
/// nothing from whoever knows the id.
pub fn legacy_community_secret(community: &CommunityId) -> [u8; 32] {
    blake3::derive_key(LEGACY_SECRET_DOMAIN, community.as_bytes())
}

/// An invite with its inviter's signature: what a code holds.
pub type SignedInvite = Signed<Invite>;

impl Signable for Invite {
    const DOMAIN: &'static str = "mutual/v1/invite";
    type Id = [u8; 32];
    fn signer(&self) -> &PublicKey {
        &self.inviter
    }
    fn community(&self) -> Option<&CommunityId> {
        Some(&self.community)
    }
    fn created_at(&self) -> u64 {
        self.created_at
    }
    fn check_fields(&self) -> Result<(), ValidationError> {
        if self.addrs.is_empty() {
            return Err(ValidationError::Empty("invite addresses"));
        }
        let too_large = |field, size, limit| ValidationError::TooLarge { field, size, limit };
        if self.addrs.len() > MAX_INVITE_ADDRS {
            return Err(too_large(
                "invite address count",
                self.addrs.len(),
                MAX_INVITE_ADDRS,
            ));
        }
        for a in &self.addrs {
            if a.is_empty() {
                return Err(ValidationError::Empty("invite address"));
            }
            if a.len() > MAX_INVITE_ADDR_BYTES {
                return Err(too_large("invite address", a.len(), MAX_INVITE_ADDR_BYTES));
            }
        }
        if let Some(p) = &self.peer {
            if p.is_empty() || p.len() > MAX_INVITE_PEER_BYTES {
                return Err(too_large("invite peer id", p.len(), MAX_INVITE_PEER_BYTES));
            }
        }
        Ok(())
    }
}

/// Why an invite code was refused. Each says what the person can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// Not an invite code at all.
    #[error("not an invite code: {0}")]
    NotAnInvite(String),
    /// Cut off: the start of a valid code, but not all of it.
    #[error("the invite code is incomplete (it was cut off when copied): copy the whole code, or ask for it again")]
    Incomplete,
    /// Complete, but some character differs from what the inviter signed.
    #[error("the invite code was altered or mistyped ({0}): copy it again exactly as sent, or ask for a fresh one")]
    Altered(String),
    /// A form this version does not read.
    #[error("the invite code is in a format this version of mutual does not read (format {0}): upgrade mutual, or ask for a fresh code")]
    UnknownFormat(u8),
    /// Signed, but breaks a rule (a time far in the future).
    #[error("invalid invite code: {0}")]
    Invalid(ValidationError),
}

impl Invite {
    /// Makes and signs an invite. `addrs` are kept in order; the caller
    /// keeps the code short (see [`SignedInvite::encode`]).
    pub fn create(
        community: CommunityId,
        secrets: InviteSecrets,
        inviter: &SecretKey,
        peer: Option<Vec<u8>>,
        addrs: Vec<Vec<u8>>,
        now_ms: u64,
    ) -> Result<SignedInvite, ValidationError> {
        let invite = Invite {
            community,
            inviter: inviter.public(),
            peer,
            addrs,
            created_at: now_ms,
            secrets,
        };
        invite.check_fields()?;
        Ok(Signed::sign(invite, inviter))
    }
}

/// The code text around a payload (the canonical encoding of a
/// [`SignedInvite`]): prefix, format byte, length. Public for the fuzz
/// checks, which feed arbitrary payloads to the decoder.
pub fn code_from_payload(payload: &[u8]) -> String {
    // The field limits keep a real payload far below 64 KiB.
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.push(FORMAT);
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(payload);
    format!("{INVITE_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

impl Signed<Invite> {
    /// The invite code text.
    pub fn encode(&self) -> String {
        code_from_payload(&wire::encode(self))
    }

    /// Parses and checks an invite code (whitespace anywhere is ignored):
    /// its form, then the inviter's signature. Checking the community's
    /// manifest against [`Invite::community`] is the fetcher's job.
    pub fn decode(code: &str, now_ms: u64) -> Result<SignedInvite, InviteError> {
        let text: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let Some(body) = text.strip_prefix(INVITE_PREFIX) else {
            return Err(InviteError::NotAnInvite(format!(
                "it should start with `{INVITE_PREFIX}`"
            )));
        };
        if body.len() > MAX_CODE_CHARS {
            return Err(InviteError::NotAnInvite(format!(
                "it is {} characters long; an invite is a few hundred",
                text.len()
            )));
        }
        if let Some(c) = body
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(InviteError::Altered(format!(
                "it contains `{c}`, which is not part of any invite code"
            )));
        }
        // One character past a whole group of four cannot be decoded: it
        // is what remains of a cut-off group.
        let usable = if body.len() % 4 == 1 {
            body.get(..body.len() - 1).unwrap_or_default()
        } else {
            body
        };
        let bytes = LENIENT
            .decode(usable)
            .map_err(|e| InviteError::Altered(e.to_string()))?;
        let (Some(&format), Some(len), Some(rest)) = (
            bytes.first(),
            bytes.get(1..HEADER_BYTES),
            bytes.get(HEADER_BYTES..),
        ) else {
            return Err(InviteError::Incomplete);
        };
        if format != FORMAT {
            return Err(InviteError::UnknownFormat(format));
        }
        let declared = usize::from(u16::from_be_bytes([
            len.first().copied().unwrap_or(0),
            len.get(1).copied().unwrap_or(0),
        ]));
        if rest.len() < declared {
            return Err(InviteError::Incomplete);
        }
        if rest.len() > declared {
            return Err(InviteError::Altered("it is longer than it says".into()));
        }
        if URL_SAFE_NO_PAD.encode(&bytes) != body {
            return Err(InviteError::Altered("its last character".into()));
        }
        let invite: SignedInvite = wire::decode(rest, MAX_PAYLOAD_BYTES)
            .map_err(|e| InviteError::Altered(e.to_string()))?;
        invite
            .content
            .check_fields()
            .map_err(|e| InviteError::Altered(e.to_string()))?;
        if invite.check_signature().is_err() {
            return Err(InviteError::Altered(format!(
                "it does not carry the signature of the inviter it names, {}",
                invite.content.inviter.short()
            )));
        }
        check_time(invite.content.created_at, now_ms).map_err(InviteError::Invalid)?;
        Ok(invite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::community::CommunityManifest;
    use proptest::prelude::*;

    const NOW: u64 = 1_760_000_000_000;

    /// `/ip4/a.b.c.d/tcp/4001` in binary.
    fn tcp(ip: [u8; 4]) -> Vec<u8> {
        let mut out = vec![0x04];
        out.extend(ip);
        out.extend([0x06, 0x0f, 0xa1]);
        out
    }

    /// A peer id's binary form (Ed25519: identity multihash of a
    /// 36-byte protobuf public key).
    fn peer_id(seed: u8) -> Vec<u8> {
        let mut out = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
        out.extend([seed; 32]);
        out
    }

    /// Three realistic addresses: TCP, QUIC and a relay circuit.
    fn addrs() -> Vec<Vec<u8>> {
        // /ip4/203.0.113.7/udp/4001/quic-v1
        let quic = vec![0x04, 203, 0, 113, 7, 0x91, 0x02, 0x0f, 0xa1, 0xcc, 0x03];
        // /ip4/198.51.100.1/tcp/4001/p2p/<relay>/p2p-circuit
        let mut circuit = tcp([198, 51, 100, 1]);
        circuit.extend([0xa5, 0x03, 38]);
        circuit.extend(peer_id(9));
        circuit.extend([0xa2, 0x02]);
        vec![tcp([203, 0, 113, 7]), quic, circuit]
    }

    fn test_secrets() -> InviteSecrets {
        InviteSecrets {
            community: [7; 32],
            admission: Some([9; 32]),
        }
    }

    fn invite_for(manifest: &crate::SignedManifest) -> (SignedInvite, SecretKey) {
        let key = SecretKey::generate();
        let inv = Invite::create(
            manifest.id(),
            test_secrets(),
            &key,
            Some(peer_id(1)),
            addrs(),
            NOW,
        )
        .unwrap();
        (inv, key)
    }

    fn invite() -> SignedInvite {
        let admin = SecretKey::generate();
        let m = CommunityManifest::create("Circle", "Be kind", &admin, 5).unwrap();
        invite_for(&m).0
    }

    #[test]
    fn round_trips_and_ignores_whitespace() {
        let inv = invite();
        let code = inv.encode();
        assert_eq!(SignedInvite::decode(&code, NOW).unwrap(), inv);
        // Wrapped at 60 columns, indented, with a trailing newline.
        let wrapped: String = code
            .chars()
            .collect::<Vec<_>>()
            .chunks(60)
            .map(|c| format!("  {}\r\n", c.iter().collect::<String>()))
            .collect();
        assert_eq!(SignedInvite::decode(&wrapped, NOW).unwrap(), inv);
    }

    #[test]
    fn every_truncation_is_incomplete() {
        let code = invite().encode();
        for cut in INVITE_PREFIX.len() + 1..code.len() {
            assert_eq!(
                SignedInvite::decode(&code[..cut], NOW),
                Err(InviteError::Incomplete),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            SignedInvite::decode(&code[..5], NOW),
            Err(InviteError::NotAnInvite(_))
        ));
    }

    #[test]
    fn every_altered_character_is_refused() {
        let code = invite().encode();
        let chars: Vec<char> = code.chars().collect();
        for i in INVITE_PREFIX.len()..chars.len() {
            for replacement in ['A', 'q', '-', '7'] {
                if chars[i] == replacement {
                    continue;
                }
                let mut altered = chars.clone();
                altered[i] = replacement;
                let altered: String = altered.into_iter().collect();
                let result = SignedInvite::decode(&altered, NOW);
                assert!(result.is_err(), "position {i} → {replacement} accepted");
                // Past the header, a change is named as one.
                if i >= INVITE_PREFIX.len() + 4 {
                    assert!(
                        matches!(result, Err(InviteError::Altered(_))),
                        "position {i}: {result:?}"
                    );
                }
            }
        }
        let mut extra = code.clone();
        extra.push('A');
        assert!(SignedInvite::decode(&extra, NOW).is_err());
    }

    #[test]
    fn a_forwarder_cannot_swap_the_addresses() {
        let admin = SecretKey::generate();
        let m = CommunityManifest::create("Circle", "", &admin, 5).unwrap();
        let (mut inv, _) = invite_for(&m);
        inv.content.addrs = vec![tcp([192, 0, 2, 66])];
        let err = SignedInvite::decode(&inv.encode(), NOW).unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
    }

    #[test]
    fn other_text_is_named() {
        assert!(matches!(
            SignedInvite::decode("hello", NOW),
            Err(InviteError::NotAnInvite(_))
        ));
        assert!(matches!(
            SignedInvite::decode("mutual-invite:!!!", NOW),
            Err(InviteError::Altered(_))
        ));
        assert_eq!(
            SignedInvite::decode("mutual-invite:", NOW),
            Err(InviteError::Incomplete)
        );
        let long = format!("{INVITE_PREFIX}{}", "A".repeat(10_000));
        assert!(matches!(
            SignedInvite::decode(&long, NOW),
            Err(InviteError::NotAnInvite(_))
        ));
    }

    #[test]
    fn an_invite_from_the_future_is_refused() {
        let key = SecretKey::generate();
        let id = CommunityId::from([3; 32]);
        let inv = Invite::create(id, test_secrets(), &key, None, addrs(), NOW + 3_600_000).unwrap();
        assert!(matches!(
            SignedInvite::decode(&inv.encode(), NOW),
            Err(InviteError::Invalid(ValidationError::FromTheFuture { .. }))
        ));
    }

    #[test]
    fn fields_are_bounded() {
        let key = SecretKey::generate();
        let id = CommunityId::from([3; 32]);
        assert!(Invite::create(id, test_secrets(), &key, None, vec![], NOW).is_err());
        assert!(Invite::create(id, test_secrets(), &key, None, vec![vec![1]; 9], NOW).is_err());
        assert!(Invite::create(id, test_secrets(), &key, None, vec![vec![1; 129]], NOW).is_err());
        assert!(
            Invite::create(id, test_secrets(), &key, Some(vec![]), vec![vec![1]], NOW).is_err()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// However long the rules, the code with three realistic
        /// addresses, a relay circuit among them, stays short.
        #[test]
        fn any_rules_give_a_short_code(len in 0..=crate::MAX_RULES_BYTES) {
            let admin = SecretKey::generate();
            let rules = "r".repeat(len);
            let m = CommunityManifest::create("Circle", &rules, &admin, 5).unwrap();
            let (inv, _) = invite_for(&m);
            let code = inv.encode();
            prop_assert!(code.len() <= MAX_INVITE_CHARS, "{} chars", code.len());
            prop_assert_eq!(SignedInvite::decode(&code, NOW).unwrap().content.community, m.id());
        }
    }
}
