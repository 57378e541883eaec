//! What the local user does: write, retract, report, moderate, join, mute.
//! Every item the user signs goes through the same arrival path as a
//! foreign one; its gossip is an [`Effect`] the worker releases only once
//! the write is on disk.

use protocol::moderation::ModActionKind;
use protocol::post::Draft;
use protocol::{
    ActionId, Message, ModAction, Post, PostId, PublicKey, Retraction, SealedReport, TopicName,
    VerifiedMessage,
};

use crate::api::{CommunityView, ModListView, ReportView, SyncProgress, TopicView};
use crate::error::NodeError;

use super::{Channel, Core, Effect, Origin, Refusal};

/// What sealing a report needs ([`Core::report_plan`]).
pub struct ReportPlan {
    identity: protocol::Identity,
    community: protocol::CommunityId,
    post: protocol::SignedPost,
    recipients: Vec<PublicKey>,
    at: u64,
}

impl ReportPlan {
    /// Writes, signs and seals the report with a copy of the post (the
    /// slow part: run it off the core's thread).
    /// Returns the envelope and the report's own id (what `mod queue`
    /// shows moderators).
    pub fn seal(&self, reason: &str) -> Result<(SealedReport, ActionId), NodeError> {
        Ok(SealedReport::seal_with_copy(
            &self.identity,
            self.community,
            &self.post,
            reason,
            &self.recipients,
            self.at,
            &mut rand::rngs::OsRng,
        )?)
    }
}

/// The core's part of `status`.
#[derive(Clone, Debug)]
pub struct CoreStatus {
    /// Joined topics with their post counts.
    pub topics: Vec<TopicView>,
    /// Bytes the store takes on disk.
    pub store_bytes: u64,
    /// Sync sessions and their progress.
    pub sync: SyncProgress,
}

impl Core {
    /// The community's name, id, admin and rules.
    pub fn community_view(&self) -> CommunityView {
        let m = &self.manifest.content;
        let update = self.moderation.manifest_update();
        let policy = self.moderation.policy();
        CommunityView {
            name: m.name.clone(),
            id: self.community.to_string(),
            admin: m.admin.to_string(),
            rules: update.map_or_else(|| m.rules.clone(), |u| u.rules.clone()),
            created_at: m.created_at,
            admission: crate::moderation_view::admission_text(policy.admission).into(),
            probation_posts: policy.probation_posts,
            rules_version: update.map(|u| u.version),
            lockdowns: crate::moderation_view::lockdown_views(&self.moderation),
        }
    }

    /// Joins a topic: remembers it, then the network subscribes and syncs.
    pub fn join(&mut self, topic: TopicName) -> Result<(), NodeError> {
        self.store.join_topic(&topic)?;
        if self.joined.insert(topic.clone()) {
            self.shared_stale = true;
            self.effect(Effect::Subscribe(topic.clone()));
        }
        self.effect(Effect::SyncTopic(topic));
        Ok(())
    }

    /// Leaves a topic (its stored posts stay until removed).
    pub fn leave(&mut self, topic: TopicName) -> Result<(), NodeError> {
        self.store.leave_topic(&topic)?;
        if self.joined.remove(&topic) {
            self.shared_stale = true;
            self.effect(Effect::Unsubscribe(topic));
        }
        Ok(())
    }

    /// Leaves a topic, then deletes its posts, tombstones and counts from
    /// the store (see [`crate::store::Store::forget_topic`]).
    pub fn leave_and_forget(
        &mut self,
        topic: TopicName,
    ) -> Result<crate::store::Forgotten, NodeError> {
        self.leave(topic.clone())?;
        Ok(self.store.forget_topic(&topic)?)
    }

    /// Joined topics with post counts.
    pub fn topic_views(&self) -> Result<Vec<TopicView>, NodeError> {
        self.joined
            .iter()
            .map(|t| {
                Ok(TopicView {
                    name: t.to_string(),
                    posts: self.store.count_topic(t)?,
                })
            })
            .collect()
    }

    /// The core's part of `status`.
    pub fn status(&self) -> Result<CoreStatus, NodeError> {
        Ok(CoreStatus {
            topics: self.topic_views()?,
            store_bytes: self.store.size_on_disk().unwrap_or(0),
            sync: self.sync.progress(),
        })
    }

    /// Checks a local item, takes it through the one arrival path and
    /// queues its gossip (released by the worker once it is durable).
    pub(super) fn publish_local(
        &mut self,
        message: Message,
        now_ms: u64,
    ) -> Result<[u8; 32], NodeError> {
        let verified = message.verify(&self.ctx(now_ms))?;
        let channel = match &verified {
            VerifiedMessage::Post(p) => Channel::Topic(p.topic.clone()),
            _ => Channel::Community,
        };
        let id = verified.id_bytes();
        let bytes = verified.to_message().encode();
        match self.arrive(verified, Origin::Local, now_ms) {
            Ok(_) => {}
            Err(Refusal::Store(e)) => return Err(e.into()),
            Err(Refusal::NotAdmitted(_)) => {
                return Err(NodeError::NotAllowed(self.own_admission_help()))
            }
            Err(refusal) => return Err(NodeError::NotAllowed(refusal.to_string())),
        }
        self.effect(Effect::Gossip { channel, bytes });
        Ok(id)
    }

    /// Writes, signs, stores and queues the gossip of a post.
    pub fn publish(
        &mut self,
        topic: TopicName,
        draft: Draft,
        now_ms: u64,
    ) -> Result<PostId, NodeError> {
        if !self.is_joined(&topic) {
            return Err(NodeError::NotJoined(topic.to_string()));
        }
        if let Some(parent) = &draft.parent {
            match self.store.get_post(parent)? {
                None => return Err(NodeError::UnknownPost(parent.to_string())),
                Some(p) if p.content.topic != topic => {
                    return Err(NodeError::BadInput(format!(
                        "post {} is in topic {}, not {topic}: a reply goes in its parent's topic",
                        parent.short(),
                        p.content.topic
                    )))
                }
                Some(_) => {}
            }
        }
        let at = self.clock.next_time(&self.store, now_ms, None)?;
        let post = Post::write(&self.identity, self.community, topic, draft, at)?;
        Ok(PostId(self.publish_local(Message::Post(post), now_ms)?))
    }

    /// Resolves a full or short printable post id to a stored or hidden
    /// post (a moderator unhides by the short id `read` printed). A report
    /// id (full or short, as `mod queue` prints it) names the post it
    /// reports, so a moderator can act on a queue row by its id.
    pub fn resolve_post(&self, text: &str) -> Result<PostId, NodeError> {
        let text = text.trim();
        if let Ok(id) = text.parse::<PostId>() {
            return Ok(id);
        }
        if let Some(post) = self.reported_post(text)? {
            return Ok(post);
        }
        let prefix = PostId::prefix_bytes(text).map_err(|e| NodeError::BadInput(e.to_string()))?;
        let mut found = self.store.post_ids_with_prefix(&prefix, MAX_CANDIDATES)?;
        for hidden in self.moderation.hidden_targets() {
            if hidden.0.starts_with(&prefix) && !found.contains(&hidden) {
                found.push(hidden);
            }
        }
        match found.as_slice() {
            [] => Err(NodeError::UnknownPost(text.to_string())),
            [one] => Ok(*one),
            many => Err(NodeError::AmbiguousPost(text.to_string(), listed(many))),
        }
    }

    /// The post a report names, when `text` is a report id (full, or a
    /// short form) of a report this node can read; `None` when `text` is no
    /// report id at all.
    fn reported_post(&self, text: &str) -> Result<Option<PostId>, NodeError> {
        Ok(self
            .held_report(text)?
            .map(|r| r.content.report.content.post))
    }

    /// Resolves a full printable key, or a short form of one (the
    /// fingerprint commands print next to a pseudonym, with or without
    /// `mu1`), among the keys this node knows in memory — the admin,
    /// moderators and co-admins, every key of a key succession, blocked and
    /// muted keys, reporters and reported authors of the reports it holds
    /// — and the authors of the newest posts of each joined topic (what
    /// `read` shows). The store's author index holds keyed tags, not
    /// keys (layout 3), so it cannot be searched by a key's first bytes.
    pub fn resolve_key(&self, text: &str) -> Result<PublicKey, NodeError> {
        let text = text.trim();
        if let Ok(key) = text.parse::<PublicKey>() {
            return Ok(key);
        }
        if let Some(author) = self.reported_author(text)? {
            return Ok(author);
        }
        let prefix =
            PublicKey::prefix_bytes(text).map_err(|e| NodeError::BadInput(e.to_string()))?;
        let m = &self.moderation;
        let mut known: Vec<PublicKey> = vec![m.admin(), self.identity.public()];
        known.extend(m.moderators().into_iter().map(|(k, _)| k));
        known.extend(m.co_admins());
        known.extend(m.blocks().into_iter().map(|((k, _), _)| k));
        known.extend(m.lineage().chains().flatten().copied());
        known.extend(self.mutes.iter().copied());
        known.extend(self.report_keys());
        let mut found = matching(&prefix, known);
        if found.is_empty() {
            let mut recent = Vec::new();
            for topic in &self.joined {
                for post in self
                    .store
                    .topic_page(topic, None, RECENT_AUTHORS_PER_TOPIC)?
                {
                    recent.push(post.content.author);
                }
            }
            found = matching(&prefix, recent);
        }
        match found.as_slice() {
            [] => Err(NodeError::UnknownKey(text.to_string())),
            [one] => Ok(*one),
            many => Err(NodeError::AmbiguousKey(text.to_string(), listed(many))),
        }
    }

    /// Takes back one of this identity's own posts, everywhere.
    pub fn retract(&mut self, post: PostId, now_ms: u64) -> Result<(), NodeError> {
        let stored = self
            .store
            .get_post(&post)?
            .ok_or_else(|| NodeError::UnknownPost(post.to_string()))?;
        if stored.content.author != self.identity.public() {
            let mine = self
                .moderation
                .lineage()
                .same(&stored.content.author, &self.identity.public());
            return Err(NodeError::NotAllowed(if mine {
                "this post was signed with your earlier key (before `mutual key rotate`), and a \
                 post can be retracted only with the key that signed it"
                    .into()
            } else {
                "only the author of a post can retract it".into()
            }));
        }
        let at = self
            .clock
            .next_time(&self.store, now_ms, Some(stored.content.created_at))?;
        let r = Retraction::create(&self.identity.secret, self.community, post, at);
        self.publish_local(Message::Retraction(r), now_ms)?;
        Ok(())
    }

    /// What sealing a report needs, taken from the core; the sealing
    /// itself (a proof of work of about 0.2 s) runs on the blocking pool,
    /// not on the core's thread.
    pub fn report_plan(&mut self, post: PostId, now_ms: u64) -> Result<ReportPlan, NodeError> {
        let Some(post) = self.store.get_post(&post)? else {
            return Err(NodeError::UnknownPost(post.to_string()));
        };
        // The moderators' nodes would not show it (`reports.rs`): say so
        // here rather than seal a report nobody reads.
        if self
            .admission_refusal(&self.identity.public(), now_ms)
            .is_some()
        {
            return Err(NodeError::NotAllowed(format!(
                "{}; a report from you would not reach the moderators",
                self.own_admission_help()
            )));
        }
        // The admin first (its current key, after any key succession).
        let mut recipients: Vec<PublicKey> = Vec::new();
        for key in self.moderation.current_moderators() {
            if !recipients.contains(&key) {
                recipients.push(key);
            }
        }
        Ok(ReportPlan {
            identity: self.identity.clone(),
            community: self.community,
            post,
            recipients,
            at: self.clock.next_time(&self.store, now_ms, None)?,
        })
    }

    /// Takes a sealed report of this node's user through the arrival path
    /// and queues its gossip.
    pub fn publish_report(
        &mut self,
        sealed: SealedReport,
        now_ms: u64,
    ) -> Result<ActionId, NodeError> {
        Ok(ActionId(
            self.publish_local(Message::Report(sealed), now_ms)?,
        ))
    }

    /// Removes expired reports from the community log (and from this
    /// node's queue): they leave every node's disk after their time.
    pub fn prune_reports(&mut self, now_ms: u64) -> Result<usize, NodeError> {
        // The whole log is read to find them: not when there are none.
        if self.stored_reports == 0 {
            return Ok(0);
        }
        let mut pruned = 0;
        for (key, bytes) in self.store.log_items()? {
            if let Ok(Message::Report(sealed)) = Message::decode(&bytes) {
                if sealed.expired(now_ms) && self.store.remove_log(&key)? {
                    pruned += 1;
                    self.reports.remove_envelope(&sealed.id());
                }
            }
        }
        self.stored_reports = self.stored_reports.saturating_sub(pruned);
        if pruned > 0 {
            self.dirty = true;
        }
        Ok(pruned)
    }

    /// Takes a moderation action: refused unless this identity may take it
    /// and it would change something; dated after the action it overrides.
    pub fn moderate(
        &mut self,
        mut kind: ModActionKind,
        now_ms: u64,
    ) -> Result<ActionId, NodeError> {
        let me = self.identity.public();
        // A revocation lets stand exactly the revoked moderator's actions
        // this node holds (ARCHITECTURE.md, "revocation is final").
        // So does a removal as co-admin, of the co-admin's appointments.
        if let ModActionKind::RevokeModerator { key, upto_seq }
        | ModActionKind::RemoveCoAdmin { key, upto_seq } = &mut kind
        {
            *upto_seq = self.moderation.highest_seq(key);
        }
        self.moderation
            .check_new(&me, &kind)
            .map_err(|e| NodeError::NotAllowed(e.to_string()))?;
        let overrides = self.moderation.latest_on_target(&kind);
        let at = self.clock.next_time(&self.store, now_ms, overrides)?;
        let seq = self.clock.next_seq(&self.store, at)?;
        let action = ModAction::create(&self.identity, self.community, seq, kind, at)?;
        Ok(ActionId(
            self.publish_local(Message::Moderation(action), now_ms)?,
        ))
    }

    /// Moves this identity to the key `new`: signs a succession with the
    /// current key, co-signed by `new`, takes it through the arrival path
    /// (stored before this returns Ok; its gossip is released once it is
    /// durable), and from then on signs with `new`. Refused, changing
    /// nothing, when the current key was already succeeded or `new`
    /// already belongs to an author's keys. The caller keeps `new` in the
    /// data directory before calling (nothing acknowledged is lost).
    pub fn succeed(
        &mut self,
        new: protocol::SecretKey,
        now_ms: u64,
    ) -> Result<ActionId, NodeError> {
        let me = self.identity.public();
        self.moderation
            .check_succession(&me, &new.public())
            .map_err(|e| NodeError::NotAllowed(e.to_string()))?;
        let at = self.clock.next_time(&self.store, now_ms, None)?;
        let seq = self.clock.next_seq(&self.store, at)?;
        let action = ModAction::succeed(&self.identity, &new, self.community, seq, at)?;
        let id = ActionId(self.publish_local(Message::Moderation(action), now_ms)?);
        self.identity.secret = new;
        Ok(id)
    }

    /// The members' view of the moderation state, with the pseudonym of
    /// the admin and of every moderator as their latest signed action (or,
    /// for one who has not acted yet, their latest post here) gives it.
    pub fn mod_list(&self) -> ModListView {
        let mut view = crate::moderation_view::mod_list(&self.moderation, &self.manifest);
        let mut names: std::collections::HashMap<PublicKey, String> =
            std::collections::HashMap::new();
        for a in self.moderation.actions() {
            if let Some(name) = &a.signer_name {
                names.insert(a.signer, name.clone());
            }
        }
        let known = |key: &str, name: &mut Option<String>| {
            if name.is_some() {
                return;
            }
            if let Ok(k) = key.parse::<PublicKey>() {
                *name = match names.get(&k) {
                    Some(n) => Some(n.clone()),
                    None => match self.store.latest_post_of(&k) {
                        Ok(Some(p)) => p.content.author_name,
                        _ => None,
                    },
                };
            }
        };
        known(&view.admin.key.clone(), &mut view.admin.name);
        for m in &mut view.moderators {
            known(&m.key.clone(), &mut m.name);
        }
        view
    }

    /// Open reports this node can read, oldest first, each with the
    /// reported post (`reports.rs`).
    pub fn mod_queue(&self) -> Vec<ReportView> {
        self.open_report_rows()
    }

    /// Whether `author` is muted here: a mute of any key of the author
    /// (linked by key succession) covers them all.
    pub(crate) fn is_muted(&self, author: &PublicKey) -> bool {
        is_muted(&self.mutes, &self.moderation, author)
    }

    /// The authors this node mutes (printable keys).
    pub fn muted(&self) -> Vec<String> {
        self.mutes.iter().map(ToString::to_string).collect()
    }

    /// Signs this identity's next posts and actions with another pseudonym
    /// (`None`: none). The caller checks it and keeps it in the data
    /// directory ([`crate::DataDir::set_pseudonym`]).
    pub fn set_pseudonym(&mut self, name: Option<String>) {
        self.identity.name = name;
    }

    /// Mutes or unmutes an author for this node alone.
    pub fn mute(&mut self, author: PublicKey, muted: bool) -> Result<(), NodeError> {
        if muted {
            self.store.mute(&author)?;
            self.mutes.insert(author);
        } else {
            self.store.unmute(&author)?;
            self.mutes.remove(&author);
        }
        self.shared_stale = true;
        Ok(())
    }
}

/// Whether `author` is muted by `mutes`: a mute of any of the author's
/// keys (linked by key succession) covers them all.
pub(crate) fn is_muted(
    mutes: &std::collections::BTreeSet<PublicKey>,
    moderation: &protocol::ModerationState,
    author: &PublicKey,
) -> bool {
    if mutes.contains(author) {
        return true;
    }
    let lineage = moderation.lineage();
    !lineage.is_empty() && lineage.keys_of(author).iter().any(|k| mutes.contains(k))
}

/// Most candidates a short id or key is checked against: two show it is
/// ambiguous, a few more help the person pick the one meant.
const MAX_CANDIDATES: usize = 5;

/// Newest posts per joined topic whose authors a short key is looked up
/// among, when no key known in memory matches.
const RECENT_AUTHORS_PER_TOPIC: usize = 500;

/// The distinct keys of `keys` that start with `prefix`, at most
/// [`MAX_CANDIDATES`].
fn matching(prefix: &[u8], keys: Vec<PublicKey>) -> Vec<PublicKey> {
    let mut found: Vec<PublicKey> = Vec::new();
    for key in keys {
        if key.as_bytes().starts_with(prefix) && !found.contains(&key) {
            found.push(key);
            if found.len() == MAX_CANDIDATES {
                break;
            }
        }
    }
    found
}

/// Full printable forms of `items`, for an ambiguity error.
fn listed<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
