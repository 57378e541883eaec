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
    /// TCP and QUIC, ports chosen by the system).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// Dial this peer at start, besides those remembered from the invite
    /// (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// Do not look for peers on the local network (mDNS).
    #[arg(long)]
    no_mdns: bool,
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
    if data.community()?.is_none() {
        return Err(NodeError::NoCommunity.into());
    }
    let socket = data.socket_path();
    // Before the store is opened: a second node gets the clear message.
    control::claim_socket(&socket).await?;
    init_logging();
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
    config.bootstrap = args.bootstrap;
    config.mdns = !args.no_mdns;
    let RunningNode { handle, mut task } = node::start(config).await?;
    let server = match control::serve(handle.clone(), &socket).await {
        Ok(server) => server,
        Err(e) => {
            let _ = handle.shutdown().await;
            let _ = task.await;
            return Err(e.into());
        }
    };

    let announced = async {
        let id = handle.id().await?;
        if ctx.json {
            output::json(&id)?;
        } else {
            line(format!(
                "mutual node running for {} as {}",
                data.path().display(),
                output::who(id.name.as_deref(), &id.author)
            ))?;
            line(format!("peer id: {}", id.peer_id))?;
            for addr in &id.listen_addrs {
                line(format!("listening on {addr}/p2p/{}", id.peer_id))?;
            }
            line("Stop with Ctrl-C. Use `mutual` commands from another terminal.")?;
        }
        anyhow::Ok(())
    }
    .await;

    let outcome = match announced {
        Err(e) => Err(e),
        Ok(()) => {
            tokio::select! {
                signal = stop_signal() => {
                    match signal {
                        Ok(name) => tracing::info!("{name}: stopping"),
                        Err(e) => tracing::warn!("waiting for signals failed ({e}); stopping"),
                    }
                    Ok(())
                }
                // Stopped by a `shutdown` request (or it failed).
                _ = &mut task => Ok(()),
            }
        }
    };
    if !task.is_finished() {
        let _ = handle.shutdown().await;
        let _ = (&mut task).await;
    }
    server.abort();
    let _ = server.await;
    let _ = std::fs::remove_file(&socket);
    if outcome.is_ok() {
        tracing::info!("stopped; the store is flushed");
    }
    outcome
}
