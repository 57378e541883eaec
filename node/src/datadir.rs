//! The data directory: the vault (a master key, and the secret files
//! sealed under it: see [`crate::vault`]), the remembered ports, the store
//! and the control socket. The directory itself is mode 0700 and its files
//! 0600. Everything here works without a running node, so `mutual init`
//! and `mutual community create/join` need no daemon.
//!
//! A [`DataDir`] is unlocked once ([`DataDir::unlock`], with the passphrase
//! if the vault has one) and its clones share the unlocked vault, so the
//! rest of the node reads keys as before; a vault without a passphrase is
//! unlocked on first use. A data directory of an earlier version (plain
//! `author.key`, `transport.key`, `pseudonym`, … files) is converted at its
//! first unlock: the sealed files are written durably, then the old ones
//! removed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use libp2p::identity::Keypair;
use protocol::{
    CommunityId, CommunityManifest, CommunitySecret, Identity, SecretKey, SignedManifest,
};
use zeroize::Zeroizing;

use crate::error::NodeError;
use crate::vault::{self, KdfParams, Role, Vault, VaultError};

const PORT: &str = "port";
const MARKER: &str = "MUTUAL";
/// The directory of the master key and the sealed files.
const VAULT: &str = "vault";
/// The master key's file in the vault directory.
const MASTER: &str = "master";
/// Name of the control socket inside the data directory.
pub const SOCKET: &str = "mutual.sock";
/// Name of the store directory inside the data directory.
pub const STORE: &str = "store";

/// The file an earlier version kept each sealed file's contents in, plain.
fn legacy_name(role: Role) -> &'static str {
    match role.file {
        "author" => "author.key",
        "transport" => "transport.key",
        other => other,
    }
}

/// How to recover from damage to the file of `role` (or the master key).
fn recovery_for(role: Option<Role>) -> &'static str {
    match role {
        None | Some(Role::AUTHOR) => {
            "your identity comes back only from your recovery phrase: run `mutual init \
             --restore` with a new --data-dir and type the 24 words"
        }
        Some(Role::TRANSPORT) => {
            "delete it: `mutual run` makes a new one (peers then see a new peer id)"
        }
        Some(Role::PSEUDONYM) => "delete it, then set your pseudonym again",
        Some(Role::COMMUNITY) | Some(Role::COMMUNITY_SECRET) => {
            "delete it and the community file, then join the community again with an invite"
        }
        Some(Role::BOOTSTRAP) => "delete it: the node finds its peers again from the community",
        Some(_) => "delete it: the app makes a new one (log in to the app again)",
    }
}

/// Options of a new identity ([`DataDir::init_with`]).
#[derive(Default)]
pub struct InitOptions {
    /// A pseudonym shown next to posts.
    pub name: Option<String>,
    /// Wrap the master key under this passphrase (none: stored plain).
    pub passphrase: Option<Zeroizing<Vec<u8>>>,
    /// Argon2id's cost (`None`: [`KdfParams::DEFAULT`]).
    pub kdf: Option<KdfParams>,
    /// The author key to keep (restored from a recovery phrase); `None`
    /// makes a new one.
    pub secret: Option<SecretKey>,
}

/// The unlocked vault shared by a data directory's clones.
#[derive(Default)]
struct VaultSlot {
    unlocked: OnceLock<Vault>,
    changed: tokio::sync::Notify,
}

/// A mutual data directory on disk.
#[derive(Clone)]
pub struct DataDir {
    path: PathBuf,
    slot: Arc<VaultSlot>,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir")
            .field("path", &self.path)
            .field("unlocked", &self.slot.unlocked.get().is_some())
            .finish()
    }
}

impl DataDir {
    /// Points at `path` (nothing is created until needed).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataDir {
            path: path.into(),
            slot: Arc::default(),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The control socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.path.join(SOCKET)
    }

    /// The store path.
    pub fn store_path(&self) -> PathBuf {
        self.path.join(STORE)
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }

    fn vault_dir(&self) -> PathBuf {
        self.path.join(VAULT)
    }

    /// The master key's file.
    pub fn master_path(&self) -> PathBuf {
        self.vault_dir().join(MASTER)
    }

    /// The sealed file of `role`.
    pub fn sealed_path(&self, role: Role) -> PathBuf {
        self.vault_dir().join(role.file)
    }

    /// Creates the directory (0700) if needed and checks that an existing
    /// one is ours: a non-empty directory without our marker is refused.
    pub fn ensure(&self) -> Result<(), NodeError> {
        if self.path.exists() {
            if !self.path.is_dir() {
                return Err(NodeError::NotOurs(self.display(), "it is a file".into()));
            }
            let empty = fs::read_dir(&self.path)
                .map_err(|e| NodeError::io(format!("reading {}", self.display()), e))?
                .next()
                .is_none();
            if !self.is_ours() && !empty {
                return Err(NodeError::NotOurs(
                    self.display(),
                    "it holds other files; choose an empty or new directory".into(),
                ));
            }
        } else {
            fs::create_dir_all(&self.path)
                .map_err(|e| NodeError::io(format!("creating {}", self.display()), e))?;
        }
        set_mode(&self.path, 0o700)?;
        let marker = self.path.join(MARKER);
        if !marker.exists() {
            write_private(
                &marker,
                b"This directory holds a mutual node's keys and store.\n",
            )?;
        }
        Ok(())
    }

    /// Whether the directory carries mutual's marker.
    fn is_ours(&self) -> bool {
        self.path.join(MARKER).exists()
    }

    /// Whether an identity exists here (sealed, or in an earlier version's
    /// plain file).
    pub fn has_identity(&self) -> bool {
        self.sealed_path(Role::AUTHOR).exists()
            || self.path.join(legacy_name(Role::AUTHOR)).exists()
    }

    /// Whether the vault needs a passphrase that has not been given yet.
    /// A damaged master-key file is an error naming it.
    pub fn is_locked(&self) -> Result<bool, NodeError> {
        if self.slot.unlocked.get().is_some() {
            return Ok(false);
        }
        let path = self.master_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(NodeError::io(format!("reading {}", path.display()), e)),
        };
        vault::needs_passphrase(&bytes).map_err(|e| self.vault_error(None, e))
    }

    /// Opens the vault with `passphrase` (ignored when it has none), for
    /// every clone of this data directory; an earlier version's directory
    /// is converted first (under `passphrase`, if given). Nothing on disk
    /// changes when the passphrase is wrong or missing.
    pub fn unlock(&self, passphrase: Option<&[u8]>) -> Result<(), NodeError> {
        self.unlock_with(passphrase, KdfParams::DEFAULT)
    }

    /// [`DataDir::unlock`] with the Argon2id cost of a conversion's new
    /// passphrase (tests use cheap ones).
    pub fn unlock_with(&self, passphrase: Option<&[u8]>, kdf: KdfParams) -> Result<(), NodeError> {
        if self.slot.unlocked.get().is_some() {
            return Ok(());
        }
        let path = self.master_path();
        let vault = match fs::read(&path) {
            Ok(bytes) => {
                Vault::open_master(&bytes, passphrase).map_err(|e| self.vault_error(None, e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.path.join(legacy_name(Role::AUTHOR)).exists() {
                    return Err(if self.sealed_path(Role::AUTHOR).exists() {
                        NodeError::DamagedKey {
                            file: path.display().to_string(),
                            why: "it is missing".into(),
                            fix: recovery_for(None).into(),
                        }
                    } else {
                        NodeError::NoIdentity(self.display())
                    });
                }
                self.convert(passphrase, kdf)?
            }
            Err(e) => return Err(NodeError::io(format!("reading {}", path.display()), e)),
        };
        let _ = self.slot.unlocked.set(vault);
        self.slot.changed.notify_waiters();
        self.remove_legacy()?;
        Ok(())
    }

    /// Returns once the vault is unlocked (by [`DataDir::unlock`] on any
    /// clone): how `mutual run` waits for the passphrase from elsewhere.
    pub async fn wait_unlocked(&self) {
        loop {
            let changed = self.slot.changed.notified();
            if self.slot.unlocked.get().is_some() {
                return;
            }
            changed.await;
        }
    }

    /// The unlocked vault; a vault without a passphrase is unlocked here.
    fn vault(&self) -> Result<&Vault, NodeError> {
        if self.slot.unlocked.get().is_none() {
            self.unlock(None)?;
        }
        self.slot
            .unlocked
            .get()
            .ok_or_else(|| NodeError::Locked(self.display()))
    }

    /// The secret the store derives its keys from.
    pub fn store_secret(&self) -> Result<[u8; 32], NodeError> {
        Ok(self.vault()?.store_secret())
    }

    /// The keys this data directory's store is sealed under (from the
    /// vault's master key: a locked vault has none).
    pub fn store_keys(&self) -> Result<crate::store::StoreKeys, NodeError> {
        Ok(crate::store::StoreKeys::derive(
            &self.vault()?.store_secret(),
        ))
    }

    fn vault_error(&self, role: Option<Role>, e: VaultError) -> NodeError {
        let file = match role {
            Some(r) => self.sealed_path(r),
            None => self.master_path(),
        };
        match e {
            VaultError::Locked => NodeError::Locked(self.display()),
            VaultError::WrongPassphrase => NodeError::WrongPassphrase(self.display()),
            VaultError::Damaged(why) => NodeError::DamagedKey {
                file: file.display().to_string(),
                why: why.into(),
                fix: recovery_for(role).into(),
            },
            VaultError::BadPhrase(why) => NodeError::BadInput(why),
        }
    }

    /// The plain contents of the sealed file of `role` (`None`: no such
    /// file). A file that fails to open is an error naming it and what to
    /// do.
    pub fn read_sealed(&self, role: Role) -> Result<Option<Zeroizing<Vec<u8>>>, NodeError> {
        let vault = self.vault()?;
        let path = self.sealed_path(role);
        match fs::read(&path) {
            Ok(bytes) => vault
                .open(role, &bytes)
                .map(Some)
                .map_err(|e| self.vault_error(Some(role), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NodeError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Seals `plain` as the file of `role` (atomically, durably, 0600).
    pub fn write_sealed(&self, role: Role, plain: &[u8]) -> Result<(), NodeError> {
        let sealed = self.vault()?.seal(role, plain);
        self.make_vault_dir()?;
        write_private(&self.sealed_path(role), &sealed)
    }

    /// Removes the sealed file of `role`, if any.
    pub fn remove_sealed(&self, role: Role) -> Result<(), NodeError> {
        let path = self.sealed_path(role);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.vault_dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NodeError::io(format!("removing {}", path.display()), e)),
        }
    }

    fn make_vault_dir(&self) -> Result<(), NodeError> {
        let dir = self.vault_dir();
        if !dir.is_dir() {
            fs::create_dir_all(&dir)
                .map_err(|e| NodeError::io(format!("creating {}", dir.display()), e))?;
            set_mode(&dir, 0o700)?;
            sync_dir(&self.path)?;
        }
        Ok(())
    }

    /// Makes the author and transport keys; refuses to overwrite.
    pub fn init(&self, name: Option<String>) -> Result<Identity, NodeError> {
        self.init_with(InitOptions {
            name,
            ..InitOptions::default()
        })
    }

    /// Makes a new vault with a new transport key and the author key of
    /// `options` (new, or restored from a recovery phrase); refuses to
    /// overwrite an identity. The author key is written last: its presence
    /// marks a complete identity.
    pub fn init_with(&self, options: InitOptions) -> Result<Identity, NodeError> {
        let name = check_pseudonym(options.name)?;
        self.ensure()?;
        if self.has_identity() {
            return Err(NodeError::IdentityExists(self.display()));
        }
        let identity = Identity {
            secret: options.secret.unwrap_or_else(SecretKey::generate),
            name,
        };
        let vault = Vault::generate();
        let master = vault.master_file(
            options.passphrase.as_ref().map(|p| p.as_slice()),
            options.kdf.unwrap_or(KdfParams::DEFAULT),
        );
        self.make_vault_dir()?;
        write_private(&self.master_path(), &master)?;
        let transport = Zeroizing::new(new_transport_key()?);
        let files: Vec<(Role, Zeroizing<Vec<u8>>)> = [
            Some((Role::TRANSPORT, transport)),
            identity
                .name
                .as_ref()
                .map(|n| (Role::PSEUDONYM, Zeroizing::new(n.as_bytes().to_vec()))),
            Some((Role::AUTHOR, vault::author_plain(&identity.secret))),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (role, plain) in files {
            write_private(&self.sealed_path(role), &vault.seal(role, &plain))?;
        }
        // A vault left by an interrupted `init` is replaced: this one is
        // the directory's from now on.
        if self.slot.unlocked.get().is_none() {
            let _ = self.slot.unlocked.set(vault);
            self.slot.changed.notify_waiters();
        }
        Ok(identity)
    }

    /// Converts an earlier version's plain files: checks them, writes the
    /// sealed files and then the master key (durably: until it exists the
    /// old files are the directory's), then removes the old files.
    fn convert(&self, passphrase: Option<&[u8]>, kdf: KdfParams) -> Result<Vault, NodeError> {
        let mut files = Vec::new();
        for role in Role::ALL {
            let path = self.path.join(legacy_name(role));
            match fs::read(&path) {
                Ok(bytes) => files.push((role, Zeroizing::new(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NodeError::io(format!("reading {}", path.display()), e)),
            }
        }
        for (role, bytes) in files.iter_mut() {
            if *role == Role::AUTHOR {
                let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    NodeError::NotOurs(
                        self.display(),
                        format!("{} is not a key file", legacy_name(Role::AUTHOR)),
                    )
                })?;
                *bytes = vault::author_plain(&SecretKey::from_bytes(&seed));
            }
            if *role == Role::PSEUDONYM {
                let path = self.path.join(legacy_name(Role::PSEUDONYM));
                let name = pseudonym_text(&path, bytes)?;
                *bytes = Zeroizing::new(name.unwrap_or_default().into_bytes());
            }
        }
        let vault = Vault::generate();
        self.make_vault_dir()?;
        for (role, plain) in &files {
            if *role == Role::PSEUDONYM && plain.is_empty() {
                continue;
            }
            write_private(&self.sealed_path(*role), &vault.seal(*role, plain))?;
        }
        write_private(&self.master_path(), &vault.master_file(passphrase, kdf))?;
        tracing::info!(
            "{}: the keys are now sealed in {} ({})",
            self.display(),
            self.vault_dir().display(),
            if passphrase.is_some() {
                "under your passphrase"
            } else {
                "without a passphrase: `mutual passphrase` sets one"
            }
        );
        Ok(vault)
    }

    /// Removes an earlier version's plain files once the vault is written
    /// (a conversion interrupted after writing the master key finishes
    /// here).
    fn remove_legacy(&self) -> Result<(), NodeError> {
        let mut removed = false;
        for role in Role::ALL {
            let path = self.path.join(legacy_name(role));
            match fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NodeError::io(format!("removing {}", path.display()), e)),
            }
        }
        if removed {
            sync_dir(&self.path)?;
        }
        Ok(())
    }

    /// Sets, changes (`Some`) or removes (`None`) the passphrase of the
    /// unlocked vault. Only the master-key file is rewritten, atomically
    /// (a temporary file, synced, renamed over it, the directory synced):
    /// a crash at any moment leaves the old file or the new one.
    pub fn set_passphrase(
        &self,
        passphrase: Option<&[u8]>,
        kdf: KdfParams,
    ) -> Result<(), NodeError> {
        let file = self.vault()?.master_file(passphrase, kdf);
        write_private(&self.master_path(), &file)
    }

    /// The recovery phrase of this identity's author key.
    pub fn recovery_phrase(&self) -> Result<Zeroizing<String>, NodeError> {
        Ok(vault::phrase_of(&self.identity()?.secret))
    }

    /// Loads the author identity, with the pseudonym of the sealed
    /// pseudonym file. A pseudonym the network would refuse (over
    /// [`protocol::MAX_PSEUDONYM_BYTES`], or not text) is refused here, at
    /// start, naming the file: otherwise the node would start and every
    /// post fail, or the person would post anonymously without knowing.
    pub fn identity(&self) -> Result<Identity, NodeError> {
        if !self.has_identity() {
            return Err(NodeError::NoIdentity(self.display()));
        }
        let plain = self
            .read_sealed(Role::AUTHOR)?
            .ok_or_else(|| NodeError::NoIdentity(self.display()))?;
        let secret =
            vault::author_of(&plain).map_err(|e| self.vault_error(Some(Role::AUTHOR), e))?;
        Ok(Identity {
            secret,
            name: self.pseudonym()?,
        })
    }

    /// The pseudonym (trimmed; none if absent or blank).
    fn pseudonym(&self) -> Result<Option<String>, NodeError> {
        match self.read_sealed(Role::PSEUDONYM)? {
            Some(bytes) => pseudonym_text(&self.sealed_path(Role::PSEUDONYM), &bytes),
            None => Ok(None),
        }
    }

    /// Loads the transport key pair (the peer id).
    pub fn transport_key(&self) -> Result<Keypair, NodeError> {
        let Some(bytes) = self.read_sealed(Role::TRANSPORT)? else {
            return Err(if self.has_identity() {
                NodeError::BadInput(format!(
                    "{} has an identity but no transport key ({}); `mutual run` makes a new one",
                    self.display(),
                    self.sealed_path(Role::TRANSPORT).display()
                ))
            } else {
                NodeError::NoIdentity(self.display())
            });
        };
        Keypair::from_protobuf_encoding(&bytes).map_err(|_| NodeError::DamagedKey {
            file: self.sealed_path(Role::TRANSPORT).display().to_string(),
            why: "it holds no transport key".into(),
            fix: recovery_for(Some(Role::TRANSPORT)).into(),
        })
    }

    /// Makes a transport key if an identity exists without one (a lost or
    /// deleted transport key file). The transport key is not the identity:
    /// it only names this node on the network, so a new one costs nothing
    /// but a new peer id, which peers learn again. Returns the key file's
    /// path when it made one, so the caller can say so.
    pub fn ensure_transport_key(&self) -> Result<Option<PathBuf>, NodeError> {
        let path = self.sealed_path(Role::TRANSPORT);
        if !self.has_identity() || self.read_sealed(Role::TRANSPORT)?.is_some() {
            return Ok(None);
        }
        self.write_sealed(Role::TRANSPORT, &Zeroizing::new(new_transport_key()?))?;
        Ok(Some(path))
    }

    /// The community manifest, if this directory belongs to one.
    pub fn community(&self) -> Result<Option<SignedManifest>, NodeError> {
        let Some(bytes) = self.read_sealed(Role::COMMUNITY)? else {
            return Ok(None);
        };
        protocol::wire::decode(&bytes, protocol::community::MAX_MANIFEST_BYTES)
            .map(Some)
            .map_err(|e| {
                NodeError::BadInput(format!(
                    "the community file {} is damaged ({e}); {}",
                    self.sealed_path(Role::COMMUNITY).display(),
                    recovery_for(Some(Role::COMMUNITY))
                ))
            })
    }

    /// Creates a community with this identity as admin.
    pub fn create_community(
        &self,
        name: &str,
        rules: &str,
        now_ms: u64,
    ) -> Result<SignedManifest, NodeError> {
        let identity = self.identity()?;
        if let Some(existing) = self.community()? {
            return Err(NodeError::CommunityExists(existing.content.name));
        }
        let manifest = CommunityManifest::create(name, rules, &identity.secret, now_ms)?;
        self.write_sealed(
            Role::COMMUNITY_SECRET,
            &CommunitySecret::generate().to_bytes(),
        )?;
        self.write_sealed(Role::COMMUNITY, &protocol::wire::encode(&manifest))?;
        Ok(manifest)
    }

    /// The community's secret: the one made at `community create` or
    /// carried by the invite this node joined with; for a community
    /// created before secrets existed, the one derived from its id
    /// ([`CommunitySecret::legacy`]). `None` without a community.
    pub fn community_secret(&self) -> Result<Option<CommunitySecret>, NodeError> {
        let Some(manifest) = self.community()? else {
            return Ok(None);
        };
        match self.read_sealed(Role::COMMUNITY_SECRET)? {
            None => Ok(Some(CommunitySecret::legacy(&manifest.id()))),
            Some(bytes) => match <[u8; 32]>::try_from(bytes.as_slice()) {
                Ok(b) => Ok(Some(CommunitySecret::from_bytes(b))),
                Err(_) => Err(NodeError::BadInput(format!(
                    "the community secret file {} is damaged (not 32 bytes); {}",
                    self.sealed_path(Role::COMMUNITY_SECRET).display(),
                    recovery_for(Some(Role::COMMUNITY_SECRET))
                ))),
            },
        }
    }

    /// Joins the community of `manifest` (fetched for an invite and
    /// checked against its id, see [`crate::invites::join`]) and remembers
    /// `bootstrap` addresses. Joining the community this directory already
    /// belongs to only adds the addresses; another community is refused.
    /// `secret` is the community's, from the invite code.
    /// The manifest is written last: its presence marks a finished join.
    pub fn join_community(
        &self,
        manifest: &SignedManifest,
        secret: &CommunitySecret,
        bootstrap: &[String],
        now_ms: u64,
    ) -> Result<CommunityId, NodeError> {
        self.identity()?;
        let id = manifest.verify_manifest(now_ms)?;
        if let Some(existing) = self.community()? {
            if existing.id() == id {
                self.add_bootstrap(bootstrap)?;
                return Ok(id);
            }
            return Err(NodeError::CommunityExists(existing.content.name));
        }
        self.add_bootstrap(bootstrap)?;
        // The secret before the manifest: a join interrupted between them
        // is done again by the next `community join`.
        self.write_sealed(Role::COMMUNITY_SECRET, &secret.to_bytes())?;
        self.write_sealed(Role::COMMUNITY, &protocol::wire::encode(manifest))?;
        Ok(id)
    }

    /// Bootstrap addresses remembered from invites. A line that is not a
    /// multiaddress is skipped with a warning naming the file and line; a
    /// file that does not open is skipped with a warning.
    pub fn bootstrap(&self) -> Vec<String> {
        let path = self.sealed_path(Role::BOOTSTRAP);
        let bytes = match self.read_sealed(Role::BOOTSTRAP) {
            Ok(Some(b)) => b,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!("{e}");
                return Vec::new();
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let (addrs, warnings) = parse_bootstrap(&path, &text);
        for w in warnings {
            tracing::warn!("{w}");
        }
        addrs
    }

    /// Destroys this data directory: the master key and every other file
    /// of the vault (and an earlier version's plain key files) are
    /// overwritten with random bytes and synced, then the whole directory
    /// is removed. Under a passphrase, the master key's overwrite alone
    /// leaves the rest unreadable. A directory without mutual's marker is
    /// refused, untouched. The node must be stopped first.
    pub fn forget(&self) -> Result<(), NodeError> {
        if !self.path.exists() {
            return Ok(());
        }
        if !self.is_ours() {
            return Err(NodeError::NotOurs(
                self.display(),
                "it has no MUTUAL marker file, so it is left alone".into(),
            ));
        }
        let mut secrets: Vec<PathBuf> = vec![self.master_path()];
        if let Ok(entries) = fs::read_dir(self.vault_dir()) {
            secrets.extend(entries.flatten().map(|e| e.path()));
        }
        secrets.extend(Role::ALL.iter().map(|r| self.path.join(legacy_name(*r))));
        secrets.push(self.web_file("login"));
        for path in secrets {
            overwrite(&path)?;
        }
        fs::remove_dir_all(&self.path)
            .map_err(|e| NodeError::io(format!("removing {}", self.display()), e))?;
        if let Some(parent) = self.path.parent() {
            if !parent.as_os_str().is_empty() {
                let _ = sync_dir(parent);
            }
        }
        Ok(())
    }

    /// Takes group and other permissions away from the data directory and
    /// everything in it (files become at most 0600, directories 0700):
    /// keys, the store's files and the rest are this user's alone, even if
    /// they were made under a loose umask or loosened by hand. Symbolic
    /// links and sockets are left alone. Returns each path fixed with its
    /// mode before, so the caller can say so.
    pub fn make_private(&self) -> Result<Vec<(PathBuf, u32)>, NodeError> {
        let mut fixed = Vec::new();
        #[cfg(unix)]
        {
            let mut pending = vec![self.path.clone()];
            while let Some(path) = pending.pop() {
                let meta = fs::symlink_metadata(&path)
                    .map_err(|e| NodeError::io(format!("reading {}", path.display()), e))?;
                let kind = meta.file_type();
                if kind.is_dir() {
                    let entries = fs::read_dir(&path)
                        .map_err(|e| NodeError::io(format!("reading {}", path.display()), e))?;
                    for entry in entries {
                        let entry = entry
                            .map_err(|e| NodeError::io(format!("reading {}", path.display()), e))?;
                        pending.push(entry.path());
                    }
                } else if !kind.is_file() {
                    continue;
                }
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o7777;
                if mode & 0o077 != 0 {
                    set_mode(&path, mode & 0o700)?;
                    fixed.push((path, mode));
                }
            }
            fixed.sort();
        }
        Ok(fixed)
    }

    /// The port this node listens on, remembered from its first start (or
    /// the last `--port`), so peers find it again at the same address.
    /// A damaged file is reported, not silently replaced: the node would
    /// otherwise move and lose its peers.
    pub fn listen_port(&self) -> Result<Option<u16>, NodeError> {
        let path = self.path.join(PORT);
        match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u16>().map(Some).map_err(|_| {
                NodeError::BadInput(format!(
                    "{} should hold a port number; fix it, delete it (a new port is then \
                     chosen), or start with --port PORT",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NodeError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Keeps a new pseudonym (`None` or blank: none) for the next start,
    /// checked as `init` checks one; returns it trimmed.
    pub fn set_pseudonym(&self, name: Option<String>) -> Result<Option<String>, NodeError> {
        let name = check_pseudonym(name)?;
        match &name {
            Some(n) => self.write_sealed(Role::PSEUDONYM, n.as_bytes())?,
            None => self.remove_sealed(Role::PSEUDONYM)?,
        }
        Ok(name)
    }

    /// A file of the web app (`web.*`) in the data directory.
    pub fn web_file(&self, name: &str) -> PathBuf {
        self.path.join(format!("web.{name}"))
    }

    /// Remembers the listen port for the next start.
    pub fn remember_port(&self, port: u16) -> Result<(), NodeError> {
        if self.listen_port().ok().flatten() == Some(port) {
            return Ok(());
        }
        write_private(&self.path.join(PORT), port.to_string().as_bytes())
    }

    fn add_bootstrap(&self, addrs: &[String]) -> Result<(), NodeError> {
        let mut all = self.bootstrap();
        let before = all.len();
        for a in addrs {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        if all.len() == before {
            return Ok(());
        }
        self.write_sealed(Role::BOOTSTRAP, all.join("\n").as_bytes())
    }
}

/// A new transport key pair, encoded for its file.
fn new_transport_key() -> Result<Vec<u8>, NodeError> {
    Keypair::generate_ed25519()
        .to_protobuf_encoding()
        .map_err(|e| NodeError::BadInput(format!("encoding a new transport key: {e}")))
}

/// The addresses of a bootstrap file's text (`path` is for messages), and
/// a warning for each line that is not a multiaddress.
fn parse_bootstrap(path: &Path, text: &str) -> (Vec<String>, Vec<String>) {
    let mut addrs = Vec::new();
    let mut warnings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.parse::<libp2p::Multiaddr>() {
            Ok(_) => addrs.push(line.to_string()),
            Err(e) => warnings.push(format!(
                "{} line {}: not a multiaddress ({e}), ignored; fix or delete the line",
                path.display(),
                n + 1
            )),
        }
    }
    (addrs, warnings)
}

/// A pseudonym as `init` accepts one: trimmed, blank is none, at most
/// [`protocol::MAX_PSEUDONYM_BYTES`] bytes.
pub fn check_pseudonym(name: Option<String>) -> Result<Option<String>, NodeError> {
    let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if let Some(n) = &name {
        if n.len() > protocol::MAX_PSEUDONYM_BYTES {
            return Err(NodeError::BadInput(format!(
                "the pseudonym is {} bytes, the limit is {}",
                n.len(),
                protocol::MAX_PSEUDONYM_BYTES
            )));
        }
    }
    Ok(name)
}

/// The pseudonym of a pseudonym file's bytes (`path` is for messages):
/// trimmed, none if blank, refused if not text or over the limit.
fn pseudonym_text(path: &Path, bytes: &[u8]) -> Result<Option<String>, NodeError> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        NodeError::BadInput(format!(
            "the pseudonym file {} is not UTF-8 text; {}",
            path.display(),
            recovery_for(Some(Role::PSEUDONYM))
        ))
    })?;
    let name = text.trim();
    if name.len() > protocol::MAX_PSEUDONYM_BYTES {
        return Err(NodeError::BadInput(format!(
            "the pseudonym in {} is {} bytes, over the limit of {}; {}",
            path.display(),
            name.len(),
            protocol::MAX_PSEUDONYM_BYTES,
            recovery_for(Some(Role::PSEUDONYM))
        )));
    }
    Ok(Some(name.to_string()).filter(|n| !n.is_empty()))
}

/// Writes a file readable by its owner alone (0600), atomically and
/// durably: a temporary file beside it, synced, renamed over it, then the
/// directory synced. A crash at any moment leaves the old file or the new
/// one, never half of one.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let ctx = || format!("writing {}", path.display());
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| NodeError::io(ctx(), e))?;
        f.write_all(bytes).map_err(|e| NodeError::io(ctx(), e))?;
        f.sync_all().map_err(|e| NodeError::io(ctx(), e))?;
    }
    set_mode(&tmp, 0o600)?;
    fs::rename(&tmp, path).map_err(|e| NodeError::io(ctx(), e))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

/// Overwrites a file in place with random bytes of its length and syncs
/// it (a missing file or a directory is skipped).
fn overwrite(path: &Path) -> Result<(), NodeError> {
    use rand::RngCore;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.is_file() {
        return Ok(());
    }
    let ctx = || format!("overwriting {}", path.display());
    let mut noise = vec![0u8; meta.len() as usize];
    rand::rngs::OsRng.fill_bytes(&mut noise);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| NodeError::io(ctx(), e))?;
    f.write_all(&noise).map_err(|e| NodeError::io(ctx(), e))?;
    f.sync_all().map_err(|e| NodeError::io(ctx(), e))
}

/// Syncs a directory, so the renames and removals in it survive a crash
/// (Unix; elsewhere a no-op).
fn sync_dir(dir: &Path) -> Result<(), NodeError> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| NodeError::io(format!("syncing {}", dir.display()), e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Sets a path's permission bits (Unix only).
pub fn set_mode(path: &Path, mode: u32) -> Result<(), NodeError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| NodeError::io(format!("setting permissions of {}", path.display()), e))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_refuses_to_overwrite_and_sets_modes() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("d"));
        let id = dd.init(Some("river".into())).unwrap();
        assert!(matches!(dd.init(None), Err(NodeError::IdentityExists(_))));
        let back = dd.identity().unwrap();
        assert_eq!(back.public(), id.public());
        assert_eq!(back.name.as_deref(), Some("river"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(dd.path()), 0o700);
            assert_eq!(mode(&dd.vault_dir()), 0o700);
            assert_eq!(mode(&dd.master_path()), 0o600);
            assert_eq!(mode(&dd.sealed_path(Role::AUTHOR)), 0o600);
            assert_eq!(mode(&dd.sealed_path(Role::TRANSPORT)), 0o600);
        }
    }

    #[test]
    fn foreign_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("thesis.tex"), b"x").unwrap();
        let dd = DataDir::new(dir.path());
        assert!(matches!(dd.init(None), Err(NodeError::NotOurs(..))));
        assert!(dir.path().join("thesis.tex").exists());
    }

    /// An earlier version's directory, as its `init` wrote it.
    fn legacy_dir(path: &Path, name: Option<&str>) -> (DataDir, SecretKey) {
        fs::create_dir_all(path).unwrap();
        fs::write(path.join(MARKER), b"x").unwrap();
        let secret = SecretKey::generate();
        fs::write(path.join("author.key"), secret.to_bytes()).unwrap();
        fs::write(path.join("transport.key"), new_transport_key().unwrap()).unwrap();
        if let Some(n) = name {
            fs::write(path.join("pseudonym"), n).unwrap();
        }
        (DataDir::new(path), secret)
    }

    #[test]
    fn a_pseudonym_the_network_would_refuse_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (dd, _) = legacy_dir(&dir.path().join("d"), None);
        let file = dd.path().join("pseudonym");
        fs::write(&file, "x".repeat(protocol::MAX_PSEUDONYM_BYTES + 1)).unwrap();
        let err = dd.identity().unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains("65 bytes, over the limit of 64"), "{err}");
        fs::write(&file, b"riv\xffer").unwrap();
        let err = dd.identity().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "the pseudonym file {} is not UTF-8 text",
                file.display()
            )),
            "{err}"
        );
        assert!(!dd.master_path().exists(), "nothing converted");
        // At the limit, with white space around it, is fine.
        let longest = "y".repeat(protocol::MAX_PSEUDONYM_BYTES);
        fs::write(&file, format!("  {longest}\n")).unwrap();
        assert_eq!(dd.identity().unwrap().name, Some(longest));
        dd.set_pseudonym(None).unwrap();
        assert_eq!(dd.identity().unwrap().name, None);
    }

    #[test]
    fn an_earlier_versions_plain_files_are_sealed_at_first_open_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (dd, secret) = legacy_dir(&dir.path().join("d"), Some("river"));
        let peer =
            Keypair::from_protobuf_encoding(&fs::read(dd.path().join("transport.key")).unwrap())
                .unwrap()
                .public()
                .to_peer_id();
        let manifest = CommunityManifest::create("Circle", "", &secret, 1).unwrap();
        fs::write(
            dd.path().join("community"),
            protocol::wire::encode(&manifest),
        )
        .unwrap();
        fs::write(dd.path().join("bootstrap"), "/ip4/127.0.0.1/tcp/1\n").unwrap();
        assert!(dd.has_identity());
        // A passphrase given at the first open seals the converted vault.
        dd.unlock_with(Some(b"pass"), KdfParams::INSECURE_FOR_TESTS)
            .unwrap();
        for old in [
            "author.key",
            "transport.key",
            "pseudonym",
            "community",
            "bootstrap",
        ] {
            assert!(!dd.path().join(old).exists(), "{old} removed");
        }
        let again = DataDir::new(dd.path());
        assert!(again.is_locked().unwrap());
        assert!(matches!(again.identity(), Err(NodeError::Locked(_))));
        again.unlock(Some(b"pass")).unwrap();
        let id = again.identity().unwrap();
        assert_eq!(id.public(), secret.public());
        assert_eq!(id.name.as_deref(), Some("river"));
        assert_eq!(again.transport_key().unwrap().public().to_peer_id(), peer);
        assert_eq!(again.community().unwrap(), Some(manifest));
        assert_eq!(again.bootstrap(), vec!["/ip4/127.0.0.1/tcp/1".to_string()]);
    }

    #[test]
    fn a_conversion_interrupted_before_its_master_key_is_done_again() {
        let dir = tempfile::tempdir().unwrap();
        let (dd, secret) = legacy_dir(&dir.path().join("d"), Some("river"));
        dd.unlock(None).unwrap();
        // As if the crash came before the master key was written: the
        // sealed files of a lost vault, and the old files still there.
        fs::remove_file(dd.master_path()).unwrap();
        fs::write(dd.path().join("author.key"), secret.to_bytes()).unwrap();
        fs::write(dd.path().join("pseudonym"), "river").unwrap();
        let again = DataDir::new(dd.path());
        assert_eq!(again.identity().unwrap().public(), secret.public());
        assert_eq!(again.identity().unwrap().name.as_deref(), Some("river"));
        assert!(!dd.path().join("author.key").exists());
    }

    #[test]
    fn a_wrong_or_missing_passphrase_changes_nothing_and_only_the_new_one_opens() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("d"));
        let id = dd
            .init_with(InitOptions {
                name: Some("river".into()),
                passphrase: Some(Zeroizing::new(b"old".to_vec())),
                kdf: Some(KdfParams::INSECURE_FOR_TESTS),
                secret: None,
            })
            .unwrap();
        dd.create_community("Circle", "", 1).unwrap();
        let files = |d: &DataDir| -> Vec<(PathBuf, Vec<u8>)> {
            let mut all: Vec<_> = fs::read_dir(d.vault_dir())
                .unwrap()
                .flatten()
                .map(|e| (e.path(), fs::read(e.path()).unwrap()))
                .collect();
            all.sort();
            all
        };
        let before = files(&dd);
        let fresh = DataDir::new(dd.path());
        assert!(matches!(fresh.identity(), Err(NodeError::Locked(_))));
        let err = fresh.unlock(Some(b"olf")).unwrap_err();
        assert!(matches!(err, NodeError::WrongPassphrase(_)), "{err}");
        assert_eq!(files(&dd), before, "nothing changed");

        fresh.unlock(Some(b"old")).unwrap();
        fresh
            .set_passphrase(Some(b"new"), KdfParams::INSECURE_FOR_TESTS)
            .unwrap();
        let after = DataDir::new(dd.path());
        assert!(matches!(
            after.unlock(Some(b"old")),
            Err(NodeError::WrongPassphrase(_))
        ));
        after.unlock(Some(b"new")).unwrap();
        assert_eq!(after.identity().unwrap().public(), id.public());
        assert_eq!(after.store_secret().unwrap(), dd.store_secret().unwrap());
        // Only the master key's file changed.
        let now = files(&dd);
        assert_eq!(now.len(), before.len());
        for ((p1, b1), (p2, b2)) in before.iter().zip(&now) {
            assert_eq!(p1, p2);
            assert_eq!(b1 == b2, *p1 != dd.master_path(), "{}", p1.display());
        }
        // Removed: opens without one.
        after
            .set_passphrase(None, KdfParams::INSECURE_FOR_TESTS)
            .unwrap();
        let plain = DataDir::new(dd.path());
        assert!(!plain.is_locked().unwrap());
        assert_eq!(plain.identity().unwrap().public(), id.public());
    }

    #[test]
    fn a_passphrase_change_cut_short_at_any_step_opens_with_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("d"));
        dd.init_with(InitOptions {
            passphrase: Some(Zeroizing::new(b"old".to_vec())),
            kdf: Some(KdfParams::INSECURE_FOR_TESTS),
            ..InitOptions::default()
        })
        .unwrap();
        let new = dd
            .vault()
            .unwrap()
            .master_file(Some(b"new"), KdfParams::INSECURE_FOR_TESTS);
        let tmp = dd.vault_dir().join("master.tmp");
        // The crash came while the temporary file was written (each
        // length), or before its rename: the master key is the old one.
        for cut in [0, 1, new.len() / 2, new.len() - 1, new.len()] {
            fs::write(&tmp, &new[..cut]).unwrap();
            let d = DataDir::new(dd.path());
            d.unlock(Some(b"old")).unwrap();
            assert!(d.identity().is_ok());
        }
        // A later change goes through over the leftover.
        dd.set_passphrase(Some(b"new"), KdfParams::INSECURE_FOR_TESTS)
            .unwrap();
        assert!(!tmp.exists());
        DataDir::new(dd.path()).unlock(Some(b"new")).unwrap();
    }

    #[test]
    fn a_flipped_bit_in_the_author_key_stops_naming_the_file_and_the_phrase() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("d"));
        dd.init(None).unwrap();
        for role in [None, Some(Role::AUTHOR)] {
            let file = role.map_or(dd.master_path(), |r| dd.sealed_path(r));
            let good = fs::read(&file).unwrap();
            for byte in [0, good.len() / 2, good.len() - 1] {
                let mut bad = good.clone();
                bad[byte] ^= 0x04;
                fs::write(&file, &bad).unwrap();
                let err = DataDir::new(dd.path()).identity().unwrap_err().to_string();
                assert!(
                    err.starts_with(&format!("{} is damaged", file.display())),
                    "{err}"
                );
                assert!(err.contains("recovery phrase"), "{err}");
                assert!(err.contains("mutual init --restore"), "{err}");
            }
            fs::write(&file, &good).unwrap();
        }
    }

    #[test]
    fn the_recovery_phrase_restores_the_same_author_key_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("a"));
        let id = dd.init(None).unwrap();
        let phrase = dd.recovery_phrase().unwrap();
        let secret = vault::secret_of_phrase(&phrase).unwrap();
        let other = DataDir::new(dir.path().join("b"));
        let back = other
            .init_with(InitOptions {
                secret: Some(secret),
                ..InitOptions::default()
            })
            .unwrap();
        assert_eq!(back.public(), id.public());
        assert_ne!(
            other.transport_key().unwrap().public().to_peer_id(),
            dd.transport_key().unwrap().public().to_peer_id(),
            "a new transport key"
        );
    }

    #[tokio::test]
    async fn a_node_waiting_locked_goes_on_when_another_clone_unlocks() {
        let dir = tempfile::tempdir().unwrap();
        let made = DataDir::new(dir.path().join("d"));
        made.init_with(InitOptions {
            passphrase: Some(Zeroizing::new(b"pass".to_vec())),
            kdf: Some(KdfParams::INSECURE_FOR_TESTS),
            ..InitOptions::default()
        })
        .unwrap();
        let locked = DataDir::new(made.path());
        let app_side = locked.clone();
        assert!(locked.is_locked().unwrap());
        let waiting = tokio::spawn({
            let locked = locked.clone();
            async move {
                locked.wait_unlocked().await;
                locked.identity().map(|i| i.public())
            }
        });
        assert!(matches!(
            app_side.unlock(Some(b"wrong")),
            Err(NodeError::WrongPassphrase(_))
        ));
        assert!(!waiting.is_finished(), "still locked");
        app_side.unlock(Some(b"pass")).unwrap();
        let unlocked = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the waiter saw the unlock")
            .unwrap()
            .unwrap();
        assert_eq!(unlocked, made.identity().unwrap().public());
    }

    #[test]
    fn forget_destroys_the_directory_and_refuses_a_foreign_one() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("d"));
        dd.init(None).unwrap();
        dd.forget().unwrap();
        assert!(!dd.path().exists());
        let foreign = dir.path().join("thesis");
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("chapter.tex"), b"x").unwrap();
        assert!(matches!(
            DataDir::new(&foreign).forget(),
            Err(NodeError::NotOurs(..))
        ));
        assert!(foreign.join("chapter.tex").exists());
    }

    #[test]
    fn a_lost_transport_key_is_remade_and_the_identity_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("d"));
        assert_eq!(
            dd.ensure_transport_key().unwrap(),
            None,
            "no identity: nothing"
        );
        let id = dd.init(None).unwrap();
        let old_peer = dd.transport_key().unwrap().public().to_peer_id();
        assert_eq!(dd.ensure_transport_key().unwrap(), None, "present: kept");
        assert_eq!(dd.transport_key().unwrap().public().to_peer_id(), old_peer);
        let file = dd.sealed_path(Role::TRANSPORT);
        fs::remove_file(&file).unwrap();
        let err = dd.transport_key().unwrap_err().to_string();
        assert!(
            err.contains("no transport key") && err.contains("`mutual run` makes"),
            "{err}"
        );
        assert_eq!(dd.ensure_transport_key().unwrap(), Some(file.clone()));
        assert_ne!(dd.transport_key().unwrap().public().to_peer_id(), old_peer);
        assert_eq!(dd.identity().unwrap().public(), id.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn garbage_in_the_bootstrap_file_is_named_by_line() {
        let path = Path::new("/d/bootstrap");
        let (addrs, warnings) = parse_bootstrap(
            path,
            "/ip4/127.0.0.1/tcp/1\n\nhello world\n  /ip4/127.0.0.1/tcp/2  \n/ip9/x\n",
        );
        assert_eq!(addrs, vec!["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("/d/bootstrap line 3: not a multiaddress"));
        assert!(warnings[1].starts_with("/d/bootstrap line 5: not a multiaddress"));
    }

    #[test]
    fn a_damaged_community_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("d"));
        dd.init(None).unwrap();
        dd.write_sealed(Role::COMMUNITY, b"not a manifest").unwrap();
        let file = dd.sealed_path(Role::COMMUNITY);
        let err = dd.community().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("the community file {} is damaged", file.display())),
            "{err}"
        );
        let mut bytes = fs::read(&file).unwrap();
        bytes[20] ^= 1;
        fs::write(&file, bytes).unwrap();
        let err = dd.community().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{} is damaged", file.display())),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn make_private_tightens_loose_files_and_directories_and_names_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("d"));
        dd.init(None).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let set = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
        let key = dd.sealed_path(Role::AUTHOR);
        let store = dd.path().join(STORE);
        fs::create_dir(&store).unwrap();
        let db = store.join("db");
        fs::write(&db, b"x").unwrap();
        set(&key, 0o644);
        set(&store, 0o755);
        set(&db, 0o664);
        set(dd.path(), 0o750);
        set(&dd.vault_dir(), 0o755);
        let fixed = dd.make_private().unwrap();
        let mut want = vec![
            (dd.path().to_path_buf(), 0o750),
            (dd.vault_dir(), 0o755),
            (key.clone(), 0o644),
            (store.clone(), 0o755),
            (db.clone(), 0o664),
        ];
        want.sort();
        assert_eq!(fixed, want);
        assert_eq!(mode(dd.path()), 0o700);
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&store), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dd.sealed_path(Role::TRANSPORT)), 0o600, "untouched");
        assert!(dd.make_private().unwrap().is_empty(), "nothing left to fix");
    }

    fn admin_other_community() -> SignedManifest {
        CommunityManifest::create("Other", "", &SecretKey::generate(), 1).unwrap()
    }

    #[test]
    fn community_create_and_join() {
        let dir = tempfile::tempdir().unwrap();
        let admin = DataDir::new(dir.path().join("a"));
        admin.init(None).unwrap();
        let m = admin.create_community("Circle", "Be kind", 1).unwrap();
        let secret = admin.community_secret().unwrap().unwrap();
        assert_ne!(secret, CommunitySecret::legacy(&m.id()), "a random secret");
        assert!(matches!(
            admin.create_community("Other", "", 1),
            Err(NodeError::CommunityExists(_))
        ));
        let member = DataDir::new(dir.path().join("b"));
        member.init(None).unwrap();
        let mut forged = m.clone();
        forged.content.rules = "Anything goes".into();
        assert!(member
            .join_community(&forged, &secret, &["/ip4/127.0.0.1/tcp/9".into()], 2)
            .is_err());
        assert_eq!(member.community().unwrap(), None, "nothing was written");
        assert!(member.bootstrap().is_empty(), "nothing was written");
        assert_eq!(member.community_secret().unwrap(), None);
        member
            .join_community(&m, &secret, &["/ip4/127.0.0.1/tcp/1".into()], 2)
            .unwrap();
        assert_eq!(member.community().unwrap().unwrap(), m);
        assert_eq!(member.community_secret().unwrap(), Some(secret.clone()));
        assert_eq!(member.bootstrap(), vec!["/ip4/127.0.0.1/tcp/1".to_string()]);
        let other = admin_other_community();
        assert!(matches!(
            member.join_community(&other, &secret, &[], 2),
            Err(NodeError::CommunityExists(_))
        ));
    }
}
