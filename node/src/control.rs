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
//! and reads one response line per request; a connection may carry several
//! requests in turn. A request line is at most [`MAX_REQUEST_BYTES`]
//! (64 KiB); a longer one is answered with an error line and the
//! connection is closed. A line that is not a valid request is answered
//! with an error line and the connection stays open.
//!
//! # Requests
//!
//! Each request is a JSON object whose `cmd` field names it; the other
//! fields are its arguments. Fields marked `?` may be left out (or `null`).
//! Topic names are normalised as `TopicName::parse` does; post ids may be
//! full (`mp1…`) or short (the 11-character form `read` prints); keys are
//! printable author keys (`mu1…`).
//!
//! | `cmd` | fields | `result` |
//! |---|---|---|
//! | `id` | | `IdView`: `{author, name, peer_id, listen_addrs}` |
//! | `community` | | `CommunityView`: `{name, id, admin, rules, created_at}` |
//! | `join` | `topic` | `null` |
//! | `leave` | `topic` | `null` |
//! | `topics` | | `[TopicView]`: `[{name, posts}]` |
//! | `post` | `topic`, `body`, `reply_to?`, `cw?` | `{"id": full post id}` |
//! | `read` | `topic`, `limit?` (default 50), `since_ms?` | `[PostView]`, oldest first |
//! | `retract` | `post` | `null` |
//! | `report` | `post`, `reason` | `{"id": report id}` |
//! | `mute` | `author` | `null` |
//! | `unmute` | `author` | `null` |
//! | `peers` | | `[PeerView]`: `[{peer_id, addrs}]` |
//! | `status` | | `StatusView`: `{community, community_id, peers, topics, posts, store_bytes, sync, community_peers}` |
//! | `invite` | | `{"invite": invite code}` |
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
//! | `sync` | | `null` (a sync round with every connected peer has started) |
//! | `connect` | `addr` (a multiaddress) | `ConnectView`: `{peer_id, address, already_connected}`, once connected (at most 20 s) |
//! | `shutdown` | | `null` (the node flushes its store and stops) |
//! | `follow` | `topic` | `null`, then a stream (below) |
//!
//! The views are the types of [`crate::api`], serialised with their field
//! names; times are ms since the Unix epoch. A `PostView` is `{id, topic,
//! author, author_name, created_at, parent, content_warning, body, hidden,
//! hidden_by, hidden_reason, pinned}`, where `hidden_by` is `null` or
//! `{key, name}`.
//!
//! Example: `{"cmd": "post", "topic": "burnout", "body": "hello"}`.
//!
//! # Responses
//!
//! Exactly one line per request:
//!
//! - `{"ok": true, "result": <result>}`, or
//! - `{"ok": false, "error": "<one sentence a person can act on>"}`.
//!
//! Moderation requests by an identity that may not take them are refused
//! by the node before anything is signed or published.
//!
//! # Follow
//!
//! `follow` answers `{"ok": true, "result": null}` once it is subscribed,
//! then writes one `PostView` line (the bare object, no envelope) for each
//! post of the topic this node stores from then on, from anyone including
//! itself, until the client closes the connection. Posts of muted authors
//! are left out, as are posts that arrive by history sync behind more than
//! [`FOLLOW_WINDOW`] newer ones (`read` shows those).

use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use protocol::moderation::{ModActionKind, Scope};
use protocol::post::Draft;
use protocol::{PostId, PublicKey, TopicName};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, Semaphore};

use crate::api::PostView;
use crate::datadir::set_mode;
use crate::error::NodeError;
use crate::handle::{NodeEvent, NodeHandle, ReadQuery};

/// Largest request line in bytes. The largest honest request is a post: an
/// 8 KiB body and a 200-byte warning, which JSON escaping can at worst
/// multiply by six (`\u00XX` per byte of control characters), about 50 KiB;
/// 64 KiB admits every valid post and bounds what one client can make the
/// node buffer.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Largest response line a client accepts. A `read` of a big topic can be
/// tens of megabytes; this bound only stops a broken peer from making the
/// client buffer without end.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024 * 1024;

/// Most connections served at once; more wait to be accepted. Local clients
/// are short-lived, and a bound keeps a runaway script from exhausting the
/// node's file descriptors.
pub const MAX_CONNECTIONS: usize = 64;

/// Posts a `follow` checks against when deciding whether a newly stored post
/// is visible (not muted): only the newest this many posts since its
/// creation time are read, so catching up on a large history costs a bounded
/// read per post.
pub const FOLLOW_WINDOW: usize = 256;

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
    /// The public moderation state and log.
    ModList,
    /// Reports this (moderator) node can read.
    ModQueue,
    /// Start a sync round with every connected peer.
    Sync,
    /// Flush and stop the node.
    Shutdown,
    /// Dial a multiaddress and wait until connected (or why not).
    Connect {
        /// The multiaddress, such as `/ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…`.
        addr: String,
    },
    /// Stream the topic's new posts until the client disconnects.
    Follow {
        /// Topic name.
        topic: String,
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
    claim_socket(path).await?;
    let listener = UnixListener::bind(path).map_err(|e| {
        NodeError::io(
            format!("listening on the control socket {}", path.display()),
            e,
        )
    })?;
    set_mode(path, 0o600)?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut failures = AcceptFailures::default();
    Ok(tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    failures.recovered();
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        serve_connection(handle, stream).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of descriptors or similar: keep serving, without
                    // spinning or filling the log.
                    failures.failed(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }))
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

async fn serve_connection(handle: NodeHandle, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let line = match read_line_bounded(&mut reader, MAX_REQUEST_BYTES).await {
            Ok(Some(line)) => line,
            Ok(None) | Err(LineError::Io(_)) => return,
            Err(LineError::TooLong) => {
                let message = format!(
                    "the request is longer than {} KiB; a post body is at most {} KiB",
                    MAX_REQUEST_BYTES / 1024,
                    protocol::MAX_BODY_BYTES / 1024
                );
                let _ = write.write_all(&error_line(&message)).await;
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
                if write.write_all(&error_line(&message)).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if let Request::Follow { topic } = request {
            follow_stream(&handle, &topic, reader, write).await;
            return;
        }
        let reply = match execute(&handle, request).await {
            Ok(result) => ok_line(result),
            Err(message) => error_line(&message),
        };
        if write.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn topic(text: &str) -> Result<TopicName, String> {
    TopicName::parse(text).map_err(|e| e.to_string())
}

fn key(text: &str) -> Result<PublicKey, String> {
    PublicKey::from_str(text).map_err(|e| e.to_string())
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

fn scope(topic_name: Option<&str>) -> Result<Scope, String> {
    Ok(match topic_name {
        Some(t) => Scope::Topic(topic(t)?),
        None => Scope::Community,
    })
}

/// Runs one request (not `follow`) and gives its result or error message.
async fn execute(handle: &NodeHandle, request: Request) -> Result<Value, String> {
    let e = |e: NodeError| e.to_string();
    match request {
        Request::Id => to_value(handle.id().await.map_err(e)?),
        Request::Community => to_value(handle.community().await.map_err(e)?),
        Request::Join { topic: t } => {
            handle.join(topic(&t)?).await.map_err(e)?;
            Ok(Value::Null)
        }
        Request::Leave { topic: t } => {
            handle.leave(topic(&t)?).await.map_err(e)?;
            Ok(Value::Null)
        }
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
        Request::Read {
            topic: t,
            limit,
            since_ms,
        } => {
            let query = ReadQuery {
                limit: limit.unwrap_or(DEFAULT_READ_LIMIT),
                since_ms,
            };
            to_value(handle.read(topic(&t)?, query).await.map_err(e)?)
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
            handle.mute(key(&author)?, true).await.map_err(e)?;
            Ok(Value::Null)
        }
        Request::Unmute { author } => {
            handle.mute(key(&author)?, false).await.map_err(e)?;
            Ok(Value::Null)
        }
        Request::Peers => to_value(handle.peers().await.map_err(e)?),
        Request::Status => to_value(handle.status().await.map_err(e)?),
        Request::Invite => Ok(json!({ "invite": handle.invite().await.map_err(e)? })),
        Request::ModAppoint { key: k } => {
            moderate(handle, ModActionKind::AppointModerator { key: key(&k)? }).await
        }
        Request::ModRevoke { key: k } => {
            // `upto_seq` is filled in by the node when it signs.
            let kind = ModActionKind::RevokeModerator {
                key: key(&k)?,
                upto_seq: None,
            };
            moderate(handle, kind).await
        }
        Request::ModBlock {
            author,
            topic: t,
            reason,
        } => {
            let kind = ModActionKind::Block {
                author: key(&author)?,
                scope: scope(t.as_deref())?,
                reason: reason.unwrap_or_default(),
            };
            moderate(handle, kind).await
        }
        Request::ModUnblock { author, topic: t } => {
            let kind = ModActionKind::Unblock {
                author: key(&author)?,
                scope: scope(t.as_deref())?,
            };
            moderate(handle, kind).await
        }
        Request::ModHide { post, reason } => {
            let kind = ModActionKind::Hide {
                post: post_id(handle, &post).await?,
                reason: reason.unwrap_or_default(),
            };
            moderate(handle, kind).await
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
        Request::ModList => to_value(handle.mod_list().await.map_err(e)?),
        Request::ModQueue => to_value(handle.mod_queue().await.map_err(e)?),
        Request::Sync => {
            handle.sync_now().await.map_err(e)?;
            Ok(Value::Null)
        }
        Request::Shutdown => {
            handle.shutdown().await.map_err(e)?;
            Ok(Value::Null)
        }
        Request::Connect { addr } => to_value(handle.connect(&addr).await.map_err(e)?),
        Request::Follow { .. } => Err("follow takes over its connection; send it alone".into()),
    }
}

/// Whether a newly stored post shows in a read of its topic (its author is
/// not muted and it was not removed meanwhile).
async fn visible(handle: &NodeHandle, topic: &TopicName, post: &PostView) -> bool {
    let query = ReadQuery {
        limit: FOLLOW_WINDOW,
        since_ms: Some(post.created_at),
    };
    match handle.read(topic.clone(), query).await {
        Ok(posts) => posts.iter().any(|p| p.id == post.id && !p.hidden),
        Err(_) => false,
    }
}

async fn follow_stream(
    handle: &NodeHandle,
    topic_text: &str,
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
    let mut events = handle.subscribe();
    if write.write_all(&ok_line(Value::Null)).await.is_err() {
        return;
    }
    let mut scratch = [0u8; 512];
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(NodeEvent::PostStored(view)) if view.topic == t.as_str() => {
                    if visible(handle, &t, &view).await {
                        let Ok(value) = serde_json::to_value(&*view) else { continue };
                        if write.write_all(&line_of(&value)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("control socket: a follower fell behind and missed {n} events");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            read = reader.read(&mut scratch) => match read {
                // The client closed its side, or the connection broke.
                Ok(0) | Err(_) => return,
                // Anything else the client sends is ignored.
                Ok(_) => {}
            },
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

/// Sends one request to the node listening at `path` and returns its
/// `result`; a refusal comes back as [`ControlError::Refused`] with the
/// node's message.
pub async fn request(path: &Path, req: &Request) -> Result<Value, ControlError> {
    let stream = connect(path).await?;
    let (read, mut write) = stream.into_split();
    send(&mut write, path, req).await?;
    let mut reader = BufReader::new(read);
    unwrap_envelope(read_reply(&mut reader, path).await?)
}

/// A running `follow`: the new posts of one topic, as the node stores them.
pub struct Follow {
    reader: BufReader<OwnedReadHalf>,
    // Kept open: closing it tells the node to stop streaming.
    _write: OwnedWriteHalf,
    path: std::path::PathBuf,
}

impl Follow {
    /// The next new post; `Ok(None)` when the node closed the stream (it
    /// stopped).
    pub async fn next(&mut self) -> Result<Option<PostView>, ControlError> {
        match read_reply(&mut self.reader, &self.path).await {
            Ok(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| ControlError::BadReply(e.to_string())),
            Err(ControlError::Closed) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Starts following `topic` on the node at `path`. Returns once the node is
/// subscribed, so every post it stores afterwards is streamed.
pub async fn follow(path: &Path, topic: &str) -> Result<Follow, ControlError> {
    let stream = connect(path).await?;
    let (read, mut write) = stream.into_split();
    let req = Request::Follow {
        topic: topic.to_string(),
    };
    send(&mut write, path, &req).await?;
    let mut reader = BufReader::new(read);
    unwrap_envelope(read_reply(&mut reader, path).await?)?;
    Ok(Follow {
        reader,
        _write: write,
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataDir, NodeConfig};
    use std::time::Duration;

    struct Fixture {
        _dir: tempfile::TempDir,
        data: DataDir,
        node: crate::RunningNode,
        server: tokio::task::JoinHandle<()>,
    }

    impl Fixture {
        fn socket(&self) -> std::path::PathBuf {
            self.data.socket_path()
        }
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("d"));
        data.init(Some("river".into())).unwrap();
        data.create_community("Circle", "Be kind", crate::now_ms())
            .unwrap();
        let node = crate::start(NodeConfig::local(data.clone())).await.unwrap();
        let server = serve(node.handle.clone(), &data.socket_path())
            .await
            .unwrap();
        Fixture {
            _dir: dir,
            data,
            node,
            server,
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
        let first = request(
            &path,
            &Request::Post {
                topic: "burnout".into(),
                body: "hello".into(),
                reply_to: None,
                cw: None,
            },
        )
        .await
        .unwrap();
        let first = first["id"].as_str().unwrap().to_string();
        let short: String = first.chars().take(11).collect();
        request(
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
        let posts = request(
            &path,
            &Request::Read {
                topic: "burnout".into(),
                limit: None,
                since_ms: None,
            },
        )
        .await
        .unwrap();
        let posts: Vec<PostView> = serde_json::from_value(posts).unwrap();
        assert_eq!(posts.len(), 2);
        assert_eq!(posts[1].parent.as_deref(), Some(first.as_str()));
        assert_eq!(posts[1].content_warning.as_deref(), Some("work"));

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
        f.node.task.await.unwrap();
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
        f.node.handle.shutdown().await.unwrap();
        f.server.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follow_streams_new_posts_of_its_topic() {
        let f = fixture().await;
        let path = f.socket();
        let h = &f.node.handle;
        h.join(TopicName::parse("t").unwrap()).await.unwrap();
        h.join(TopicName::parse("u").unwrap()).await.unwrap();
        let not_joined = follow(&path, "v").await.err().unwrap();
        assert!(not_joined.to_string().contains("have not joined topic v"));

        let mut stream = follow(&path, "t").await.unwrap();
        for (t, body) in [("u", "elsewhere"), ("t", "one"), ("t", "two")] {
            request(
                &path,
                &Request::Post {
                    topic: t.into(),
                    body: body.into(),
                    reply_to: None,
                    cw: None,
                },
            )
            .await
            .unwrap();
        }
        async fn next(s: &mut Follow) -> PostView {
            tokio::time::timeout(Duration::from_secs(10), s.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        }
        assert_eq!(next(&mut stream).await.body.as_deref(), Some("one"));
        assert_eq!(next(&mut stream).await.body.as_deref(), Some("two"));
        drop(stream);
        h.shutdown().await.unwrap();
        f.server.abort();
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
