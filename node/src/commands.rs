//! What the event loop does for each command of a [`crate::NodeHandle`].

use protocol::moderation::ModActionKind;
use protocol::post::Draft;
use protocol::sync::ItemKey;
use protocol::{
    ActionId, Message, ModAction, Post, PostId, Retraction, SealedReport, TopicName,
    VerifiedMessage,
};

use crate::api::{CommunityView, IdView, ModListView, StatusView, TopicView};
use crate::error::NodeError;
use crate::event_loop::EventLoop;
use crate::handle::{Command, ReadQuery, Reply};

/// Most queued imports verified and stored together.
const IMPORT_BATCH: usize = 256;
use crate::ingest::{Origin, Refusal};
use crate::now_ms;
use crate::views::Tombstone;

const MOD_SEQ: &str = "moderation_seq";
/// Most posts one read returns: a whole large topic, while a typo such as
/// `--limit 99999999999` cannot ask for unbounded memory.
pub(crate) const MAX_READ_LIMIT: usize = 1_000_000;

impl EventLoop {
    pub(crate) fn on_command(&mut self, command: Command) {
        match command {
            Command::Id(r) => {
                let _ = r.send(Ok(self.id_view()));
            }
            Command::Community(r) => {
                let m = &self.manifest.content;
                let _ = r.send(Ok(CommunityView {
                    name: m.name.clone(),
                    id: self.community.to_string(),
                    admin: m.admin.to_string(),
                    rules: m.rules.clone(),
                    created_at: m.created_at,
                }));
            }
            Command::Join(topic, r) => {
                let _ = r.send(self.join(topic));
            }
            Command::Leave(topic, r) => {
                let result = self.store.leave_topic(&topic).map_err(NodeError::from);
                self.unsubscribe_topic(&topic);
                let _ = r.send(result);
            }
            Command::Topics(r) => {
                let _ = r.send(self.topic_views());
            }
            Command::Publish(topic, draft, r) => {
                let result = self.publish(topic, draft);
                self.reply_when_durable(r, result);
            }
            Command::Read(topic, q, r) => {
                let _ = r.send(self.read(&topic, &q));
            }
            Command::ResolvePost(text, r) => {
                let _ = r.send(self.resolve_post(&text));
            }
            Command::Retract(post, r) => {
                let result = self.retract(post);
                self.reply_when_durable(r, result);
            }
            Command::Report(post, reason, r) => {
                let result = self.report(post, &reason);
                self.reply_when_durable(r, result);
            }
            Command::Moderate(kind, r) => {
                let result = self.moderate(kind);
                self.reply_when_durable(r, result);
            }
            Command::ModList(r) => {
                let _ = r.send(Ok(self.mod_list()));
            }
            Command::ModQueue(r) => {
                let _ = r.send(Ok(self.reports.clone()));
            }
            Command::Mute(author, muted, r) => {
                let result = if muted {
                    self.store.mute(&author)
                } else {
                    self.store.unmute(&author)
                };
                let _ = r.send(result.map_err(NodeError::from));
            }
            Command::Peers(r) => {
                let _ = r.send(Ok(self.peer_views()));
            }
            Command::Status(r) => {
                let _ = r.send(self.status());
            }
            Command::Invite(r) => {
                let _ = r.send(self.invite_code());
            }
            Command::Dial(addr, r) => {
                let _ = r.send(self.dial_addr(&addr));
            }
            Command::Connect(addr, r) => self.connect(addr, r),
            Command::SyncNow(r) => {
                self.sync_all_peers();
                let _ = r.send(Ok(()));
            }
            Command::PublishRaw(topic, bytes, r) => {
                let hash = libp2p::gossipsub::IdentTopic::new(topic).hash();
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(hash, bytes)
                    .map(|_| ())
                    .map_err(|e| NodeError::Network(e.to_string()));
                let _ = r.send(result);
            }
            Command::Import(message, r) => self.import_queued(message, r),
            Command::CutOff(peer, cut, r) => {
                let result = peer
                    .parse::<libp2p::PeerId>()
                    .map_err(|e| NodeError::BadInput(format!("bad peer id {peer}: {e}")))
                    .map(|p| {
                        let blocked = &mut self.swarm.behaviour_mut().blocked;
                        if cut {
                            blocked.block_peer(p);
                        } else {
                            blocked.unblock_peer(p);
                        }
                    });
                let _ = r.send(result);
            }
            Command::ImportMany(messages, r) => {
                let ctx = self.ctx();
                let mut report = crate::handle::ImportReport::default();
                let mut verified = Vec::with_capacity(messages.len());
                for verdict in crate::verify::verify_all(messages, &ctx) {
                    match verdict {
                        Ok(v) => verified.push(v),
                        Err(_) => report.refused += 1,
                    }
                }
                for outcome in self.arrived_all(verified, Origin::Import) {
                    match outcome {
                        Ok(crate::ingest::Outcome::Stored) => report.stored += 1,
                        Ok(_) => report.duplicates += 1,
                        Err(_) => report.refused += 1,
                    }
                }
                let _ = r.send(Ok(report));
            }
            Command::SyncCounters(r) => {
                let s = &self.sync;
                let _ = r.send(Ok((s.round_trips, s.bytes_sent, s.bytes_received)));
            }
            Command::GossipStats(r) => {
                let _ = r.send(Ok(crate::GossipStats::read(&self.gossip_metrics)));
            }
            Command::Shutdown(r) => {
                let _ = r.send(Ok(()));
            }
        }
    }

    /// Imports `first` together with every import already queued behind
    /// it (up to [`IMPORT_BATCH`]), so that many callers importing one item
    /// each still get batch verification and one store transaction. Each
    /// gets the verdict it would have got alone.
    fn import_queued(&mut self, first: Message, reply: Reply<bool>) {
        let mut messages = vec![first];
        let mut replies = vec![reply];
        while messages.len() < IMPORT_BATCH {
            match self.commands.try_recv() {
                Ok(Command::Import(m, r)) => {
                    messages.push(m);
                    replies.push(r);
                }
                Ok(other) => {
                    self.read_ahead = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let ctx = self.ctx();
        let mut slots: Vec<Option<Result<bool, NodeError>>> = Vec::with_capacity(messages.len());
        let mut verified = Vec::with_capacity(messages.len());
        for verdict in crate::verify::verify_all(messages, &ctx) {
            match verdict {
                Ok(v) => {
                    verified.push(v);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(Err(NodeError::from(e)))),
            }
        }
        let mut outcomes = self.arrived_all(verified, Origin::Import).into_iter();
        for (slot, reply) in slots.into_iter().zip(replies) {
            let result = slot.unwrap_or_else(|| match outcomes.next() {
                Some(Ok(o)) => Ok(o == crate::ingest::Outcome::Stored),
                Some(Err(Refusal::Store(e))) => Err(e.into()),
                Some(Err(refusal)) => Err(NodeError::NotAllowed(refusal.to_string())),
                None => Ok(false),
            });
            let _ = reply.send(result);
        }
    }

    fn id_view(&self) -> IdView {
        IdView {
            author: self.identity.public().to_string(),
            name: self.identity.name.clone(),
            peer_id: self.swarm.local_peer_id().to_string(),
            listen_addrs: self.listen_addrs.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn join(&mut self, topic: TopicName) -> Result<(), NodeError> {
        self.store.join_topic(&topic)?;
        if !self.joined.contains(&topic) {
            self.subscribe_topic(&topic)?;
        }
        // Sync its history from every connected peer now.
        let peers: Vec<_> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.sync_topics_with(peer, vec![topic.clone()]);
        }
        Ok(())
    }

    fn topic_views(&self) -> Result<Vec<TopicView>, NodeError> {
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

    /// Checks, takes through the one arrival path and gossips. The command
    /// is answered only once the item is on disk
    /// ([`EventLoop::reply_when_durable`]), so an acknowledged item
    /// survives a crash; neither gossip nor this loop waits for the disk.
    /// If the node crashes before the flush, the item was never
    /// acknowledged; sync brings it back from the peers that received it.
    fn publish_local(&mut self, message: Message) -> Result<[u8; 32], NodeError> {
        let verified = message.verify(&self.ctx())?;
        let topic = match &verified {
            VerifiedMessage::Post(p) => self.topic_hash(&p.topic),
            _ => self.community_topic.hash(),
        };
        let id = verified.id_bytes();
        let bytes = verified.to_message().encode();
        match self.arrived(verified, Origin::Local) {
            Ok(_) => {}
            Err(Refusal::Store(e)) => return Err(e.into()),
            Err(refusal) => return Err(NodeError::NotAllowed(refusal.to_string())),
        }
        self.gossip(topic, bytes);
        Ok(id)
    }

    fn publish(&mut self, topic: TopicName, draft: Draft) -> Result<PostId, NodeError> {
        if !self.is_joined(&topic) {
            return Err(NodeError::NotJoined(topic.to_string()));
        }
        if let Some(parent) = &draft.parent {
            if !self.store.contains_post(parent)? {
                return Err(NodeError::UnknownPost(parent.to_string()));
            }
        }
        let post = Post::write(&self.identity, self.community, topic, draft, now_ms())?;
        Ok(PostId(self.publish_local(Message::Post(post))?))
    }

    fn read(
        &self,
        topic: &TopicName,
        q: &ReadQuery,
    ) -> Result<Vec<crate::api::PostView>, NodeError> {
        let limit = q.limit.clamp(1, MAX_READ_LIMIT);
        let since = q.since_ms.unwrap_or(0);
        let mutes = self.store.mutes()?;
        let mut views: Vec<crate::api::PostView> = Vec::new();
        let mut before: Option<ItemKey> = None;
        // Page newest-first, skipping muted authors, until `limit` are found.
        'pages: loop {
            let page = self.store.topic_page(topic, before, limit)?;
            if page.is_empty() {
                break;
            }
            for post in &page {
                before = Some(ItemKey {
                    created_at: post.content.created_at,
                    id: post.id().0,
                });
                if post.content.created_at < since {
                    break 'pages;
                }
                if mutes.contains(&post.content.author) {
                    continue;
                }
                views.push(self.post_view(post));
                if views.len() >= limit {
                    break 'pages;
                }
            }
            if page.len() < limit {
                break;
            }
        }
        for (_, bytes) in self.store.tombstones_page(topic, None, limit)? {
            if let Some(t) = Tombstone::decode(&bytes) {
                if t.created_at >= since && !mutes.contains(&t.author) {
                    views.push(self.tombstone_view(&t));
                }
            }
        }
        views.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let skip = views.len().saturating_sub(limit);
        Ok(views.into_iter().skip(skip).collect())
    }

    fn resolve_post(&self, text: &str) -> Result<PostId, NodeError> {
        let text = text.trim();
        if let Ok(id) = text.parse::<PostId>() {
            return Ok(id);
        }
        let prefix = PostId::prefix_bytes(text).map_err(|e| NodeError::BadInput(e.to_string()))?;
        let mut found = self.store.post_ids_with_prefix(&prefix, 2)?;
        match found.len() {
            0 => Err(NodeError::UnknownPost(text.to_string())),
            1 => found
                .pop()
                .ok_or_else(|| NodeError::UnknownPost(text.to_string())),
            _ => Err(NodeError::AmbiguousPost(text.to_string())),
        }
    }

    fn retract(&mut self, post: PostId) -> Result<(), NodeError> {
        let stored = self
            .store
            .get_post(&post)?
            .ok_or_else(|| NodeError::UnknownPost(post.to_string()))?;
        if stored.content.author != self.identity.public() {
            return Err(NodeError::NotAllowed(
                "only the author of a post can retract it".into(),
            ));
        }
        let r = Retraction::create(&self.identity.secret, self.community, post, now_ms());
        self.publish_local(Message::Retraction(r))?;
        Ok(())
    }

    fn report(&mut self, post: PostId, reason: &str) -> Result<ActionId, NodeError> {
        if !self.store.contains_post(&post)? {
            return Err(NodeError::UnknownPost(post.to_string()));
        }
        let mut recipients = vec![self.manifest.content.admin];
        for key in self.moderation.current_moderators() {
            if !recipients.contains(&key) {
                recipients.push(key);
            }
        }
        let sealed = SealedReport::seal(
            &self.identity,
            self.community,
            post,
            reason,
            &recipients,
            now_ms(),
            &mut rand::rngs::OsRng,
        )?;
        Ok(ActionId(self.publish_local(Message::Report(sealed))?))
    }

    fn moderate(&mut self, kind: ModActionKind) -> Result<ActionId, NodeError> {
        // A revocation counts the moderator's actions this node holds.
        let kind = match kind {
            ModActionKind::RevokeModerator { key, .. } => ModActionKind::RevokeModerator {
                key,
                upto_seq: self.moderation.highest_seq(&key),
            },
            other => other,
        };
        let me = self.identity.public();
        let now = now_ms();
        if kind.admin_only() {
            if me != self.manifest.content.admin {
                return Err(NodeError::NotAllowed(
                    "only the community admin can appoint or revoke moderators".into(),
                ));
            }
        } else if !self.moderation.is_moderator(&me, now) {
            return Err(NodeError::NotAllowed(
                "this identity is not a moderator of the community".into(),
            ));
        }
        let seq = self
            .store
            .get_meta(MOD_SEQ)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0)
            + 1;
        self.store.set_meta(MOD_SEQ, &seq.to_be_bytes())?;
        let action = ModAction::create(&self.identity, self.community, seq, kind, now)?;
        Ok(ActionId(self.publish_local(Message::Moderation(action))?))
    }

    fn mod_list(&self) -> ModListView {
        crate::moderation_view::mod_list(&self.moderation, &self.manifest)
    }

    fn status(&self) -> Result<StatusView, NodeError> {
        let topics = self.topic_views()?;
        Ok(StatusView {
            community: self.manifest.content.name.clone(),
            community_id: self.community.to_string(),
            peers: self.swarm.connected_peers().count(),
            posts: topics.iter().map(|t| t.posts).sum(),
            topics,
            store_bytes: self.store.size_on_disk().unwrap_or(0),
            sync: self.sync.progress(),
            reachability: self
                .peers
                .reachability(&self.listen_addrs, crate::now_ms())
                .describe(),
            remembered_peers: self.peers.book().len(),
            problems: self.peers.problems(),
            community_peers: self.community_peers(),
        })
    }
}
