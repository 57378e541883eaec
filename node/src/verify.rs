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
    parallel_map(items, |bytes| Message::decode_and_verify(bytes, ctx))
}

/// Verifies each message, in order.
pub(crate) fn verify_all(
    messages: Vec<Message>,
    ctx: &ValidationContext,
) -> Vec<Result<VerifiedMessage, ValidationError>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 || messages.len() < PARALLEL_THRESHOLD {
        return messages.into_iter().map(|m| m.verify(ctx)).collect();
    }
    let chunk = messages.len().div_ceil(cores);
    let mut parts: Vec<Vec<Message>> = Vec::with_capacity(cores);
    let mut rest = messages;
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
                scope.spawn(move || part.into_iter().map(|m| m.verify(ctx)).collect::<Vec<_>>())
            })
            .collect();
        join_in_order(handles)
    })
}

fn join_in_order<R>(handles: Vec<std::thread::ScopedJoinHandle<'_, Vec<R>>>) -> Vec<R> {
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
}

fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 || items.len() < PARALLEL_THRESHOLD {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let f = &f;
                scope.spawn(move || part.iter().map(f).collect::<Vec<R>>())
            })
            .collect();
        join_in_order(handles)
    })
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
