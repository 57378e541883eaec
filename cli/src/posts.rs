//! Topics and posts: `join`, `leave`, `topics`, `post`, `read`, `retract`,
//! `report`, `mute`, `unmute`.

use std::collections::HashSet;

use anyhow::Result;
use clap::Args;
use node::api::{PostView, TopicView};
use node::control::{self, FollowEvent, Request};
use serde_json::Value;

use crate::args;
use crate::output::{self, line, Style};
use crate::{text, Ctx};

/// Most posts one `read` may ask for (the node's own cap).
const MAX_READ_LIMIT: u64 = 1_000_000;

/// Options of `mutual post`.
#[derive(Args, Debug)]
pub(crate) struct PostArgs {
    /// Topic name.
    topic: String,
    /// The text; `-` reads it from standard input. Without it, the text is
    /// read from standard input, or written in your editor ($EDITOR, then
    /// $VISUAL) when standard input is a terminal. Text given here is
    /// visible to other users of this computer (`ps`) while the command
    /// runs.
    text: Option<String>,
    /// Reply to this post (full or short id).
    #[arg(long, value_name = "POST_ID")]
    reply_to: Option<String>,
    /// A content warning readers see before the text.
    #[arg(long, value_name = "WARNING")]
    cw: Option<String>,
}

/// Options of `mutual read`.
#[derive(Args, Debug)]
pub(crate) struct ReadArgs {
    /// Topic name.
    topic: String,
    /// Show at most this many posts (the newest).
    #[arg(long, default_value_t = 50, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_READ_LIMIT))]
    limit: u64,
    /// Only posts from this long ago until now, such as 2h, 3d or 1w.
    #[arg(long, value_name = "DURATION", value_parser = parse_since)]
    since: Option<std::time::Duration>,
    /// Keep printing new posts as they arrive, until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Show the text of posts behind a content warning.
    #[arg(long)]
    show_warned: bool,
}

fn parse_since(text: &str) -> std::result::Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write a duration such as 30m, 2h or 3d"))
}

/// `mutual join TOPIC`.
pub(crate) async fn join(ctx: &Ctx, topic: String) -> Result<()> {
    args::topic(&topic)?;
    let name = topic.clone();
    ctx.call(Request::Join { topic }).await?;
    done(ctx, &format!("Joined topic {}.", output::clean_line(&name)))
}

/// `mutual leave TOPIC [--forget]`.
pub(crate) async fn leave(ctx: &Ctx, topic: String, forget: bool) -> Result<()> {
    args::topic(&topic)?;
    let name = output::clean_line(&topic);
    if !forget {
        ctx.call(Request::Leave {
            topic,
            forget: false,
        })
        .await?;
        return done(ctx, &format!("Left topic {name}."));
    }
    let gone: node::store::Forgotten = ctx
        .call_as(Request::Leave {
            topic,
            forget: true,
        })
        .await?;
    if ctx.json {
        return output::json(&gone);
    }
    let hidden = match gone.tombstones {
        0 => String::new(),
        n => format!(" and what remained of {n} hidden post(s)"),
    };
    Ok(line(format!(
        "Left topic {name} and deleted its {} post(s){hidden} from this node's store.",
        gone.posts
    ))?)
}

/// Prints a confirmation (or `{"ok":true}` with `--json`).
fn done(ctx: &Ctx, text: &str) -> Result<()> {
    if ctx.json {
        return output::json(&serde_json::json!({ "ok": true }));
    }
    Ok(line(text)?)
}

/// `mutual topics`.
pub(crate) async fn topics(ctx: &Ctx) -> Result<()> {
    let topics: Vec<TopicView> = ctx.call_as(Request::Topics).await?;
    if ctx.json {
        return output::json(&topics);
    }
    if topics.is_empty() {
        line("No topics joined yet: `mutual join TOPIC`.")?;
    }
    for t in &topics {
        line(format!("{:<24} {} posts", t.name, t.posts))?;
    }
    Ok(())
}

/// `mutual post TOPIC [TEXT|-]`.
pub(crate) async fn post(ctx: &Ctx, args: PostArgs) -> Result<()> {
    args::topic(&args.topic)?;
    if let Some(parent) = &args.reply_to {
        args::post_id(parent)?;
    }
    let source = text::source_of(args.text.as_deref());
    if source == text::Source::Editor {
        // Before anything is typed: a node that is not running is said now,
        // not after the person wrote their post.
        ctx.call(Request::Id).await?;
    } else {
        ctx.check_dir()?;
    }
    let body = text::obtain(ctx, &source, text::Kind::Post)?;
    let result = ctx
        .call(Request::Post {
            topic: args.topic,
            body,
            reply_to: args.reply_to,
            cw: args.cw,
        })
        .await?;
    text::warn_inline(&source, text::Kind::Post);
    crate::connect::warn_if_alone(ctx, crate::connect::Doing::Posting).await?;
    if ctx.json {
        return output::json(&result);
    }
    let id = result.get("id").and_then(Value::as_str).ok_or_else(|| {
        anyhow::anyhow!(
            "the node's answer held no post id; are `mutual` and the node the same version?"
        )
    })?;
    Ok(line(id)?)
}

/// `mutual read TOPIC`.
pub(crate) async fn read(ctx: &Ctx, args: ReadArgs) -> Result<()> {
    args::topic(&args.topic)?;
    ctx.check_dir()?;
    let now = node::now_ms();
    let since_ms = args
        .since
        .map(|d| now.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
    let socket = ctx.data.socket_path();
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let read_request = Request::Read {
        topic: args.topic.clone(),
        limit: Some(limit),
        since_ms,
        stream: true,
    };
    let wait = ctx.wait_for(&read_request);
    // Follow first, so nothing stored between the read and the follow is
    // lost; posts the read already shows are skipped.
    let mut stream = if args.follow {
        Some(control::follow(&socket, &args.topic, wait).await?)
    } else {
        None
    };
    // Page by page: the node never holds the whole answer. JSON lines go
    // out as they come; text is threaded, so it needs every post first.
    let mut pages = control::read_pages(&socket, &args.topic, Some(limit), since_ms, wait).await?;
    let mut posts: Vec<PostView> = Vec::new();
    let mut shown: HashSet<String> = HashSet::new();
    while let Some(page) = pages.next_page().await? {
        if ctx.json {
            for p in &page {
                output::json(p)?;
            }
            shown.extend(page.into_iter().map(|p| p.id));
        } else {
            posts.extend(page);
        }
    }
    crate::connect::warn_if_alone(ctx, crate::connect::Doing::Reading).await?;
    let style = Style {
        now_ms: now,
        show_warned: args.show_warned,
    };
    if !ctx.json {
        if posts.is_empty() && stream.is_none() {
            line(format!(
                "No posts in {} yet.",
                output::clean_line(&args.topic)
            ))?;
        } else if !posts.is_empty() {
            line(output::thread_text(&posts, style))?;
        }
        shown.extend(posts.into_iter().map(|p| p.id));
    }
    let Some(stream) = stream.as_mut() else {
        return Ok(());
    };
    loop {
        let next = tokio::select! {
            next = stream.next() => next?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(event) = next else {
            anyhow::bail!("the node stopped, so following ended");
        };
        let style = Style {
            now_ms: node::now_ms(),
            ..style
        };
        show_event(ctx, event, &mut shown, style)?;
    }
}

/// Prints one change of a followed topic. Posts print as `read` prints
/// them (with `--json`, the bare post as before); a removal prints only
/// for a post on this screen; with `--json`, every other change is its
/// typed event object.
fn show_event(
    ctx: &Ctx,
    event: FollowEvent,
    shown: &mut HashSet<String>,
    style: Style,
) -> Result<()> {
    match event {
        FollowEvent::Post { post } => {
            if !shown.insert(post.id.clone()) {
                return Ok(());
            }
            if ctx.json {
                return output::json(&post);
            }
            Ok(line(output::post_lines(&post, 0, style, true))?)
        }
        FollowEvent::Removed { ref id, reason, .. } => {
            if ctx.json {
                return output::json(&event);
            }
            if !shown.remove(id) {
                return Ok(());
            }
            Ok(line(output::removal_line(id, reason))?)
        }
        FollowEvent::Restored { ref post } => {
            shown.insert(post.id.clone());
            if ctx.json {
                return output::json(&event);
            }
            line("[shown again by a moderator]")?;
            Ok(line(output::post_lines(post, 0, style, true))?)
        }
        FollowEvent::Pin { ref id, pinned, .. } => {
            if ctx.json {
                return output::json(&event);
            }
            Ok(line(output::pin_line(id, pinned))?)
        }
        FollowEvent::Lagged { missed } => {
            if ctx.json {
                return output::json(&event);
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "warning: this screen fell behind and missed {missed} changes; `mutual read` \
                 shows the topic as it is"
            );
            Ok(())
        }
    }
}

/// `mutual retract POST_ID`.
pub(crate) async fn retract(ctx: &Ctx, post: String) -> Result<()> {
    args::post_id(&post)?;
    let shown = output::short_id(&post);
    ctx.call(Request::Retract { post }).await?;
    done(
        ctx,
        &format!("Retracted {shown}; every node that has it will delete it."),
    )
}

/// `mutual report POST_ID [--reason TEXT|-]`.
pub(crate) async fn report(ctx: &Ctx, post: String, reason: Option<String>) -> Result<()> {
    args::post_id(&post)?;
    let shown = output::short_id(&post);
    let source = text::source_of(reason.as_deref());
    if source == text::Source::Editor {
        ctx.call(Request::Id).await?;
    } else {
        ctx.check_dir()?;
    }
    let reason = text::obtain(ctx, &source, text::Kind::Reason)?;
    let result = ctx.call(Request::Report { post, reason }).await?;
    text::warn_inline(&source, text::Kind::Reason);
    if ctx.json {
        return output::json(&result);
    }
    Ok(line(format!(
        "Reported {shown} to the moderators; only they can read your report."
    ))?)
}

/// `mutual mute AUTHOR` / `mutual unmute AUTHOR`.
pub(crate) async fn mute(ctx: &Ctx, author: String, muted: bool) -> Result<()> {
    args::key(&author)?;
    let shown = output::fingerprint(&author);
    let request = if muted {
        Request::Mute { author }
    } else {
        Request::Unmute { author }
    };
    ctx.call(request).await?;
    let text = if muted {
        format!("Muted {shown} on this node; their posts no longer show.")
    } else {
        format!("Unmuted {shown}.")
    };
    done(ctx, &text)
}
