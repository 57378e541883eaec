//! The bodies of the fuzz targets, as plain functions: the `fuzz_target!`
//! binaries call them, and `protocol/tests/fuzz_corpus.rs` replays the
//! committed seed corpora through the same functions on stable Rust.

pub mod checks;
