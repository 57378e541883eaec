//! Drives history sync over `/mutual/sync/1`: per peer, a queue of scopes
//! (the community log always first, then shared topics), one session at a
//! time, each a run of the pure reconciliation state machine from
//! `protocol::sync`. Items received go through the one arrival path.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p::request_response::{self, OutboundRequestId};
use libp2p::PeerId;
use protocol::sync::{self, Initiator, ItemKey, Step, SyncRequest, SyncResponse, SyncScope};
use protocol::wire::{self, MAX_SYNC_FRAME_BYTES};
use protocol::TopicName;

use crate::api::SyncProgress;
use crate::event_loop::EventLoop;
use crate::handle::NodeEvent;
use crate::ingest::{Origin, Refusal};
use crate::store::Store;

/// Sync requests one peer may make per [`INBOUND_WINDOW`]: enough for a
/// full catch-up of a large topic in pages, too few to keep a node busy.
pub const INBOUND_REQUESTS_PER_WINDOW: u32 = 200;
/// The window of [`INBOUND_REQUESTS_PER_WINDOW`].
pub const INBOUND_WINDOW: Duration = Duration::from_secs(10);
/// Invalid items a peer may send by sync before its session is dropped.
const MAX_INVALID_ITEMS_PER_SESSION: u64 = 16;

struct Session {
    scope: SyncScope,
    initiator: Initiator,
    request: Option<OutboundRequestId>,
    received: u64,
    invalid: u64,
}

#[derive(Default)]
struct PeerPlan {
    queue: VecDeque<SyncScope>,
    current: Option<Session>,
}

/// Sync state of the node: sessions per peer and counters for progress.
#[derive(Default)]
pub(crate) struct SyncDriver {
    plans: HashMap<PeerId, PeerPlan>,
    by_request: HashMap<OutboundRequestId, PeerId>,
    inbound: HashMap<PeerId, (Instant, u32)>,
    pub(crate) received: u64,
    completed: u64,
    /// Bytes sent and received by sync, for tests and benchmarks.
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) round_trips: u64,
}

impl SyncDriver {
    pub(crate) fn peer_gone(&mut self, peer: &PeerId) {
        if let Some(plan) = self.plans.remove(peer) {
            if let Some(req) = plan.current.and_then(|s| s.request) {
                self.by_request.remove(&req);
            }
        }
        self.inbound.remove(peer);
    }

    pub(crate) fn progress(&self) -> SyncProgress {
        let mut missing = 0;
        let mut active = 0;
        for plan in self.plans.values() {
            if let Some(s) = &plan.current {
                active += 1;
                missing += s.initiator.progress().missing;
            }
        }
        SyncProgress {
            active_sessions: active,
            missing,
            received: self.received,
            completed_sessions: self.completed,
        }
    }

    fn allow_inbound(&mut self, peer: PeerId, now: Instant) -> bool {
        let (start, count) = self.inbound.entry(peer).or_insert((now, 0));
        if now.duration_since(*start) > INBOUND_WINDOW {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= INBOUND_REQUESTS_PER_WINDOW
    }
}

/// The store seen as one scope's set, for the reconciliation machine.
struct StoreSet<'a> {
    store: &'a Store,
    scope: &'a SyncScope,
}

impl sync::SyncSet for StoreSet<'_> {
    fn for_each_in(&self, from: &ItemKey, to: &ItemKey, f: &mut dyn FnMut(&ItemKey) -> bool) {
        if let Err(e) = self.store.scan_keys(self.scope, from, to, f) {
            tracing::warn!("sync scan: {e}");
        }
    }

    /// From the store's cache: every session starts by comparing the whole
    /// set, and between nodes that agree that is all there is.
    fn whole_sum(&self) -> Option<sync::Accumulator> {
        match self.store.scope_sum(self.scope) {
            Ok(acc) => Some(acc),
            Err(e) => {
                tracing::warn!("sync scan: {e}");
                None
            }
        }
    }
}

impl sync::ItemSource for StoreSet<'_> {
    fn items_in(
        &self,
        from: &ItemKey,
        to: &ItemKey,
        max_items: usize,
        max_bytes: usize,
    ) -> Vec<(ItemKey, Vec<u8>)> {
        self.store
            .items_in(self.scope, from, to, max_items, max_bytes)
            .unwrap_or_default()
    }
    fn items_by_keys(&self, keys: &[ItemKey]) -> Vec<Vec<u8>> {
        self.store
            .items_by_keys(self.scope, keys)
            .unwrap_or_default()
    }
}

impl EventLoop {
    /// Queues a sync of the community log and then `topics` with `peer`.
    pub(crate) fn sync_topics_with(&mut self, peer: PeerId, topics: Vec<TopicName>) {
        let plan = self.sync.plans.entry(peer).or_default();
        let mut wanted = vec![SyncScope::CommunityLog];
        wanted.extend(topics.into_iter().map(SyncScope::Topic));
        for scope in wanted {
            let running = plan.current.as_ref().is_some_and(|s| s.scope == scope);
            if !running && !plan.queue.contains(&scope) {
                plan.queue.push_back(scope);
            }
        }
        self.drive(peer);
    }

    /// Starts the next queued session with `peer` if none is running.
    fn drive(&mut self, peer: PeerId) {
        loop {
            let Some(plan) = self.sync.plans.get_mut(&peer) else {
                return;
            };
            if plan.current.is_some() {
                return;
            }
            let Some(scope) = plan.queue.pop_front() else {
                self.sync.plans.remove(&peer);
                return;
            };
            if let SyncScope::Topic(t) = &scope {
                if !self.joined.contains(t) {
                    continue;
                }
            }
            let set = StoreSet {
                store: &self.store,
                scope: &scope,
            };
            let (initiator, request) = Initiator::new(scope.clone(), &set);
            let bytes = wire::encode_versioned(&request);
            self.sync.bytes_sent += bytes.len() as u64;
            let id = self.swarm.behaviour_mut().sync.send_request(&peer, bytes);
            self.sync.by_request.insert(id, peer);
            if let Some(plan) = self.sync.plans.get_mut(&peer) {
                plan.current = Some(Session {
                    scope,
                    initiator,
                    request: Some(id),
                    received: 0,
                    invalid: 0,
                });
            }
            return;
        }
    }

    fn end_session(&mut self, peer: PeerId) {
        if let Some(plan) = self.sync.plans.get_mut(&peer) {
            if let Some(s) = plan.current.take() {
                self.sync.completed += 1;
                self.emit(NodeEvent::SyncDone {
                    peer: peer.to_string(),
                    received: s.received,
                });
            }
        }
        self.drive(peer);
    }

    pub(crate) fn on_sync_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let response = self.answer_sync(peer, &request);
                    self.sync.bytes_sent += response.len() as u64;
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.on_sync_response(peer, request_id, &response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, "sync request failed: {error}");
                self.sync.by_request.remove(&request_id);
                self.end_session(peer);
            }
            _ => {}
        }
    }

    /// Answers a peer's sync request from the store. A refused or malformed
    /// request gets an empty answer, never a panic.
    fn answer_sync(&mut self, peer: PeerId, request: &[u8]) -> Vec<u8> {
        if !self.sync.allow_inbound(peer, Instant::now()) {
            tracing::debug!(%peer, "sync request over the per-peer rate limit");
            return Vec::new();
        }
        let request: SyncRequest = match wire::decode_versioned(request, MAX_SYNC_FRAME_BYTES) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, "malformed sync request: {e}");
                return Vec::new();
            }
        };
        if let SyncScope::Topic(t) = &request.scope {
            if !self.joined.contains(t) {
                return wire::encode_versioned(&SyncResponse::refused(&request));
            }
        }
        let scope = request.scope.clone();
        let set = StoreSet {
            store: &self.store,
            scope: &scope,
        };
        let response = sync::respond(&request, &set, &set);
        wire::encode_versioned(&response)
    }

    fn on_sync_response(&mut self, peer: PeerId, request_id: OutboundRequestId, bytes: &[u8]) {
        self.sync.bytes_received += bytes.len() as u64;
        self.sync.round_trips += 1;
        if self.sync.by_request.remove(&request_id).is_none() {
            return;
        }
        let Some(mut session) = self
            .sync
            .plans
            .get_mut(&peer)
            .and_then(|p| p.current.take())
        else {
            return;
        };
        session.request = None;
        let response: SyncResponse = match wire::decode_versioned(bytes, MAX_SYNC_FRAME_BYTES) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, "malformed sync response: {e}");
                self.put_back(peer, session);
                self.end_session(peer);
                return;
            }
        };
        let scope = session.scope.clone();
        let step = {
            let set = StoreSet {
                store: &self.store,
                scope: &scope,
            };
            session.initiator.on_response(response, &set)
        };
        // Ask for the next page before checking and storing this one, so
        // the peer reads and sends it while this node verifies and writes
        // (the request depends only on what this node held before).
        if let Ok(Step::Continue(next)) = &step {
            let bytes = wire::encode_versioned(next);
            self.sync.bytes_sent += bytes.len() as u64;
            let id = self.swarm.behaviour_mut().sync.send_request(&peer, bytes);
            self.sync.by_request.insert(id, peer);
            session.request = Some(id);
        }
        // Every item goes through the one arrival path, as gossip does;
        // signatures are checked on every core first.
        let ctx = self.ctx();
        let items = session.initiator.take_items();
        let mut verified = Vec::with_capacity(items.len());
        for verdict in crate::verify::decode_and_verify_all(&items, &ctx) {
            match verdict {
                Ok(v) => verified.push(v),
                Err(e) => {
                    tracing::debug!(%peer, "invalid item from sync: {e}");
                    session.invalid += 1;
                }
            }
        }
        for outcome in self.arrived_all(verified, Origin::Sync) {
            match outcome {
                Ok(crate::ingest::Outcome::Stored) => session.received += 1,
                Ok(_) => {}
                Err(Refusal::Invalid(_)) => session.invalid += 1,
                Err(r) => tracing::trace!(%peer, "sync item refused: {r}"),
            }
        }
        if session.invalid > MAX_INVALID_ITEMS_PER_SESSION {
            tracing::info!(%peer, "dropping a sync session that sent invalid items");
            // The answer to the request already sent is ignored.
            if let Some(id) = session.request.take() {
                self.sync.by_request.remove(&id);
            }
            self.put_back(peer, session);
            self.end_session(peer);
            return;
        }
        match step {
            Ok(Step::Continue(_)) => self.put_back(peer, session),
            Ok(Step::Done) => {
                self.put_back(peer, session);
                self.end_session(peer);
            }
            Err(e) => {
                tracing::debug!(%peer, "sync session failed: {e}");
                self.put_back(peer, session);
                self.end_session(peer);
            }
        }
    }

    fn put_back(&mut self, peer: PeerId, session: Session) {
        self.sync.plans.entry(peer).or_default().current = Some(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_asking_over_and_over_is_cut_to_the_window_budget() {
        let mut driver = SyncDriver::default();
        let greedy = PeerId::random();
        let polite = PeerId::random();
        let t0 = Instant::now();
        let allowed = (0..1000)
            .filter(|_| driver.allow_inbound(greedy, t0))
            .count();
        assert_eq!(allowed, INBOUND_REQUESTS_PER_WINDOW as usize);
        assert!(
            driver.allow_inbound(polite, t0),
            "other peers keep their budget"
        );
        assert!(
            driver.allow_inbound(greedy, t0 + INBOUND_WINDOW + Duration::from_millis(1)),
            "the budget comes back after the window"
        );
    }
}
