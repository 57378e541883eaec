//! Enforcing the moderation state on the store: what one action changed
//! (driven by [`Applied`], never by diffing whole sets) and, at every
//! start, the whole folded state again, so a crash between an action's log
//! entry and its deletions leaves nothing shown or served that should not
//! be. Every node runs this after the same fold, so every node deletes the
//! same posts.

use protocol::state::Applied;
use protocol::{PostId, PublicKey, Scope, SignedPost, VerifiedPost};

use crate::handle::{NodeEvent, RemovalReason};
use crate::store::StoreError;
use crate::views::Tombstone;

use super::{Core, Effect};

impl Core {
    /// Enforces what one action changed.
    pub(crate) fn enforce(&mut self, applied: &Applied) -> Result<(), StoreError> {
        for (author, scope) in &applied.newly_blocked {
            self.delete_blocked(author, scope)?;
        }
        for post in &applied.newly_hidden {
            self.hide(post)?;
        }
        let mut back = !applied.unblocked.is_empty();
        for post in &applied.unhidden {
            back |= self.unhide(post)?;
        }
        for post in applied.newly_pinned.iter().chain(&applied.unpinned) {
            self.pin_changed(post);
        }
        self.announce_approved(applied);
        if back {
            // Content of an unblocked author (or an unhidden post this
            // node no longer holds) comes back from peers.
            self.effect(Effect::SyncWithAll);
        }
        if applied.moderators_changed {
            self.shared_stale = true;
            self.reseal_due = true;
        }
        self.dirty = true;
        Ok(())
    }

    /// Enforces the whole folded state and every stored retraction again
    /// (at start-up). Idempotent: on a consistent store it deletes nothing.
    pub(crate) fn enforce_all(&mut self) -> Result<(), StoreError> {
        let blocks: Vec<(PublicKey, Scope)> = self.moderation.block_targets().into_iter().collect();
        for (author, scope) in &blocks {
            self.delete_blocked(author, scope)?;
        }
        let hidden: Vec<PostId> = self.moderation.hidden_targets().into_iter().collect();
        for post in &hidden {
            self.hide(post)?;
        }
        for (post, author) in self.store.retractions()? {
            if let Some(stored) = self.store.get_post(&post)? {
                if stored.content.author == author {
                    self.store.delete_post(&post)?;
                }
            }
            if self.store.tombstone_of(&post)?.is_some() {
                self.store.remove_tombstone_of(&post)?;
            }
        }
        Ok(())
    }

    fn delete_blocked(&mut self, author: &PublicKey, scope: &Scope) -> Result<(), StoreError> {
        let deleted = self.store.delete_author_posts(author, scope)?;
        self.removed_as_blocked(deleted, "deleted the posts of a blocked author");
        Ok(())
    }

    /// Logs and announces posts deleted because their author was blocked
    /// (or is no longer a member).
    pub(super) fn removed_as_blocked(
        &self,
        deleted: Vec<(PostId, protocol::TopicName)>,
        what: &'static str,
    ) {
        if !deleted.is_empty() {
            tracing::info!(posts = deleted.len(), "{what}");
        }
        if self.followed() {
            for (id, topic) in deleted {
                self.emit(NodeEvent::PostRemoved {
                    id: id.to_string(),
                    topic: topic.to_string(),
                    reason: RemovalReason::Blocked,
                });
            }
        }
    }

    /// Replaces a stored post by its notice, which keeps the post's bytes
    /// (never shown or served) so that an unhide can show it again.
    fn hide(&mut self, post: &PostId) -> Result<(), StoreError> {
        let Some(stored) = self.store.get_post(post)? else {
            return Ok(());
        };
        let tomb = Tombstone::of(&stored);
        if self.store.hide_post(post, &tomb.encode())?.is_some() {
            self.emit(NodeEvent::PostRemoved {
                id: post.to_string(),
                topic: stored.content.topic.to_string(),
                reason: RemovalReason::Hidden,
            });
        }
        Ok(())
    }

    /// Shows a hidden post again from the bytes its notice kept. Returns
    /// whether the post must come back from peers instead.
    fn unhide(&mut self, post: &PostId) -> Result<bool, StoreError> {
        let Some(bytes) = self.store.tombstone_of(post)? else {
            return Ok(true);
        };
        let kept = Tombstone::decode(&bytes).and_then(|t| t.kept_post());
        self.store.remove_tombstone_of(post)?;
        let Some(signed) = kept else {
            return Ok(true);
        };
        let Some(verified) = trusted(signed, self.community) else {
            return Ok(true);
        };
        // Its author may have been blocked or may have retracted it since.
        if self
            .moderation
            .is_blocked(&verified.author, &verified.topic)
            .is_some()
            || self.store.is_retracted_by(post, &verified.author)?
        {
            return Ok(false);
        }
        self.store.insert_posts(&[&verified])?;
        let view = crate::views::post_view(
            verified.signed(),
            &mut crate::views::AuthorNames::new(&self.store, &self.moderation),
        );
        self.emit(NodeEvent::PostRestored(Box::new(view)));
        Ok(false)
    }

    fn pin_changed(&self, post: &PostId) {
        if !self.followed() {
            return;
        }
        let topic = match self.store.get_post(post) {
            Ok(Some(p)) => p.content.topic.to_string(),
            _ => String::new(),
        };
        self.emit(NodeEvent::PinChanged {
            id: post.to_string(),
            topic,
            pinned: self.moderation.is_pinned(post),
        });
    }
}

/// A post from this node's own store, checked without its signature again.
fn trusted(signed: SignedPost, community: protocol::CommunityId) -> Option<VerifiedPost> {
    let ctx = protocol::ValidationContext {
        community,
        now_ms: u64::MAX,
    };
    signed.trusted_from_store(&ctx).ok()
}
