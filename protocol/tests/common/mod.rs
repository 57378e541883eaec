//! Fixtures shared by the protocol's integration tests: keys from fixed
//! seeds (so every output is deterministic), one community and clock, valid
//! sample items, and hand-encoders for the byte strings of invalid messages
//! that the typed API refuses to build (a body that is not UTF-8, a topic
//! name that is not in normal form, a non-canonical length).
//!
//! Every builder of an invalid message breaks exactly one rule and signs the
//! rest correctly, so the error it produces is the rule under test and not
//! a signature failure by accident.
#![allow(dead_code, unreachable_pub)]

use protocol::community::CommunityManifest;
use protocol::moderation::{ModAction, ModActionKind, Scope, SignedModAction};
use protocol::post::{Draft, Post, SignedPost};
use protocol::report::{SealedCopy, SealedReport, REPORT_WORK_BITS};
use protocol::retraction::{Retraction, SignedRetraction};
use protocol::wire::{self, WIRE_VERSION};
use protocol::{
    CommunityId, Identity, Message, PostId, PublicKey, SecretKey, Signable, Signature, Signed,
    TopicName, ValidationContext, MAX_FUTURE_SKEW_MS,
};
use rand::SeedableRng;
use serde::Serialize;

/// The clock of every test: 2023-11-14, ms since the Unix epoch.
pub const NOW: u64 = 1_700_000_000_000;

/// The secret key with seed `[n; 32]`.
pub fn key(n: u8) -> SecretKey {
    SecretKey::from_bytes(&[n; 32])
}

/// The identity with seed `[n; 32]` and an optional pseudonym.
pub fn identity(n: u8, name: Option<&str>) -> Identity {
    Identity {
        secret: key(n),
        name: name.map(str::to_string),
    }
}

/// Seed of the community admin.
pub const ADMIN: u8 = 1;
/// Seed of the author of the sample posts.
pub const AUTHOR: u8 = 2;

/// The community of the tests: the id of a manifest signed by [`ADMIN`].
pub fn community() -> CommunityId {
    CommunityManifest::create("Burnout circle", "Be kind.", &key(ADMIN), NOW - 1_000)
        .expect("a valid manifest")
        .id()
}

/// Another community, for replay tests.
pub fn other_community() -> CommunityId {
    CommunityManifest::create("Another circle", "Be kind.", &key(ADMIN), NOW - 1_000)
        .expect("a valid manifest")
        .id()
}

/// The context of a node of [`community`] at [`NOW`].
pub fn ctx() -> ValidationContext {
    ValidationContext {
        community: community(),
        now_ms: NOW,
    }
}

/// A topic name that is known to be valid.
pub fn topic(name: &str) -> TopicName {
    TopicName::parse(name).expect("a valid topic name")
}

/// A valid post using every optional field.
pub fn sample_post() -> SignedPost {
    Post::write(
        &identity(AUTHOR, Some("river")),
        community(),
        topic("burnout"),
        Draft {
            body: "Three weeks off and I still dread Monday.".into(),
            parent: Some(PostId::of_bytes(b"parent")),
            content_warning: Some("work stress".into()),
        },
        NOW - 60_000,
    )
    .expect("a valid post")
}

/// A valid block by the admin.
pub fn sample_action() -> SignedModAction {
    ModAction::create(
        &identity(ADMIN, Some("admin")),
        community(),
        7,
        ModActionKind::Block {
            author: key(9).public(),
            scope: Scope::Topic(topic("burnout")),
            reason: "spam".into(),
        },
        NOW - 30_000,
    )
    .expect("a valid action")
}

/// A valid retraction of [`sample_post`] by its author.
pub fn sample_retraction() -> SignedRetraction {
    Retraction::create(&key(AUTHOR), community(), sample_post().id(), NOW - 10_000)
}

/// A valid report, sealed to the admin with a seeded generator. Sealed
/// once per test binary: its proof of work takes a fraction of a second.
pub fn sample_report() -> SealedReport {
    static REPORT: std::sync::LazyLock<SealedReport> = std::sync::LazyLock::new(|| {
        SealedReport::seal(
            &identity(3, None),
            community(),
            sample_post().id(),
            "harassment",
            &[key(ADMIN).public()],
            NOW - 5_000,
            &mut rand::rngs::StdRng::seed_from_u64(7),
        )
        .expect("a valid report")
    });
    REPORT.clone()
}

/// A report whose sealed copies are opaque filler: relays check only the
/// outer fields, so these are what the outer rules see. It carries its
/// proof of work, so only the rule under test fails.
pub fn fake_report(community: CommunityId, created_at: u64, copies: usize, size: usize) -> Message {
    Message::Report(fake_sealed(community, created_at, copies, size))
}

fn fake_sealed(
    community: CommunityId,
    created_at: u64,
    copies: usize,
    size: usize,
) -> SealedReport {
    let mut report = SealedReport {
        community,
        created_at,
        copies: (0..copies)
            .map(|i| SealedCopy {
                recipient: key(10u8.wrapping_add(i as u8)).public(),
                ciphertext: vec![0x5a; size],
            })
            .collect(),
        nonce: 0,
    };
    report.prove_work();
    report
}

/// A plausible report whose nonce falls short of the proof of work (the
/// first one after a good nonce that does: almost always the very next).
pub fn report_without_work() -> Message {
    let mut report = fake_sealed(community(), NOW, 1, 100);
    report.nonce += 1;
    while report.work_bits() >= REPORT_WORK_BITS {
        report.nonce += 1;
    }
    Message::Report(report)
}

/// The wire bytes of a post.
pub fn post_bytes(post: &SignedPost) -> Vec<u8> {
    Message::Post(post.clone()).encode()
}

/// A post by [`AUTHOR`] with the given fields, signed correctly whatever
/// they hold (unlike [`Post::write`], which refuses bad fields).
pub fn signed_post_with(
    community: CommunityId,
    created_at: u64,
    author_name: Option<String>,
    content_warning: Option<String>,
    body: String,
) -> SignedPost {
    let author = key(AUTHOR);
    Signed::sign(
        Post {
            community,
            topic: topic("burnout"),
            author: author.public(),
            author_name,
            created_at,
            parent: None,
            content_warning,
            body,
        },
        &author,
    )
}

/// A correctly signed post whose body is `body`.
pub fn post_with_body(body: String) -> Vec<u8> {
    post_bytes(&signed_post_with(community(), NOW, None, None, body))
}

/// A correctly signed post created `ahead_ms` after [`NOW`].
pub fn post_from_the_future(ahead_ms: u64) -> Vec<u8> {
    post_bytes(&signed_post_with(
        community(),
        NOW + ahead_ms,
        None,
        None,
        "hello".into(),
    ))
}

/// One ms more than the allowed clock skew.
pub const TOO_FAR_AHEAD_MS: u64 = MAX_FUTURE_SKEW_MS + 1;

// ---------------------------------------------------------------------
// Hand encoding: mirrors of the wire types with the field rules removed.
// ---------------------------------------------------------------------

/// [`Post`] with a free-form topic string and raw body bytes. Field order
/// and types match `Post`, so a valid `RawPost` encodes exactly as the
/// `Post` it mirrors (checked by `raw_mirror_encodes_like_the_real_type`).
#[derive(Serialize)]
pub struct RawPost {
    pub community: CommunityId,
    pub topic: String,
    pub author: PublicKey,
    pub author_name: Option<String>,
    pub created_at: u64,
    pub parent: Option<PostId>,
    pub content_warning: Option<String>,
    /// Serialised as a length and the bytes, exactly as a `String` is.
    pub body: Vec<u8>,
}

/// [`Signed`] of a [`RawPost`].
#[derive(Serialize)]
pub struct RawSigned {
    pub content: RawPost,
    pub signature: Signature,
}

/// [`Message`] with only its first variant, `Post` (variant index 0).
#[derive(Serialize)]
pub enum RawMessage {
    Post(RawSigned),
}

impl RawPost {
    /// A raw post by [`AUTHOR`] in [`community`] at [`NOW`].
    pub fn new(topic: &str, body: &[u8]) -> Self {
        RawPost {
            community: community(),
            topic: topic.to_string(),
            author: key(AUTHOR).public(),
            author_name: None,
            created_at: NOW,
            parent: None,
            content_warning: None,
            body: body.to_vec(),
        }
    }

    /// Signs the raw post with [`AUTHOR`]'s key over the post domain, as a
    /// real post would be signed, and encodes it as a message.
    pub fn sign_and_encode(self) -> Vec<u8> {
        let signature = key(AUTHOR).sign(&wire::signing_bytes(Post::DOMAIN, &self));
        wire::encode_versioned(&RawMessage::Post(RawSigned {
            content: self,
            signature,
        }))
    }
}

/// A correctly signed post whose topic string is `topic`, taken verbatim.
pub fn post_with_raw_topic(topic: &str) -> Vec<u8> {
    RawPost::new(topic, b"hello").sign_and_encode()
}

/// A correctly signed post whose body bytes are not UTF-8.
pub fn post_with_non_utf8_body() -> Vec<u8> {
    RawPost::new("burnout", &[b'h', b'i', 0xff, 0xfe, b'!']).sign_and_encode()
}

/// A valid post whose body length (the varint just before the body) is
/// written in a longer form than needed: same value, second encoding.
pub fn post_with_non_canonical_length() -> Vec<u8> {
    let bytes = post_with_body("hello".into());
    // The message ends with: body length (1 byte, 5), body, then the
    // signature as 64 raw bytes.
    let len_at = bytes.len() - 64 - 5 - 1;
    assert_eq!(bytes[len_at], 5, "layout of a post changed");
    let mut out = bytes[..len_at].to_vec();
    out.extend_from_slice(&[251, 5, 0]);
    out.extend_from_slice(&bytes[len_at + 1..]);
    out
}

/// A valid post whose body was changed after signing.
pub fn post_changed_after_signing() -> Vec<u8> {
    let mut post = sample_post();
    post.content.body.push('!');
    post_bytes(&post)
}

/// A post naming [`AUTHOR`] but signed by someone else.
pub fn post_signed_by_another_key() -> Vec<u8> {
    let mut post = signed_post_with(community(), NOW, None, None, "hello".into());
    post.signature = key(AUTHOR + 100).sign(&wire::signing_bytes(Post::DOMAIN, &post.content));
    post_bytes(&post)
}

/// A block whose reason was changed after signing.
pub fn action_changed_after_signing() -> Vec<u8> {
    let mut action = sample_action();
    if let ModActionKind::Block { reason, .. } = &mut action.content.kind {
        *reason = "because".into();
    }
    Message::Moderation(action).encode()
}

/// A retraction redirected to another post after signing.
pub fn retraction_changed_after_signing() -> Vec<u8> {
    let mut r = sample_retraction();
    r.content.post = PostId::of_bytes(b"someone else's post");
    Message::Retraction(r).encode()
}

/// A retraction signed by its author over the post domain instead of the
/// retraction domain: it must not verify (domain separation).
pub fn retraction_signed_in_post_domain() -> Vec<u8> {
    let mut r = sample_retraction();
    r.signature = key(AUTHOR).sign(&wire::signing_bytes(Post::DOMAIN, &r.content));
    Message::Retraction(r).encode()
}

/// A correctly signed block whose reason has `len` bytes.
pub fn action_with_reason_len(len: usize) -> Vec<u8> {
    let admin = key(ADMIN);
    let action = Signed::sign(
        ModAction {
            community: community(),
            signer: admin.public(),
            signer_name: None,
            seq: 1,
            created_at: NOW,
            kind: ModActionKind::Hide {
                post: PostId::of_bytes(b"p"),
                reason: "r".repeat(len),
            },
        },
        &admin,
    );
    Message::Moderation(action).encode()
}

/// A correctly signed action created `ahead_ms` after [`NOW`].
pub fn action_from_the_future(ahead_ms: u64) -> Vec<u8> {
    let action = ModAction::create(
        &identity(ADMIN, None),
        community(),
        1,
        ModActionKind::Pin {
            post: PostId::of_bytes(b"p"),
        },
        NOW + ahead_ms,
    )
    .expect("valid fields");
    Message::Moderation(action).encode()
}

/// A valid action of another community.
pub fn action_of_another_community() -> Vec<u8> {
    let action = ModAction::create(
        &identity(ADMIN, None),
        other_community(),
        1,
        ModActionKind::Pin {
            post: PostId::of_bytes(b"p"),
        },
        NOW,
    )
    .expect("valid fields");
    Message::Moderation(action).encode()
}

/// `bytes` with a different version byte.
pub fn with_version(mut bytes: Vec<u8>, version: u8) -> Vec<u8> {
    bytes[0] = version;
    bytes
}

/// A valid message with one extra byte.
pub fn with_trailing_byte() -> Vec<u8> {
    let mut bytes = post_bytes(&sample_post());
    bytes.push(0);
    bytes
}

/// A valid message cut one byte short.
pub fn truncated() -> Vec<u8> {
    let mut bytes = post_bytes(&sample_post());
    bytes.pop();
    bytes
}

/// A message whose variant tag names no variant.
pub fn unknown_variant() -> Vec<u8> {
    vec![WIRE_VERSION, 9, 0, 0, 0]
}

/// One byte more than any message may have.
pub fn oversized() -> Vec<u8> {
    let mut bytes = vec![0u8; wire::MAX_MESSAGE_BYTES + 1];
    bytes[0] = WIRE_VERSION;
    bytes
}

/// A valid key succession: the author's key names key 12, which co-signs.
pub fn sample_succession() -> SignedModAction {
    ModAction::succeed(
        &identity(AUTHOR, Some("author")),
        &key(12),
        community(),
        3,
        NOW - 20_000,
    )
    .expect("a valid succession")
}

/// The admin names a co-admin (wire version 3).
pub fn sample_co_admin() -> SignedModAction {
    ModAction::create(
        &identity(ADMIN, Some("admin")),
        community(),
        4,
        ModActionKind::AppointCoAdmin {
            key: key(13).public(),
        },
        NOW - 10_000,
    )
    .expect("a valid co-admin appointment")
}

/// An invitation of zero uses (built by hand: `ModAction::create`
/// refuses to sign one).
pub fn invitation_of_no_uses() -> Vec<u8> {
    let action = ModAction {
        community: community(),
        signer: key(ADMIN).public(),
        signer_name: Some("admin".into()),
        seq: 5,
        created_at: NOW - 5_000,
        kind: ModActionKind::Invite {
            invitation: key(14).public(),
            uses: 0,
            expires_at: NOW + 1_000,
        },
    };
    Message::Moderation(protocol::Signed::sign(action, &key(ADMIN))).encode()
}

/// A succession whose new key was changed after both signed it: the old
/// key's signature is good again (re-signed), the co-signature is not.
pub fn succession_with_bad_co_signature() -> Vec<u8> {
    let mut succession = sample_succession();
    if let ModActionKind::Succeed { new, .. } = &mut succession.content.kind {
        *new = key(13).public();
    }
    let resigned = protocol::Signed::sign(succession.content, &key(AUTHOR));
    Message::Moderation(resigned).encode()
}

/// A succession naming its own signer as the new key (built by hand:
/// `ModAction::succeed` refuses to make one).
pub fn succession_to_itself() -> Vec<u8> {
    let me = key(AUTHOR).public();
    let statement = protocol::moderation::succession_statement(&community(), &me, &me);
    let action = ModAction {
        community: community(),
        signer: me,
        signer_name: None,
        seq: 3,
        created_at: NOW - 20_000,
        kind: ModActionKind::Succeed {
            new: me,
            new_signature: key(AUTHOR).sign(&statement),
        },
    };
    Message::Moderation(protocol::Signed::sign(action, &key(AUTHOR))).encode()
}
