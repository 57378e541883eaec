//! The multi-node integration tests, in one binary: one link instead of
//! one per file (each ~100 MB), which kept CI within its disk and time.
//! Run one file's tests with `cargo test -p mutual-tests --test it gossip::`.
//! (`logs.rs` and `damage.rs` stay separate binaries: each installs a
//! process-wide log subscriber.)

mod support;
mod web_support;

mod admission;
mod cli;
mod connect;
mod crash;
mod crash_moderation;
mod disk_full;
mod edges;
mod flood;
mod gossip;
mod identity;
mod invites;
mod membership_gate;
mod moderation;
mod nat;
mod netns;
mod probation;
mod queue_cli;
mod reliability;
mod report_workflow;
mod restart;
mod succession;
mod succession_cli;
mod sync;
mod topic_directory;
mod web;
mod web_cli;
mod web_directory;
mod web_measure;
