//! A full disk: a post the node could not make durable is refused with a
//! clear error (and never published), and once space is freed the node
//! comes back by itself: sled refuses every write after a failed flush
//! until the store is opened again, so `mutual run` stops the node and
//! starts it again when the disk takes writes.
//!
//! A peer on another disk sees every post the node stored and never the
//! one it refused: nothing is published that was not stored.
//!
//! Needs root, to mount a small tmpfs as the data directory (CI runs as
//! root); it fails with the reason otherwise.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mutual_tests::daemon::{json, member_dir, ok, run, text, wait_until, Daemon};

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Result<Mount> {
    std::fs::create_dir_all(dir)?;
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .status()
        .context("running mount (this test needs root and util-linux's mount)")?;
    if !status.success() {
        bail!(
            "could not mount a tmpfs at {} ({status}): this test needs root",
            dir.display()
        );
    }
    Ok(Mount(dir.to_path_buf()))
}

/// Fills the filesystem of `dir` with a ballast file until it is full.
fn fill(dir: &Path) -> Result<std::path::PathBuf> {
    let path = dir.join("ballast");
    let mut f = std::fs::File::create(&path)?;
    let chunk = vec![0x5au8; 64 * 1024];
    loop {
        match f.write_all(&chunk).and_then(|()| f.sync_all()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(path)
}

#[test]
fn a_full_disk_refuses_posts_clearly_and_the_node_recovers_by_itself() -> Result<()> {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("alice");
    let _mount = mount_tmpfs(&dir, "48m")?;
    mutual_tests::daemon::init(&dir, "alice")?;
    ok(&dir, &["community", "create", "Circle"])?;
    let daemon = Daemon::start(&dir, &[])?;
    ok(&dir, &["join", "burnout"])?;
    // A peer on the ordinary disk.
    let bob_dir = member_dir(root.path(), "bob", &daemon)?;
    let bob = Daemon::start(&bob_dir, &[&daemon.addr])?;
    ok(&bob_dir, &["join", "burnout"])?;
    ok(&dir, &["post", "burnout", "before the disk filled up"])?;

    let ballast = fill(&dir)?;
    // Posts of 8 KiB until one cannot be made durable (sled may still have
    // room in a segment it allocated earlier).
    let filler = "x".repeat(8000);
    let mut refusal = None;
    for i in 0..200 {
        let body = format!("filler {i} {filler}");
        let out = run(&dir, &["post", "burnout", &body])?;
        if !out.status.success() {
            refusal = Some((format!("filler {i} "), text(&out.stderr)));
            break;
        }
    }
    let (refused, refusal) = refusal.context("no post was refused on a full disk")?;
    assert!(
        refusal.contains("disk") || refusal.contains("not running") || refusal.contains("space"),
        "the refusal says what is wrong: {refusal}"
    );

    // Space comes back; the node starts again by itself.
    std::fs::remove_file(&ballast)?;
    wait_until(
        Duration::from_secs(90),
        "the node to answer again after space was freed",
        || {
            run(&dir, &["post", "burnout", "after space was freed"])
                .map(|o| o.status.success())
                .unwrap_or(false)
        },
    )?;
    let read = ok(&dir, &["read", "burnout", "--limit", "1000"])?;
    assert!(read.contains("before the disk filled up"), "{read}");
    assert!(read.contains("after space was freed"), "{read}");
    assert!(
        daemon.log_text().contains("starting the node again"),
        "the log says the node restarted: {}",
        daemon.log_text()
    );

    // Bob ends up with exactly what the node holds, the refused post not
    // among it: wait until both hold the post made after the recovery and
    // the same number of posts (bob syncs with the node on reconnecting).
    let bodies = |d: &Path| -> Vec<String> {
        let mut b: Vec<String> = ok(d, &["--json", "read", "burnout", "--limit", "1000"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["body"].as_str().map(str::to_string))
            .collect();
        b.sort();
        b
    };
    let count = |d: &Path| json(d, &["status"]).ok().and_then(|s| s["posts"].as_u64());
    wait_until(
        Duration::from_secs(60),
        "bob to hold what the node holds",
        || {
            count(&bob_dir).is_some()
                && count(&bob_dir) == count(&dir)
                && bodies(&bob_dir)
                    .iter()
                    .any(|b| b == "after space was freed")
        },
    )?;
    let held = bodies(&dir);
    let seen = bodies(&bob_dir);
    assert_eq!(seen, held, "bob holds exactly what the node stored");
    assert!(
        !seen.iter().any(|b| b.starts_with(&refused)),
        "the refused post reached bob"
    );
    drop(bob);
    drop(daemon);
    Ok(())
}
