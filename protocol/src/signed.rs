//! One generic shape for every signed item (post, retraction, moderation
//! action, community manifest, report body) and one verification path, so a
//! rule is written once and every kind of item obeys it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::CommunityId;
use crate::keys::{PublicKey, SecretKey, Signature};
use crate::message::ValidationContext;
use crate::wire;
use crate::MAX_FUTURE_SKEW_MS;

/// Something that is signed by one key and names its community and time.
pub trait Signable: Serialize + DeserializeOwned + Clone {
    /// Domain tag mixed into the signed bytes: a signature over one kind of
    /// item can never be presented as another kind.
    const DOMAIN: &'static str;
    /// The id type of a signed item of this kind.
    type Id: From<[u8; 32]> + Copy + Eq + Ord + std::hash::Hash + std::fmt::Debug;
    /// The key that must have signed it.
    fn signer(&self) -> &PublicKey;
    /// The community it belongs to (`None` only for the manifest that
    /// defines a community).
    fn community(&self) -> Option<&CommunityId>;
    /// When its signer says it was made, in ms since the Unix epoch.
    fn created_at(&self) -> u64;
    /// Field rules (sizes, non-empty texts) that need no key.
    fn check_fields(&self) -> Result<(), ValidationError>;
    /// A second signature the item carries inside its content, by another
    /// key, checked with the main one: `(key, signed bytes, signature)`.
    /// Only a key succession has one (the new key's proof of possession).
    fn co_signature(&self) -> Option<(PublicKey, Vec<u8>, Signature)> {
        None
    }
}

/// An item with its signature, as it travels and as it is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "T: Signable")]
pub struct Signed<T> {
    /// What was signed.
    pub content: T,
    /// The signer's Ed25519 signature over `T::DOMAIN` and the content.
    pub signature: Signature,
}

impl<T: Signable> Signed<T> {
    /// Signs `content` with `key`. The content's signer field must be
    /// `key`'s public key, or the result will not verify.
    pub fn sign(content: T, key: &SecretKey) -> Self {
        let signature = key.sign(&wire::signing_bytes(T::DOMAIN, &content));
        Signed { content, signature }
    }

    /// The id: BLAKE3 of the canonical signed encoding.
    pub fn id(&self) -> T::Id {
        T::Id::from(*blake3::hash(&wire::encode(self)).as_bytes())
    }

    /// Checks every rule, cheapest first (community, time, fields), then the
    /// signature. Only a checked item becomes [`Verified`].
    pub fn verify(self, ctx: &ValidationContext) -> Result<Verified<T>, ValidationError> {
        self.check_cheap(ctx)?;
        self.check_signature()?;
        Ok(self.checked())
    }

    /// The checks that need no cryptography.
    pub fn check_cheap(&self, ctx: &ValidationContext) -> Result<(), ValidationError> {
        if let Some(found) = self.content.community() {
            if *found != ctx.community {
                return Err(ValidationError::WrongCommunity {
                    expected: ctx.community.short(),
                    found: found.short(),
                });
            }
        }
        check_time(self.content.created_at(), ctx.now_ms)?;
        self.content.check_fields()
    }

    /// The signature checks alone (the signer's, then the co-signature's
    /// if the item carries one).
    pub fn check_signature(&self) -> Result<(), ValidationError> {
        let message = self.signing_bytes();
        if !self.content.signer().verify(&message, &self.signature) {
            return Err(self.bad_signature());
        }
        if let Some((key, bytes, signature)) = self.content.co_signature() {
            if !key.verify(&bytes, &signature) {
                return Err(ValidationError::BadSignature(key.short()));
            }
        }
        Ok(())
    }

    /// The exact bytes the signature covers.
    pub(crate) fn signing_bytes(&self) -> Vec<u8> {
        wire::signing_bytes(T::DOMAIN, &self.content)
    }

    /// The error for a signature that does not verify.
    pub(crate) fn bad_signature(&self) -> ValidationError {
        ValidationError::BadSignature(self.content.signer().short())
    }

    /// Wraps an item whose cheap checks and signature were checked
    /// elsewhere in this crate (batch verification).
    pub(crate) fn checked(self) -> Verified<T> {
        let id = self.id();
        Verified { signed: self, id }
    }
}

/// Refuses a time more than [`MAX_FUTURE_SKEW_MS`] ahead of `now_ms`.
pub fn check_time(created_at: u64, now_ms: u64) -> Result<(), ValidationError> {
    let ahead = created_at.saturating_sub(now_ms);
    if ahead > MAX_FUTURE_SKEW_MS {
        return Err(ValidationError::FromTheFuture {
            ahead_ms: ahead,
            limit_ms: MAX_FUTURE_SKEW_MS,
        });
    }
    Ok(())
}

/// Checks a text field's size.
pub fn check_len(field: &'static str, text: &str, limit: usize) -> Result<(), ValidationError> {
    if text.len() > limit {
        return Err(ValidationError::TooLarge {
            field,
            size: text.len(),
            limit,
        });
    }
    Ok(())
}

/// A signed item whose every rule was checked. Only [`Signed::verify`] makes
/// one, so an API that takes a `Verified` cannot be handed an unchecked item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<T: Signable> {
    signed: Signed<T>,
    id: T::Id,
}

impl<T: Signable> Verified<T> {
    /// The id of the item.
    pub fn id(&self) -> T::Id {
        self.id
    }
    /// The signed item.
    pub fn signed(&self) -> &Signed<T> {
        &self.signed
    }
    /// The content.
    pub fn content(&self) -> &T {
        &self.signed.content
    }
    /// Gives back the signed item.
    pub fn into_signed(self) -> Signed<T> {
        self.signed
    }
}

impl<T: Signable> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.signed.content
    }
}

impl<T: Signable> Signed<T> {
    /// For an item read back from the node's own store, which was verified
    /// by [`Signed::verify`] before it was written: runs the checks that
    /// need no key (community, time, fields) and computes the id, but does
    /// not check the signature again. Never use it for bytes from anywhere
    /// else.
    pub fn trusted_from_store(
        self,
        ctx: &ValidationContext,
    ) -> Result<Verified<T>, ValidationError> {
        self.check_cheap(ctx)?;
        let id = self.id();
        Ok(Verified { signed: self, id })
    }
}
