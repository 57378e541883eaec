//! Admission work that needs the node's store, asked for while no node
//! runs (`community create`, `community join` work on the data directory
//! alone): kept sealed in the vault ([`Role::ADMISSION`]) and done by the
//! core when the node next starts ([`crate::core::Core::settle_admission`]).
//!
//! - After `community create`: the first manifest update (version 1, the
//!   manifest's rules and the chosen policy), dated at the manifest's
//!   creation, so the community is invite-only from its birth.
//! - After `community join` with an admission code: the redemption of the
//!   invitation (signed by the newcomer, co-signed by the invitation key
//!   whose seed the code carried). It is kept in the log even while the
//!   invitation is not known here yet, and travels by gossip and log sync.
//!
//! The file is removed once the work is in the store and flushed.
//! Also here: the node handle's invitation requests.

use protocol::moderation::{Admission, CommunityPolicy};

use crate::datadir::DataDir;
use crate::error::NodeError;
use crate::handle::{Command, NodeHandle};
use crate::vault::Role;

/// Longest an invitation may be valid: a code that lives longer is a
/// standing door, and a revocation is the only way to shut it.
pub const MAX_INVITE_VALIDITY_MS: u64 = 90 * 24 * 60 * 60 * 1000;
/// Default validity of an invitation (`mutual invite`): 7 days.
pub const DEFAULT_INVITE_VALIDITY_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// One piece of admission work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdmissionWork {
    /// Publish the first manifest update with this policy.
    FirstManifest(CommunityPolicy),
    /// Redeem the invitation with this key seed.
    Redeem([u8; 32]),
}

const FIRST_MANIFEST: u8 = 1;
const REDEEM: u8 = 2;

fn encode(work: &[AdmissionWork]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in work {
        match w {
            AdmissionWork::FirstManifest(policy) => {
                out.push(FIRST_MANIFEST);
                out.push(u8::from(policy.admission == Admission::InviteOnly));
                out.extend_from_slice(&policy.probation_posts.to_be_bytes());
            }
            AdmissionWork::Redeem(seed) => {
                out.push(REDEEM);
                out.extend_from_slice(seed);
            }
        }
    }
    out
}

fn decode(mut bytes: &[u8]) -> Option<Vec<AdmissionWork>> {
    let mut out = Vec::new();
    while let Some((tag, rest)) = bytes.split_first() {
        match *tag {
            FIRST_MANIFEST => {
                let (mode, rest) = rest.split_first()?;
                let probation: [u8; 4] = rest.get(..4)?.try_into().ok()?;
                out.push(AdmissionWork::FirstManifest(CommunityPolicy {
                    admission: if *mode == 1 {
                        Admission::InviteOnly
                    } else {
                        Admission::Open
                    },
                    probation_posts: u32::from_be_bytes(probation),
                }));
                bytes = rest.get(4..)?;
            }
            REDEEM => {
                let seed: [u8; 32] = rest.get(..32)?.try_into().ok()?;
                out.push(AdmissionWork::Redeem(seed));
                bytes = rest.get(32..)?;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Adds `work` to what the node does at its next start.
pub fn queue(data: &DataDir, work: AdmissionWork) -> Result<(), NodeError> {
    let mut all = pending(data)?;
    if !all.contains(&work) {
        all.push(work);
    }
    data.write_sealed(Role::ADMISSION, &encode(&all))
}

/// The admission work waiting for the node (none when there is no file).
pub fn pending(data: &DataDir) -> Result<Vec<AdmissionWork>, NodeError> {
    match data.read_sealed(Role::ADMISSION)? {
        None => Ok(Vec::new()),
        Some(bytes) => decode(&bytes).ok_or_else(|| {
            NodeError::BadInput(format!(
                "the admission file {} is damaged; remove it and ask for a fresh invite",
                data.sealed_path(Role::ADMISSION).display()
            ))
        }),
    }
}

/// Forgets the admission work (done and durable).
pub fn clear(data: &DataDir) -> Result<(), NodeError> {
    data.remove_sealed(Role::ADMISSION)
}

/// An invitation just issued, with its code.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IssuedInvitation {
    /// The invite code (carries the invitation key's seed).
    pub invite: String,
    /// The invitation's key (its id; `mutual invite --revoke` takes it).
    pub invitation: String,
    /// How many keys it may admit.
    pub uses: u32,
    /// Last moment a redemption may be dated, ms since the Unix epoch.
    pub expires_at: u64,
}

impl NodeHandle {
    /// `mutual invite`: in an open community, a plain code; in an
    /// invite-only one, a new invitation (published in the log, the admin's
    /// or a moderator's alone) and a code carrying its key.
    pub async fn invite_with(
        &self,
        uses: u32,
        valid_for_ms: u64,
    ) -> Result<Option<IssuedInvitation>, NodeError> {
        let now = crate::now_ms();
        let issued = self
            .core
            .write(move |c| c.issue_invitation(uses, valid_for_ms, now))
            .await?;
        let Some((seed, invitation, expires_at)) = issued else {
            return Ok(None);
        };
        let invite = self
            .ask(|r| Command::AdmissionInvite(Box::new(seed), r))
            .await?;
        Ok(Some(IssuedInvitation {
            invite,
            invitation: invitation.to_string(),
            uses,
            expires_at,
        }))
    }

    /// `mutual community rules|policy` (and the web app's form): the admin
    /// publishes the next version of the rules and the admission policy
    /// (`None` keeps what is in force). Returns the action and version.
    pub async fn update_manifest(
        &self,
        rules: Option<String>,
        admission: Option<Admission>,
        probation_posts: Option<u32>,
    ) -> Result<(protocol::ActionId, u64), NodeError> {
        let now = crate::now_ms();
        self.core
            .write(move |c| c.update_manifest(rules, admission, probation_posts, now))
            .await
    }

    /// `mutual invite --revoke ID`: withdraws an invitation (full or short
    /// key as printed).
    pub async fn revoke_invitation(&self, id: &str) -> Result<protocol::ActionId, NodeError> {
        let id = id.to_string();
        let now = crate::now_ms();
        self.core
            .write(move |c| c.revoke_invitation(&id, now))
            .await
    }

    /// How many redemptions this node holds, admitting or not (tests and
    /// diagnostics: proof that a redemption was processed).
    pub async fn redemptions_held(&self) -> usize {
        self.core
            .call(|c| {
                Ok(c.moderation()
                    .actions()
                    .filter(|a| matches!(a.kind, protocol::ModActionKind::Redeem { .. }))
                    .count())
            })
            .await
            .unwrap_or(0)
    }

    /// The invitations in the community log (moderators only see whom
    /// each admitted).
    pub async fn invitations(&self) -> Result<Vec<crate::api::InvitationView>, NodeError> {
        self.core.call(|c| c.invitation_views()).await
    }
}

fn topic_scope(topic: Option<&str>) -> Result<protocol::Scope, String> {
    Ok(match topic {
        Some(t) => protocol::Scope::Topic(
            protocol::TopicName::parse(t).map_err(|e| format!("bad topic {t}: {e}"))?,
        ),
        None => protocol::Scope::Community,
    })
}

/// The control socket's admission requests (see [`crate::control`]).
pub(crate) async fn execute(
    handle: &NodeHandle,
    request: crate::control::Request,
) -> Result<serde_json::Value, String> {
    use crate::control::Request;
    use protocol::ModActionKind;
    use serde_json::json;
    let e = |e: NodeError| e.to_string();
    let (uses, valid_for) = match &request {
        Request::Invite => (None, None),
        Request::InviteIssue {
            uses,
            expires_in_ms,
        } => (*uses, *expires_in_ms),
        Request::InviteRevoke { invitation } => {
            let id = handle.revoke_invitation(invitation).await.map_err(e)?;
            return Ok(json!({ "id": id.to_string() }));
        }
        Request::InviteList => {
            return serde_json::to_value(handle.invitations().await.map_err(e)?)
                .map_err(|e| e.to_string());
        }
        Request::ModLockdown {
            topic,
            hold_recent_days,
            reason,
        } => {
            let kind = ModActionKind::Lockdown {
                scope: topic_scope(topic.as_deref())?,
                hold_recent_days: *hold_recent_days,
                reason: reason.clone(),
            };
            let id = handle.moderate(kind).await.map_err(e)?;
            return Ok(json!({ "id": id.to_string() }));
        }
        Request::ModLift { topic } => {
            let kind = ModActionKind::LiftLockdown {
                scope: topic_scope(topic.as_deref())?,
            };
            let id = handle.moderate(kind).await.map_err(e)?;
            return Ok(json!({ "id": id.to_string() }));
        }
        Request::CommunityUpdate {
            rules,
            admission,
            probation_posts,
        } => {
            let admission = match admission.as_deref() {
                None => None,
                Some("open") => Some(Admission::Open),
                Some("invite-only") => Some(Admission::InviteOnly),
                Some(other) => {
                    return Err(format!("admission is `open` or `invite-only`, not {other}"))
                }
            };
            let (id, version) = handle
                .update_manifest(rules.clone(), admission, *probation_posts)
                .await
                .map_err(e)?;
            return Ok(json!({ "id": id.to_string(), "version": version }));
        }
        _ => return Err("not an admission request".into()),
    };
    let uses = uses.unwrap_or(1);
    let valid_for = valid_for.unwrap_or(DEFAULT_INVITE_VALIDITY_MS);
    match handle.invite_with(uses, valid_for).await.map_err(e)? {
        Some(issued) => serde_json::to_value(issued).map_err(|e| e.to_string()),
        None => Ok(json!({ "invite": handle.invite().await.map_err(e)? })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_survives_encoding() {
        let work = vec![
            AdmissionWork::FirstManifest(CommunityPolicy::NEW_COMMUNITY),
            AdmissionWork::Redeem([7; 32]),
            AdmissionWork::FirstManifest(CommunityPolicy::LEGACY),
        ];
        assert_eq!(decode(&encode(&work)), Some(work));
        assert_eq!(decode(&[9]), None);
        assert_eq!(decode(&[REDEEM, 1, 2]), None);
    }
}
