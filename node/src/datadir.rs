//! The data directory: keys (mode 0600), the community manifest, bootstrap
//! addresses from an invite, the store and the control socket. The directory
//! itself is mode 0700. Everything here works without a running node, so
//! `mutual init` and `mutual community create/join` need no daemon.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use protocol::{CommunityId, CommunityManifest, Identity, SecretKey, SignedManifest};

use crate::error::NodeError;

pub(crate) const AUTHOR_KEY: &str = "author.key";
const TRANSPORT_KEY: &str = "transport.key";
const PSEUDONYM: &str = "pseudonym";
const COMMUNITY: &str = "community";
const BOOTSTRAP: &str = "bootstrap";
const PORT: &str = "port";
const MARKER: &str = "MUTUAL";
/// Name of the control socket inside the data directory.
pub const SOCKET: &str = "mutual.sock";
/// Name of the store directory inside the data directory.
pub const STORE: &str = "store";

/// A mutual data directory on disk.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Points at `path` (nothing is created until needed).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataDir { path: path.into() }
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

    /// Creates the directory (0700) if needed and checks that an existing
    /// one is ours: a non-empty directory without our marker is refused.
    pub fn ensure(&self) -> Result<(), NodeError> {
        if self.path.exists() {
            if !self.path.is_dir() {
                return Err(NodeError::NotOurs(self.display(), "it is a file".into()));
            }
            let has_marker = self.path.join(MARKER).exists();
            let empty = fs::read_dir(&self.path)
                .map_err(|e| NodeError::io(format!("reading {}", self.display()), e))?
                .next()
                .is_none();
            if !has_marker && !empty {
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

    /// Whether an identity exists here.
    pub fn has_identity(&self) -> bool {
        self.path.join(AUTHOR_KEY).exists()
    }

    /// Makes the author and transport keys; refuses to overwrite.
    pub fn init(&self, name: Option<String>) -> Result<Identity, NodeError> {
        self.ensure()?;
        if self.has_identity() {
            return Err(NodeError::IdentityExists(self.display()));
        }
        let identity = Identity::generate(check_pseudonym(name)?);
        write_private(&self.path.join(TRANSPORT_KEY), &new_transport_key()?)?;
        if let Some(n) = &identity.name {
            write_private(&self.path.join(PSEUDONYM), n.as_bytes())?;
        }
        // The author key last: its presence marks a complete identity.
        write_private(&self.path.join(AUTHOR_KEY), &identity.secret.to_bytes())?;
        Ok(identity)
    }

    /// Loads the author identity, with the pseudonym of the `pseudonym`
    /// file. A pseudonym the network would refuse (over
    /// [`protocol::MAX_PSEUDONYM_BYTES`], or not text) is refused here, at
    /// start, naming the file: otherwise the node would start and every
    /// post fail, or the person would post anonymously without knowing.
    pub fn identity(&self) -> Result<Identity, NodeError> {
        let path = self.path.join(AUTHOR_KEY);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NodeError::NoIdentity(self.display()),
            _ => NodeError::io(format!("reading {}", path.display()), e),
        })?;
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            NodeError::NotOurs(self.display(), format!("{AUTHOR_KEY} is not a key file"))
        })?;
        Ok(Identity {
            secret: SecretKey::from_bytes(&seed),
            name: self.pseudonym()?,
        })
    }

    /// The pseudonym file's pseudonym (trimmed; none if absent or blank).
    fn pseudonym(&self) -> Result<Option<String>, NodeError> {
        let path = self.path.join(PSEUDONYM);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NodeError::io(format!("reading {}", path.display()), e)),
        };
        let text = String::from_utf8(bytes).map_err(|_| {
            NodeError::BadInput(format!(
                "the pseudonym file {} is not UTF-8 text; write your pseudonym in it as text, \
                 or delete it to post without one",
                path.display()
            ))
        })?;
        let name = text.trim();
        if name.len() > protocol::MAX_PSEUDONYM_BYTES {
            return Err(NodeError::BadInput(format!(
                "the pseudonym in {} is {} bytes, over the limit of {}; shorten it, or delete \
                 the file to post without one",
                path.display(),
                name.len(),
                protocol::MAX_PSEUDONYM_BYTES
            )));
        }
        Ok(Some(name.to_string()).filter(|n| !n.is_empty()))
    }

    /// Loads the transport key pair (the peer id).
    pub fn transport_key(&self) -> Result<Keypair, NodeError> {
        let path = self.path.join(TRANSPORT_KEY);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound if self.has_identity() => NodeError::BadInput(format!(
                "{} has an identity but no transport key ({TRANSPORT_KEY}); `mutual run` makes \
                 a new one",
                self.display()
            )),
            std::io::ErrorKind::NotFound => NodeError::NoIdentity(self.display()),
            _ => NodeError::io(format!("reading {}", path.display()), e),
        })?;
        Keypair::from_protobuf_encoding(&bytes).map_err(|_| {
            NodeError::NotOurs(self.display(), format!("{TRANSPORT_KEY} is not a key file"))
        })
    }

    /// Makes a transport key if an identity exists without one (a lost or
    /// deleted `transport.key`). The transport key is not the identity: it
    /// only names this node on the network, so a new one costs nothing but
    /// a new peer id, which peers learn again. Returns the key file's path
    /// when it made one, so the caller can say so.
    pub fn ensure_transport_key(&self) -> Result<Option<PathBuf>, NodeError> {
        let path = self.path.join(TRANSPORT_KEY);
        if !self.has_identity() || path.exists() {
            return Ok(None);
        }
        write_private(&path, &new_transport_key()?)?;
        Ok(Some(path))
    }

    /// The community manifest, if this directory belongs to one.
    pub fn community(&self) -> Result<Option<SignedManifest>, NodeError> {
        let path = self.path.join(COMMUNITY);
        match fs::read(&path) {
            Ok(bytes) => protocol::wire::decode(&bytes, protocol::community::MAX_MANIFEST_BYTES)
                .map(Some)
                .map_err(|e| {
                    NodeError::BadInput(format!(
                        "the community file {} is damaged ({e}); restore it from a backup, or \
                         join the community again with an invite",
                        path.display()
                    ))
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NodeError::io(format!("reading {}", path.display()), e)),
        }
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
        write_private(
            &self.path.join(COMMUNITY),
            &protocol::wire::encode(&manifest),
        )?;
        Ok(manifest)
    }

    /// Joins the community of `manifest` (fetched for an invite and
    /// checked against its id, see [`crate::invites::join`]) and remembers
    /// `bootstrap` addresses. Joining the community this directory already
    /// belongs to only adds the addresses; another community is refused.
    /// The manifest is written last: its presence marks a finished join.
    pub fn join_community(
        &self,
        manifest: &SignedManifest,
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
        write_private(
            &self.path.join(COMMUNITY),
            &protocol::wire::encode(manifest),
        )?;
        Ok(id)
    }

    /// Bootstrap addresses remembered from invites. A line that is not a
    /// multiaddress is skipped with a warning naming the file and line.
    pub fn bootstrap(&self) -> Vec<String> {
        let path = self.path.join(BOOTSTRAP);
        let Ok(text) = fs::read_to_string(&path) else {
            return Vec::new();
        };
        let (addrs, warnings) = parse_bootstrap(&path, &text);
        for w in warnings {
            tracing::warn!("{w}");
        }
        addrs
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
        let path = self.path.join(PSEUDONYM);
        match &name {
            Some(n) => write_private(&path, n.as_bytes())?,
            None => match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NodeError::io(format!("removing {}", path.display()), e)),
            },
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
        write_private(&self.path.join(BOOTSTRAP), all.join("\n").as_bytes())
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

/// Writes a file readable by its owner alone (0600), atomically (temporary
/// file and rename), so a crash never leaves half a key.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let tmp = path.with_extension("tmp");
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
    fs::rename(&tmp, path).map_err(|e| NodeError::io(ctx(), e))
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
            assert_eq!(mode(&dd.path().join(AUTHOR_KEY)), 0o600);
            assert_eq!(mode(&dd.path().join(TRANSPORT_KEY)), 0o600);
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

    #[test]
    fn a_pseudonym_the_network_would_refuse_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path().join("d"));
        dd.init(Some("river".into())).unwrap();
        let file = dd.path().join(PSEUDONYM);
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
        // At the limit, with white space around it, is fine.
        let longest = "y".repeat(protocol::MAX_PSEUDONYM_BYTES);
        fs::write(&file, format!("  {longest}\n")).unwrap();
        assert_eq!(dd.identity().unwrap().name, Some(longest));
        fs::remove_file(&file).unwrap();
        assert_eq!(dd.identity().unwrap().name, None);
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
        let file = dd.path().join(TRANSPORT_KEY);
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
        let file = dd.path().join(COMMUNITY);
        fs::write(&file, b"not a manifest").unwrap();
        let err = dd.community().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("the community file {} is damaged", file.display())),
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
        let key = dd.path().join(AUTHOR_KEY);
        let store = dd.path().join(STORE);
        fs::create_dir(&store).unwrap();
        let db = store.join("db");
        fs::write(&db, b"x").unwrap();
        set(&key, 0o644);
        set(&store, 0o755);
        set(&db, 0o664);
        set(dd.path(), 0o750);
        let fixed = dd.make_private().unwrap();
        let mut want = vec![
            (dd.path().to_path_buf(), 0o750),
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
        assert_eq!(mode(&dd.path().join(TRANSPORT_KEY)), 0o600, "untouched");
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
        assert!(matches!(
            admin.create_community("Other", "", 1),
            Err(NodeError::CommunityExists(_))
        ));
        let member = DataDir::new(dir.path().join("b"));
        member.init(None).unwrap();
        let mut forged = m.clone();
        forged.content.rules = "Anything goes".into();
        assert!(member
            .join_community(&forged, &["/ip4/127.0.0.1/tcp/9".into()], 2)
            .is_err());
        assert_eq!(member.community().unwrap(), None, "nothing was written");
        assert!(member.bootstrap().is_empty(), "nothing was written");
        member
            .join_community(&m, &["/ip4/127.0.0.1/tcp/1".into()], 2)
            .unwrap();
        assert_eq!(member.community().unwrap().unwrap(), m);
        assert_eq!(member.bootstrap(), vec!["/ip4/127.0.0.1/tcp/1".to_string()]);
        let other = admin_other_community();
        assert!(matches!(
            member.join_community(&other, &[], 2),
            Err(NodeError::CommunityExists(_))
        ));
    }
}
