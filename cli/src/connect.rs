//! Never silently alone: `mutual connect ADDR`, and the warnings `post`,
//! `read` and `sync` give when the node has no peer in the community.

use anyhow::Result;
use node::api::{ConnectView, StatusView};
use node::control::Request;

use crate::output::{self, line};
use crate::Ctx;

/// What the user can do about being alone, ending every such message.
const WHAT_TO_DO: &str = "check `mutual status`, or `mutual connect ADDR`";

/// What the user was doing when the node turned out to be alone.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Doing {
    /// Posting: the post is kept and goes out later.
    Posting,
    /// Reading: only what the node already holds shows.
    Reading,
}

/// `mutual connect ADDR`.
pub(crate) async fn connect(ctx: &Ctx, addr: String) -> Result<()> {
    let view: ConnectView = ctx.call_as(Request::Connect { addr }).await?;
    if ctx.json {
        return output::json(&view);
    }
    if view.already_connected {
        line(format!("Already connected to {}.", view.peer_id))?;
    } else {
        line(format!(
            "Connected to {} at {}.",
            view.peer_id,
            output::clean_line(&view.address)
        ))?;
    }
    Ok(())
}

/// Connected peers in the community, as the node counts them.
async fn community_peers(ctx: &Ctx) -> Result<usize> {
    let status: StatusView = ctx.call_as(Request::Status).await?;
    Ok(status.community_peers)
}

/// The warning for a node with no peer in the community, or `None`.
pub(crate) fn alone_warning(community_peers: usize, doing: Doing) -> Option<String> {
    if community_peers > 0 {
        return None;
    }
    let consequence = match doing {
        Doing::Posting => "your post is stored and will be sent when a peer connects",
        Doing::Reading => "you see only the posts it already holds",
    };
    Some(format!(
        "warning: this node is not connected to anyone in the community: {consequence}; {WHAT_TO_DO}"
    ))
}

/// Prints the warning on stderr when the node has no peer in the
/// community (stdout, `--json` or not, stays as it was).
pub(crate) async fn warn_if_alone(ctx: &Ctx, doing: Doing) -> Result<()> {
    if let Some(text) = alone_warning(community_peers(ctx).await?, doing) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{text}");
    }
    Ok(())
}

/// Fails `sync` with what to do when there is no one to sync with, rather
/// than reporting a sync that cannot happen.
pub(crate) async fn require_community_peer(ctx: &Ctx) -> Result<usize> {
    let n = community_peers(ctx).await?;
    if n == 0 {
        anyhow::bail!(
            "this node is not connected to anyone in the community, so there is no one to sync with; {WHAT_TO_DO}"
        );
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_names_the_consequence_and_the_way_out() {
        assert_eq!(alone_warning(1, Doing::Posting), None);
        let post = alone_warning(0, Doing::Posting).unwrap();
        assert_eq!(
            post,
            "warning: this node is not connected to anyone in the community: your post is \
             stored and will be sent when a peer connects; check `mutual status`, or \
             `mutual connect ADDR`"
        );
        let read = alone_warning(0, Doing::Reading).unwrap();
        assert!(read.contains("only the posts it already holds"), "{read}");
    }
}
