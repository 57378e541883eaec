//! Keys at rest: the data directory's master key and the files sealed
//! under it, and the recovery phrase of the author key.
//!
//! A random 32-byte master key lives in `vault/master`, either wrapped
//! under a passphrase (Argon2id derives a key-encryption key, which seals
//! the master key with XChaCha20-Poly1305) or stored plain with a checksum.
//! Every other secret file of the data directory (the author and transport
//! keys, the pseudonym, the community manifest, the bootstrap addresses,
//! the web app's secret and visit times) is sealed under a key derived from
//! the master key for that file alone ([`Role`]), with the file's role in
//! the associated data: one changed byte anywhere makes the file fail to
//! open, and it is never read as something else (another identity).
//!
//! Formats (all integers little-endian):
//!
//! - `vault/master`, plain: `"mutualMK" 1 0 key[32] check[32]`;
//! - `vault/master`, with a passphrase: `"mutualMK" 1 1 m_kib:u32 t:u32
//!   p:u32 salt[16] nonce[24] sealed_key[48] check[32]`, where
//!   `sealed_key` is the master key sealed under Argon2id(passphrase, salt,
//!   m, t, p) with everything before the nonce as associated data.
//!
//!   `check` is the BLAKE3 hash of every byte before it: it tells damage
//!   ("the file is damaged") from a wrong passphrase.
//! - a sealed file: `"mutualSF" 1 nonce[24] ciphertext`, the key
//!   `blake3::derive_key(role context, master)`, the associated data
//!   `"mutual sealed file v1" 0 role name`.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use protocol::SecretKey;
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

const MASTER_MAGIC: &[u8; 8] = b"mutualMK";
const SEALED_MAGIC: &[u8; 8] = b"mutualSF";
const VERSION: u8 = 1;
const KIND_PLAIN: u8 = 0;
const KIND_PASSPHRASE: u8 = 1;
const SALT_BYTES: usize = 16;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const CHECK_BYTES: usize = 32;
/// Length of the plain master-key file.
const PLAIN_LEN: usize = 8 + 2 + 32 + CHECK_BYTES;
/// Offset of the nonce in the passphrase master-key file.
const PASS_NONCE_AT: usize = 8 + 2 + 12 + SALT_BYTES;
/// Length of the passphrase master-key file.
const PASS_LEN: usize = PASS_NONCE_AT + NONCE_BYTES + 32 + TAG_BYTES + CHECK_BYTES;
/// The words of a recovery phrase: 256 bits of entropy.
pub const PHRASE_WORDS: usize = 24;

/// Argon2id's cost, stored in the master-key file so it can be raised
/// later without breaking older files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, in KiB.
    pub m_kib: u32,
    /// Passes over the memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// What a new passphrase gets: 64 MiB, 3 passes, 1 lane (about half a
    /// second on a laptop; each guess costs an attacker the same).
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };
    /// Cheap parameters for tests only: never for a real passphrase.
    pub const INSECURE_FOR_TESTS: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };
    /// The most a file may ask for: a damaged or hostile file must not make
    /// opening it allocate gigabytes or run for hours.
    const MAX: KdfParams = KdfParams {
        m_kib: 1024 * 1024,
        t: 64,
        p: 16,
    };
}

/// Why a vault or sealed file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The master key is under a passphrase and none was given.
    #[error("locked")]
    Locked,
    /// The passphrase does not open the master key.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The bytes fail their checksum or authentication, or are not in the
    /// format at all.
    #[error("{0}")]
    Damaged(&'static str),
    /// A recovery phrase that does not decode.
    #[error("{0}")]
    BadPhrase(String),
}

/// What a sealed file is: its name in the vault directory and the context
/// of its key. Each role has its own key, so a file copied over another
/// one fails to open instead of being read as it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    /// The file's name in the vault directory.
    pub file: &'static str,
    context: &'static str,
}

impl Role {
    /// The author key: its 32-byte seed, then its public key (checked).
    pub const AUTHOR: Role = Role {
        file: "author",
        context: "mutual vault author key v1",
    };
    /// The transport key (libp2p protobuf encoding).
    pub const TRANSPORT: Role = Role {
        file: "transport",
        context: "mutual vault transport key v1",
    };
    /// The pseudonym (UTF-8).
    pub const PSEUDONYM: Role = Role {
        file: "pseudonym",
        context: "mutual vault pseudonym v1",
    };
    /// The community manifest (wire encoding): it names the community.
    pub const COMMUNITY: Role = Role {
        file: "community",
        context: "mutual vault community v1",
    };
    /// Bootstrap addresses from invites, one per line.
    pub const BOOTSTRAP: Role = Role {
        file: "bootstrap",
        context: "mutual vault bootstrap v1",
    };
    /// The web app's secret (session and CSRF tokens derive from it).
    pub const WEB_SECRET: Role = Role {
        file: "web.secret",
        context: "mutual vault web secret v1",
    };
    /// The web app's last visit of each topic (it names topics).
    pub const WEB_SEEN: Role = Role {
        file: "web.seen",
        context: "mutual vault web seen v1",
    };
    /// The author key a key succession replaced (`mutual key rotate`),
    /// kept until the next one; same contents as [`Role::AUTHOR`].
    pub const PREVIOUS_AUTHOR: Role = Role {
        file: "author.previous",
        context: "mutual vault previous author key v1",
    };
    /// The community secret (32 bytes, [`protocol::CommunitySecret`]):
    /// what makes this node a member others talk to.
    pub const COMMUNITY_SECRET: Role = Role {
        file: "community.secret",
        context: "mutual vault community secret v1",
    };
    /// Admission work the node does when it next starts
    /// ([`crate::admission`]): the first manifest update of a community
    /// just created, or the redemption of an invitation just joined with
    /// (it holds the invitation key's seed).
    pub const ADMISSION: Role = Role {
        file: "admission",
        context: "mutual vault admission work v1",
    };
    /// Every role, for migration and for `forget`.
    pub const ALL: [Role; 10] = [
        Role::AUTHOR,
        Role::PREVIOUS_AUTHOR,
        Role::TRANSPORT,
        Role::PSEUDONYM,
        Role::COMMUNITY,
        Role::COMMUNITY_SECRET,
        Role::BOOTSTRAP,
        Role::WEB_SECRET,
        Role::WEB_SEEN,
        Role::ADMISSION,
    ];
}

/// An unlocked master key. Dropping it wipes the key from memory.
pub struct Vault {
    master: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault(unlocked)")
    }
}

impl Vault {
    /// A new random master key.
    pub fn generate() -> Vault {
        let mut master = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(master.as_mut());
        Vault { master }
    }

    /// The key the store derives its value and index keys from: one
    /// secret for the store, separate from every file's key.
    pub fn store_secret(&self) -> [u8; 32] {
        blake3::derive_key("mutual store v1", self.master.as_ref())
    }

    fn file_key(&self, role: Role) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(role.context, self.master.as_ref()))
    }

    /// The master-key file's bytes: plain with a checksum, or sealed under
    /// `passphrase` with Argon2id at `params`.
    pub fn master_file(&self, passphrase: Option<&[u8]>, params: KdfParams) -> Vec<u8> {
        let mut out = Vec::with_capacity(PASS_LEN);
        out.extend_from_slice(MASTER_MAGIC);
        out.push(VERSION);
        match passphrase {
            None => {
                out.push(KIND_PLAIN);
                out.extend_from_slice(self.master.as_ref());
            }
            Some(pass) => {
                out.push(KIND_PASSPHRASE);
                out.extend_from_slice(&params.m_kib.to_le_bytes());
                out.extend_from_slice(&params.t.to_le_bytes());
                out.extend_from_slice(&params.p.to_le_bytes());
                let mut salt = [0u8; SALT_BYTES];
                rand::rngs::OsRng.fill_bytes(&mut salt);
                out.extend_from_slice(&salt);
                // The parameters were checked by whoever chose them; these
                // constants and a file's (checked at open) are in bounds.
                let kek = kek(pass, &salt, params).unwrap_or_else(|_| Zeroizing::new([0u8; 32]));
                let mut nonce = [0u8; NONCE_BYTES];
                rand::rngs::OsRng.fill_bytes(&mut nonce);
                let aad = out.clone();
                let sealed = seal_with(&kek, &nonce, self.master.as_ref(), &aad);
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
        }
        let check = blake3::hash(&out);
        out.extend_from_slice(check.as_bytes());
        out
    }

    /// Opens a master-key file's bytes with `passphrase` (ignored when the
    /// file has none).
    pub fn open_master(bytes: &[u8], passphrase: Option<&[u8]>) -> Result<Vault, VaultError> {
        let kind = master_kind(bytes)?;
        if kind == KIND_PLAIN {
            return Ok(Vault {
                master: key_of(field(bytes, 10, 32)?)?,
            });
        }
        let pass = passphrase.ok_or(VaultError::Locked)?;
        let params = params_of(bytes)?;
        let salt = field(bytes, 22, SALT_BYTES)?;
        let nonce = field(bytes, PASS_NONCE_AT, NONCE_BYTES)?;
        let sealed = field(bytes, PASS_NONCE_AT + NONCE_BYTES, 32 + TAG_BYTES)?;
        let aad = field(bytes, 0, PASS_NONCE_AT)?;
        let kek = kek(pass, salt, params)?;
        let plain = open_with(&kek, nonce, sealed, aad).ok_or(VaultError::WrongPassphrase)?;
        Ok(Vault {
            master: key_of(&plain)?,
        })
    }

    /// Seals `plain` as the file of `role`.
    pub fn seal(&self, role: Role, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let key = self.file_key(role);
        let sealed = seal_with(&key, &nonce, plain, &role_aad(role));
        let mut out = Vec::with_capacity(9 + NONCE_BYTES + sealed.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens the file of `role`: its plain bytes, or an error if one byte
    /// of it changed, or it is another role's file, or another vault's.
    pub fn open(&self, role: Role, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let not_sealed = VaultError::Damaged("not a sealed file of this version");
        let (Some(head), Some(nonce), Some(sealed)) = (
            bytes.get(..9),
            bytes.get(9..9 + NONCE_BYTES),
            bytes.get(9 + NONCE_BYTES..),
        ) else {
            return Err(not_sealed);
        };
        if head != [SEALED_MAGIC.as_slice(), &[VERSION]].concat() || sealed.len() < TAG_BYTES {
            return Err(not_sealed);
        }
        let key = self.file_key(role);
        open_with(&key, nonce, sealed, &role_aad(role))
            .ok_or(VaultError::Damaged("it fails its authentication check"))
    }
}

/// Whether a master-key file needs a passphrase (`Ok(true)`), after
/// checking its format and checksum.
pub fn needs_passphrase(bytes: &[u8]) -> Result<bool, VaultError> {
    Ok(master_kind(bytes)? == KIND_PASSPHRASE)
}

/// The kind byte of a master-key file whose length and checksum are right.
fn master_kind(bytes: &[u8]) -> Result<u8, VaultError> {
    let head = field(bytes, 0, 10)
        .map_err(|_| VaultError::Damaged("not a master-key file of this version"))?;
    let (magic, rest) = head.split_at(8);
    let (version, kind) = match rest {
        [v, k] => (*v, *k),
        _ => (0, 0),
    };
    if magic != MASTER_MAGIC || version != VERSION {
        return Err(VaultError::Damaged("not a master-key file of this version"));
    }
    let want = match kind {
        KIND_PLAIN => PLAIN_LEN,
        KIND_PASSPHRASE => PASS_LEN,
        _ => return Err(VaultError::Damaged("unknown kind of master-key file")),
    };
    if bytes.len() != want {
        return Err(VaultError::Damaged("the file has the wrong length"));
    }
    let (body, check) = bytes.split_at(want - CHECK_BYTES);
    if blake3::hash(body) != blake3::Hash::from_bytes(check.try_into().unwrap_or([0; 32])) {
        return Err(VaultError::Damaged("it fails its checksum"));
    }
    Ok(kind)
}

/// The Argon2id parameters of a (checked) passphrase master-key file.
fn params_of(bytes: &[u8]) -> Result<KdfParams, VaultError> {
    let word = |at: usize| -> Result<u32, VaultError> {
        let w: [u8; 4] = field(bytes, at, 4)?
            .try_into()
            .map_err(|_| VaultError::Damaged("the file is too short"))?;
        Ok(u32::from_le_bytes(w))
    };
    let params = KdfParams {
        m_kib: word(10)?,
        t: word(14)?,
        p: word(18)?,
    };
    if params.m_kib > KdfParams::MAX.m_kib
        || params.t > KdfParams::MAX.t
        || params.p > KdfParams::MAX.p
    {
        return Err(VaultError::Damaged(
            "its passphrase parameters are beyond what this version accepts",
        ));
    }
    Ok(params)
}

/// The key-encryption key of a passphrase.
fn kek(pass: &[u8], salt: &[u8], params: KdfParams) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let p = Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|_| VaultError::Damaged("its passphrase parameters are invalid"))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password_into(pass, salt, out.as_mut())
        .map_err(|_| VaultError::Damaged("its passphrase parameters are invalid"))?;
    Ok(out)
}

/// `len` bytes at `at`, or the error of a file too short.
fn field(bytes: &[u8], at: usize, len: usize) -> Result<&[u8], VaultError> {
    bytes
        .get(at..at + len)
        .ok_or(VaultError::Damaged("the file is too short"))
}

/// A 32-byte key held in memory that is wiped when dropped.
fn key_of(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(VaultError::Damaged("the master key has the wrong length"));
    }
    key.copy_from_slice(bytes);
    Ok(key)
}

fn role_aad(role: Role) -> Vec<u8> {
    let mut aad = b"mutual sealed file v1\0".to_vec();
    aad.extend_from_slice(role.file.as_bytes());
    aad
}

fn seal_with(key: &[u8; 32], nonce: &[u8], plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    // Encryption fails only for inputs over 256 GiB.
    cipher
        .encrypt(XNonce::from_slice(nonce), Payload { msg: plain, aad })
        .unwrap_or_default()
}

fn open_with(
    key: &[u8; 32],
    nonce: &[u8],
    sealed: &[u8],
    aad: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
        .ok()
        .map(Zeroizing::new)
}

/// The author key's file contents: seed, then public key.
pub(crate) fn author_plain(secret: &SecretKey) -> Zeroizing<Vec<u8>> {
    let mut seed = secret.to_bytes();
    let mut plain = Zeroizing::new(Vec::with_capacity(64));
    plain.extend_from_slice(&seed);
    plain.extend_from_slice(secret.public().as_bytes());
    seed.zeroize();
    plain
}

/// The author key of an opened author file, its public key checked.
pub(crate) fn author_of(plain: &[u8]) -> Result<SecretKey, VaultError> {
    if plain.len() != 64 {
        return Err(VaultError::Damaged("it has the wrong length"));
    }
    let (seed, public) = plain.split_at(32);
    let secret = SecretKey::from_bytes(&*key_of(seed)?);
    if secret.public().as_bytes() != public {
        return Err(VaultError::Damaged(
            "its secret key does not match its public key",
        ));
    }
    Ok(secret)
}

/// The recovery phrase of an author key: its 32-byte seed as 24 BIP-39
/// English words (the last word carries a checksum).
pub fn phrase_of(secret: &SecretKey) -> Zeroizing<String> {
    let seed = Zeroizing::new(secret.to_bytes());
    // 32 bytes is a valid BIP-39 entropy length: this cannot fail.
    match bip39::Mnemonic::from_entropy(seed.as_ref()) {
        Ok(m) => Zeroizing::new(m.to_string()),
        Err(_) => Zeroizing::new(String::new()),
    }
}

/// The author key a recovery phrase stands for. Case, extra spaces and
/// line breaks do not matter; a word not in the list, a wrong number of
/// words or a wrong checksum are refused, saying which.
pub fn secret_of_phrase(text: &str) -> Result<SecretKey, VaultError> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    if words.len() != PHRASE_WORDS {
        return Err(VaultError::BadPhrase(format!(
            "a recovery phrase has {PHRASE_WORDS} words; this has {}",
            words.len()
        )));
    }
    let list = bip39::Language::English;
    for (i, w) in words.iter().enumerate() {
        if list.find_word(w).is_none() {
            return Err(VaultError::BadPhrase(format!(
                "word {} (\"{}\") is not a recovery-phrase word; check its spelling",
                i + 1,
                w.chars()
                    .filter(|c| !c.is_control())
                    .take(20)
                    .collect::<String>()
            )));
        }
    }
    let joined = Zeroizing::new(words.join(" "));
    let m = bip39::Mnemonic::parse_in_normalized(list, &joined).map_err(|e| match e {
        bip39::Error::InvalidChecksum => VaultError::BadPhrase(
            "the words do not add up (their checksum is wrong): one word is mistyped or two \
             are swapped"
                .into(),
        ),
        other => VaultError::BadPhrase(format!("not a recovery phrase: {other}")),
    })?;
    let (entropy, len) = m.to_entropy_array();
    let entropy = Zeroizing::new(entropy);
    let seed = entropy
        .get(..len)
        .and_then(|e| key_of(e).ok())
        .ok_or_else(|| VaultError::BadPhrase("not a recovery phrase of a mutual key".into()))?;
    Ok(SecretKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams::INSECURE_FOR_TESTS;

    #[test]
    fn a_passphrase_master_file_opens_with_it_alone_and_tells_damage_apart() {
        let v = Vault::generate();
        let file = v.master_file(Some(b"correct horse"), FAST);
        assert!(needs_passphrase(&file).unwrap());
        let back = Vault::open_master(&file, Some(b"correct horse")).unwrap();
        assert_eq!(back.store_secret(), v.store_secret());
        assert!(matches!(
            Vault::open_master(&file, Some(b"correct horsf")),
            Err(VaultError::WrongPassphrase)
        ));
        assert!(matches!(
            Vault::open_master(&file, None),
            Err(VaultError::Locked)
        ));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            assert!(
                matches!(
                    Vault::open_master(&bad, Some(b"correct horse")),
                    Err(VaultError::Damaged(_))
                ),
                "byte {i}"
            );
        }
    }

    #[test]
    fn a_plain_master_file_notices_every_flipped_bit() {
        let v = Vault::generate();
        let file = v.master_file(None, FAST);
        assert!(!needs_passphrase(&file).unwrap());
        let back = Vault::open_master(&file, None).unwrap();
        assert_eq!(back.store_secret(), v.store_secret());
        for i in 0..file.len() * 8 {
            let mut bad = file.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(Vault::open_master(&bad, None).is_err(), "bit {i}");
        }
    }

    #[test]
    fn a_sealed_file_opens_for_its_role_only_and_notices_every_flipped_bit() {
        let v = Vault::generate();
        let id = SecretKey::generate();
        let sealed = v.seal(Role::AUTHOR, &author_plain(&id));
        let plain = v.open(Role::AUTHOR, &sealed).unwrap();
        assert_eq!(author_of(&plain).unwrap().public(), id.public());
        assert!(v.open(Role::TRANSPORT, &sealed).is_err(), "another role");
        assert!(
            Vault::generate().open(Role::AUTHOR, &sealed).is_err(),
            "another vault"
        );
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(v.open(Role::AUTHOR, &bad).is_err(), "bit {i}");
        }
        // The sealed bytes show neither key.
        let hay = &sealed[..];
        for needle in [&id.to_bytes()[..], &id.public().as_bytes()[..]] {
            assert!(!hay.windows(32).any(|w| w == needle));
        }
    }

    #[test]
    fn the_phrase_gives_back_the_key_and_typos_are_named() {
        // A fixed key: whether a swap of two words happens to keep the
        // 8-bit checksum right is then decided once, not by chance.
        let id = SecretKey::from_bytes(&[7u8; 32]);
        let phrase = phrase_of(&id);
        assert_eq!(phrase.split(' ').count(), PHRASE_WORDS);
        let shouted = format!("  {}\n", phrase.to_uppercase().replace(' ', "\n "));
        assert_eq!(secret_of_phrase(&shouted).unwrap().public(), id.public());

        let words: Vec<&str> = phrase.split(' ').collect();
        let mut typo = words.clone();
        typo[4] = "zzzz";
        let err = secret_of_phrase(&typo.join(" ")).unwrap_err().to_string();
        assert!(err.starts_with("word 5 (\"zzzz\") is not"), "{err}");
        let short = secret_of_phrase(&words[..23].join(" ")).unwrap_err();
        assert!(short.to_string().contains("this has 23"), "{short}");
        // Another real word in place of one: the checksum notices.
        let mut swapped = words.clone();
        swapped[0] = if words[0] == "abandon" {
            "ability"
        } else {
            "abandon"
        };
        let err = secret_of_phrase(&swapped.join(" "))
            .unwrap_err()
            .to_string();
        assert!(err.contains("checksum"), "{err}");
    }
}
