//! `mutual mod queue`'s report rows and `mutual mod resolve`: what a
//! moderator sees of each open report and how they close one.

use anyhow::Result;
use clap::ValueEnum;
use node::api::ReportView;
use node::control::Request;

use crate::args;
use crate::output::{self, line};
use crate::Ctx;

/// Lines of a reported post's text `mod queue` shows (the rest is cut).
const QUEUE_BODY_LINES: usize = 6;

/// What a moderator did about a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Outcome {
    /// The post was hidden.
    Hidden,
    /// Its author was blocked.
    Blocked,
    /// Nothing needed doing.
    None,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Hidden => "hidden",
            Outcome::Blocked => "blocked",
            Outcome::None => "none",
        }
    }
}

/// Prints the open reports: each with its id, age, reporter and reason,
/// then the reported post's topic, author (pseudonym and fingerprint) and
/// text, and how to act on it.
pub(crate) fn report_rows(reports: &[ReportView]) -> Result<()> {
    if reports.is_empty() {
        line("No open reports.")?;
        return Ok(());
    }
    let now = node::now_ms();
    for r in reports {
        let reason = output::clean_line(&r.reason);
        line(format!(
            "{}  reported {} by {}: \"{reason}\"",
            output::short_id(&r.id),
            output::ago(now, r.at),
            output::actor(&r.reporter),
        ))?;
        match &r.reported {
            Some(p) => {
                line(format!(
                    "    post {} in {} by {}:",
                    output::short_id(&r.post),
                    output::clean_line(&p.topic),
                    output::actor(&p.author)
                ))?;
                for text in p.body.lines().take(QUEUE_BODY_LINES) {
                    line(format!("    | {}", output::clean_line(text)))?;
                }
                if p.body.lines().count() > QUEUE_BODY_LINES {
                    line("    | …")?;
                }
            }
            None => line(format!(
                "    post {} (its text did not travel with the report and is not held on this node: retracted, blocked, or not synced here)",
                output::short_id(&r.post)
            ))?,
        }
    }
    if let Some(first) = reports.first() {
        let id = output::short_id(&first.id);
        line(format!(
            "Act by the report's id: `mutual mod hide {id}` (hides the post) or `mutual mod block {id}` (blocks its author) also resolve it; `mutual mod resolve {id} --outcome none` closes it with no action."
        ))?;
    }
    Ok(())
}

/// `mutual mod resolve REPORT --outcome hidden|blocked|none [--note TEXT]`.
pub(crate) async fn resolve(
    ctx: &Ctx,
    report: String,
    outcome: Outcome,
    note: Option<String>,
) -> Result<()> {
    args::report_id(&report)?;
    let result = ctx
        .call(Request::ModResolve {
            report: report.clone(),
            outcome: outcome.name().into(),
            note,
        })
        .await?;
    if ctx.json {
        return output::json(&result);
    }
    let action = output::answered_id(&result);
    Ok(line(format!(
        "Resolved report {} ({}; action {action}): it leaves every moderator's queue.",
        output::short_id(&report),
        outcome.name()
    ))?)
}
