//! Retractions: an author takes their words back. Every node deletes the
//! body and refuses the post from then on. Only the post's own author key can
//! retract it; a node that holds the post checks that the keys match.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::{ActionId, CommunityId, PostId};
use crate::keys::{PublicKey, SecretKey};
use crate::signed::{Signable, Signed, Verified};

/// "I, the author, take back this post."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retraction {
    /// The community of the post.
    pub community: CommunityId,
    /// The author of the post (and signer of this retraction).
    pub author: PublicKey,
    /// The post taken back.
    pub post: PostId,
    /// When, ms since the Unix epoch.
    pub created_at: u64,
}

/// A retraction with its author's signature.
pub type SignedRetraction = Signed<Retraction>;
/// A retraction whose rules were checked (not yet against the post's author:
/// that needs the post, which the node holds).
pub type VerifiedRetraction = Verified<Retraction>;

impl Signable for Retraction {
    const DOMAIN: &'static str = "mutual/v1/retraction";
    type Id = ActionId;
    fn signer(&self) -> &PublicKey {
        &self.author
    }
    fn community(&self) -> Option<&CommunityId> {
        Some(&self.community)
    }
    fn created_at(&self) -> u64 {
        self.created_at
    }
    fn check_fields(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl Retraction {
    /// Signs a retraction of `post` by its author.
    pub fn create(
        author: &SecretKey,
        community: CommunityId,
        post: PostId,
        now_ms: u64,
    ) -> SignedRetraction {
        Signed::sign(
            Retraction {
                community,
                author: author.public(),
                post,
                created_at: now_ms,
            },
            author,
        )
    }

    /// Whether this retraction may take back a post by `post_author`.
    pub fn applies_to(&self, post_author: &PublicKey) -> bool {
        self.author == *post_author
    }
}
