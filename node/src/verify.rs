//! Verifying many items at once on every core. Signature checks dominate
//! ingest (see ARCHITECTURE.md, "Where the time goes"); a sync page or an
//! import batch is split across the machine's cores with scoped threads.
//! Each item is checked by exactly the same `Message::verify` as a single
//! gossip message, so the verdicts cannot differ.

use protocol::{Message, ValidationContext, ValidationError, VerifiedMessage};

/// Below this many items, threads cost more than they save.
const PARALLEL_THRESHOLD: usize = 32;

/// Decodes and verifies each encoded item, in order; decoding is split
/// over the cores with the verification.
pub(crate) fn decode_and_verify_all(
    items: &[Vec<u8>],
    ctx: &ValidationContext,
) -> Vec<Result<VerifiedMessage, ValidationError>> {
    on_cores(items.iter().collect(), |part: Vec<&Vec<u8>>| {
        verify_chunk(part.into_iter().map(|b| Message::decode(b)).collect(), ctx)
    })
}

/// Verifies each message, in order.
pub(crate) fn verify_all(
    messages: Vec<Message>,
    ctx: &ValidationContext,
) -> Vec<Result<VerifiedMessage, ValidationError>> {
    on_cores(messages, |part| {
        verify_chunk(part.into_iter().map(Ok).collect(), ctx)
    })
}

/// Splits `items` into one part per core (one part when there are few),
/// runs `f` on each part on its own thread, and joins the results in order.
/// Also what the store seals a batch of arrivals with.
pub(crate) fn on_cores<T: Send, R: Send>(
    items: Vec<T>,
    f: impl Fn(Vec<T>) -> Vec<R> + Sync,
) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 || items.len() < PARALLEL_THRESHOLD {
        return f(items);
    }
    let chunk = items.len().div_ceil(cores);
    let mut parts: Vec<Vec<T>> = Vec::with_capacity(cores);
    let mut rest = items;
    while rest.len() > chunk {
        let tail = rest.split_off(chunk);
        parts.push(rest);
        rest = tail;
    }
    parts.push(rest);
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                let f = &f;
                scope.spawn(move || f(part))
            })
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
