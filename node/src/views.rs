//! Turning stored items and moderation state into what readers see.

use protocol::{Message, ModerationState, PostId, PublicKey, SignedPost, TopicName};
use serde::{Deserialize, Serialize};

use crate::api::{ActorView, PostView};

/// What remains of a hidden post: enough to show "hidden by a moderator"
/// in its place in the thread, never its body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Tombstone {
    pub(crate) id: PostId,
    pub(crate) topic: TopicName,
    pub(crate) author: PublicKey,
    pub(crate) author_name: Option<String>,
    pub(crate) created_at: u64,
    pub(crate) parent: Option<PostId>,
    /// The hidden post itself (its encoded message), kept so that an
    /// unhide shows it again: nothing else of the network still has it.
    /// Never shown or served while hidden; erased by a retraction.
    pub(crate) kept: Vec<u8>,
}

impl Tombstone {
    pub(crate) fn of(post: &SignedPost) -> Self {
        Tombstone {
            id: post.id(),
            topic: post.content.topic.clone(),
            author: post.content.author,
            author_name: post.content.author_name.clone(),
            created_at: post.content.created_at,
            parent: post.content.parent,
            kept: Message::Post(post.clone()).encode(),
        }
    }

    /// The post this notice kept, if it decodes.
    pub(crate) fn kept_post(&self) -> Option<SignedPost> {
        match Message::decode(&self.kept) {
            Ok(Message::Post(p)) => Some(p),
            _ => None,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        protocol::wire::encode(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        protocol::wire::decode(bytes, 80 * 1024).ok()
    }
}

/// A key with an optional pseudonym.
pub(crate) fn actor(key: &PublicKey, name: Option<&str>) -> ActorView {
    ActorView {
        key: key.to_string(),
        name: name.map(str::to_string),
    }
}

/// What a reader sees of a stored post.
pub(crate) fn post_view(post: &SignedPost, moderation: &ModerationState) -> PostView {
    let id = post.id();
    let p = &post.content;
    PostView {
        id: id.to_string(),
        topic: p.topic.to_string(),
        author: p.author.to_string(),
        author_name: p.author_name.clone(),
        created_at: p.created_at,
        parent: p.parent.map(|x| x.to_string()),
        content_warning: p.content_warning.clone(),
        body: Some(p.body.clone()),
        hidden: false,
        hidden_by: None,
        hidden_reason: None,
        pinned: moderation.is_pinned(&id),
    }
}

/// What a reader sees in place of a hidden post.
pub(crate) fn tombstone_view(t: &Tombstone, moderation: &ModerationState) -> PostView {
    let hide = moderation.hidden(&t.id);
    PostView {
        id: t.id.to_string(),
        topic: t.topic.to_string(),
        author: t.author.to_string(),
        author_name: t.author_name.clone(),
        created_at: t.created_at,
        parent: t.parent.map(|x| x.to_string()),
        content_warning: None,
        body: None,
        hidden: true,
        hidden_by: hide.map(|h| actor(&h.by, h.by_name.as_deref())),
        hidden_reason: hide.map(|h| h.reason.clone()),
        pinned: false,
    }
}
