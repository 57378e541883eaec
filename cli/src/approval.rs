//! `mutual mod approve` / `mod reject` and the "waiting for approval"
//! section of `mod queue`: posts of new members held on probation until
//! a moderator approves them (see `protocol/src/probation.rs`).

use anyhow::Result;
use node::api::PostView;
use node::control::Request;

use crate::args;
use crate::output::{self, line};
use crate::Ctx;

/// Approves (`reason` is `None`) or rejects a post waiting for approval.
pub(crate) async fn decide(ctx: &Ctx, post: String, reject: Option<Option<String>>) -> Result<()> {
    args::post_id(&post)?;
    let short = output::short_id(&post);
    let (request, done) = match reject {
        None => (Request::ModApprove { post }, format!("Approved {short}")),
        Some(reason) => (
            Request::ModReject { post, reason },
            format!("Rejected {short}"),
        ),
    };
    crate::moderation::act(ctx, request, &done).await
}

/// The posts waiting for approval, for `mod queue` (text only; the JSON
/// form is the control socket's `mod_held`).
pub(crate) async fn held_section(ctx: &Ctx) -> Result<()> {
    let held: Vec<PostView> = ctx.call_as(Request::ModHeld).await?;
    line("")?;
    if held.is_empty() {
        line("Nothing waiting for approval.")?;
        return Ok(());
    }
    line(format!(
        "Waiting for approval ({}; `mutual mod approve POST` or `mutual mod reject POST --reason R`):",
        held.len()
    ))?;
    let now = node::now_ms();
    for p in &held {
        line(format!(
            "{}  in {} by {}, {}",
            output::short_id(&p.id),
            output::clean_line(&p.topic),
            output::who(p.author_name.as_deref(), &p.author),
            output::ago(now, p.created_at),
        ))?;
        if let Some(cw) = &p.content_warning {
            line(format!("    CW: {}", output::clean_line(cw)))?;
        }
        for l in p
            .body
            .as_deref()
            .map(output::clean)
            .unwrap_or_default()
            .lines()
        {
            line(format!("    {l}"))?;
        }
    }
    Ok(())
}
