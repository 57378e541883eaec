//! `/mutual/welcome/1`: what a newcomer is shown at `community join`,
//! before their node has synced anything: the admin's newest rules (when
//! an update replaced the manifest's) and the moderators' topic directory,
//! as the inviting node knows them.
//!
//! Asked beside the manifest ([`super::manifest_fetch`]) with the same
//! membership proof, answered only when it checks. It is shown, never
//! stored: the node takes the real, signed rules and directory from the
//! community log by sync once it runs. A separate protocol, so a node of
//! an earlier version still hands out its manifest (the newcomer then
//! shows the manifest's rules alone).

use libp2p::request_response::{self, ProtocolSupport};
use libp2p::StreamProtocol;
use protocol::wire;

use crate::api::Welcome;
use crate::codec::FrameCodec;
use crate::network::EventLoop;

/// The protocol name of the welcome.
pub(crate) const WELCOME_PROTOCOL: StreamProtocol = StreamProtocol::new("/mutual/welcome/1");
/// Most directory entries one welcome lists (the newcomer sees the rest
/// with `mutual topics --all` once synced).
pub(crate) const MAX_WELCOME_TOPICS: usize = 200;
/// Largest answer: rules at their limit and a full directory of the
/// longest names and descriptions (a test checks it holds them).
pub(crate) const MAX_ANSWER_BYTES: usize = 128 * 1024;

/// The behaviour a running node serves the welcome with (the joining
/// node's swarm asks with the other side, `manifest_fetch`).
pub(crate) fn serving_behaviour() -> request_response::Behaviour<FrameCodec> {
    super::manifest_fetch::joining_behaviour(WELCOME_PROTOCOL, ProtocolSupport::Inbound)
}

/// Reads an answer; `None` for a refusal or anything malformed (the
/// welcome is a courtesy: its absence never fails a join).
pub(crate) fn read_answer(response: &[u8]) -> Option<Welcome> {
    wire::decode_versioned::<Option<Welcome>>(response, MAX_ANSWER_BYTES)
        .ok()
        .flatten()
}

impl EventLoop {
    /// Answers welcome requests: the welcome when the request's community
    /// is this node's and its membership proof checks, nothing otherwise.
    pub(crate) fn on_welcome_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        if let Some((peer, request, channel)) = super::manifest_fetch::inbound_request(event) {
            let proven = super::manifest_fetch::asks_with_proof(&request, self.community, |p| {
                self.proof_checks(&peer, p)
            });
            let welcome = proven
                .then(|| {
                    self.responder
                        .welcome(&super::peer_ref(&peer), MAX_WELCOME_TOPICS)
                })
                .flatten();
            let _ = self
                .swarm
                .behaviour_mut()
                .welcome
                .send_response(channel, wire::encode_versioned(&welcome));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::moderation::MAX_TOPIC_DESCRIPTION_BYTES;

    #[test]
    fn the_largest_welcome_fits_its_limit_and_junk_reads_as_none() {
        let name = "\u{1F600}".repeat(protocol::topic::MAX_TOPIC_CHARS);
        let welcome = Welcome {
            rules: Some((u64::MAX, "r".repeat(protocol::MAX_RULES_BYTES))),
            directory: vec![(name, "d".repeat(MAX_TOPIC_DESCRIPTION_BYTES)); MAX_WELCOME_TOPICS],
        };
        let bytes = wire::encode_versioned(&Some(&welcome));
        assert!(bytes.len() <= MAX_ANSWER_BYTES, "{} bytes", bytes.len());
        assert_eq!(read_answer(&bytes), Some(welcome));
        assert_eq!(read_answer(&wire::encode_versioned(&None::<Welcome>)), None);
        assert_eq!(read_answer(b"junk"), None);
    }
}
