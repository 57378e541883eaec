//! Invalid test vectors: `protocol/vectors/invalid.json` holds one message
//! per rejection rule, as bytes, with the context it is judged in and a
//! substring of the error it must produce. Another implementation of the
//! protocol can replay the same file.
//!
//! The file is written by the ignored test `regenerate_vectors`
//! from keys with fixed seeds, so it is deterministic:
//!
//! ```text
//! cargo test -p mutual-protocol --test vectors -- --ignored regenerate_vectors
//! ```

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use protocol::wire::WireError;
use protocol::{
    CommunityId, Message, ValidationContext, ValidationError, MAX_BODY_BYTES,
    MAX_CONTENT_WARNING_BYTES, MAX_PSEUDONYM_BYTES, MAX_REASON_BYTES,
};
use serde::{Deserialize, Serialize};

/// One invalid message and the error it must produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Vector {
    /// What the vector breaks.
    name: String,
    /// The message bytes, hex.
    hex: String,
    /// The 32-byte community id of the judging node, hex.
    community: String,
    /// The judging node's clock, ms since the Unix epoch.
    now_ms: u64,
    /// A substring of the error's text.
    error: String,
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/invalid.json")
}

/// Every vector, built from the shared fixtures.
fn generate() -> Vec<Vector> {
    let ctx = ctx();
    let v = |name: &str, bytes: Vec<u8>, error: &str| Vector {
        name: name.into(),
        hex: hex::encode(bytes),
        community: hex::encode(ctx.community.as_bytes()),
        now_ms: ctx.now_ms,
        error: error.into(),
    };
    let post = post_bytes(&sample_post());
    let wrong_community_post = post_bytes(&signed_post_with(
        other_community(),
        NOW,
        None,
        None,
        "hello".into(),
    ));
    vec![
        v("empty input", vec![], "malformed message: it is empty"),
        v(
            "version byte without a message",
            vec![protocol::wire::WIRE_VERSION],
            "malformed message: it is empty",
        ),
        v(
            "oversized input (64 KiB + 1)",
            oversized(),
            "too large: the message is 65537 bytes, the limit is 65536",
        ),
        v(
            "unknown version byte 4",
            with_version(post.clone(), 4),
            "unknown version 4",
        ),
        v(
            "post with the co-admin version byte 3",
            with_version(post.clone(), 3),
            "not in canonical encoding",
        ),
        v(
            "co-admin appointment with version byte 1",
            with_version(Message::Moderation(sample_co_admin()).encode(), 1),
            "not in canonical encoding",
        ),
        v(
            "co-admin appointment with the succession version byte 2",
            with_version(Message::Moderation(sample_co_admin()).encode(), 2),
            "not in canonical encoding",
        ),
        v(
            "post with the succession version byte 2",
            with_version(post.clone(), 2),
            "not in canonical encoding",
        ),
        v(
            "succession with version byte 1",
            with_version(Message::Moderation(sample_succession()).encode(), 1),
            "not in canonical encoding",
        ),
        v(
            "succession whose new key did not co-sign",
            succession_with_bad_co_signature(),
            "bad signature",
        ),
        v(
            "invitation of no uses",
            invitation_of_no_uses(),
            "out of range: invitation uses is 0",
        ),
        v(
            "succession to its own signer",
            succession_to_itself(),
            "a key cannot succeed itself",
        ),
        v(
            "unknown version byte 0",
            with_version(post, 0),
            "unknown version 0",
        ),
        v(
            "trailing byte",
            with_trailing_byte(),
            "malformed message: 1 trailing bytes",
        ),
        v("truncated by one byte", truncated(), "malformed message"),
        v(
            "unknown message variant",
            unknown_variant(),
            "malformed message",
        ),
        v(
            "non-canonical length varint",
            post_with_non_canonical_length(),
            "not in canonical encoding",
        ),
        v(
            "body not UTF-8",
            post_with_non_utf8_body(),
            "text is not valid UTF-8",
        ),
        v(
            "topic not in normal form",
            post_with_raw_topic("Burnout"),
            "bad topic name: \"Burnout\" is not in normal form",
        ),
        v(
            "topic with a space",
            post_with_raw_topic("a b"),
            "bad topic name: ' ' is not allowed",
        ),
        v(
            "empty topic",
            post_with_raw_topic(""),
            "bad topic name: it is empty",
        ),
        v(
            "topic of 65 characters",
            post_with_raw_topic(&"a".repeat(65)),
            "bad topic name: it has 65 characters, the limit is 64",
        ),
        v(
            "post body changed after signing",
            post_changed_after_signing(),
            "bad signature",
        ),
        v(
            "post signed by a key other than its author's",
            post_signed_by_another_key(),
            "bad signature",
        ),
        v(
            "moderation reason changed after signing",
            action_changed_after_signing(),
            "bad signature",
        ),
        v(
            "retraction redirected after signing",
            retraction_changed_after_signing(),
            "bad signature",
        ),
        v(
            "retraction signed in the post domain",
            retraction_signed_in_post_domain(),
            "bad signature",
        ),
        v(
            "body of 8 KiB + 1 bytes",
            post_with_body("a".repeat(MAX_BODY_BYTES + 1)),
            "too large: body is 8193 bytes, the limit is 8192",
        ),
        v(
            "blank body",
            post_with_body(" \n ".into()),
            "empty: body must not be empty",
        ),
        v(
            "content warning of 201 bytes",
            post_bytes(&signed_post_with(
                community(),
                NOW,
                None,
                Some("w".repeat(MAX_CONTENT_WARNING_BYTES + 1)),
                "hello".into(),
            )),
            "too large: content warning is 201 bytes",
        ),
        v(
            "pseudonym of 65 bytes",
            post_bytes(&signed_post_with(
                community(),
                NOW,
                Some("n".repeat(MAX_PSEUDONYM_BYTES + 1)),
                None,
                "hello".into(),
            )),
            "too large: pseudonym is 65 bytes",
        ),
        v(
            "moderation reason of 1025 bytes",
            action_with_reason_len(MAX_REASON_BYTES + 1),
            "too large: reason is 1025 bytes",
        ),
        v(
            "post 5 min + 1 ms in the future",
            post_from_the_future(TOO_FAR_AHEAD_MS),
            "time too far in the future: created 300001 ms ahead",
        ),
        v(
            "moderation action 5 min + 1 ms in the future",
            action_from_the_future(TOO_FAR_AHEAD_MS),
            "time too far in the future",
        ),
        v(
            "report 5 min + 1 ms in the future",
            fake_report(community(), NOW + TOO_FAR_AHEAD_MS, 1, 100).encode(),
            "time too far in the future",
        ),
        v(
            "post of another community",
            wrong_community_post,
            "wrong community",
        ),
        v(
            "moderation action of another community",
            action_of_another_community(),
            "wrong community",
        ),
        v(
            "report of another community",
            fake_report(other_community(), NOW, 1, 100).encode(),
            "wrong community",
        ),
        v(
            "report without recipients",
            fake_report(community(), NOW, 0, 100).encode(),
            "report has no recipients",
        ),
        v(
            "report with 33 recipients",
            fake_report(community(), NOW, 33, 10).encode(),
            "too large: report recipients is 33",
        ),
        v(
            "report with a sealed copy of 12 KiB + 1 bytes",
            fake_report(community(), NOW, 1, 12 * 1024 + 1).encode(),
            "too large: sealed report is 12289 bytes",
        ),
        v(
            "report without enough proof of work",
            report_without_work().encode(),
            "not enough work: a report needs a proof of work of 21 leading zero bits",
        ),
        v(
            "topic mixing Latin and Cyrillic letters",
            post_with_raw_topic("burnоut"),
            "mixes Latin and Cyrillic letters",
        ),
        v(
            "topic in full-width letters",
            post_with_raw_topic("ｂｕｒｎｏｕｔ"),
            "is not in normal form",
        ),
    ]
}

fn load() -> Vec<Vector> {
    let text = std::fs::read_to_string(path()).expect("protocol/vectors/invalid.json is readable");
    serde_json::from_str(&text).expect("the vectors are valid JSON of the documented shape")
}

fn context(v: &Vector) -> ValidationContext {
    let bytes: [u8; 32] = hex::decode(&v.community)
        .expect("community is hex")
        .try_into()
        .expect("community is 32 bytes");
    ValidationContext {
        community: CommunityId(bytes),
        now_ms: v.now_ms,
    }
}

fn refusal(v: &Vector) -> ValidationError {
    let bytes = hex::decode(&v.hex).expect("hex is hex");
    match Message::decode_and_verify(&bytes, &context(v)) {
        Ok(m) => panic!("vector {:?} was accepted: {m:?}", v.name),
        Err(e) => e,
    }
}

/// Writes the vector file. Run it after changing a rule or the encoding,
/// and review the diff.
#[test]
#[ignore]
fn regenerate_vectors() {
    let mut text = serde_json::to_string_pretty(&generate()).expect("serialisable");
    text.push('\n');
    std::fs::create_dir_all(path().parent().expect("a parent")).expect("mkdir vectors");
    std::fs::write(path(), text).expect("write vectors");
}

#[test]
fn every_invalid_vector_is_refused_with_its_error() {
    let vectors = load();
    assert!(vectors.len() >= 30, "only {} vectors", vectors.len());
    for v in &vectors {
        let err = refusal(v).to_string();
        assert!(
            err.contains(&v.error),
            "vector {:?}: error {err:?} does not contain {:?}",
            v.name,
            v.error
        );
    }
}

#[test]
fn vector_names_are_unique() {
    let vectors = load();
    let names: BTreeSet<&str> = vectors.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), vectors.len());
}

#[test]
fn committed_vectors_are_what_the_generator_writes() {
    assert!(
        load() == generate(),
        "protocol/vectors/invalid.json is stale: run `cargo test -p mutual-protocol \
         --test vectors -- --ignored regenerate_vectors` and review the diff"
    );
}

#[test]
fn the_vectors_cover_every_rejection_rule() {
    let kinds: BTreeSet<&str> = load()
        .iter()
        .map(|v| match refusal(v) {
            ValidationError::Wire(WireError::Empty) => "wire: empty",
            ValidationError::Wire(WireError::TooLarge { .. }) => "wire: too large",
            ValidationError::Wire(WireError::UnknownVersion(_)) => "wire: unknown version",
            ValidationError::Wire(WireError::NotUtf8) => "wire: not UTF-8",
            ValidationError::Wire(WireError::TrailingBytes(_)) => "wire: trailing bytes",
            ValidationError::Wire(WireError::NotCanonical) => "wire: not canonical",
            ValidationError::Wire(WireError::Malformed(_)) => "wire: malformed",
            ValidationError::BadSignature(_) => "bad signature",
            ValidationError::WrongCommunity { .. } => "wrong community",
            ValidationError::FromTheFuture { .. } => "from the future",
            ValidationError::TooLarge { .. } => "too large",
            ValidationError::Empty(_) => "empty",
            ValidationError::OutOfRange { .. } => "out of range",
            ValidationError::NoRecipients => "no recipients",
            ValidationError::NotEnoughWork { .. } => "not enough work",
            ValidationError::SelfSuccession => "self succession",
            // A bad topic name inside a message is refused while decoding,
            // as `Wire(Malformed)`; this variant comes from other APIs.
            ValidationError::BadTopic(_) => "bad topic",
        })
        .collect();
    let expected: BTreeSet<&str> = [
        "wire: empty",
        "wire: too large",
        "wire: unknown version",
        "wire: not UTF-8",
        "wire: trailing bytes",
        "wire: not canonical",
        "wire: malformed",
        "bad signature",
        "wrong community",
        "from the future",
        "too large",
        "empty",
        "out of range",
        "no recipients",
        "not enough work",
        "self succession",
    ]
    .into_iter()
    .collect();
    assert_eq!(kinds, expected);
}
