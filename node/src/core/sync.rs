//! History sync, both sides, without the network: the sessions this node
//! runs as initiator (per peer a queue of scopes, the community log always
//! first, one session at a time, each a run of the pure reconciliation
//! state machine of `protocol::sync`), and the [`Responder`] that answers
//! other nodes' requests on the blocking pool. Items received go through
//! the one arrival path.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use protocol::sync::{self, Initiator, ItemKey, Step, SyncRequest, SyncResponse, SyncScope};
use protocol::wire::{self, MAX_SYNC_FRAME_BYTES};
use protocol::{Message, TopicName, ValidationContext, ValidationError, VerifiedMessage};

use crate::api::SyncProgress;
use crate::handle::NodeEvent;
use crate::store::{Store, StoreError};

use super::limits::{KeyedLimiter, SYNC_REQUESTS_PER_PEER_PER_10S, SYNC_REQUESTS_PER_SECOND};
use super::{Core, Effect, Origin, Outcome, PeerRef, Refusal, Shared, SyncTicket};

/// Invalid items a peer may send by sync before its session is dropped.
const MAX_INVALID_ITEMS_PER_SESSION: u64 = 16;

/// Pages of a session decoded but not yet verified and stored, past which
/// the next request waits: the network fetches the next page while these
/// are verified (on the blocking pool) and written (on the core), and
/// memory stays bounded however fast the peer answers.
const MAX_PAGES_UNCHECKED: usize = 2;

struct Session {
    scope: SyncScope,
    initiator: Initiator,
    /// The request awaiting its answer.
    waiting: Option<SyncTicket>,
    received: u64,
    invalid: u64,
    /// Pages decoded whose items are being verified, by the ticket they
    /// answered: `Some(items)` when the initiator kept other items than
    /// the page's, which are then verified on the core instead.
    unchecked: HashMap<SyncTicket, Option<Vec<Vec<u8>>>>,
    /// The next request, held while [`MAX_PAGES_UNCHECKED`] pages wait.
    held: Option<SyncRequest>,
    /// The initiator is done: the session ends once its pages are stored.
    finished: bool,
}

#[derive(Default)]
struct PeerPlan {
    queue: VecDeque<SyncScope>,
    current: Option<Session>,
}

/// The sync sessions this node runs, and counters for progress.
#[derive(Default)]
pub struct Sessions {
    plans: HashMap<PeerRef, PeerPlan>,
    next_ticket: SyncTicket,
    pub(crate) received: u64,
    completed: u64,
    /// Bytes sent and received by sync, for tests and benchmarks.
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) round_trips: u64,
}

impl Sessions {
    /// Sessions running and items still missing.
    pub fn progress(&self) -> SyncProgress {
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

    /// (round trips, bytes sent, bytes received).
    pub fn counters(&self) -> (u64, u64, u64) {
        (self.round_trips, self.bytes_sent, self.bytes_received)
    }
}

/// The store seen as one scope's set, for the reconciliation machine. A
/// store error is carried out, not taken for "I hold nothing" (that would
/// make the peer send everything again, or answer that this node has
/// nothing).
/// Decides whether the responder may serve an encoded item.
type ServeFilter<'a> = &'a dyn Fn(&[u8]) -> bool;

struct StoreSet<'a> {
    store: &'a Store,
    scope: &'a SyncScope,
    error: std::cell::RefCell<Option<StoreError>>,
    /// Items the responder must not serve (blocked, hidden, retracted).
    serve: Option<ServeFilter<'a>>,
}

impl<'a> StoreSet<'a> {
    fn new(store: &'a Store, scope: &'a SyncScope) -> Self {
        StoreSet {
            store,
            scope,
            error: std::cell::RefCell::new(None),
            serve: None,
        }
    }

    fn failed(&self, e: StoreError) {
        tracing::warn!("sync: reading the store: {e}");
        self.error.borrow_mut().get_or_insert(e);
    }

    fn take_error(&self) -> Option<StoreError> {
        self.error.borrow_mut().take()
    }
}

impl sync::SyncSet for StoreSet<'_> {
    fn for_each_in(&self, from: &ItemKey, to: &ItemKey, f: &mut dyn FnMut(&ItemKey) -> bool) {
        if let Err(e) = self.store.scan_keys(self.scope, from, to, f) {
            self.failed(e);
        }
    }

    /// From the store's cache: every session starts by comparing the whole
    /// set, and between nodes that agree that is all there is.
    fn whole_sum(&self) -> Option<sync::Accumulator> {
        match self.store.scope_sum(self.scope) {
            Ok(acc) => Some(acc),
            Err(e) => {
                self.failed(e);
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
        match self
            .store
            .items_in(self.scope, from, to, max_items, max_bytes)
        {
            Ok(items) => match self.serve {
                Some(serve) => items.into_iter().filter(|(_, b)| serve(b)).collect(),
                None => items,
            },
            Err(e) => {
                self.failed(e);
                Vec::new()
            }
        }
    }

    fn items_by_keys(&self, keys: &[ItemKey]) -> Vec<Vec<u8>> {
        match self.store.items_by_keys(self.scope, keys) {
            Ok(items) => match self.serve {
                Some(serve) => items.into_iter().filter(|b| serve(b)).collect(),
                None => items,
            },
            Err(e) => {
                self.failed(e);
                Vec::new()
            }
        }
    }
}

impl Core {
    /// Queues a sync of the community log and then `topics` with `peer`.
    pub fn sync_with(&mut self, peer: PeerRef, topics: Vec<TopicName>) {
        let plan = self.sync.plans.entry(peer.clone()).or_default();
        let mut wanted = vec![SyncScope::CommunityLog];
        wanted.extend(topics.into_iter().map(SyncScope::Topic));
        for scope in wanted {
            let running = plan.current.as_ref().is_some_and(|s| s.scope == scope);
            if !running && !plan.queue.contains(&scope) {
                plan.queue.push_back(scope);
            }
        }
        self.drive(&peer);
    }

    /// A peer went away: its sessions end.
    pub fn peer_gone(&mut self, peer: &PeerRef) {
        self.sync.plans.remove(peer);
    }

    fn send(&mut self, peer: &PeerRef, request: &SyncRequest) -> SyncTicket {
        let bytes = wire::encode_versioned(request);
        self.sync.bytes_sent += bytes.len() as u64;
        self.sync.next_ticket += 1;
        let ticket = self.sync.next_ticket;
        self.effect(Effect::SyncRequest {
            peer: peer.clone(),
            ticket,
            bytes,
        });
        ticket
    }

    /// Starts the next queued session with `peer` if none is running.
    fn drive(&mut self, peer: &PeerRef) {
        loop {
            let Some(plan) = self.sync.plans.get_mut(peer) else {
                return;
            };
            if plan.current.is_some() {
                return;
            }
            let Some(scope) = plan.queue.pop_front() else {
                self.sync.plans.remove(peer);
                return;
            };
            if let SyncScope::Topic(t) = &scope {
                if !self.joined.contains(t) {
                    continue;
                }
            }
            if self.hold_for_pull(peer, &scope) {
                continue;
            }
            let set = StoreSet::new(&self.store, &scope);
            let (initiator, request) = Initiator::new(scope.clone(), &set);
            if let Some(e) = set.take_error() {
                tracing::warn!("not syncing {scope:?}: {e}");
                continue;
            }
            let ticket = self.send(peer, &request);
            if let Some(plan) = self.sync.plans.get_mut(peer) {
                plan.current = Some(Session {
                    scope,
                    initiator,
                    waiting: Some(ticket),
                    received: 0,
                    invalid: 0,
                    unchecked: HashMap::new(),
                    held: None,
                    finished: false,
                });
            }
            return;
        }
    }

    /// Whether to hold this node's own session over `scope` with `peer`,
    /// because `peer` is pulling that scope from this node and holds fewer
    /// items ([`super::pulls`]); if so, a sync with `peer` is asked for
    /// again later.
    fn hold_for_pull(&mut self, peer: &PeerRef, scope: &SyncScope) -> bool {
        let Some(theirs) = self.shared.pulls.active(peer, scope, Instant::now()) else {
            return false;
        };
        let ours = match self.store.scope_sum(scope) {
            Ok(acc) => acc.count(),
            Err(_) => return false,
        };
        if theirs >= ours {
            return false;
        }
        tracing::debug!(
            "holding the sync of {scope:?} with {}: it is pulling from this node ({theirs} < {ours} items)",
            peer.0
        );
        self.effect(Effect::SyncLater(peer.clone()));
        true
    }

    fn end_session(&mut self, peer: &PeerRef) {
        if let Some(plan) = self.sync.plans.get_mut(peer) {
            if let Some(s) = plan.current.take() {
                self.sync.completed += 1;
                self.emit(NodeEvent::SyncDone {
                    peer: peer_text(peer),
                    received: s.received,
                });
            }
        }
        self.drive(peer);
    }

    /// A session with nothing more to ask (it is done, its request
    /// failed, or an answer could not be used): it ends now, or, when
    /// pages it already took are still being verified, once the last of
    /// them is stored, so that its end (`SyncDone`) always follows the
    /// storage of what it received.
    fn wind_down(&mut self, peer: &PeerRef, mut session: Session) {
        session.waiting = None;
        session.held = None;
        session.finished = true;
        let ends = session.unchecked.is_empty();
        self.put_back(peer, session);
        if ends {
            self.end_session(peer);
        }
    }

    /// The current session of `peer` if it is waiting for `ticket`.
    fn session_for(&mut self, peer: &PeerRef, ticket: SyncTicket) -> Option<Session> {
        let plan = self.sync.plans.get_mut(peer)?;
        if plan.current.as_ref()?.waiting != Some(ticket) {
            return None;
        }
        plan.current.take()
    }

    /// A request failed (timeout, connection closed): the session it
    /// belongs to ends; a failure of an older request changes nothing.
    pub fn sync_failed(&mut self, peer: &PeerRef, ticket: SyncTicket) {
        if let Some(session) = self.session_for(peer, ticket) {
            self.wind_down(peer, session);
        }
    }

    /// A peer answered a sync request: decodes it, takes its step and
    /// verifies and stores its items, all here ([`Core::sync_decoded`] and
    /// [`Core::sync_checked`] at once). The network splits the two, so the
    /// next page is asked for as soon as this one is decoded.
    pub fn sync_response(&mut self, peer: &PeerRef, ticket: SyncTicket, bytes: &[u8], now_ms: u64) {
        let page = DecodedPage::decode(bytes);
        let checked = CheckedPage::check(&page.items(), &self.ctx(now_ms));
        self.sync_decoded(peer, ticket, page, now_ms);
        self.sync_checked(peer, ticket, checked, now_ms);
    }

    /// A sync answer, decoded (phase one of two): the session takes its
    /// step and asks for the next page at once, unless
    /// [`MAX_PAGES_UNCHECKED`] pages still wait for
    /// [`Core::sync_checked`], which stores the items.
    pub fn sync_decoded(
        &mut self,
        peer: &PeerRef,
        ticket: SyncTicket,
        page: DecodedPage,
        _now_ms: u64,
    ) {
        self.sync.bytes_received += page.bytes as u64;
        self.sync.round_trips += 1;
        let Some(mut session) = self.session_for(peer, ticket) else {
            return;
        };
        session.waiting = None;
        let response = match page.response {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("malformed sync response: {e}");
                self.wind_down(peer, session);
                return;
            }
        };
        let sent_items = response.items.len();
        let scope = session.scope.clone();
        let (step, error) = {
            let set = StoreSet::new(&self.store, &scope);
            let step = session.initiator.on_response(response, &set);
            (step, set.take_error())
        };
        if let Some(e) = error {
            tracing::warn!("sync session stopped: this node could not read its store: {e}");
            self.wind_down(peer, session);
            return;
        }
        // The verdicts to come belong to the page's items, which the
        // initiator keeps as they are; should it ever keep others, those
        // are verified on the core.
        let items = session.initiator.take_items();
        let recheck = (items.len() != sent_items).then_some(items);
        session.unchecked.insert(ticket, recheck);
        match step {
            // A peer that started pulling from this node after this
            // session started: this page is stored, and the session stops
            // here.
            Ok(Step::Continue(_)) if self.hold_for_pull(peer, &scope) => self.drive(peer),
            Ok(Step::Continue(next)) => {
                // The request depends only on what this node held before.
                if session.unchecked.len() < MAX_PAGES_UNCHECKED {
                    session.waiting = Some(self.send(peer, &next));
                } else {
                    session.held = Some(next);
                }
                self.put_back(peer, session);
            }
            Ok(Step::Done) => self.wind_down(peer, session),
            Err(e) => {
                tracing::debug!("sync session failed: {e}");
                self.wind_down(peer, session);
            }
        }
    }

    /// A decoded page's items, verified (phase two): they go through the
    /// arrival path; the session counts them, sends a request it held and
    /// ends once the initiator is done and no page waits. The items of a
    /// session that ended meanwhile are stored all the same.
    pub fn sync_checked(
        &mut self,
        peer: &PeerRef,
        ticket: SyncTicket,
        page: CheckedPage,
        now_ms: u64,
    ) {
        let mut session = self.sync.plans.get_mut(peer).and_then(|plan| {
            if plan.current.as_ref()?.unchecked.contains_key(&ticket) {
                plan.current.take()
            } else {
                None
            }
        });
        let recheck = session
            .as_mut()
            .and_then(|s| s.unchecked.remove(&ticket))
            .flatten();
        let verdicts = match recheck {
            Some(items) => crate::verify::decode_and_verify_all(&items, &self.ctx(now_ms)),
            None => page.verdicts,
        };
        let (mut received, mut invalid) = (0u64, 0u64);
        for outcome in self.arrive_checked(verdicts, Origin::Sync, now_ms) {
            match outcome {
                Ok(Outcome::Stored) => received += 1,
                Ok(_) => {}
                Err(Refusal::Invalid(e)) => {
                    tracing::debug!("invalid item from sync: {e}");
                    invalid += 1;
                }
                Err(r) => tracing::trace!("sync item refused: {r}"),
            }
        }
        let Some(mut session) = session else {
            return;
        };
        session.received += received;
        session.invalid += invalid;
        if session.invalid > MAX_INVALID_ITEMS_PER_SESSION {
            tracing::info!("dropping a sync session that sent invalid items");
            // The answer to a request already sent is ignored.
            session.waiting = None;
            session.held = None;
            self.put_back(peer, session);
            self.end_session(peer);
            return;
        }
        if let Some(next) = session.held.take() {
            session.waiting = Some(self.send(peer, &next));
        }
        let ends = session.finished && session.unchecked.is_empty();
        self.put_back(peer, session);
        if ends {
            self.end_session(peer);
        }
    }

    fn put_back(&mut self, peer: &PeerRef, session: Session) {
        self.sync.plans.entry(peer.clone()).or_default().current = Some(session);
    }

    /// The responder, for the network to answer requests off the core.
    pub fn responder(&self) -> Responder {
        Responder::new(self.store.clone(), self.shared())
    }
}

/// A sync answer decoded, off the core's thread (phase one).
pub struct DecodedPage {
    /// The answer's size on the wire (for the counters).
    bytes: usize,
    response: Result<SyncResponse, String>,
}

impl DecodedPage {
    /// Decodes an answer: pure work on the message alone.
    pub fn decode(bytes: &[u8]) -> DecodedPage {
        DecodedPage {
            bytes: bytes.len(),
            response: wire::decode_versioned(bytes, MAX_SYNC_FRAME_BYTES)
                .map_err(|e| e.to_string()),
        }
    }

    /// A copy of the answer's items, to verify while the core takes the
    /// answer's step.
    pub fn items(&self) -> Vec<Vec<u8>> {
        self.response
            .as_ref()
            .map(|r| r.items.clone())
            .unwrap_or_default()
    }
}

/// A sync answer's items decoded and verified on every core, off the
/// core's thread (phase two).
pub struct CheckedPage {
    verdicts: Vec<Result<VerifiedMessage, ValidationError>>,
}

impl CheckedPage {
    /// Decodes and verifies `items`: pure work on the items alone.
    pub fn check(items: &[Vec<u8>], ctx: &ValidationContext) -> CheckedPage {
        CheckedPage {
            verdicts: crate::verify::decode_and_verify_all(items, ctx),
        }
    }
}

fn peer_text(peer: &PeerRef) -> String {
    peer.0.clone()
}

/// Answers other nodes' sync requests from the store, on the blocking
/// pool, with a per-peer and a global budget (a new peer id costs
/// nothing). Never serves a post of a blocked author, a hidden post or a
/// retracted one, whatever is on disk.
#[derive(Clone)]
pub struct Responder {
    inner: Arc<ResponderInner>,
}

struct ResponderInner {
    store: Store,
    shared: Shared,
    per_peer: KeyedLimiter<PeerRef>,
    global: RateLimiter<NotKeyed, InMemoryState, DefaultClock>,
}

impl Responder {
    /// What a newcomer is shown at `community join` (`network::welcome`):
    /// the newest rules update and up to `max_topics` directory entries;
    /// `None` past the same per-peer and node budgets as sync requests
    /// (the directory is folded from the log on each request).
    pub(crate) fn welcome(&self, peer: &PeerRef, max_topics: usize) -> Option<crate::api::Welcome> {
        let me = &self.inner;
        if !me.per_peer.allow(peer) || me.global.check().is_err() {
            tracing::debug!("welcome request over the budget");
            return None;
        }
        let moderation = me.shared.moderation();
        Some(crate::api::Welcome {
            rules: moderation
                .manifest_update()
                .map(|m| (m.version, m.rules.clone())),
            directory: moderation
                .topic_directory()
                .into_iter()
                .take(max_topics)
                .map(|(topic, entry)| (topic.to_string(), entry.description))
                .collect(),
        })
    }

    fn new(store: Store, shared: Shared) -> Responder {
        let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let per_peer = Quota::with_period(Duration::from_secs(10) / SYNC_REQUESTS_PER_PEER_PER_10S)
            .unwrap_or_else(|| Quota::per_second(nz(20)))
            .allow_burst(nz(SYNC_REQUESTS_PER_PEER_PER_10S));
        Responder {
            inner: Arc::new(ResponderInner {
                store,
                shared,
                per_peer: KeyedLimiter::with_clock(
                    per_peer,
                    super::limits::MAX_TRACKED_KEYS,
                    DefaultClock::default(),
                ),
                global: RateLimiter::direct(
                    Quota::per_second(nz(SYNC_REQUESTS_PER_SECOND))
                        .allow_burst(nz(2 * SYNC_REQUESTS_PER_SECOND)),
                ),
            }),
        }
    }

    /// The encoded answer to an encoded request. A refused or malformed
    /// request gets an empty answer, never a panic; a store that cannot be
    /// read answers nothing rather than "I hold nothing".
    pub fn answer(&self, peer: &PeerRef, request: &[u8]) -> Vec<u8> {
        let me = &self.inner;
        if !me.per_peer.allow(peer) {
            tracing::debug!("sync request over the per-peer budget");
            return Vec::new();
        }
        if me.global.check().is_err() {
            tracing::debug!("sync request over the node's budget");
            return Vec::new();
        }
        let request: SyncRequest = match wire::decode_versioned(request, MAX_SYNC_FRAME_BYTES) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("malformed sync request: {e}");
                return Vec::new();
            }
        };
        if let SyncScope::Topic(t) = &request.scope {
            if !me.shared.joined().contains(t) {
                return wire::encode_versioned(&SyncResponse::refused(&request));
            }
        }
        me.shared.pulls.served(peer, &request, Instant::now());
        let moderation = me.shared.moderation();
        let store = &me.store;
        let serve = |bytes: &[u8]| -> bool {
            match Message::decode(bytes) {
                Ok(Message::Post(p)) => {
                    let c = &p.content;
                    let id = p.id();
                    moderation.is_blocked(&c.author, &c.topic).is_none()
                        && moderation.hidden(&id).is_none()
                        && !store.is_retracted_by(&id, &c.author).unwrap_or(true)
                }
                _ => true,
            }
        };
        let scope = request.scope.clone();
        let mut set = StoreSet::new(store, &scope);
        set.serve = Some(&serve);
        let response = sync::respond(&request, &set, &set);
        if set.take_error().is_some() {
            return Vec::new();
        }
        wire::encode_versioned(&response)
    }

    /// Forgets peers whose budget is back to full.
    pub fn prune(&self) {
        self.inner.per_peer.prune();
    }
}
