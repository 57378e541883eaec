//! Never silently alone, with the real binary: a node with no peer in the
//! community says so when one posts, reads or syncs, and `mutual connect
//! ADDR` joins it to a member (or says why it could not, and what to do),
//! within a bounded time. Everything on 127.0.0.1.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use mutual_tests::daemon::{admin_dir, json, member_dir, ok, run, text, wait_until, Daemon};

const DEADLINE: Duration = Duration::from_secs(30);

/// The part of every "alone" message that tells what to do.
const WAY_OUT: &str = "check `mutual status`, or `mutual connect ADDR`";

/// Runs `mutual connect ADDR` on `dir`; its output and how long it took.
fn connect(dir: &std::path::Path, addr: &str) -> (std::process::Output, Duration) {
    let start = Instant::now();
    let out = run(dir, &["connect", addr]).unwrap();
    (out, start.elapsed())
}

/// A `connect` that must fail with a one-line error containing `message`.
fn connect_fails(dir: &std::path::Path, addr: &str, message: &str) -> Duration {
    let (out, took) = connect(dir, addr);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "connect {addr}: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(message),
        "connect {addr}: {message:?} in {stderr:?}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr:?}");
    assert!(out.stdout.is_empty());
    took
}

#[test]
fn a_lone_node_says_so_and_connect_ends_it() {
    let root = tempfile::tempdir().unwrap();
    let a_dir = admin_dir(root.path(), "ada").unwrap();
    let a = Daemon::start(&a_dir, &[]).unwrap();
    let b_dir = member_dir(root.path(), "kit", &a).unwrap();
    // The admin stops: kit's node starts with an invite whose address no
    // longer answers, and is alone.
    drop(a);
    let b = Daemon::start(&b_dir, &[]).unwrap();
    ok(&b_dir, &["join", "burnout"]).unwrap();
    let status = json(&b_dir, &["status"]).unwrap();
    assert_eq!(status["community_peers"], 0, "{status}");
    assert_eq!(status["peers"], 0, "{status}");
    assert!(ok(&b_dir, &["status"])
        .unwrap()
        .contains("(0 in the community)"));

    // post: stored, its id on stdout, the warning on stderr.
    let out = run(&b_dir, &["post", "burnout", "anyone here?"]).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert!(id.starts_with("mp1") && !id.contains(' '), "{id}");
    // The body stood in the command line, so the CLI also warns about
    // `ps`; the lone-node warning is a line of its own.
    let stderr = text(&out.stderr);
    let lone = format!(
        "warning: this node is not connected to anyone in the community: your post is \
         stored and will be sent when a peer connects; {WAY_OUT}"
    );
    assert!(stderr.lines().any(|l| l == lone), "{stderr}");
    assert!(
        stderr
            .lines()
            .all(|l| l == lone || l.contains("stood in the command line")),
        "{stderr}"
    );
    // With --json, stdout stays one JSON value; the warning is on stderr.
    let out = run(&b_dir, &["--json", "post", "burnout", "still here"]).unwrap();
    assert!(out.status.success());
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(value["id"].as_str().unwrap().starts_with("mp1"));
    assert!(text(&out.stderr).contains("your post is stored and will be sent"));

    // read: the posts, and the warning that they may not be all.
    let out = run(&b_dir, &["read", "burnout"]).unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("anyone here?"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "not connected to anyone in the community: you see only the posts it already holds"
        ),
        "{stderr}"
    );
    assert!(stderr.contains(WAY_OUT), "{stderr}");
    let out = run(&b_dir, &["--json", "read", "burnout"]).unwrap();
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(text(&out.stderr).contains("warning: this node is not connected"));

    // sync: no one to sync with is an error, not a success.
    let out = run(&b_dir, &["sync"]).unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: this node is not connected to anyone in the community, so there is no \
             one to sync with; {WAY_OUT}"
        )
    );

    // connect: each failure is one sentence with what to do, in bounded time.
    connect_fails(&b_dir, "not-an-address", "is not a multiaddress");
    connect_fails(&b_dir, &b.addr, "this node's own address");
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = free.local_addr().unwrap().port();
    drop(free);
    let took = connect_fails(
        &b_dir,
        &format!("/ip4/127.0.0.1/tcp/{closed_port}"),
        "nothing accepts connections at /ip4/127.0.0.1/tcp/",
    );
    assert!(
        took < Duration::from_secs(10),
        "a refusal is quick: {took:?}"
    );
    // Something that accepts TCP but never speaks: the dial times out.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let mute_port = mute.local_addr().unwrap().port();
    let took = connect_fails(
        &b_dir,
        &format!("/ip4/127.0.0.1/tcp/{mute_port}"),
        "no answer from /ip4/127.0.0.1/tcp/",
    );
    assert!(took < Duration::from_secs(25), "bounded: {took:?}");
    drop(mute);

    // The admin is back, on a new port that kit's node does not know.
    let a = Daemon::start(&a_dir, &[]).unwrap();
    // An address whose port now belongs to another node than it names.
    let stale = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        a.port, "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
    );
    let message = format!("the node at {stale} is {}, not the peer", a.peer_id);
    connect_fails(&b_dir, &stale, &message);

    let (out, took) = connect(&b_dir, &a.addr);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim_end(),
        format!("Connected to {} at {}.", a.peer_id, a.addr)
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let again = json(&b_dir, &["connect", &a.addr]).unwrap();
    assert_eq!(
        again,
        serde_json::json!({"peer_id": a.peer_id, "address": a.addr, "already_connected": true})
    );

    // Once the admin's node is in the community topic, nothing warns, and
    // kit's posts made while alone reach it.
    wait_until(DEADLINE, "the admin as a community peer", || {
        b.community_peers().is_some_and(|n| n >= 1)
    })
    .unwrap();
    let out = run(&b_dir, &["post", "burnout", "found you"]).unwrap();
    assert!(out.status.success());
    // Only the warning that an inline body stood in the command line.
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .lines()
            .all(|l| l.contains("stood in the command line")),
        "{stderr}"
    );
    let out = run(&b_dir, &["read", "burnout"]).unwrap();
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert!(ok(&b_dir, &["sync"]).unwrap().contains("Sync started"));
    ok(&a_dir, &["join", "burnout"]).unwrap();
    wait_until(DEADLINE, "kit's three posts on the admin's node", || {
        ok(&a_dir, &["--json", "read", "burnout"]).is_ok_and(|o| o.lines().count() == 3)
    })
    .unwrap();
    drop((a, b));
}
