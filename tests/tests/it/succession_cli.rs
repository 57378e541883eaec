//! Issue 16 through the real binary: `mutual name` and `mutual key rotate`
//! against a running `mutual run` daemon.

use anyhow::{bail, Context, Result};
use mutual_tests::daemon::{admin_dir, json, ok, run, text, Daemon};
use serde_json::Value;

/// The posts `mutual read t --json` prints, one object per line.
fn posts(dir: &std::path::Path) -> Result<Vec<Value>> {
    ok(dir, &["--json", "read", "t"])?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("a read line: {l}")))
        .collect()
}

#[test]
fn a_rotated_key_and_a_new_name_keep_one_author() -> Result<()> {
    let root = tempfile::tempdir()?;
    let dir = admin_dir(root.path(), "river")?;
    let daemon = Daemon::start(&dir, &[])?;
    let first = daemon.key.clone();
    ok(&dir, &["join", "t"])?;
    ok(&dir, &["post", "t", "before"])?;

    let said = ok(&dir, &["name", "willow"])?;
    if !said.contains("willow") {
        bail!("`mutual name` said: {said}");
    }
    let rotated = json(&dir, &["key", "rotate"])?;
    let new = rotated["author"].as_str().context("no author")?.to_string();
    if new == first || rotated["previous"] != first.as_str() {
        bail!("rotate answered {rotated}");
    }
    if json(&dir, &["id"])?["author"] != new.as_str() {
        bail!("the node does not sign with the new key");
    }
    if !dir.join("vault").join("author.previous").exists() {
        bail!("the old key was not kept");
    }
    if rotated["recovery_phrase"]
        .as_str()
        .map(|p| p.split(' ').count())
        != Some(24)
    {
        bail!("rotate printed no recovery phrase of 24 words: {rotated}");
    }
    ok(&dir, &["post", "t", "after"])?;
    let shown = posts(&dir)?;
    if shown.len() != 2
        || shown
            .iter()
            .any(|p| p["author"] != first.as_str() || p["author_name"] != "willow")
    {
        bail!("not one author with the newest name: {shown:?}");
    }
    // The new key is the data directory's: after a restart the node signs
    // with it, and it can be rotated in turn.
    daemon.terminate()?;
    let daemon = Daemon::start(&dir, &[])?;
    if daemon.key != new {
        bail!("after a restart the node signs as {}", daemon.key);
    }
    let again = json(&dir, &["key", "rotate"])?;
    if again["previous"] != new.as_str() {
        bail!("the second rotation answered {again}");
    }
    let shown = posts(&dir)?;
    if shown.iter().any(|p| p["author"] != first.as_str()) {
        bail!("a second rotation changed how the author is shown: {shown:?}");
    }
    daemon.terminate()?;
    // Without a running node, rotation says so and changes nothing.
    let key_file = std::fs::read(dir.join("vault").join("author"))?;
    let out = run(&dir, &["key", "rotate"])?;
    if out.status.success() || !text(&out.stderr).contains("no mutual node is running") {
        bail!("rotate without a node: {}", text(&out.stderr));
    }
    if std::fs::read(dir.join("vault").join("author"))? != key_file {
        bail!("rotate without a node changed the key file");
    }
    Ok(())
}
