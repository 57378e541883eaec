//! `mutual run`: the node in the foreground, with its control socket, until
//! Ctrl-C, SIGTERM or a `shutdown` request.

use anyhow::Result;
use clap::Args;
use node::{control, NodeConfig, NodeError, RunningNode};
use tracing_subscriber::EnvFilter;

use crate::output::{self, line};
use crate::Ctx;

/// Options of `mutual run`.
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Listen on this multiaddress (repeatable; default: every interface,
    /// TCP and QUIC, on the port this data directory remembers).
    #[arg(long, value_name = "MULTIADDR", conflicts_with = "hide_address")]
    listen: Vec<String>,
    /// Listen on this port (TCP and QUIC) from now on; the data directory
    /// remembers it. Default: the remembered port, or a free one chosen at
    /// the first start.
    #[arg(long, value_name = "PORT", conflicts_with_all = ["listen", "hide_address"])]
    port: Option<u16>,
    /// Dial this peer at start, besides those remembered (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// Find peers on the local network with mDNS. Off by default: it
    /// announces to everyone on the network (an office's, a café's) that
    /// this machine runs mutual.
    #[arg(long, conflicts_with = "hide_address")]
    lan: bool,
    /// Accepted for compatibility: mDNS is off unless `--lan` is given.
    #[arg(long, hide = true)]
    no_mdns: bool,
    /// Do not ask the home router for a port mapping (UPnP).
    #[arg(long)]
    no_upnp: bool,
    /// Do not relay for other members, even when this node is publicly
    /// reachable.
    #[arg(long)]
    no_relay_service: bool,
    /// Hide this machine's IP address from other members: listen nowhere,
    /// never connect directly to another member, and reach the network
    /// only through relays (`--via`, or the community's from the invite).
    /// The relay sees your address; nobody else does.
    #[arg(long)]
    hide_address: bool,
    /// A relay to use with `--hide-address` (repeatable): a member's node
    /// address ending in `/p2p/<peer id>`.
    #[arg(long, value_name = "MULTIADDR", requires = "hide_address")]
    via: Vec<String>,
    /// Serve the app on this port of 127.0.0.1 from now on (the data
    /// directory remembers it). Default: the remembered port, or a free
    /// one chosen at the first start.
    #[arg(long, value_name = "PORT", conflicts_with = "no_ui")]
    ui_port: Option<u16>,
    /// Do not serve the app (the local web app on 127.0.0.1).
    #[arg(long)]
    no_ui: bool,
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise. The node
/// never logs post bodies, report reasons or keys. Colours only on a
/// terminal, so a log file or journal gets plain text.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn stop_signal() -> Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; Ok("Ctrl-C") }
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}

/// `mutual run`.
pub(crate) async fn run(ctx: &Ctx, args: RunArgs) -> Result<()> {
    ctx.check_dir()?;
    let data = &ctx.data;
    if !data.has_identity() {
        return Err(NodeError::NoIdentity(data.path().display().to_string()).into());
    }
    // A locked vault with no --passphrase-file and no terminal is a clear
    // error here; the node API to wait for an unlock from elsewhere is
    // `DataDir::wait_unlocked` (for an app page that takes the passphrase).
    ctx.unlock()?;
    // Before anything starts: a damaged key file is the one thing said.
    data.identity()?;
    if data.community()?.is_none() {
        return Err(NodeError::NoCommunity.into());
    }
    let socket = data.socket_path();
    // Before the store is opened: a second node gets the clear message.
    control::claim_socket(&socket).await?;
    init_logging();
    // Before the store is opened: whatever a loose umask or a hand made
    // readable by others becomes this user's alone again, said out loud.
    for (path, mode) in data.make_private()? {
        tracing::warn!(
            "{} was open to other users (mode {mode:o}); made it private to you",
            path.display()
        );
    }
    if let Some(path) = data.ensure_transport_key()? {
        tracing::warn!(
            "the transport key was missing, so a new one is in {}: your identity (author key) \
             is unchanged, peers see this node under a new peer id",
            path.display()
        );
    }
    // Before any connection: the node's limits fit in 1,024 descriptors,
    // and a higher soft limit is headroom.
    match node::limits::raise_fd_limit() {
        Ok(outcome) => tracing::info!("{outcome}"),
        Err(e) => tracing::warn!("could not read or raise the open-file limit: {e}"),
    }

    let mut config = NodeConfig::new(data.clone());
    if !args.listen.is_empty() {
        config.listen = args.listen;
    }
    config.port = args.port;
    config.bootstrap = args.bootstrap;
    config.mdns = args.lan;
    config.upnp = !args.no_upnp;
    config.relay_service = !args.no_relay_service;
    config.hide_address = args.hide_address;
    config.via = args.via;
    let mut first = true;
    loop {
        let RunningNode { handle, mut task } = node::start(config.clone()).await?;
        let server = match control::serve(handle.clone(), &socket).await {
            Ok(server) => server,
            Err(e) => {
                let _ = handle.shutdown().await;
                let _ = task.await;
                return Err(e.into());
            }
        };
        let app = if args.no_ui {
            None
        } else {
            match web::serve(handle.clone(), data.clone(), args.ui_port).await {
                Ok(app) => Some(app),
                Err(e) => {
                    let _ = handle.shutdown().await;
                    let _ = task.await;
                    server.abort();
                    let _ = std::fs::remove_file(&socket);
                    return Err(anyhow::anyhow!("could not serve the app: {e}"));
                }
            }
        };
        if first {
            first = false;
            if let Err(e) = announce(ctx, &handle, app.as_ref()).await {
                let _ = handle.shutdown().await;
                let _ = task.await;
                server.abort();
                let _ = std::fs::remove_file(&socket);
                return Err(e);
            }
        }
        let outcome = tokio::select! {
            signal = stop_signal() => {
                match signal {
                    Ok(name) => tracing::info!("{name}: stopping"),
                    Err(e) => tracing::warn!("waiting for signals failed ({e}); stopping"),
                }
                Stopped::Asked
            }
            // Stopped by a `shutdown` request, or a part of the node
            // failed: then `run` exits non-zero, so a supervisor restarts
            // it; a store that could not write is opened again here once
            // the disk takes writes (sled refuses every write after such a
            // failure until it is opened again).
            stopped = &mut task => match stopped {
                Ok(Ok(())) => Stopped::Asked,
                Ok(Err(NodeError::Store(e))) => Stopped::Store(e.to_string()),
                Ok(Err(e)) => Stopped::Failed(anyhow::anyhow!("the node stopped: {e}")),
                Err(e) => Stopped::Failed(anyhow::anyhow!("the node's event loop crashed: {e}")),
            },
        };
        if !task.is_finished() {
            let _ = handle.shutdown().await;
            let _ = (&mut task).await;
        }
        server.abort();
        let _ = server.await;
        drop(app);
        let _ = std::fs::remove_file(&socket);
        match outcome {
            Stopped::Asked => {
                tracing::info!("stopped; the store is flushed");
                return Ok(());
            }
            Stopped::Failed(e) => return Err(e),
            Stopped::Store(why) => {
                tracing::error!(
                    "{why}; the node stopped and starts again as soon as the disk takes writes \
                     (free some space)"
                );
                tokio::select! {
                    _ = wait_for_disk(data.path()) => {}
                    _ = stop_signal() => return Ok(()),
                }
                tracing::info!("the disk takes writes again: starting the node again");
                control::claim_socket(&socket).await?;
            }
        }
    }
}

/// How a run of the node ended.
enum Stopped {
    /// By a signal or a `shutdown` request.
    Asked,
    /// The store could not write (a full disk): start again once it can.
    Store(String),
    /// Anything else: `mutual run` fails.
    Failed(anyhow::Error),
}

/// Prints who runs and where (once, at the first start).
async fn announce(
    ctx: &Ctx,
    handle: &node::NodeHandle,
    app: Option<&web::WebServer>,
) -> Result<()> {
    let id = handle.id().await?;
    if ctx.json {
        output::json(&id)?;
    } else {
        line(format!(
            "mutual node running for {} as {}",
            ctx.data.path().display(),
            output::who(id.name.as_deref(), &id.author)
        ))?;
        line(format!("peer id: {}", id.peer_id))?;
        for addr in &id.listen_addrs {
            line(format!("listening on {addr}/p2p/{}", id.peer_id))?;
        }
        if let Some(app) = app {
            line(format!(
                "the app is served at {} (`mutual ui` prints a login link and opens it)",
                app.base_url()
            ))?;
        }
        line("Stop with Ctrl-C. Use `mutual` commands from another terminal.")?;
    }
    Ok(())
}

/// Returns once a 1 MiB file can be written and synced in `dir` (checked
/// every 2 s): the store has room to work again.
async fn wait_for_disk(dir: &std::path::Path) {
    let probe = dir.join(".disk-probe");
    loop {
        let path = probe.clone();
        let ok = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let result = std::fs::File::create(&path).and_then(|mut f| {
                f.write_all(&vec![0u8; 1 << 20])?;
                f.sync_all()
            });
            let _ = std::fs::remove_file(&path);
            result.is_ok()
        })
        .await
        .unwrap_or(false);
        if ok {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}
