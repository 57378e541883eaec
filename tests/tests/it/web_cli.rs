//! Issue 15 through the real binary: `mutual run` serves the app on
//! 127.0.0.1 at a port its data directory remembers; `mutual ui` prints a
//! one-time login link that works once.

use crate::web_support::{csrf_in, http, post_form, set_cookie};
use anyhow::{bail, Context, Result};
use mutual_tests::daemon::{admin_dir, ok, Daemon};

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

/// Issue 16: a node whose vault has a passphrase, started with neither a
/// terminal nor `--passphrase-file`, waits locked and serves only the
/// unlock page; a wrong passphrase changes nothing, the right one starts
/// the node, and the page's link brings the browser into the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_node_waits_for_the_apps_unlock_page() -> Result<()> {
    use mutual_tests::child::spawn_lines;
    use mutual_tests::daemon::{mutual_bin, run, LISTEN};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let root = tempfile::tempdir()?;
    let dir = root.path().join("river");
    let pass = root.path().join("pass");
    std::fs::write(&pass, "blue lantern at dusk\n")?;
    let with_pass = |args: &[&str]| -> Result<()> {
        let out = Command::new(mutual_bin())
            .arg("--data-dir")
            .arg(&dir)
            .arg("--passphrase-file")
            .arg(&pass)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "`mutual {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    with_pass(&["init", "--name", "river"])?;
    with_pass(&["community", "create", "Circle"])?;

    let (_node, lines) = spawn_lines(
        Command::new(mutual_bin())
            .arg("--data-dir")
            .arg(&dir)
            .args(["run", "--no-upnp", "--listen", LISTEN])
            .env_remove("MUTUAL_PASSPHRASE_FILE")
            .stdin(Stdio::null()),
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let link = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .context("`mutual run` printed no unlock link")?;
        if let Some(w) = line
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
        {
            break w.to_string();
        }
    };
    let port = app_port(&dir)?;
    let path_of = |link: &str| -> Result<String> {
        link.split_once(&format!("127.0.0.1:{port}"))
            .map(|(_, p)| p.to_string())
            .context("the link is not on the app's port")
    };
    // Locked: no control socket, nothing but the unlock page.
    if run(&dir, &["status"])?.status.success() {
        bail!("`mutual status` answered while the node waits locked");
    }
    let (status, _, _) = http(port, "GET", "/", &[], b"").await?;
    if status != 401 {
        bail!("the unlock page answered {status} without its login, not 401");
    }
    let (status, headers, _) = http(port, "GET", &path_of(&link)?, &[], b"").await?;
    if status != 303 {
        bail!("the unlock link answered {status}, not 303");
    }
    let cookie = set_cookie(&headers).context("no cookie from the unlock link")?;
    let with_cookie = [("Cookie", cookie.as_str())];
    let (status, _, body) = http(port, "GET", "/", &with_cookie, b"").await?;
    let page = String::from_utf8_lossy(&body).to_string();
    if status != 200 || !page.contains("type=\"password\"") {
        bail!("the unlock page answered {status}: {page}");
    }
    let csrf = csrf_in(&page).context("no CSRF token in the unlock form")?;
    let post = |body: String| {
        let cookie = cookie.clone();
        async move { post_form(port, &cookie, "/", &body).await }
    };
    // A form without the page's token, then a wrong passphrase: refused,
    // and the node stays locked.
    let (status, _, _) = post("csrf=nope&passphrase=blue+lantern+at+dusk".into()).await?;
    if status != 403 {
        bail!("a form without the page's token answered {status}, not 403");
    }
    let (status, _, _) = post(format!("csrf={csrf}&passphrase=blue+lantern+at+dawn")).await?;
    if status != 422 {
        bail!("a wrong passphrase answered {status}, not 422");
    }
    if run(&dir, &["status"])?.status.success() {
        bail!("a wrong passphrase started the node");
    }
    let (status, _, body) = post(format!("csrf={csrf}&passphrase=blue+lantern+at+dusk")).await?;
    let done = String::from_utf8_lossy(&body).to_string();
    if status != 200 {
        bail!("the right passphrase answered {status}: {done}");
    }
    let next = done
        .split_once("url=")
        .and_then(|(_, rest)| rest.split('"').next())
        .context("the unlocked page leads nowhere")?
        .to_string();
    // The node starts: its control socket answers, then the app's own
    // login (the link the page leads to) gives the app's session.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !run(&dir, &["status"])?.status.success() {
        if Instant::now() > deadline {
            bail!("the node did not start after the unlock");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, headers, _) = http(port, "GET", &next, &[], b"").await?;
    if status != 303 {
        bail!("the app's login from the unlocked page answered {status}, not 303");
    }
    let session = set_cookie(&headers).context("no session cookie from the app's login")?;
    let (status, _, body) = http(port, "GET", "/", &[("Cookie", session.as_str())], b"").await?;
    if status != 200 || !String::from_utf8_lossy(&body).contains("Circle") {
        bail!("the app's home answered {status} after the unlock");
    }
    Ok(())
}

/// Issue 16 in the app: "You" sets a passphrase (then the keys need it),
/// and "Forget this device" stops the node and removes the data
/// directory, only with the word typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_sets_a_passphrase_and_forgets_the_device() -> Result<()> {
    use std::time::{Duration, Instant};

    let root = tempfile::tempdir()?;
    let dir = admin_dir(root.path(), "river")?;
    let daemon = Daemon::start(&dir, &[])?;
    let port = app_port(&dir)?;
    let out = ok(&dir, &["ui", "--no-open"])?;
    let link = out
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .context("`mutual ui` printed no link")?
        .to_string();
    let path = link
        .split_once(&format!("127.0.0.1:{port}"))
        .map(|(_, p)| p.to_string())
        .context("the link is not on the app's port")?;
    let (_, headers, _) = http(port, "GET", &path, &[], b"").await?;
    let cookie = set_cookie(&headers).context("no session cookie")?;
    let (status, _, body) = http(port, "GET", "/me", &[("Cookie", cookie.as_str())], b"").await?;
    let page = String::from_utf8_lossy(&body).to_string();
    if status != 200 || !page.contains("Set passphrase") || !page.contains("No passphrase") {
        bail!("the You page offers no passphrase ({status})");
    }
    let csrf = csrf_in(&page).context("no CSRF token")?;
    let post = |path: &'static str, body: String| {
        let cookie = cookie.clone();
        async move { post_form(port, &cookie, path, &body).await }
    };
    let master = std::fs::read(dir.join("vault").join("master"))?;
    let (status, _, _) = post(
        "/me/passphrase",
        format!("csrf={csrf}&new=seven+herons&again=seven+heron"),
    )
    .await?;
    if status != 422 || std::fs::read(dir.join("vault").join("master"))? != master {
        bail!("two different new passphrases answered {status} or changed the vault");
    }
    let (status, _, _) = post(
        "/me/passphrase",
        format!("csrf={csrf}&new=seven+herons&again=seven+herons"),
    )
    .await?;
    if status != 303 {
        bail!("setting the passphrase answered {status}, not 303");
    }
    // The keys now need it: an offline command without it is refused.
    // (`mutual id --phrase` opens the keys itself; commands the running
    // node answers, such as `mutual rules`, need no passphrase.)
    let out = mutual_tests::daemon::run(&dir, &["id", "--phrase"])?;
    if out.status.success()
        || !String::from_utf8_lossy(&out.stderr).contains("locked with a passphrase")
    {
        bail!("after the app set a passphrase, `mutual id --phrase` opened the keys without it");
    }
    let (status, _, _) = post("/me/forget", format!("csrf={csrf}&confirm=no")).await?;
    if status != 422 || !dir.join("vault").join("master").exists() {
        bail!("forget without the word answered {status} or removed something");
    }
    let (status, _, _) = post("/me/forget", format!("csrf={csrf}&confirm=forget")).await?;
    if status != 200 {
        bail!("forget answered {status}, not 200");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while dir.exists() {
        if Instant::now() > deadline {
            bail!("the data directory is still there a minute after forget");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(daemon);
    Ok(())
}
