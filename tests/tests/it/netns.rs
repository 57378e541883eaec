//! The network-namespace harness itself, with plain sockets: hosts behind
//! NAT reach a public host, which sees the NAT's address and never the
//! host's; the public side cannot reach a host behind NAT; the
//! endpoint-independent NAT keeps one public port for every destination,
//! the symmetric one does not. Needs root, iproute2 and nftables: without
//! them it fails with the reason.

use std::net::SocketAddrV4;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use mutual_tests::netns::{Host, Lab, NatMode};

const PROBE: &str = env!("CARGO_BIN_EXE_mutual-netprobe");

/// Starts a probe server (`listen` or `udp-echo`) in `host`'s namespace
/// and waits until it is bound.
fn serve(lab: &mut Lab, host: &Host, mode: &str, port: u16, out: &Path) {
    let file = std::fs::File::create(out).expect("a log file");
    let mut cmd = lab.command(&host.ns, PROBE);
    cmd.args([mode, &format!("{}:{port}", host.ip)])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::inherit());
    let pid = lab.spawn(cmd).expect("the probe starts");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(out)
        .unwrap_or_default()
        .contains("LISTENING")
    {
        assert!(lab.running(pid), "the {mode} probe exited");
        assert!(
            std::time::Instant::now() < end,
            "the {mode} probe never bound"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the probe client in `host`'s namespace; its stdout lines.
fn probe(lab: &Lab, host: &Host, args: &[&str]) -> Result<Vec<String>, String> {
    let out = lab
        .command(&host.ns, PROBE)
        .args(args)
        .output()
        .expect("the probe runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

fn seen(line: &str) -> SocketAddrV4 {
    line.trim().parse().expect("an address line")
}

#[test]
fn hosts_behind_nat_reach_the_public_side_as_their_nat() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let mut lab = Lab::new().expect("the test network (run as root with iproute2 and nftables)");
    let server = lab.public_host("server").expect("a public host");
    let other = lab.public_host("other").expect("a second public host");
    let eim = lab
        .nat_host("eim", NatMode::EndpointIndependent)
        .expect("a host behind an endpoint-independent NAT");
    let sym = lab
        .nat_host("sym", NatMode::Symmetric)
        .expect("a host behind a symmetric NAT");

    serve(&mut lab, &server, "listen", 7000, &tmp.path().join("tcp"));
    for host in [&eim, &sym] {
        let lines = probe(&lab, host, &["connect", &format!("{}:7000", server.ip)])
            .unwrap_or_else(|e| panic!("{} cannot reach the public host: {e}", host.name));
        let addr = seen(lines.first().expect("an answer"));
        let nat = host.nat.as_ref().expect("behind a NAT");
        assert_eq!(*addr.ip(), nat.wan_ip, "{} is seen as its NAT", host.name);
        assert_ne!(*addr.ip(), host.ip);
    }
    // Nothing on the public side can reach a host behind a NAT.
    assert!(
        probe(&lab, &server, &["connect", &format!("{}:7000", eim.ip)]).is_err(),
        "the private address is unreachable from the public side"
    );
    // And the machine's own namespace has none of the lab's addresses.
    let root = std::process::Command::new("ip")
        .args(["-4", "addr"])
        .output()
        .expect("ip runs");
    let root = String::from_utf8_lossy(&root.stdout);
    for ip in [server.ip, eim.ip, eim.public_ip(), sym.public_ip()] {
        assert!(
            !mutual_tests::netns::mentions_ip(&root, ip),
            "{ip} in {root}"
        );
    }

    // One local UDP port, two destinations: the EIM NAT maps both to one
    // public port, the symmetric NAT to two.
    serve(&mut lab, &server, "udp-echo", 7001, &tmp.path().join("u1"));
    serve(&mut lab, &other, "udp-echo", 7001, &tmp.path().join("u2"));
    let echoes = [format!("{}:7001", server.ip), format!("{}:7001", other.ip)];
    let ports = |host: &Host| -> Vec<u16> {
        let mut args = vec!["udp-ask", "5555"];
        args.extend(echoes.iter().map(String::as_str));
        probe(&lab, host, &args)
            .unwrap_or_else(|e| panic!("{}: {e}", host.name))
            .iter()
            .map(|l| seen(l).port())
            .collect()
    };
    let eim_ports = ports(&eim);
    assert_eq!(eim_ports.len(), 2);
    assert_eq!(eim_ports.first(), eim_ports.get(1), "EIM: one mapping");
    let sym_ports = ports(&sym);
    assert_eq!(sym_ports.len(), 2);
    assert_ne!(
        sym_ports.first(),
        sym_ports.get(1),
        "symmetric: one mapping per destination"
    );

    // Dropping the lab removes every namespace it made.
    let names: Vec<String> = [&server, &other, &eim, &sym]
        .iter()
        .map(|h| h.ns.clone())
        .collect();
    drop(lab);
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    let list = String::from_utf8_lossy(&list.stdout);
    for ns in names {
        assert!(!list.contains(&ns), "{ns} left behind");
    }
}
