//! What the node tells about itself: `invite`, `id`, `peers`, `status`.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Result;
use node::api::{IdView, PeerView, StatusView};
use node::control::Request;

use crate::output::{self, line};
use crate::Ctx;

/// How long `status` follows a running sync with its progress bar.
const PROGRESS_MAX_WAIT: Duration = Duration::from_secs(120);
/// How often the progress bar asks the node.
const PROGRESS_POLL: Duration = Duration::from_millis(200);

/// `mutual id`.
pub(crate) async fn id(ctx: &Ctx) -> Result<()> {
    let id: IdView = ctx.call_as(Request::Id).await?;
    if ctx.json {
        return output::json(&id);
    }
    line(format!("author   {}", id.author))?;
    line(format!(
        "name     {}",
        id.name
            .as_deref()
            .map(output::clean_line)
            .unwrap_or_else(|| "(none)".into())
    ))?;
    line(format!("peer id  {}", id.peer_id))?;
    for addr in &id.listen_addrs {
        line(format!("address  {addr}/p2p/{}", id.peer_id))?;
    }
    Ok(())
}

/// `mutual peers`.
pub(crate) async fn peers(ctx: &Ctx) -> Result<()> {
    let peers: Vec<PeerView> = ctx.call_as(Request::Peers).await?;
    if ctx.json {
        return output::json(&peers);
    }
    if peers.is_empty() {
        line("No peers connected.")?;
    }
    for p in &peers {
        let how = if p.relayed { "relayed" } else { "direct" };
        line(format!("{}  {how}  {}", p.peer_id, p.addrs.join(", ")))?;
    }
    Ok(())
}

fn print_status(s: &StatusView) -> Result<()> {
    line(format!(
        "community  {} ({})",
        output::clean_line(&s.community),
        s.community_id
    ))?;
    line(format!(
        "peers      {} connected ({} in the community), {} remembered",
        s.peers, s.community_peers, s.remembered_peers
    ))?;
    line(format!("reachable  {}", s.reachability))?;
    for problem in &s.problems {
        line(format!("problem    {problem}"))?;
    }
    if let Some(damage) = &s.damage {
        line(format!("DAMAGE     {damage}"))?;
    }
    if s.topics.is_empty() {
        line("topics     none joined (`mutual join TOPIC`)")?;
    } else {
        let topics: Vec<String> = s
            .topics
            .iter()
            .map(|t| format!("{} ({} posts)", t.name, t.posts))
            .collect();
        line(format!("topics     {}", topics.join(", ")))?;
    }
    line(format!("posts      {}", s.posts))?;
    line(format!("store      {}", output::bytes(s.store_bytes)))?;
    let sync = &s.sync;
    if sync.active_sessions == 0 {
        line(format!(
            "sync       idle; {} items received in {} sessions since start",
            sync.received, sync.completed_sessions
        ))?;
    } else {
        line(format!(
            "sync       {} sessions running, {} items still missing; {} received since start",
            sync.active_sessions, sync.missing, sync.received
        ))?;
    }
    Ok(())
}

/// Shows a progress bar on stderr while the node syncs.
async fn follow_sync(ctx: &Ctx, first: &StatusView) -> Result<()> {
    let start_received = first.sync.received;
    let bar = indicatif::ProgressBar::new(first.sync.missing.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("syncing {bar:40} {pos}/{len} items")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let end = tokio::time::Instant::now() + PROGRESS_MAX_WAIT;
    loop {
        let s: StatusView = ctx.call_as(Request::Status).await?;
        let got = s.sync.received.saturating_sub(start_received);
        bar.set_length(got + s.sync.missing.max(1));
        bar.set_position(got);
        if s.sync.active_sessions == 0 {
            bar.set_length(got.max(1));
            bar.set_position(got.max(1));
            bar.finish_with_message("done");
            return Ok(());
        }
        if tokio::time::Instant::now() > end {
            bar.abandon();
            return Ok(());
        }
        tokio::time::sleep(PROGRESS_POLL).await;
    }
}

/// `mutual status`.
pub(crate) async fn status(ctx: &Ctx) -> Result<()> {
    let s: StatusView = ctx.call_as(Request::Status).await?;
    if ctx.json {
        return output::json(&s);
    }
    print_status(&s)?;
    if s.sync.active_sessions > 0 && std::io::stderr().is_terminal() {
        follow_sync(ctx, &s).await?;
    }
    Ok(())
}

/// `mutual sync`.
pub(crate) async fn sync(ctx: &Ctx) -> Result<()> {
    crate::connect::require_community_peer(ctx).await?;
    ctx.call(Request::Sync).await?;
    if ctx.json {
        return output::json(&serde_json::json!({ "ok": true }));
    }
    Ok(line(
        "Sync started with every connected peer; `mutual status` shows its progress.",
    )?)
}
