//! `mutual ui`: a one-time login link to the app the running node serves
//! on 127.0.0.1, opened in the browser when there is one.

use anyhow::Result;
use clap::Args;
use node::control::Request;

use crate::output::line;
use crate::Ctx;

/// Options of `mutual ui`.
#[derive(Args, Debug)]
pub(crate) struct UiArgs {
    /// Only print the link; do not open a browser.
    #[arg(long)]
    no_open: bool,
}

/// `mutual ui`.
pub(crate) async fn ui(ctx: &Ctx, args: UiArgs) -> Result<()> {
    // The node must run: the app is served by it (a clear message if not),
    // or `mutual run` waits for its passphrase and serves the unlock page
    // on the app's port (no control socket yet).
    let running = ctx.call(Request::Id).await;
    let port = web::remembered_port(&ctx.data)?;
    let listening = port.is_some_and(|p| {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], p)),
            std::time::Duration::from_secs(2),
        )
        .is_ok()
    });
    if !listening {
        running?;
        anyhow::bail!(
            "the running node serves no app (was it started with --no-ui?); restart it \
             with `mutual run` without --no-ui"
        );
    }
    let link = web::new_login_link(&ctx.data)?;
    if ctx.json {
        return crate::output::json(&serde_json::json!({ "login": link }));
    }
    line(format!("Open the app: {link}"))?;
    line("The link works once, within 10 minutes; `mutual ui` makes a new one.")?;
    if !args.no_open && open_browser(&link) {
        line("(opened in your browser)")?;
    }
    Ok(())
}

/// Starts the desktop's browser on `link` when there is a desktop;
/// whether it started one.
fn open_browser(link: &str) -> bool {
    let graphical = std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
        || cfg!(target_os = "macos");
    if !graphical {
        return false;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(link)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
