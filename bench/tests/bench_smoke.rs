//! The benchmark's smoke run: every part at a small size, so the benchmark
//! cannot rot. It asserts that each part completes and reports figures,
//! nothing about speed.
//!
//! Ignored by `cargo test --workspace` (it takes a minute or two); CI runs
//! it right after the suite with
//! `cargo test --workspace --test bench_smoke -- --ignored`, which reuses
//! the test build: a separate `cargo run --release` would compile every
//! dependency again, and `cargo run -p mutual-bench` would too (its
//! dependencies' features differ from the workspace test build's).

use std::process::Command;

#[test]
#[ignore = "a minute or two; run by CI (.ci/run)"]
fn every_part_of_the_benchmark_completes_at_smoke_size() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("bench.json");
    let status = Command::new(env!("CARGO_BIN_EXE_mutual-bench"))
        .arg("--smoke")
        .arg("--json")
        .arg(&json)
        .status()
        .expect("the benchmark runs");
    assert!(status.success(), "the smoke run failed: {status}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the figures were written"))
            .expect("the figures are JSON");
    assert_eq!(report["mode"], "smoke");
    assert_eq!(report["failures"], serde_json::json!([]));
    let rows = report["rows"].as_array().expect("rows");
    for part in ["ingest", "propagation", "sync", "read", "moderation", "nat"] {
        assert!(
            rows.iter().any(|r| r["part"] == part),
            "no figure from the {part} part"
        );
    }
}
