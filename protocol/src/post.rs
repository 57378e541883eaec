//! Posts: what people say. Signed by their author; named by the hash of the
//! signed encoding.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::ids::{CommunityId, PostId};
use crate::keys::{Identity, PublicKey};
use crate::signed::{check_len, Signable, Signed, Verified};
use crate::topic::TopicName;
use crate::{MAX_BODY_BYTES, MAX_CONTENT_WARNING_BYTES, MAX_PSEUDONYM_BYTES};

/// A post as its author wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    /// The community it was written in.
    pub community: CommunityId,
    /// The topic it belongs to.
    pub topic: TopicName,
    /// The author's key.
    pub author: PublicKey,
    /// The author's pseudonym at the time, if they chose one.
    pub author_name: Option<String>,
    /// Creation time, ms since the Unix epoch, by the author's clock.
    pub created_at: u64,
    /// The post this one replies to, if any.
    pub parent: Option<PostId>,
    /// A short warning readers see before the body, if any.
    pub content_warning: Option<String>,
    /// The text.
    pub body: String,
}

/// A post with its author's signature.
pub type SignedPost = Signed<Post>;
/// A post whose every rule was checked.
pub type VerifiedPost = Verified<Post>;

impl Signable for Post {
    const DOMAIN: &'static str = "mutual/v1/post";
    type Id = PostId;
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
        check_len("body", &self.body, MAX_BODY_BYTES)?;
        if self.body.trim().is_empty() {
            return Err(ValidationError::Empty("body"));
        }
        if let Some(cw) = &self.content_warning {
            check_len("content warning", cw, MAX_CONTENT_WARNING_BYTES)?;
        }
        if let Some(name) = &self.author_name {
            check_len("pseudonym", name, MAX_PSEUDONYM_BYTES)?;
        }
        Ok(())
    }
}

/// What a person fills in to write a post; the rest comes from their
/// identity and the community.
#[derive(Clone, Debug, Default)]
pub struct Draft {
    /// The text.
    pub body: String,
    /// The post replied to, if any.
    pub parent: Option<PostId>,
    /// A content warning, if any.
    pub content_warning: Option<String>,
}

impl Post {
    /// Writes and signs a post, checking its fields so a bad draft is
    /// refused before it is ever signed.
    pub fn write(
        identity: &Identity,
        community: CommunityId,
        topic: TopicName,
        draft: Draft,
        now_ms: u64,
    ) -> Result<SignedPost, ValidationError> {
        let post = Post {
            community,
            topic,
            author: identity.public(),
            author_name: identity.name.clone(),
            created_at: now_ms,
            parent: draft.parent,
            content_warning: draft
                .content_warning
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty()),
            body: draft.body,
        };
        post.check_fields()?;
        Ok(Signed::sign(post, &identity.secret))
    }
}
