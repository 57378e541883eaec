//! The reports this node can read, as a moderator works with them: each
//! report once, by its own id, whatever number of sealed envelopes carry
//! it (the reporter's, and re-sealed ones for moderators appointed later);
//! the queue of open ones with the reported post; resolving one; and
//! re-sealing open reports when the moderators change (ARCHITECTURE.md,
//! "Reports").

use std::collections::{BTreeMap, BTreeSet};

use protocol::moderation::{ModActionKind, ReportOutcome};
use protocol::report::{seal_note, ReportContent};
use protocol::{ActionId, Message, OpenedReport, PostId, PublicKey, SealedReport};

use crate::api::{ReportView, ReportedPostView};
use crate::error::NodeError;

use super::Core;

/// One report this node can read.
#[derive(Clone, Debug)]
pub(crate) struct HeldReport {
    /// What the queue shows (its `id` is the report's own id).
    pub(crate) view: ReportView,
    /// What was sealed, to seal again to a later moderator.
    pub(crate) content: ReportContent,
    /// The reported post as the report carried it, checked.
    pub(crate) carried: Option<ReportedPostView>,
    /// The envelopes held that carry it: id and recipients.
    pub(crate) envelopes: BTreeMap<ActionId, BTreeSet<PublicKey>>,
}

/// Reports this node can read, by their own id.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reports {
    held: BTreeMap<ActionId, HeldReport>,
}

impl Reports {
    /// Notes an envelope this node opened.
    pub(crate) fn add(&mut self, envelope: &SealedReport, opened: OpenedReport) {
        let recipients: BTreeSet<PublicKey> = envelope.copies.iter().map(|c| c.recipient).collect();
        let id = opened.id();
        let entry = self.held.entry(id).or_insert_with(|| {
            let body = &opened.body;
            let carried = opened.post.as_ref().map(|p| ReportedPostView {
                topic: p.topic.to_string(),
                author: crate::views::actor(&p.author, p.author_name.as_deref()),
                body: p.body.clone(),
            });
            HeldReport {
                view: ReportView {
                    id: id.to_string(),
                    post: body.post.to_string(),
                    reporter: crate::views::actor(&body.reporter, None),
                    reason: body.reason.clone(),
                    at: body.created_at,
                    reported: None,
                },
                content: opened.content.clone(),
                carried,
                envelopes: BTreeMap::new(),
            }
        });
        entry.envelopes.insert(envelope.id(), recipients);
    }

    /// Forgets an envelope (expired); the report goes with its last one.
    pub(crate) fn remove_envelope(&mut self, envelope: &ActionId) {
        self.held.retain(|_, r| {
            r.envelopes.remove(envelope);
            !r.envelopes.is_empty()
        });
    }

    /// Every report held, oldest first.
    pub(crate) fn all(&self) -> Vec<&HeldReport> {
        let mut out: Vec<&HeldReport> = self.held.values().collect();
        out.sort_by(|a, b| (a.view.at, &a.view.id).cmp(&(b.view.at, &b.view.id)));
        out
    }
}

/// An open report to seal again to the moderators now.
pub struct ResealJob {
    content: ReportContent,
    recipients: Vec<PublicKey>,
}

impl ResealJob {
    /// Seals the report again (a proof of work of about 0.2 s: run it off
    /// the core's thread).
    pub fn seal(&self) -> Result<SealedReport, NodeError> {
        Ok(SealedReport::reseal(
            &self.content,
            &self.recipients,
            &mut rand::rngs::OsRng,
        )?)
    }
}

impl Core {
    /// Opens a sealed report if it is addressed to this node's key and
    /// keeps it among the reports this node can read.
    pub(crate) fn note_report(&mut self, sealed: &SealedReport) {
        let ctx = protocol::ValidationContext {
            community: self.community,
            now_ms: u64::MAX,
        };
        match sealed.open_content(&self.identity.secret, &ctx) {
            None => {}
            Some(Ok(opened)) => self.reports.add(sealed, opened),
            Some(Err(e)) => tracing::warn!("a report addressed to this node did not open: {e}"),
        }
    }

    /// Open reports (not resolved), oldest first, each with the reported
    /// post: the copy the report carries, or else this node's own copy.
    /// A report by a key that was not a member when it reported (in an
    /// invite-only era) is not shown: relays cannot tell (the reporter is
    /// sealed), so the moderators' nodes apply the admission rule on
    /// opening, the same rule as for posts.
    pub(crate) fn open_report_rows(&self) -> Vec<ReportView> {
        let resolved = self.moderation.resolutions();
        let mut names = crate::views::AuthorNames::new(&self.store, &self.moderation);
        self.reports
            .all()
            .into_iter()
            .filter(|r| {
                r.view
                    .id
                    .parse()
                    .is_ok_and(|id| !resolved.contains_key(&id))
            })
            .filter(|r| self.reported_by_a_member(r))
            .map(|r| {
                let mut view = r.view.clone();
                view.reporter = names.actor(&r.content.report.content.reporter);
                view.reported = r.carried.clone().or_else(|| self.stored_copy(&r.view.post));
                view
            })
            .collect()
    }

    /// Whether the reporter was a member when they reported, by the
    /// admission rule for posts (an open community takes everyone).
    fn reported_by_a_member(&self, r: &HeldReport) -> bool {
        let body = &r.content.report.content;
        self.admission_refusal(&body.reporter, body.created_at)
            .is_none()
    }

    /// The reported post from this node's store, if held.
    fn stored_copy(&self, post: &str) -> Option<ReportedPostView> {
        let id = post.parse::<PostId>().ok()?;
        let post = self.store.get_post(&id).ok()??.content;
        Some(ReportedPostView {
            topic: post.topic.to_string(),
            author: crate::views::actor(&post.author, post.author_name.as_deref()),
            body: post.body,
        })
    }

    /// The held report a printed report id (full, or a short form of at
    /// least 8 characters after `ma1`) names; `None` when `text` is not
    /// a report id at all.
    pub(crate) fn held_report(&self, text: &str) -> Result<Option<&HeldReport>, NodeError> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        if !lower.starts_with(&format!("{}1", ActionId::PREFIX)) {
            return Ok(None);
        }
        if lower.len() < ActionId::PREFIX.len() + 1 + protocol::ids::MIN_SHORT_ID_CHARS {
            return Err(NodeError::BadInput(format!(
                "{text} is too short to name a report: give at least {} characters after `{}1`",
                protocol::ids::MIN_SHORT_ID_CHARS,
                ActionId::PREFIX
            )));
        }
        let matching: Vec<&HeldReport> = self
            .reports
            .all()
            .into_iter()
            .filter(|r| r.view.id.starts_with(&lower))
            .collect();
        match matching.as_slice() {
            [] => Err(NodeError::BadInput(format!(
                "no report with id {text} is held on this node (`mutual mod queue` lists the open ones)"
            ))),
            [one] => Ok(Some(one)),
            many => {
                let ids: Vec<String> = many.iter().map(|r| r.view.id.clone()).collect();
                Err(NodeError::AmbiguousPost(text.to_string(), ids.join(", ")))
            }
        }
    }

    /// The author of the post a report names, when `text` is a report id
    /// (so `mod block REPORT` blocks who wrote the reported post): from
    /// the copy the report carries, or this node's own copy.
    pub(crate) fn reported_author(&self, text: &str) -> Result<Option<PublicKey>, NodeError> {
        let Some(held) = self.held_report(text)? else {
            return Ok(None);
        };
        if let Some(post) = &held.content.post {
            return Ok(Some(post.content.author));
        }
        let post = held.content.report.content.post;
        match self.store.get_post(&post)? {
            Some(p) => Ok(Some(p.content.author)),
            None => Err(NodeError::BadInput(format!(
                "report {} names a post this node does not hold, so not its author: give the author's key",
                held.view.id
            ))),
        }
    }

    /// Keys the held reports name (reporters, authors of carried posts),
    /// for resolving a printed fingerprint.
    pub(crate) fn report_keys(&self) -> Vec<PublicKey> {
        let mut keys = Vec::new();
        for r in self.reports.all() {
            keys.push(r.content.report.content.reporter);
            if let Some(post) = &r.content.post {
                keys.push(post.content.author);
            }
        }
        keys
    }

    /// Resolves an open report: a signed `ResolveReport` with `outcome`
    /// and the note sealed to the moderators now. Refused when the report
    /// is not held here or is resolved already.
    pub fn resolve_report(
        &mut self,
        report: &str,
        outcome: ReportOutcome,
        note: &str,
        now_ms: u64,
    ) -> Result<ActionId, NodeError> {
        let held = self.held_report(report)?.ok_or_else(|| {
            NodeError::BadInput(format!(
                "{report} is not a report id: give the id `mutual mod queue` prints (ma1…)"
            ))
        })?;
        let id = held.content.id();
        if let Some(done) = self.moderation.resolution(&id) {
            return Err(NodeError::NotAllowed(format!(
                "report {} was resolved already ({}, by {})",
                id.short(),
                done.outcome,
                done.decision.by.short()
            )));
        }
        if note.len() > protocol::MAX_REASON_BYTES {
            return Err(NodeError::BadInput(format!(
                "the note is {} bytes; at most {} fit",
                note.len(),
                protocol::MAX_REASON_BYTES
            )));
        }
        let note = seal_note(
            note,
            &self.moderation.current_moderators(),
            &mut rand::rngs::OsRng,
        );
        self.moderate(
            ModActionKind::ResolveReport {
                report: id,
                outcome,
                note,
            },
            now_ms,
        )
    }

    /// The open reports to seal again because no envelope held is sealed
    /// to exactly the moderators now (one was appointed, or a moderator
    /// moved to a new key): only a node whose user moderates now does it,
    /// and only for reports neither resolved nor expired. Clears the
    /// flag that asked for it.
    pub fn take_reseal_jobs(&mut self, now_ms: u64) -> Vec<ResealJob> {
        if !std::mem::take(&mut self.reseal_due) {
            return Vec::new();
        }
        let now: Vec<PublicKey> = self.moderation.current_moderators();
        let mut recipients: Vec<PublicKey> = Vec::with_capacity(now.len());
        for key in now {
            if !recipients.contains(&key) {
                recipients.push(key);
            }
        }
        let set: BTreeSet<PublicKey> = recipients.iter().copied().collect();
        if !set.contains(&self.identity.public()) {
            return Vec::new();
        }
        let resolved = self.moderation.resolutions();
        self.reports
            .all()
            .into_iter()
            .filter(|r| {
                let created = r.content.report.content.created_at;
                now_ms.saturating_sub(created) <= protocol::report::REPORT_TTL_MS
                    && !resolved.contains_key(&r.content.id())
                    && !r.envelopes.values().any(|to| *to == set)
                    // Shown to no moderator (`open_report_rows`): not
                    // sealed again either.
                    && self.reported_by_a_member(r)
            })
            .map(|r| ResealJob {
                content: r.content.clone(),
                recipients: recipients.clone(),
            })
            .collect()
    }

    /// Takes re-sealed envelopes through the arrival path (stored,
    /// gossiped). One refused (the moderators changed again meanwhile:
    /// the next round seals it anew) is only logged.
    pub fn publish_resealed(&mut self, sealed: Vec<SealedReport>, now_ms: u64) {
        for envelope in sealed {
            if let Err(e) = self.publish_local(Message::Report(envelope), now_ms) {
                tracing::debug!("a re-sealed report was not published: {e}");
            }
        }
    }
}
