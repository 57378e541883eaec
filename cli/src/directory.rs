//! `mutual topics --all` and `mutual topics describe`: the community's
//! topic directory, which moderators keep.

use anyhow::Result;
use clap::Subcommand;
use node::api::{DirectoryEntryView, TopicView};
use node::control::Request;
use serde_json::json;

use crate::args;
use crate::output::{self, line};
use crate::Ctx;

/// `mutual topics …` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum TopicsCommand {
    /// Moderator: describe a topic in the community's directory in one
    /// line (an empty text removes it from the directory).
    Describe {
        /// The topic's name.
        topic: String,
        /// One line about it, seen by every member.
        description: String,
    },
}

/// `mutual topics --all`: the directory, each topic marked joined or not,
/// then joined topics the directory does not list.
pub(crate) async fn all(ctx: &Ctx) -> Result<()> {
    let directory: Vec<DirectoryEntryView> = ctx.call_as(Request::TopicDirectory).await?;
    let joined: Vec<TopicView> = ctx.call_as(Request::Topics).await?;
    let unlisted: Vec<&TopicView> = joined
        .iter()
        .filter(|t| !directory.iter().any(|d| d.topic == t.name))
        .collect();
    if ctx.json {
        return output::json(&json!({ "directory": directory, "joined": joined }));
    }
    if directory.is_empty() {
        line("The community's topic directory is empty (moderators add topics with `mutual topics describe TOPIC TEXT`).")?;
    } else {
        line("The community's topics:")?;
    }
    for d in &directory {
        line(format!(
            "  {} {:<24} {}",
            if d.joined { "[joined]" } else { "        " },
            output::clean_line(&d.topic),
            output::clean_line(&d.description)
        ))?;
    }
    if !unlisted.is_empty() {
        line("Joined, not in the directory:")?;
        for t in unlisted {
            line(format!(
                "  [joined] {:<24} {} posts",
                output::clean_line(&t.name),
                t.posts
            ))?;
        }
    }
    line("Join any topic, listed or not: `mutual join TOPIC`.")?;
    Ok(())
}

/// Runs a `topics` subcommand.
pub(crate) async fn run(ctx: &Ctx, command: TopicsCommand) -> Result<()> {
    match command {
        TopicsCommand::Describe { topic, description } => {
            args::topic(&topic)?;
            let removing = description.trim().is_empty();
            let result = ctx
                .call(Request::DescribeTopic {
                    topic: topic.clone(),
                    description,
                })
                .await?;
            if ctx.json {
                return output::json(&result);
            }
            let topic = output::clean_line(&topic);
            Ok(line(if removing {
                format!("Removed topic {topic} from the directory.")
            } else {
                format!("Described topic {topic} in the directory; every member will see it.")
            })?)
        }
    }
}
