//! What sealing gossip payloads costs (`node::GossipSeal`: XChaCha20-
//! Poly1305 under the community's gossip key, the topic string as
//! associated data): nanoseconds to seal and to open one payload of a
//! typical post's size (400 bytes) and of the largest message, and the
//! bytes added. Every gossip message is sealed once by its publisher and
//! opened once per copy received (duplicates included).
//!
//! `cargo run --release -p mutual-bench --example seal_cost [ROUNDS]`
//! (default 100,000 rounds per size).

use std::hint::black_box;
use std::time::Instant;

use node::{GossipSeal, SEAL_OVERHEAD};

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let seal = GossipSeal::new(&[7; 32]);
    let topic = "/mutual/2/0123456789abcdef0123456789abcdef/t/0123456789abcdef0123456789abcdef";
    println!("seal overhead: {SEAL_OVERHEAD} bytes per message");
    for size in [400usize, protocol::wire::MAX_MESSAGE_BYTES] {
        let data = vec![0x42u8; size];
        let start = Instant::now();
        let mut sealed = Vec::new();
        for _ in 0..rounds {
            sealed = seal.seal(topic, black_box(&data)).expect("sealing");
        }
        let seal_ns = start.elapsed().as_nanos() as f64 / f64::from(rounds);
        let start = Instant::now();
        for _ in 0..rounds {
            black_box(seal.open(topic, black_box(&sealed)).expect("opening"));
        }
        let open_ns = start.elapsed().as_nanos() as f64 / f64::from(rounds);
        println!(
            "{size:>6} bytes: seal {seal_ns:>8.0} ns, open {open_ns:>8.0} ns ({rounds} rounds)"
        );
    }
}
