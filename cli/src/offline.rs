//! Commands that work on the data directory alone, with no node running:
//! `community create`, `community join`, `rules` (`init` is in `keys`).

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use node::api::CommunityView;
use node::control::{ControlError, Request};
use node::NodeError;
use protocol::SignedManifest;
use serde_json::json;

use crate::output::{self, line};
use crate::Ctx;

/// Largest rules file read; the protocol's own limit decides what is
/// accepted, this only keeps a wrong file (a video) from being read whole.
const MAX_RULES_FILE_BYTES: u64 = 4 * protocol::MAX_RULES_BYTES as u64;

fn view(manifest: &SignedManifest) -> CommunityView {
    let m = &manifest.content;
    CommunityView {
        name: m.name.clone(),
        id: manifest.id().to_string(),
        admin: m.admin.to_string(),
        rules: m.rules.clone(),
        created_at: m.created_at,
        admission: String::new(),
        probation_posts: 0,
        rules_version: None,
        lockdowns: Vec::new(),
    }
}

pub(crate) fn read_rules(path: &Path) -> Result<String> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the rules file {}", path.display()))?
        .len();
    if size > MAX_RULES_FILE_BYTES {
        anyhow::bail!(
            "the rules file {} is {} bytes; rules are at most {} bytes",
            path.display(),
            size,
            protocol::MAX_RULES_BYTES
        );
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the rules file {}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("the rules file {} is not UTF-8 text", path.display()))
}

/// `mutual community create NAME [--rules-file FILE]`.
pub(crate) fn create(
    ctx: &Ctx,
    name: &str,
    rules_file: Option<&Path>,
    open: bool,
    probation: Option<u32>,
) -> Result<()> {
    ctx.check_dir()?;
    let rules = match rules_file {
        Some(path) => read_rules(path)?,
        None => String::new(),
    };
    let mut policy = protocol::CommunityPolicy::NEW_COMMUNITY;
    if open {
        policy.admission = protocol::Admission::Open;
    }
    if let Some(n) = probation {
        if n > protocol::moderation::MAX_PROBATION_POSTS {
            anyhow::bail!(
                "--probation is at most {} posts",
                protocol::moderation::MAX_PROBATION_POSTS
            );
        }
        policy.probation_posts = n;
    }
    ctx.unlock()?;
    let manifest = ctx.data.create_community(name, &rules, node::now_ms())?;
    // The node publishes the first manifest update (this policy, dated at
    // the manifest's creation) when it starts.
    node::admission::queue(
        &ctx.data,
        node::admission::AdmissionWork::FirstManifest(policy),
    )?;
    let v = view(&manifest);
    if ctx.json {
        return output::json(&v);
    }
    line(format!(
        "Created community \"{}\" ({}); you are its admin.",
        output::clean_line(&v.name),
        v.id
    ))?;
    line("Next: start the node with `mutual run`, then `mutual invite` prints a code for others.")?;
    Ok(())
}

/// Largest invite read from standard input; a code is a few hundred
/// characters, this only keeps a wrong file from being read whole.
const MAX_INVITE_INPUT_BYTES: u64 = 64 * 1024;

/// The invite code from the arguments (a code broken over several
/// arguments is put back together), or from standard input for `-`.
fn invite_text(args: &[String]) -> Result<String> {
    if args != ["-"] {
        return Ok(args.concat());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let _ = writeln!(
            std::io::stderr(),
            "Paste the invite code, then press Ctrl-D on a new line."
        );
    }
    let mut bytes = Vec::new();
    stdin
        .lock()
        .take(MAX_INVITE_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .context("cannot read the invite code from standard input")?;
    if bytes.len() as u64 > MAX_INVITE_INPUT_BYTES {
        anyhow::bail!("standard input holds over 64 KiB, which is not an invite code (a code is a few hundred characters)");
    }
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("standard input is not text, so not an invite code"))
}

/// `mutual community join INVITE` (or `-` for standard input).
pub(crate) async fn join(ctx: &Ctx, args: &[String]) -> Result<()> {
    ctx.check_dir()?;
    let code = invite_text(args)?;
    ctx.unlock()?;
    let joined = node::invites::join(&ctx.data, &code, node::invites::FETCH_TIMEOUT).await?;
    let v = view(&joined.manifest);
    let inviter = joined.inviter.to_string();
    if ctx.json {
        return output::json(&json!({
            "community": v,
            "inviter": inviter,
            "bootstrap": joined.bootstrap,
            "welcome": joined.welcome,
        }));
    }
    line(format!(
        "Joined community \"{}\" ({}), invited by {}.",
        output::clean_line(&v.name),
        v.id,
        output::fingerprint(&inviter)
    ))?;
    let welcome = joined.welcome.unwrap_or_default();
    match &welcome.rules {
        Some((version, rules)) => print_rules(rules, Some(*version))?,
        None => print_rules(&v.rules, None)?,
    }
    if welcome.directory.is_empty() {
        line("The community's topic directory is empty: join any topic by its name (`mutual join NAME`).")?;
    } else {
        line("The community's topics (join one with `mutual join NAME`):")?;
        for (topic, description) in &welcome.directory {
            line(format!(
                "  {:<24} {}",
                output::clean_line(topic),
                output::clean_line(description)
            ))?;
        }
    }
    line("Next: `mutual run` starts your node; it connects to the inviter by itself.")?;
    Ok(())
}

/// The rules, headed by their version when an update set them.
fn print_rules(rules: &str, version: Option<u64>) -> Result<()> {
    if rules.trim().is_empty() {
        line("The community has no written rules.")?;
    } else {
        match version {
            Some(version) => line(format!("Rules (version {version}):"))?,
            None => line("Rules:")?,
        }
        for l in output::clean(rules).lines() {
            line(format!("  {l}"))?;
        }
    }
    Ok(())
}

/// `mutual rules`: the rules in force, from the running node (which
/// knows the admin's updates); without a node, the rules the community
/// was created with, saying so.
pub(crate) async fn rules(ctx: &Ctx) -> Result<()> {
    ctx.check_dir()?;
    let running = match ctx.call_as::<CommunityView>(Request::Community).await {
        Ok(v) => Some(v),
        Err(e) if matches!(e.downcast_ref(), Some(ControlError::NotRunning(_))) => None,
        Err(e) => return Err(e),
    };
    let offline = running.is_none();
    let v = match running {
        Some(v) => v,
        None => {
            ctx.unlock()?;
            ctx.data.identity()?;
            view(&ctx.data.community()?.ok_or(NodeError::NoCommunity)?)
        }
    };
    if ctx.json {
        return output::json(&v);
    }
    line(format!(
        "{} ({}), admin {}",
        output::clean_line(&v.name),
        v.id,
        output::fingerprint(&v.admin)
    ))?;
    print_rules(&v.rules, v.rules_version)?;
    if offline {
        line("(As the community was created; while your node runs, `mutual rules` shows any newer version.)")?;
    }
    Ok(())
}
