//! The core's own thread. Handles and the event loop send it requests; it
//! runs them against the [`Core`] one at a time, sends the effects to the
//! event loop, and flushes the store: at an interval for what came from
//! the network, and before answering for what the user wrote — whose
//! gossip is released only then, so nothing is published that a crash
//! could still lose (a retry would publish it twice).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use protocol::{
    CommunityId, Message, TopicName, ValidationContext, ValidationError, VerifiedMessage,
};
use tokio::sync::{mpsc, oneshot};

use crate::error::NodeError;
use crate::now_ms;
use crate::store::Store;

use super::sync::{CheckedPage, DecodedPage};
use super::{Channel, Core, Effect, PeerRef, SyncTicket, Verdict};

/// Items from the network waiting for the core at most; past this, gossip
/// is ignored (no penalty) and sync pages wait for the next round, so a
/// flood cannot grow the queue without bound.
pub(crate) const MAX_NETWORK_BACKLOG: usize = 8192;
/// How often limiters forget keys that are back to full and expired
/// reports leave the log.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

type Job = Box<dyn FnOnce(&mut Core) + Send>;
type WriteJob = Box<dyn FnOnce(&mut Core) -> Box<dyn FnOnce(Result<(), NodeError>) + Send> + Send>;

/// A request to the core.
pub(crate) enum CoreRequest {
    /// A gossip message to judge; the verdict goes back with `ticket`.
    Gossip {
        ticket: u64,
        channel: Option<Channel>,
        data: Vec<u8>,
        source: PeerRef,
    },
    /// Sync the log and these topics with a peer.
    SyncWith {
        peer: PeerRef,
        topics: Vec<TopicName>,
    },
    /// A peer's answer to a sync request, decoded on the blocking pool.
    SyncDecoded {
        peer: PeerRef,
        ticket: SyncTicket,
        page: DecodedPage,
    },
    /// The items of an answer sent as [`CoreRequest::SyncDecoded`],
    /// verified on the blocking pool. Not counted in the network backlog:
    /// its answer was admitted, and a session keeps at most two such pages
    /// waiting.
    SyncChecked {
        peer: PeerRef,
        ticket: SyncTicket,
        page: CheckedPage,
    },
    /// A sync request failed.
    SyncFailed { peer: PeerRef, ticket: SyncTicket },
    /// A peer's last connection closed.
    PeerGone(PeerRef),
    /// Anything a handle asks that is answered at once.
    Call(Job),
    /// A local write: answered (and its gossip released) once durable.
    Write(WriteJob),
    /// Flush and stop; the store is handed back to be closed once every
    /// other handle on it is gone.
    Shutdown(oneshot::Sender<Result<Store, NodeError>>),
}

impl CoreRequest {
    fn is_from_network(&self) -> bool {
        matches!(
            self,
            CoreRequest::Gossip { .. }
                | CoreRequest::SyncDecoded { .. }
                | CoreRequest::SyncWith { .. }
        )
    }
}

/// What the core tells the event loop.
#[derive(Debug)]
pub(crate) enum NetInput {
    /// The store failed to make writes durable (a full disk, typically);
    /// the core has stopped. sled refuses every write after such a failure
    /// until the store is opened again, so the node stops with this error
    /// and `mutual run` starts it again once the disk takes writes.
    StoreFailed(NodeError),
    /// Carry these out.
    Effects(Vec<Effect>),
    /// The verdict on a gossip message.
    Verdict { ticket: u64, verdict: Verdict },
}

/// The way to the core's thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct CoreLink {
    tx: std_mpsc::Sender<CoreRequest>,
    backlog: Arc<AtomicUsize>,
    community: CommunityId,
}

impl CoreLink {
    /// Sends a request from the network; false (nothing sent) when the
    /// core is too far behind or gone.
    pub(crate) fn offer(&self, request: CoreRequest) -> bool {
        if request.is_from_network() {
            if self.backlog.load(Ordering::Acquire) >= MAX_NETWORK_BACKLOG {
                return false;
            }
            self.backlog.fetch_add(1, Ordering::AcqRel);
        }
        self.tx.send(request).is_ok()
    }

    /// Runs `f` on the core and returns its result.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |core| {
            let _ = tx.send(f(core));
        });
        self.tx
            .send(CoreRequest::Call(job))
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// What items are verified against now (the community, this clock).
    pub(crate) fn ctx(&self) -> ValidationContext {
        ValidationContext {
            community: self.community,
            now_ms: now_ms(),
        }
    }

    /// Verifies `messages` on the blocking pool (on every core), then runs
    /// `f` on the core with the verdicts, in order: while the core writes
    /// one batch, the next is verified.
    pub(crate) async fn call_verified<T: Send + 'static>(
        &self,
        messages: Vec<Message>,
        f: impl FnOnce(&mut Core, Vec<Result<VerifiedMessage, ValidationError>>) -> Result<T, NodeError>
            + Send
            + 'static,
    ) -> Result<T, NodeError> {
        let ctx = self.ctx();
        let verdicts =
            tokio::task::spawn_blocking(move || crate::verify::verify_all(messages, &ctx))
                .await
                .map_err(|e| NodeError::io("verifying items", std::io::Error::other(e)))?;
        self.call(move |core| f(core, verdicts)).await
    }

    /// Runs a local write on the core; returns once it is on disk (its
    /// gossip is released then too).
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |core| {
            let result = f(core);
            Box::new(move |durable: Result<(), NodeError>| {
                let _ = tx.send(durable.and(result));
            })
        });
        self.tx
            .send(CoreRequest::Write(job))
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Asks the core to flush and stop; returns the store to close.
    pub(crate) async fn shutdown(&self) -> Result<Store, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(CoreRequest::Shutdown(tx))
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }
}

/// Starts the core's thread.
pub(crate) fn spawn(
    core: Core,
    net: mpsc::UnboundedSender<NetInput>,
    flush_interval: Duration,
) -> Result<(CoreLink, std::thread::JoinHandle<()>), NodeError> {
    let (tx, rx) = std_mpsc::channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    let link = CoreLink {
        tx,
        backlog: Arc::clone(&backlog),
        community: core.community,
    };
    let runtime = tokio::runtime::Handle::current();
    let worker = Worker {
        core,
        net,
        backlog,
        runtime,
        flush_interval,
        interval_flush: Arc::new(AtomicBool::new(false)),
        failed: Arc::new(std::sync::Mutex::new(None)),
        resealed: Arc::new(std::sync::Mutex::new(None)),
    };
    let thread = std::thread::Builder::new()
        .name("mutual-core".into())
        .spawn(move || worker.run(rx))
        .map_err(|e| NodeError::io("starting the core's thread", e))?;
    Ok((link, thread))
}

struct Worker {
    core: Core,
    net: mpsc::UnboundedSender<NetInput>,
    backlog: Arc<AtomicUsize>,
    runtime: tokio::runtime::Handle,
    flush_interval: Duration,
    /// Whether an interval flush is running (a slow disk skips ticks
    /// rather than piling flushes up).
    interval_flush: Arc<AtomicBool>,
    /// Set when a flush failed: the store takes no more writes until it
    /// is opened again.
    failed: Arc<std::sync::Mutex<Option<String>>>,
    /// Reports sealed again on the blocking pool, waiting to be published
    /// (`None`: no sealing running).
    resealed: Arc<std::sync::Mutex<Option<Vec<protocol::SealedReport>>>>,
}

impl Worker {
    fn run(mut self, rx: std_mpsc::Receiver<CoreRequest>) {
        let mut next_flush = Instant::now() + self.flush_interval;
        let mut next_prune = Instant::now() + PRUNE_EVERY;
        loop {
            let wait = next_flush.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(CoreRequest::Shutdown(reply)) => {
                    let flushed = self.core.store.flush().map_err(NodeError::from);
                    let store = self.core.store.clone();
                    drop(self);
                    let _ = reply.send(flushed.map(|()| store));
                    return;
                }
                Ok(request) => self.handle(request),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    if let Err(e) = self.core.store.flush() {
                        tracing::error!("flushing the store at the end: {e}");
                    }
                    return;
                }
            }
            // Between requests the core holds no handle on the database:
            // the moment to bound what a crash would replay.
            if let Err(e) = self.core.store.checkpoint_if_due() {
                note_failure(&self.failed, &NodeError::from(e));
            }
            if let Some(why) = self.failure() {
                tracing::error!("the store cannot write ({why}); stopping the node");
                let _ = self.net.send(NetInput::StoreFailed(NodeError::Store(
                    crate::store::StoreError::Io {
                        during: "make writes durable",
                        detail: why,
                    },
                )));
                return;
            }
            self.reseal();
            self.core.publish_shared();
            let now = Instant::now();
            if now >= next_flush {
                self.flush_in_background();
                next_flush = now + self.flush_interval;
            }
            if now >= next_prune {
                self.core.limits.prune();
                if let Err(e) = self.core.prune_reports(now_ms()) {
                    tracing::warn!("pruning expired reports: {e}");
                }
                next_prune = now + PRUNE_EVERY;
            }
        }
    }

    /// Publishes reports sealed again since the last call, and starts
    /// sealing again the open reports the moderators now cannot all read
    /// ([`Core::take_reseal_jobs`]) on the blocking pool: each takes a
    /// proof of work, which must not hold up the core. One round at a
    /// time; the flag that asks for one stays set meanwhile.
    fn reseal(&mut self) {
        let mut slot = match self.resealed.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match slot.as_mut() {
            Some(done) if !done.is_empty() => {
                let sealed = std::mem::take(done);
                *slot = None;
                drop(slot);
                self.core.publish_resealed(sealed, now_ms());
                self.send_effects();
                return;
            }
            // Still sealing.
            Some(_) => return,
            None => {}
        }
        let jobs = self.core.take_reseal_jobs(now_ms());
        if jobs.is_empty() {
            return;
        }
        tracing::info!(
            "sealing {} open report(s) again for the moderators now",
            jobs.len()
        );
        *slot = Some(Vec::new());
        drop(slot);
        let out = Arc::clone(&self.resealed);
        self.runtime.spawn_blocking(move || {
            let mut sealed = Vec::with_capacity(jobs.len());
            for job in jobs {
                match job.seal() {
                    Ok(s) => sealed.push(s),
                    Err(e) => tracing::warn!("sealing a report again: {e}"),
                }
            }
            let mut slot = match out.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            // An empty round ends here; a full one is published next.
            *slot = if sealed.is_empty() {
                None
            } else {
                Some(sealed)
            };
        });
    }

    fn failure(&self) -> Option<String> {
        match self.failed.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn send_effects(&mut self) {
        let effects = self.core.take_effects();
        if !effects.is_empty() {
            let _ = self.net.send(NetInput::Effects(effects));
        }
    }

    fn handle(&mut self, request: CoreRequest) {
        if request.is_from_network() {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
        }
        let now = now_ms();
        match request {
            CoreRequest::Gossip {
                ticket,
                channel,
                data,
                source,
            } => {
                let verdict = self
                    .core
                    .gossip_arrived(channel.as_ref(), &data, &source, now);
                let _ = self.net.send(NetInput::Verdict { ticket, verdict });
            }
            CoreRequest::SyncWith { peer, topics } => self.core.sync_with(peer, topics),
            CoreRequest::SyncDecoded { peer, ticket, page } => {
                self.core.sync_decoded(&peer, ticket, page, now)
            }
            CoreRequest::SyncChecked { peer, ticket, page } => {
                self.core.sync_checked(&peer, ticket, page, now)
            }
            CoreRequest::SyncFailed { peer, ticket } => self.core.sync_failed(&peer, ticket),
            CoreRequest::PeerGone(peer) => self.core.peer_gone(&peer),
            CoreRequest::Call(job) => job(&mut self.core),
            CoreRequest::Write(job) => {
                let answer = job(&mut self.core);
                // The write's gossip waits for its flush.
                let effects = self.core.take_effects();
                let flusher = self.core.store.flusher();
                let net = self.net.clone();
                let failed = Arc::clone(&self.failed);
                self.runtime.spawn_blocking(move || {
                    let durable = flusher.flush().map_err(NodeError::from);
                    match &durable {
                        Ok(()) if !effects.is_empty() => {
                            let _ = net.send(NetInput::Effects(effects));
                        }
                        Ok(()) => {}
                        Err(e) => note_failure(&failed, e),
                    }
                    answer(durable);
                });
                return;
            }
            CoreRequest::Shutdown(_) => {}
        }
        self.send_effects();
    }

    /// The interval flush, for what arrived from the network: on a blocking
    /// thread, at most one at a time. A failed flush leaves the store dirty
    /// and is retried at the next tick.
    fn flush_in_background(&mut self) {
        if !(self.core.dirty || self.core.store.is_dirty())
            || self.interval_flush.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.core.dirty = false;
        let flusher = self.core.store.flusher();
        let running = Arc::clone(&self.interval_flush);
        let failed = Arc::clone(&self.failed);
        self.runtime.spawn_blocking(move || {
            if let Err(e) = flusher.flush() {
                tracing::error!("flushing the store: {e}");
                note_failure(&failed, &NodeError::from(e));
            }
            running.store(false, Ordering::Release);
        });
    }
}

fn note_failure(failed: &std::sync::Mutex<Option<String>>, e: &NodeError) {
    let mut g = match failed.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    g.get_or_insert_with(|| e.to_string());
}
