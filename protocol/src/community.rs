//! A community: a manifest signed by its admin key. The community id is the
//! hash of the signed manifest, and every other signed item names it.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::CommunityId;
use crate::keys::{PublicKey, SecretKey};
use crate::signed::{check_len, check_time, Signable, Signed};
use crate::{MAX_COMMUNITY_NAME_BYTES, MAX_RULES_BYTES};

/// Largest encoded signed manifest (name and rules at their limits, the
/// keys, the time and the signature, with room to spare).
pub const MAX_MANIFEST_BYTES: usize = 24 * 1024;

/// What a community is: its name, its admin, when it began, and the rules
/// and crisis resources every newcomer is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityManifest {
    /// Display name.
    pub name: String,
    /// The only key that may appoint and revoke moderators.
    pub admin: PublicKey,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// Rules / welcome text, shown to every newcomer.
    pub rules: String,
}

/// A manifest with its admin's signature; its hash is the community id.
pub type SignedManifest = Signed<CommunityManifest>;

impl Signable for CommunityManifest {
    const DOMAIN: &'static str = "mutual/v1/community";
    type Id = CommunityId;
    fn signer(&self) -> &PublicKey {
        &self.admin
    }
    fn community(&self) -> Option<&CommunityId> {
        None
    }
    fn created_at(&self) -> u64 {
        self.created_at
    }
    fn check_fields(&self) -> Result<(), ValidationError> {
        if self.name.trim().is_empty() {
            return Err(ValidationError::Empty("community name"));
        }
        check_len("community name", &self.name, MAX_COMMUNITY_NAME_BYTES)?;
        check_len("rules", &self.rules, MAX_RULES_BYTES)
    }
}

impl CommunityManifest {
    /// Creates and signs a new community with `admin` as its admin.
    pub fn create(
        name: &str,
        rules: &str,
        admin: &SecretKey,
        now_ms: u64,
    ) -> Result<SignedManifest, ValidationError> {
        let manifest = CommunityManifest {
            name: name.trim().to_string(),
            admin: admin.public(),
            created_at: now_ms,
            rules: rules.to_string(),
        };
        manifest.check_fields()?;
        Ok(Signed::sign(manifest, admin))
    }
}

impl Signed<CommunityManifest> {
    /// Verifies a manifest received in an invite: fields, time, signature.
    /// Returns its community id.
    pub fn verify_manifest(&self, now_ms: u64) -> Result<CommunityId, ValidationError> {
        check_time(self.content.created_at, now_ms)?;
        self.content.check_fields()?;
        self.check_signature()?;
        Ok(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_signs_and_verifies() {
        let admin = SecretKey::generate();
        let m = CommunityManifest::create("Burnout circle", "Be kind.", &admin, 1000).unwrap();
        let id = m.verify_manifest(1000).unwrap();
        assert_eq!(id, m.id());
        let mut forged = m.clone();
        forged.content.rules = "Anything goes".into();
        assert!(matches!(
            forged.verify_manifest(1000),
            Err(ValidationError::BadSignature(_))
        ));
    }

    #[test]
    fn empty_name_is_refused() {
        let admin = SecretKey::generate();
        assert_eq!(
            CommunityManifest::create("  ", "", &admin, 0),
            Err(ValidationError::Empty("community name"))
        );
    }
}
