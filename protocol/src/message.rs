//! The one wire envelope: everything that travels over gossip or sync is a
//! [`Message`], encoded as a version byte plus its canonical encoding.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::{ActionId, CommunityId};
use crate::keys::{PublicKey, Signature};
use crate::moderation::{ModAction, SignedModAction};
use crate::post::{Post, SignedPost};
use crate::report::{SealedReport, VerifiedReport};
use crate::retraction::{Retraction, SignedRetraction};
use crate::sigcheck::{verify_many, SignatureCheck};
use crate::signed::{Signable, Signed, Verified};
use crate::wire::{self, MAX_MESSAGE_BYTES};

/// What the node needs to judge an item: which community it belongs to and
/// what time it is now (passed in; this crate reads no clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidationContext {
    /// This node's community.
    pub community: CommunityId,
    /// The node's current time, ms since the Unix epoch.
    pub now_ms: u64,
}

/// Everything that travels between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A post.
    Post(SignedPost),
    /// An author taking back a post.
    Retraction(SignedRetraction),
    /// A moderation action.
    Moderation(SignedModAction),
    /// A report sealed to the moderators.
    Report(SealedReport),
}

/// A message whose every rule was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifiedMessage {
    /// A post.
    Post(Verified<Post>),
    /// A retraction.
    Retraction(Verified<Retraction>),
    /// A moderation action.
    Moderation(Verified<ModAction>),
    /// A sealed report.
    Report(VerifiedReport),
}

/// What a batch must check of one signed item: its signature, and its
/// co-signature if it carries one.
fn signature_jobs<T: Signable>(item: &Signed<T>) -> Vec<(PublicKey, Vec<u8>, Signature)> {
    let mut jobs = vec![(*item.content.signer(), item.signing_bytes(), item.signature)];
    jobs.extend(item.content.co_signature());
    jobs
}

/// Version byte of a message holding a key succession. Older nodes speak
/// only [`wire::WIRE_VERSION`]: they refuse such a message as a version
/// they do not know ("upgrade mutual") instead of misreading it, and keep
/// exchanging every other item with newer nodes.
pub const SUCCESSION_WIRE_VERSION: u8 = 2;

/// Version byte of a message holding an action kind added with
/// membership (co-admins, manifest updates, invitations, lockdown,
/// approvals and later kinds: [`crate::ModActionKind::wire_version`]):
/// nodes that speak only versions 1 and 2 refuse it as a version they do
/// not know instead of failing on an unknown action kind.
pub const MEMBERSHIP_WIRE_VERSION: u8 = 3;

impl Message {
    /// Decodes a message from gossip or sync bytes.
    pub fn decode(bytes: &[u8]) -> Result<Message, ValidationError> {
        let message: Message = wire::decode_versioned_in(
            bytes,
            MAX_MESSAGE_BYTES,
            &[
                wire::WIRE_VERSION,
                SUCCESSION_WIRE_VERSION,
                MEMBERSHIP_WIRE_VERSION,
            ],
        )?;
        // One byte string per message: the version says whether it holds
        // a succession.
        if bytes.first() != Some(&message.version()) {
            return Err(wire::WireError::NotCanonical.into());
        }
        Ok(message)
    }

    /// Encodes for travel.
    pub fn encode(&self) -> Vec<u8> {
        wire::encode_versioned_as(self.version(), self)
    }

    /// The version byte this message travels with.
    fn version(&self) -> u8 {
        match self {
            Message::Moderation(a) => a.content.kind.wire_version(),
            _ => wire::WIRE_VERSION,
        }
    }

    /// Decodes and checks every rule. This is the single entry point for "a
    /// signed thing arrived", whether by gossip or by sync.
    pub fn decode_and_verify(
        bytes: &[u8],
        ctx: &ValidationContext,
    ) -> Result<VerifiedMessage, ValidationError> {
        Message::decode(bytes)?.verify(ctx)
    }

    /// Checks every rule of many messages at once: the verdicts are exactly
    /// those of [`Message::verify`] one by one (see [`crate::sigcheck`]),
    /// at about half the cost per signature. `rng` draws the batch
    /// verification's random weights.
    pub fn verify_many<R: rand::RngCore + rand::CryptoRng>(
        messages: Vec<Message>,
        ctx: &ValidationContext,
        rng: &mut R,
    ) -> Vec<Result<VerifiedMessage, ValidationError>> {
        // Cheap checks first; what passes them waits for its signature.
        let mut pending: Vec<Result<Message, ValidationError>> = Vec::with_capacity(messages.len());
        let mut jobs: Vec<(usize, PublicKey, Vec<u8>, Signature)> = Vec::new();
        for (i, m) in messages.into_iter().enumerate() {
            let job = match &m {
                Message::Post(p) => p.check_cheap(ctx).map(|()| signature_jobs(p)),
                Message::Retraction(r) => r.check_cheap(ctx).map(|()| signature_jobs(r)),
                Message::Moderation(a) => a.check_cheap(ctx).map(|()| signature_jobs(a)),
                Message::Report(_) => Ok(Vec::new()),
            };
            match job {
                Ok(item_jobs) => {
                    jobs.extend(
                        item_jobs
                            .into_iter()
                            .map(|(key, bytes, sig)| (i, key, bytes, sig)),
                    );
                    pending.push(Ok(m));
                }
                Err(e) => pending.push(Err(e)),
            }
        }
        let checks: Vec<SignatureCheck<'_>> = jobs
            .iter()
            .map(|(_, key, bytes, sig)| SignatureCheck {
                key: *key,
                message: bytes,
                signature: *sig,
            })
            .collect();
        let verdicts = verify_many(&checks, rng);
        let mut signature_ok = vec![true; pending.len()];
        for ((i, ..), ok) in jobs.iter().zip(verdicts) {
            if let Some(slot) = signature_ok.get_mut(*i) {
                *slot &= ok;
            }
        }
        pending
            .into_iter()
            .zip(signature_ok)
            .map(|(m, ok)| {
                let m = m?;
                Ok(match m {
                    Message::Post(p) if ok => VerifiedMessage::Post(p.checked()),
                    Message::Retraction(r) if ok => VerifiedMessage::Retraction(r.checked()),
                    Message::Moderation(a) if ok => VerifiedMessage::Moderation(a.checked()),
                    Message::Report(r) => VerifiedMessage::Report(r.verify(ctx)?),
                    Message::Post(p) => return Err(p.bad_signature()),
                    Message::Retraction(r) => return Err(r.bad_signature()),
                    // The signer's or the co-signer's: say which.
                    Message::Moderation(a) => {
                        return Err(a.check_signature().err().unwrap_or(a.bad_signature()))
                    }
                })
            })
            .collect()
    }

    /// Checks every rule, cheapest first.
    pub fn verify(self, ctx: &ValidationContext) -> Result<VerifiedMessage, ValidationError> {
        Ok(match self {
            Message::Post(p) => VerifiedMessage::Post(p.verify(ctx)?),
            Message::Retraction(r) => VerifiedMessage::Retraction(r.verify(ctx)?),
            Message::Moderation(m) => VerifiedMessage::Moderation(m.verify(ctx)?),
            Message::Report(r) => VerifiedMessage::Report(r.verify(ctx)?),
        })
    }
}

impl VerifiedMessage {
    /// The content id of the message (a post id's bytes for a post).
    pub fn id_bytes(&self) -> [u8; 32] {
        match self {
            VerifiedMessage::Post(p) => p.id().0,
            VerifiedMessage::Retraction(r) => r.id().0,
            VerifiedMessage::Moderation(m) => m.id().0,
            VerifiedMessage::Report(r) => r.id().0,
        }
    }

    /// The message again, for relaying or serving to sync.
    pub fn to_message(&self) -> Message {
        match self {
            VerifiedMessage::Post(p) => Message::Post(p.signed().clone()),
            VerifiedMessage::Retraction(r) => Message::Retraction(r.signed().clone()),
            VerifiedMessage::Moderation(m) => Message::Moderation(m.signed().clone()),
            VerifiedMessage::Report(r) => Message::Report(r.sealed().clone()),
        }
    }

    /// The id of a non-post item.
    pub fn action_id(&self) -> Option<ActionId> {
        match self {
            VerifiedMessage::Post(_) => None,
            _ => Some(ActionId(self.id_bytes())),
        }
    }
}
