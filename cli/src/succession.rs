//! `mutual key rotate` (key succession) and `mutual name` (pseudonym):
//! an identity that stays one author while its key or name changes.

use anyhow::{bail, Result};
use clap::Subcommand;
use node::api::IdView;
use node::control::{ControlError, Request};
use node::succession::SecretSeed;
use protocol::SecretKey;
use serde_json::json;

use crate::output::{self, line};
use crate::Ctx;

/// `mutual key …`.
#[derive(Subcommand, Debug)]
pub(crate) enum KeyCommand {
    /// Move this identity to a fresh key (for a key that may have been
    /// copied: an imaged or lost laptop). The old key signs a succession
    /// naming the new one, the new one co-signs it, and every node then
    /// shows your posts from both keys as one author, with your blocks,
    /// mutes and moderator or admin role carried over. Needs the running
    /// node; a key can be rotated once (then rotate the new one).
    Rotate,
}

/// Runs `mutual key …`.
pub(crate) async fn run(ctx: &Ctx, command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::Rotate => rotate(ctx).await,
    }
}

async fn rotate(ctx: &Ctx) -> Result<()> {
    // The running node signs the succession with the key it holds: it
    // must be the data directory's.
    let running: IdView = ctx.call_as(Request::Id).await?;
    ctx.unlock()?;
    let held = ctx.data.identity()?.public().to_string();
    if running.author != held {
        bail!(
            "the running node signs as {} but the data directory holds the key {held}; \
             restart the node (`mutual run`) and rotate again",
            running.author
        );
    }
    // The new key is kept before it is published: a succession never
    // names a key nobody holds. The old key stays in vault/author.previous.
    let new = SecretKey::generate();
    let old = ctx.data.replace_author_key(&new)?;
    let request = Request::Succeed {
        key: SecretSeed::of(&new),
    };
    match ctx.call(request).await {
        Ok(_) => {}
        Err(e) => {
            // Whether the node took it: it signs with the new key if so.
            let now: Option<IdView> = ctx.call_as(Request::Id).await.ok();
            if now.as_ref().map(|id| &id.author) != Some(&new.public().to_string()) {
                if matches!(
                    e.downcast_ref::<ControlError>(),
                    Some(ControlError::Refused(_))
                ) {
                    ctx.data.replace_author_key(&old)?;
                    return Err(e.context("the key was not rotated; nothing changed"));
                }
                bail!(
                    "{e:#}\nThe node did not confirm the rotation. The data directory now holds the \
                     new key {} and keeps the old one in vault/author.previous: check with \
                     `mutual id` once the node answers",
                    new.public()
                );
            }
        }
    }
    let author = new.public().to_string();
    let phrase = node::vault::phrase_of(&new);
    if ctx.json {
        return output::json(&json!({
            "author": author,
            "previous": old.public().to_string(),
            "recovery_phrase": phrase.as_str(),
        }));
    }
    line(format!(
        "Your identity now signs with the new key {author}."
    ))?;
    line(format!(
        "Everyone shows your posts from both keys as one author, under your first key; \
         the old key {} signs nothing more.",
        old.public()
    ))?;
    line("The old recovery phrase restores only the old key now: write down the new one, and restore it on your other devices.")?;
    line("")?;
    crate::keys::show_phrase(&phrase)
}

/// `mutual name [PSEUDONYM]`: keeps the pseudonym in the data directory
/// and tells the running node (if one runs); none given: no pseudonym.
pub(crate) async fn name(ctx: &Ctx, pseudonym: Option<String>) -> Result<()> {
    ctx.check_dir()?;
    ctx.unlock()?;
    let name = ctx.data.set_pseudonym(pseudonym)?;
    match ctx.call(Request::SetName { name: name.clone() }).await {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.downcast_ref::<ControlError>(),
                Some(ControlError::NotRunning(_))
            ) => {}
        Err(e) => return Err(e.context("the pseudonym is saved for the next start")),
    }
    if ctx.json {
        return output::json(&json!({ "name": name }));
    }
    match name {
        Some(n) => line(format!(
            "Your next posts carry the pseudonym {}; everyone shows your newest one next to \
             all your posts.",
            output::clean_line(&n)
        ))?,
        None => line("Your next posts carry no pseudonym.")?,
    }
    Ok(())
}
