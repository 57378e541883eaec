//! Turning stored items and moderation state into what readers see.

use protocol::{PostId, PublicKey, SignedPost, TopicName};
use serde::{Deserialize, Serialize};

use crate::api::{ActorView, PostView};
use crate::event_loop::EventLoop;

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
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        protocol::wire::encode(self)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        protocol::wire::decode(bytes, 4096).ok()
    }
}

/// A key with an optional pseudonym.
pub(crate) fn actor(key: &PublicKey, name: Option<&str>) -> ActorView {
    ActorView {
        key: key.to_string(),
        name: name.map(str::to_string),
    }
}

impl EventLoop {
    pub(crate) fn post_view(&self, post: &SignedPost) -> PostView {
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
            pinned: self.moderation.is_pinned(&id),
        }
    }

    pub(crate) fn tombstone_view(&self, t: &Tombstone) -> PostView {
        let hide = self.moderation.hidden(&t.id);
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
}
