//! Posts held for a moderator's approval (probation, `protocol::probation`)
//! on this node: who is shown them, the moderators' list of them, and
//! approving or rejecting one.
//!
//! A held post is verified, stored, relayed and served by sync like any
//! other post (so every moderator's node gets it, and an approval needs no
//! fetch: the post is already everywhere). Only what this node *shows*
//! differs: its author sees it marked as waiting, the moderators see it in
//! `mod queue`, and nobody else sees it anywhere (reads, unread counts,
//! live events) until it is approved. A rejection is a hide: the post is
//! deleted everywhere, and only its author sees the notice.

use protocol::moderation::ModActionKind;
use protocol::state::Applied;
use protocol::sync::ItemKey;
use protocol::{ActionId, ModerationState, Post, PostId, PublicKey};

use crate::api::PostView;
use crate::error::NodeError;
use crate::handle::NodeEvent;
use crate::views::{post_view, AuthorNames};

use super::Core;

/// Posts of each joined topic looked at, newest first, for the list of
/// held posts: a held post older than this many posts of its topic is
/// left out of the list (it stays held).
pub const HELD_SCAN_POSTS: usize = 5_000;

/// Whether the post `id` by `author`, created at `created_at`, is shown to
/// `me` in reads: a held post only to its author (any of the author's
/// keys).
pub(crate) fn shown_to(
    moderation: &ModerationState,
    me: &PublicKey,
    id: &PostId,
    p: &Post,
) -> bool {
    !moderation.is_held(id, &p.author, &p.topic, p.created_at)
        || moderation.lineage().same(&p.author, me)
}

impl Core {
    /// Whether this node's user is shown the post in reads and live events.
    pub(crate) fn shows_held(&self, id: &PostId, p: &Post) -> bool {
        shown_to(&self.moderation, &self.identity.public(), id, p)
    }

    /// The posts waiting for approval in the joined topics, oldest first
    /// (moderators: `mod queue`); none for anyone else, like reports.
    pub fn held_posts(&self, now_ms: u64) -> Result<Vec<PostView>, NodeError> {
        if !self
            .moderation
            .is_moderator(&self.identity.public(), now_ms)
        {
            return Ok(Vec::new());
        }
        let mut names = AuthorNames::new(&self.store, &self.moderation);
        let mut out = Vec::new();
        for topic in &self.joined {
            let mut before: Option<ItemKey> = None;
            let mut seen = 0usize;
            while seen < HELD_SCAN_POSTS {
                let page = self.store.topic_page(topic, before, 256)?;
                for post in &page {
                    let id = post.id();
                    let p = &post.content;
                    before = Some(ItemKey {
                        created_at: p.created_at,
                        id: id.0,
                    });
                    if self
                        .moderation
                        .is_held(&id, &p.author, &p.topic, p.created_at)
                        && self.moderation.is_blocked(&p.author, &p.topic).is_none()
                        && self.moderation.hidden(&id).is_none()
                        && !self.store.is_retracted_by(&id, &p.author)?
                    {
                        out.push(post_view(post, &mut names));
                    }
                }
                seen += page.len();
                if page.len() < 256 {
                    break;
                }
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Approves a held post (moderators): it is shown to everyone, and
    /// counts toward its author's probation.
    pub fn approve(&mut self, post: PostId, now_ms: u64) -> Result<ActionId, NodeError> {
        let author = self.held_author(&post, "approve")?;
        self.moderate(ModActionKind::Approve { post, author }, now_ms)
    }

    /// Rejects a held post (moderators): deleted everywhere like a hide,
    /// its author shown the reason.
    pub fn reject(
        &mut self,
        post: PostId,
        reason: String,
        now_ms: u64,
    ) -> Result<ActionId, NodeError> {
        self.held_author(&post, "reject")?;
        self.moderate(ModActionKind::Reject { post, reason }, now_ms)
    }

    /// The author of a stored post that waits for approval.
    fn held_author(&self, post: &PostId, verb: &str) -> Result<PublicKey, NodeError> {
        let stored = self
            .store
            .get_post(post)?
            .ok_or_else(|| NodeError::UnknownPost(post.to_string()))?;
        let p = &stored.content;
        if !self
            .moderation
            .is_held(post, &p.author, &p.topic, p.created_at)
        {
            let instead = if verb == "reject" {
                " (`mutual mod hide` removes a post that is shown)"
            } else {
                ""
            };
            return Err(NodeError::NotAllowed(format!(
                "post {} is not waiting for approval, so there is nothing to {verb}{instead}",
                post.short()
            )));
        }
        Ok(p.author)
    }

    /// Tells followers about posts an approval made visible: a new post
    /// for everyone else, the same post no longer waiting for its author.
    pub(crate) fn announce_approved(&self, applied: &Applied) {
        if applied.newly_approved.is_empty() || !self.followed() {
            return;
        }
        let mut names = AuthorNames::new(&self.store, &self.moderation);
        let me = self.identity.public();
        for id in &applied.newly_approved {
            let Ok(Some(post)) = self.store.get_post(id) else {
                continue;
            };
            let p = &post.content;
            if self
                .moderation
                .is_held(id, &p.author, &p.topic, p.created_at)
                || self.is_muted(&p.author)
                || self.moderation.is_blocked(&p.author, &p.topic).is_some()
            {
                continue;
            }
            let view = Box::new(post_view(&post, &mut names));
            self.emit(if self.moderation.lineage().same(&p.author, &me) {
                NodeEvent::PostRestored(view)
            } else {
                NodeEvent::PostStored(view)
            });
        }
    }
}
