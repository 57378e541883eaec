//! Replays the committed seed corpus of every fuzz target
//! (`fuzz/corpus/<target>/`) through the very functions the fuzz targets
//! call (`fuzz/src/checks.rs`, included here by path), so the fuzz logic
//! is compiled and exercised on stable Rust in every test run, and a crash
//! input committed to a corpus stays a regression test.
//!
//! The seeds are written by the ignored test `regenerate_fuzz_seeds`:
//!
//! ```text
//! cargo test -p mutual-protocol --test fuzz_corpus -- --ignored regenerate_fuzz_seeds
//! ```

mod common;

#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/checks.rs"]
mod checks;

use std::collections::BTreeSet;
use std::path::PathBuf;

use checks::Outcome;
use common::*;
use protocol::community::CommunityManifest;
use protocol::invite::Invite;
use protocol::sync::{respond, Initiator, Step, SyncScope};
use protocol::wire;
use protocol::Message;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Runs `check` on every file of `target`'s corpus; returns each file's
/// name and outcome.
fn replay(target: &str, check: fn(&[u8]) -> Outcome) -> Vec<(String, Outcome)> {
    let dir = corpus_dir(target);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "{} has no seeds", dir.display());
    entries
        .iter()
        .map(|path| {
            let data = std::fs::read(path).expect("a readable seed");
            let result = std::panic::catch_unwind(|| check(&data));
            let outcome =
                result.unwrap_or_else(|_| panic!("seed {} fails its check", path.display()));
            let name = path.file_name().expect("a file name").to_string_lossy();
            (name.into_owned(), outcome)
        })
        .collect()
}

/// Replays `target`'s corpus and checks the outcome of each named seed
/// (other files, such as crash inputs added later, need only pass).
fn replay_expecting(target: &str, check: fn(&[u8]) -> Outcome, expected: &[(&str, Outcome)]) {
    let seen = replay(target, check);
    for (name, outcome) in expected {
        let got = seen
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{target}: seed {name} is missing"));
        assert_eq!(got.1, *outcome, "{target}: seed {name}");
    }
}

#[test]
fn the_checks_share_the_tests_clock() {
    assert_eq!(checks::NOW, NOW);
}

#[test]
fn decode_message_corpus() {
    use Outcome::*;
    replay_expecting(
        "decode_message",
        checks::decode_message,
        &[
            ("post", Verified),
            ("moderation", Verified),
            ("retraction", Verified),
            ("report", Verified),
            ("post-forged", Decoded),
            ("post-from-the-future", Decoded),
            ("post-not-utf8", Refused),
            ("post-topic-not-normal", Refused),
            // Found by the fuzzer: a topic length of ~2^64 made bincode
            // allocate before reading (a panic; or an abort, out of memory).
            ("regression-forged-topic-length", Refused),
        ],
    );
}

#[test]
fn validate_post_corpus() {
    use Outcome::*;
    replay_expecting(
        "validate_post",
        checks::validate_post,
        &[
            ("valid", Verified),
            ("valid-past", Verified),
            ("body-8-kib", Verified),
            ("body-8-kib-plus", Refused),
            ("blank-body", Refused),
            ("from-the-future", Refused),
            ("forged", Refused),
            ("wrong-community", Refused),
            ("empty", Refused),
        ],
    );
}

#[test]
fn validate_action_corpus() {
    use Outcome::*;
    replay_expecting(
        "validate_action",
        checks::validate_action,
        &[
            ("appoint", Verified),
            ("block-topic", Verified),
            ("block-by-non-admin", Verified),
            ("appoint-by-non-admin", Verified),
            ("hide-reason-too-long", Refused),
            ("pin-from-the-future", Refused),
            ("pin-forged", Refused),
        ],
    );
}

#[test]
fn sync_messages_corpus() {
    let seen = replay("sync_messages", checks::sync_messages);
    assert!(seen.len() >= 4, "two sessions of at least one round each");
    for (name, outcome) in seen {
        assert_eq!(outcome, Outcome::Decoded, "{name}");
    }
}

#[test]
fn invite_corpus() {
    use Outcome::*;
    replay_expecting(
        "invite",
        checks::invite,
        &[
            ("code", Verified),
            ("code-padded", Verified),
            ("code-truncated", Refused),
            ("payload", Verified),
            ("not-an-invite", Refused),
        ],
    );
}

#[test]
fn empty_and_garbage_inputs_pass_every_check() {
    for data in [&[][..], &[0], &[1], &[0xff; 64], b"mutual-invite:AAAA"] {
        checks::decode_message(data);
        checks::validate_post(data);
        checks::validate_action(data);
        checks::sync_messages(data);
        checks::invite(data);
    }
}

// ---------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------

/// Writes a byte recipe for `checks::Recipe`, field by field.
#[derive(Default)]
struct Recipe(Vec<u8>);

impl Recipe {
    fn byte(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }
    fn flag(self, on: bool) -> Self {
        self.byte(u8::from(on))
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn array(mut self, a: &[u8; 32]) -> Self {
        self.0.extend_from_slice(a);
        self
    }
    /// A text of `unit` repeated `times` times.
    fn text(mut self, unit: &str, times: u8) -> Self {
        let len = u8::try_from(unit.len()).expect("a unit of at most 255 bytes");
        self.0.push(len);
        self.0.extend_from_slice(unit.as_bytes());
        self.0.push(times);
        self
    }
    fn optional_text(self, text: Option<&str>) -> Self {
        match text {
            Some(t) => self.flag(true).text(t, 1),
            None => self.flag(false),
        }
    }
    /// Community 0, judged at home, `now` by mode (3: `created_at` plus
    /// `later`), honestly signed unless `forged`.
    fn setting(self, judged_elsewhere: bool, now_mode: u8, later: u32, forged: bool) -> Self {
        let r = self
            .byte(0)
            .byte(if judged_elsewhere { 7 } else { 0 })
            .byte(now_mode);
        let r = if now_mode == 3 { r.u32(later) } else { r };
        r.byte(if forged { 7 } else { 0 })
    }
}

/// A post recipe: body `unit` × `times`, and the setting's fields.
fn post_recipe(unit: &str, times: u8, elsewhere: bool, now_mode: u8, forged: bool) -> Vec<u8> {
    Recipe::default()
        .byte(1)
        .text("Burnout", 1)
        .optional_text(Some("river"))
        .u64(NOW)
        .flag(true)
        .array(&[7; 32])
        .optional_text(Some("work stress"))
        .text(unit, times)
        .setting(elsewhere, now_mode, 60_000, forged)
        .0
}

/// An action recipe by `signer` (0 is the admin) of kind `kind` with the
/// kind's fields in `fields`.
fn action_recipe(signer: u8, kind: Vec<u8>, now_mode: u8, forged: bool) -> Vec<u8> {
    let mut r = Recipe::default()
        .byte(signer)
        .optional_text(Some("moderator"))
        .u64(3)
        .u64(NOW);
    r.0.extend(kind);
    r.setting(false, now_mode, 0, forged).0
}

fn write_seeds(target: &str, seeds: Vec<(&str, Vec<u8>)>) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).expect("mkdir corpus");
    for (name, data) in seeds {
        std::fs::write(dir.join(name), data).expect("write seed");
    }
}

/// The seeds of `sync_messages`: every request and response of two honest
/// sessions (a partial set catching up, an empty set streaming).
fn sync_seeds() -> Vec<(String, Vec<u8>)> {
    let store = checks::responder_store();
    let mut seeds = Vec::new();
    let partial = checks::initiator_set(&store);
    let empty = BTreeSet::new();
    for (name, start) in [("partial", partial), ("empty", empty)] {
        let mut ours = start;
        let (mut initiator, mut request) = Initiator::new(SyncScope::CommunityLog, &ours);
        for round in 0.. {
            let response = respond(&request, &store, &store);
            seeds.push((
                format!("{name}-request-{round}"),
                wire::encode_versioned(&request),
            ));
            seeds.push((
                format!("{name}-response-{round}"),
                wire::encode_versioned(&response),
            ));
            let step = initiator.on_response(response, &ours).expect("honest");
            for item in initiator.take_items() {
                let (key, _) = store
                    .iter()
                    .find(|(_, v)| **v == item)
                    .expect("an item of the store");
                ours.insert(*key);
            }
            match step {
                Step::Continue(next) => request = next,
                Step::Done => break,
            }
        }
    }
    seeds
}

/// Rewrites every target's seed files (existing files of other names, such
/// as crash inputs, are kept).
#[test]
#[ignore]
fn regenerate_fuzz_seeds() {
    write_seeds(
        "decode_message",
        vec![
            ("post", post_bytes(&sample_post())),
            ("moderation", Message::Moderation(sample_action()).encode()),
            (
                "retraction",
                Message::Retraction(sample_retraction()).encode(),
            ),
            ("report", Message::Report(sample_report()).encode()),
            ("post-forged", post_changed_after_signing()),
            (
                "post-from-the-future",
                post_from_the_future(TOO_FAR_AHEAD_MS),
            ),
            ("post-not-utf8", post_with_non_utf8_body()),
            ("post-topic-not-normal", post_with_raw_topic("Burnout")),
        ],
    );
    write_seeds(
        "validate_post",
        vec![
            (
                "valid",
                post_recipe("I made it through today.", 1, false, 0, false),
            ),
            ("valid-past", post_recipe("Old news.", 1, false, 3, false)),
            (
                "body-8-kib",
                post_recipe(&"x".repeat(128), 64, false, 1, false),
            ),
            (
                "body-8-kib-plus",
                post_recipe(&format!("{}y", "x".repeat(127)), 65, false, 0, false),
            ),
            ("blank-body", post_recipe("  ", 3, false, 0, false)),
            ("from-the-future", post_recipe("hello", 1, false, 2, false)),
            ("forged", post_recipe("hello", 1, false, 0, true)),
            ("wrong-community", post_recipe("hello", 1, true, 0, false)),
            ("empty", Vec::new()),
        ],
    );
    let appoint = Recipe::default().byte(0).flag(false).byte(1).0;
    let block = Recipe::default()
        .byte(2)
        .flag(false)
        .byte(3)
        .flag(true)
        .text("grief", 1)
        .text("spam", 1)
        .0;
    let hide_long = Recipe::default()
        .byte(4)
        .array(&[9; 32])
        .text(&"r".repeat(128), 9)
        .0;
    let pin = Recipe::default().byte(6).array(&[9; 32]).0;
    write_seeds(
        "validate_action",
        vec![
            ("appoint", action_recipe(0, appoint.clone(), 0, false)),
            ("block-topic", action_recipe(0, block.clone(), 3, false)),
            ("block-by-non-admin", action_recipe(1, block, 0, false)),
            ("appoint-by-non-admin", action_recipe(2, appoint, 0, false)),
            (
                "hide-reason-too-long",
                action_recipe(0, hide_long, 0, false),
            ),
            (
                "pin-from-the-future",
                action_recipe(0, pin.clone(), 2, false),
            ),
            ("pin-forged", action_recipe(0, pin, 0, true)),
        ],
    );
    let sync = sync_seeds();
    write_seeds(
        "sync_messages",
        sync.iter().map(|(n, d)| (n.as_str(), d.clone())).collect(),
    );
    let manifest = CommunityManifest::create("Burnout circle", "Be kind.", &key(ADMIN), NOW)
        .expect("a valid manifest");
    // /ip4/127.0.0.1/tcp/4001 and /ip6/::1/udp/4001/quic-v1, binary.
    let mut ip6 = vec![0x29];
    ip6.extend([0u8; 15]);
    ip6.extend([1, 0x91, 0x02, 0x0f, 0xa1, 0xcc, 0x03]);
    let invite = Invite::create(
        manifest.id(),
        protocol::invite::InviteSecrets {
            community: [5; 32],
            admission: Some([6; 32]),
        },
        &key(ADMIN),
        None,
        vec![vec![0x04, 127, 0, 0, 1, 0x06, 0x0f, 0xa1], ip6],
        NOW,
    )
    .expect("a valid invite");
    let code = invite.encode();
    let wrapped: String = code
        .as_bytes()
        .chunks(60)
        .map(|c| format!("  {}\n", String::from_utf8_lossy(c)))
        .collect();
    let text = |s: &str| [&[0u8][..], s.as_bytes()].concat();
    write_seeds(
        "invite",
        vec![
            ("code", text(&code)),
            ("code-padded", text(&wrapped)),
            ("code-truncated", text(&code[..code.len() - 2])),
            ("payload", [&[1u8][..], &wire::encode(&invite)].concat()),
            ("not-an-invite", text("hello")),
        ],
    );
}
