//! Issue 15 through the real binary: `mutual run` serves the app on
//! 127.0.0.1 at a port its data directory remembers; `mutual ui` prints a
//! one-time login link that works once.

mod web_support;

use anyhow::{bail, Context, Result};
use mutual_tests::daemon::{admin_dir, ok, Daemon};
use web_support::http;

fn app_port(dir: &std::path::Path) -> Result<u16> {
    let text = std::fs::read_to_string(dir.join("web.port")).context("reading web.port")?;
    Ok(text.trim().parse()?)
}

async fn login_status(port: u16, link: &str) -> Result<u16> {
    let path = link
        .split_once(&format!("127.0.0.1:{port}"))
        .map(|(_, p)| p.to_string())
        .context("the link is not on the app's port")?;
    Ok(http(port, "GET", &path, &[], b"").await?.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_run_serves_the_app_and_mutual_ui_logs_in_once() -> Result<()> {
    let root = tempfile::tempdir()?;
    let dir = admin_dir(root.path(), "river")?;
    let daemon = Daemon::start(&dir, &[])?;
    let port = app_port(&dir)?;
    let (status, _, _) = http(port, "GET", "/", &[], b"").await?;
    if status != 401 {
        bail!("the app answered {status} without a session, not 401");
    }
    let out = ok(&dir, &["ui", "--no-open"])?;
    let link = out
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .context("`mutual ui` printed no link")?
        .to_string();
    if login_status(port, &link).await? != 303 {
        bail!("the login link did not log in");
    }
    if login_status(port, &link).await? != 401 {
        bail!("the login link worked twice");
    }
    let json = ok(&dir, &["--json", "ui", "--no-open"])?;
    let v: serde_json::Value = serde_json::from_str(json.trim())?;
    let second = v["login"]
        .as_str()
        .context("no login in --json")?
        .to_string();
    if login_status(port, &second).await? != 303 {
        bail!("the --json login link did not log in");
    }
    daemon.terminate()?;
    // The port is remembered: the app comes back where the bookmark is.
    let daemon = Daemon::start(&dir, &[])?;
    if app_port(&dir)? != port {
        bail!("the app moved to another port after a restart");
    }
    let (status, _, _) = http(port, "GET", "/", &[], b"").await?;
    if status != 401 {
        bail!("after a restart the app answered {status} at its port, not 401");
    }
    daemon.terminate()?;
    Ok(())
}
