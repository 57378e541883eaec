//! The record of acknowledged writes: a small file beside sled's, written
//! after each flush that made new items durable, that says how many items
//! each scope had ever stored at that flush.
//!
//! # Why
//!
//! sled 0.34 replays its log at open and takes the first damaged message
//! for the log's end: a flipped byte in the replayed part silently drops
//! everything written after it, posts the user was told were published
//! among them (probed: 36 of 50 acknowledged posts left, and nothing said
//! so). The store keeps, per scope, the number of items it ever stored
//! (the `n` entries, written in the same batch as the items, only
//! growing), so such a loss rolls those numbers back too. This record
//! keeps them outside sled: at open, a scope whose number is below the
//! record's lost acknowledged writes ([`super::Store::damage`]).
//!
//! # The file
//!
//! `acked` in the store directory: this text, sealed under the store's
//! value key (see [`super::seal`]; nothing in the file is readable without
//! the keys):
//!
//! ```text
//! mutual acknowledged writes 2
//! log 12
//! topic 9c1e0f4b6a2d8e7f3a5b1c0d2e4f6a8b 50
//! blake3 <64 hex digits: the hash of every line above, newlines included>
//! ```
//!
//! A topic is named by its tag (the keyed hash its keys use), in hex. It
//! is written to `acked.tmp`, fsynced, renamed over `acked`, and the
//! directory fsynced. A file that does not open, or whose checksum or
//! syntax fails, is reported and never trusted. Version 1 (plain text,
//! topic names in hex) is read only by the migration to layout 3.
//!
//! # What is written
//!
//! Only numbers captured *before* a flush that then succeeded, so the
//! record never claims more than was durable. Each scope keeps the larger
//! of the record's number and the store's: after damage the record still
//! says what was acknowledged, so the warning survives a restart until
//! the items come back (sync refills the scope and its number grows to
//! the record's again), or until the user accepts the loss
//! ([`super::Store::accept_loss`], `mutual doctor --accept-loss`). A
//! flush that stored nothing new writes nothing.
//!
//! # Limits
//!
//! The record counts items, it does not name them: a scope that lost 3
//! acknowledged items and then received 3 others (new posts from peers)
//! counts as whole again. And a store that lost its record with its
//! directory (moved aside, deleted) cannot tell what it held.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::seal::{write_durably, StoreKeys};

/// The record's file name inside the store directory.
pub const RECORD_FILE: &str = "acked";
/// The first line: format and version.
const HEADER: &str = "mutual acknowledged writes 2";
/// The first line of the plain-text record of layouts before 3.
pub(super) const HEADER_V1: &str = "mutual acknowledged writes 1";
/// The largest record read: a few lines per scope; anything longer is not
/// one of ours.
const MAX_RECORD_BYTES: u64 = 4 * 1024 * 1024;

/// Scope bytes (empty: the community log; a topic's tag otherwise; its
/// name in a version 1 record) → items ever stored.
pub(super) type Counts = BTreeMap<Vec<u8>, u64>;

/// A scope that holds fewer items than this store once acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostScope {
    /// `None`: the community log; a topic's name otherwise.
    pub scope: Option<String>,
    /// Items ever stored in the scope, as the record says.
    pub acknowledged: u64,
    /// Items ever stored in the scope, as the store now says.
    pub held: u64,
}

impl LostScope {
    /// How many acknowledged items the scope is missing.
    pub fn missing(&self) -> u64 {
        self.acknowledged.saturating_sub(self.held)
    }

    /// "the community log" or "topic NAME".
    pub fn name(&self) -> String {
        scope_name(self.scope.as_deref())
    }
}

/// "the community log" or "topic NAME".
pub fn scope_name(scope: Option<&str>) -> String {
    match scope {
        None => "the community log".to_string(),
        Some(t) => format!("topic {t}"),
    }
}

/// What the store found wrong with its acknowledged writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Damage {
    /// These scopes hold fewer items than were acknowledged: sled lost a
    /// tail of its log (damage on disk). Peers that hold the items send
    /// them back by sync.
    Lost(Vec<LostScope>),
    /// The record itself was damaged at open (the reason): it was not
    /// trusted, so whether the store lost writes is unknown.
    RecordUnreadable(String),
}

impl Damage {
    /// Items missing in all scopes (0 when the record was unreadable).
    pub fn missing(&self) -> u64 {
        match self {
            Damage::Lost(scopes) => scopes.iter().map(LostScope::missing).sum(),
            Damage::RecordUnreadable(_) => 0,
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Lost(scopes) => {
                let each: Vec<String> = scopes
                    .iter()
                    .map(|s| {
                        format!(
                            "{}: {} of {} missing",
                            s.name(),
                            s.missing(),
                            s.acknowledged
                        )
                    })
                    .collect();
                write!(
                    f,
                    "the store lost {} acknowledged item(s) (damage on disk cut sled's log \
                     short): {}; they come back from peers that hold them (the node syncs \
                     with every peer it connects to)",
                    self.missing(),
                    each.join(", ")
                )
            }
            Damage::RecordUnreadable(why) => write!(
                f,
                "the record of acknowledged writes was damaged ({why}), so whether the store \
                 lost writes cannot be told; it is written anew from the store at the next \
                 flush"
            ),
        }
    }
}

/// What was found in the store directory at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// No record: a new store, one from before records, or one whose
    /// record was removed.
    Missing,
    /// A record whose checksum holds.
    Intact(Counts),
    /// A record that cannot be trusted, and why.
    Unreadable(String),
}

/// Reads the record in `dir`, sealed under `keys`. Never fails: a file
/// that cannot be read, opened or checked is [`Found::Unreadable`].
pub(super) fn read(dir: &Path, keys: &StoreKeys) -> Found {
    match read_bytes(dir) {
        Ok(None) => Found::Missing,
        Ok(Some(sealed)) => match keys.open(RECORD_FILE.as_bytes(), &sealed) {
            Some(text) => match decode(&text, HEADER) {
                Ok(counts) => Found::Intact(counts),
                Err(why) => Found::Unreadable(why),
            },
            None => Found::Unreadable("the record does not open (damaged)".into()),
        },
        Err(why) => Found::Unreadable(why),
    }
}

/// Reads the plain-text record of a store of layout 1 or 2 (topic names
/// as scopes), for the migration.
pub(super) fn read_v1(dir: &Path) -> Found {
    match read_bytes(dir) {
        Ok(None) => Found::Missing,
        Ok(Some(text)) => match decode(&text, HEADER_V1) {
            Ok(counts) => Found::Intact(counts),
            Err(why) => Found::Unreadable(why),
        },
        Err(why) => Found::Unreadable(why),
    }
}

/// The record file's bytes (`None`: there is none), or why they cannot
/// be read.
fn read_bytes(dir: &Path) -> Result<Option<Vec<u8>>, String> {
    let path = dir.join(RECORD_FILE);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if meta.len() > MAX_RECORD_BYTES {
        return Err(format!(
            "{} is {} bytes, too long",
            path.display(),
            meta.len()
        ));
    }
    fs::read(&path)
        .map(Some)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The record's text for `counts` (before it is sealed).
pub(super) fn encode(counts: &Counts) -> Vec<u8> {
    encode_with(counts, HEADER)
}

/// The plain-text record layouts 1 and 2 wrote (for tests of the
/// migration).
#[cfg(test)]
pub(super) fn encode_v1(counts: &Counts) -> Vec<u8> {
    encode_with(counts, HEADER_V1)
}

/// The record's text for `counts` under the first line `header`.
fn encode_with(counts: &Counts, header: &str) -> Vec<u8> {
    let mut text = String::with_capacity(64 + counts.len() * 48);
    text.push_str(header);
    text.push('\n');
    for (scope, n) in counts {
        if scope.is_empty() {
            text.push_str(&format!("log {n}\n"));
        } else {
            text.push_str(&format!("topic {} {n}\n", hex(scope)));
        }
    }
    let sum = blake3::hash(text.as_bytes());
    text.push_str(&format!("blake3 {}\n", sum.to_hex()));
    text.into_bytes()
}

/// The counts in a record's text whose first line is `header`, or what is
/// wrong with it (never panics).
pub(super) fn decode(bytes: &[u8], header: &str) -> Result<Counts, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the record is not text".to_string())?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or_else(|| "the record is cut short".to_string())?;
    let (body, last) = text.split_at(body_end);
    let sum = last
        .strip_prefix("blake3 ")
        .and_then(|s| s.strip_suffix('\n'))
        .ok_or_else(|| "the record has no checksum line (cut short?)".to_string())?;
    if blake3::hash(body.as_bytes()).to_hex().as_str() != sum {
        return Err("the record's checksum does not match its contents".into());
    }
    let mut lines = body.lines();
    if lines.next() != Some(header) {
        return Err("the record's first line is not one this mutual writes".into());
    }
    let mut counts = Counts::new();
    for (i, line) in lines.enumerate() {
        let bad = || format!("line {} of the record is malformed", i + 2);
        let words: Vec<&str> = line.split(' ').collect();
        let (scope, n) = match words.as_slice() {
            ["log", n] => (Vec::new(), *n),
            ["topic", name, n] => (unhex(name).filter(|s| !s.is_empty()).ok_or_else(bad)?, *n),
            _ => return Err(bad()),
        };
        let n: u64 = n.parse().map_err(|_| bad())?;
        if counts.insert(scope, n).is_some() {
            return Err(format!("line {} of the record repeats a scope", i + 2));
        }
    }
    Ok(counts)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Writes `counts` as the record in `dir`, sealed: temporary file, fsync,
/// rename, directory fsync.
fn write_file(dir: &Path, keys: &StoreKeys, counts: &Counts) -> io::Result<()> {
    write_durably(
        dir,
        RECORD_FILE,
        &keys.seal(RECORD_FILE.as_bytes(), &encode(counts)),
    )
}

/// Keeps the record up to date: shared by the store and its flushers.
pub(super) struct Recorder {
    dir: PathBuf,
    state: Mutex<State>,
    keys: std::sync::Arc<StoreKeys>,
}

struct State {
    /// What the record on disk says (or will, once written): the larger
    /// of the record found at open and every captured count since.
    written: Counts,
    /// The record found at open was unreadable (the reason).
    unreadable_at_open: Option<String>,
    /// The last write failed (logged once until one succeeds).
    failing: bool,
}

impl Recorder {
    /// The recorder of the store in `dir`, starting from what was found
    /// there at open.
    pub(super) fn new(dir: PathBuf, found: Found, keys: std::sync::Arc<StoreKeys>) -> Recorder {
        let (written, unreadable_at_open) = match found {
            Found::Missing => (Counts::new(), None),
            Found::Intact(counts) => (counts, None),
            Found::Unreadable(why) => (Counts::new(), Some(why)),
        };
        Recorder {
            dir,
            state: Mutex::new(State {
                written,
                unreadable_at_open,
                failing: false,
            }),
            keys,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `durable` (counts captured before a flush that succeeded)
    /// if any scope grew past the record. Returns whether it wrote. A
    /// failed write leaves the previous record (smaller numbers: it can
    /// only miss a loss, never invent one) and is logged, once until a
    /// write succeeds again; the flush itself stands.
    pub(super) fn record(&self, durable: &HashMap<Vec<u8>, u64>) -> bool {
        let mut state = self.lock();
        let grown: Vec<(&Vec<u8>, u64)> = durable
            .iter()
            .filter(|(scope, n)| state.written.get(*scope).is_none_or(|w| **n > *w))
            .map(|(scope, n)| (scope, *n))
            .collect();
        if grown.is_empty() {
            return false;
        }
        let mut next = state.written.clone();
        for (scope, n) in grown {
            next.insert(scope.clone(), n);
        }
        match write_file(&self.dir, &self.keys, &next) {
            Ok(()) => {
                state.written = next;
                state.failing = false;
                true
            }
            Err(e) => {
                if !state.failing {
                    tracing::error!(
                        "could not write the record of acknowledged writes in {}: {e} (the \
                         posts themselves are stored; until it is written again, damage to \
                         the newest of them would go unnoticed)",
                        self.dir.display()
                    );
                }
                state.failing = true;
                false
            }
        }
    }

    /// Replaces the record with `current`: the user accepts that what is
    /// missing is gone.
    pub(super) fn reset(&self, current: &HashMap<Vec<u8>, u64>) -> io::Result<()> {
        let mut state = self.lock();
        let next: Counts = current.iter().map(|(k, v)| (k.clone(), *v)).collect();
        write_file(&self.dir, &self.keys, &next)?;
        state.written = next;
        state.unreadable_at_open = None;
        state.failing = false;
        Ok(())
    }

    /// Drops `scope` from the record (its items were deleted on purpose:
    /// `mutual leave --forget`).
    pub(super) fn forget(&self, scope: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        if !state.written.contains_key(scope) {
            return Ok(());
        }
        let mut next = state.written.clone();
        next.remove(scope);
        write_file(&self.dir, &self.keys, &next)?;
        state.written = next;
        Ok(())
    }

    /// The damage the record shows against `held` (the store's counts
    /// now), if any; `label` names a scope.
    pub(super) fn damage(
        &self,
        held: &HashMap<Vec<u8>, u64>,
        label: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Option<Damage> {
        let state = self.lock();
        if let Some(why) = &state.unreadable_at_open {
            return Some(Damage::RecordUnreadable(why.clone()));
        }
        let lost: Vec<LostScope> = state
            .written
            .iter()
            .filter_map(|(scope, acknowledged)| {
                let held = held.get(scope).copied().unwrap_or(0);
                (held < *acknowledged).then(|| LostScope {
                    scope: label(scope),
                    acknowledged: *acknowledged,
                    held,
                })
            })
            .collect();
        (!lost.is_empty()).then_some(Damage::Lost(lost))
    }

    /// What the record says, per scope (as bytes: the store names them).
    pub(super) fn acknowledged(&self) -> Vec<(Vec<u8>, u64)> {
        self.lock()
            .written
            .iter()
            .map(|(scope, n)| (scope.clone(), *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn keys() -> Arc<StoreKeys> {
        Arc::new(StoreKeys::derive(&[0; 32]))
    }

    fn label(scope: &[u8]) -> Option<String> {
        (!scope.is_empty()).then(|| String::from_utf8_lossy(scope).into_owned())
    }

    fn counts(pairs: &[(&str, u64)]) -> Counts {
        pairs
            .iter()
            .map(|(s, n)| (s.as_bytes().to_vec(), *n))
            .collect()
    }

    fn held(pairs: &[(&str, u64)]) -> HashMap<Vec<u8>, u64> {
        pairs
            .iter()
            .map(|(s, n)| (s.as_bytes().to_vec(), *n))
            .collect()
    }

    #[test]
    fn a_record_reads_back_and_any_changed_byte_is_refused() {
        let c = counts(&[("", 7), ("burnout", 50), ("a b\n", 1)]);
        let bytes = encode(&c);
        assert_eq!(decode(&bytes, HEADER), Ok(c));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            assert!(decode(&bad, HEADER).is_err(), "flipped byte {i} accepted");
        }
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut], HEADER).is_err(),
                "cut at {cut} accepted"
            );
        }
    }

    #[test]
    fn the_record_only_grows_and_shows_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::new(dir.path().to_path_buf(), read(dir.path(), &keys()), keys());
        assert!(r.record(&held(&[("t", 50), ("", 2)])));
        // Nothing grew: nothing written.
        assert!(!r.record(&held(&[("t", 50)])));
        assert_eq!(
            read(dir.path(), &keys()),
            Found::Intact(counts(&[("", 2), ("t", 50)]))
        );

        // Reopened after damage: the store holds 36.
        let r = Recorder::new(dir.path().to_path_buf(), read(dir.path(), &keys()), keys());
        let now = held(&[("t", 36), ("", 2)]);
        let lost = r.damage(&now, &label).unwrap();
        assert_eq!(lost.missing(), 14);
        assert!(
            lost.to_string().contains("topic t: 14 of 50 missing"),
            "{lost}"
        );
        // A flush of the damaged store keeps the record's 50.
        assert!(!r.record(&now));
        assert_eq!(
            read(dir.path(), &keys()),
            Found::Intact(counts(&[("", 2), ("t", 50)]))
        );
        // Refilled: no damage, and the record follows the store up.
        assert_eq!(r.damage(&held(&[("t", 50), ("", 2)]), &label), None);
        assert!(r.record(&held(&[("t", 51), ("", 2)])));
        // Accepting the loss.
        let r = Recorder::new(dir.path().to_path_buf(), read(dir.path(), &keys()), keys());
        assert!(r.damage(&now, &label).is_some());
        r.reset(&now).unwrap();
        assert_eq!(r.damage(&now, &label), None);
        assert_eq!(
            read(dir.path(), &keys()),
            Found::Intact(counts(&[("", 2), ("t", 36)]))
        );
    }

    fn post(who: &protocol::Identity, body: &str, at: u64) -> protocol::VerifiedPost {
        let community = protocol::CommunityId::of_bytes(b"ack test");
        protocol::Post::write(
            who,
            community,
            protocol::TopicName::parse("t").unwrap(),
            protocol::post::Draft {
                body: body.into(),
                ..Default::default()
            },
            at,
        )
        .unwrap()
        .verify(&protocol::ValidationContext {
            community,
            now_ms: at,
        })
        .unwrap()
    }

    #[test]
    fn the_store_records_at_flush_and_reports_a_shortfall_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let me = protocol::Identity::generate(None);
        {
            let s = crate::store::Store::open(dir.path(), StoreKeys::derive(&[0; 32])).unwrap();
            for i in 0..3 {
                s.insert_post(&post(&me, &format!("p{i}"), 10 + i)).unwrap();
            }
            s.flush().unwrap();
            assert_eq!(s.damage(), None);
            assert_eq!(s.acknowledged().unwrap(), vec![(Some("t".into()), 3)]);
            s.close().unwrap();
        }
        // As if sled had lost two acknowledged posts at its log's tail: the
        // record says 5 were stored.
        let t = keys().topic_tag(&protocol::TopicName::parse("t").unwrap());
        let five: Counts = [(t.to_vec(), 5)].into_iter().collect();
        write_file(dir.path(), &keys(), &five).unwrap();
        let s = crate::store::Store::open(dir.path(), StoreKeys::derive(&[0; 32])).unwrap();
        let Some(Damage::Lost(lost)) = s.damage() else {
            panic!("no damage reported: {:?}", s.damage());
        };
        assert_eq!(
            lost,
            vec![LostScope {
                scope: Some("t".into()),
                acknowledged: 5,
                held: 3
            }]
        );
        // One comes back: still short; both: the warning clears.
        s.insert_post(&post(&me, "p3", 13)).unwrap();
        s.flush().unwrap();
        assert_eq!(s.damage().map(|d| d.missing()), Some(1));
        s.insert_post(&post(&me, "p4", 14)).unwrap();
        s.flush().unwrap();
        assert_eq!(s.damage(), None);
        // A temporary store keeps no record.
        let t = crate::store::Store::temporary().unwrap();
        t.insert_post(&post(&me, "x", 20)).unwrap();
        t.flush().unwrap();
        assert_eq!((t.damage(), t.acknowledged()), (None, None));
    }

    /// Cost of the record: `ACK_COST_DIR=/some/disk/dir cargo test
    /// --release -p mutual-node --lib store::ack::tests::record_cost --
    /// --ignored --nocapture` (default: the system's temporary directory,
    /// which may be in memory).
    #[test]
    #[ignore]
    fn record_cost() {
        let base = std::env::var_os("ACK_COST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::tempdir_in(&base).unwrap();
        println!("in {}", base.display());
        let me = protocol::Identity::generate(None);
        let s = crate::store::Store::open(dir.path(), StoreKeys::derive(&[0; 32])).unwrap();
        let rounds = 200u64;
        let mut with = std::time::Duration::ZERO;
        for i in 0..rounds {
            s.insert_post(&post(&me, &format!("a{i}"), 10 + i)).unwrap();
            let t = std::time::Instant::now();
            s.flush().unwrap();
            with += t.elapsed();
        }
        let mut alone = std::time::Duration::ZERO;
        let c = counts(&[("", 1), ("t", 1)]);
        for _ in 0..rounds {
            let t = std::time::Instant::now();
            write_file(dir.path(), &keys(), &c).unwrap();
            alone += t.elapsed();
        }
        let mut none = std::time::Duration::ZERO;
        for i in 0..rounds {
            s.insert_post(&post(&me, &format!("b{i}"), 1_000 + i))
                .unwrap();
            let t = std::time::Instant::now();
            s.b().db.flush().unwrap();
            none += t.elapsed();
        }
        println!(
            "per flush of one post: {:?} with the record, {:?} sled alone; the record's write \
             alone: {:?}",
            with / rounds as u32,
            none / rounds as u32,
            alone / rounds as u32
        );
    }

    #[test]
    fn a_damaged_record_is_reported_and_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode(&counts(&[("t", 50)]));
        let at = bytes.iter().position(|b| *b == b'5').unwrap();
        bytes[at] = b'9';
        fs::write(
            dir.path().join(RECORD_FILE),
            keys().seal(RECORD_FILE.as_bytes(), &bytes),
        )
        .unwrap();
        let found = read(dir.path(), &keys());
        assert!(
            matches!(&found, Found::Unreadable(why) if why.contains("checksum")),
            "{found:?}"
        );
        let r = Recorder::new(dir.path().to_path_buf(), found, keys());
        let d = r.damage(&held(&[("t", 1)]), &label).unwrap();
        assert!(matches!(d, Damage::RecordUnreadable(_)));
        // Rewritten from the store at the next flush.
        assert!(r.record(&held(&[("t", 1)])));
        assert_eq!(
            read(dir.path(), &keys()),
            Found::Intact(counts(&[("t", 1)]))
        );
        fs::write(dir.path().join(RECORD_FILE), b"\xff\xfe").unwrap();
        assert!(matches!(read(dir.path(), &keys()), Found::Unreadable(_)));
        // Sealed under other keys: not trusted either.
        write_file(
            dir.path(),
            &StoreKeys::derive(&[1; 32]),
            &counts(&[("t", 1)]),
        )
        .unwrap();
        assert!(matches!(read(dir.path(), &keys()), Found::Unreadable(_)));
    }
}
