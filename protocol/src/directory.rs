//! What moderators keep besides decisions on posts and authors: the topic
//! directory ([`ModActionKind::DescribeTopic`]) and which reports are dealt
//! with ([`ModActionKind::ResolveReport`]). Both are read from the
//! effective actions of the fold, the latest action (by order key) per
//! topic or per report winning, so every node that holds the same actions
//! shows the same directory and the same open reports, whatever order they
//! arrived in.

use std::collections::BTreeMap;

use crate::ids::ActionId;
use crate::moderation::{ModActionKind, ReportOutcome};
use crate::report::SealedCopy;
use crate::state::{Decision, ModerationState};
use crate::topic::TopicName;

/// One entry of the topic directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicEntry {
    /// Its one-line description.
    pub description: String,
    /// Who wrote it, when.
    pub decision: Decision,
}

/// How a report was resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// What was done.
    pub outcome: ReportOutcome,
    /// The moderator's note, sealed to the moderators of its time.
    pub note: Vec<SealedCopy>,
    /// Who resolved it, when.
    pub decision: Decision,
}

fn decision_of(a: &crate::VerifiedModAction) -> Decision {
    Decision {
        by: a.signer,
        by_name: a.signer_name.clone(),
        reason: String::new(),
        at: a.created_at,
        action: a.id(),
    }
}

impl ModerationState {
    /// The community's topic directory: per topic, the latest effective
    /// description; a topic whose latest description is empty is not
    /// listed.
    pub fn topic_directory(&self) -> BTreeMap<TopicName, TopicEntry> {
        let mut latest: BTreeMap<TopicName, TopicEntry> = BTreeMap::new();
        // `log` is in order-key order: a later action replaces an earlier.
        for a in self.log() {
            if let ModActionKind::DescribeTopic { topic, description } = &a.kind {
                latest.insert(
                    topic.clone(),
                    TopicEntry {
                        description: description.trim().to_string(),
                        decision: decision_of(a),
                    },
                );
            }
        }
        latest.retain(|_, entry| !entry.description.is_empty());
        latest
    }

    /// The resolved reports, by the report's own id: per report, the
    /// latest effective resolution.
    pub fn resolutions(&self) -> BTreeMap<ActionId, Resolution> {
        let mut latest = BTreeMap::new();
        for a in self.log() {
            if let ModActionKind::ResolveReport {
                report,
                outcome,
                note,
            } = &a.kind
            {
                latest.insert(
                    *report,
                    Resolution {
                        outcome: *outcome,
                        note: note.clone(),
                        decision: decision_of(a),
                    },
                );
            }
        }
        latest
    }

    /// How `report` was resolved, if it was.
    pub fn resolution(&self, report: &ActionId) -> Option<Resolution> {
        self.resolutions().remove(report)
    }
}
