//! Whether the node is alone, and `connect`: dialling one address on the
//! user's request and telling them which peer answered, or why the dial
//! failed and what to do about it.

use std::io;
use std::time::Duration;

use libp2p::core::transport::TransportError;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId};

use crate::api::ConnectView;
use crate::error::NodeError;
use crate::handle::Reply;
use crate::network::EventLoop;

/// How long a `connect` waits for its answer. The swarm gives up on a dial
/// after its connection timeout (10 s, libp2p's default) and answers then;
/// this bound only guarantees an answer if that were ever lost.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The advice every "not reachable" message ends with.
const ASK_FOR_ADDRESS: &str =
    "ask the member for their current address (`mutual id` on their node shows it)";

/// A dial waiting for its outcome, to answer the user.
pub(crate) struct PendingConnect {
    address: String,
    reply: Reply<ConnectView>,
}

impl EventLoop {
    /// Connected peers subscribed to the community's gossip topic.
    pub(crate) fn community_peers(&self) -> usize {
        let community = self.community_topic.hash();
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&community))
            .count()
    }

    /// Dials `address` and answers `reply` once a connection is up (with
    /// the peer's id) or the dial failed (with what to do).
    pub(crate) fn connect(&mut self, address: String, reply: Reply<ConnectView>) {
        let ma: Multiaddr = match address.trim().parse() {
            Ok(ma) => ma,
            Err(e) => {
                let _ = reply.send(Err(NodeError::BadInput(format!(
                    "{address} is not a multiaddress ({e}); one looks like \
                     /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…, as `mutual id` prints it"
                ))));
                return;
            }
        };
        if self.peers.hidden() && !super::peers::is_relayed(&ma) {
            let _ = reply.send(Err(NodeError::BadInput(
                "this node hides its address (--hide-address), so it connects to members only \
                 through relays; give a relayed address (ending in /p2p-circuit/p2p/PEER_ID)"
                    .into(),
            )));
            return;
        }
        let named = match ma.iter().last() {
            Some(Protocol::P2p(peer)) => Some(peer),
            _ => None,
        };
        if let Some(peer) = named {
            if peer == *self.swarm.local_peer_id() {
                let _ = reply.send(Err(NodeError::BadInput(format!(
                    "{address} is this node's own address; connect to another member's"
                ))));
                return;
            }
            if self.swarm.is_connected(&peer) {
                let _ = reply.send(Ok(ConnectView {
                    peer_id: peer.to_string(),
                    address,
                    already_connected: true,
                }));
                return;
            }
        }
        // With the peer id, the swarm checks that whoever answers is that
        // peer: a stale address whose port another node took is caught.
        let opts = match named {
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![ma])
                .condition(PeerCondition::Always)
                .build(),
            None => DialOpts::unknown_peer_id().address(ma).build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_connects
                    .insert(id, PendingConnect { address, reply });
            }
            Err(e) => {
                let message = explain_dial_error(&address, &e);
                let _ = reply.send(Err(NodeError::Network(message)));
            }
        }
    }

    /// A connection came up: answers the `connect` that asked for it.
    pub(crate) fn connect_succeeded(&mut self, id: ConnectionId, peer: PeerId) {
        if let Some(p) = self.pending_connects.remove(&id) {
            let _ = p.reply.send(Ok(ConnectView {
                peer_id: peer.to_string(),
                address: p.address,
                already_connected: false,
            }));
        }
    }

    /// A dial failed: answers the `connect` that asked for it, if any.
    pub(crate) fn connect_failed(&mut self, id: ConnectionId, error: &DialError) {
        if let Some(p) = self.pending_connects.remove(&id) {
            let message = explain_dial_error(&p.address, error);
            let _ = p.reply.send(Err(NodeError::Network(message)));
        }
    }
}

/// Whether `error` or any error it wraps satisfies `test`. An `io::Error`
/// wrapping another error reports that error's cause as its `source`, not
/// the error itself, so the walk takes the inner error with `get_ref`.
fn any_cause(error: &io::Error, test: impl Fn(&(dyn std::error::Error + 'static)) -> bool) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if test(e) {
            return true;
        }
        next = match e.downcast_ref::<io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

/// Whether `error` or any error it wraps is an I/O error of `kind`, or
/// says so: some layers of the transport (`Either` of TCP and QUIC) show
/// their inner error only in their message, not as a `source`.
fn caused_by(error: &io::Error, kind: io::ErrorKind) -> bool {
    let words = io::Error::from(kind).to_string().to_lowercase();
    any_cause(error, |e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == kind)
            || e.to_string().to_lowercase().contains(&words)
    })
}

/// Whether the transport's own timeout ended the attempt.
fn timed_out(error: &io::Error) -> bool {
    caused_by(error, io::ErrorKind::TimedOut)
        || any_cause(error, |e| {
            e.to_string().contains("Timeout has been reached")
        })
}

/// One sentence a person can act on, for a failed dial of `address`.
pub(crate) fn explain_dial_error(address: &str, error: &DialError) -> String {
    match error {
        DialError::LocalPeerId { .. } => {
            format!("{address} is this node's own address; connect to another member's")
        }
        DialError::WrongPeerId { obtained, .. } => format!(
            "the node at {address} is {obtained}, not the peer the address names: \
             the address is out of date; {ASK_FOR_ADDRESS}"
        ),
        DialError::Denied { cause } => format!(
            "this node did not open the connection to {address}: {cause}; \
             it is at its connection limits, so try again in a minute"
        ),
        DialError::NoAddresses => format!(
            "{address} names no transport; give an address such as \
             /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…, as `mutual id` prints it"
        ),
        DialError::Aborted | DialError::DialPeerConditionFalse(_) => {
            format!("the dial of {address} was cancelled (is the node shutting down?); try again")
        }
        DialError::Transport(attempts) => {
            let Some((tried, first)) = attempts.first() else {
                return format!("could not connect to {address}; {ASK_FOR_ADDRESS}");
            };
            match first {
                TransportError::MultiaddrNotSupported(_) => format!(
                    "this node cannot dial {tried}: it dials /ip4, /ip6 or /dns addresses \
                     with /tcp/PORT or /udp/PORT/quic-v1"
                ),
                TransportError::Other(e) if caused_by(e, io::ErrorKind::ConnectionRefused) => {
                    format!(
                        "nothing accepts connections at {tried}: the node there is not \
                         running, or it listens on another port now; {ASK_FOR_ADDRESS}"
                    )
                }
                TransportError::Other(e) if timed_out(e) => format!(
                    "no answer from {tried} within 10 s: the address may be wrong, or a \
                     firewall or home router is in the way; {ASK_FOR_ADDRESS}, or connect \
                     to another member"
                ),
                TransportError::Other(e) => {
                    format!("could not connect to {tried} ({e}); {ASK_FOR_ADDRESS}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(e: io::Error) -> DialError {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().unwrap();
        DialError::Transport(vec![(addr, TransportError::Other(e))])
    }

    #[test]
    fn dial_errors_say_what_happened_and_what_to_do() {
        let a = "/ip4/127.0.0.1/tcp/9";
        let refused = transport(io::Error::other(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        let text = explain_dial_error(a, &refused);
        assert!(text.starts_with("nothing accepts connections at /ip4/127.0.0.1/tcp/9"));
        assert!(text.contains("`mutual id`"), "{text}");

        // Behind a layer that shows it only in its message.
        let wrapped = transport(io::Error::other("Connection refused (os error 111)"));
        assert!(explain_dial_error(a, &wrapped).starts_with("nothing accepts"));

        let slow = transport(io::Error::other("Timeout has been reached"));
        assert!(explain_dial_error(a, &slow).starts_with("no answer from"));

        let other = PeerId::random();
        let wrong = DialError::WrongPeerId {
            obtained: other,
            address: a.parse().unwrap(),
        };
        let text = explain_dial_error(a, &wrong);
        assert!(text.contains(&other.to_string()) && text.contains("out of date"));

        let unsupported = DialError::Transport(vec![(
            "/ip4/127.0.0.1/udp/9".parse().unwrap(),
            TransportError::MultiaddrNotSupported("/ip4/127.0.0.1/udp/9".parse().unwrap()),
        )]);
        assert!(explain_dial_error(a, &unsupported).contains("/udp/PORT/quic-v1"));
    }
}
