//! What every part needs: a community with data directories, signed posts
//! prepared in parallel before any timer starts, nodes on 127.0.0.1, and
//! small measuring helpers.

use std::path::Path;
use std::time::{Duration, Instant};

use node::{DataDir, NodeConfig, NodeHandle, ReadQuery};
use protocol::post::Draft;
use protocol::{
    CommunityId, Identity, Post, SignedManifest, SignedPost, TopicName, ValidationContext,
    VerifiedPost,
};
use tempfile::TempDir;

/// A community and the data directories of its nodes, under one temporary
/// directory (removed on drop).
pub(crate) struct Community {
    /// Holds every data directory.
    pub(crate) root: TempDir,
    /// The admin's data directory.
    pub(crate) admin: DataDir,
    /// The community manifest.
    pub(crate) manifest: SignedManifest,
    /// The community id.
    pub(crate) id: CommunityId,
    next: usize,
}

impl Community {
    /// A new community whose admin is the first data directory.
    pub(crate) fn new() -> anyhow::Result<Community> {
        let root = tempfile::Builder::new().prefix("mutual-bench").tempdir()?;
        let admin = DataDir::new(root.path().join("node0"));
        admin.init(Some("admin".into()))?;
        let manifest = admin.create_community("Bench circle", "Be kind.", node::now_ms())?;
        let id = manifest.id();
        Ok(Community {
            root,
            admin,
            manifest,
            id,
            next: 1,
        })
    }

    /// The community secret (the admin's node made it).
    pub(crate) fn admin_secret(&self) -> anyhow::Result<protocol::CommunitySecret> {
        self.admin
            .community_secret()?
            .ok_or_else(|| anyhow::anyhow!("the community has no secret"))
    }

    /// A new member data directory that joined the community.
    pub(crate) fn member(&mut self) -> anyhow::Result<DataDir> {
        let dir = DataDir::new(self.root.path().join(format!("node{}", self.next)));
        self.next += 1;
        dir.init(Some(format!("member{}", self.next - 1)))?;
        dir.join_community(&self.manifest, &self.admin_secret()?, &[], node::now_ms())?;
        Ok(dir)
    }

    /// The admin's identity.
    pub(crate) fn admin_identity(&self) -> anyhow::Result<Identity> {
        Ok(self.admin.identity()?)
    }

    /// A validation context at the current time.
    pub(crate) fn ctx(&self) -> ValidationContext {
        ValidationContext {
            community: self.id,
            now_ms: node::now_ms(),
        }
    }
}

/// The topic every part posts in.
pub(crate) fn topic() -> TopicName {
    TopicName::parse("bench").unwrap_or_else(|e| panic!("the bench topic name is valid: {e}"))
}

/// `n` author identities with pseudonyms.
pub(crate) fn authors(n: usize) -> Vec<Identity> {
    (0..n)
        .map(|i| Identity::generate(Some(format!("author {i}"))))
        .collect()
}

/// A post body of a realistic size for a support conversation (about
/// 250–400 bytes), different for every `i`.
fn body(i: usize) -> String {
    const TEXT: &str = "Thank you for sharing this. I went through something similar last \
        winter: the first weeks back at work were the hardest, and what helped me most was \
        telling one colleague what was going on and keeping my evenings free of anything \
        that felt like an obligation. Be gentle with yourself; it does get lighter.";
    let cut = 200 + (i * 37) % (TEXT.len() - 200);
    let end = (cut..=TEXT.len())
        .find(|c| TEXT.is_char_boundary(*c))
        .unwrap_or(TEXT.len());
    format!("#{i} {}", &TEXT[..end])
}

/// Runs `f` on `0..n` split across every core, keeping the order.
pub(crate) fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(1);
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| {
                s.spawn(move || (start..(start + chunk).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a worker thread panicked"))
            })
            .collect()
    })
}

/// `n` signed posts in `topic`, post `i` by `authors[i % len]` created at
/// `start_ms + i * step_ms`. Signed on every core; not timed.
pub(crate) fn signed_posts(
    community: CommunityId,
    topic: &TopicName,
    authors: &[Identity],
    n: usize,
    start_ms: u64,
    step_ms: u64,
) -> Vec<SignedPost> {
    signed_posts_from(community, topic, authors, 0..n, start_ms, step_ms)
}

/// Posts `range` of the sequence [`signed_posts`] makes.
pub(crate) fn signed_posts_from(
    community: CommunityId,
    topic: &TopicName,
    authors: &[Identity],
    range: std::ops::Range<usize>,
    start_ms: u64,
    step_ms: u64,
) -> Vec<SignedPost> {
    let first = range.start;
    par_map(range.len(), |j| {
        let i = first + j;
        let author = &authors[i % authors.len()];
        Post::write(
            author,
            community,
            topic.clone(),
            Draft {
                body: body(i),
                ..Draft::default()
            },
            start_ms + i as u64 * step_ms,
        )
        .unwrap_or_else(|e| panic!("a bench post is valid: {e}"))
    })
}

/// Verifies posts on every core (to fill stores directly); not timed.
pub(crate) fn verified(posts: &[SignedPost], ctx: &ValidationContext) -> Vec<VerifiedPost> {
    par_map(posts.len(), |i| {
        posts[i]
            .clone()
            .verify(ctx)
            .unwrap_or_else(|e| panic!("a bench post verifies: {e}"))
    })
}

/// Writes verified posts straight into the store of `data` and joins
/// `topic` there, before any node runs on it: the fast way to a large
/// store. Returns how many were stored.
pub(crate) fn fill_store(
    data: &DataDir,
    topic: &TopicName,
    posts: &[VerifiedPost],
) -> anyhow::Result<u64> {
    let store = node::store::Store::open(&data.store_path(), data.store_keys()?)?;
    store.join_topic(topic)?;
    let mut stored = 0;
    for p in posts {
        if store.insert_post(p)? {
            stored += 1;
        }
    }
    store.flush()?;
    Ok(stored)
}

/// Settings of a bench node: loopback only, no mDNS, no per-author limit
/// unless the part measures it.
pub(crate) fn config(data: DataDir, bootstrap: Vec<String>) -> NodeConfig {
    let mut c = NodeConfig::local(data);
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    c.mdns = false;
    c.bootstrap = bootstrap;
    c.author_posts_per_minute = usize::MAX;
    c
}

/// A node running in this process.
pub(crate) struct BenchNode {
    /// Its handle.
    pub(crate) handle: NodeHandle,
    /// Its event loop.
    pub(crate) task: tokio::task::JoinHandle<Result<(), node::NodeError>>,
    /// A dialable address with `/p2p/<peer id>`.
    pub(crate) addr: String,
}

impl BenchNode {
    /// Starts a node.
    pub(crate) async fn start(config: NodeConfig) -> anyhow::Result<BenchNode> {
        let running = node::start(config).await?;
        let id = running.handle.id().await?;
        let addr = id
            .listen_addrs
            .iter()
            .find(|a| a.contains("/tcp/"))
            .map(|a| format!("{a}/p2p/{}", id.peer_id))
            .ok_or_else(|| anyhow::anyhow!("the node has no TCP address"))?;
        Ok(BenchNode {
            handle: running.handle,
            task: running.task,
            addr,
        })
    }

    /// Stops the node and waits for its flush.
    pub(crate) async fn stop(self) {
        let _ = self.handle.shutdown().await;
        let _ = self.task.await;
    }

    /// Post count of `topic` (the store's O(1) counter).
    pub(crate) async fn count(&self, topic: &TopicName) -> u64 {
        self.handle
            .topics()
            .await
            .map(|ts| {
                ts.iter()
                    .filter(|t| t.name == topic.as_str())
                    .map(|t| t.posts)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Reads the newest `limit` posts of `topic`.
    pub(crate) async fn read(&self, topic: &TopicName, limit: usize) -> anyhow::Result<usize> {
        Ok(self
            .handle
            .read(
                topic.clone(),
                ReadQuery {
                    limit,
                    since_ms: None,
                },
            )
            .await?
            .len())
    }
}

/// Polls `check` every `every` until it holds, or fails after `deadline`
/// naming what was awaited. Returns the time waited.
pub(crate) async fn wait_until<F, Fut>(
    deadline: Duration,
    every: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= deadline {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// A field of /proc/self/status in KiB (`VmHWM`, `VmRSS`).
pub(crate) fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The `q`-quantile (0..=1) of sorted values.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Seconds as milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Bytes on disk under a directory.
pub(crate) fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// CPU time the calling thread has run so far (ns resolution).
pub(crate) fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// CPU time of the whole process so far, user and system, every thread
/// (in 10 ms ticks).
pub(crate) fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of stat(5); clock ticks of 10 ms on Linux.
    Duration::from_millis((tick(11) + tick(12)) * 10)
}

/// Wall and CPU time of a measured stretch. On a busy machine the wall
/// time stretches with other programs' work; the CPU time much less.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// Elapsed time.
    pub(crate) wall: Duration,
    /// CPU time of the thread (single-threaded loops) or the process.
    pub(crate) cpu: Duration,
}

impl Timing {
    /// `n` per second of wall time.
    pub(crate) fn rate(&self, n: usize) -> f64 {
        n as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    /// `n` per second of CPU time.
    pub(crate) fn cpu_rate(&self, n: usize) -> f64 {
        n as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

/// Runs `f` on this thread and times it (thread CPU time).
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, Timing) {
    let cpu = thread_cpu();
    let t = Instant::now();
    let out = f();
    let wall = t.elapsed();
    (
        out,
        Timing {
            wall,
            cpu: thread_cpu().saturating_sub(cpu),
        },
    )
}

/// Starts timing work spread over the process's threads.
pub(crate) struct ProcessTimer {
    wall: Instant,
    cpu: Duration,
}

impl ProcessTimer {
    /// Starts now.
    pub(crate) fn start() -> ProcessTimer {
        ProcessTimer {
            wall: Instant::now(),
            cpu: process_cpu(),
        }
    }
    /// Time since the start (process CPU time).
    pub(crate) fn stop(&self) -> Timing {
        Timing {
            wall: self.wall.elapsed(),
            cpu: process_cpu().saturating_sub(self.cpu),
        }
    }
}

/// How often a probe asks an event loop for an answer.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(10);

/// Asks event loops a command only they answer (`handle.id()`), one after
/// another, waiting [`PROBE_EVERY`] after each answer, and times each
/// answer: the queueing delay every gossip message, sync frame and
/// connection event handled by those loops also meets. Probes run one at a
/// time, so a stall of the loop shows once (in the maximum), not once per
/// probe it held up.
pub(crate) struct Probe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: Option<tokio::task::JoinHandle<Vec<f64>>>,
    started: Instant,
}

/// What a probe measured.
pub(crate) struct Answers {
    /// Answer times in ms, sorted.
    pub(crate) sorted_ms: Vec<f64>,
    /// How long the probe ran.
    pub(crate) window: Duration,
}

impl Probe {
    /// Starts probing `handles` in turn, on the current tokio runtime.
    pub(crate) fn start(handles: Vec<NodeHandle>) -> Probe {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            let mut k = 0usize;
            // At least one probe, however short the stretch measured.
            while let Some(h) = handles.get(k % handles.len().max(1)) {
                k += 1;
                let t = Instant::now();
                // A node that stopped answers no more.
                if h.id().await.is_err() {
                    break;
                }
                out.push(ms(t.elapsed()));
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
            out
        });
        Probe {
            stop,
            task: Some(task),
            started: Instant::now(),
        }
    }

    /// Stops the probe (after the probe in flight) and returns its answers.
    pub(crate) async fn stop(mut self) -> anyhow::Result<Answers> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let window = self.started.elapsed();
        let mut sorted_ms = match self.task.take() {
            Some(task) => task.await?,
            None => Vec::new(),
        };
        sorted_ms.sort_by(f64::total_cmp);
        Ok(Answers { sorted_ms, window })
    }
}

impl Drop for Probe {
    /// A probe dropped unstopped (a part failed) stops after its next answer.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Answers {
    /// The `q`-quantile in ms.
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        quantile(&self.sorted_ms, q)
    }

    /// The longest answer in ms.
    pub(crate) fn max(&self) -> f64 {
        self.sorted_ms.last().copied().unwrap_or(f64::NAN)
    }

    /// Adds the p50, p99 (against `target`, if any) and max rows of these
    /// answers, measured `during` something; `note` goes on the p50 row.
    pub(crate) fn report(
        &self,
        report: &mut crate::report::Report,
        part: &str,
        during: &str,
        target: Option<&str>,
        note: &str,
    ) {
        let measure = |q: &str| format!("event loop answer time {during}, {q}");
        report
            .add(part, &measure("p50"), self.quantile(0.5), "ms")
            .note(format!(
                "handle.id() (answered by the event loop alone) every {} ms from a probe task, {} probes over {:.1} s; {note}",
                PROBE_EVERY.as_millis(),
                self.sorted_ms.len(),
                self.window.as_secs_f64()
            ));
        let p99 = report.add(part, &measure("p99"), self.quantile(0.99), "ms");
        if let Some(t) = target {
            p99.target(t);
        }
        report
            .add(part, &measure("max"), self.max(), "ms")
            .note("probes run one at a time: a stall of the loop shows here once");
    }
}
