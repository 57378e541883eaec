//! The local control socket: how the `mutual` command, or any other program
//! of the same user, talks to a running node.
//!
//! # Transport
//!
//! A Unix stream socket at `<data dir>/mutual.sock` (see
//! [`crate::DataDir::socket_path`]), mode 0600 inside the 0700 data
//! directory, so only the user who runs the node can connect. At start, a
//! socket file that no node answers on (left by a crash) is removed; if a
//! node answers, the new one refuses to start with "a mutual node is already
//! running for <dir>".
//!
//! # Framing
//!
//! Newline-delimited JSON in UTF-8. The client sends one request per line
//! and reads the response line (or lines, for a streamed `read`) of each
//! request; a connection may carry several requests in turn. A request line
//! is at most [`MAX_REQUEST_BYTES`] (64 KiB); a longer one is answered with
//! an error line and the connection is closed. A line that is not a valid
//! request is answered with an error line and the connection stays open.
//!
//! # Slots and time limits
//!
//! The node serves at most [`MAX_CONNECTIONS`] request connections at once;
//! more wait to be accepted. So that clients which connect and then say
//! nothing cannot keep the others out, each request line must arrive whole
//! within [`REQUEST_LINE_TIMEOUT`] (10 s) of the node starting to wait for
//! it (also between requests on one connection); otherwise the node writes
//! an error line if it can and closes the connection. A reply (or one page
//! of a streamed reply) the client does not take within
//! [`REPLY_WRITE_TIMEOUT`] closes the connection too. A `follow` gives its
//! request slot back once it is acknowledged and holds one of
//! [`MAX_FOLLOWERS`] follow slots instead, for as long as it runs; when
//! they are all taken, `follow` is refused with an error line.
//!
//! A request that changes anything (every request but `id`, `community`,
//! `topics`, `read`, `peers`, `status`, `invite`, `mod_list`, `mod_queue`
//! and `follow`) whose client has hung up (closed its end entirely, as a
//! client killed while it waited for a slot has) by the time the node is
//! about to carry it out is dropped unanswered: a `post` the user gave up
//! on is not published later. A client that only shuts down its writing
//! side after its request (`socat`, say) still gets its answer. The check
//! is made just before the request is carried out; a client that hangs up
//! after that (while a post is signed and stored, say) does not stop it.
//!
//! Clients should have time limits of their own: [`request`] waits
//! [`Request::reply_timeout`] for each line of the answer and then gives up
//! with [`ControlError::Timeout`], which says what it waited for.
//!
//! # Requests
//!
//! Each request is a JSON object whose `cmd` field names it; the other
//! fields are its arguments. Fields marked `?` may be left out (or `null`).
//! Topic names are normalised as `TopicName::parse` does; post ids may be
//! full (`mp1…`) or short (the 11-character form `read` prints), or the id
//! of a report in `mod_queue` (full or short), which names its post; keys
//! are printable author keys (`mu1…`) or the 8-character fingerprint that
//! commands print next to a pseudonym (with or without `mu1`), resolved
//! among the keys the node knows. An ambiguous short form is refused with
//! the candidates listed.
//!
//! | `cmd` | fields | `result` |
//! |---|---|---|
//! | `id` | | `IdView`: `{author, name, peer_id, listen_addrs}` |
//! | `community` | | `CommunityView`: `{name, id, admin, rules, created_at}` |
//! | `join` | `topic` | `null` |
//! | `leave` | `topic`, `forget?` (default `false`) | `null`; with `forget`: `{posts, tombstones}` deleted from this node's store |
//! | `topics` | | `[TopicView]`: `[{name, posts}]` |
//! | `post` | `topic`, `body`, `reply_to?`, `cw?` | `{"id": full post id}` |
//! | `read` | `topic`, `limit?` (default 50), `since_ms?`, `stream?` (default `false`) | `[PostView]`, oldest first (streamed: see below) |
//! | `retract` | `post` | `null` |
//! | `report` | `post`, `reason` | `{"id": report id}` |
//! | `mute` | `author` | `null` |
//! | `unmute` | `author` | `null` |
//! | `peers` | | `[PeerView]`: `[{peer_id, addrs}]` |
//! | `status` | | `StatusView`: `{community, community_id, peers, topics, posts, store_bytes, sync, community_peers, damage}` (`damage`: `null`, or `{"Lost": [{scope, acknowledged, held}]}` / `{"RecordUnreadable": why}`) |
//! | `invite` | | `{"invite": invite code}` (in an invite-only community an invitation as `invite_issue`) |
//! | `invite_issue` | `uses?` (1), `expires_in_ms?` (7 days) | `{"invite", "invitation"?, "uses"?, "expires_at"?}` (the invitation fields in an invite-only community) |
//! | `invite_revoke` | `invitation` (key, full or short) | `{"id": action id}` |
//! | `invite_list` | | `[InvitationView]` (moderators only) |
//! | `mod_lockdown` | `topic?`, `hold_recent_days?`, `reason` | `{"id": action id}` |
//! | `mod_lift` | `topic?` | `{"id": action id}` |
//! | `community_update` | `rules?`, `admission?` (`open`/`invite-only`), `probation_posts?` | `{"id": action id, "version": n}` (admin only) |
//! | `mod_appoint` | `key` | `{"id": action id}` |
//! | `mod_revoke` | `key` | `{"id": action id}` |
//! | `mod_block` | `author`, `topic?` (none: the whole community), `reason?` | `{"id": action id}` |
//! | `mod_unblock` | `author`, `topic?` | `{"id": action id}` |
//! | `mod_hide` | `post`, `reason?` | `{"id": action id}` |
//! | `mod_unhide` | `post` | `{"id": action id}` |
//! | `mod_pin` | `post` | `{"id": action id}` |
//! | `mod_unpin` | `post` | `{"id": action id}` |
//! | `mod_list` | | `ModListView`: `{admin, moderators, blocks, hidden, pinned, log}` |
//! | `mod_queue` | | `[ReportView]`: `[{id, post, reporter, reason, at}]` |
//! | `mod_held` | | `[PostView]`: posts waiting for approval in the joined topics, oldest first (empty unless this node is the admin or a moderator) |
//! | `mod_approve` | `post` | `{"id": action id}` (a post waiting for approval) |
//! | `mod_reject` | `post`, `reason?` | `{"id": action id}` (a post waiting for approval) |
//! | `mod_resolve` | `report`, `outcome` (`hidden`, `blocked` or `none`), `note?` | `{"id": action id}` |
//! | `topic_directory` | | `[DirectoryEntryView]`: `[{topic, description, joined, by, at}]` |
//! | `describe_topic` | `topic`, `description` (empty: remove the entry) | `{"id": action id}` |
//! | `mod_queue` | | `[ReportView]`: `[{id, post, reporter, reason, at, reported}]` (`reported`: `null`, or `{topic, author, body}` when the node holds the post) |
//! | `sync` | | `null` (a sync round with every connected peer has started) |
//! | `connect` | `addr` (a multiaddress) | `ConnectView`: `{peer_id, address, already_connected}`, once connected (at most 20 s) |
//! | `shutdown` | | `null` (the node flushes its store and stops) |
//! | `follow` | `topic`, `events?` (default `false`) | `null`, then a stream (below) |
//!
//! The views are the types of [`crate::api`], serialised with their field
//! names; times are ms since the Unix epoch. A `PostView` is `{id, topic,
//! author, author_name, created_at, parent, content_warning, body, hidden,
//! hidden_by, hidden_reason, pinned, held, rejected}`, where `hidden_by` is
//! `null` or `{key, name}`; `held`: it waits for a moderator's approval
//! (only its author and moderators are shown it); `rejected`: a moderator
//! rejected it (only its author is shown its notice).
//!
//! Example: `{"cmd": "post", "topic": "burnout", "body": "hello"}`.
//!
//! # Responses
//!
//! Exactly one line per request, except a streamed `read`:
//!
//! - `{"ok": true, "result": <result>}`, or
//! - `{"ok": false, "error": "<one sentence a person can act on>"}`.
//!
//! Moderation requests by an identity that may not take them are refused
//! by the node before anything is signed or published.
//!
//! # Reads
//!
//! The node never holds a whole `read` reply: it writes it page by page
//! (pages of [`crate::handle::READ_PAGE_POSTS`] posts and
//! [`crate::handle::READ_PAGE_BYTES`] bytes at most), fetching the next
//! page only once the client has taken the last.
//!
//! - With `"stream": true` the answer is several lines: zero or more pages
//!   `{"ok": true, "more": true, "result": [PostView, …]}`, then one final
//!   envelope without `more`: `{"ok": true, "result": []}` after the last
//!   page, or `{"ok": false, "error": …}` if the read failed (before or
//!   between pages). Concatenated in order, the pages' results are the
//!   posts, oldest first. Each line is small, so a client can show or
//!   store posts as they come.
//! - Without it, the answer is the one line `{"ok": true, "result":
//!   [PostView, …]}` as before, written in pieces; a read that fails after
//!   its first piece was written ends with the connection closed before the
//!   line's newline (a client sees a cut-off line, never a wrong one).
//!
//! # Follow
//!
//! `follow` answers `{"ok": true, "result": null}` once it is subscribed,
//! then writes one line for each change of the topic from then on, until
//! the client closes the connection. With `"events": true`, each line is an
//! object whose `event` field says what it is:
//!
//! - `{"event": "post", "post": PostView}`: a post this node stored, from
//!   anyone including itself, that a `read` would show (posts of muted
//!   authors are left out);
//! - `{"event": "removed", "id", "topic", "reason"}`: a post left the
//!   topic; `reason` is `"retracted"` (by its author), `"hidden"` (by a
//!   moderator) or `"blocked"` (a moderator blocked its author);
//! - `{"event": "restored", "post": PostView}`: a hidden post is shown
//!   again;
//! - `{"event": "pin", "id", "topic", "pinned"}`: a moderator pinned
//!   (`true`) or unpinned (`false`) a post;
//! - `{"event": "lagged", "missed": n}`: the follower fell behind and `n`
//!   events were lost (a `read` shows the topic as it is).
//!
//! Without `events` (older clients), only new posts are written, each as
//! the bare `PostView` object.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocol::moderation::{ModActionKind, ReportOutcome, Scope};
use protocol::post::Draft;
use protocol::{PostId, PublicKey, TopicName};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};

use crate::api::PostView;
use crate::datadir::set_mode;
use crate::error::NodeError;
use crate::handle::{NodeEvent, NodeHandle, ReadQuery, RemovalReason};

/// Largest request line in bytes. The largest honest request is a post: an
/// 8 KiB body and a 200-byte warning, which JSON escaping can at worst
/// multiply by six (`\u00XX` per byte of control characters), about 50 KiB;
/// 64 KiB admits every valid post and bounds what one client can make the
/// node buffer.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Largest response line a client accepts. A streamed `read` comes in small
/// pages, but a one-line `read` or a long moderation log can be tens of
/// megabytes; this bound only stops a broken peer from making the client
/// buffer without end.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024 * 1024;

/// Most request connections served at once; more wait to be accepted.
/// Local clients are short-lived, and a bound keeps a runaway script from
/// exhausting the node's file descriptors.
pub const MAX_CONNECTIONS: usize = 64;

/// Most `follow` streams at once. They have slots of their own, so open
/// `read --follow` screens never keep `status` or `post` out; beyond this
/// many, `follow` is refused with a message.
pub const MAX_FOLLOWERS: usize = 64;

/// How long the node waits for a whole request line (the first on a
/// connection, and each next one) before it closes the connection: a
/// client that connects and says nothing gives its slot back.
pub const REQUEST_LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a reply (or one page of a streamed reply) may wait for the
/// client to take it before the node closes the connection: a client that
/// asks and never reads gives its slot back.
pub const REPLY_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client waits for each line of an answer by default
/// ([`Request::reply_timeout`]): far above what any request takes on a
/// healthy node, short enough that a person is told what is wrong.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a client waits for `shutdown` to be answered: the node flushes
/// its store first, which can take a while on a big store.
pub const SHUTDOWN_REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Posts a `read` returns when the request names no limit.
pub const DEFAULT_READ_LIMIT: usize = 50;

/// One request to the node; see the module documentation for the wire form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Who this node is.
    Id,
    /// The community and its rules.
    Community,
    /// Join a topic.
    Join {
        /// Topic name.
        topic: String,
    },
    /// Leave a topic.
    Leave {
        /// Topic name.
        topic: String,
        /// Also delete the topic's posts from this node's store.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        forget: bool,
    },
    /// Joined topics with post counts.
    Topics,
    /// Publish a post.
    Post {
        /// Topic name.
        topic: String,
        /// The text.
        body: String,
        /// Full or short id of the post replied to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
        /// Content warning.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cw: Option<String>,
    },
    /// Read a topic.
    Read {
        /// Topic name.
        topic: String,
        /// At most this many posts, the newest (default 50).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        /// Only posts created at or after this time, ms since the Unix epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_ms: Option<u64>,
        /// Answer in pages, one line each (see "Reads" in the module
        /// documentation); the default is one line.
        #[serde(default, skip_serializing_if = "is_false")]
        stream: bool,
    },
    /// Retract one of this identity's own posts.
    Retract {
        /// Full or short post id.
        post: String,
    },
    /// Report a post to the moderators.
    Report {
        /// Full or short post id.
        post: String,
        /// Why.
        reason: String,
    },
    /// Hide an author from this node's reads.
    Mute {
        /// Author key.
        author: String,
    },
    /// Undo a mute.
    Unmute {
        /// Author key.
        author: String,
    },
    /// Connected peers.
    Peers,
    /// The node at a glance.
    Status,
    /// An invite code.
    Invite,
    /// Admin: appoint a moderator.
    ModAppoint {
        /// The new moderator's key.
        key: String,
    },
    /// Admin: revoke a moderator.
    ModRevoke {
        /// The moderator's key.
        key: String,
    },
    /// Admin: name a co-admin (`add`) or remove one (who stays a
    /// moderator).
    ModCoAdmin {
        /// The co-admin's key.
        key: String,
        /// Name (true) or remove (false).
        add: bool,
    },
    /// Moderator: block an author.
    ModBlock {
        /// Author key.
        author: String,
        /// Only in this topic (default: the whole community).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Moderator: lift a block.
    ModUnblock {
        /// Author key.
        author: String,
        /// The topic of a topic block (default: the community block).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
    /// Moderator: hide a post.
    ModHide {
        /// Full or short post id.
        post: String,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Moderator: lift a hide.
    ModUnhide {
        /// Full or short post id.
        post: String,
    },
    /// Moderator: pin a post.
    ModPin {
        /// Full or short post id.
        post: String,
    },
    /// Moderator: unpin a post.
    ModUnpin {
        /// Full or short post id.
        post: String,
    },
    /// Key succession: sign a succession to this key (which the client
    /// keeps in the data directory first) and sign with it from now on.
    Succeed {
        /// The new secret key.
        key: crate::succession::SecretSeed,
    },
    /// Sign the next posts and actions with this pseudonym (`None`: none;
    /// the client keeps it in the data directory).
    SetName {
        /// The pseudonym.
        name: Option<String>,
    },
    /// The public moderation state and log.
    ModList,
    /// Reports this (moderator) node can read.
    ModQueue,
    /// Moderator: posts waiting for approval (probation).
    ModHeld,
    /// Moderator: approve a post waiting for approval.
    ModApprove {
        /// Full or short post id.
        post: String,
    },
    /// Moderator: reject a post waiting for approval (deleted everywhere).
    ModReject {
        /// Full or short post id.
        post: String,
        /// Why (shown to its author).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Moderator: resolve an open report.
    ModResolve {
        /// Full or short report id, as `mod_queue` prints it.
        report: String,
        /// `hidden`, `blocked` or `none`.
        outcome: String,
        /// A note for the moderators (sealed to them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The community's topic directory.
    TopicDirectory,
    /// Moderator: describe a topic in the directory (empty: remove it).
    DescribeTopic {
        /// Topic name.
        topic: String,
        /// One line.
        description: String,
    },
    /// Start a sync round with every connected peer.
    Sync,
    /// Flush and stop the node.
    Shutdown,
    /// Dial a multiaddress and wait until connected (or why not).
    Connect {
        /// The multiaddress, such as `/ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…`.
        addr: String,
    },
    /// An invitation (admin or moderator of an invite-only community) and
    /// its code; in an open community a plain code.
    InviteIssue {
        /// How many keys it may admit (default 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uses: Option<u32>,
        /// How long it may be redeemed, in ms (default 7 days).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in_ms: Option<u64>,
    },
    /// Withdraw an invitation (its key, full or short).
    InviteRevoke {
        /// The invitation's key.
        invitation: String,
    },
    /// The invitations in the log (moderators).
    InviteList,
    /// Moderator: no new admissions (community), and optionally hold the
    /// posts of recently admitted members.
    ModLockdown {
        /// Only this topic (holding only; default: the whole community).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        /// Hold posts of members admitted this many days before them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_recent_days: Option<u32>,
        /// Why (shown to everyone).
        reason: String,
    },
    /// Moderator: lift a lockdown.
    ModLift {
        /// The topic of a topic lockdown (default: the community's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
    /// Admin: publish the next version of the rules and policy (what is
    /// left out stays as it is).
    CommunityUpdate {
        /// The new rules.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rules: Option<String>,
        /// `open` or `invite-only`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        admission: Option<String>,
        /// First posts of a new member held for approval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        probation_posts: Option<u32>,
    },
    /// Stream the topic's new posts until the client disconnects.
    Follow {
        /// Topic name.
        topic: String,
        /// Also stream removals, restorations and pin changes, every line
        /// typed (see "Follow" in the module documentation).
        #[serde(default, skip_serializing_if = "is_false")]
        events: bool,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Request {
    /// The `cmd` name, for messages.
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("cmd").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| "request".into())
    }

    /// Whether carrying out the request changes anything (publishes,
    /// stores, connects, stops). Such a request is dropped if its client
    /// hung up before the node got to it.
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Request::Id
                | Request::Community
                | Request::Topics
                | Request::Read { .. }
                | Request::Peers
                | Request::Status
                | Request::Invite
                | Request::InviteList
                | Request::ModList
                | Request::ModQueue
                | Request::ModHeld
                | Request::TopicDirectory
                | Request::Follow { .. }
        )
    }

    /// How long a client should wait for each line of the answer before it
    /// tells the person the node does not answer: [`DEFAULT_REPLY_TIMEOUT`],
    /// longer for `connect` (which itself waits up to
    /// [`crate::connect::CONNECT_TIMEOUT`]) and `shutdown` (which flushes).
    pub fn reply_timeout(&self) -> Duration {
        match self {
            Request::Connect { .. } => crate::connect::CONNECT_TIMEOUT + DEFAULT_REPLY_TIMEOUT,
            Request::Shutdown => SHUTDOWN_REPLY_TIMEOUT,
            _ => DEFAULT_REPLY_TIMEOUT,
        }
    }
}

/// One line of a `follow` with `events` (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FollowEvent {
    /// A new post that a read would show.
    Post {
        /// The post.
        post: Box<PostView>,
    },
    /// A post left the topic.
    Removed {
        /// Printable post id.
        id: String,
        /// Its topic.
        topic: String,
        /// Why.
        reason: RemovalReason,
    },
    /// A hidden post is shown again.
    Restored {
        /// The post as a read shows it now.
        post: Box<PostView>,
    },
    /// A post was pinned or unpinned.
    Pin {
        /// Printable post id.
        id: String,
        /// Its topic.
        topic: String,
        /// Pinned now.
        pinned: bool,
    },
    /// The follower fell behind and this many events were lost.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// Why a control request failed, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing listens on the socket.
    #[error("no mutual node is running for {0}; start one with `mutual run`")]
    NotRunning(String),
    /// The node refused the request; its message.
    #[error("{0}")]
    Refused(String),
    /// The connection failed.
    #[error("the connection to the node's control socket {path} failed: {source}")]
    Io {
        /// The socket.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The node closed the connection without an answer.
    #[error(
        "the node closed the connection without answering; it may be shutting down, so try again"
    )]
    Closed,
    /// The node did not answer in time.
    #[error(
        "the node at {dir} did not answer within {secs} s (waiting for {waiting_for}): is it busy \
         or stuck? Try again, see its log, or give it longer with `mutual --timeout SECONDS`{after}"
    )]
    Timeout {
        /// The data directory.
        dir: String,
        /// How long the client waited.
        secs: u64,
        /// What it waited for.
        waiting_for: String,
        /// What to keep in mind: empty, or a clause saying the request may
        /// still be carried out.
        after: String,
    },
    /// The node answered something this client does not understand.
    #[error("the node sent a reply this client does not understand ({0}); are `mutual` and the node the same version?")]
    BadReply(String),
}

/// Why reading one line failed.
enum LineError {
    TooLong,
    Io(io::Error),
}

/// Reads one `\n`-terminated line of at most `max` bytes (without the
/// newline). `Ok(None)` at a clean end of stream.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, LineError> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await.map_err(LineError::Io)?;
        if available.is_empty() {
            return Ok(if line.is_empty() { None } else { Some(line) });
        }
        if let Some(pos) = available.iter().position(|b| *b == b'\n') {
            let (head, _) = available.split_at(pos);
            line.extend_from_slice(head);
            reader.consume(pos + 1);
            if line.len() > max {
                return Err(LineError::TooLong);
            }
            return Ok(Some(line));
        }
        let n = available.len();
        line.extend_from_slice(available);
        reader.consume(n);
        if line.len() > max {
            return Err(LineError::TooLong);
        }
    }
}

fn ok_line(result: Value) -> Vec<u8> {
    line_of(&json!({ "ok": true, "result": result }))
}

fn error_line(message: &str) -> Vec<u8> {
    line_of(&json!({ "ok": false, "error": message }))
}

fn line_of(value: &Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// The data directory a socket path belongs to, for messages.
fn dir_of(path: &Path) -> String {
    path.parent()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

/// Makes `path` free for a new node: refuses if a node answers there,
/// removes a stale socket file that no node answers on.
pub async fn claim_socket(path: &Path) -> Result<(), NodeError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if UnixStream::connect(path).await.is_ok() {
        return Err(NodeError::BadInput(format!(
            "a mutual node is already running for {}",
            dir_of(path)
        )));
    }
    std::fs::remove_file(path)
        .map_err(|e| NodeError::io(format!("removing the stale socket {}", path.display()), e))
}

/// Listens on the control socket at `path` and serves requests with
/// `handle` until the returned task is aborted or the process ends. The
/// socket is created with mode 0600; see the module documentation.
pub async fn serve(
    handle: NodeHandle,
    path: &Path,
) -> Result<tokio::task::JoinHandle<()>, NodeError> {
    Ok(serve_with(handle, path, Limits::default()).await?.0)
}

/// The control socket's bounds (the constants of this module; tests use
/// smaller ones).
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) connections: usize,
    pub(crate) followers: usize,
    pub(crate) line_timeout: Duration,
    pub(crate) write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: MAX_CONNECTIONS,
            followers: MAX_FOLLOWERS,
            line_timeout: REQUEST_LINE_TIMEOUT,
            write_timeout: REPLY_WRITE_TIMEOUT,
        }
    }
}

/// What the server did that a client cannot see (for tests and logs).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// State-changing requests dropped because their client had hung up.
    pub(crate) abandoned: AtomicU64,
    /// Connections closed because no request line came in time.
    pub(crate) idle_closed: AtomicU64,
    /// Pages of reads written to clients.
    pub(crate) pages_written: AtomicU64,
    /// Reads given up midway (the client stalled or went away, or the
    /// read failed after its first piece).
    pub(crate) reads_cut: AtomicU64,
}

struct Shared {
    handle: NodeHandle,
    limits: Limits,
    follow_slots: Arc<Semaphore>,
    stats: Arc<Stats>,
}

/// [`serve`] with explicit bounds; also returns the server's counters.
pub(crate) async fn serve_with(
    handle: NodeHandle,
    path: &Path,
    limits: Limits,
) -> Result<(tokio::task::JoinHandle<()>, Arc<Stats>), NodeError> {
    claim_socket(path).await?;
    let listener = UnixListener::bind(path).map_err(|e| {
        NodeError::io(
            format!("listening on the control socket {}", path.display()),
            e,
        )
    })?;
    set_mode(path, 0o600)?;
    let slots = Arc::new(Semaphore::new(limits.connections));
    let stats = Arc::new(Stats::default());
    let shared = Arc::new(Shared {
        handle,
        follow_slots: Arc::new(Semaphore::new(limits.followers)),
        limits,
        stats: stats.clone(),
    });
    let mut failures = AcceptFailures::default();
    let task = tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    failures.recovered();
                    let shared = shared.clone();
                    tokio::spawn(serve_connection(shared, stream, permit));
                }
                Err(e) => {
                    // Out of descriptors or similar: keep serving, without
                    // spinning or filling the log.
                    failures.failed(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    });
    Ok((task, stats))
}

/// How long the control socket waits after a failed accept (out of file
/// descriptors, say) before trying again: short, so the local user is
/// served as soon as a descriptor is free, and not a busy loop.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Failed accepts in a row, so that a long shortage is logged once when it
/// starts, about every 10 s while it lasts, and once when it ends.
#[derive(Default)]
struct AcceptFailures {
    in_a_row: u64,
}

impl AcceptFailures {
    /// Failed accepts between two log lines (about 10 s of back-off).
    const LOG_EVERY: u64 = 200;

    fn failed(&mut self, e: &io::Error) {
        if self.in_a_row.is_multiple_of(Self::LOG_EVERY) {
            tracing::warn!(
                "control socket: accepting a connection failed ({e}); retrying every {} ms",
                ACCEPT_BACKOFF.as_millis()
            );
        }
        self.in_a_row += 1;
    }

    fn recovered(&mut self) {
        if self.in_a_row > 0 {
            tracing::info!(
                "control socket: accepting again after {} failed attempts",
                self.in_a_row
            );
            self.in_a_row = 0;
        }
    }
}

/// Writes `bytes` unless the client takes longer than `limit` to accept
/// them; whether the connection can go on.
async fn write_within(write: &mut OwnedWriteHalf, bytes: &[u8], limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, write.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Whether the client hung up: closed its end entirely (or shut down its
/// reading side), so nobody will read an answer. A client that only shut
/// down its writing side after its request is still there.
///
/// Two looks at the socket: the readiness the runtime last saw (a hang-up
/// shows as "write closed"), and a zero-byte write, which the kernel
/// refuses with `EPIPE` once the peer has gone, whatever the runtime has
/// noticed yet. Residual window: a client that hangs up after this check
/// while its request is carried out does not stop it.
fn client_gone(write: &OwnedWriteHalf) -> bool {
    use futures::FutureExt;
    if let Some(Ok(ready)) = write.ready(Interest::WRITABLE).now_or_never() {
        if ready.is_write_closed() {
            return true;
        }
    }
    match write.try_write(&[]) {
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
        ),
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: UnixStream, permit: OwnedSemaphorePermit) {
    let limits = &shared.limits;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let waited = tokio::time::timeout(
            limits.line_timeout,
            read_line_bounded(&mut reader, MAX_REQUEST_BYTES),
        )
        .await;
        let line = match waited {
            Err(_) => {
                shared.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                let message = format!(
                    "no whole request line arrived within {} s; closing the connection",
                    limits.line_timeout.as_secs()
                );
                // Without waiting: the client may not be reading either.
                let _ = write.try_write(&error_line(&message));
                return;
            }
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(LineError::Io(_))) => return,
            Ok(Err(LineError::TooLong)) => {
                let message = format!(
                    "the request is longer than {} KiB; a post body is at most {} KiB",
                    MAX_REQUEST_BYTES / 1024,
                    protocol::MAX_BODY_BYTES / 1024
                );
                let _ = write_within(&mut write, &error_line(&message), limits.write_timeout).await;
                return;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let request: Request = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("malformed request: {e}");
                if !write_within(&mut write, &error_line(&message), limits.write_timeout).await {
                    return;
                }
                continue;
            }
        };
        if let Request::Follow { topic, events } = request {
            let Ok(follow_slot) = shared.follow_slots.clone().try_acquire_owned() else {
                let message = format!(
                    "this node already streams to {} followers (`read --follow`), its most; \
                     stop one and try again",
                    limits.followers
                );
                let _ = write_within(&mut write, &error_line(&message), limits.write_timeout).await;
                return;
            };
            // Followers hold a follow slot, not a request slot.
            drop(permit);
            follow_stream(&shared.handle, &topic, events, reader, write).await;
            drop(follow_slot);
            return;
        }
        if request.changes_state() && client_gone(&write) {
            shared.stats.abandoned.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "control socket: the client of a `{}` request hung up before it was carried out; \
                 it is dropped",
                request.name()
            );
            return;
        }
        if let Request::Read {
            topic: t,
            limit,
            since_ms,
            stream,
        } = request
        {
            let query = ReadQuery {
                limit: limit.unwrap_or(DEFAULT_READ_LIMIT),
                since_ms,
            };
            if !serve_read(&shared, &mut write, &t, query, stream).await {
                return;
            }
            continue;
        }
        let reply = match execute(&shared.handle, request).await {
            Ok(result) => ok_line(result),
            Err(message) => error_line(&message),
        };
        if !write_within(&mut write, &reply, limits.write_timeout).await {
            return;
        }
    }
}

/// One page of a streamed read, as its line.
#[derive(Serialize)]
struct PageLine<'a> {
    ok: bool,
    more: bool,
    result: &'a [PostView],
}

/// Answers a `read` page by page (see "Reads" in the module
/// documentation); whether the connection can go on.
async fn serve_read(
    shared: &Shared,
    write: &mut OwnedWriteHalf,
    topic_text: &str,
    query: ReadQuery,
    stream: bool,
) -> bool {
    let went_on = write_read(shared, write, topic_text, query, stream).await;
    if !went_on {
        shared.stats.reads_cut.fetch_add(1, Ordering::Relaxed);
    }
    went_on
}

async fn write_read(
    shared: &Shared,
    write: &mut OwnedWriteHalf,
    topic_text: &str,
    query: ReadQuery,
    stream: bool,
) -> bool {
    let limit = shared.limits.write_timeout;
    let started = match topic(topic_text) {
        Ok(t) => shared
            .handle
            .read_stream(t, query)
            .await
            .map_err(|e| e.to_string()),
        Err(message) => Err(message),
    };
    let mut pages = match started {
        Ok(pages) => pages,
        Err(message) => return write_within(write, &error_line(&message), limit).await,
    };
    if stream {
        while let Some(page) = pages.recv().await {
            let line = match page {
                Ok(posts) => {
                    let page = PageLine {
                        ok: true,
                        more: true,
                        result: &posts,
                    };
                    match serde_json::to_vec(&page) {
                        Ok(mut line) => {
                            line.push(b'\n');
                            line
                        }
                        Err(e) => {
                            let message = format!("the node could not encode its answer: {e}");
                            return write_within(write, &error_line(&message), limit).await;
                        }
                    }
                }
                Err(e) => return write_within(write, &error_line(&e.to_string()), limit).await,
            };
            // Awaited before the next page is fetched: a slow client stalls
            // the read instead of growing the node's memory.
            if !write_within(write, &line, limit).await {
                return false;
            }
            shared.stats.pages_written.fetch_add(1, Ordering::Relaxed);
        }
        return write_within(write, &ok_line(json!([])), limit).await;
    }
    // The one-line form, written in pieces.
    if !write_within(write, br#"{"ok":true,"result":["#, limit).await {
        return false;
    }
    let mut first = true;
    while let Some(page) = pages.recv().await {
        let posts = match page {
            Ok(posts) => posts,
            Err(e) => {
                // Too late for an error line: cut the line off.
                tracing::warn!(
                    "control socket: a read failed midway ({e}); closing its connection"
                );
                return false;
            }
        };
        let mut piece = Vec::new();
        for post in &posts {
            if !first {
                piece.push(b',');
            }
            first = false;
            if let Err(e) = serde_json::to_writer(&mut piece, post) {
                tracing::warn!(
                    "control socket: encoding a post failed ({e}); closing the connection"
                );
                return false;
            }
        }
        if !write_within(write, &piece, limit).await {
            return false;
        }
        shared.stats.pages_written.fetch_add(1, Ordering::Relaxed);
    }
    write_within(write, b"]}\n", limit).await
}

/// A report's outcome as the command line and the web app name it.
fn report_outcome(text: &str) -> Result<ReportOutcome, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "hidden" | "hide" => Ok(ReportOutcome::Hidden),
        "blocked" | "block" => Ok(ReportOutcome::Blocked),
        "none" | "no action" | "no-action" => Ok(ReportOutcome::NoAction),
        other => Err(format!(
            "unknown outcome {other:?}: write hidden, blocked or none"
        )),
    }
}

fn topic(text: &str) -> Result<TopicName, String> {
    TopicName::parse(text).map_err(|e| e.to_string())
}

async fn key(handle: &NodeHandle, text: &str) -> Result<PublicKey, String> {
    handle.resolve_key(text).await.map_err(|e| e.to_string())
}

async fn post_id(handle: &NodeHandle, text: &str) -> Result<PostId, String> {
    handle.resolve_post(text).await.map_err(|e| e.to_string())
}

fn to_value<T: Serialize>(value: T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| format!("the node could not encode its answer: {e}"))
}

fn id_result(id: impl std::fmt::Display) -> Value {
    json!({ "id": id.to_string() })
}

async fn moderate(handle: &NodeHandle, kind: ModActionKind) -> Result<Value, String> {
    let id = handle.moderate(kind).await.map_err(|e| e.to_string())?;
    Ok(id_result(id))
}

/// After a hide or block given a report's id (which names its post, or
/// the post's author), resolves that report with `outcome`: acting on a
/// queue row by its id closes it. A report resolved already stays as it
/// was.
async fn resolve_named_report(handle: &NodeHandle, text: &str, outcome: ReportOutcome) {
    let prefix = format!("{}1", protocol::ActionId::PREFIX);
    if !text.trim().to_ascii_lowercase().starts_with(&prefix) {
        return;
    }
    if let Err(e) = handle
        .resolve_report(text.to_string(), outcome, String::new())
        .await
    {
        tracing::debug!("the report acted on was not resolved: {e}");
    }
}

fn scope(topic_name: Option<&str>) -> Result<Scope, String> {
    Ok(match topic_name {
        Some(t) => Scope::Topic(topic(t)?),
        None => Scope::Community,
    })
}

/// Runs one request (not `read` or `follow`, which the connection answers
/// itself) and gives its result or error message.
async fn execute(handle: &NodeHandle, request: Request) -> Result<Value, String> {
    let e = |e: NodeError| e.to_string();
    match request {
        Request::Id => to_value(handle.id().await.map_err(e)?),
        Request::Community => to_value(handle.community().await.map_err(e)?),
        Request::Join { topic: t } => {
            handle.join(topic(&t)?).await.map_err(e)?;
            Ok(Value::Null)
        }
        Request::Leave {
            topic: t,
            forget: false,
        } => {
            handle.leave(topic(&t)?).await.map_err(e)?;
            Ok(Value::Null)
        }
        Request::Leave {
            topic: t,
            forget: true,
        } => to_value(handle.leave_and_forget(topic(&t)?).await.map_err(e)?),
        Request::Topics => to_value(handle.topics().await.map_err(e)?),
        Request::Post {
            topic: t,
            body,
            reply_to,
            cw,
        } => {
            let t = topic(&t)?;
            let parent = match reply_to {
                Some(p) => Some(post_id(handle, &p).await?),
                None => None,
            };
            let draft = Draft {
                body,
                parent,
                content_warning: cw,
            };
            let id = handle.publish(t, draft).await.map_err(e)?;
            Ok(id_result(id))
        }
        Request::Retract { post } => {
            let id = post_id(handle, &post).await?;
            handle.retract(id).await.map_err(e)?;
            Ok(Value::Null)
        }
        Request::Report { post, reason } => {
            let id = post_id(handle, &post).await?;
            let report = handle.report(id, reason).await.map_err(e)?;
            Ok(id_result(report))
        }
        Request::Mute { author } => {
            handle
                .mute(key(handle, &author).await?, true)
                .await
                .map_err(e)?;
            Ok(Value::Null)
        }
        Request::Unmute { author } => {
            handle
                .mute(key(handle, &author).await?, false)
                .await
                .map_err(e)?;
            Ok(Value::Null)
        }
        Request::Peers => to_value(handle.peers().await.map_err(e)?),
        Request::Status => to_value(handle.status().await.map_err(e)?),
        r @ (Request::Invite
        | Request::InviteIssue { .. }
        | Request::InviteRevoke { .. }
        | Request::InviteList
        | Request::ModLockdown { .. }
        | Request::ModLift { .. }
        | Request::CommunityUpdate { .. }) => crate::admission::execute(handle, r).await,
        Request::ModAppoint { key: k } => {
            moderate(
                handle,
                ModActionKind::AppointModerator {
                    key: key(handle, &k).await?,
                },
            )
            .await
        }
        Request::ModRevoke { key: k } => {
            // `upto_seq` is filled in by the node when it signs.
            let kind = ModActionKind::RevokeModerator {
                key: key(handle, &k).await?,
                upto_seq: None,
            };
            moderate(handle, kind).await
        }
        Request::ModCoAdmin { key: k, add } => {
            let key = key(handle, &k).await?;
            // `upto_seq` is filled in by the node when it signs.
            let kind = if add {
                ModActionKind::AppointCoAdmin { key }
            } else {
                ModActionKind::RemoveCoAdmin {
                    key,
                    upto_seq: None,
                }
            };
            moderate(handle, kind).await
        }
        Request::ModBlock {
            author,
            topic: t,
            reason,
        } => {
            let kind = ModActionKind::Block {
                author: key(handle, &author).await?,
                scope: scope(t.as_deref())?,
                reason: reason.unwrap_or_default(),
            };
            let done = moderate(handle, kind).await?;
            resolve_named_report(handle, &author, ReportOutcome::Blocked).await;
            Ok(done)
        }
        Request::ModUnblock { author, topic: t } => {
            let kind = ModActionKind::Unblock {
                author: key(handle, &author).await?,
                scope: scope(t.as_deref())?,
            };
            moderate(handle, kind).await
        }
        Request::ModHide { post, reason } => {
            let kind = ModActionKind::Hide {
                post: post_id(handle, &post).await?,
                reason: reason.unwrap_or_default(),
            };
            let done = moderate(handle, kind).await?;
            resolve_named_report(handle, &post, ReportOutcome::Hidden).await;
            Ok(done)
        }
        Request::ModUnhide { post } => {
            let post = post_id(handle, &post).await?;
            moderate(handle, ModActionKind::Unhide { post }).await
        }
        Request::ModPin { post } => {
            let post = post_id(handle, &post).await?;
            moderate(handle, ModActionKind::Pin { post }).await
        }
        Request::ModUnpin { post } => {
            let post = post_id(handle, &post).await?;
            moderate(handle, ModActionKind::Unpin { post }).await
        }
        Request::Succeed { key } => {
            let new = key.key().map_err(e)?;
            Ok(id_result(handle.succeed(new).await.map_err(e)?))
        }
        Request::SetName { name } => {
            handle.set_pseudonym(name).await.map_err(e)?;
            to_value(handle.id().await.map_err(e)?)
        }
        Request::ModList => to_value(handle.mod_list().await.map_err(e)?),
        Request::ModQueue => to_value(handle.mod_queue().await.map_err(e)?),
        Request::ModHeld => to_value(handle.held_posts().await.map_err(e)?),
        Request::ModApprove { post } => {
            let post = post_id(handle, &post).await?;
            Ok(id_result(handle.approve(post).await.map_err(e)?))
        }
        Request::ModReject { post, reason } => {
            let post = post_id(handle, &post).await?;
            let id = handle
                .reject(post, reason.unwrap_or_default())
                .await
                .map_err(e)?;
            Ok(id_result(id))
        }
        Request::ModResolve {
            report,
            outcome,
            note,
        } => {
            let outcome = report_outcome(&outcome)?;
            let id = handle
                .resolve_report(report, outcome, note.unwrap_or_default())
                .await
                .map_err(e)?;
            Ok(id_result(id))
        }
        Request::TopicDirectory => to_value(handle.topic_directory().await.map_err(e)?),
        Request::DescribeTopic {
            topic: name,
            description,
        } => {
            let id = handle
                .describe_topic(topic(&name)?, description)
                .await
                .map_err(e)?;
            Ok(id_result(id))
        }
        Request::Sync => {
            handle.sync_now().await.map_err(e)?;
            Ok(Value::Null)
        }
        Request::Shutdown => {
            handle.shutdown().await.map_err(e)?;
            Ok(Value::Null)
        }
        Request::Connect { addr } => to_value(handle.connect(&addr).await.map_err(e)?),
        Request::Read { .. } | Request::Follow { .. } => {
            Err("read and follow are answered by the connection itself".into())
        }
    }
}

/// One `follow` line for `event`, or `None` if the event is not for this
/// follower (another topic, or not a post and `events` is off).
fn follow_line(event: NodeEvent, topic: &TopicName, events: bool) -> Option<Vec<u8>> {
    let ours = |t: &str| t == topic.as_str();
    let typed = match event {
        NodeEvent::PostStored(post) if ours(&post.topic) => {
            if !events {
                return serde_json::to_value(&*post).ok().map(|v| line_of(&v));
            }
            FollowEvent::Post { post }
        }
        NodeEvent::PostRemoved { id, topic, reason } if events && ours(&topic) => {
            FollowEvent::Removed { id, topic, reason }
        }
        NodeEvent::PostRestored(post) if events && ours(&post.topic) => {
            FollowEvent::Restored { post }
        }
        NodeEvent::PinChanged { id, topic, pinned } if events && ours(&topic) => {
            FollowEvent::Pin { id, topic, pinned }
        }
        _ => return None,
    };
    serde_json::to_value(&typed).ok().map(|v| line_of(&v))
}

async fn follow_stream(
    handle: &NodeHandle,
    topic_text: &str,
    events: bool,
    mut reader: BufReader<OwnedReadHalf>,
    mut write: OwnedWriteHalf,
) {
    let checked = async {
        let t = topic(topic_text)?;
        let topics = handle.topics().await.map_err(|e| e.to_string())?;
        if !topics.iter().any(|v| v.name == t.as_str()) {
            return Err(NodeError::NotJoined(t.to_string()).to_string());
        }
        Ok::<TopicName, String>(t)
    };
    let t = match checked.await {
        Ok(t) => t,
        Err(message) => {
            let _ = write.write_all(&error_line(&message)).await;
            return;
        }
    };
    // Subscribe before acknowledging, so nothing stored after the
    // acknowledgement is missed.
    let mut node_events = handle.subscribe();
    if write.write_all(&ok_line(Value::Null)).await.is_err() {
        return;
    }
    let mut scratch = [0u8; 512];
    loop {
        // The node announces only posts a read shows (muted authors left
        // out), so no read is needed here.
        let line = tokio::select! {
            event = node_events.recv() => match event {
                Ok(event) => follow_line(event, &t, events),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("control socket: a follower fell behind and missed {n} events");
                    events
                        .then(|| serde_json::to_value(FollowEvent::Lagged { missed: n }).ok())
                        .flatten()
                        .map(|v| line_of(&v))
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            read = reader.read(&mut scratch) => match read {
                // The client closed its side, or the connection broke.
                Ok(0) | Err(_) => return,
                // Anything else the client sends is ignored.
                Ok(_) => None,
            },
        };
        if let Some(line) = line {
            if write.write_all(&line).await.is_err() {
                return;
            }
        }
    }
}

async fn connect(path: &Path) -> Result<UnixStream, ControlError> {
    UnixStream::connect(path).await.map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ControlError::NotRunning(dir_of(path))
        }
        _ => ControlError::Io {
            path: path.display().to_string(),
            source: e,
        },
    })
}

/// Runs `work` for at most `wait`; past that, a [`ControlError::Timeout`]
/// that says the client waited for `what`. With `may_be_done`, the message
/// adds that the node may still carry the request out.
async fn within<T>(
    path: &Path,
    wait: Duration,
    what: &str,
    may_be_done: bool,
    work: impl std::future::Future<Output = Result<T, ControlError>>,
) -> Result<T, ControlError> {
    match tokio::time::timeout(wait, work).await {
        Ok(result) => result,
        Err(_) => Err(ControlError::Timeout {
            dir: dir_of(path),
            secs: wait.as_secs_f64().ceil() as u64,
            waiting_for: what.to_string(),
            after: if may_be_done {
                "; if it had begun, it may still carry the request out, so check before \
                 repeating it"
                    .into()
            } else {
                String::new()
            },
        }),
    }
}

async fn read_reply<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    path: &Path,
) -> Result<Value, ControlError> {
    let line = match read_line_bounded(reader, MAX_RESPONSE_BYTES).await {
        Ok(Some(line)) => line,
        Ok(None) => return Err(ControlError::Closed),
        Err(LineError::TooLong) => {
            return Err(ControlError::BadReply(format!(
                "a reply line over {MAX_RESPONSE_BYTES} bytes"
            )))
        }
        Err(LineError::Io(e)) => {
            return Err(ControlError::Io {
                path: path.display().to_string(),
                source: e,
            })
        }
    };
    serde_json::from_slice(&line).map_err(|e| ControlError::BadReply(e.to_string()))
}

/// Whether an answer line is a page with more to come (`"more": true`).
fn has_more(reply: &Value) -> bool {
    reply.get("more").and_then(Value::as_bool) == Some(true)
}

/// Takes an envelope apart: its result, or the node's error as `Refused`.
fn unwrap_envelope(mut reply: Value) -> Result<Value, ControlError> {
    match reply.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(reply
            .get_mut("result")
            .map(Value::take)
            .unwrap_or(Value::Null)),
        Some(false) => Err(ControlError::Refused(
            reply
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("the node refused the request without saying why")
                .to_string(),
        )),
        None => Err(ControlError::BadReply("no `ok` field".into())),
    }
}

async fn send(write: &mut OwnedWriteHalf, path: &Path, req: &Request) -> Result<(), ControlError> {
    let mut line = serde_json::to_vec(req).map_err(|e| ControlError::BadReply(e.to_string()))?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(|e| ControlError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// An open connection with one request sent, whose answer lines are read
/// each within a time limit.
struct Exchange {
    reader: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    path: PathBuf,
    wait: Duration,
    name: String,
    may_be_done: bool,
}

impl Exchange {
    /// Connects and sends `req`, within `wait`.
    async fn start(path: &Path, req: &Request, wait: Duration) -> Result<Exchange, ControlError> {
        let name = req.name();
        let may_be_done = req.changes_state();
        let what = format!("it to take the `{name}` request");
        within(path, wait, &what, false, async {
            let stream = connect(path).await?;
            let (read, mut write) = stream.into_split();
            send(&mut write, path, req).await?;
            Ok(Exchange {
                reader: BufReader::new(read),
                write,
                path: path.to_path_buf(),
                wait,
                name,
                may_be_done,
            })
        })
        .await
    }

    /// The next answer line, within the time limit.
    async fn line(&mut self, what: &str) -> Result<Value, ControlError> {
        let what = format!("{what} to `{}`", self.name);
        within(
            &self.path,
            self.wait,
            &what,
            self.may_be_done,
            read_reply(&mut self.reader, &self.path),
        )
        .await
    }
}

/// Sends one request to the node listening at `path` and returns its
/// `result`, waiting [`Request::reply_timeout`] at most for each line of
/// the answer; a refusal comes back as [`ControlError::Refused`] with the
/// node's message. The pages of a streamed `read` are put back together
/// into one array.
pub async fn request(path: &Path, req: &Request) -> Result<Value, ControlError> {
    request_within(path, req, req.reply_timeout()).await
}

/// [`request`], waiting at most `wait` to connect and for each answer line.
pub async fn request_within(
    path: &Path,
    req: &Request,
    wait: Duration,
) -> Result<Value, ControlError> {
    let mut exchange = Exchange::start(path, req, wait).await?;
    let mut pages: Option<Vec<Value>> = None;
    loop {
        let what = if pages.is_some() {
            "the next page of its answer"
        } else {
            "its answer"
        };
        let reply = exchange.line(what).await?;
        let more = has_more(&reply);
        let result = unwrap_envelope(reply)?;
        if !more && pages.is_none() {
            return Ok(result);
        }
        let all = pages.get_or_insert_with(Vec::new);
        match result {
            Value::Array(items) => all.extend(items),
            other => {
                return Err(ControlError::BadReply(format!(
                    "a page that is not a list: {other}"
                )))
            }
        }
        if !more {
            return Ok(Value::Array(pages.unwrap_or_default()));
        }
    }
}

/// A `read` whose answer comes in pages (`"stream": true`): the node holds
/// one page at a time, and so can the client.
pub struct ReadPages {
    exchange: Exchange,
    done: bool,
}

impl ReadPages {
    /// The next page of posts (oldest first across pages); `Ok(None)` after
    /// the last. A refusal (topic not joined, …) comes with the first call.
    pub async fn next_page(&mut self) -> Result<Option<Vec<PostView>>, ControlError> {
        if self.done {
            return Ok(None);
        }
        let reply = self.exchange.line("its answer").await?;
        let more = has_more(&reply);
        let result = unwrap_envelope(reply);
        if !more {
            self.done = true;
        }
        let posts: Vec<PostView> =
            serde_json::from_value(result?).map_err(|e| ControlError::BadReply(e.to_string()))?;
        if !more && posts.is_empty() {
            return Ok(None);
        }
        Ok(Some(posts))
    }
}

/// Starts a streamed `read` of `topic` on the node at `path`, waiting at
/// most `wait` to connect and for each page.
pub async fn read_pages(
    path: &Path,
    topic: &str,
    limit: Option<usize>,
    since_ms: Option<u64>,
    wait: Duration,
) -> Result<ReadPages, ControlError> {
    let req = Request::Read {
        topic: topic.to_string(),
        limit,
        since_ms,
        stream: true,
    };
    Ok(ReadPages {
        exchange: Exchange::start(path, &req, wait).await?,
        done: false,
    })
}

/// A running `follow` (with `events`): what happens to one topic, as the
/// node sees it.
pub struct Follow {
    reader: BufReader<OwnedReadHalf>,
    // Kept open: closing it tells the node to stop streaming.
    _write: OwnedWriteHalf,
    path: PathBuf,
}

impl Follow {
    /// The next event; `Ok(None)` when the node closed the stream (it
    /// stopped). Waits as long as it takes.
    pub async fn next(&mut self) -> Result<Option<FollowEvent>, ControlError> {
        match read_reply(&mut self.reader, &self.path).await {
            Ok(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| ControlError::BadReply(e.to_string())),
            Err(ControlError::Closed) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Starts following `topic` on the node at `path`, waiting at most `wait`
/// for the node to acknowledge. Returns once the node is subscribed, so
/// every change afterwards is streamed.
pub async fn follow(path: &Path, topic: &str, wait: Duration) -> Result<Follow, ControlError> {
    let req = Request::Follow {
        topic: topic.to_string(),
        events: true,
    };
    let mut exchange = Exchange::start(path, &req, wait).await?;
    unwrap_envelope(exchange.line("its answer").await?)?;
    Ok(Follow {
        reader: exchange.reader,
        _write: exchange.write,
        path: exchange.path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataDir, NodeConfig};
    use std::time::Instant;

    /// How long a test waits for a condition.
    const DEADLINE: Duration = Duration::from_secs(30);

    struct Fixture {
        _dir: tempfile::TempDir,
        data: DataDir,
        node: crate::RunningNode,
        server: tokio::task::JoinHandle<()>,
        stats: Arc<Stats>,
    }

    impl Fixture {
        fn socket(&self) -> std::path::PathBuf {
            self.data.socket_path()
        }

        async fn post(&self, topic: &str, body: &str) -> String {
            let result = request(
                &self.socket(),
                &Request::Post {
                    topic: topic.into(),
                    body: body.into(),
                    reply_to: None,
                    cw: None,
                },
            )
            .await
            .unwrap();
            result["id"].as_str().unwrap().to_string()
        }

        async fn stop(self) {
            self.node.handle.shutdown().await.unwrap();
            self.server.abort();
        }
    }

    async fn fixture() -> Fixture {
        fixture_with(Limits::default()).await
    }

    async fn fixture_with(limits: Limits) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("d"));
        data.init(Some("river".into())).unwrap();
        data.create_community("Circle", "Be kind", crate::now_ms())
            .unwrap();
        let mut config = NodeConfig::local(data.clone());
        config.author_posts_per_minute = usize::MAX;
        let node = crate::start(config).await.unwrap();
        let (server, stats) = serve_with(node.handle.clone(), &data.socket_path(), limits)
            .await
            .unwrap();
        Fixture {
            _dir: dir,
            data,
            node,
            server,
            stats,
        }
    }

    async fn raw(path: &Path, lines: &[u8]) -> Vec<Value> {
        let stream = UnixStream::connect(path).await.unwrap();
        let (read, mut write) = stream.into_split();
        // The node may close first (an oversized line): ignore errors here.
        let _ = write.write_all(lines).await;
        let _ = write.shutdown().await;
        let mut out = String::new();
        BufReader::new(read).read_to_string(&mut out).await.unwrap();
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn error_of(v: &Value) -> String {
        assert_eq!(v["ok"], false, "{v}");
        v["error"].as_str().unwrap().to_string()
    }

    async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
        let end = Instant::now() + DEADLINE;
        while !check() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn read_all(path: &Path, topic: &str) -> Vec<PostView> {
        let posts = request(
            path,
            &Request::Read {
                topic: topic.into(),
                limit: Some(100_000),
                since_ms: None,
                stream: true,
            },
        )
        .await
        .unwrap();
        serde_json::from_value(posts).unwrap()
    }

    #[test]
    fn requests_have_the_documented_wire_form() {
        let r: Request = serde_json::from_str(r#"{"cmd":"id"}"#).unwrap();
        assert_eq!(r, Request::Id);
        let r: Request =
            serde_json::from_str(r#"{"cmd":"post","topic":"t","body":"b","cw":"c"}"#).unwrap();
        assert_eq!(
            r,
            Request::Post {
                topic: "t".into(),
                body: "b".into(),
                reply_to: None,
                cw: Some("c".into())
            }
        );
        let r: Request =
            serde_json::from_str(r#"{"cmd":"mod_block","author":"mu1x","reason":null}"#).unwrap();
        assert_eq!(
            r,
            Request::ModBlock {
                author: "mu1x".into(),
                topic: None,
                reason: None
            }
        );
        // The older forms of `read` and `follow` still parse, as the
        // one-line read and the posts-only follow.
        let r: Request = serde_json::from_str(r#"{"cmd":"read","topic":"t","limit":3}"#).unwrap();
        assert_eq!(
            r,
            Request::Read {
                topic: "t".into(),
                limit: Some(3),
                since_ms: None,
                stream: false
            }
        );
        let r: Request = serde_json::from_str(r#"{"cmd":"follow","topic":"t"}"#).unwrap();
        assert_eq!(
            r,
            Request::Follow {
                topic: "t".into(),
                events: false
            }
        );
        let all = [
            Request::Id,
            Request::Community,
            Request::Topics,
            Request::Peers,
            Request::Status,
            Request::Invite,
            Request::ModList,
            Request::ModQueue,
            Request::Sync,
            Request::Shutdown,
            Request::ModUnpin { post: "p".into() },
            Request::Read {
                topic: "t".into(),
                limit: Some(3),
                since_ms: None,
                stream: true,
            },
            Request::Follow {
                topic: "t".into(),
                events: true,
            },
        ];
        for r in all {
            let text = serde_json::to_string(&r).unwrap();
            assert!(text.starts_with(r#"{"cmd":""#), "{text}");
            assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        }
        assert_eq!(
            serde_json::to_value(Request::ModAppoint { key: "k".into() }).unwrap(),
            json!({"cmd": "mod_appoint", "key": "k"})
        );
        assert_eq!(
            serde_json::to_value(Request::Read {
                topic: "t".into(),
                limit: None,
                since_ms: None,
                stream: false
            })
            .unwrap(),
            json!({"cmd": "read", "topic": "t"})
        );
        assert_eq!(
            serde_json::to_value(Request::Read {
                topic: "t".into(),
                limit: None,
                since_ms: None,
                stream: true
            })
            .unwrap(),
            json!({"cmd": "read", "topic": "t", "stream": true})
        );
        // Follow events, as documented.
        assert_eq!(
            serde_json::to_value(FollowEvent::Removed {
                id: "mp1x".into(),
                topic: "t".into(),
                reason: RemovalReason::Retracted
            })
            .unwrap(),
            json!({"event": "removed", "id": "mp1x", "topic": "t", "reason": "retracted"})
        );
        assert_eq!(
            serde_json::to_value(FollowEvent::Pin {
                id: "mp1x".into(),
                topic: "t".into(),
                pinned: false
            })
            .unwrap(),
            json!({"event": "pin", "id": "mp1x", "topic": "t", "pinned": false})
        );
        assert_eq!(
            serde_json::to_value(FollowEvent::Lagged { missed: 3 }).unwrap(),
            json!({"event": "lagged", "missed": 3})
        );
        assert_eq!(
            Request::ModHide {
                post: "p".into(),
                reason: None
            }
            .name(),
            "mod_hide"
        );
        assert!(Request::Post {
            topic: "t".into(),
            body: "b".into(),
            reply_to: None,
            cw: None
        }
        .changes_state());
        assert!(!Request::Status.changes_state());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_round_trip_over_the_socket() {
        let f = fixture().await;
        let path = f.socket();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let id = request(&path, &Request::Id).await.unwrap();
        assert_eq!(id["name"], "river");
        assert!(id["author"].as_str().unwrap().starts_with("mu1"));

        request(
            &path,
            &Request::Join {
                topic: " Burnout ".into(),
            },
        )
        .await
        .unwrap();
        let first = f.post("burnout", "hello").await;
        let short: String = first.chars().take(11).collect();
        let reply = request(
            &path,
            &Request::Post {
                topic: "burnout".into(),
                body: "a reply".into(),
                reply_to: Some(short),
                cw: Some("work".into()),
            },
        )
        .await
        .unwrap();
        let reply = reply["id"].as_str().unwrap().to_string();
        // Both forms of `read` give the same posts. Two posts made in the
        // same millisecond are ordered by id, so find them by id.
        for stream in [false, true] {
            let posts = request(
                &path,
                &Request::Read {
                    topic: "burnout".into(),
                    limit: None,
                    since_ms: None,
                    stream,
                },
            )
            .await
            .unwrap();
            let posts: Vec<PostView> = serde_json::from_value(posts).unwrap();
            assert_eq!(posts.len(), 2);
            let by_id = |id: &str| posts.iter().find(|p| p.id == id).unwrap();
            assert_eq!(by_id(&first).body.as_deref(), Some("hello"));
            assert_eq!(by_id(&first).parent, None);
            let answer = by_id(&reply);
            assert_eq!(answer.parent.as_deref(), Some(first.as_str()));
            assert_eq!(answer.content_warning.as_deref(), Some("work"));
        }

        let topics = request(&path, &Request::Topics).await.unwrap();
        assert_eq!(topics, json!([{"name": "burnout", "posts": 2}]));

        // Refusals carry the node's sentence.
        let bad = request(
            &path,
            &Request::Join {
                topic: "a b".into(),
            },
        )
        .await
        .unwrap_err();
        assert!(bad.to_string().starts_with("bad topic name"), "{bad}");
        let unknown = request(
            &path,
            &Request::Retract {
                post: "mp1qqqqqqqqqq".into(),
            },
        )
        .await
        .unwrap_err();
        assert!(unknown.to_string().contains("no post with id"), "{unknown}");
        let bad_key = request(
            &path,
            &Request::ModBlock {
                author: "mu1typo".into(),
                topic: None,
                reason: None,
            },
        )
        .await
        .unwrap_err();
        assert!(bad_key.to_string().contains("not a valid key"), "{bad_key}");

        // The admin may moderate; the result is the action id.
        let hid = request(
            &path,
            &Request::ModHide {
                post: first.clone(),
                reason: Some("test".into()),
            },
        )
        .await
        .unwrap();
        assert!(hid["id"].as_str().unwrap().starts_with("ma1"), "{hid}");

        request(&path, &Request::Shutdown).await.unwrap();
        f.node.task.await.unwrap().unwrap();
        f.server.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_and_oversized_lines_get_error_lines() {
        let f = fixture().await;
        let path = f.socket();
        let replies = raw(
            &path,
            b"not json\n{\"cmd\":\"launch\"}\n{\"cmd\":\"join\"}\n\n{\"cmd\":\"id\"}\n",
        )
        .await;
        assert_eq!(replies.len(), 4, "{replies:?}");
        assert!(error_of(&replies[0]).starts_with("malformed request"));
        assert!(error_of(&replies[1]).contains("unknown variant `launch`"));
        assert!(error_of(&replies[2]).contains("missing field `topic`"));
        assert_eq!(replies[3]["ok"], true);

        let mut huge = vec![b'x'; MAX_REQUEST_BYTES + 10];
        huge.push(b'\n');
        let replies = raw(&path, &huge).await;
        assert_eq!(replies.len(), 1);
        assert!(error_of(&replies[0]).contains("longer than 64 KiB"));

        // Invalid UTF-8 inside a string.
        let replies = raw(&path, b"{\"cmd\":\"join\",\"topic\":\"\xff\"}\n").await;
        assert!(error_of(&replies[0]).starts_with("malformed request"));

        // The node still serves.
        assert!(request(&path, &Request::Status).await.is_ok());
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streamed_reads_come_in_pages_that_join_up_oldest_first() {
        use crate::handle::READ_PAGE_POSTS;
        let f = fixture().await;
        let path = f.socket();
        f.node
            .handle
            .join(TopicName::parse("t").unwrap())
            .await
            .unwrap();
        let total = READ_PAGE_POSTS + 6;
        for i in 0..total {
            f.post("t", &format!("post {i}")).await;
        }
        // On the wire: full pages with `more`, then the final envelope.
        let replies = raw(
            &path,
            format!("{{\"cmd\":\"read\",\"topic\":\"t\",\"limit\":{total},\"stream\":true}}\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(replies.len(), 3, "two pages and the end: {replies:?}");
        assert_eq!(replies[0]["more"], true);
        assert_eq!(
            replies[0]["result"].as_array().unwrap().len(),
            READ_PAGE_POSTS
        );
        assert_eq!(replies[1]["more"], true);
        assert_eq!(replies[1]["result"].as_array().unwrap().len(), 6);
        assert_eq!(replies[2], json!({"ok": true, "result": []}));
        // The one-line form is one line, with the same posts.
        let one = raw(
            &path,
            format!("{{\"cmd\":\"read\",\"topic\":\"t\",\"limit\":{total}}}\n").as_bytes(),
        )
        .await;
        assert_eq!(one.len(), 1);
        let joined: Vec<Value> = replies[..2]
            .iter()
            .flat_map(|r| r["result"].as_array().unwrap().clone())
            .collect();
        assert_eq!(one[0]["result"], Value::Array(joined.clone()));
        // Oldest first across pages, and the client API puts them together.
        let posts: Vec<PostView> = serde_json::from_value(Value::Array(joined)).unwrap();
        assert!(posts
            .windows(2)
            .all(|w| (w[0].created_at, &w[0].id) <= (w[1].created_at, &w[1].id)));
        assert_eq!(read_all(&path, "t").await, posts);
        let mut pages = read_pages(&path, "t", Some(total), None, DEFAULT_REPLY_TIMEOUT)
            .await
            .unwrap();
        let mut paged = Vec::new();
        while let Some(page) = pages.next_page().await.unwrap() {
            paged.extend(page);
        }
        assert_eq!(paged, posts);
        // An empty topic is the final envelope alone; a refusal is one
        // error line in either form.
        f.node
            .handle
            .join(TopicName::parse("empty").unwrap())
            .await
            .unwrap();
        let mut empty = read_pages(&path, "empty", None, None, DEFAULT_REPLY_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(empty.next_page().await.unwrap(), None);
        for stream in ["true", "false"] {
            let refused = raw(
                &path,
                format!("{{\"cmd\":\"read\",\"topic\":\"a b\",\"stream\":{stream}}}\n").as_bytes(),
            )
            .await;
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert!(error_of(&refused[0]).starts_with("bad topic name"));
        }
        let mut refused = read_pages(&path, "a b", None, None, DEFAULT_REPLY_TIMEOUT)
            .await
            .unwrap();
        let err = refused.next_page().await.unwrap_err();
        assert!(err.to_string().starts_with("bad topic name"), "{err}");
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_never_reads_a_big_read_costs_a_few_pages_and_its_slot() {
        use crate::handle::READ_PAGE_BYTES;
        let f = fixture_with(Limits {
            write_timeout: Duration::from_secs(1),
            ..Limits::default()
        })
        .await;
        let path = f.socket();
        f.node
            .handle
            .join(TopicName::parse("big").unwrap())
            .await
            .unwrap();
        // About 4 MiB of posts of the largest size: 16 pages or more.
        let posts = 4 * 1024 * 1024 / protocol::MAX_BODY_BYTES;
        for i in 0..posts {
            // Different texts: two equal posts in one millisecond are one.
            let body = format!("{i:>width$}", width = protocol::MAX_BODY_BYTES);
            f.post("big", &body).await;
        }
        let total_pages = (posts * protocol::MAX_BODY_BYTES) / READ_PAGE_BYTES;
        assert!(total_pages >= 15, "{total_pages}");
        for stream in [true, false] {
            let before = f.stats.pages_written.load(Ordering::Relaxed);
            let cut_before = f.stats.reads_cut.load(Ordering::Relaxed);
            // Ask for everything, then read nothing.
            let stream_field = if stream { ",\"stream\":true" } else { "" };
            let mut idle = UnixStream::connect(&path).await.unwrap();
            idle.write_all(
                format!("{{\"cmd\":\"read\",\"topic\":\"big\",\"limit\":100000{stream_field}}}\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            // Proof the node got as far as it could: it gave up on the
            // client after the write time limit.
            wait_until("the node to give up on the stalled reader", || {
                f.stats.reads_cut.load(Ordering::Relaxed) > cut_before
            })
            .await;
            let written = f.stats.pages_written.load(Ordering::Relaxed) - before;
            // What the socket's buffers took, and nothing more.
            assert!(
                written <= 4,
                "{written} of {total_pages} pages written to a client that reads nothing"
            );
            drop(idle);
        }
        // The node still serves, and a reader that reads gets everything.
        assert_eq!(read_all(&path, "big").await.len(), posts);
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clients_that_say_nothing_give_their_slots_back() {
        let f = fixture_with(Limits {
            line_timeout: Duration::from_secs(1),
            ..Limits::default()
        })
        .await;
        let path = f.socket();
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(UnixStream::connect(&path).await.unwrap());
        }
        // While every slot is taken, a client with a short time limit says
        // what it waited for instead of hanging.
        let err = request_within(&path, &Request::Status, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::Timeout { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "the node at {} did not answer within 1 s (waiting for its answer to `status`): \
                 is it busy or stuck?",
                f.data.path().display()
            )),
            "{text}"
        );
        // The silent clients are let go after the line time limit, with a
        // line saying why, and the node answers again.
        let status = request_within(&path, &Request::Status, Duration::from_secs(10)).await;
        assert!(status.is_ok(), "{status:?}");
        wait_until("every silent client to be let go", || {
            f.stats.idle_closed.load(Ordering::Relaxed) >= MAX_CONNECTIONS as u64
        })
        .await;
        let mut said = String::new();
        BufReader::new(idle.swap_remove(0))
            .read_to_string(&mut said)
            .await
            .unwrap();
        let said: Value = serde_json::from_str(said.trim()).unwrap();
        assert!(error_of(&said).contains("no whole request line arrived within 1 s"));
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn followers_have_slots_of_their_own() {
        let f = fixture().await;
        let path = f.socket();
        f.node
            .handle
            .join(TopicName::parse("t").unwrap())
            .await
            .unwrap();
        let mut follows = Vec::new();
        for _ in 0..MAX_FOLLOWERS {
            follows.push(follow(&path, "t", DEFAULT_REPLY_TIMEOUT).await.unwrap());
        }
        // Every follow slot is taken; requests are still answered at once.
        let status = request_within(&path, &Request::Status, Duration::from_secs(5)).await;
        assert!(status.is_ok(), "{status:?}");
        let id = f.post("t", "still heard").await;
        // One more follower is refused with what to do.
        let refused = follow(&path, "t", DEFAULT_REPLY_TIMEOUT)
            .await
            .err()
            .unwrap();
        assert!(
            refused
                .to_string()
                .contains("already streams to 64 followers (`read --follow`), its most; stop one"),
            "{refused}"
        );
        // The followers are served.
        for f in follows.iter_mut().take(3) {
            let event = tokio::time::timeout(DEADLINE, f.next()).await.unwrap();
            assert!(
                matches!(event, Ok(Some(FollowEvent::Post { ref post })) if post.id == id),
                "{event:?}"
            );
        }
        // A follower that stops gives its slot back.
        drop(follows.pop());
        let mut again = None;
        let end = Instant::now() + DEADLINE;
        while again.is_none() {
            assert!(Instant::now() < end, "the follow slot was not given back");
            again = follow(&path, "t", DEFAULT_REPLY_TIMEOUT).await.ok();
            if again.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_whose_client_hung_up_before_it_was_read_is_not_carried_out() {
        let f = fixture_with(Limits {
            connections: 1,
            ..Limits::default()
        })
        .await;
        let path = f.socket();
        f.node
            .handle
            .join(TopicName::parse("t").unwrap())
            .await
            .unwrap();
        let post_line = |body: &str| {
            let mut line = serde_json::to_vec(&Request::Post {
                topic: "t".into(),
                body: body.into(),
                reply_to: None,
                cw: None,
            })
            .unwrap();
            line.push(b'\n');
            line
        };
        // The one slot is taken; a client sends a post and gives up
        // (closes) before the node gets to it.
        let holder = UnixStream::connect(&path).await.unwrap();
        let mut gave_up = UnixStream::connect(&path).await.unwrap();
        gave_up.write_all(&post_line("given up")).await.unwrap();
        drop(gave_up);
        drop(holder);
        // Proof the node read it and decided.
        wait_until("the node to drop the abandoned request", || {
            f.stats.abandoned.load(Ordering::Relaxed) == 1
        })
        .await;
        // A client that only shuts down its writing side still counts.
        let replies = raw(&path, &post_line("half-closed")).await;
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0]["ok"], true, "{replies:?}");
        let bodies: Vec<Option<String>> = read_all(&path, "t")
            .await
            .into_iter()
            .map(|p| p.body)
            .collect();
        assert_eq!(bodies, vec![Some("half-closed".to_string())]);
        assert_eq!(f.stats.abandoned.load(Ordering::Relaxed), 1);
        f.stop().await;
    }

    async fn next_event(s: &mut Follow) -> FollowEvent {
        tokio::time::timeout(DEADLINE, s.next())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("the stream goes on")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follow_streams_new_posts_of_its_topic() {
        let f = fixture().await;
        let path = f.socket();
        let h = &f.node.handle;
        h.join(TopicName::parse("t").unwrap()).await.unwrap();
        h.join(TopicName::parse("u").unwrap()).await.unwrap();
        let not_joined = follow(&path, "v", DEFAULT_REPLY_TIMEOUT)
            .await
            .err()
            .unwrap();
        assert!(not_joined.to_string().contains("have not joined topic v"));

        let mut stream = follow(&path, "t", DEFAULT_REPLY_TIMEOUT).await.unwrap();
        for (t, body) in [("u", "elsewhere"), ("t", "one"), ("t", "two")] {
            f.post(t, body).await;
        }
        for want in ["one", "two"] {
            match next_event(&mut stream).await {
                FollowEvent::Post { post } => assert_eq!(post.body.as_deref(), Some(want)),
                other => panic!("{other:?}"),
            }
        }
        drop(stream);

        // The older form: bare posts, and nothing else.
        let legacy = UnixStream::connect(&path).await.unwrap();
        let (read, mut write) = legacy.into_split();
        write
            .write_all(b"{\"cmd\":\"follow\",\"topic\":\"t\"}\n")
            .await
            .unwrap();
        let mut lines = BufReader::new(read).lines();
        let ack: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(ack, json!({"ok": true, "result": null}));
        let three = f.post("t", "three").await;
        request(
            &path,
            &Request::Retract {
                post: three.clone(),
            },
        )
        .await
        .unwrap();
        let four = f.post("t", "four").await;
        for want in [&three, &four] {
            let line = tokio::time::timeout(DEADLINE, lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let post: PostView = serde_json::from_str(&line).unwrap();
            assert_eq!(&post.id, want, "no removal line in between: {line}");
        }
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follow_shows_retractions_hides_restorations_and_pins() {
        let f = fixture().await;
        let path = f.socket();
        let h = &f.node.handle;
        h.join(TopicName::parse("t").unwrap()).await.unwrap();
        h.join(TopicName::parse("u").unwrap()).await.unwrap();
        let mut stream = follow(&path, "t", DEFAULT_REPLY_TIMEOUT).await.unwrap();
        let panic_post = f.post("t", "said too much").await;
        let kept = f.post("t", "kept").await;
        for want in [&panic_post, &kept] {
            assert!(
                matches!(next_event(&mut stream).await, FollowEvent::Post { post } if &post.id == want)
            );
        }
        // The author takes a post back: every open screen is told.
        request(
            &path,
            &Request::Retract {
                post: panic_post.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            next_event(&mut stream).await,
            FollowEvent::Removed {
                id: panic_post.clone(),
                topic: "t".into(),
                reason: RemovalReason::Retracted
            }
        );
        // A moderator hides one.
        request(
            &path,
            &Request::ModHide {
                post: kept.clone(),
                reason: Some("unkind".into()),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            next_event(&mut stream).await,
            FollowEvent::Removed {
                id: kept.clone(),
                topic: "t".into(),
                reason: RemovalReason::Hidden
            }
        );
        // Restorations and pins as the core announces them; those of
        // another topic are not sent.
        let mut shown_again = read_all(&path, "t").await.remove(0);
        shown_again.hidden = false;
        shown_again.body = Some("kept".into());
        let mut elsewhere = shown_again.clone();
        elsewhere.topic = "u".into();
        let send = |e: NodeEvent| {
            f.node.handle.events.send(e).unwrap();
        };
        send(NodeEvent::PinChanged {
            id: kept.clone(),
            topic: "u".into(),
            pinned: true,
        });
        send(NodeEvent::PostRestored(Box::new(elsewhere)));
        send(NodeEvent::PostRemoved {
            id: kept.clone(),
            topic: "u".into(),
            reason: RemovalReason::Blocked,
        });
        send(NodeEvent::PostRestored(Box::new(shown_again.clone())));
        send(NodeEvent::PinChanged {
            id: kept.clone(),
            topic: "t".into(),
            pinned: true,
        });
        send(NodeEvent::PostRemoved {
            id: kept.clone(),
            topic: "t".into(),
            reason: RemovalReason::Blocked,
        });
        assert_eq!(
            next_event(&mut stream).await,
            FollowEvent::Restored {
                post: Box::new(shown_again)
            }
        );
        assert_eq!(
            next_event(&mut stream).await,
            FollowEvent::Pin {
                id: kept.clone(),
                topic: "t".into(),
                pinned: true
            }
        );
        assert_eq!(
            next_event(&mut stream).await,
            FollowEvent::Removed {
                id: kept,
                topic: "t".into(),
                reason: RemovalReason::Blocked
            }
        );
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_node_is_refused_and_a_stale_socket_is_replaced() {
        let f = fixture().await;
        let path = f.socket();
        let err = serve(f.node.handle.clone(), &path).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "a mutual node is already running for {}",
                f.data.path().display()
            )
        );
        f.server.abort();
        let _ = f.server.await;
        // The listener is gone but its file stays: stale.
        assert!(path.exists());
        let err = request(&path, &Request::Id).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no mutual node is running for {}; start one with `mutual run`",
                f.data.path().display()
            )
        );
        let server = serve(f.node.handle.clone(), &path).await.unwrap();
        assert!(request(&path, &Request::Id).await.is_ok());
        server.abort();
        f.node.handle.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn no_socket_means_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::datadir::SOCKET);
        let err = request(&path, &Request::Status).await.unwrap_err();
        assert!(matches!(err, ControlError::NotRunning(_)));
        assert!(err.to_string().contains("start one with `mutual run`"));
    }
}
