//! Topics and posts: `join`, `leave`, `topics`, `post`, `read`, `retract`,
//! `report`, `mute`, `unmute`.

use std::collections::HashSet;
use std::io::{IsTerminal, Read};

use anyhow::{Context, Result};
use clap::Args;
use node::api::{PostView, TopicView};
use node::control::{self, Request};
use serde_json::Value;

use crate::args;
use crate::output::{self, line, Style};
use crate::Ctx;

/// Most posts one `read` may ask for (the node's own cap).
const MAX_READ_LIMIT: u64 = 1_000_000;

/// Options of `mutual post`.
#[derive(Args, Debug)]
pub(crate) struct PostArgs {
    /// Topic name.
    topic: String,
    /// The text; `-` or nothing reads it from standard input.
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

/// `mutual leave TOPIC`.
pub(crate) async fn leave(ctx: &Ctx, topic: String) -> Result<()> {
    args::topic(&topic)?;
    let name = topic.clone();
    ctx.call(Request::Leave { topic }).await?;
    done(ctx, &format!("Left topic {}.", output::clean_line(&name)))
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

/// Reads the post text from standard input, bounded.
fn read_stdin() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln_safe("Type your post, then press Ctrl-D on a new line.");
    }
    let limit = control::MAX_REQUEST_BYTES as u64;
    let mut bytes = Vec::new();
    stdin
        .lock()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .context("cannot read the post from standard input")?;
    if bytes.len() as u64 > limit {
        anyhow::bail!(
            "the text on standard input is over {} KiB; a post is at most {} bytes",
            limit / 1024,
            protocol::MAX_BODY_BYTES
        );
    }
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("the post on standard input is not UTF-8 text"))
}

fn eprintln_safe(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// `mutual post TOPIC [TEXT]`.
pub(crate) async fn post(ctx: &Ctx, args: PostArgs) -> Result<()> {
    args::topic(&args.topic)?;
    if let Some(parent) = &args.reply_to {
        args::post_id(parent)?;
    }
    let body = match args.text.as_deref() {
        Some(text) if text != "-" => text.to_string(),
        _ => {
            ctx.check_dir()?;
            read_stdin()?.trim_end().to_string()
        }
    };
    let result = ctx
        .call(Request::Post {
            topic: args.topic,
            body,
            reply_to: args.reply_to,
            cw: args.cw,
        })
        .await?;
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
    let now = node::now_ms();
    let since_ms = args
        .since
        .map(|d| now.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
    // Follow first, so nothing stored between the read and the follow is
    // lost; posts the read already shows are skipped.
    let mut stream = if args.follow {
        ctx.check_dir()?;
        Some(control::follow(&ctx.data.socket_path(), &args.topic).await?)
    } else {
        None
    };
    let posts: Vec<PostView> = ctx
        .call_as(Request::Read {
            topic: args.topic.clone(),
            limit: Some(usize::try_from(args.limit).unwrap_or(usize::MAX)),
            since_ms,
        })
        .await?;
    crate::connect::warn_if_alone(ctx, crate::connect::Doing::Reading).await?;
    let style = Style {
        now_ms: now,
        show_warned: args.show_warned,
    };
    if ctx.json {
        for p in &posts {
            output::json(p)?;
        }
    } else if posts.is_empty() && stream.is_none() {
        line(format!(
            "No posts in {} yet.",
            output::clean_line(&args.topic)
        ))?;
    } else if !posts.is_empty() {
        line(output::thread_text(&posts, style))?;
    }
    let Some(stream) = stream.as_mut() else {
        return Ok(());
    };
    let mut shown: HashSet<String> = posts.into_iter().map(|p| p.id).collect();
    loop {
        let next = tokio::select! {
            next = stream.next() => next?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(post) = next else {
            anyhow::bail!("the node stopped, so following ended");
        };
        if !shown.insert(post.id.clone()) {
            continue;
        }
        if ctx.json {
            output::json(&post)?;
        } else {
            let style = Style {
                now_ms: node::now_ms(),
                ..style
            };
            line(output::post_lines(&post, 0, style, true))?;
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

/// `mutual report POST_ID --reason TEXT`.
pub(crate) async fn report(ctx: &Ctx, post: String, reason: String) -> Result<()> {
    args::post_id(&post)?;
    let shown = output::short_id(&post);
    let result = ctx.call(Request::Report { post, reason }).await?;
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
