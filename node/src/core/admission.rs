//! Admission in an invite-only community (`protocol::membership`): posts
//! and retractions signed by keys that are not members are refused
//! (ignored: no penalty, not stored, not relayed) when the community is
//! invite-only at the item's time ([`protocol::ModerationState::policy_at`]);
//! when a membership ends, the member's posts of the invite-only eras are
//! deleted like a block's; when one begins (a late invitation or
//! redemption, an unblock) or the policy changes, what was refused comes
//! back by sync, as after an unblock. Gossip and sync take the same path
//! ([`super::arrival`]), and history sync fetches the community log before
//! any topic, so a newcomer's redemption is known before their posts.
//!
//! Reports are sealed and carry no visible author: a relay cannot tell a
//! member's from a non-member's, so relays admit them by their proof of
//! work and bounds alone; a moderator's node, which opens them, applies
//! [`Core::admission_refusal`] to the reporter before the queue shows one
//! (`reports.rs`).

use protocol::membership::RedemptionRefusal;
use protocol::moderation::{redemption_statement, Admission, ModActionKind};
use protocol::state::Applied;
use protocol::sync::ItemKey;
use protocol::{ActionId, Message, ModAction, PublicKey, Scope, SecretKey};

use crate::admission::AdmissionWork;
use crate::api::InvitationView;
use crate::error::NodeError;
use crate::store::StoreError;
use crate::views::actor;

use super::{Channel, Core, Effect, Origin, Refusal};

impl Core {
    /// Why an item signed by `author` and dated `at_ms` is not taken by
    /// the admission rules, if it is not.
    pub(crate) fn admission_refusal(&self, author: &PublicKey, at_ms: u64) -> Option<Refusal> {
        if self.awaits_own_admission(author) {
            // This node's own user, just joined: their redemption waits
            // for its invitation, which log sync brings. Their posts are
            // kept and sent; every other node judges them by its own log
            // (and takes them back by sync once it knows the admission).
            return None;
        }
        (self.moderation.invite_only_at(at_ms) && !self.moderation.is_member(author)).then(|| {
            Refusal::NotAdmitted("the author is not a member of this invite-only community".into())
        })
    }

    /// What this node's user is told when the admission rule refuses
    /// their own item: why their invitation admitted nobody, when their
    /// node can tell, and what to do.
    pub(crate) fn own_admission_help(&self) -> String {
        if self
            .moderation
            .block(&self.identity.public(), &Scope::Community)
            .is_some()
        {
            return "you are blocked in this community, which ended your membership".into();
        }
        let why = match self.own_redemption_refusals().next() {
            None => "this device joined without an invitation (a plain invite code)",
            Some(RedemptionRefusal::UnknownInvitation) => {
                "your invitation has not reached this node yet"
            }
            Some(RedemptionRefusal::BeforeInvitation) => {
                "your redemption is dated before the invitation (check this device's clock)"
            }
            Some(RedemptionRefusal::Expired) => "your invitation had expired when you joined",
            Some(RedemptionRefusal::Withdrawn) => "your invitation was withdrawn before you joined",
            Some(RedemptionRefusal::Lockdown) => "a lockdown stopped new members when you joined",
            Some(RedemptionRefusal::UsedUp) => {
                "your invitation was used up by others who joined before you"
            }
        };
        format!(
            "you are not a member of this invite-only community: {why}. Ask a moderator for a \
             new invite code and join with it (`mutual community join CODE`, then restart your node)"
        )
    }

    /// Whether `author` is this node's own user holding a redemption whose
    /// invitation is not known here yet (a redemption of a known invitation
    /// that admits nobody, used up, expired or revoked, does not count).
    fn awaits_own_admission(&self, author: &PublicKey) -> bool {
        self.moderation
            .lineage()
            .same(author, &self.identity.public())
            && self
                .own_redemption_refusals()
                .any(|r| r == RedemptionRefusal::UnknownInvitation)
    }

    /// Why each redemption signed by this node's user (any of its keys)
    /// admits nobody.
    fn own_redemption_refusals(&self) -> impl Iterator<Item = RedemptionRefusal> + '_ {
        let me = self.identity.public();
        self.moderation
            .pending()
            .into_iter()
            .filter(move |a| self.moderation.lineage().same(&a.signer, &me))
            .filter_map(|a| self.moderation.redemption_refusal(a))
    }

    /// Enforces what one action changed of the membership.
    pub(crate) fn enforce_membership(&mut self, applied: &Applied) -> Result<(), StoreError> {
        for author in &applied.members_left {
            self.delete_non_member(author)?;
        }
        if !applied.members_joined.is_empty() || applied.manifest_changed {
            // Posts refused while their author was not a member (or
            // while the community was invite-only) come back from peers.
            self.effect(Effect::SyncWithAll);
        }
        if applied.members_changed || applied.manifest_changed {
            self.shared_stale = true;
        }
        Ok(())
    }

    /// Deletes the posts of every key of `author` dated when the
    /// community was invite-only.
    fn delete_non_member(&mut self, author: &PublicKey) -> Result<(), StoreError> {
        for key in self.moderation.lineage().keys_of(author) {
            let moderation = &self.moderation;
            let deleted = self
                .store
                .delete_author_posts_dated(&key, &Scope::Community, |at| {
                    moderation.invite_only_at(at)
                })?;
            self.removed_as_blocked(
                deleted,
                "deleted the posts of a key that is no longer a member",
            );
        }
        Ok(())
    }
}

/// A new invitation: its key's seed (for the code), its key, its expiry.
pub(crate) type Issued = ([u8; 32], PublicKey, u64);

impl Core {
    /// `mutual invite` in an invite-only community: signs an invitation
    /// (the admin's or a moderator's) with a fresh key and returns its
    /// seed for the code; `None` in an open community (a plain code is
    /// enough). Refused, with what to do, for anyone else.
    pub(crate) fn issue_invitation(
        &mut self,
        uses: u32,
        valid_for_ms: u64,
        now_ms: u64,
    ) -> Result<Option<Issued>, NodeError> {
        if self.moderation.policy().admission != Admission::InviteOnly {
            return Ok(None);
        }
        let me = self.identity.public();
        if !self.moderation.is_moderator(&me, u64::MAX) {
            return Err(NodeError::NotAllowed(
                "this community is invite-only: only the admin and moderators can invite; \
                 ask one of them (`mutual mod list` names them)"
                    .into(),
            ));
        }
        if valid_for_ms == 0 || valid_for_ms > crate::admission::MAX_INVITE_VALIDITY_MS {
            return Err(NodeError::BadInput(format!(
                "an invitation is valid for at most {} days",
                crate::admission::MAX_INVITE_VALIDITY_MS / protocol::membership::DAY_MS
            )));
        }
        let key = SecretKey::generate();
        let invitation = key.public();
        let expires_at = now_ms.saturating_add(valid_for_ms);
        self.moderate(
            ModActionKind::Invite {
                invitation,
                uses,
                expires_at,
            },
            now_ms,
        )?;
        Ok(Some((key.to_bytes(), invitation, expires_at)))
    }

    /// `mutual invite --revoke ID`: `text` is the invitation's key, full or
    /// as the short form printed (unique among the log's invitations).
    pub(crate) fn revoke_invitation(
        &mut self,
        text: &str,
        now_ms: u64,
    ) -> Result<ActionId, NodeError> {
        let text = text.trim().trim_end_matches('…');
        let invitations = self.moderation.invitations();
        let matches: Vec<PublicKey> = invitations
            .iter()
            .map(|i| i.invitation)
            .filter(|k| {
                k.to_string() == text
                    || (!text.is_empty() && k.short().starts_with(text))
                    || (text.len() > 4 && k.to_string().starts_with(text))
            })
            .collect();
        let invitation = match matches.as_slice() {
            [one] => *one,
            [] => {
                return Err(NodeError::BadInput(format!(
                    "no invitation {text} in the community log (`mutual invite --list` shows them)"
                )))
            }
            _ => {
                return Err(NodeError::BadInput(format!(
                    "{text} names more than one invitation: give more of its key"
                )))
            }
        };
        self.moderate(ModActionKind::RevokeInvite { invitation }, now_ms)
    }

    /// The invitations in the log, for moderators (who admitted whom is
    /// theirs to see in one place; see ARCHITECTURE.md's threat model).
    pub(crate) fn invitation_views(&self) -> Result<Vec<InvitationView>, NodeError> {
        if !self
            .moderation
            .is_moderator(&self.identity.public(), u64::MAX)
        {
            return Err(NodeError::NotAllowed(
                "the list of invitations is for the admin and moderators".into(),
            ));
        }
        Ok(self
            .moderation
            .invitations()
            .into_iter()
            .map(|i| InvitationView {
                invitation: i.invitation.to_string(),
                by: actor(&i.by, i.by_name.as_deref()),
                at: i.created_at,
                uses: i.uses,
                expires_at: i.expires_at,
                revoked_at: i.revoked_at,
                admitted: i.admitted.iter().map(|(k, _)| k.to_string()).collect(),
            })
            .collect())
    }

    /// `mutual community rules|policy`: the admin publishes the next
    /// version of the rules and the admission policy (what is `None` stays
    /// as it is). Returns the action's id and the new version.
    pub(crate) fn update_manifest(
        &mut self,
        rules: Option<String>,
        admission: Option<Admission>,
        probation_posts: Option<u32>,
        now_ms: u64,
    ) -> Result<(ActionId, u64), NodeError> {
        let current = self.moderation.manifest_update();
        let version = self
            .moderation
            .latest_manifest_version()
            .map_or(1, |v| v.saturating_add(1));
        let mut policy = self.moderation.policy();
        if let Some(a) = admission {
            policy.admission = a;
        }
        if let Some(p) = probation_posts {
            policy.probation_posts = p;
        }
        let rules = rules.unwrap_or_else(|| {
            current.map_or_else(|| self.manifest.content.rules.clone(), |u| u.rules.clone())
        });
        let id = self.moderate(
            ModActionKind::UpdateManifest {
                version,
                rules,
                policy,
            },
            now_ms,
        )?;
        Ok((id, version))
    }

    /// Does the admission work queued while no node ran
    /// ([`crate::admission`]); returns whether all of it is in the store.
    pub fn settle_admission(&mut self, work: &[AdmissionWork], now_ms: u64) -> bool {
        let mut done = true;
        for w in work {
            let result = match w {
                AdmissionWork::FirstManifest(policy) => self.first_manifest(*policy, now_ms),
                AdmissionWork::Redeem(seed) => self.redeem(seed, now_ms),
            };
            if let Err(e) = result {
                tracing::warn!("admission work left for the next start: {e}");
                done = false;
            }
        }
        done && self.store.flush().is_ok()
    }

    /// The admin's first manifest update, dated at the manifest's
    /// creation (rule 9: the policy of the community's whole past).
    fn first_manifest(
        &mut self,
        policy: protocol::CommunityPolicy,
        now_ms: u64,
    ) -> Result<(), NodeError> {
        let me = self.identity.public();
        if !self.moderation.is_admin(&me) || self.moderation.latest_manifest_version().is_some() {
            return Ok(());
        }
        let at = self.manifest.content.created_at;
        let seq = self.clock.next_seq(&self.store, at)?;
        let kind = ModActionKind::UpdateManifest {
            version: 1,
            rules: self.manifest.content.rules.clone(),
            policy,
        };
        let action = ModAction::create(&self.identity, self.community, seq, kind, at)?;
        self.publish_own_action(Message::Moderation(action), now_ms)
    }

    /// Signs and publishes this identity's redemption of the invitation
    /// with key seed `seed`, unless one is kept already.
    fn redeem(&mut self, seed: &[u8; 32], now_ms: u64) -> Result<(), NodeError> {
        let key = SecretKey::from_bytes(seed);
        let invitation = key.public();
        let me = self.identity.public();
        let redeemed = self.moderation.actions().any(|a| {
            a.signer == me
                && matches!(&a.kind, ModActionKind::Redeem { invitation: i, .. } if *i == invitation)
        });
        if redeemed {
            return Ok(());
        }
        // Dated after the invitation when it is known here (rule 8).
        let after = self
            .moderation
            .invitation(&invitation)
            .map(|i| i.created_at);
        let at = self.clock.next_time(&self.store, now_ms, after)?;
        let seq = self.clock.next_seq(&self.store, at)?;
        let invitation_signature =
            key.sign(&redemption_statement(&self.community, &invitation, &me));
        let kind = ModActionKind::Redeem {
            invitation,
            invitation_signature,
        };
        let action = ModAction::create(&self.identity, self.community, seq, kind, at)?;
        self.publish_own_action(Message::Moderation(action), now_ms)
    }

    /// Publishes this node's own action through the arrival path; one
    /// that does not count yet (a redemption whose invitation has not
    /// arrived) is stored and gossiped all the same, so that it travels
    /// by log sync and counts wherever the invitation is known.
    fn publish_own_action(&mut self, message: Message, now_ms: u64) -> Result<(), NodeError> {
        let verified = message.verify(&self.ctx(now_ms))?;
        let bytes = verified.to_message().encode();
        let key = match &verified {
            protocol::VerifiedMessage::Moderation(a) => ItemKey {
                created_at: a.created_at,
                id: a.id().0,
            },
            _ => return Err(NodeError::BadInput("not a moderation action".into())),
        };
        match self.arrive(verified, Origin::Local, now_ms) {
            Ok(_) => {}
            Err(Refusal::Store(e)) => return Err(e.into()),
            Err(Refusal::Moderation(why)) => {
                tracing::info!("own action kept until it counts: {why}");
                self.store.insert_log(key, &bytes)?;
            }
            Err(refusal) => return Err(NodeError::NotAllowed(refusal.to_string())),
        }
        self.effect(Effect::Gossip {
            channel: Channel::Community,
            bytes,
        });
        Ok(())
    }
}
