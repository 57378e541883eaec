//! Invite codes end to end with the real binary: `mutual invite` on a
//! running node, `mutual community join` on a fresh data directory (which
//! fetches the community from the inviter), then syncing; and every way a
//! code can go wrong, each refused with a clear sentence and nothing
//! written. Daemons listen on 127.0.0.1 only.

use std::path::Path;

use crate::support::*;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use mutual_tests::protocol::invite::{Invite, SignedInvite, MAX_INVITE_CHARS};
use mutual_tests::protocol::{PublicKey, SecretKey};

/// A community with `rules_len` characters of rules, created by `ada` in
/// `dir`.
fn community_with_rules(root: &Path, dir: &Path, rules_len: usize) -> String {
    init(dir, "ada");
    let rules: String = "Be kind; listen first. "
        .chars()
        .cycle()
        .take(rules_len)
        .collect();
    let file = root.join("rules.txt");
    std::fs::write(&file, &rules).unwrap();
    ok(
        dir,
        &[
            "community",
            "create",
            "Quiet Harbour",
            "--rules-file",
            file.to_str().unwrap(),
            "--probation",
            "0",
        ],
    );
    rules
}

/// `code` broken into lines of 60 characters, as a mail client wraps it.
fn wrapped(code: &str) -> String {
    code.as_bytes()
        .chunks(60)
        .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
        .collect()
}

/// The community id a data directory belongs to, if any.
fn community_id(dir: &Path) -> Option<String> {
    let out = run(dir, &["--json", "rules"]);
    out.status.success().then(|| {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["id"].as_str().unwrap().to_string()
    })
}

#[test]
fn a_long_rules_invite_is_short_and_joins_wrapped_or_from_stdin() {
    let root = tempfile::tempdir().unwrap();
    let admin = root.path().join("ada");
    let rules = community_with_rules(root.path(), &admin, 15_000);
    let a = Daemon::start(&admin, &[]).unwrap();
    // Two people join with this one code: it admits two.
    let code = ok(&admin, &["invite", "--uses", "2"]).trim().to_string();
    assert!(code.starts_with("mutual-invite:"), "{code}");
    assert!(
        code.len() <= MAX_INVITE_CHARS,
        "a code of {} characters for 15,000 characters of rules",
        code.len()
    );
    let ada_short = a.key.parse::<PublicKey>().unwrap().short();

    // Pasted wrapped at 60 columns, as one argument.
    let mo = root.path().join("mo");
    init(&mo, "mo");
    let said = ok(&mo, &["community", "join", &wrapped(&code)]);
    assert!(
        said.contains("Joined community \"Quiet Harbour\""),
        "{said}"
    );
    assert!(said.contains(&format!("invited by {ada_short}")), "{said}");
    // The rules were not in the code: they came from the inviter's node.
    assert!(ok(&mo, &["rules"]).contains(rules.trim_end()));

    // From standard input, wrapped too.
    let kit = root.path().join("kit");
    init(&kit, "kit");
    let out = mutual(&kit)
        .args(["--json", "community", "join", "-"])
        .write_stdin(wrapped(&code))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let joined: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(joined["inviter"], a.key.as_str());
    assert_eq!(joined["community"]["rules"], rules.as_str());
    assert_eq!(community_id(&kit), community_id(&admin));

    // Both start with no --bootstrap: the invite's addresses are enough.
    let m = Daemon::start(&mo, &[]).unwrap();
    let k = Daemon::start(&kit, &[]).unwrap();
    for d in [&a, &m, &k] {
        ok(&d.dir, &["join", "welcome"]);
    }
    ok(&admin, &["post", "welcome", "Glad you are here."]);
    ok(&kit, &["post", "welcome", "Thank you."]);
    for d in [&admin, &mo, &kit] {
        wait_until("both posts on every node", || {
            let n = read_json(d, "welcome").len();
            if n < 2 {
                let _ = run(d, &["sync"]);
            }
            n == 2
        });
    }
}

#[test]
fn bad_codes_are_refused_clearly_and_write_nothing() {
    let root = tempfile::tempdir().unwrap();
    let admin = root.path().join("ada");
    community_with_rules(root.path(), &admin, 100);
    let a = Daemon::start(&admin, &[]).unwrap();
    let code = ok(&admin, &["invite"]).trim().to_string();

    let mo = root.path().join("mo");
    init(&mo, "mo");
    let before = snapshot(&mo);

    // Cut off when copied.
    let stderr = fails(
        &mo,
        &["community", "join", &code[..code.len() - 12]],
        "incomplete",
    );
    assert!(stderr.contains("copy the whole code"), "{stderr}");
    // One character changed in the middle.
    let mut altered: Vec<char> = code.chars().collect();
    let i = altered.len() / 2;
    altered[i] = if altered[i] == 'x' { 'y' } else { 'x' };
    let altered: String = altered.into_iter().collect();
    fails(&mo, &["community", "join", &altered], "altered or mistyped");
    fails(&mo, &["community", "join", "hello"], "not an invite code");

    // Someone forwarding the code swaps in their own address: the
    // inviter's signature no longer holds.
    let mut forged = SignedInvite::decode(&code, now()).unwrap();
    forged.content.addrs = vec!["/ip4/127.0.0.1/tcp/9"
        .parse::<Multiaddr>()
        .unwrap()
        .to_vec()];
    fails(
        &mo,
        &["community", "join", &forged.encode()],
        "does not carry the signature",
    );

    // A code (validly signed by someone) naming this community but
    // pointing at a node of another community: the fetched manifest does
    // not hash to the id, and nothing is written.
    let other = root.path().join("other");
    init(&other, "eve");
    ok(&other, &["community", "create", "Elsewhere"]);
    let o = Daemon::start(&other, &[]).unwrap();
    let mut addr: Multiaddr = o.addr.parse().unwrap();
    let Some(Protocol::P2p(peer)) = addr.pop() else {
        panic!("the daemon's address ends with its peer id")
    };
    let real = forged.content.community;
    let misleading = Invite::create(
        real,
        forged.content.secrets.clone(),
        &SecretKey::generate(),
        Some(peer.to_bytes()),
        vec![addr.to_vec()],
        now(),
    )
    .unwrap()
    .encode();
    fails(
        &mo,
        &["community", "join", &misleading],
        "does not hold the community the invite names",
    );

    assert_eq!(snapshot(&mo), before, "nothing was written");
    assert_eq!(community_id(&mo), None);
    // The good code still works afterwards.
    ok(&mo, &["community", "join", &code]);
    assert_eq!(community_id(&mo), community_id(&admin));
    drop((a, o));
}

#[test]
fn an_invite_whose_inviter_is_offline_says_so() {
    let root = tempfile::tempdir().unwrap();
    let admin = root.path().join("ada");
    community_with_rules(root.path(), &admin, 100);
    let a = Daemon::start(&admin, &[]).unwrap();
    let code = ok(&admin, &["invite"]).trim().to_string();
    let invite = SignedInvite::decode(&code, now()).unwrap().content;
    let peer = invite.peer.as_deref().map(PeerId::from_bytes);
    assert!(matches!(peer, Some(Ok(_))), "the code names the peer");
    a.terminate().unwrap();

    let mo = root.path().join("mo");
    init(&mo, "mo");
    let before = snapshot(&mo);
    let stderr = fails(
        &mo,
        &["community", "join", &code],
        "could not reach the inviter's node",
    );
    assert!(stderr.contains("the invite may be stale"), "{stderr}");
    assert!(stderr.contains("ask for a fresh invite"), "{stderr}");
    assert_eq!(snapshot(&mo), before, "nothing was written");
}

/// The time as the node reads it.
fn now() -> u64 {
    mutual_tests::node::now_ms()
}
