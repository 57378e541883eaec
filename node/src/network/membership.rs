//! `/mutual/member/1`: on every connection each side proves that it holds
//! the community secret before the other serves it anything.
//!
//! As soon as a peer connects, each side sends it one request: its proof,
//! `MAC(proof key, "mutual member proof" || prover peer id || verifier peer
//! id)` ([`protocol::CommunitySecret::membership_proof`]). The transport
//! (noise) authenticated both peer ids, so a proof is worth nothing on any
//! other connection; it names no author key, so proving membership never
//! links a member's identity to their peer id or IP address. The answer is
//! one byte: accepted or not.
//!
//! A peer is a *member* once its proof checked out; it is *ready* once, in
//! addition, it accepted this node's proof. Sync requests are answered for
//! members only, and this node starts sync, takes the peer's addresses into
//! its address book and DHT routing, and takes it as a relay only once it
//! is ready (so a sync request is never sent to a peer that would still
//! refuse it). A peer whose proof is wrong or who refuses this node's is
//! disconnected and forgotten at once; one not ready within
//! [`PROOF_DEADLINE`] (one that does not speak the protocol, such as a
//! joining node fetching the manifest, whose request carries its own
//! proof) when the deadline passes.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::request_response::{self, ProtocolSupport};
use libp2p::{identify, PeerId, StreamProtocol};

use crate::codec::FrameCodec;
use crate::network::EventLoop;

/// The protocol name of the membership proof.
pub(crate) const MEMBER_PROTOCOL: StreamProtocol = StreamProtocol::new("/mutual/member/1");
/// A peer not proven within this time after connecting is disconnected: a
/// proof takes one round trip, so this is slack for a loaded machine or a
/// slow relayed path, and short enough that a stranger holds a connection
/// for a few seconds at most.
pub(crate) const PROOF_DEADLINE: Duration = Duration::from_secs(10);
/// The answer "your proof checked out".
const ACCEPTED: &[u8] = &[1];
/// The answer "it did not".
const REFUSED: &[u8] = &[0];

/// A proof deadline: resolves to the peer and its connection spell.
pub(crate) type Deadline =
    std::pin::Pin<Box<dyn std::future::Future<Output = (PeerId, u64)> + Send>>;

/// The behaviour that carries the proofs.
pub(crate) fn behaviour() -> request_response::Behaviour<FrameCodec> {
    request_response::Behaviour::with_codec(
        FrameCodec,
        [(MEMBER_PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(PROOF_DEADLINE),
    )
}

/// Where one connected peer stands.
#[derive(Default)]
struct PeerState {
    /// Its proof checked out.
    member: bool,
    /// It accepted this node's proof.
    accepted: bool,
    /// Which connection spell this is (a deadline of an earlier one is
    /// ignored).
    spell: u64,
    /// What it said about itself, kept until it is ready.
    identify: Option<identify::Info>,
}

/// The membership state of the connected peers (no I/O: the event loop
/// feeds it and acts on its answers).
#[derive(Default)]
pub(crate) struct Gate {
    peers: HashMap<PeerId, PeerState>,
    spells: u64,
}

impl Gate {
    /// A peer connected (its first connection): returns the spell its
    /// deadline belongs to.
    pub(crate) fn connected(&mut self, peer: PeerId) -> u64 {
        self.spells += 1;
        self.peers.insert(
            peer,
            PeerState {
                spell: self.spells,
                ..PeerState::default()
            },
        );
        self.spells
    }

    /// Its last connection closed.
    pub(crate) fn closed(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// Whether `peer` proved membership (sync requests are answered).
    pub(crate) fn is_member(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|s| s.member)
    }

    /// Whether `peer` proved membership and accepted this node's proof.
    pub(crate) fn is_ready(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|s| s.member && s.accepted)
    }

    /// Whether the deadline of `spell` finds `peer` still not ready.
    fn overdue(&self, peer: &PeerId, spell: u64) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|s| s.spell == spell && !(s.member && s.accepted))
    }

    /// Records a checked proof; true if the peer just became ready.
    fn proved(&mut self, peer: &PeerId) -> bool {
        self.peers.get_mut(peer).is_some_and(|s| {
            let was = s.member && s.accepted;
            s.member = true;
            !was && s.accepted
        })
    }

    /// Records that the peer accepted this node's proof; true if it just
    /// became ready.
    fn accepted(&mut self, peer: &PeerId) -> bool {
        self.peers.get_mut(peer).is_some_and(|s| {
            let was = s.member && s.accepted;
            s.accepted = true;
            !was && s.member
        })
    }

    /// Keeps what a peer not yet ready said about itself; hands it back
    /// when it is ready.
    pub(crate) fn hold_identify(
        &mut self,
        peer: &PeerId,
        info: identify::Info,
    ) -> Option<identify::Info> {
        match self.peers.get_mut(peer) {
            Some(s) if s.member && s.accepted => Some(info),
            Some(s) => {
                s.identify = Some(info);
                None
            }
            None => None,
        }
    }

    fn take_identify(&mut self, peer: &PeerId) -> Option<identify::Info> {
        self.peers.get_mut(peer).and_then(|s| s.identify.take())
    }
}

impl EventLoop {
    /// A peer's first connection is up: sends it this node's proof and
    /// starts its deadline.
    pub(crate) fn start_proof(&mut self, peer: PeerId) {
        let spell = self.gate.connected(peer);
        self.send_proof(peer);
        self.proof_deadlines.push(Box::pin(async move {
            tokio::time::sleep(PROOF_DEADLINE).await;
            (peer, spell)
        }));
    }

    fn send_proof(&mut self, peer: PeerId) {
        #[cfg(feature = "test-hooks")]
        if self.config.withhold_membership_proof {
            return;
        }
        let me = self.swarm.local_peer_id().to_bytes();
        let proof = self
            .secret
            .membership_proof(&self.community, &me, &peer.to_bytes());
        self.swarm
            .behaviour_mut()
            .member
            .send_request(&peer, proof.to_vec());
    }

    /// Whether `proof` is `peer`'s proof of membership for this node.
    pub(crate) fn proof_checks(&self, peer: &PeerId, proof: &[u8]) -> bool {
        let me = self.swarm.local_peer_id().to_bytes();
        self.secret
            .verify_membership_proof(&self.community, &peer.to_bytes(), &me, proof)
    }

    /// A proof deadline passed.
    pub(crate) fn proof_deadline(&mut self, peer: PeerId, spell: u64) {
        #[cfg(feature = "test-hooks")]
        if self.config.ignore_membership_proofs {
            return;
        }
        if self.gate.overdue(&peer, spell) {
            self.refuse_peer(peer, "did not prove membership in time");
        }
    }

    /// Proofs and answers from the network.
    pub(crate) fn on_member_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        #[cfg(feature = "test-hooks")]
        if self.config.ignore_membership_proofs {
            return;
        }
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let ok = self.proof_checks(&peer, &request);
                    let answer = if ok { ACCEPTED } else { REFUSED };
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .member
                        .send_response(channel, answer.to_vec());
                    if !ok {
                        self.refuse_peer(peer, "its membership proof is wrong");
                    } else if self.gate.proved(&peer) {
                        self.peer_ready(peer);
                    }
                }
                request_response::Message::Response { response, .. } => {
                    if response.as_slice() != ACCEPTED {
                        self.refuse_peer(peer, "it refused this node's membership proof");
                    } else if self.gate.accepted(&peer) {
                        self.peer_ready(peer);
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                match error {
                    // A joining node's temporary swarm speaks only the
                    // manifest fetch (whose request carries its proof):
                    // the deadline ends the connection, not this.
                    // The connection it went on closed: another may still
                    // be up (the deadline ends it otherwise).
                    request_response::OutboundFailure::ConnectionClosed
                        if self.swarm.is_connected(&peer) =>
                    {
                        self.send_proof(peer)
                    }
                    _ => tracing::debug!(%peer, "membership proof not delivered: {error}"),
                }
            }
            _ => {}
        }
    }

    /// Both proofs checked out: the peer is a member this node talks to.
    fn peer_ready(&mut self, peer: PeerId) {
        tracing::debug!(%peer, "peer proved membership");
        if let Some(info) = self.gate.take_identify(&peer) {
            self.on_identified(peer, info);
        }
        self.start_sync_with(peer);
    }

    /// Disconnects a peer that is not (or not shown to be) a member, and
    /// forgets it: not in the address book, not in the DHT routing table.
    /// No ban: it may be an honest node of another community.
    pub(crate) fn refuse_peer(&mut self, peer: PeerId, why: &str) {
        if !self.swarm.is_connected(&peer) {
            return;
        }
        tracing::info!(%peer, "closing the connection to a non-member: {why}");
        let _ = self.swarm.disconnect_peer_id(peer);
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
        let forget = self.peers.forget(&peer);
        self.apply_peer_actions(forget);
        #[cfg(feature = "test-hooks")]
        self.emit(crate::handle::NodeEvent::PeerRefused {
            peer: peer.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_ready_only_when_both_proofs_checked_out_in_its_spell() {
        let mut gate = Gate::default();
        let p = PeerId::random();
        let spell = gate.connected(p);
        assert!(!gate.is_member(&p) && !gate.is_ready(&p));
        assert!(!gate.accepted(&p), "our proof accepted: not ready yet");
        assert!(!gate.is_member(&p), "its own proof is still missing");
        assert!(gate.overdue(&p, spell));
        assert!(gate.proved(&p), "now ready");
        assert!(gate.is_member(&p) && gate.is_ready(&p));
        assert!(!gate.proved(&p), "ready once");
        assert!(!gate.overdue(&p, spell));
        // A reconnection starts over; the old deadline no longer applies.
        gate.closed(&p);
        assert!(!gate.is_member(&p));
        let again = gate.connected(p);
        assert!(!gate.overdue(&p, spell));
        assert!(gate.overdue(&p, again));
        // The other order: its proof first.
        assert!(!gate.proved(&p));
        assert!(gate.is_member(&p) && !gate.is_ready(&p));
        assert!(gate.accepted(&p));
    }
}
