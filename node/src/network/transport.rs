//! The node's transports: TCP (noise, yamux) and QUIC, with a dial timeout,
//! and for a node that hides its address, a fence that refuses every
//! direct dial except to the relays it chose. The fence is in the transport
//! rather than in a behaviour because any behaviour (the DHT, a request
//! that finds no connection) may ask the swarm to dial, and a single direct
//! dial would show the member's address to another member.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{
    Boxed, DialOpts, ListenerId, OrTransport, TransportError, TransportEvent,
};
use libp2p::core::upgrade::Version;
use libp2p::core::Transport;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{noise, quic, tcp, yamux, Multiaddr, PeerId};

/// A dial (connect and handshake) that takes longer gives up (libp2p's
/// default for its own TCP builder); an address behind a firewall that
/// drops packets would otherwise hold a dial slot for minutes.
pub(crate) const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The type every transport of the node is boxed to.
pub(crate) type NodeTransport = Boxed<(PeerId, StreamMuxerBox)>;

/// TCP and QUIC; with `only_to`, dials anywhere else are refused and
/// nothing is listened on (see [`OnlyTo`]).
pub(crate) fn build(
    key: &Keypair,
    only_to: Option<Vec<Multiaddr>>,
) -> Result<NodeTransport, noise::Error> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .timeout(DIAL_TIMEOUT)
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let quic = quic::tokio::Transport::new(quic::Config::new(key))
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let both = OrTransport::new(quic, tcp).map(|either, _| either.into_inner());
    Ok(match only_to {
        None => both.boxed(),
        Some(allowed) => OnlyTo {
            inner: both.boxed(),
            allowed: allowed.iter().map(host_port).collect(),
        }
        .boxed(),
    })
}

/// The host and port part of an address (`/ip4/…/tcp/…`), which is what a
/// direct dial reveals itself to.
fn host_port(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .take_while(|p| {
            matches!(
                p,
                Protocol::Ip4(_)
                    | Protocol::Ip6(_)
                    | Protocol::Dns(_)
                    | Protocol::Dns4(_)
                    | Protocol::Dns6(_)
                    | Protocol::Tcp(_)
                    | Protocol::Udp(_)
            )
        })
        .collect()
}

/// A transport that dials only the given hosts and ports (a hidden
/// node's relays) and listens nowhere: relayed addresses are handled by
/// the relay client's own transport, which dials the relay through this
/// one.
pub(crate) struct OnlyTo {
    inner: NodeTransport,
    allowed: Vec<Multiaddr>,
}

impl Transport for OnlyTo {
    type Output = (PeerId, StreamMuxerBox);
    type Error = std::io::Error;
    type ListenerUpgrade = <NodeTransport as Transport>::ListenerUpgrade;
    type Dial = <NodeTransport as Transport>::Dial;

    fn listen_on(
        &mut self,
        _id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let target = host_port(&addr);
        if target.is_empty() || !self.allowed.contains(&target) {
            tracing::debug!("hidden node: refusing a direct dial that is not to a chosen relay");
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        self.inner.dial(addr, opts)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::transport::PortUse;
    use libp2p::core::Endpoint;

    fn opts() -> DialOpts {
        DialOpts {
            role: Endpoint::Dialer,
            port_use: PortUse::New,
        }
    }

    #[tokio::test]
    async fn a_hidden_transport_dials_only_its_relays_and_listens_nowhere() {
        let key = Keypair::generate_ed25519();
        let relay: Multiaddr = format!("/ip4/127.0.0.1/tcp/9/p2p/{}", PeerId::random())
            .parse()
            .unwrap();
        let mut t = build(&key, Some(vec![relay.clone()])).unwrap();
        let member: Multiaddr = "/ip4/127.0.0.1/tcp/10".parse().unwrap();
        assert!(matches!(
            t.dial(member, opts()),
            Err(TransportError::MultiaddrNotSupported(_))
        ));
        assert!(t.dial(relay, opts()).is_ok(), "its relay may be dialled");
        assert!(t
            .listen_on(ListenerId::next(), "/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .is_err());
    }
}
