//! `/mutual/manifest/1`: a node hands out its community's signed manifest,
//! so that an invite can name the community by id alone (a few dozen
//! bytes) instead of carrying rules of up to 16 KiB.
//!
//! The request is the wanted community id and the joining node's
//! membership proof for this connection (made with the community secret
//! from the invite code, [`protocol::CommunitySecret::membership_proof`]:
//! a newcomer proves membership before it is told anything, like every
//! other peer); the answer is the node's manifest if it belongs to that
//! community and the proof checks out, nothing otherwise, both through
//! the wire module and in [`FrameCodec`] frames. The joining node believes
//! nothing it is told: the manifest must hash to the id in the invite,
//! which the inviter signed, and carry its admin's valid signature.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{dial_opts::DialOpts, ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{identity::Keypair, noise, relay, tcp, yamux, Multiaddr, PeerId, StreamProtocol};
use protocol::community::MAX_MANIFEST_BYTES;
use protocol::{wire, CommunityId, CommunitySecret, SignedManifest};

use crate::api::Welcome;
use crate::codec::FrameCodec;
use crate::error::NodeError;
use crate::network::EventLoop;
use crate::now_ms;

/// The protocol name of the manifest fetch.
pub(crate) const MANIFEST_PROTOCOL: StreamProtocol = StreamProtocol::new("/mutual/manifest/1");
/// Largest request: a version byte, a community id and a proof.
const MAX_REQUEST_BYTES: usize = 96;
/// Largest answer: a manifest at its limits and the encoding's overhead.
const MAX_ANSWER_BYTES: usize = MAX_MANIFEST_BYTES + 64;
/// How long one request may take once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The behaviour a running node serves the manifest with (never asks).
pub(crate) fn serving_behaviour() -> request_response::Behaviour<FrameCodec> {
    joining_behaviour(MANIFEST_PROTOCOL, ProtocolSupport::Inbound)
}

/// A request-response behaviour of the joining protocols (the manifest's
/// and the welcome's): one side of `protocol`, with their timeout.
pub(crate) fn joining_behaviour(
    protocol: StreamProtocol,
    support: ProtocolSupport,
) -> request_response::Behaviour<FrameCodec> {
    request_response::Behaviour::with_codec(
        FrameCodec,
        [(protocol, support)],
        request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
    )
}

/// A request: the wanted community and the asker's membership proof.
type ManifestRequest = (CommunityId, [u8; 32]);

/// Whether a request of the joining protocols asks for `community` with
/// a membership proof that `proof_checks` accepts (a malformed one does
/// not).
pub(crate) fn asks_with_proof(
    request: &[u8],
    community: CommunityId,
    proof_checks: impl FnOnce(&[u8]) -> bool,
) -> bool {
    wire::decode_versioned::<ManifestRequest>(request, MAX_REQUEST_BYTES)
        .is_ok_and(|(id, proof)| id == community && proof_checks(&proof))
}

/// The answer to a request: this node's manifest when it is the wanted
/// community's and `proof_checks` accepts the request's proof, nothing
/// otherwise (also to a malformed request).
fn answer(
    request: &[u8],
    manifest: &SignedManifest,
    community: CommunityId,
    proof_checks: impl FnOnce(&[u8]) -> bool,
) -> Vec<u8> {
    let mine = asks_with_proof(request, community, proof_checks).then_some(manifest);
    wire::encode_versioned(&mine)
}

/// An inbound request of a request-response event (the manifest's and
/// the welcome's), with who asked and where the answer goes.
pub(crate) fn inbound_request(
    event: request_response::Event<Vec<u8>, Vec<u8>>,
) -> Option<(PeerId, Vec<u8>, request_response::ResponseChannel<Vec<u8>>)> {
    match event {
        request_response::Event::Message {
            peer,
            message:
                request_response::Message::Request {
                    request, channel, ..
                },
            ..
        } => Some((peer, request, channel)),
        _ => None,
    }
}

impl EventLoop {
    /// Answers manifest requests from the network.
    pub(crate) fn on_manifest_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        if let Some((peer, request, channel)) = inbound_request(event) {
            tracing::debug!(%peer, "manifest request");
            let bytes = answer(&request, &self.manifest, self.community, |proof| {
                self.proof_checks(&peer, proof)
            });
            let _ = self
                .swarm
                .behaviour_mut()
                .manifest
                .send_response(channel, bytes);
        }
    }
}

/// The temporary swarm of a joining node: a relay client (an invite may
/// name a relay circuit) and the asking side of the protocol.
#[derive(NetworkBehaviour)]
struct Fetcher {
    relay: relay::client::Behaviour,
    manifest: request_response::Behaviour<FrameCodec>,
    welcome: request_response::Behaviour<FrameCodec>,
}

/// What one fetch learnt while it ran.
#[derive(Default)]
struct Progress {
    dials: HashSet<ConnectionId>,
    requests: HashSet<OutboundRequestId>,
    /// Welcome requests in flight ([`super::welcome`]).
    welcomes: HashSet<OutboundRequestId>,
    asked: HashSet<PeerId>,
    /// The checked manifest, once a peer gave it.
    manifest: Option<SignedManifest>,
    /// The first welcome a peer gave.
    welcome: Option<Welcome>,
    /// The last refusal: a peer that answered, but not with the invite's
    /// community.
    refused: Option<NodeError>,
    /// The last reason a dial failed.
    dial_error: Option<String>,
}

/// Fetches the manifest of `community` from the inviting node at `addrs`
/// (which end with `/p2p/<peer id>` when the invite names the peer), with
/// a temporary swarm under `key`, for at most `timeout`. Returns it only
/// when its hash is `community` and its admin's signature is valid, with
/// the welcome ([`super::welcome`]) when the inviter's node gave one.
pub async fn fetch_manifest(
    key: Keypair,
    community: CommunityId,
    secret: &CommunitySecret,
    peer: Option<PeerId>,
    addrs: &[Multiaddr],
    timeout: Duration,
) -> Result<(SignedManifest, Option<Welcome>), NodeError> {
    let net = |e: &dyn std::fmt::Display| NodeError::Network(e.to_string());
    let me = key.public().to_peer_id().to_bytes();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| net(&e))?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| net(&e))?
        .with_behaviour(|_, relay| Fetcher {
            relay,
            manifest: joining_behaviour(MANIFEST_PROTOCOL, ProtocolSupport::Outbound),
            welcome: joining_behaviour(super::welcome::WELCOME_PROTOCOL, ProtocolSupport::Outbound),
        })
        .map_err(|e| net(&e))?
        .build();

    let mut progress = Progress::default();
    let dials: Vec<DialOpts> = match peer {
        Some(peer) => vec![DialOpts::peer_id(peer).addresses(addrs.to_vec()).build()],
        None => addrs
            .iter()
            .map(|a| DialOpts::unknown_peer_id().address(a.clone()).build())
            .collect(),
    };
    for opts in dials {
        let id = opts.connection_id();
        match swarm.dial(opts) {
            Ok(()) => {
                progress.dials.insert(id);
            }
            Err(e) => progress.dial_error = Some(e.to_string()),
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let waiting = !(progress.dials.is_empty() && progress.requests.is_empty());
        if progress.manifest.is_some() && progress.welcomes.is_empty()
            || progress.manifest.is_none() && !waiting
        {
            break;
        }
        let Ok(event) = tokio::time::timeout_at(deadline, swarm.select_next_some()).await else {
            break;
        };
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } => {
                progress.dials.remove(&connection_id);
                if progress.asked.insert(peer_id) {
                    let proof = secret.membership_proof(&community, &me, &peer_id.to_bytes());
                    let request = wire::encode_versioned(&(community, proof));
                    let id = swarm
                        .behaviour_mut()
                        .manifest
                        .send_request(&peer_id, request.clone());
                    progress.requests.insert(id);
                    let id = swarm
                        .behaviour_mut()
                        .welcome
                        .send_request(&peer_id, request);
                    progress.welcomes.insert(id);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                progress.dials.remove(&connection_id);
                progress.dial_error = Some(error.to_string());
            }
            SwarmEvent::Behaviour(FetcherEvent::Manifest(event)) => match event {
                request_response::Event::Message {
                    peer,
                    message:
                        request_response::Message::Response {
                            request_id,
                            response,
                        },
                    ..
                } => {
                    progress.requests.remove(&request_id);
                    match check_answer(&response, community) {
                        Ok(manifest) => {
                            progress.manifest.get_or_insert(manifest);
                        }
                        Err(e) => {
                            tracing::debug!(%peer, "manifest refused: {e}");
                            progress.refused = Some(e);
                        }
                    }
                }
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                } => {
                    progress.requests.remove(&request_id);
                    progress.dial_error = Some(error.to_string());
                }
                _ => {}
            },
            SwarmEvent::Behaviour(FetcherEvent::Welcome(event)) => match event {
                request_response::Event::Message {
                    message:
                        request_response::Message::Response {
                            request_id,
                            response,
                        },
                    ..
                } => {
                    progress.welcomes.remove(&request_id);
                    if progress.welcome.is_none() {
                        progress.welcome = super::welcome::read_answer(&response);
                    }
                }
                // A node of an earlier version does not speak it.
                request_response::Event::OutboundFailure { request_id, .. } => {
                    progress.welcomes.remove(&request_id);
                }
                _ => {}
            },
            _ => {}
        }
    }
    if let Some(manifest) = progress.manifest {
        return Ok((manifest, progress.welcome));
    }
    if let Some(refused) = progress.refused {
        return Err(refused);
    }
    if let Some(e) = &progress.dial_error {
        tracing::debug!("manifest fetch: last failure: {e}");
    }
    let timed_out = !(progress.dials.is_empty() && progress.requests.is_empty());
    Err(NodeError::InviterUnreachable(format!(
        "none of the invite's {} addresses answered{}",
        addrs.len(),
        if timed_out {
            format!(" within {} s", timeout.as_secs())
        } else {
            String::new()
        }
    )))
}

/// Checks an answer against the invite's community id.
fn check_answer(response: &[u8], community: CommunityId) -> Result<SignedManifest, NodeError> {
    let answer: Option<SignedManifest> = wire::decode_versioned(response, MAX_ANSWER_BYTES)
        .map_err(|e| NodeError::ManifestMismatch(format!("its answer did not decode: {e}")))?;
    let manifest = answer.ok_or_else(|| {
        NodeError::ManifestMismatch(
            "it belongs to another community, or does not take the invite's community secret \
             (ask for a fresh invite)"
                .into(),
        )
    })?;
    let id = manifest
        .verify_manifest(now_ms())
        .map_err(|e| NodeError::ManifestMismatch(format!("its manifest is invalid: {e}")))?;
    if id != community {
        return Err(NodeError::ManifestMismatch(format!(
            "it sent community {}, the invite names {}",
            id.short(),
            community.short()
        )));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{CommunityManifest, SecretKey};

    #[test]
    fn answers_only_for_its_own_community_and_the_joiner_checks_the_id() {
        let admin = SecretKey::generate();
        let m = CommunityManifest::create("Circle", "Be kind", &admin, 5).unwrap();
        let other = CommunityManifest::create("Other", "", &admin, 5).unwrap();
        let proof = [9u8; 32];
        let good = |p: &[u8]| p == [9u8; 32];
        let ask = |id: CommunityId, proof: [u8; 32]| {
            answer(&wire::encode_versioned(&(id, proof)), &m, m.id(), good)
        };
        assert_eq!(check_answer(&ask(m.id(), proof), m.id()).unwrap(), m);
        assert!(matches!(
            check_answer(&ask(other.id(), proof), other.id()),
            Err(NodeError::ManifestMismatch(_))
        ));
        // Without a valid membership proof: nothing.
        assert!(matches!(
            check_answer(&ask(m.id(), [8; 32]), m.id()),
            Err(NodeError::ManifestMismatch(_))
        ));
        // The request of an earlier version (the id alone): nothing.
        let bare = answer(&wire::encode_versioned(&m.id()), &m, m.id(), |_| true);
        assert!(check_answer(&bare, m.id()).is_err());
        assert!(matches!(
            check_answer(&answer(b"junk", &m, m.id(), good), m.id()),
            Err(NodeError::ManifestMismatch(_))
        ));
        // A node that answers with another community's manifest is caught.
        let forged = wire::encode_versioned(&Some(&other));
        let err = check_answer(&forged, m.id()).unwrap_err();
        assert!(err.to_string().contains("the invite names"), "{err}");
        // And one whose manifest was edited.
        let mut edited = m.clone();
        edited.content.rules = "Anything goes".into();
        let err = check_answer(&wire::encode_versioned(&Some(&edited)), m.id()).unwrap_err();
        assert!(err.to_string().contains("invalid"), "{err}");
    }
}
