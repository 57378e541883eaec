//! The community's topic directory as this node shows it: the moderators'
//! signed descriptions (`protocol::directory`), each marked joined or not
//! on this node, and a moderator describing a topic.

use protocol::moderation::ModActionKind;
use protocol::{ActionId, TopicName};

use crate::api::DirectoryEntryView;
use crate::error::NodeError;

use super::Core;

impl Core {
    /// The topic directory, by topic name, with whether this node joined
    /// each topic.
    pub fn topic_directory(&self) -> Vec<DirectoryEntryView> {
        self.moderation
            .topic_directory()
            .into_iter()
            .map(|(topic, entry)| DirectoryEntryView {
                joined: self.joined.contains(&topic),
                topic: topic.to_string(),
                description: entry.description,
                by: crate::views::actor(&entry.decision.by, entry.decision.by_name.as_deref()),
                at: entry.decision.at,
            })
            .collect()
    }

    /// Moderator: sets the directory's entry for `topic` (an empty
    /// description removes it). The description is made one line (line
    /// breaks and other control characters become spaces). Refused when
    /// it would change nothing.
    pub fn describe_topic(
        &mut self,
        topic: TopicName,
        description: &str,
        now_ms: u64,
    ) -> Result<ActionId, NodeError> {
        let description = one_line(description);
        let current = self.moderation.topic_directory().remove(&topic);
        match (&current, description.is_empty()) {
            (None, true) => {
                return Err(NodeError::NotAllowed(format!(
                    "topic {topic} is not in the directory: nothing to remove"
                )))
            }
            (Some(entry), false) if entry.description == description => {
                return Err(NodeError::NotAllowed(format!(
                    "topic {topic} already has that description"
                )))
            }
            _ => {}
        }
        self.moderate(ModActionKind::DescribeTopic { topic, description }, now_ms)
    }
}

/// `text` on one line: control characters (line breaks included) become
/// spaces, runs of spaces one, ends trimmed.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_description_is_made_one_line() {
        assert_eq!(
            super::one_line("  peer\nsupport\t for  carers \r\n"),
            "peer support for carers"
        );
        assert_eq!(super::one_line(" \n "), "");
    }
}
