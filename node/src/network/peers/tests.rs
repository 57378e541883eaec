use super::*;

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn manager(policy: PeerPolicy) -> PeerManager {
    PeerManager::new(policy, Vec::new(), 0)
}

fn dials(actions: &[PeerAction]) -> Vec<PeerId> {
    actions
        .iter()
        .filter_map(|a| match a {
            PeerAction::Dial(p, _) => Some(*p),
            _ => None,
        })
        .collect()
}

fn reserves(actions: &[PeerAction]) -> Vec<(PeerId, Multiaddr)> {
    actions
        .iter()
        .filter_map(|a| match a {
            PeerAction::Reserve(p, a) => Some((*p, a.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn remembered_peers_are_dialled_at_start_and_not_twice() {
    let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    let records = peers.iter().enumerate().map(|(i, p)| {
        (
            *p,
            PeerRecord {
                addrs: vec![format!("/ip4/10.0.0.{i}/tcp/4001")],
                last_seen_ms: i as u64,
                failures: 0,
            },
        )
    });
    let mut m = PeerManager::new(PeerPolicy::default(), records, 0);
    let first = dials(&m.tick(0));
    assert_eq!(first, vec![peers[2], peers[1], peers[0]], "newest first");
    assert!(
        dials(&m.tick(1)).is_empty(),
        "dials under way are not repeated"
    );
    // One fails: dialled again only after its back-off.
    m.dial_failed(Some(peers[0]), "refused", 2);
    assert!(dials(&m.tick(3)).is_empty());
    assert_eq!(dials(&m.tick(2 + book::MAX_BACKOFF_MS * 2)), vec![peers[0]]);
}

#[test]
fn no_redial_while_enough_peers_are_connected() {
    let mut m = manager(PeerPolicy::default());
    let spare = PeerId::random();
    m.identified(spare, &[addr("/ip4/10.0.0.9/tcp/1")], false, 0);
    for i in 0..TARGET_PEERS {
        m.connected(
            PeerId::random(),
            ConnectionId::new_unchecked(i),
            addr("/ip4/10.0.0.1/tcp/1"),
            true,
            0,
        );
    }
    assert!(dials(&m.tick(10)).is_empty());
    let (p, _) = m.conns.iter().next().map(|(p, c)| (*p, c.clone())).unwrap();
    m.closed(p, ConnectionId::new_unchecked(0));
    m.closed(p, ConnectionId::new_unchecked(1));
    m.closed(p, ConnectionId::new_unchecked(2));
    assert_eq!(dials(&m.tick(20)), vec![spare]);
}

fn connect_relay(m: &mut PeerManager, relay: PeerId, at: &str, now: u64) {
    m.connected(relay, ConnectionId::new_unchecked(7), addr(at), true, now);
    m.identified(relay, &[addr(at)], true, now);
}

#[test]
fn a_node_behind_nat_reserves_on_relays_it_reached_directly() {
    let mut m = manager(PeerPolicy::default());
    let relay = PeerId::random();
    connect_relay(&mut m, relay, "/ip4/198.51.100.1/tcp/4001", 0);
    // A peer that dialled us is no relay candidate: we never reached it.
    let inbound = PeerId::random();
    m.connected(
        inbound,
        ConnectionId::new_unchecked(8),
        addr("/ip4/198.51.100.2/tcp/5000"),
        false,
        0,
    );
    m.identified(inbound, &[addr("/ip4/198.51.100.2/tcp/4001")], true, 0);
    assert!(
        reserves(&m.tick(1_000)).is_empty(),
        "AutoNAT gets its grace"
    );
    assert_eq!(m.reachability(&[], 1_000), Reachability::Unknown);
    let r = reserves(&m.tick(REACHABILITY_GRACE_MS));
    assert_eq!(
        r,
        vec![(
            relay,
            addr(&format!("/ip4/198.51.100.1/tcp/4001/p2p/{relay}"))
        )]
    );
    assert!(reserves(&m.tick(REACHABILITY_GRACE_MS + 1)).is_empty());
    m.reservation_listening(relay, ListenerId::next());
    m.reservation_accepted(relay);
    assert_eq!(m.reserved_relays(), vec![relay]);
    let circuit = addr(&format!(
        "/ip4/198.51.100.1/tcp/4001/p2p/{relay}/p2p-circuit"
    ));
    assert_eq!(
        m.reachability(std::slice::from_ref(&circuit), REACHABILITY_GRACE_MS),
        Reachability::BehindNat(vec![circuit])
    );
}

#[test]
fn a_public_or_loopback_node_wants_no_relay() {
    let relay = PeerId::random();
    let mut public = manager(PeerPolicy::default());
    connect_relay(&mut public, relay, "/ip4/198.51.100.1/tcp/4001", 0);
    public.external_confirmed(addr("/ip4/203.0.113.5/tcp/4001"));
    assert!(reserves(&public.tick(REACHABILITY_GRACE_MS * 2)).is_empty());
    assert!(matches!(
        public.reachability(&[], REACHABILITY_GRACE_MS * 2),
        Reachability::Public(_)
    ));
    // Dialled directly by a peer elsewhere: as good as a confirmation.
    let mut dialled = manager(PeerPolicy::default());
    connect_relay(&mut dialled, relay, "/ip4/198.51.100.1/tcp/4001", 0);
    dialled.reached_directly(addr("/ip4/203.0.113.5/tcp/4001"));
    assert!(reserves(&dialled.tick(REACHABILITY_GRACE_MS * 2)).is_empty());
    assert_eq!(
        dialled.reachability(&[], REACHABILITY_GRACE_MS * 2),
        Reachability::Public(vec![addr("/ip4/203.0.113.5/tcp/4001")])
    );
    let mut local = manager(PeerPolicy {
        loopback_only: true,
        ..PeerPolicy::default()
    });
    connect_relay(&mut local, relay, "/ip4/127.0.0.1/tcp/4001", 0);
    assert!(reserves(&local.tick(REACHABILITY_GRACE_MS * 2)).is_empty());
    assert_eq!(
        local.reachability(&[], REACHABILITY_GRACE_MS * 2),
        Reachability::LocalOnly
    );
}

#[test]
fn a_hidden_node_reserves_at_once_and_dials_others_only_through_its_relays() {
    let relay = PeerId::random();
    let via = addr(&format!("/ip4/198.51.100.1/tcp/4001/p2p/{relay}"));
    let mut m = manager(PeerPolicy {
        hidden: true,
        via: vec![via.clone()],
        loopback_only: false,
    });
    assert_eq!(reserves(&m.tick(0)), vec![(relay, via.clone())]);
    // It learns only relayed addresses of others, and dials them through
    // its own relay.
    let other = PeerId::random();
    let other_relayed = addr(&format!(
        "/ip4/192.0.2.7/tcp/4001/p2p/{}/p2p-circuit",
        PeerId::random()
    ));
    m.identified(
        other,
        &[addr("/ip4/192.0.2.1/tcp/4001"), other_relayed.clone()],
        false,
        1,
    );
    assert_eq!(m.book().addrs(&other), vec![other_relayed]);
    let actions = m.tick(2);
    let dial = actions.iter().find_map(|a| match a {
        PeerAction::Dial(p, addrs) if *p == other => Some(addrs.clone()),
        _ => None,
    });
    let mut expected = via.clone();
    expected.push(Protocol::P2pCircuit);
    expected.push(Protocol::P2p(other));
    assert_eq!(dial, Some(vec![expected]));
    assert!(matches!(m.reachability(&[], 2), Reachability::Hidden(_)));
}

#[test]
fn a_dropped_reservation_is_replaced_after_a_pause() {
    let relay = PeerId::random();
    let via = addr(&format!("/ip4/198.51.100.1/tcp/4001/p2p/{relay}"));
    let mut m = manager(PeerPolicy {
        hidden: true,
        via: vec![via],
        loopback_only: false,
    });
    assert_eq!(reserves(&m.tick(0)).len(), 1);
    let listener = ListenerId::next();
    m.reservation_listening(relay, listener);
    m.reservation_accepted(relay);
    m.listener_closed(listener, 100);
    assert!(m.reserved_relays().is_empty());
    assert!(reserves(&m.tick(101)).is_empty(), "not asked again at once");
    assert_eq!(
        reserves(&m.tick(100 + book::FIRST_BACKOFF_MS * 5 + 1)).len(),
        1
    );
}

#[test]
fn failures_of_user_given_addresses_are_reported_once_each() {
    let mut m = manager(PeerPolicy::default());
    let p = PeerId::random();
    m.user_address(&addr(&format!("/ip4/10.0.0.1/tcp/1/p2p/{p}")));
    m.dial_failed(Some(p), "connection refused", 1);
    m.dial_failed(Some(p), "connection refused", 2);
    let problems = m.problems();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("invite may be stale"), "{problems:?}");
    // A stranger's failure is no problem of the user's.
    m.dial_failed(Some(PeerId::random()), "refused", 3);
    assert_eq!(m.problems().len(), 1);
}
