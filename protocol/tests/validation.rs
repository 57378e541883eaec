//! Validation of everything that arrives: signing round-trips, every
//! single-bit change of a signed message is refused, arbitrary and mutated
//! bytes never panic and decode only from their canonical encoding, and one
//! test per rejection rule with the exact error it must produce.

mod common;

use common::*;
use proptest::prelude::*;
use protocol::message::VerifiedMessage;
use protocol::wire::{WireError, MAX_MESSAGE_BYTES, WIRE_VERSION};
use protocol::{
    Message, ValidationError, MAX_BODY_BYTES, MAX_CONTENT_WARNING_BYTES, MAX_FUTURE_SKEW_MS,
    MAX_PSEUDONYM_BYTES, MAX_REASON_BYTES,
};

/// Decodes and verifies in the tests' community at [`NOW`].
fn check(bytes: &[u8]) -> Result<VerifiedMessage, ValidationError> {
    Message::decode_and_verify(bytes, &ctx())
}

/// The refusal of `bytes`, failing the test if they were accepted.
fn refusal(bytes: &[u8]) -> ValidationError {
    match check(bytes) {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => e,
    }
}

/// One valid message of each kind that carries a signature.
fn signed_messages() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("post", post_bytes(&sample_post())),
        ("moderation", Message::Moderation(sample_action()).encode()),
        (
            "retraction",
            Message::Retraction(sample_retraction()).encode(),
        ),
    ]
}

/// Every valid sample message, reports included.
fn valid_messages() -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = signed_messages().into_iter().map(|(_, b)| b).collect();
    all.push(Message::Report(sample_report()).encode());
    all
}

// ---------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------

#[test]
fn a_signed_post_verifies_and_round_trips_through_the_wire() {
    let signed = sample_post();
    let direct = signed
        .clone()
        .verify(&ctx())
        .expect("a fresh post verifies");
    assert_eq!(direct.id(), signed.id());

    let bytes = post_bytes(&signed);
    assert_eq!(bytes[0], WIRE_VERSION);
    let VerifiedMessage::Post(arrived) = check(&bytes).expect("its bytes verify") else {
        panic!("decoded as another kind of message");
    };
    assert_eq!(arrived, direct);
    assert_eq!(arrived.content().body, signed.content.body);
    assert_eq!(
        VerifiedMessage::Post(arrived).to_message().encode(),
        bytes,
        "re-encoding what arrived gives the same bytes"
    );
}

#[test]
fn every_kind_of_message_round_trips() {
    for bytes in valid_messages() {
        let verified = check(&bytes).expect("valid sample");
        let again = verified.to_message().encode();
        assert_eq!(again, bytes);
        assert_eq!(
            check(&again).expect("still valid").id_bytes(),
            verified.id_bytes()
        );
    }
}

#[test]
fn raw_mirror_encodes_like_the_real_type() {
    // The hand-encoders below are only meaningful if a valid raw post is
    // byte for byte the real one.
    assert_eq!(
        RawPost::new("burnout", b"hello").sign_and_encode(),
        post_with_body("hello".into())
    );
}

// ---------------------------------------------------------------------
// Tampering
// ---------------------------------------------------------------------

#[test]
fn every_single_bit_flip_of_a_signed_message_is_refused() {
    // Reports are not signed by anyone a relay can check (their content is
    // sealed), so a changed ciphertext byte is a different valid report:
    // they are covered by the rule tests instead.
    let mut tried = 0usize;
    for (kind, bytes) in signed_messages() {
        check(&bytes).expect("the original is valid");
        for position in 0..bytes.len() {
            for bit in 0..8 {
                let mut changed = bytes.clone();
                changed[position] ^= 1 << bit;
                let result = check(&changed);
                assert!(
                    result.is_err(),
                    "{kind}: flipping bit {bit} of byte {position} was accepted"
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 3 * 8 * 100, "the messages are implausibly short");
}

#[test]
fn every_byte_replaced_by_another_value_is_refused() {
    let bytes = post_bytes(&sample_post());
    for position in 0..bytes.len() {
        for delta in [0x03u8, 0x7f, 0xfe] {
            let mut changed = bytes.clone();
            changed[position] = changed[position].wrapping_add(delta);
            assert!(
                check(&changed).is_err(),
                "adding {delta} to byte {position} was accepted"
            );
        }
    }
}

/// Where `needle` starts in `haystack` (it must occur exactly once).
fn span(haystack: &[u8], needle: &[u8]) -> std::ops::Range<usize> {
    let starts: Vec<usize> = haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 1, "{needle:?} is not unique in the message");
    starts[0]..starts[0] + needle.len()
}

#[test]
fn a_changed_byte_is_refused_for_the_right_reason() {
    // Every bit of a signed post, with the reason the change must be
    // refused for where the layout makes it certain: a changed letter of a
    // text is a bad signature, a changed byte that breaks UTF-8 is not
    // UTF-8, a changed community is the wrong community, a changed key or
    // id is a bad signature, a changed version byte is an unknown version.
    let post = sample_post();
    let bytes = post_bytes(&post);
    let c = &post.content;
    let texts = [
        span(&bytes, c.body.as_bytes()),
        span(&bytes, c.content_warning.as_deref().unwrap().as_bytes()),
        span(&bytes, c.author_name.as_deref().unwrap().as_bytes()),
    ];
    let signed_ids = [
        span(&bytes, c.author.as_bytes()),
        span(&bytes, c.parent.unwrap().as_bytes()),
        bytes.len() - 64..bytes.len(),
    ];
    let community_at = span(&bytes, c.community.as_bytes());
    let mut certain = 0usize;
    for position in 0..bytes.len() {
        for bit in 0..8 {
            let mut changed = bytes.clone();
            changed[position] ^= 1 << bit;
            let err = refusal(&changed);
            let what = format!("bit {bit} of byte {position}: {err:?}");
            assert!(!err.to_string().is_empty(), "{what}");
            if position == 0 {
                // A version this node knows (a succession's, a membership
                // action's) does not fit a post: not canonical.
                let expected = if [2, 3].contains(&changed[0]) {
                    WireError::NotCanonical
                } else {
                    WireError::UnknownVersion(changed[0])
                };
                assert_eq!(err, ValidationError::Wire(expected), "{what}");
            } else if texts.iter().any(|t| t.contains(&position)) {
                if changed[position].is_ascii() {
                    assert!(matches!(err, ValidationError::BadSignature(_)), "{what}");
                } else {
                    assert_eq!(err, ValidationError::Wire(WireError::NotUtf8), "{what}");
                }
            } else if signed_ids.iter().any(|r| r.contains(&position)) {
                assert!(matches!(err, ValidationError::BadSignature(_)), "{what}");
            } else if community_at.contains(&position) {
                assert!(
                    matches!(err, ValidationError::WrongCommunity { .. }),
                    "{what}"
                );
            } else {
                // Lengths, tags, varints: a wire error or, where the
                // change still decodes, a rule or the signature.
                continue;
            }
            certain += 1;
        }
    }
    assert!(
        certain * 10 > bytes.len() * 8 * 9,
        "only {certain} of {} changes had a certain reason",
        bytes.len() * 8
    );
}

#[test]
fn a_forged_post_fails_with_bad_signature() {
    let author = key(AUTHOR).public().short();
    assert_eq!(
        refusal(&post_changed_after_signing()),
        ValidationError::BadSignature(author.clone())
    );
    assert_eq!(
        refusal(&post_signed_by_another_key()),
        ValidationError::BadSignature(author.clone())
    );
    assert_eq!(
        refusal(&retraction_changed_after_signing()),
        ValidationError::BadSignature(author.clone())
    );
    assert_eq!(
        refusal(&retraction_signed_in_post_domain()),
        ValidationError::BadSignature(author)
    );
    assert_eq!(
        refusal(&action_changed_after_signing()),
        ValidationError::BadSignature(key(ADMIN).public().short())
    );
    assert!(refusal(&post_changed_after_signing())
        .to_string()
        .contains("bad signature"));
}

// ---------------------------------------------------------------------
// One test per rule
// ---------------------------------------------------------------------

#[test]
fn a_body_over_8_kib_is_too_large() {
    check(&post_with_body("a".repeat(MAX_BODY_BYTES))).expect("exactly 8 KiB is allowed");
    assert_eq!(
        refusal(&post_with_body("a".repeat(MAX_BODY_BYTES + 1))),
        ValidationError::TooLarge {
            field: "body",
            size: MAX_BODY_BYTES + 1,
            limit: MAX_BODY_BYTES,
        }
    );
    // Bytes, not characters: 2,731 three-byte characters are 8,193 bytes.
    assert!(matches!(
        refusal(&post_with_body("€".repeat(2_731))),
        ValidationError::TooLarge { field: "body", .. }
    ));
}

#[test]
fn an_empty_body_is_refused() {
    assert_eq!(
        refusal(&post_with_body(" \n\t ".into())),
        ValidationError::Empty("body")
    );
}

#[test]
fn a_body_that_is_not_utf8_is_refused() {
    assert_eq!(
        refusal(&post_with_non_utf8_body()),
        ValidationError::Wire(WireError::NotUtf8)
    );
}

#[test]
fn oversized_content_warning_and_pseudonym_are_refused() {
    let cw = post_bytes(&signed_post_with(
        community(),
        NOW,
        None,
        Some("w".repeat(MAX_CONTENT_WARNING_BYTES + 1)),
        "hello".into(),
    ));
    assert_eq!(
        refusal(&cw),
        ValidationError::TooLarge {
            field: "content warning",
            size: MAX_CONTENT_WARNING_BYTES + 1,
            limit: MAX_CONTENT_WARNING_BYTES,
        }
    );
    let name = post_bytes(&signed_post_with(
        community(),
        NOW,
        Some("n".repeat(MAX_PSEUDONYM_BYTES + 1)),
        None,
        "hello".into(),
    ));
    assert_eq!(
        refusal(&name),
        ValidationError::TooLarge {
            field: "pseudonym",
            size: MAX_PSEUDONYM_BYTES + 1,
            limit: MAX_PSEUDONYM_BYTES,
        }
    );
}

#[test]
fn an_oversized_moderation_reason_is_refused() {
    check(&action_with_reason_len(MAX_REASON_BYTES)).expect("exactly the limit is allowed");
    assert_eq!(
        refusal(&action_with_reason_len(MAX_REASON_BYTES + 1)),
        ValidationError::TooLarge {
            field: "reason",
            size: MAX_REASON_BYTES + 1,
            limit: MAX_REASON_BYTES,
        }
    );
}

#[test]
fn more_than_five_minutes_in_the_future_is_refused() {
    check(&post_from_the_future(MAX_FUTURE_SKEW_MS)).expect("exactly 5 min ahead is allowed");
    let expected = ValidationError::FromTheFuture {
        ahead_ms: TOO_FAR_AHEAD_MS,
        limit_ms: MAX_FUTURE_SKEW_MS,
    };
    assert_eq!(refusal(&post_from_the_future(TOO_FAR_AHEAD_MS)), expected);
    assert_eq!(refusal(&action_from_the_future(TOO_FAR_AHEAD_MS)), expected);
    // Old items are fine: history sync brings them.
    let old = post_bytes(&signed_post_with(
        community(),
        0,
        None,
        None,
        "from 1970".into(),
    ));
    check(&old).expect("the past is not a rule");
}

#[test]
fn a_topic_name_not_in_normal_form_is_refused() {
    check(&post_with_raw_topic("burnout")).expect("the normal form is accepted");
    assert_eq!(
        refusal(&post_with_raw_topic("Burnout")).to_string(),
        "malformed message: bad topic name: \"Burnout\" is not in normal form",
        "the rule's own words reach the reader"
    );
    for raw in ["Burnout", " burnout", "cafe\u{301}"] {
        let err = refusal(&post_with_raw_topic(raw));
        let ValidationError::Wire(WireError::Malformed(text)) = &err else {
            panic!("{raw:?}: unexpected error {err:?}");
        };
        assert!(text.contains("bad topic name"), "{raw:?}: {text}");
        assert!(text.contains("not in normal form"), "{raw:?}: {text}");
    }
}

#[test]
fn a_topic_name_breaking_the_naming_rule_is_refused() {
    for (raw, why) in [
        ("a b", "is not allowed"),
        ("", "it is empty"),
        (&"a".repeat(65) as &str, "the limit is 64"),
    ] {
        let err = refusal(&post_with_raw_topic(raw)).to_string();
        assert!(err.contains("bad topic name"), "{raw:?}: {err}");
        assert!(err.contains(why), "{raw:?}: {err}");
    }
}

#[test]
fn an_item_of_another_community_is_refused() {
    let expected = ValidationError::WrongCommunity {
        expected: community().short(),
        found: other_community().short(),
    };
    let post = post_bytes(&signed_post_with(
        other_community(),
        NOW,
        None,
        None,
        "hello".into(),
    ));
    assert_eq!(refusal(&post), expected);
    assert_eq!(refusal(&action_of_another_community()), expected);
    assert_eq!(
        refusal(&fake_report(other_community(), NOW, 1, 100).encode()),
        expected
    );
    // The same bytes are valid in their own community.
    let theirs = protocol::ValidationContext {
        community: other_community(),
        now_ms: NOW,
    };
    Message::decode_and_verify(&post, &theirs).expect("valid at home");
}

#[test]
fn an_unknown_version_byte_is_refused() {
    let valid = post_bytes(&sample_post());
    for version in [0u8, 4, 0xff] {
        assert_eq!(
            refusal(&with_version(valid.clone(), version)),
            ValidationError::Wire(WireError::UnknownVersion(version))
        );
    }
    // Version 2 is a key succession's, 3 a membership action's: a post
    // with either is not canonical.
    for version in [2u8, 3] {
        assert_eq!(
            refusal(&with_version(valid.clone(), version)),
            ValidationError::Wire(WireError::NotCanonical)
        );
    }
}

#[test]
fn trailing_bytes_are_refused() {
    assert_eq!(
        refusal(&with_trailing_byte()),
        ValidationError::Wire(WireError::TrailingBytes(1))
    );
}

#[test]
fn empty_input_is_refused() {
    assert_eq!(refusal(&[]), ValidationError::Wire(WireError::Empty));
    assert_eq!(
        refusal(&[WIRE_VERSION]),
        ValidationError::Wire(WireError::Empty),
        "a version byte alone holds no message"
    );
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    assert_eq!(
        refusal(&oversized()),
        ValidationError::Wire(WireError::TooLarge {
            size: MAX_MESSAGE_BYTES + 1,
            limit: MAX_MESSAGE_BYTES,
        })
    );
}

#[test]
fn a_non_canonical_encoding_is_refused() {
    assert_eq!(
        refusal(&post_with_non_canonical_length()),
        ValidationError::Wire(WireError::NotCanonical)
    );
}

#[test]
fn truncated_input_and_unknown_variants_are_malformed() {
    for bytes in [truncated(), unknown_variant()] {
        assert!(matches!(
            refusal(&bytes),
            ValidationError::Wire(WireError::Malformed(_))
        ));
    }
}

#[test]
fn reports_obey_their_outer_rules() {
    check(&fake_report(community(), NOW, 1, 100).encode()).expect("a plausible report");
    assert_eq!(
        refusal(&fake_report(community(), NOW, 0, 100).encode()),
        ValidationError::NoRecipients
    );
    assert!(matches!(
        refusal(&fake_report(community(), NOW, 33, 10).encode()),
        ValidationError::TooLarge {
            field: "report recipients",
            size: 33,
            ..
        }
    ));
    assert!(matches!(
        refusal(
            &fake_report(
                community(),
                NOW,
                1,
                protocol::report::MAX_SEALED_COPY_BYTES + 1
            )
            .encode()
        ),
        ValidationError::TooLarge {
            field: "sealed report",
            size,
            ..
        } if size == protocol::report::MAX_SEALED_COPY_BYTES + 1
    ));
    // A copy of a whole post at the post limits fits a sealed copy.
    check(&fake_report(community(), NOW, 1, 9 * 1024).encode()).expect("a report with a long post");
    assert!(matches!(
        refusal(&fake_report(community(), NOW + TOO_FAR_AHEAD_MS, 1, 10).encode()),
        ValidationError::FromTheFuture { .. }
    ));
}

// ---------------------------------------------------------------------
// Arbitrary input
// ---------------------------------------------------------------------

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len();
    match *edit {
        Edit::Set(i, b) if len > 0 => bytes[i % len] = b,
        Edit::Insert(i, b) => bytes.insert(i % (len + 1), b),
        Edit::Remove(i) if len > 0 => {
            bytes.remove(i % len);
        }
        Edit::Truncate(i) => bytes.truncate(i % (len + 1)),
        _ => {}
    }
}

/// What must hold for any input: no panic (proptest reports one as a
/// failure), decoding only from the canonical encoding, and a verified
/// message re-encodes to the very bytes that arrived.
fn holds_for(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(message) = Message::decode(bytes) {
        prop_assert_eq!(message.encode(), bytes, "decoded from a second encoding");
    }
    if let Ok(verified) = check(bytes) {
        prop_assert_eq!(verified.to_message().encode(), bytes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_and_decode_canonically(
        bytes in prop::collection::vec(any::<u8>(), 0..400)
    ) {
        holds_for(&bytes)?;
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(
        variant in 0u8..5,
        tail in prop::collection::vec(any::<u8>(), 0..400)
    ) {
        let mut bytes = vec![WIRE_VERSION, variant];
        bytes.extend_from_slice(&tail);
        holds_for(&bytes)?;
    }

    #[test]
    fn mutated_valid_messages_never_panic_and_decode_canonically(
        which in 0usize..4,
        edits in prop::collection::vec(edit(), 1..6)
    ) {
        let mut bytes = valid_messages().swap_remove(which);
        for e in &edits {
            apply(&mut bytes, e);
        }
        holds_for(&bytes)?;
    }
}
