//! Reports: a member flags a post to the moderators. The report is signed by
//! the reporter and then sealed (X25519 sealed box, keys derived from the
//! moderators' Ed25519 keys) once per moderator, so the nodes that relay and
//! store it learn only that a report exists, not what it says or who sent it.

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::{ActionId, CommunityId, PostId};
use crate::keys::{Identity, PublicKey, SecretKey};
use crate::message::ValidationContext;
use crate::signed::{check_len, check_time, Signable, Signed, Verified};
use crate::wire;
use crate::MAX_REASON_BYTES;

/// Most sealed copies in one report: a community's moderators plus admin.
pub const MAX_REPORT_RECIPIENTS: usize = 32;
/// Largest sealed copy: a signed report body plus the sealed box overhead.
pub const MAX_SEALED_COPY_BYTES: usize = 2048;

/// What the reporter says, readable by moderators only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportBody {
    /// The community.
    pub community: CommunityId,
    /// Who reports.
    pub reporter: PublicKey,
    /// The post reported.
    pub post: PostId,
    /// Why.
    pub reason: String,
    /// When, ms since the Unix epoch.
    pub created_at: u64,
}

impl Signable for ReportBody {
    const DOMAIN: &'static str = "mutual/v1/report";
    type Id = ActionId;
    fn signer(&self) -> &PublicKey {
        &self.reporter
    }
    fn community(&self) -> Option<&CommunityId> {
        Some(&self.community)
    }
    fn created_at(&self) -> u64 {
        self.created_at
    }
    fn check_fields(&self) -> Result<(), ValidationError> {
        if self.reason.trim().is_empty() {
            return Err(ValidationError::Empty("reason"));
        }
        check_len("reason", &self.reason, MAX_REASON_BYTES)
    }
}

/// One moderator's sealed copy of a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedCopy {
    /// The moderator who can open it.
    pub recipient: PublicKey,
    /// The sealed box of the signed report body.
    pub ciphertext: Vec<u8>,
}

/// A report as it travels: the community and time in the clear (for routing
/// and sync), everything else sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedReport {
    /// The community.
    pub community: CommunityId,
    /// When, ms since the Unix epoch.
    pub created_at: u64,
    /// One sealed copy per moderator.
    pub copies: Vec<SealedCopy>,
}

/// A sealed report whose outer rules were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReport {
    sealed: SealedReport,
    id: ActionId,
}

impl VerifiedReport {
    /// The report's id.
    pub fn id(&self) -> ActionId {
        self.id
    }
    /// The sealed report.
    pub fn sealed(&self) -> &SealedReport {
        &self.sealed
    }
}

impl SealedReport {
    /// Writes, signs and seals a report to each of `recipients`.
    pub fn seal<R: RngCore + CryptoRng>(
        reporter: &Identity,
        community: CommunityId,
        post: PostId,
        reason: &str,
        recipients: &[PublicKey],
        now_ms: u64,
        rng: &mut R,
    ) -> Result<SealedReport, ValidationError> {
        let body = ReportBody {
            community,
            reporter: reporter.public(),
            post,
            reason: reason.trim().to_string(),
            created_at: now_ms,
        };
        body.check_fields()?;
        if recipients.is_empty() {
            return Err(ValidationError::NoRecipients);
        }
        let signed = Signed::sign(body, &reporter.secret);
        let plaintext = wire::encode(&signed);
        let mut copies = Vec::with_capacity(recipients.len());
        for recipient in recipients.iter().take(MAX_REPORT_RECIPIENTS) {
            let Some(x) = recipient.to_x25519() else {
                continue;
            };
            let pk = crypto_box::PublicKey::from(x);
            if let Ok(ciphertext) = pk.seal(rng, &plaintext) {
                copies.push(SealedCopy {
                    recipient: *recipient,
                    ciphertext,
                });
            }
        }
        if copies.is_empty() {
            return Err(ValidationError::NoRecipients);
        }
        Ok(SealedReport {
            community,
            created_at: now_ms,
            copies,
        })
    }

    /// The report's id: BLAKE3 of its canonical encoding.
    pub fn id(&self) -> ActionId {
        ActionId::of_bytes(&wire::encode(self))
    }

    /// Checks what a relaying node can check: community, time, sizes.
    pub fn verify(self, ctx: &ValidationContext) -> Result<VerifiedReport, ValidationError> {
        if self.community != ctx.community {
            return Err(ValidationError::WrongCommunity {
                expected: ctx.community.short(),
                found: self.community.short(),
            });
        }
        check_time(self.created_at, ctx.now_ms)?;
        if self.copies.is_empty() {
            return Err(ValidationError::NoRecipients);
        }
        if self.copies.len() > MAX_REPORT_RECIPIENTS {
            return Err(ValidationError::TooLarge {
                field: "report recipients",
                size: self.copies.len(),
                limit: MAX_REPORT_RECIPIENTS,
            });
        }
        if let Some(big) = self
            .copies
            .iter()
            .find(|c| c.ciphertext.len() > MAX_SEALED_COPY_BYTES)
        {
            return Err(ValidationError::TooLarge {
                field: "sealed report",
                size: big.ciphertext.len(),
                limit: MAX_SEALED_COPY_BYTES,
            });
        }
        let id = self.id();
        Ok(VerifiedReport { sealed: self, id })
    }

    /// Opens the copy sealed to `key`, if there is one, and checks the
    /// reporter's signature inside. `None`: not addressed to this key.
    pub fn open(
        &self,
        key: &SecretKey,
        ctx: &ValidationContext,
    ) -> Option<Result<Verified<ReportBody>, ValidationError>> {
        let me = key.public();
        let copy = self.copies.iter().find(|c| c.recipient == me)?;
        let sk = crypto_box::SecretKey::from(key.to_x25519());
        let plaintext = match sk.unseal(&copy.ciphertext) {
            Ok(p) => p,
            Err(_) => return Some(Err(ValidationError::BadSignature(me.short()))),
        };
        let signed: Signed<ReportBody> = match wire::decode(&plaintext, MAX_SEALED_COPY_BYTES) {
            Ok(s) => s,
            Err(e) => return Some(Err(e.into())),
        };
        if signed.content.created_at != self.created_at {
            return Some(Err(ValidationError::BadSignature(
                signed.content.reporter.short(),
            )));
        }
        Some(signed.verify(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recipients_can_open_a_report() {
        let community = CommunityId::of_bytes(b"c");
        let ctx = ValidationContext {
            community,
            now_ms: 10,
        };
        let reporter = Identity::generate(None);
        let moderator = Identity::generate(Some("mod".into()));
        let bystander = Identity::generate(None);
        let post = PostId::of_bytes(b"p");
        let report = SealedReport::seal(
            &reporter,
            community,
            post,
            "harassment",
            &[moderator.public()],
            10,
            &mut rand::rngs::OsRng,
        )
        .unwrap();
        let bytes = wire::encode(&report);
        assert!(!bytes.windows(11).any(|w| w == b"harassment"));
        let body = report.open(&moderator.secret, &ctx).unwrap().unwrap();
        assert_eq!(body.reason, "harassment");
        assert_eq!(body.post, post);
        assert_eq!(body.reporter, reporter.public());
        assert!(report.open(&bystander.secret, &ctx).is_none());
        assert!(report.clone().verify(&ctx).is_ok());
    }
}
