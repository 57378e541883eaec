//! Errors of the node, each with a message a person can act on.

use protocol::ValidationError;

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The event loop is gone.
    #[error("the node has stopped")]
    Stopped,
    /// The data directory has no keys yet.
    #[error("no identity in {0}: run `mutual init` first")]
    NoIdentity(String),
    /// Keys exist already.
    #[error("an identity already exists in {0}; refusing to overwrite it")]
    IdentityExists(String),
    /// The data directory belongs to no community yet.
    #[error("this node belongs to no community yet: run `mutual community create NAME` or `mutual community join INVITE`")]
    NoCommunity,
    /// The data directory already belongs to a community.
    #[error("this data directory already belongs to community {0}; use another --data-dir for another community")]
    CommunityExists(String),
    /// The vault has a passphrase and none was given.
    #[error("the keys in {0} are locked with a passphrase: give it with --passphrase-file FILE, or run the command in a terminal to type it")]
    Locked(String),
    /// The passphrase given does not open the vault.
    #[error("wrong passphrase for {0}; nothing was changed")]
    WrongPassphrase(String),
    /// A key file (or another sealed file) fails its check: it is never
    /// read as something else.
    #[error(
        "{file} is damaged ({why}), so mutual stops instead of running as someone else; {fix}"
    )]
    DamagedKey {
        /// The file.
        file: String,
        /// What is wrong with it.
        why: String,
        /// What to do.
        fix: String,
    },
    /// A path holds something that is not a mutual data directory.
    #[error("{0} is not a mutual data directory: {1}")]
    NotOurs(String, String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An item broke a protocol rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// An invite code was refused.
    #[error(transparent)]
    Invite(#[from] protocol::InviteError),
    /// The topic is not joined.
    #[error("you have not joined topic {0}: run `mutual join {0}` first")]
    NotJoined(String),
    /// No stored post has that id.
    #[error("no post with id {0} is stored on this node")]
    UnknownPost(String),
    /// A short id matches several posts (or reports): the second field
    /// lists them, so the person can copy the one meant.
    #[error("the short id {0} matches several posts: {1}; use more characters")]
    AmbiguousPost(String, String),
    /// No key this node knows (an author of a stored post, the admin, a
    /// moderator, a block, a mute, a reporter) starts with that short form.
    #[error("no key starting with {0} is known to this node: give the whole key (mu1…), as `mutual id` prints it")]
    UnknownKey(String),
    /// A short key form matches several known keys (listed).
    #[error("the short key {0} matches several keys: {1}; use more characters")]
    AmbiguousKey(String, String),
    /// This identity may not take that moderation action.
    #[error("refused: {0}")]
    NotAllowed(String),
    /// A refused moderation action.
    #[error("refused: {0}")]
    Moderation(#[from] protocol::state::ModerationError),
    /// A network operation failed.
    #[error("network: {0}")]
    Network(String),
    /// A bad argument.
    #[error("{0}")]
    BadInput(String),
    /// No node at an invite's addresses answered.
    #[error("could not reach the inviter's node ({0}): the invite may be stale; ask for a fresh invite, or try again when the inviter's node is online")]
    InviterUnreachable(String),
    /// The inviter's node answered with something else than the invite's
    /// community.
    #[error("refusing to join: the node at the invite's address does not hold the community the invite names ({0})")]
    ManifestMismatch(String),
}

impl NodeError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        NodeError::Io {
            context: context.into(),
            source,
        }
    }
}
