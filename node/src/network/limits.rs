//! Limits a stranger cannot exhaust: how many connections the node holds
//! at once, in total, per peer, still in their handshake, and per remote
//! address (see ARCHITECTURE.md, "Limits").
//!
//! Anyone who can reach the listening port can open connections. Each one
//! costs a file descriptor from its first byte, long before the peer has
//! proved anything: unbounded, 1,100 stalled TCP connections took every
//! descriptor of a node with the common soft limit of 1,024, and its own
//! control socket refused the local user (`Too many open files`). The
//! bounds below keep what the network can hold far below that limit:
//!
//! | what | bound | descriptors at most |
//! |---|---|---|
//! | connections in their handshake, inbound | [`MAX_PENDING_INCOMING`] | 32 |
//! | dials in progress | [`MAX_PENDING_OUTGOING`] | 64 |
//! | established connections | [`MAX_ESTABLISHED`] | 384 |
//! | control socket clients | [`crate::control::MAX_CONNECTIONS`] | 64 |
//!
//! About 550 with the store's and the runtime's own, under the 1,024 that
//! many systems still give a process by default; and the node raises its
//! soft limit to the hard one at start ([`raise_fd_limit`]) for headroom.
//!
//! libp2p's `connection_limits` behaviour counts the first four kinds; the
//! [`PerIp`] behaviour here counts inbound connections per remote address,
//! so that one machine cannot take every handshake slot by itself.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::connection_limits::ConnectionLimits;
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Inbound connections still in their handshake (noise, then yamux). An
/// honest handshake takes a round trip or two, and a node has about ten
/// peers ([`super::behaviour::MAX_PEERS`]): 32 at once is far above what
/// honest peers need. A connection that stalls holds its slot until the
/// connection timeout (10 s, libp2p's default), so a flood of stalled
/// connections can delay new inbound peers by that long, but it cannot
/// take descriptors, and established connections are untouched.
pub(crate) const MAX_PENDING_INCOMING: u32 = 32;

/// Outbound dials in progress. Start-up dials the remembered peers and the
/// bootstrap addresses a bounded number at a time, and Kademlia queries
/// dial a few peers at once (α = 3 per query): 64 leaves room for both.
pub(crate) const MAX_PENDING_OUTGOING: u32 = 64;

/// Established connections in both directions. A node keeps about
/// [`super::behaviour::MAX_PEERS`] and trims the rest, but DHT queries and
/// the peers a relay serves add connections for a while; 384 leaves that
/// room and keeps the descriptor budget above well under 1,024.
pub(crate) const MAX_ESTABLISHED: u32 = 384;

/// Established inbound connections: fewer than [`MAX_ESTABLISHED`], so that
/// strangers who complete handshakes with fresh identities can never take
/// the slots this node needs to dial the peers it chooses.
pub(crate) const MAX_ESTABLISHED_INCOMING: u32 = 256;

/// Connections to one peer. Two nodes dialling each other at the same
/// moment make two; a relayed connection and its direct upgrade (DCUtR),
/// or TCP and QUIC side by side, also make two for a while. A third is
/// allowed for the overlap; more is a peer that misbehaves.
pub(crate) const MAX_PER_PEER: u32 = 3;

/// Inbound connections (in their handshake or established) from one
/// remote address: one IPv4 address, or one IPv6 /64 (an ISP gives a
/// household a whole /64, so a single machine has 2⁶⁴ addresses to choose
/// from). A household or office behind one NAT may hold several members'
/// nodes; eight is more than that and still a small share of
/// [`MAX_PENDING_INCOMING`], so one machine cannot take every handshake
/// slot alone.
pub(crate) const MAX_PER_IP: usize = 8;

/// Highest soft limit on open files the node asks for at start: plenty for
/// the bounds above, and not so many that a leak goes unnoticed forever.
pub const FD_LIMIT_TARGET: u64 = 65_536;

// The descriptor budget of the module documentation, checked when
// compiling: the network's bounds, the control socket's clients and about
// 100 for the store, listeners, runtime and standard streams fit in 1,024.
const _: () = assert!(
    MAX_PENDING_INCOMING as usize
        + MAX_PENDING_OUTGOING as usize
        + MAX_ESTABLISHED as usize
        + crate::control::MAX_CONNECTIONS
        + 100
        < 1024
);
const _: () = assert!(MAX_ESTABLISHED_INCOMING < MAX_ESTABLISHED);
const _: () = assert!(MAX_PER_IP < MAX_PENDING_INCOMING as usize);

/// libp2p's connection limits, with the bounds above.
pub(crate) fn connection_limits() -> libp2p::connection_limits::Behaviour {
    libp2p::connection_limits::Behaviour::new(
        ConnectionLimits::default()
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
            .with_max_pending_outgoing(Some(MAX_PENDING_OUTGOING))
            .with_max_established(Some(MAX_ESTABLISHED))
            .with_max_established_incoming(Some(MAX_ESTABLISHED_INCOMING))
            .with_max_established_per_peer(Some(MAX_PER_PEER)),
    )
}

/// Why an inbound connection was refused by [`PerIp`].
#[derive(Debug, thiserror::Error)]
#[error("{held} inbound connections from {source_addr} already (at most {limit} per address)")]
pub(crate) struct TooManyFromAddress {
    /// The address (or IPv6 /64) the connections come from.
    pub(crate) source_addr: IpAddr,
    /// Connections it holds.
    pub(crate) held: usize,
    /// The limit.
    pub(crate) limit: usize,
}

/// Counts inbound connections (in their handshake or established) per
/// remote address and refuses one more than `limit` from the same address.
///
/// Exempt, and counted by the other limits only:
/// - **loopback** (127.0.0.0/8, ::1): a connection from this machine comes
///   from a program of one of its users, who could exhaust the node's
///   resources in other ways anyway; and the tests run twenty nodes on
///   127.0.0.1, which one address limit would break;
/// - **relayed** connections (`/p2p-circuit`): their address is the relay's,
///   shared by every member the relay serves, and the relay limits its
///   circuits itself;
/// - addresses without an IP (in-memory transports).
pub(crate) struct PerIp {
    limit: usize,
    by_connection: HashMap<ConnectionId, IpAddr>,
    count: HashMap<IpAddr, usize>,
}

impl PerIp {
    /// At most `limit` inbound connections per remote address.
    pub(crate) fn new(limit: usize) -> Self {
        PerIp {
            limit,
            by_connection: HashMap::new(),
            count: HashMap::new(),
        }
    }

    /// Inbound connections counted for the address of `remote` now.
    #[cfg(test)]
    fn held(&self, remote: &Multiaddr) -> usize {
        limited_source(remote)
            .and_then(|ip| self.count.get(&ip).copied())
            .unwrap_or(0)
    }

    fn release(&mut self, connection: ConnectionId) {
        let Some(ip) = self.by_connection.remove(&connection) else {
            return;
        };
        if let Some(n) = self.count.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.count.remove(&ip);
            }
        }
    }
}

/// The key an inbound connection from `remote` is counted under, or `None`
/// when it is exempt (see [`PerIp`]).
fn limited_source(remote: &Multiaddr) -> Option<IpAddr> {
    if remote.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return None;
    }
    let ip = remote.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(ip.to_canonical()),
        _ => None,
    })?;
    if ip.is_loopback() {
        return None;
    }
    Some(match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        // One /64: the rest of the address is the host's own choice.
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    })
}

impl NetworkBehaviour for PerIp {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = limited_source(remote_addr) else {
            return Ok(());
        };
        let held = self.count.get(&ip).copied().unwrap_or(0);
        if held >= self.limit {
            return Err(ConnectionDenied::new(TooManyFromAddress {
                source_addr: ip,
                held,
                limit: self.limit,
            }));
        }
        self.count.insert(ip, held + 1);
        self.by_connection.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // Counted since its handshake began; released when it closes.
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.release(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// What [`raise_fd_limit`] did, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdLimit {
    /// The soft limit was raised from `from` to `to`.
    Raised {
        /// The soft limit before.
        from: u64,
        /// The soft limit now.
        to: u64,
    },
    /// The soft limit was already as high as allowed or wanted.
    Kept {
        /// The soft limit.
        soft: u64,
        /// The hard limit.
        hard: u64,
    },
}

impl std::fmt::Display for FdLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FdLimit::Raised { from, to } => {
                write!(f, "raised the open-file limit from {from} to {to}")
            }
            FdLimit::Kept { soft, hard } => write!(
                f,
                "the open-file limit stays at {soft} (hard limit {hard}); \
                 the node's connection limits fit within it"
            ),
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit, at
/// most [`FD_LIMIT_TARGET`]. Never lowers it. On systems without such
/// limits, says it kept them.
pub fn raise_fd_limit() -> std::io::Result<FdLimit> {
    #[cfg(unix)]
    {
        let (soft, hard) = rlimit::Resource::NOFILE.get()?;
        let target = hard.min(FD_LIMIT_TARGET);
        if soft >= target {
            return Ok(FdLimit::Kept { soft, hard });
        }
        let now = rlimit::increase_nofile_limit(target)?;
        if now > soft {
            Ok(FdLimit::Raised {
                from: soft,
                to: now,
            })
        } else {
            Ok(FdLimit::Kept { soft, hard })
        }
    }
    #[cfg(not(unix))]
    {
        Ok(FdLimit::Kept {
            soft: u64::MAX,
            hard: u64::MAX,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::ConnectedPoint;
    use libp2p::swarm::ListenError;

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap()
    }

    fn local() -> Multiaddr {
        addr("/ip4/192.0.2.1/tcp/4001")
    }

    fn id(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    fn pending(b: &mut PerIp, n: usize, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        b.handle_pending_inbound_connection(id(n), &local(), remote)
    }

    fn failed(b: &mut PerIp, n: usize, remote: &Multiaddr) {
        let error = ListenError::Aborted;
        b.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &local(),
            send_back_addr: remote,
            error: &error,
            connection_id: id(n),
            peer_id: None,
        }));
    }

    fn closed(b: &mut PerIp, n: usize, remote: &Multiaddr) {
        let endpoint = ConnectedPoint::Listener {
            local_addr: local(),
            send_back_addr: remote.clone(),
        };
        b.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: PeerId::random(),
            connection_id: id(n),
            endpoint: &endpoint,
            cause: None,
            remaining_established: 0,
        }));
    }

    #[test]
    fn one_address_gets_at_most_the_limit_and_others_are_unaffected() {
        let mut b = PerIp::new(3);
        let a = addr("/ip4/203.0.113.5/tcp/50000");
        let a_other_port = addr("/ip4/203.0.113.5/tcp/50001");
        let other = addr("/ip4/203.0.113.6/tcp/50000");
        for n in 0..3 {
            pending(&mut b, n, if n % 2 == 0 { &a } else { &a_other_port }).unwrap();
        }
        let denied = pending(&mut b, 3, &a).unwrap_err();
        let reason = denied.downcast::<TooManyFromAddress>().unwrap();
        assert_eq!(reason.held, 3);
        assert_eq!(
            reason.to_string(),
            "3 inbound connections from 203.0.113.5 already (at most 3 per address)"
        );
        // The refused connection is reported failed by the swarm: no effect.
        failed(&mut b, 3, &a);
        assert_eq!(b.held(&a), 3);
        pending(&mut b, 4, &other).unwrap();
        assert_eq!(b.held(&other), 1);
    }

    #[test]
    fn closing_or_failing_releases_the_slot() {
        let mut b = PerIp::new(2);
        let a = addr("/ip4/203.0.113.5/tcp/50000");
        pending(&mut b, 1, &a).unwrap();
        pending(&mut b, 2, &a).unwrap();
        assert!(pending(&mut b, 3, &a).is_err());
        // An established connection stays counted until it closes.
        assert!(b
            .handle_established_inbound_connection(id(1), PeerId::random(), &local(), &a)
            .is_ok());
        assert_eq!(b.held(&a), 2);
        closed(&mut b, 1, &a);
        assert_eq!(b.held(&a), 1);
        pending(&mut b, 4, &a).unwrap();
        // A handshake that fails releases too; a second report changes nothing.
        failed(&mut b, 2, &a);
        failed(&mut b, 2, &a);
        assert_eq!(b.held(&a), 1);
        closed(&mut b, 4, &a);
        assert_eq!(b.held(&a), 0);
        assert!(b.count.is_empty() && b.by_connection.is_empty());
    }

    #[test]
    fn loopback_relayed_and_ip_less_connections_are_exempt() {
        let mut b = PerIp::new(1);
        for remote in [
            addr("/ip4/127.0.0.1/tcp/50000"),
            addr("/ip4/127.0.0.9/udp/50000/quic-v1"),
            addr("/ip6/::1/tcp/50000"),
            addr("/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"),
            addr("/memory/1234"),
        ] {
            for n in 0..5 {
                pending(&mut b, n, &remote).unwrap();
            }
        }
        assert!(b.count.is_empty());
    }

    #[test]
    fn an_ipv6_slash_64_counts_as_one_address_and_mapped_ipv4_as_ipv4() {
        let mut b = PerIp::new(2);
        pending(&mut b, 1, &addr("/ip6/2001:db8:1:2::1/tcp/1")).unwrap();
        pending(&mut b, 2, &addr("/ip6/2001:db8:1:2:ffff::9/tcp/1")).unwrap();
        assert!(pending(&mut b, 3, &addr("/ip6/2001:db8:1:2:abcd::1/tcp/1")).is_err());
        pending(&mut b, 4, &addr("/ip6/2001:db8:1:3::1/tcp/1")).unwrap();

        pending(&mut b, 5, &addr("/ip4/198.51.100.1/tcp/1")).unwrap();
        pending(&mut b, 6, &addr("/ip6/::ffff:198.51.100.1/tcp/1")).unwrap();
        assert!(pending(&mut b, 7, &addr("/ip4/198.51.100.1/tcp/2")).is_err());
    }

    #[test]
    fn raising_the_fd_limit_never_lowers_it() {
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        let outcome = raise_fd_limit().unwrap();
        let (now, _) = rlimit::Resource::NOFILE.get().unwrap();
        assert!(now >= soft);
        assert!(now <= hard.max(soft));
        match outcome {
            FdLimit::Raised { from, to } => {
                assert_eq!((from, to), (soft, now));
                assert!(to <= FD_LIMIT_TARGET);
            }
            FdLimit::Kept { soft: s, .. } => assert_eq!(s, soft),
        }
    }
}
