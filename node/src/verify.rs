//! Verifying many items at once on every core. Signature checks dominate
//! ingest (see ARCHITECTURE.md, "Where the time goes"); a sync page or an
//! import batch is split across the machine's cores with scoped threads.
//! Each item is checked by exactly the same `Message::verify` as a single
//! gossip message, so the verdicts cannot differ.

use protocol::{Message, ValidationContext, ValidationError, VerifiedMessage};

/// Below this many items, threads cost more than they save.
const PARALLEL_THRESHOLD: usize = 32;

/// Decodes and verifies each encoded item, in order.
pub(crate) fn decode_and_verify_all(
    items: &[Vec<u8>],
    ctx: &ValidationContext,
) -> Vec<Result<VerifiedMessage, ValidationError>> {
    let decoded: Vec<Result<Message, ValidationError>> =
        items.iter().map(|b| Message::decode(b)).collect();
    verify_decoded(decoded, ctx)
}

/// Verifies each message, in order.
pub(crate) fn verify_all(
    messages: Vec<Message>,
    ctx: &ValidationContext,
) -> Vec<Result<VerifiedMessage, ValidationError>> {
    verify_decoded(messages.into_iter().map(Ok).collect(), ctx)
}

/// Verifies the decoded messages in batches, one batch per core; decoding
/// errors stay in place.
fn verify_decoded(
    decoded: Vec<Result<Message, ValidationError>>,
    ctx: &ValidationContext,
) -> Vec<Result<VerifiedMessage, ValidationError>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = if decoded.len() < PARALLEL_THRESHOLD {
        1
    } else {
        cores
    };
    let chunk = decoded.len().div_ceil(parts).max(1);
    let mut chunks: Vec<Vec<Result<Message, ValidationError>>> = Vec::with_capacity(parts);
    let mut rest = decoded;
    while rest.len() > chunk {
        let tail = rest.split_off(chunk);
        chunks.push(rest);
        rest = tail;
    }
    chunks.push(rest);
    if chunks.len() == 1 {
        return chunks
            .pop()
            .map(|c| verify_chunk(c, ctx))
            .unwrap_or_default();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|part| scope.spawn(move || verify_chunk(part, ctx)))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                // A panic in a verifier thread is a bug; re-raise it here
                // rather than silently dropping items.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// One batch on the calling thread.
fn verify_chunk(
    chunk: Vec<Result<Message, ValidationError>>,
    ctx: &ValidationContext,
) -> Vec<Result<VerifiedMessage, ValidationError>> {
    let mut slots: Vec<Option<Result<VerifiedMessage, ValidationError>>> =
        Vec::with_capacity(chunk.len());
    let mut messages = Vec::with_capacity(chunk.len());
    for m in chunk {
        match m {
            Ok(m) => {
                messages.push(m);
                slots.push(None);
            }
            Err(e) => slots.push(Some(Err(e))),
        }
    }
    let mut verdicts = Message::verify_many(messages, ctx, &mut rand::thread_rng()).into_iter();
    slots
        .into_iter()
        .filter_map(|slot| slot.or_else(|| verdicts.next()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::post::Draft;
    use protocol::{CommunityId, Identity, Post, TopicName};

    #[test]
    fn parallel_verification_keeps_order_and_verdicts() {
        let community = CommunityId::of_bytes(b"c");
        let ctx = ValidationContext {
            community,
            now_ms: 10,
        };
        let me = Identity::generate(None);
        let mut items = Vec::new();
        for i in 0..100 {
            let mut p = Post::write(
                &me,
                community,
                TopicName::parse("t").unwrap(),
                Draft {
                    body: format!("p{i}"),
                    ..Draft::default()
                },
                5,
            )
            .unwrap();
            if i % 7 == 0 {
                p.content.body = "tampered".into();
            }
            items.push(Message::Post(p).encode());
        }
        let out = decode_and_verify_all(&items, &ctx);
        assert_eq!(out.len(), 100);
        for (i, r) in out.iter().enumerate() {
            assert_eq!(r.is_err(), i % 7 == 0, "item {i}");
            if let Ok(VerifiedMessage::Post(p)) = r {
                assert_eq!(p.body, format!("p{i}"));
            }
        }
    }
}
