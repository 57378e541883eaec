//! The `mutual` command as a person uses it: real `mutual run` daemons as
//! child processes on 127.0.0.1, driven by the other commands through their
//! control sockets, and every error a person is likely to meet.
//!
//! The binary lives in another package (`cli`), so the first test builds
//! it with `cargo build -p mutual` into this test's own target directory:
//! the production binary, without the node's `test-hooks` feature that
//! `cargo test --workspace` turns on (so the first run after a workspace
//! build compiles `mutual-node` and `mutual` once more, a no-op after).
//! Waiting is always polling a condition with a deadline, never a sleep.

use std::path::PathBuf;

use mutual_tests::daemon::LISTEN;
use serde_json::Value;

use crate::support::*;

#[test]
fn offline_errors_are_one_clear_sentence_and_write_nothing() {
    let root = tempfile::tempdir().unwrap();

    // No node running.
    let home = root.path().join("home");
    init(&home, "river");
    assert!(fails(&home, &["init"], "refusing to overwrite").contains("identity already exists"));
    let before = snapshot(&home);
    let stderr = fails(&home, &["topics"], "no mutual node is running for");
    assert!(stderr.contains("start one with `mutual run`"), "{stderr}");
    assert!(stderr.contains(&home.display().to_string()), "{stderr}");
    fails(&home, &["post", "t", "hello"], "no mutual node is running");
    fails(&home, &["read", "t"], "no mutual node is running");
    // Typos are caught before any node is asked.
    fails(&home, &["join", "a b"], "bad topic name");
    fails(&home, &["read", "x/y"], "bad topic name");
    fails(&home, &["mod", "appoint", "mu1typo"], "not a valid key");
    fails(&home, &["retract", "mp1abc"], "a short id needs at least 8");

    // Malformed invites.
    fails(&home, &["community", "join", "hello"], "not an invite code");
    fails(
        &home,
        &["community", "join", "mutual-invite:AAAA"],
        "the invite code is in a format this version of mutual does not read",
    );
    fails(
        &home,
        &["community", "join", "mutual-invite:!!"],
        "the invite code was altered or mistyped",
    );
    fails(&home, &["rules"], "belongs to no community");
    fails(&home, &["run", "--no-upnp"], "belongs to no community");
    assert_eq!(snapshot(&home), before, "nothing was written");

    // A directory that is not ours.
    let foreign = root.path().join("thesis");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("chapter1.tex"), b"\\section{Intro}").unwrap();
    let before = snapshot(&foreign);
    for args in [
        &["init"][..],
        &["topics"],
        &["run", "--no-upnp"],
        &["community", "create", "X"],
        &["rules"],
    ] {
        fails(&foreign, args, "is not a mutual data directory");
    }
    assert_eq!(snapshot(&foreign), before, "nothing was written");

    // No identity yet.
    let empty = root.path().join("new");
    fails(&empty, &["run", "--no-upnp"], "run `mutual init` first");
    assert!(!empty.exists(), "nothing was created");

    // Bad arguments caught before any node is asked.
    let out = run(&home, &["read", "t", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("such as 30m, 2h or 3d"));
}

#[test]
fn errors_from_a_running_node_are_clear_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let admin = root.path().join("admin");
    let member = root.path().join("member");
    init(&admin, "ada");
    init(&member, "kit");
    ok(
        &admin,
        &["community", "create", "Circle", "--probation", "0"],
    );
    let a = Daemon::start(&admin, &[]).unwrap();
    let code = ok(&admin, &["invite"]);
    ok(&member, &["community", "join", code.trim()]);
    let m = Daemon::start(&member, &[]).unwrap();
    m.wait_for_peers().unwrap();

    // A second node on the same directory is refused.
    fails(
        &admin,
        &["run", "--listen", LISTEN, "--no-upnp"],
        &format!("a mutual node is already running for {}", admin.display()),
    );

    // Bad topic names.
    fails(&admin, &["join", "a b"], "bad topic name");
    fails(&admin, &["post", "x/y", "hello"], "bad topic name");
    fails(&admin, &["read", "  "], "bad topic name: it is empty");

    ok(&admin, &["join", "Burnout"]);
    ok(&member, &["join", "burnout"]);
    fails(
        &admin,
        &["post", "anxiety", "hi"],
        "you have not joined topic anxiety",
    );

    // Unknown post ids, short and full, and ids that are not ids.
    fails(
        &admin,
        &["retract", "mp1qqqqqqqq"],
        "no post with id mp1qqqqqqqq",
    );
    fails(
        &admin,
        &["post", "burnout", "re", "--reply-to", "mp1qqqqqqqq"],
        "no post with id",
    );
    fails(&admin, &["mod", "hide", "hello"], "not a valid post id");
    fails(&admin, &["mute", "mu1nope"], "not a valid key");

    let id = ok(&admin, &["post", "burnout", "first"]).trim().to_string();
    assert!(id.starts_with("mp1"), "{id}");
    wait_until("the post on the member's node", || {
        read_json(&member, "burnout").len() == 1
    });

    // Moderation by a member who is not a moderator: refused before
    // anything is published.
    let log_before = json(&admin, &["mod", "list"])["log"].clone();
    let short: String = id.chars().take(11).collect();
    fails(
        &member,
        &["mod", "hide", &short, "--reason", "x"],
        "you are not a moderator of this community",
    );
    fails(
        &member,
        &["mod", "block", &a.key],
        "you are not a moderator",
    );
    fails(
        &member,
        &["mod", "appoint", &m.key],
        "only the community admin (or, for moderators, a co-admin) can change who moderates",
    );
    // Not even the member's own node changed, and nothing reached the admin.
    assert_eq!(json(&member, &["mod", "list"])["log"], log_before);
    ok(&member, &["sync"]);
    let member_posts = read_json(&member, "burnout");
    assert_eq!(member_posts.len(), 1);
    assert_eq!(member_posts[0]["hidden"], false);
    assert_eq!(json(&admin, &["mod", "list"])["log"], log_before);

    // Only the author may retract.
    fails(
        &member,
        &["retract", &short],
        "only the author of a post can retract it",
    );

    // A clean stop on SIGTERM removes the socket; then nothing runs.
    a.terminate().unwrap();
    fails(&admin, &["status"], "no mutual node is running");
    drop(m);
}

#[test]
fn three_daemons_talk_moderate_and_agree() {
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = ["ada", "mo", "kit"]
        .iter()
        .map(|n| root.path().join(n))
        .collect();
    let (a_dir, b_dir, c_dir) = (&dirs[0], &dirs[1], &dirs[2]);
    for (d, name) in dirs.iter().zip(["ada", "mo", "kit"]) {
        init(d, name);
    }
    let rules = root.path().join("rules.txt");
    std::fs::write(&rules, "Be kind.\nNo diagnoses.\n").unwrap();
    let created = json(
        a_dir,
        &[
            "community",
            "create",
            "Quiet Harbour",
            "--rules-file",
            rules.to_str().unwrap(),
            "--probation",
            "0",
        ],
    );
    assert_eq!(created["name"], "Quiet Harbour");
    assert!(ok(a_dir, &["rules"]).contains("No diagnoses."));

    let a = Daemon::start(a_dir, &[]).unwrap();
    // One code for both members: it admits two.
    let code = ok(a_dir, &["invite", "--uses", "2"]).trim().to_string();
    assert!(code.starts_with("mutual-invite:"), "{code}");
    // Members join before their first `run`: the invite is all they need.
    for d in [b_dir, c_dir] {
        let joined = json(d, &["community", "join", &code]);
        assert_eq!(joined["community"]["id"], created["id"]);
        assert!(ok(d, &["rules"]).contains("Be kind."));
    }
    let b = Daemon::start(b_dir, &[]).unwrap();
    let c = Daemon::start(c_dir, &[&b.addr]).unwrap();
    for d in [&a, &b, &c] {
        d.wait_for_peers().unwrap();
    }

    // The admin appoints mo; every node learns it.
    ok(a_dir, &["mod", "appoint", &b.key]);
    for d in &dirs {
        wait_until("the appointment everywhere", || {
            json(d, &["mod", "list"])["moderators"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x["key"] == b.key.as_str()))
        });
    }

    for d in &dirs {
        ok(d, &["join", "burnout"]);
    }
    let topics = json(c_dir, &["topics"]);
    assert_eq!(topics, serde_json::json!([{"name": "burnout", "posts": 0}]));

    let before = node_now();
    let first = ok(
        a_dir,
        &[
            "post",
            "burnout",
            "Third week of 70-hour weeks. I can't tell anyone at work.",
        ],
    )
    .trim()
    .to_string();
    let first_short: String = first.chars().take(11).collect();
    wait_until("ada's post on mo's node", || {
        read_json(b_dir, "burnout").len() == 1
    });
    let reply = json(
        b_dir,
        &[
            "post",
            "burnout",
            "Same here last year. Fridays off saved me.",
            "--reply-to",
            &first_short,
            "--cw",
            "work stress",
        ],
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    // kit posts from standard input.
    let out = mutual(c_dir)
        .args(["post", "burnout", "-"])
        .write_stdin("Just toughen up.\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kits = text(&out.stdout).trim().to_string();
    let after = node_now();

    for d in &dirs {
        wait_until("all three posts on every node", || {
            let n = read_json(d, "burnout").len();
            if n < 3 {
                // Gossip carries posts at once; this only hurries the
                // reconciliation that follows up on anything missed.
                let _ = run(d, &["sync"]);
            }
            n == 3
        });
    }

    // `read --json` on kit's node, field by field.
    let posts = read_json(c_dir, "burnout");
    let fields = [
        "id",
        "topic",
        "author",
        "author_name",
        "created_at",
        "parent",
        "content_warning",
        "body",
        "hidden",
        "hidden_by",
        "hidden_reason",
        "pinned",
        "held",
        "rejected",
    ];
    for p in &posts {
        let mut keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = fields.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "exactly the PostView fields");
    }
    let by_id = |id: &str| {
        posts
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("post {id} in {posts:?}"))
            .clone()
    };
    let p = by_id(&first);
    assert_eq!(p["topic"], "burnout");
    assert_eq!(p["author"], a.key.as_str());
    assert_eq!(p["author_name"], "ada");
    let at = p["created_at"].as_u64().unwrap();
    assert!(
        (before..=after).contains(&at),
        "{before} <= {at} <= {after}"
    );
    assert_eq!(p["parent"], Value::Null);
    assert_eq!(p["content_warning"], Value::Null);
    assert_eq!(
        p["body"],
        "Third week of 70-hour weeks. I can't tell anyone at work."
    );
    assert_eq!(p["hidden"], false);
    assert_eq!(p["hidden_by"], Value::Null);
    assert_eq!(p["hidden_reason"], Value::Null);
    assert_eq!(p["pinned"], false);
    assert_eq!(p["held"], false);
    assert_eq!(p["rejected"], false);
    let r = by_id(&reply);
    assert_eq!(r["author"], b.key.as_str());
    assert_eq!(r["author_name"], "mo");
    assert_eq!(r["parent"], first.as_str());
    assert_eq!(r["content_warning"], "work stress");
    assert_eq!(r["body"], "Same here last year. Fridays off saved me.");
    let k = by_id(&kits);
    assert_eq!(k["body"], "Just toughen up.");
    assert_eq!(k["author"], c.key.as_str());

    // The text view on ada's node: the reply under its parent, its body
    // folded behind the warning unless asked for.
    let view = ok(a_dir, &["read", "burnout"]);
    let lines: Vec<&str> = view.lines().collect();
    let parent_at = lines
        .iter()
        .position(|l| l.starts_with(&first_short))
        .expect("ada's post");
    let reply_short: String = reply.chars().take(11).collect();
    let reply_at = lines
        .iter()
        .position(|l| l.contains(&format!("↳ {reply_short}")))
        .expect("mo's reply, indented");
    assert!(reply_at > parent_at, "{view}");
    assert!(lines[parent_at].contains("ada ("), "{view}");
    assert!(view.contains("CW: work stress"), "{view}");
    assert!(!view.contains("Fridays off"), "{view}");
    assert!(ok(a_dir, &["read", "burnout", "--show-warned"]).contains("Fridays off"));
    let since = ok(a_dir, &["read", "burnout", "--since", "1h", "--limit", "1"]);
    assert!(since.contains("toughen up") && !since.contains("Third week"));

    // mo blocks kit; kit's post vanishes on all three nodes, kit's own too.
    ok(b_dir, &["mod", "block", &c.key, "--reason", "dismissive"]);
    for d in &dirs {
        wait_until("kit's post gone everywhere", || {
            let posts = read_json(d, "burnout");
            posts.len() == 2 && posts.iter().all(|p| p["author"] != c.key.as_str())
        });
    }
    let list = json(c_dir, &["mod", "list"]);
    assert_eq!(list["blocks"][0]["author"], c.key.as_str());
    assert_eq!(list["blocks"][0]["reason"], "dismissive");
    let refused = fails(
        c_dir,
        &["post", "burnout", "again"],
        "the author is blocked",
    );
    assert!(refused.contains("dismissive"), "{refused}");
    let status = json(a_dir, &["status"]);
    assert_eq!(status["community"], "Quiet Harbour");
    assert_eq!(status["posts"], 2);
    drop((a, b, c));
}

fn node_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn the_demo_runs_and_tells_its_story() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["demo"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}",
        text(&out.stderr)
    );
    assert!(stdout.contains("mo blocks kit"), "{stdout}");
    assert!(stdout.contains("late joiner"), "{stdout}");
    assert!(stdout.contains("caught up"), "{stdout}");
    assert!(stdout.contains("river's node refuses it: "), "{stdout}");
    assert!(
        stdout.contains("kit's forced post is on none of them"),
        "{stdout}"
    );
    assert!(stdout.contains("That's mutual."), "{stdout}");
    // The demo works in its own temporary directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
