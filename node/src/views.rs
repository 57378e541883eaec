//! Turning stored items and moderation state into what readers see.

use std::collections::HashMap;

use protocol::{Message, ModerationState, PostId, PublicKey, SignedPost, TopicName};
use serde::{Deserialize, Serialize};

use crate::api::{ActorView, PostView};
use crate::store::Store;

/// How readers see an author: by the first key of its key chain (the same
/// short key before and after a key succession) and the newest pseudonym
/// any of its keys signed a post with (by the post's `created_at`, then
/// post id), not the one in each post. Looked up in the store once per
/// author and kept for one page or one read, so a read costs one index
/// look-up per distinct author and key.
pub(crate) struct AuthorNames<'a> {
    store: &'a Store,
    moderation: &'a ModerationState,
    known: HashMap<PublicKey, Option<String>>,
}

impl<'a> AuthorNames<'a> {
    pub(crate) fn new(store: &'a Store, moderation: &'a ModerationState) -> Self {
        AuthorNames {
            store,
            moderation,
            known: HashMap::new(),
        }
    }

    /// The author `key` signs for and its newest pseudonym; `fallback`
    /// (the item's own) when none of its posts is held.
    fn of(&mut self, key: &PublicKey, fallback: Option<&str>) -> (PublicKey, Option<String>) {
        let lineage = self.moderation.lineage();
        let author = lineage.root(key);
        if let Some(name) = self.known.get(&author) {
            return (author, name.clone());
        }
        let mut newest: Option<(u64, PostId, Option<String>)> = None;
        for k in lineage.keys_of(key) {
            match self.store.latest_post_of(&k) {
                Ok(Some(p)) => {
                    let order = (p.content.created_at, p.id());
                    if newest.as_ref().is_none_or(|n| (n.0, n.1) < order) {
                        newest = Some((order.0, order.1, p.content.author_name));
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("looking up an author's newest pseudonym: {e}"),
            }
        }
        let name = match newest {
            Some((_, _, name)) => name,
            None => fallback.map(str::to_string),
        };
        self.known.insert(author, name.clone());
        (author, name)
    }

    /// How a reader sees the author of `key`: its first key and newest
    /// pseudonym (a reporter, who signs no pseudonym in a report).
    pub(crate) fn actor(&mut self, key: &PublicKey) -> ActorView {
        let (author, name) = self.of(key, None);
        actor(&author, name.as_deref())
    }

    /// [`AuthorNames::of`] without a fallback, for measuring.
    #[cfg(test)]
    pub(crate) fn of_author(&mut self, key: &PublicKey) -> Option<String> {
        self.of(key, None).1
    }
}

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
pub(crate) fn post_view(post: &SignedPost, names: &mut AuthorNames<'_>) -> PostView {
    let id = post.id();
    let p = &post.content;
    let (author, author_name) = names.of(&p.author, p.author_name.as_deref());
    let moderation = names.moderation;
    PostView {
        id: id.to_string(),
        topic: p.topic.to_string(),
        author: author.to_string(),
        author_name,
        created_at: p.created_at,
        parent: p.parent.map(|x| x.to_string()),
        content_warning: p.content_warning.clone(),
        body: Some(p.body.clone()),
        hidden: false,
        hidden_by: None,
        hidden_reason: None,
        pinned: moderation.is_pinned(&id),
        held: moderation.is_held(&id, &p.author, &p.topic, p.created_at),
        rejected: false,
    }
}

/// What a reader sees in place of a hidden post.
pub(crate) fn tombstone_view(t: &Tombstone, names: &mut AuthorNames<'_>) -> PostView {
    let hide = names.moderation.hidden(&t.id);
    let (author, author_name) = names.of(&t.author, t.author_name.as_deref());
    PostView {
        id: t.id.to_string(),
        topic: t.topic.to_string(),
        author: author.to_string(),
        author_name,
        created_at: t.created_at,
        parent: t.parent.map(|x| x.to_string()),
        content_warning: None,
        body: None,
        hidden: true,
        hidden_by: hide.map(|h| actor(&h.by, h.by_name.as_deref())),
        hidden_reason: hide.map(|h| h.reason.clone()),
        pinned: false,
        held: false,
        rejected: names.moderation.rejected(&t.id).is_some(),
    }
}
