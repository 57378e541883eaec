//! What the node tells the outside world: the views returned by the handle
//! and carried, as JSON, over the control socket. These are the stable
//! shapes the CLI prints and other clients parse.

use serde::{Deserialize, Serialize};

/// A post as a reader sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostView {
    /// Printable post id (`mp1…`).
    pub id: String,
    /// Topic name.
    pub topic: String,
    /// Printable author key (`mu1…`).
    pub author: String,
    /// The author's pseudonym, if any.
    pub author_name: Option<String>,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// Printable id of the post replied to, if any.
    pub parent: Option<String>,
    /// Content warning, if any.
    pub content_warning: Option<String>,
    /// The text; `None` when a moderator hid the post.
    pub body: Option<String>,
    /// Whether a moderator hid it.
    pub hidden: bool,
    /// Who hid it and why, when hidden.
    pub hidden_by: Option<ActorView>,
    /// Reason given for hiding.
    pub hidden_reason: Option<String>,
    /// Whether a moderator pinned it.
    pub pinned: bool,
    /// Whether it waits for a moderator's approval (probation): only its
    /// author and the moderators are shown such a post.
    #[serde(default)]
    pub held: bool,
    /// Whether a moderator rejected it (then `hidden` too): only its
    /// author is shown its notice.
    #[serde(default)]
    pub rejected: bool,
}

/// A key with its pseudonym, as shown in the moderation log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorView {
    /// Printable key.
    pub key: String,
    /// Pseudonym, if any.
    pub name: Option<String>,
}

/// Who this node is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdView {
    /// Printable author key.
    pub author: String,
    /// Pseudonym, if any.
    pub name: Option<String>,
    /// Transport peer id.
    pub peer_id: String,
    /// Addresses the node listens on.
    pub listen_addrs: Vec<String>,
}

/// A joined topic and how many posts this node holds for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    /// Topic name.
    pub name: String,
    /// Posts stored.
    pub posts: u64,
}

/// A connected peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    /// Peer id.
    pub peer_id: String,
    /// Remote addresses of its connections (a relayed one ends in
    /// `/p2p-circuit`).
    pub addrs: Vec<String>,
    /// Every connection to it goes through a relay.
    #[serde(default)]
    pub relayed: bool,
}

/// History sync progress, for status and progress bars.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncProgress {
    /// Sync sessions running now.
    pub active_sessions: u64,
    /// Items known to be missing in running sessions.
    pub missing: u64,
    /// Items received by sync since start.
    pub received: u64,
    /// Sync sessions completed since start.
    pub completed_sessions: u64,
}

/// The node at a glance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// Community name.
    pub community: String,
    /// Printable community id.
    pub community_id: String,
    /// Connected peers.
    pub peers: usize,
    /// Joined topics with counts.
    pub topics: Vec<TopicView>,
    /// Posts stored in all topics.
    pub posts: u64,
    /// Store size on disk in bytes.
    pub store_bytes: u64,
    /// Sync progress.
    pub sync: SyncProgress,
    /// How others reach this node (public, behind NAT via a relay, hidden
    /// via a relay, this machine only, or still checking).
    #[serde(default)]
    pub reachability: String,
    /// Peers remembered in the address book (dialled again after a
    /// restart).
    #[serde(default)]
    pub remembered_peers: usize,
    /// Recent problems reaching addresses the user gave (bootstrap,
    /// invite, `connect`), with what to do.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Connected peers subscribed to the community's gossip topic: the
    /// members this node exchanges posts with now. Zero means the node is
    /// alone (what it posts waits until a member connects).
    #[serde(default)]
    pub community_peers: usize,
    /// Acknowledged writes the store lost to damage on disk (found at
    /// start, cleared as peers send them back), or a record of them that
    /// could not be trusted; `None` when all is well.
    #[serde(default)]
    pub damage: Option<crate::store::Damage>,
}

/// A block in the moderation state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    /// Printable author key.
    pub author: String,
    /// `community` or the topic name.
    pub scope: String,
    /// Who blocked.
    pub by: ActorView,
    /// Why.
    pub reason: String,
    /// When, ms since the Unix epoch.
    pub at: u64,
}

/// A hidden post in the moderation state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HiddenView {
    /// Printable post id.
    pub post: String,
    /// Who hid it.
    pub by: ActorView,
    /// Why.
    pub reason: String,
    /// When, ms since the Unix epoch.
    pub at: u64,
}

/// One entry of the public moderation log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntryView {
    /// Printable action id.
    pub id: String,
    /// Who acted.
    pub by: ActorView,
    /// What, in words (never the content of a post).
    pub action: String,
    /// Reason, when one was given.
    pub reason: Option<String>,
    /// When, ms since the Unix epoch.
    pub at: u64,
}

/// The moderation state as members see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModListView {
    /// The community admin.
    pub admin: ActorView,
    /// Current moderators (co-admins included).
    pub moderators: Vec<ActorView>,
    /// Current co-admins (keys), who may also appoint and revoke
    /// moderators and whom nobody can block.
    #[serde(default)]
    pub co_admins: Vec<String>,
    /// Current blocks.
    pub blocks: Vec<BlockView>,
    /// Hidden posts.
    pub hidden: Vec<HiddenView>,
    /// Pinned posts (printable ids).
    pub pinned: Vec<String>,
    /// Every effective action, oldest first.
    pub log: Vec<LogEntryView>,
    /// Lockdowns in force, with their reasons (shown to everyone).
    #[serde(default)]
    pub lockdowns: Vec<LockdownView>,
}

/// A report opened by this (moderator) node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportView {
    /// Printable report id.
    pub id: String,
    /// Printable id of the reported post.
    pub post: String,
    /// Who reported.
    pub reporter: ActorView,
    /// Why.
    pub reason: String,
    /// When, ms since the Unix epoch.
    pub at: u64,
    /// The reported post, when this node holds it (`null` otherwise: not
    /// synced here, retracted, or its author blocked).
    #[serde(default)]
    pub reported: Option<ReportedPostView>,
}

/// What a moderator needs to judge a reported post at a glance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedPostView {
    /// Its topic.
    pub topic: String,
    /// Its author, with the pseudonym the post was signed with.
    pub author: ActorView,
    /// Its text.
    pub body: String,
}

/// One entry of the community's topic directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntryView {
    /// The topic's name.
    pub topic: String,
    /// Its one-line description.
    pub description: String,
    /// Whether this node joined it.
    pub joined: bool,
    /// The moderator who wrote the description.
    pub by: ActorView,
    /// When, ms since the Unix epoch.
    pub at: u64,
}

/// The community as a newcomer sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityView {
    /// Name.
    pub name: String,
    /// Printable community id.
    pub id: String,
    /// Admin key.
    pub admin: String,
    /// Rules / welcome text: the admin's newest manifest update's, or the
    /// manifest's.
    pub rules: String,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// `invite-only` or `open` (the admission policy in force).
    #[serde(default)]
    pub admission: String,
    /// How many first posts of a new member wait for approval.
    #[serde(default)]
    pub probation_posts: u32,
    /// The version of the rules shown (`None`: the manifest's own).
    #[serde(default)]
    pub rules_version: Option<u64>,
    /// Lockdowns in force.
    #[serde(default)]
    pub lockdowns: Vec<LockdownView>,
}

/// The outcome of `connect`: which peer answered at the address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectView {
    /// The peer id of the node that answered.
    pub peer_id: String,
    /// The address dialled.
    pub address: String,
    /// Whether the node was connected to that peer already (nothing dialled).
    pub already_connected: bool,
}

/// A lockdown in force, shown to everyone with its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockdownView {
    /// `community` or the topic name.
    pub scope: String,
    /// Posts of members admitted this many days before them are held.
    pub hold_recent_days: Option<u32>,
    /// Why.
    pub reason: String,
    /// Who ordered it.
    pub by: ActorView,
    /// When, ms since the Unix epoch.
    pub at: u64,
}

/// An invitation in the community log, as moderators see it
/// (`mutual invite --list`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationView {
    /// The invitation's key (its id).
    pub invitation: String,
    /// Who issued it.
    pub by: ActorView,
    /// When, ms since the Unix epoch.
    pub at: u64,
    /// How many keys it may admit.
    pub uses: u32,
    /// Last moment a redemption may be dated.
    pub expires_at: u64,
    /// When it was withdrawn, if it was.
    pub revoked_at: Option<u64>,
    /// The keys it admitted.
    pub admitted: Vec<String>,
}

/// What a newcomer is shown at `community join`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The admin's newest rules, when an update replaced the manifest's:
    /// version and text.
    pub rules: Option<(u64, String)>,
    /// The topic directory: each topic's name and one-line description.
    pub directory: Vec<(String, String)>,
}
