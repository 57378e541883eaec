//! What each fuzz target checks, as plain functions of the input bytes.
//!
//! Each function panics when a property fails (that is what the fuzzer
//! reports) and otherwise returns how far the input got, so the stable
//! replay test (`protocol/tests/fuzz_corpus.rs`, which includes this file
//! by path) can tell that the committed seeds reach the deep paths.
//!
//! The properties, per target:
//! - [`decode_message`]: decoding never panics; what decodes re-encodes to
//!   the same bytes; verifying decoded bytes equals decoding-and-verifying
//!   them; a message never verifies in another community; a verified
//!   message re-encoded verifies again with the same id.
//! - [`validate_post`], [`validate_action`]: an item built from the input
//!   verifies exactly when the rules (restated here) say so; a correctly
//!   signed item never fails on its signature; verify → encode → decode →
//!   verify gives the same result and id; a verified action applied to a
//!   fresh moderation state decides what folding it decides.
//! - [`sync_messages`]: the input as a `SyncRequest` re-encodes to the same
//!   bytes and gets an answer within the frame and item caps; as a
//!   `SyncResponse` it re-encodes to the same bytes and an initiator fed it
//!   (then an honest responder for a few rounds) never panics and never
//!   sends an oversized request.
//! - [`invite`]: the input as an invite code (or as the payload of a code
//!   with a correct header) never panics the decoder; an accepted code is
//!   signed by its inviter and re-encodes to itself (whitespace aside).

use std::collections::{BTreeMap, BTreeSet};

use protocol::invite::{code_from_payload, SignedInvite, MAX_INVITE_ADDRS};
use protocol::message::VerifiedMessage;
use protocol::moderation::{ModAction, ModActionKind, Scope};
use protocol::post::Post;
use protocol::state::ModerationState;
use protocol::sync::{
    respond, Initiator, ItemKey, QueryMode, ResponseStatus, Step, SyncRequest, SyncResponse,
    SyncScope, MAX_ITEMS_PER_RESPONSE,
};
use protocol::wire::{self, WireError, MAX_MESSAGE_BYTES, MAX_SYNC_FRAME_BYTES};
use protocol::{
    CommunityId, Message, PostId, PublicKey, SecretKey, Signed, TopicName, ValidationContext,
    ValidationError, MAX_BODY_BYTES, MAX_CONTENT_WARNING_BYTES, MAX_FUTURE_SKEW_MS,
    MAX_PSEUDONYM_BYTES, MAX_REASON_BYTES,
};

/// The clock of every check, ms since the Unix epoch (2023-11-14).
pub const NOW: u64 = 1_700_000_000_000;

/// How far an input got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Refused: did not decode, or (for built items) did not verify.
    Refused,
    /// Decoded, but did not verify (or, for sync, was processed).
    Decoded,
    /// Verified (or accepted) and round-tripped.
    Verified,
}

// ---------------------------------------------------------------------
// decode_message
// ---------------------------------------------------------------------

/// The community a message names.
fn community_of(message: &Message) -> CommunityId {
    match message {
        Message::Post(p) => p.content.community,
        Message::Retraction(r) => r.content.community,
        Message::Moderation(m) => m.content.community,
        Message::Report(r) => r.community,
    }
}

/// Another community than `c`.
fn elsewhere(c: &CommunityId) -> CommunityId {
    let mut bytes = c.0;
    bytes[0] ^= 1;
    CommunityId(bytes)
}

/// Decodes `data` as a gossip/sync message, judged in the community it
/// names at [`NOW`].
pub fn decode_message(data: &[u8]) -> Outcome {
    let message = match Message::decode(data) {
        Ok(m) => m,
        Err(e) => {
            let ctx = ValidationContext {
                community: CommunityId([0; 32]),
                now_ms: NOW,
            };
            assert_eq!(
                Message::decode_and_verify(data, &ctx).err(),
                Some(e),
                "decode_and_verify disagrees with decode"
            );
            return Outcome::Refused;
        }
    };
    assert_eq!(
        message.encode(),
        data,
        "decoded from a non-canonical encoding"
    );

    let home = community_of(&message);
    let abroad = ValidationContext {
        community: elsewhere(&home),
        now_ms: NOW,
    };
    let replayed = message.clone().verify(&abroad);
    assert!(
        matches!(replayed, Err(ValidationError::WrongCommunity { .. })),
        "a message of another community was not refused for it: {replayed:?}"
    );

    let ctx = ValidationContext {
        community: home,
        now_ms: NOW,
    };
    let verified = message.clone().verify(&ctx);
    assert_eq!(
        Message::decode_and_verify(data, &ctx),
        verified,
        "decode_and_verify disagrees with decode then verify"
    );
    let Ok(verified) = verified else {
        return Outcome::Decoded;
    };
    let again = verified.to_message();
    assert_eq!(again, message, "verification changed the message");
    let bytes = again.encode();
    assert_eq!(bytes, data);
    let twice = Message::decode_and_verify(&bytes, &ctx)
        .unwrap_or_else(|e| panic!("a verified message, re-encoded, was refused: {e}"));
    assert_eq!(twice.id_bytes(), verified.id_bytes());
    Outcome::Verified
}

// ---------------------------------------------------------------------
// Building items from bytes
// ---------------------------------------------------------------------

/// Reads fuzz input as a list of choices. Past the end every read gives
/// zeros, so any input is a complete recipe.
pub struct Recipe<'a> {
    data: &'a [u8],
}

impl<'a> Recipe<'a> {
    /// A recipe over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Recipe { data }
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// Whether the next byte is odd.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// The next 8 bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// The next 4 bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// The next `N` bytes.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            *b = self.byte();
        }
        out
    }

    /// A text: a length byte, that many bytes (invalid UTF-8 replaced),
    /// then a repeat count byte (`0` and `1`: once), so short inputs can
    /// make texts past every size limit.
    pub fn text(&mut self) -> String {
        let len = usize::from(self.byte());
        let take = len.min(self.data.len());
        let (head, rest) = self.data.split_at(take);
        self.data = rest;
        let unit = String::from_utf8_lossy(head).into_owned();
        unit.repeat(usize::from(self.byte()).max(1))
    }

    /// An optional text: a flag, then the text if set.
    pub fn optional_text(&mut self) -> Option<String> {
        if self.flag() {
            Some(self.text())
        } else {
            None
        }
    }

    /// A topic name from a text, or `general` if it breaks the rule.
    pub fn topic(&mut self) -> TopicName {
        let text = self.text();
        TopicName::parse(&text)
            .or_else(|_| TopicName::parse("general"))
            .unwrap_or_else(|e| panic!("`general` is a topic name: {e}"))
    }
}

/// One of four keys: the admin of the fuzzed community is `pool_key(0)`.
fn pool_key(choice: u8) -> SecretKey {
    SecretKey::from_bytes(&[choice % 4 + 1; 32])
}

/// A key that never signs honestly: it signs in someone else's name.
fn impostor() -> SecretKey {
    SecretKey::from_bytes(&[0xee; 32])
}

/// Which community, who really signs, and how the node judges the item.
struct Setting {
    community: CommunityId,
    judged_in: CommunityId,
    now_ms: u64,
    forged: bool,
}

impl Setting {
    fn read(r: &mut Recipe<'_>, created_at: u64) -> Self {
        let community = CommunityId::of_bytes(&[r.byte() % 2]);
        let judged_in = if r.byte() % 8 == 7 {
            elsewhere(&community)
        } else {
            community
        };
        let now_ms = match r.byte() % 4 {
            0 => created_at,
            1 => created_at.saturating_sub(MAX_FUTURE_SKEW_MS),
            2 => created_at.saturating_sub(MAX_FUTURE_SKEW_MS + 1),
            _ => created_at.saturating_add(u64::from(r.u32())),
        };
        let forged = r.byte() % 8 == 7;
        Setting {
            community,
            judged_in,
            now_ms,
            forged,
        }
    }

    fn ctx(&self) -> ValidationContext {
        ValidationContext {
            community: self.judged_in,
            now_ms: self.now_ms,
        }
    }

    /// The rules every signed item shares.
    fn allows(&self, created_at: u64) -> bool {
        self.judged_in == self.community
            && created_at.saturating_sub(self.now_ms) <= MAX_FUTURE_SKEW_MS
            && !self.forged
    }
}

fn fits(text: &Option<String>, limit: usize) -> bool {
    text.as_ref().is_none_or(|t| t.len() <= limit)
}

/// Encodes `message`, decodes and verifies it as a node would, and checks
/// that this agrees with verifying it directly (`direct`); a verified
/// message must round-trip again.
fn through_the_wire(
    message: Message,
    ctx: &ValidationContext,
    direct: Result<VerifiedMessage, ValidationError>,
) -> Outcome {
    let bytes = message.encode();
    let arrived = Message::decode_and_verify(&bytes, ctx);
    if bytes.len() > MAX_MESSAGE_BYTES {
        assert!(direct.is_err(), "a valid item does not fit in a message");
        assert!(matches!(
            arrived,
            Err(ValidationError::Wire(WireError::TooLarge { .. }))
        ));
        return Outcome::Refused;
    }
    let decoded =
        Message::decode(&bytes).unwrap_or_else(|e| panic!("an encoded item does not decode: {e}"));
    assert_eq!(decoded, message, "decoding changed the item");
    assert_eq!(arrived, direct, "the wire changed the verdict");
    let Ok(verified) = arrived else {
        return Outcome::Refused;
    };
    let again = verified.to_message().encode();
    assert_eq!(again, bytes);
    let twice = Message::decode_and_verify(&again, ctx)
        .unwrap_or_else(|e| panic!("a verified item, re-encoded, was refused: {e}"));
    assert_eq!(twice, verified);
    Outcome::Verified
}

// ---------------------------------------------------------------------
// validate_post
// ---------------------------------------------------------------------

/// Builds and signs a post from the input, checks the verdict against
/// the rules, then sends it through the wire.
pub fn validate_post(data: &[u8]) -> Outcome {
    let mut r = Recipe::new(data);
    let author = pool_key(r.byte());
    let topic = r.topic();
    let author_name = r.optional_text();
    let created_at = r.u64();
    let parent = if r.flag() {
        Some(PostId(r.array()))
    } else {
        None
    };
    let content_warning = r.optional_text();
    let body = r.text();
    let setting = Setting::read(&mut r, created_at);

    let post = Post {
        community: setting.community,
        topic,
        author: author.public(),
        author_name,
        created_at,
        parent,
        content_warning,
        body,
    };
    let expected = setting.allows(created_at)
        && post.body.len() <= MAX_BODY_BYTES
        && !post.body.trim().is_empty()
        && fits(&post.content_warning, MAX_CONTENT_WARNING_BYTES)
        && fits(&post.author_name, MAX_PSEUDONYM_BYTES);
    let signer = if setting.forged { impostor() } else { author };
    let signed = Signed::sign(post, &signer);
    let ctx = setting.ctx();

    let direct = signed.clone().verify(&ctx);
    assert_eq!(
        direct.is_ok(),
        expected,
        "verdict against the rules: {direct:?}"
    );
    if !setting.forged {
        assert!(
            !matches!(direct, Err(ValidationError::BadSignature(_))),
            "an honestly signed post failed on its signature"
        );
    }
    if let Ok(v) = &direct {
        assert_eq!(v.id(), signed.id());
    }
    through_the_wire(
        Message::Post(signed),
        &ctx,
        direct.map(VerifiedMessage::Post),
    )
}

// ---------------------------------------------------------------------
// validate_action
// ---------------------------------------------------------------------

fn read_kind(r: &mut Recipe<'_>) -> ModActionKind {
    let target = |r: &mut Recipe<'_>| {
        if r.flag() {
            PublicKey(r.array())
        } else {
            pool_key(r.byte()).public()
        }
    };
    let scope = |r: &mut Recipe<'_>| {
        if r.flag() {
            Scope::Topic(r.topic())
        } else {
            Scope::Community
        }
    };
    match r.byte() % 8 {
        0 => ModActionKind::AppointModerator { key: target(r) },
        1 => ModActionKind::RevokeModerator {
            key: target(r),
            upto_seq: if r.flag() { Some(r.u64()) } else { None },
        },
        2 => ModActionKind::Block {
            author: target(r),
            scope: scope(r),
            reason: r.text(),
        },
        3 => ModActionKind::Unblock {
            author: target(r),
            scope: scope(r),
        },
        4 => ModActionKind::Hide {
            post: PostId(r.array()),
            reason: r.text(),
        },
        5 => ModActionKind::Unhide {
            post: PostId(r.array()),
        },
        6 => ModActionKind::Pin {
            post: PostId(r.array()),
        },
        _ => ModActionKind::Unpin {
            post: PostId(r.array()),
        },
    }
}

/// What a moderation state decides, through the API every version has.
type Decided = (
    BTreeSet<(PublicKey, Scope)>,
    BTreeSet<PostId>,
    Vec<PostId>,
    Vec<PublicKey>,
);

fn decided(state: &ModerationState) -> Decided {
    (
        state.block_targets(),
        state.hidden_targets(),
        state.pinned(),
        state.current_moderators(),
    )
}

/// Builds and signs a moderation action from the input, checks the
/// verdict against the rules, sends it through the wire, and applies it to
/// a fresh moderation state whose admin is `pool_key(0)`.
pub fn validate_action(data: &[u8]) -> Outcome {
    let mut r = Recipe::new(data);
    let signer = pool_key(r.byte());
    let signer_name = r.optional_text();
    let seq = r.u64();
    let created_at = r.u64();
    let kind = read_kind(&mut r);
    let setting = Setting::read(&mut r, created_at);

    let reason_fits = match &kind {
        ModActionKind::Block { reason, .. } | ModActionKind::Hide { reason, .. } => {
            reason.len() <= MAX_REASON_BYTES
        }
        _ => true,
    };
    let action = ModAction {
        community: setting.community,
        signer: signer.public(),
        signer_name,
        seq,
        created_at,
        kind,
    };
    let expected =
        setting.allows(created_at) && fits(&action.signer_name, MAX_PSEUDONYM_BYTES) && reason_fits;
    let key = if setting.forged { impostor() } else { signer };
    let signed = Signed::sign(action, &key);
    let ctx = setting.ctx();

    let direct = signed.clone().verify(&ctx);
    assert_eq!(
        direct.is_ok(),
        expected,
        "verdict against the rules: {direct:?}"
    );
    if !setting.forged {
        assert!(
            !matches!(direct, Err(ValidationError::BadSignature(_))),
            "an honestly signed action failed on its signature"
        );
    }
    if let Ok(verified) = &direct {
        // Alone in a fresh state, an action counts iff the admin signed it
        // and it is not a block or unblock of the admin (nobody blocks the
        // admin).
        let admin = pool_key(0).public();
        let mut state = ModerationState::new(setting.community, admin);
        let accepted = state.apply(verified).is_ok();
        let targets_admin = matches!(
            &verified.kind,
            ModActionKind::Block { author, .. } | ModActionKind::Unblock { author, .. }
                if *author == admin
        );
        assert_eq!(accepted, verified.signer == admin && !targets_admin);
        let folded = ModerationState::fold(setting.community, admin, [verified]);
        assert_eq!(decided(&state), decided(&folded));
    }
    through_the_wire(
        Message::Moderation(signed),
        &ctx,
        direct.map(VerifiedMessage::Moderation),
    )
}

// ---------------------------------------------------------------------
// sync_messages
// ---------------------------------------------------------------------

/// Most honest rounds run after a fuzzed response.
const FOLLOW_UP_ROUNDS: usize = 16;

/// The bytes of a synced item in these checks: its key.
fn item_bytes(k: &ItemKey) -> Vec<u8> {
    let mut v = k.created_at.to_le_bytes().to_vec();
    v.extend_from_slice(&k.id);
    v
}

/// The key an item names, if it is one of ours in shape.
fn item_key(item: &[u8]) -> Option<ItemKey> {
    let ts: [u8; 8] = item.get(..8)?.try_into().ok()?;
    let id: [u8; 32] = item.get(8..40)?.try_into().ok()?;
    Some(ItemKey {
        created_at: u64::from_le_bytes(ts),
        id,
    })
}

/// The responder's store: 48 items a second or so apart.
pub fn responder_store() -> BTreeMap<ItemKey, Vec<u8>> {
    (0u64..48)
        .map(|i| {
            let id = *blake3::hash(&i.to_le_bytes()).as_bytes();
            let key = ItemKey {
                created_at: NOW + i * 1_000 + u64::from(id[0]),
                id,
            };
            (key, item_bytes(&key))
        })
        .collect()
}

/// The initiator's set: two thirds of the responder's, plus two items it
/// lacks.
pub fn initiator_set(store: &BTreeMap<ItemKey, Vec<u8>>) -> BTreeSet<ItemKey> {
    let mut set: BTreeSet<ItemKey> = store
        .keys()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, k)| *k)
        .collect();
    for i in 0u8..2 {
        set.insert(ItemKey {
            created_at: NOW + 500 + u64::from(i) * 20_000,
            id: [i; 32],
        });
    }
    set
}

/// Checks an answer to `request` from `store`.
fn check_answer(
    request: &SyncRequest,
    response: &SyncResponse,
    store: &BTreeMap<ItemKey, Vec<u8>>,
) {
    assert_eq!(
        response.round, request.round,
        "the answer names another round"
    );
    let bytes = wire::encode_versioned(response);
    assert!(
        bytes.len() <= MAX_SYNC_FRAME_BYTES,
        "an answer of {} bytes exceeds the frame limit",
        bytes.len()
    );
    let decoded: SyncResponse = wire::decode_versioned(&bytes, MAX_SYNC_FRAME_BYTES)
        .unwrap_or_else(|e| panic!("an answer does not decode: {e}"));
    assert_eq!(&decoded, response);
    assert!(response.items.len() <= MAX_ITEMS_PER_RESPONSE);
    let asked = request
        .ranges
        .iter()
        .filter(|r| !matches!(r.mode, QueryMode::Skip))
        .count();
    assert!(response.replies.len() <= asked, "more replies than ranges");
    assert!(
        usize::try_from(response.wants_done).is_ok_and(|n| n <= request.want.len()),
        "more wants served than asked"
    );
    if response.status != ResponseStatus::Ok {
        assert!(response.replies.is_empty() && response.items.is_empty());
    }
    for item in &response.items {
        let held = item_key(item).and_then(|k| store.get(&k));
        assert_eq!(
            held,
            Some(item),
            "the responder sent an item it does not hold"
        );
    }
}

/// Checks a request the initiator wants to send.
fn check_request(request: &SyncRequest) {
    let bytes = wire::encode_versioned(request);
    assert!(
        bytes.len() <= MAX_SYNC_FRAME_BYTES,
        "a request of {} bytes exceeds the frame limit",
        bytes.len()
    );
    let decoded: SyncRequest = wire::decode_versioned(&bytes, MAX_SYNC_FRAME_BYTES)
        .unwrap_or_else(|e| panic!("a request does not decode: {e}"));
    assert_eq!(&decoded, request);
}

/// Decodes `data` as a sync request (answered from an in-memory store) and
/// as a sync response (fed to an initiator, then continued honestly).
pub fn sync_messages(data: &[u8]) -> Outcome {
    let store = responder_store();
    let mut outcome = Outcome::Refused;

    if let Ok(request) = wire::decode_versioned::<SyncRequest>(data, MAX_SYNC_FRAME_BYTES) {
        assert_eq!(
            wire::encode_versioned(&request),
            data,
            "a request decoded from a non-canonical encoding"
        );
        let response = respond(&request, &store, &store);
        check_answer(&request, &response, &store);
        outcome = Outcome::Decoded;
    }

    if let Ok(response) = wire::decode_versioned::<SyncResponse>(data, MAX_SYNC_FRAME_BYTES) {
        assert_eq!(
            wire::encode_versioned(&response),
            data,
            "a response decoded from a non-canonical encoding"
        );
        let mut ours = initiator_set(&store);
        let (mut initiator, first) = Initiator::new(SyncScope::CommunityLog, &ours);
        check_request(&first);

        // As it came: unless it names the round asked, it is refused.
        let (mut stray, _) = Initiator::new(SyncScope::CommunityLog, &ours);
        let verdict = stray.on_response(response.clone(), &ours);
        if response.round != first.round {
            assert!(verdict.is_err(), "an answer to another round was taken");
        }

        // As the answer to the first request, then honest answers.
        let mut answer = response;
        answer.round = first.round;
        let mut step = initiator.on_response(answer, &ours);
        for _ in 0..FOLLOW_UP_ROUNDS {
            for item in initiator.take_items() {
                if let Some(k) = item_key(&item) {
                    ours.insert(k);
                }
            }
            let Ok(Step::Continue(request)) = step else {
                break;
            };
            check_request(&request);
            let honest = respond(&request, &store, &store);
            check_answer(&request, &honest, &store);
            step = initiator.on_response(honest, &ours);
        }
        outcome = Outcome::Decoded;
    }
    outcome
}

// ---------------------------------------------------------------------
// invite
// ---------------------------------------------------------------------

/// Parses an invite code made from `data`: an even first byte takes the
/// rest as the code's text; an odd one takes it as the code's payload and
/// adds the prefix and header, so the fuzzer reaches the decoder and the
/// signature check.
pub fn invite(data: &[u8]) -> Outcome {
    let code = match data.split_first() {
        Some((mode, payload)) if mode % 2 == 1 => code_from_payload(payload),
        Some((_, text)) => String::from_utf8_lossy(text).into_owned(),
        None => String::new(),
    };
    let Ok(invite) = SignedInvite::decode(&code, NOW) else {
        return Outcome::Refused;
    };
    assert!(invite.content.addrs.len() <= MAX_INVITE_ADDRS);
    assert!(invite.check_signature().is_ok());
    let again = invite.encode();
    let stripped: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(again, stripped, "an invite has a second code");
    let back = SignedInvite::decode(&again, NOW)
        .unwrap_or_else(|e| panic!("a re-encoded invite was refused: {e}"));
    assert_eq!(back, invite);
    Outcome::Verified
}
