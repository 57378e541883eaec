//! `mutual demo`: a small network in this one process, on 127.0.0.1, in a
//! temporary directory, narrated. It shows what mutual is for: people
//! talking, a late joiner catching up, and moderators stepping in, with every
//! node holding and enforcing the same things and no server anywhere.
//!
//! Every step waits on a condition with a deadline (never a fixed pause).

use std::time::Duration;

use anyhow::{Context, Result};
use node::{DataDir, NodeConfig, NodeHandle, ReadQuery, RunningNode};
use protocol::moderation::{ModActionKind, Scope};
use protocol::post::Draft;
use protocol::{Message, Post, PostId, PublicKey, TopicName};

use crate::output;

/// How long the demo waits for the network before giving up on a step.
const STEP_DEADLINE: Duration = Duration::from_secs(30);
/// How often a waiting step looks again.
const POLL: Duration = Duration::from_millis(50);
/// Enough to read every post of the demo's small topics.
const READ_ALL: usize = 1000;

struct Person {
    name: &'static str,
    data: DataDir,
    handle: NodeHandle,
    task: tokio::task::JoinHandle<Result<(), node::NodeError>>,
    addr: String,
}

fn say(text: impl std::fmt::Display) -> Result<()> {
    Ok(output::line(text)?)
}

fn topic(name: &str) -> Result<TopicName> {
    Ok(TopicName::parse(name)?)
}

async fn start(data: DataDir, name: &'static str, bootstrap: Vec<String>) -> Result<Person> {
    let mut config = NodeConfig::local(data.clone());
    config.bootstrap = bootstrap;
    let RunningNode { handle, task } = node::start(config).await?;
    let id = handle.id().await?;
    let addr = id
        .listen_addrs
        .iter()
        .find(|a| a.contains("/tcp/"))
        .map(|a| format!("{a}/p2p/{}", id.peer_id))
        .with_context(|| format!("{name}'s node has no TCP address"))?;
    Ok(Person {
        name,
        data,
        handle,
        task,
        addr,
    })
}

async fn wait_for<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + STEP_DEADLINE;
    while !check().await {
        if tokio::time::Instant::now() > end {
            anyhow::bail!(
                "the demo network did not settle: waited {}s for {what}",
                STEP_DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

async fn visible(p: &Person, t: &str) -> Vec<node::api::PostView> {
    let Ok(t) = TopicName::parse(t) else {
        return Vec::new();
    };
    p.handle
        .read(
            t,
            ReadQuery {
                limit: READ_ALL,
                since_ms: None,
            },
        )
        .await
        .map(|v| v.into_iter().filter(|x| !x.hidden).collect())
        .unwrap_or_default()
}

async fn count(p: &Person, t: &str) -> usize {
    visible(p, t).await.len()
}

async fn has(p: &Person, t: &str, id: &PostId) -> bool {
    let id = id.to_string();
    visible(p, t).await.iter().any(|x| x.id == id)
}

async fn show(p: &Person, t: &str) -> Result<()> {
    let posts = p
        .handle
        .read(
            topic(t)?,
            ReadQuery {
                limit: 50,
                since_ms: None,
            },
        )
        .await?;
    let shown = posts.iter().filter(|x| !x.hidden).count();
    say(format!("  {}'s node, #{t}: {shown} posts", p.name))?;
    for (post, depth) in output::thread_order(&posts) {
        let who = post.author_name.as_deref().unwrap_or("anonymous");
        let indent = "    ".repeat(depth + 1);
        let arrow = if depth > 0 { "↳ " } else { "" };
        if post.hidden {
            let by = post
                .hidden_by
                .as_ref()
                .and_then(|a| a.name.as_deref())
                .unwrap_or("a moderator");
            say(format!(
                "{indent}{arrow}[hidden by {by}: {}]",
                post.hidden_reason.as_deref().unwrap_or("no reason given")
            ))?;
        } else {
            say(format!(
                "{indent}{arrow}{who}: {}",
                post.body.as_deref().unwrap_or_default()
            ))?;
        }
    }
    Ok(())
}

fn draft(body: &str, parent: Option<PostId>) -> Draft {
    Draft {
        body: body.into(),
        parent,
        content_warning: None,
    }
}

async fn post(p: &Person, t: &str, body: &str, parent: Option<PostId>) -> Result<PostId> {
    let id = p.handle.publish(topic(t)?, draft(body, parent)).await?;
    say(format!("  {} posts in #{t}: \"{body}\"", p.name))?;
    Ok(id)
}

/// Runs the demo and cleans up.
pub(crate) async fn run() -> Result<()> {
    let root = tempfile::tempdir().context("cannot make a temporary directory for the demo")?;
    let dir = |n: &str| DataDir::new(root.path().join(n));
    let now = node::now_ms();

    say("== mutual demo: peer support with no central host ==")?;
    say("Every person below runs their own node on 127.0.0.1. No server holds anything.\n")?;

    let ada_dir = dir("ada");
    ada_dir.init(Some("ada".into()))?;
    let manifest = ada_dir.create_community(
        "Quiet Harbour",
        "Be kind. What is said here stays here. If you are in crisis, call your local helpline.",
        now,
    )?;
    let community = manifest.id();
    let secret = ada_dir
        .community_secret()?
        .ok_or_else(|| anyhow::anyhow!("the community has no secret"))?;
    say("ada creates the community \"Quiet Harbour\" and is its admin.")?;
    let mut dirs = Vec::new();
    for name in ["mo", "river", "sol", "kit", "late"] {
        let d = dir(name);
        d.init(Some(name.into()))?;
        d.join_community(&manifest, &secret, &[], now)?;
        dirs.push(d);
    }
    say("mo, river, sol, kit and late join with an invite code; they only chose pseudonyms.\n")?;

    let ada = start(ada_dir, "ada", vec![]).await?;
    let mut people = vec![];
    for (d, name) in dirs.iter().take(4).zip(["mo", "river", "sol", "kit"]) {
        people.push(start(d.clone(), name, vec![ada.addr.clone()]).await?);
    }
    let [mo, river, sol, kit] = people.as_slice() else {
        anyhow::bail!("the demo expected four members");
    };
    let everyone: Vec<&Person> = std::iter::once(&ada).chain(people.iter()).collect();
    for p in &everyone {
        p.handle.join(topic("burnout")?).await?;
        p.handle.join(topic("anxiety")?).await?;
    }
    say("ada, mo, river, sol and kit start their nodes and join #burnout and #anxiety.")?;

    let mo_key: PublicKey = mo.handle.id().await?.author.parse()?;
    ada.handle
        .moderate(ModActionKind::AppointModerator { key: mo_key })
        .await?;
    say("ada appoints mo as a moderator (a signed action every node checks).\n")?;
    for p in &everyone {
        wait_for("the appointment to reach every node", || async {
            p.handle
                .mod_list()
                .await
                .map(|l| l.moderators.len() == 1)
                .unwrap_or(false)
        })
        .await?;
    }

    say("-- people talk --")?;
    let first = post(
        river,
        "burnout",
        "Third week of 70-hour weeks. I can't tell anyone at work.",
        None,
    )
    .await?;
    // A reply needs its parent on the replier's node first.
    wait_for("river's post to reach sol", || async {
        count(sol, "burnout").await >= 1
    })
    .await?;
    post(
        sol,
        "burnout",
        "Same here last year. Taking Fridays off saved me. You're not alone.",
        Some(first),
    )
    .await?;
    post(
        mo,
        "anxiety",
        "Welcome! This is a space to share what you can't say at work.",
        None,
    )
    .await?;
    post(
        kit,
        "anxiety",
        "Honestly, people here just need to toughen up.",
        None,
    )
    .await?;
    for p in &everyone {
        wait_for("the posts to reach every node", || async {
            count(p, "burnout").await == 2 && count(p, "anxiety").await == 2
        })
        .await?;
    }
    say("")?;
    show(sol, "burnout").await?;
    show(&ada, "anxiety").await?;

    say("\n-- a late joiner catches up through history sync --")?;
    let late_dir = dirs
        .get(4)
        .cloned()
        .context("the demo lost late's directory")?;
    let late = start(late_dir, "late", vec![sol.addr.clone()]).await?;
    late.handle.join(topic("burnout")?).await?;
    late.handle.join(topic("anxiety")?).await?;
    wait_for("the late joiner's catch-up", || async {
        count(&late, "burnout").await == 2 && count(&late, "anxiety").await == 2
    })
    .await?;
    say("late was offline while everyone talked; on joining, the late joiner reconciled with sol's node and caught up:")?;
    show(&late, "burnout").await?;

    say("\n-- a moderator steps in --")?;
    let kit_key: PublicKey = kit.handle.id().await?.author.parse()?;
    let harsh = post(
        kit,
        "burnout",
        "Burnout is just an excuse for laziness.",
        None,
    )
    .await?;
    for p in everyone.iter().copied().chain(std::iter::once(&late)) {
        wait_for("kit's post to reach every node", || async {
            count(p, "burnout").await == 3
        })
        .await?;
    }
    mo.handle
        .moderate(ModActionKind::Hide {
            post: harsh,
            reason: "dismissive of someone's pain".into(),
        })
        .await?;
    say("  mo hides kit's post in #burnout: \"dismissive of someone's pain\"")?;
    mo.handle
        .moderate(ModActionKind::Block {
            author: kit_key,
            scope: Scope::Community,
            reason: "repeatedly disrespectful".into(),
        })
        .await?;
    say("  mo blocks kit from the whole community: \"repeatedly disrespectful\"")?;
    for p in everyone.iter().copied().chain(std::iter::once(&late)) {
        wait_for("the block to be enforced on every node", || async {
            count(p, "anxiety").await == 1 && count(p, "burnout").await == 2
        })
        .await?;
    }
    say("  Every node, kit's own included, deleted kit's posts.")?;

    // kit tries again. Kit's own node refuses first…
    match kit
        .handle
        .publish(topic("anxiety")?, draft("You can't silence me.", None))
        .await
    {
        Ok(_) => say("  kit's own node accepted a post (unexpected).")?,
        Err(e) => say(format!(
            "  kit tries to post again; kit's own node says: {e}"
        ))?,
    }
    // …and a modified client that skips that check gets no further: it
    // signs the post itself and hands it to a member's node, which takes it
    // through exactly the checks of a post arrived by gossip or sync, and
    // refuses it.
    let kit_identity = kit.data.identity()?;
    let forced = Post::write(
        &kit_identity,
        community,
        topic("anxiety")?,
        draft("You still can't silence me.", None),
        node::now_ms(),
    )?;
    let forced_id = forced.id();
    say("  kit then uses a modified client that signs the post anyway and sends it to river's node.")?;
    match river.handle.import(Message::Post(forced)).await {
        Ok(_) => say("  river's node took kit's forced post (unexpected).")?,
        Err(e) => say(format!("  river's node refuses it: {e}"))?,
    }
    let mut holders = Vec::new();
    for p in everyone.iter().copied().chain(std::iter::once(&late)) {
        if has(p, "anxiety", &forced_id).await {
            holders.push(p.name);
        }
    }
    if holders.is_empty() {
        say("  Checked on every node: kit's forced post is on none of them.\n")?;
    } else {
        say(format!(
            "  kit's forced post is on: {} (unexpected)\n",
            holders.join(", ")
        ))?;
    }
    for p in [&ada, river, &late] {
        show(p, "anxiety").await?;
        show(p, "burnout").await?;
    }
    say("\nThe public moderation log, identical on every node:")?;
    for entry in river.handle.mod_list().await?.log {
        let who = entry
            .by
            .name
            .clone()
            .unwrap_or_else(|| entry.by.key.clone());
        match entry.reason {
            Some(r) if !r.is_empty() => say(format!("  {who}: {} — \"{r}\"", entry.action))?,
            _ => say(format!("  {who}: {}", entry.action))?,
        }
    }

    for p in people.into_iter().chain([ada, late]) {
        let _ = p.handle.shutdown().await;
        let _ = p.task.await;
    }
    drop(root);
    say("\nAll nodes stopped and their temporary directories removed. That's mutual.")?;
    Ok(())
}
