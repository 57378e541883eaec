//! The binary starts and explains itself. (Having an integration test here
//! also makes `cargo test --workspace` build the `mutual` binary, which the
//! end-to-end tests in `tests/tests/cli.rs` run.)

use assert_cmd::Command;

#[test]
fn help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_mutual"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for command in ["init", "community", "run", "post", "read", "mod", "demo"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
}

#[test]
fn a_missing_argument_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_mutual"))
        .args(["post"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOPIC"));
}
