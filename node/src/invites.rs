//! Making and using invite codes (the format is `protocol::invite`):
//! which of a node's addresses go in a code, and joining a community from
//! a code by fetching its manifest from the inviter.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use protocol::invite::{Invite, InviteSecrets, SignedInvite, MAX_INVITE_ADDRS, MAX_INVITE_CHARS};
use protocol::{CommunityId, CommunitySecret, PublicKey, SecretKey, SignedManifest};

use crate::datadir::DataDir;
use crate::error::NodeError;
use crate::network::manifest_fetch::fetch_manifest;
use crate::network::EventLoop;
use crate::now_ms;

/// How long joining tries to reach the inviter before calling the invite
/// stale.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// The addresses worth putting in an invite, best first: confirmed
/// external addresses and relay circuits (reachable from elsewhere), then
/// the other listen addresses, and loopback ones only when there is
/// nothing else. Unspecified addresses (`0.0.0.0`) never; a trailing
/// `/p2p/<me>` is dropped (the invite names the peer once). A node that
/// hides its address (`circuits_only`) gives its relay circuits alone.
pub(crate) fn invite_addrs(
    external: &[Multiaddr],
    listen: &[Multiaddr],
    me: &PeerId,
    circuits_only: bool,
) -> Vec<Multiaddr> {
    let strip = |a: &Multiaddr| {
        let mut a = a.clone();
        if matches!(a.iter().last(), Some(Protocol::P2p(p)) if p == *me) {
            a.pop();
        }
        a
    };
    let unspecified = |a: &Multiaddr| {
        a.iter().any(|p| match p {
            Protocol::Ip4(ip) => ip.is_unspecified(),
            Protocol::Ip6(ip) => ip.is_unspecified(),
            _ => false,
        })
    };
    let loopback = |a: &Multiaddr| {
        a.iter().any(|p| match p {
            Protocol::Ip4(ip) => ip.is_loopback(),
            Protocol::Ip6(ip) => ip.is_loopback(),
            _ => false,
        })
    };
    let circuit = |a: &Multiaddr| a.iter().any(|p| matches!(p, Protocol::P2pCircuit));
    let all: Vec<Multiaddr> = external
        .iter()
        .chain(listen)
        .map(strip)
        .filter(|a| !a.is_empty() && !unspecified(a))
        .filter(|a| !circuits_only || circuit(a))
        .collect();
    let external: Vec<Multiaddr> = external.iter().map(strip).collect();
    let rank = |a: &Multiaddr| {
        if loopback(a) {
            3
        } else if external.contains(a) && !circuit(a) {
            0
        } else if circuit(a) {
            1
        } else {
            2
        }
    };
    let mut ranked: Vec<(u8, Multiaddr)> = Vec::new();
    for a in all {
        if !ranked.iter().any(|(_, b)| *b == a) {
            ranked.push((rank(&a), a));
        }
    }
    // Stable: the order within a rank is the node's.
    ranked.sort_by_key(|(r, _)| *r);
    let any_other = ranked.iter().any(|(r, _)| *r < 3);
    ranked
        .into_iter()
        .filter(|(r, _)| *r < 3 || !any_other)
        .map(|(_, a)| a)
        .collect()
}

/// Signs an invite with as many of `candidates` (best first) as fit in
/// [`MAX_INVITE_CHARS`]; an address that would make the code too long is
/// left out.
pub(crate) fn invite_code(
    community: CommunityId,
    secrets: &InviteSecrets,
    inviter: &SecretKey,
    me: &PeerId,
    candidates: &[Multiaddr],
    now_ms: u64,
) -> Result<String, NodeError> {
    let peer = Some(me.to_bytes());
    let mut chosen: Vec<Vec<u8>> = Vec::new();
    let mut code = None;
    for a in candidates {
        if chosen.len() == MAX_INVITE_ADDRS {
            break;
        }
        let mut trial = chosen.clone();
        trial.push(a.to_vec());
        let Ok(invite) = Invite::create(
            community,
            secrets.clone(),
            inviter,
            peer.clone(),
            trial.clone(),
            now_ms,
        ) else {
            continue;
        };
        let text = invite.encode();
        if text.len() <= MAX_INVITE_CHARS {
            chosen = trial;
            code = Some(text);
        }
    }
    code.ok_or_else(|| {
        NodeError::Network(
            "this node has no address others could reach it at, so it cannot make an invite; check `mutual status`".into(),
        )
    })
}

impl EventLoop {
    /// This node's invite code.
    pub(crate) fn invite_code(&self) -> Result<String, NodeError> {
        self.invite_code_with(None)
    }

    /// This node's invite code, carrying the seed of an invitation key
    /// for an admission to an invite-only community.
    pub(crate) fn invite_code_with(
        &self,
        admission: Option<[u8; 32]>,
    ) -> Result<String, NodeError> {
        let me = *self.swarm.local_peer_id();
        let external: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        let hidden = self.peers.hidden();
        let candidates = invite_addrs(&external, &self.listen_addrs, &me, hidden);
        if hidden && candidates.is_empty() {
            return Err(NodeError::Network(
                "this node hides its address and has no relay reservation yet, so an invite could not reach it; ask again once `mutual status` shows one".into(),
            ));
        }
        let secrets = InviteSecrets {
            community: self.secret.to_bytes(),
            admission,
        };
        invite_code(
            self.community,
            &secrets,
            &self.identity.secret,
            &me,
            &candidates,
            now_ms(),
        )
    }
}

/// The addresses to dial for an invite, each with `/p2p/<peer id>` when
/// the invite names the peer (addresses that do not parse are skipped:
/// the inviter signed them, so they are a newer node's, not a forgery).
pub fn dial_addrs(invite: &Invite) -> (Option<PeerId>, Vec<Multiaddr>) {
    let peer = invite
        .peer
        .as_ref()
        .and_then(|b| PeerId::from_bytes(b).ok());
    let addrs = invite
        .addrs
        .iter()
        .filter_map(|b| Multiaddr::try_from(b.clone()).ok())
        .map(|a| match peer {
            Some(p) => a.with(Protocol::P2p(p)),
            None => a,
        })
        .collect();
    (peer, addrs)
}

/// What joining by invite did.
#[derive(Clone, Debug)]
pub struct Joined {
    /// The community's manifest (as fetched and checked).
    pub manifest: SignedManifest,
    /// Who signed the invite.
    pub inviter: PublicKey,
    /// The addresses remembered to start from.
    pub bootstrap: Vec<String>,
    /// The newest rules and the topic directory as the inviter's node
    /// knows them (`None` when it did not say, or this directory already
    /// held the community).
    pub welcome: Option<crate::api::Welcome>,
}

/// `mutual community join CODE`: checks the code, fetches the community's
/// manifest from the inviter (at most `timeout`; proving membership with
/// the code's community secret first) and checks it against the code's id, and only then writes the community and the inviter's
/// addresses into `data`. Any failure writes nothing.
pub async fn join(data: &DataDir, code: &str, timeout: Duration) -> Result<Joined, NodeError> {
    data.identity()?;
    let invite = SignedInvite::decode(code, now_ms())?.content;
    let existing = data.community()?;
    if let Some(existing) = &existing {
        if existing.id() != invite.community {
            return Err(NodeError::CommunityExists(existing.content.name.clone()));
        }
    }
    let (peer, addrs) = dial_addrs(&invite);
    if addrs.is_empty() {
        return Err(NodeError::BadInput(
            "the invite holds no address this version of mutual can use: upgrade mutual, or ask for a fresh invite".into(),
        ));
    }
    let secret = CommunitySecret::from_bytes(invite.secrets.community);
    let (manifest, welcome) = match existing {
        Some(m) => (m, None),
        None => {
            let key = data.transport_key()?;
            fetch_manifest(key, invite.community, &secret, peer, &addrs, timeout).await?
        }
    };
    let bootstrap: Vec<String> = addrs.iter().map(Multiaddr::to_string).collect();
    // The redemption is signed by the node at its next start (it needs the
    // store); queued before the manifest is written, so a finished join
    // always has it.
    if let Some(seed) = invite.secrets.admission {
        crate::admission::queue(data, crate::admission::AdmissionWork::Redeem(seed))?;
    }
    data.join_community(&manifest, &secret, &bootstrap, now_ms())?;
    Ok(Joined {
        manifest,
        inviter: invite.inviter,
        bootstrap,
        welcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    fn strings(v: &[Multiaddr]) -> Vec<String> {
        v.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn reachable_addresses_come_first_and_loopback_only_alone() {
        let me = PeerId::random();
        let relay = PeerId::random();
        let circuit = ma(&format!(
            "/ip4/198.51.100.1/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{me}"
        ));
        let listen = vec![
            ma("/ip4/0.0.0.0/tcp/4001"),
            ma("/ip4/127.0.0.1/tcp/4001"),
            ma("/ip4/192.168.1.20/tcp/4001"),
            ma("/ip4/192.168.1.20/udp/4001/quic-v1"),
            circuit.clone(),
        ];
        let external = vec![ma(&format!("/ip4/203.0.113.7/tcp/4001/p2p/{me}"))];
        let got = invite_addrs(&external, &listen, &me, false);
        assert_eq!(
            strings(&got),
            vec![
                "/ip4/203.0.113.7/tcp/4001".to_string(),
                format!("/ip4/198.51.100.1/tcp/4001/p2p/{relay}/p2p-circuit"),
                "/ip4/192.168.1.20/tcp/4001".into(),
                "/ip4/192.168.1.20/udp/4001/quic-v1".into(),
            ]
        );
        // Loopback when that is all there is; never 0.0.0.0.
        let only_local = vec![
            ma("/ip4/0.0.0.0/tcp/1"),
            ma("/ip4/127.0.0.1/tcp/1"),
            ma("/ip6/::1/tcp/1"),
        ];
        assert_eq!(
            strings(&invite_addrs(&[], &only_local, &me, false)),
            vec!["/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/1"]
        );
        // A node hiding its address gives its relay circuits only.
        assert_eq!(
            strings(&invite_addrs(&external, &listen, &me, true)),
            vec![format!(
                "/ip4/198.51.100.1/tcp/4001/p2p/{relay}/p2p-circuit"
            )]
        );
        // The same address twice is listed once.
        let twice = vec![ma("/ip4/10.0.0.2/tcp/1"), ma("/ip4/10.0.0.2/tcp/1")];
        assert_eq!(invite_addrs(&twice, &twice, &me, false).len(), 1);
    }

    /// Both secrets, as an invite-only community's admission carries.
    fn full_secrets() -> InviteSecrets {
        InviteSecrets {
            community: [3; 32],
            admission: Some([4; 32]),
        }
    }

    #[test]
    fn the_code_stays_short_and_names_the_peer_once() {
        let me = PeerId::random();
        let key = SecretKey::generate();
        let community = CommunityId::from([7; 32]);
        let relay = PeerId::random();
        let mut candidates = vec![
            ma("/ip4/203.0.113.7/tcp/4001"),
            ma("/ip4/203.0.113.7/udp/4001/quic-v1"),
            ma(&format!(
                "/ip4/198.51.100.1/tcp/4001/p2p/{relay}/p2p-circuit"
            )),
        ];
        let code = invite_code(community, &full_secrets(), &key, &me, &candidates, 10).unwrap();
        assert!(code.len() <= MAX_INVITE_CHARS, "{} chars", code.len());
        let invite = SignedInvite::decode(&code, 10).unwrap().content;
        assert_eq!(invite.addrs.len(), 3, "all three fit");
        let (peer, addrs) = dial_addrs(&invite);
        assert_eq!(peer, Some(me));
        assert_eq!(
            addrs[2].to_string(),
            format!("/ip4/198.51.100.1/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{me}")
        );
        // Many long addresses: the code keeps to the budget, best first.
        for i in 0..20 {
            candidates.push(ma(&format!(
                "/ip6/2001:db8::{i}/udp/4001/quic-v1/p2p/{}/p2p-circuit",
                PeerId::random()
            )));
        }
        let code = invite_code(community, &full_secrets(), &key, &me, &candidates, 10).unwrap();
        assert!(code.len() <= MAX_INVITE_CHARS, "{} chars", code.len());
        let invite = SignedInvite::decode(&code, 10).unwrap().content;
        assert_eq!(invite.addrs.first(), Some(&candidates[0].to_vec()));
        assert!(invite_code(community, &full_secrets(), &key, &me, &[], 10).is_err());
    }
}
