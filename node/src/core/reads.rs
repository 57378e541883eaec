//! Reading a topic, on tokio's blocking pool against a snapshot of the
//! core's shared state: a read of a million posts never holds up arrivals
//! or the event loop, and what it returns is streamed page by page through
//! a channel of one page, so a slow client stalls the reader instead of
//! growing memory.
//!
//! A read never shows a post of a blocked author, a hidden post (its notice
//! instead) or a retracted one, whatever is on disk: enforcement after a
//! crash may still be under way.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use protocol::sync::ItemKey;
use protocol::{ModerationState, PostId, PublicKey, SignedPost, TopicName};
use tokio::sync::mpsc;

use crate::api::PostView;
use crate::error::NodeError;
use crate::handle::{page_weight, ReadQuery, READ_PAGE_BYTES, READ_PAGE_POSTS};
use crate::store::Store;
use crate::views::{post_view, tombstone_view, AuthorNames, Tombstone};

use super::Shared;

/// Most posts one read returns: a whole large topic, while a typo such as
/// `--limit 99999999999` cannot ask for unbounded memory.
pub const MAX_READ_LIMIT: usize = 1_000_000;
/// Posts read from the store at a time.
const READ_PAGE: usize = 256;

/// A snapshot to read from: the store and the core's shared state.
#[derive(Clone)]
pub struct Reader {
    store: Store,
    shared: Shared,
    /// Who reads: shown their own posts held for approval.
    me: PublicKey,
}

/// What a read must leave out, taken once per read.
struct Filter {
    moderation: Arc<ModerationState>,
    mutes: Arc<BTreeSet<PublicKey>>,
    me: PublicKey,
}

impl Filter {
    /// Whether a stored post is shown: not muted, not blocked in its
    /// topic, not hidden, not retracted by its author.
    /// `id` is the post's id (hashing it again per check would cost a
    /// read of a million posts three hashes each).
    fn shows(&self, store: &Store, post: &SignedPost, id: &PostId) -> Result<bool, NodeError> {
        let p = &post.content;
        if self.muted(&p.author) {
            return Ok(false);
        }
        let m = &self.moderation;
        if m.is_blocked(&p.author, &p.topic).is_some() || m.hidden(id).is_some() {
            return Ok(false);
        }
        if !super::probation::shown_to(m, &self.me, id, p) {
            return Ok(false);
        }
        Ok(!store.is_retracted_by(id, &p.author)?)
    }

    /// Whether a hidden post's notice is shown: a rejected post's only
    /// to its author (nobody else ever saw it).
    fn shows_notice(&self, t: &Tombstone) -> bool {
        self.moderation.rejected(&t.id).is_none()
            || self.moderation.lineage().same(&t.author, &self.me)
    }

    fn muted(&self, author: &PublicKey) -> bool {
        super::local::is_muted(&self.mutes, &self.moderation, author)
    }

    /// How authors are shown, for one read or one post.
    fn names<'a>(&'a self, store: &'a Store) -> AuthorNames<'a> {
        AuthorNames::new(store, &self.moderation)
    }
}

impl Reader {
    pub(crate) fn new(store: Store, shared: Shared, me: PublicKey) -> Reader {
        Reader { store, shared, me }
    }

    fn filter(&self) -> Filter {
        Filter {
            moderation: self.shared.moderation(),
            mutes: self.shared.mutes(),
            me: self.me,
        }
    }

    /// One post as a read would show it (its notice when hidden), or
    /// `None` when a read would not show it (unknown, retracted, blocked,
    /// muted). For clients that show a single post (the web app's report
    /// queue and live notices).
    pub fn post(&self, id: &PostId) -> Result<Option<PostView>, NodeError> {
        let filter = self.filter();
        if let Some(post) = self.store.get_post(id)? {
            if filter.shows(&self.store, &post, id)? {
                return Ok(Some(post_view(&post, &mut filter.names(&self.store))));
            }
        }
        if let Some(t) = self
            .store
            .tombstone_of(id)?
            .and_then(|b| Tombstone::decode(&b))
        {
            let gone = filter.moderation.is_blocked(&t.author, &t.topic).is_some()
                || filter.muted(&t.author)
                || !filter.shows_notice(&t)
                || self.store.is_retracted_by(&t.id, &t.author)?;
            if !gone && filter.moderation.hidden(&t.id).is_some() {
                return Ok(Some(tombstone_view(&t, &mut filter.names(&self.store))));
            }
        }
        Ok(None)
    }

    /// The newest `limit` posts (at most [`MAX_READ_LIMIT`]) created at or
    /// after `since`, oldest first, as one list.
    pub fn read(&self, topic: &TopicName, q: &ReadQuery) -> Result<Vec<PostView>, NodeError> {
        let mut out = Vec::new();
        self.read_pages(topic, q, |page| {
            out.extend(page);
            true
        })?;
        Ok(out)
    }

    /// The same posts as [`Reader::read`], handed to `each` a page at a
    /// time; `each` returns false to stop.
    pub fn read_pages(
        &self,
        topic: &TopicName,
        q: &ReadQuery,
        mut each: impl FnMut(Vec<PostView>) -> bool,
    ) -> Result<(), NodeError> {
        let limit = q.limit.clamp(1, MAX_READ_LIMIT);
        let since = q.since_ms.unwrap_or(0);
        let filter = self.filter();
        let mut names = filter.names(&self.store);
        // Hidden posts' notices of the range (few; their bodies dropped).
        let mut notices: Vec<(ItemKey, PostView)> = Vec::new();
        for (key, bytes) in self.store.tombstones_page(topic, None, limit)? {
            if let Some(t) = Tombstone::decode(&bytes) {
                // A notice goes with its post: not for a blocked author or
                // a post its author retracted.
                let gone = filter.moderation.is_blocked(&t.author, &t.topic).is_some()
                    || !filter.shows_notice(&t)
                    || self.store.is_retracted_by(&t.id, &t.author)?;
                if t.created_at >= since && !filter.muted(&t.author) && !gone {
                    notices.push((key, tombstone_view(&t, &mut names)));
                }
            }
        }
        notices.sort_by_key(|n| n.0);
        // Walk back newest-first, a page at a time, to find where the
        // newest `limit` shown posts start (nothing kept but a count).
        let mut shown = 0usize;
        let mut start: Option<ItemKey> = None;
        let mut before: Option<ItemKey> = None;
        // Pages no longer than the read: each post read is opened (the
        // store is encrypted at rest), so a read of the newest 50 opens
        // about 50 here, not a whole page of 256.
        let back_page = limit.min(READ_PAGE);
        'back: loop {
            let page = self.store.topic_page(topic, before, back_page)?;
            if page.is_empty() {
                break;
            }
            for post in &page {
                let key = key_of(post);
                before = Some(key);
                if post.content.created_at < since {
                    break 'back;
                }
                if filter.shows(&self.store, post, &PostId(key.id))? {
                    shown += 1;
                    start = Some(key);
                    if shown + notices_after(&notices, &key) >= limit {
                        break 'back;
                    }
                }
            }
            if page.len() < back_page {
                break;
            }
        }
        // Notices older than the first post shown are left out when the
        // limit is reached; otherwise every notice since `since` is in.
        let first = if shown + notices.len() > limit {
            start
        } else {
            None
        };
        let mut notices: std::collections::VecDeque<(ItemKey, PostView)> = notices
            .into_iter()
            .filter(|(k, _)| first.is_none_or(|f| *k >= f))
            .collect();
        // Then stream forward from there.
        let mut after = start.map(|k| predecessor(&k));
        let mut sent = 0usize;
        loop {
            let posts = self.store.topic_after(topic, after, READ_PAGE)?;
            let exhausted = posts.len() < READ_PAGE;
            let mut page: Vec<(ItemKey, PostView)> = Vec::new();
            let mut bytes = 0usize;
            for post in &posts {
                let key = key_of(post);
                after = Some(key);
                if post.content.created_at < since
                    || !filter.shows(&self.store, post, &PostId(key.id))?
                {
                    continue;
                }
                while notices.front().is_some_and(|(k, _)| *k < key) {
                    if let Some(n) = notices.pop_front() {
                        page.push(n);
                    }
                }
                let view = post_view(post, &mut names);
                bytes += page_weight(&view);
                page.push((key, view));
                if bytes >= READ_PAGE_BYTES {
                    break;
                }
            }
            let cut_short = bytes >= READ_PAGE_BYTES;
            if exhausted && !cut_short {
                page.extend(notices.drain(..));
            }
            let mut views: Vec<PostView> = page.into_iter().map(|(_, v)| v).collect();
            let room = limit.saturating_sub(sent);
            views.truncate(room);
            sent += views.len();
            let views = parents_first(views);
            if !views.is_empty() && !each(views) {
                return Ok(());
            }
            if sent >= limit || (exhausted && !cut_short) {
                return Ok(());
            }
        }
    }

    /// Streams a read into a channel of one page (see the module docs),
    /// on the blocking pool.
    pub fn stream(
        self,
        topic: TopicName,
        query: ReadQuery,
    ) -> mpsc::Receiver<Result<Vec<PostView>, NodeError>> {
        let (tx, rx) = mpsc::channel(1);
        tokio::task::spawn_blocking(move || {
            let result = self.read_pages(&topic, &query, |page| {
                for chunk in pages_of(page) {
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        return false;
                    }
                }
                true
            });
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        rx
    }
}

/// Cuts a page into pages of at most [`READ_PAGE_POSTS`] posts and
/// [`READ_PAGE_BYTES`] bytes (each holds at least one post).
fn pages_of(views: Vec<PostView>) -> Vec<Vec<PostView>> {
    let mut out: Vec<Vec<PostView>> = Vec::new();
    let mut current: Vec<PostView> = Vec::new();
    let mut bytes = 0;
    for v in views {
        let w = page_weight(&v);
        if !current.is_empty() && (current.len() >= READ_PAGE_POSTS || bytes + w > READ_PAGE_BYTES)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += w;
        current.push(v);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn key_of(post: &SignedPost) -> ItemKey {
    ItemKey {
        created_at: post.content.created_at,
        id: post.id().0,
    }
}

/// Notices at or after `key`, counted toward the limit (`notices` is
/// sorted by key).
fn notices_after(notices: &[(ItemKey, PostView)], key: &ItemKey) -> usize {
    notices.len() - notices.partition_point(|(k, _)| k < key)
}

/// The greatest key smaller than `key` (so that "after" it includes it).
fn predecessor(key: &ItemKey) -> ItemKey {
    let mut id = key.id;
    for b in id.iter_mut().rev() {
        if *b > 0 {
            *b -= 1;
            return ItemKey {
                created_at: key.created_at,
                id,
            };
        }
        *b = 0xff;
    }
    ItemKey {
        created_at: key.created_at.saturating_sub(1),
        id: [0xff; 32],
    }
}

/// Puts each post after its parent when both are in the page (a reply
/// whose author's clock was behind may be dated before its parent); the
/// order is otherwise kept.
fn parents_first(views: Vec<PostView>) -> Vec<PostView> {
    let ids: HashSet<String> = views.iter().map(|v| v.id.clone()).collect();
    let mut waiting: HashMap<String, Vec<PostView>> = HashMap::new();
    let mut out = Vec::with_capacity(views.len());
    let mut emitted: HashSet<String> = HashSet::new();
    for v in views {
        match &v.parent {
            Some(p) if ids.contains(p) && !emitted.contains(p) => {
                waiting.entry(p.clone()).or_default().push(v);
            }
            _ => emit(v, &mut out, &mut emitted, &mut waiting),
        }
    }
    // Cycles cannot happen (ids are hashes), but nothing is ever dropped.
    for (_, rest) in waiting {
        out.extend(rest);
    }
    out
}

fn emit(
    v: PostView,
    out: &mut Vec<PostView>,
    emitted: &mut HashSet<String>,
    waiting: &mut HashMap<String, Vec<PostView>>,
) {
    let id = v.id.clone();
    emitted.insert(id.clone());
    out.push(v);
    if let Some(children) = waiting.remove(&id) {
        for c in children {
            emit(c, out, emitted, waiting);
        }
    }
}

impl super::Core {
    /// A snapshot to read from on another thread.
    pub fn reader(&self) -> Reader {
        Reader::new(self.store.clone(), self.shared(), self.identity.public())
    }
}
