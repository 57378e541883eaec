//! `mutual mod …`: moderation. The node refuses an action this identity may
//! not take before anything is signed or published; its message is shown.

use anyhow::Result;
use clap::Subcommand;
use node::api::{ModListView, ReportView};
use node::control::Request;

use crate::args;
use crate::output::{self, line};
use crate::Ctx;

/// The moderation commands.
#[derive(Subcommand, Debug)]
pub(crate) enum ModCommand {
    /// Admin or co-admin: make someone a moderator.
    Appoint {
        /// Their key (`mu1…`, from `mutual id`).
        key: String,
    },
    /// Admin or co-admin: end someone's moderator role.
    Revoke {
        /// Their key: full (`mu1…`) or the 8-character fingerprint printed
        /// next to their pseudonym.
        key: String,
    },
    /// Admin: name or remove co-admins, who may also appoint and revoke
    /// moderators and whom nobody can block.
    #[command(name = "co-admin", subcommand)]
    CoAdmin(CoAdminCommand),
    /// Block an author: their posts are deleted and refused everywhere.
    Block {
        /// The author's key: full (`mu1…`) or the 8-character fingerprint
        /// printed next to their pseudonym; or a report's id as `mod queue`
        /// prints it (blocks the reported post's author and resolves the
        /// report).
        author: String,
        /// Only in this topic (default: the whole community).
        #[arg(long, value_name = "TOPIC")]
        topic: Option<String>,
        /// Why (shown to everyone in the moderation log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a block.
    Unblock {
        /// The author's key: full (`mu1…`) or the 8-character fingerprint
        /// printed next to their pseudonym.
        author: String,
        /// The topic of a topic block (default: the community block).
        #[arg(long, value_name = "TOPIC")]
        topic: Option<String>,
    },
    /// Hide a post: its text is deleted everywhere, a notice stays.
    Hide {
        /// The post's id (full, or the short form `read` prints), or the id
        /// of a report as `mod queue` prints it (hides its post and
        /// resolves the report).
        post: String,
        /// Why (shown in its place).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a hide.
    Unhide {
        /// The post's id (full, or the short form `read` prints), or the id
        /// of a report as `mod queue` prints it (which names its post).
        post: String,
    },
    /// Pin a post to the top of its topic.
    Pin {
        /// The post's id (full, or the short form `read` prints), or the id
        /// of a report as `mod queue` prints it (which names its post).
        post: String,
    },
    /// Unpin a post.
    Unpin {
        /// The post's id (full, or the short form `read` prints), or the id
        /// of a report as `mod queue` prints it (which names its post).
        post: String,
    },
    /// No new admissions until lifted (the whole community), and with
    /// --hold-recent-days the posts of recently admitted members wait for
    /// approval (the community or one topic). Shown to everyone.
    Lockdown {
        /// Only this topic (holding only).
        #[arg(long, value_name = "TOPIC")]
        topic: Option<String>,
        /// Hold the posts of members admitted this many days before them.
        #[arg(long, value_name = "N")]
        hold_recent_days: Option<u32>,
        /// Why (shown to everyone).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a lockdown.
    Lift {
        /// The topic of a topic lockdown (default: the community's).
        #[arg(long, value_name = "TOPIC")]
        topic: Option<String>,
    },
    /// Show a post waiting for approval to every member (a new member's
    /// first posts wait: see `mod queue`).
    Approve {
        /// The post's id, short or full (as `mod queue` prints it).
        post: String,
    },
    /// Refuse a post waiting for approval: it is deleted everywhere, and
    /// only its author sees the reason.
    Reject {
        /// The post's id, short or full.
        post: String,
        /// Why (shown to its author).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show moderators, blocks, hidden and pinned posts and the public log.
    List,
    /// Show the open reports this node can read (admin and moderators),
    /// each with the reported post's text, topic and author, and the posts
    /// waiting for approval.
    Queue,
    /// Resolve a report: it leaves every moderator's queue. The outcome
    /// is in the public log (with the report's id only); the note is
    /// sealed to the moderators.
    Resolve {
        /// The report's id as `mod queue` prints it (short or full).
        report: String,
        /// What was done about it.
        #[arg(long, value_enum)]
        outcome: crate::reports::Outcome,
        /// A note for the other moderators (only they can read it).
        #[arg(long)]
        note: Option<String>,
    },
}

/// `mutual mod co-admin …`.
#[derive(Subcommand, Debug)]
pub(crate) enum CoAdminCommand {
    /// Name a co-admin (a moderator who may also appoint and revoke
    /// moderators).
    Add {
        /// Their key (`mu1…`, from `mutual id`).
        key: String,
    },
    /// Remove a co-admin: they stay a moderator (`mutual mod revoke KEY`
    /// ends that too).
    Remove {
        /// Their key.
        key: String,
    },
}

/// Runs a `mod` command.
pub(crate) async fn run(ctx: &Ctx, command: ModCommand) -> Result<()> {
    check(&command)?;
    let (request, done) = match command {
        ModCommand::List => return list(ctx).await,
        ModCommand::Lockdown {
            topic,
            hold_recent_days,
            reason,
        } => {
            return crate::invitations::lockdown(ctx, topic, false, hold_recent_days, reason).await
        }
        ModCommand::Lift { topic } => {
            return crate::invitations::lockdown(ctx, topic, true, None, None).await
        }
        ModCommand::Queue => return queue(ctx).await,
        ModCommand::Approve { post } => return crate::approval::decide(ctx, post, None).await,
        ModCommand::Reject { post, reason } => {
            return crate::approval::decide(ctx, post, Some(reason)).await
        }
        ModCommand::Resolve {
            report,
            outcome,
            note,
        } => return crate::reports::resolve(ctx, report, outcome, note).await,
        ModCommand::Appoint { key } => (
            Request::ModAppoint { key: key.clone() },
            format!("Appointed {} as a moderator", output::fingerprint(&key)),
        ),
        ModCommand::Revoke { key } => (
            Request::ModRevoke { key: key.clone() },
            format!("Revoked {} as a moderator", output::fingerprint(&key)),
        ),
        ModCommand::CoAdmin(CoAdminCommand::Add { key }) => (
            Request::ModCoAdmin {
                key: key.clone(),
                add: true,
            },
            format!("Named {} co-admin", output::fingerprint(&key)),
        ),
        ModCommand::CoAdmin(CoAdminCommand::Remove { key }) => (
            Request::ModCoAdmin {
                key: key.clone(),
                add: false,
            },
            format!(
                "Removed {} as co-admin (still a moderator)",
                output::fingerprint(&key)
            ),
        ),
        ModCommand::Block {
            author,
            topic,
            reason,
        } => {
            let text = format!(
                "Blocked {} {}",
                output::fingerprint(&author),
                scope(topic.as_deref())
            );
            (
                Request::ModBlock {
                    author,
                    topic,
                    reason,
                },
                text,
            )
        }
        ModCommand::Unblock { author, topic } => {
            let text = format!(
                "Unblocked {} {}",
                output::fingerprint(&author),
                scope(topic.as_deref())
            );
            (Request::ModUnblock { author, topic }, text)
        }
        ModCommand::Hide { post, reason } => (
            Request::ModHide {
                post: post.clone(),
                reason,
            },
            format!("Hid {}", output::short_id(&post)),
        ),
        ModCommand::Unhide { post } => (
            Request::ModUnhide { post: post.clone() },
            format!("Unhid {}", output::short_id(&post)),
        ),
        ModCommand::Pin { post } => (
            Request::ModPin { post: post.clone() },
            format!("Pinned {}", output::short_id(&post)),
        ),
        ModCommand::Unpin { post } => (
            Request::ModUnpin { post: post.clone() },
            format!("Unpinned {}", output::short_id(&post)),
        ),
    };
    act(ctx, request, &done).await
}

/// Sends a moderation request and says what was done, with the action's
/// short id.
pub(crate) async fn act(ctx: &Ctx, request: Request, done: &str) -> Result<()> {
    let result = ctx.call(request).await?;
    if ctx.json {
        return output::json(&result);
    }
    let action = output::answered_id(&result);
    Ok(line(format!(
        "{done} (action {action}); every node will enforce it."
    ))?)
}

/// Checks keys, topics and post ids before the node is asked.
fn check(command: &ModCommand) -> Result<()> {
    match command {
        ModCommand::Appoint { key }
        | ModCommand::Revoke { key }
        | ModCommand::CoAdmin(CoAdminCommand::Add { key } | CoAdminCommand::Remove { key }) => {
            args::key(key)
        }
        ModCommand::Block { author, topic, .. } | ModCommand::Unblock { author, topic } => {
            args::key(author)?;
            topic.as_deref().map(args::topic).transpose()?;
            Ok(())
        }
        ModCommand::Hide { post, .. }
        | ModCommand::Unhide { post }
        | ModCommand::Pin { post }
        | ModCommand::Unpin { post }
        | ModCommand::Approve { post }
        | ModCommand::Reject { post, .. } => args::post_id(post),
        ModCommand::List
        | ModCommand::Queue
        | ModCommand::Lockdown { .. }
        | ModCommand::Lift { .. }
        | ModCommand::Resolve { .. } => Ok(()),
    }
}

fn scope(topic: Option<&str>) -> String {
    match topic {
        Some(t) => format!("in topic {}", output::clean_line(t)),
        None => "in the whole community".into(),
    }
}

fn reason_text(reason: Option<&str>) -> String {
    match reason.map(output::clean_line) {
        Some(r) if !r.trim().is_empty() => format!(": \"{r}\""),
        _ => String::new(),
    }
}

async fn list(ctx: &Ctx) -> Result<()> {
    let l: ModListView = ctx.call_as(Request::ModList).await?;
    if ctx.json {
        return output::json(&l);
    }
    let now = node::now_ms();
    line(format!("admin       {}", output::actor(&l.admin)))?;
    // A co-admin is marked among the moderators.
    let mods: Vec<String> = l
        .moderators
        .iter()
        .map(|m| {
            let shown = output::actor(m);
            if l.co_admins.contains(&m.key) {
                format!("{shown} (co-admin)")
            } else {
                shown
            }
        })
        .collect();
    line(format!(
        "moderators  {}",
        if mods.is_empty() {
            "none".into()
        } else {
            mods.join(", ")
        }
    ))?;
    if !l.blocks.is_empty() {
        line("blocks")?;
        for b in &l.blocks {
            let scope = if b.scope == "community" {
                "the whole community".to_string()
            } else {
                format!("topic {}", output::clean_line(&b.scope))
            };
            line(format!(
                "  {} in {scope}, by {}, {}{}",
                output::fingerprint(&b.author),
                output::actor(&b.by),
                output::ago(now, b.at),
                reason_text(Some(b.reason.as_str()))
            ))?;
        }
    }
    if !l.hidden.is_empty() {
        line("hidden")?;
        for h in &l.hidden {
            line(format!(
                "  {} by {}, {}{}",
                output::short_id(&h.post),
                output::actor(&h.by),
                output::ago(now, h.at),
                reason_text(Some(h.reason.as_str()))
            ))?;
        }
    }
    if !l.pinned.is_empty() {
        let pinned: Vec<String> = l.pinned.iter().map(|p| output::short_id(p)).collect();
        line(format!("pinned      {}", pinned.join(", ")))?;
    }
    crate::invitations::print_lockdowns(&l.lockdowns, now)?;
    line("log")?;
    if l.log.is_empty() {
        line("  (empty)")?;
    }
    for e in &l.log {
        line(format!(
            "  {}  {}: {}{}",
            output::ago(now, e.at),
            output::actor(&e.by),
            output::clean_line(&e.action),
            reason_text(e.reason.as_deref())
        ))?;
    }
    Ok(())
}

async fn queue(ctx: &Ctx) -> Result<()> {
    let reports: Vec<ReportView> = ctx.call_as(Request::ModQueue).await?;
    if ctx.json {
        return output::json(&reports);
    }
    crate::reports::report_rows(&reports)?;
    // The posts waiting for approval come after the reports.
    crate::approval::held_section(ctx).await
}
