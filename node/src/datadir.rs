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

const AUTHOR_KEY: &str = "author.key";
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
        if let Some(n) = &name {
            if n.len() > protocol::MAX_PSEUDONYM_BYTES {
                return Err(NodeError::BadInput(format!(
                    "the pseudonym is {} bytes, the limit is {}",
                    n.len(),
                    protocol::MAX_PSEUDONYM_BYTES
                )));
            }
        }
        let identity =
            Identity::generate(name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()));
        let transport = Keypair::generate_ed25519();
        let transport_bytes = transport
            .to_protobuf_encoding()
            .map_err(|e| NodeError::BadInput(e.to_string()))?;
        write_private(&self.path.join(TRANSPORT_KEY), &transport_bytes)?;
        if let Some(n) = &identity.name {
            write_private(&self.path.join(PSEUDONYM), n.as_bytes())?;
        }
        // The author key last: its presence marks a complete identity.
        write_private(&self.path.join(AUTHOR_KEY), &identity.secret.to_bytes())?;
        Ok(identity)
    }

    /// Loads the author identity.
    pub fn identity(&self) -> Result<Identity, NodeError> {
        let path = self.path.join(AUTHOR_KEY);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NodeError::NoIdentity(self.display()),
            _ => NodeError::io(format!("reading {}", path.display()), e),
        })?;
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            NodeError::NotOurs(self.display(), format!("{AUTHOR_KEY} is not a key file"))
        })?;
        let name = fs::read_to_string(self.path.join(PSEUDONYM))
            .ok()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        Ok(Identity {
            secret: SecretKey::from_bytes(&seed),
            name,
        })
    }

    /// Loads the transport key pair (the peer id).
    pub fn transport_key(&self) -> Result<Keypair, NodeError> {
        let path = self.path.join(TRANSPORT_KEY);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NodeError::NoIdentity(self.display()),
            _ => NodeError::io(format!("reading {}", path.display()), e),
        })?;
        Keypair::from_protobuf_encoding(&bytes).map_err(|_| {
            NodeError::NotOurs(self.display(), format!("{TRANSPORT_KEY} is not a key file"))
        })
    }

    /// The community manifest, if this directory belongs to one.
    pub fn community(&self) -> Result<Option<SignedManifest>, NodeError> {
        let path = self.path.join(COMMUNITY);
        match fs::read(&path) {
            Ok(bytes) => protocol::wire::decode(&bytes, protocol::community::MAX_MANIFEST_BYTES)
                .map(Some)
                .map_err(|e| NodeError::NotOurs(self.display(), format!("{COMMUNITY}: {e}"))),
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

    /// Bootstrap addresses remembered from invites.
    pub fn bootstrap(&self) -> Vec<String> {
        fs::read_to_string(self.path.join(BOOTSTRAP))
            .map(|s| {
                s.lines()
                    .map(str::to_string)
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default()
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
