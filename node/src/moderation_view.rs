//! The public moderation state and log, as members see them: who did what
//! and why, never the content of a blocked or hidden post.

use protocol::moderation::{ModActionKind, Scope};
use protocol::{ModerationState, SignedManifest};

use crate::api::{BlockView, HiddenView, LockdownView, LogEntryView, ModListView};
use crate::views::actor;

fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::Community => "community".into(),
        Scope::Topic(t) => t.to_string(),
    }
}

/// Describes an action in words, for the log.
fn describe(kind: &ModActionKind) -> (String, Option<String>) {
    match kind {
        ModActionKind::AppointModerator { key } => (format!("appointed moderator {key}"), None),
        ModActionKind::RevokeModerator { key, .. } => (format!("revoked moderator {key}"), None),
        ModActionKind::Block {
            author,
            scope,
            reason,
        } => (
            format!("blocked {author} in {}", scope_text(scope)),
            Some(reason.clone()),
        ),
        ModActionKind::Unblock { author, scope } => {
            (format!("unblocked {author} in {}", scope_text(scope)), None)
        }
        ModActionKind::Hide { post, reason } => (format!("hid post {post}"), Some(reason.clone())),
        ModActionKind::Unhide { post } => (format!("unhid post {post}"), None),
        ModActionKind::Pin { post } => (format!("pinned post {post}"), None),
        ModActionKind::Unpin { post } => (format!("unpinned post {post}"), None),
        ModActionKind::Succeed { new, .. } => (format!("moved to the new key {new}"), None),
        ModActionKind::AppointCoAdmin { key } => (format!("named co-admin {key}"), None),
        ModActionKind::RemoveCoAdmin { key, .. } => {
            (format!("removed co-admin {key} (still a moderator)"), None)
        }
        ModActionKind::UpdateManifest {
            version, policy, ..
        } => (
            format!(
                "published rules version {version} ({}, probation {} posts)",
                admission_text(policy.admission),
                policy.probation_posts
            ),
            None,
        ),
        ModActionKind::Invite { invitation, .. } => {
            (format!("issued invitation {}", invitation.short()), None)
        }
        ModActionKind::RevokeInvite { invitation } => {
            (format!("withdrew invitation {}", invitation.short()), None)
        }
        ModActionKind::Redeem { invitation, .. } => (
            format!("joined with invitation {}", invitation.short()),
            None,
        ),
        ModActionKind::Lockdown { scope, reason, .. } => (
            format!("locked down {}", scope_text(scope)),
            Some(reason.clone()),
        ),
        ModActionKind::LiftLockdown { scope } => (
            format!("lifted the lockdown of {}", scope_text(scope)),
            None,
        ),
        ModActionKind::Approve { post, .. } => (format!("approved post {post}"), None),
        ModActionKind::Reject { post, reason } => {
            (format!("rejected post {post}"), Some(reason.clone()))
        }
        ModActionKind::ResolveReport {
            report, outcome, ..
        } => (format!("resolved report {report}: {outcome}"), None),
        ModActionKind::DescribeTopic { topic, description } if description.trim().is_empty() => {
            (format!("removed topic {topic} from the directory"), None)
        }
        ModActionKind::DescribeTopic { topic, description } => (
            format!("described topic {topic}: {}", description.trim()),
            None,
        ),
    }
}

/// The members' view of the moderation state.
pub(crate) fn mod_list(state: &ModerationState, manifest: &SignedManifest) -> ModListView {
    // The admin's current key: after the admin's key succession, the new
    // one.
    let admin = state.lineage().current(&manifest.content.admin);
    ModListView {
        admin: actor(&admin, None),
        moderators: state
            .moderators()
            .into_iter()
            .filter(|(k, _)| *k != admin)
            .map(|(k, name)| actor(&k, name.as_deref()))
            .collect(),
        co_admins: state.co_admins().iter().map(|k| k.to_string()).collect(),
        blocks: state
            .blocks()
            .into_iter()
            .map(|((author, scope), info)| BlockView {
                author: author.to_string(),
                scope: scope_text(&scope),
                by: actor(&info.by, info.by_name.as_deref()),
                reason: info.reason.clone(),
                at: info.at,
            })
            .collect(),
        hidden: state
            .hidden_posts()
            .into_iter()
            .map(|(post, info)| HiddenView {
                post: post.to_string(),
                by: actor(&info.by, info.by_name.as_deref()),
                reason: info.reason.clone(),
                at: info.at,
            })
            .collect(),
        pinned: state.pinned().into_iter().map(|p| p.to_string()).collect(),
        lockdowns: lockdown_views(state),
        log: state
            .log_with_ids()
            .into_iter()
            .map(|a| {
                let (action, reason) = describe(&a.kind);
                LogEntryView {
                    id: a.id().to_string(),
                    by: actor(&a.signer, a.signer_name.as_deref()),
                    action,
                    reason,
                    at: a.created_at,
                }
            })
            .collect(),
    }
}

/// How an admission mode is written.
pub(crate) fn admission_text(admission: protocol::Admission) -> &'static str {
    match admission {
        protocol::Admission::Open => "open",
        protocol::Admission::InviteOnly => "invite-only",
    }
}

/// The lockdowns in force, as everyone sees them.
pub(crate) fn lockdown_views(state: &ModerationState) -> Vec<LockdownView> {
    state
        .lockdowns()
        .into_iter()
        .map(|l| LockdownView {
            scope: scope_text(&l.scope),
            hold_recent_days: l.hold_recent_days,
            reason: l.reason,
            by: actor(&l.by, l.by_name.as_deref()),
            at: l.at,
        })
        .collect()
}
