//! The moderator's queue through the real `mutual` binary: a report row
//! shows the reported post's topic, author and text, and every id and key
//! the commands print (short or full) is taken back by the commands that
//! take one. Daemons listen on 127.0.0.1 only; waiting is polling a
//! condition with a deadline, never a sleep.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

/// The first word of `screen` that starts with `prefix`, trimmed of
/// punctuation: how a person copies an id off the screen.
fn printed(screen: &str, prefix: &str) -> String {
    screen
        .split(|c: char| c.is_whitespace() || "(),:".contains(c))
        .find(|w| w.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}… on screen: {screen}"))
        .to_string()
}

/// The fingerprint printed next to `name` ("name (fingerprint)").
fn fingerprint(screen: &str, name: &str) -> String {
    let at = screen
        .find(&format!("{name} ("))
        .unwrap_or_else(|| panic!("{name} not on screen: {screen}"));
    screen[at + name.len() + 2..]
        .chars()
        .take_while(|c| *c != ')')
        .collect()
}

fn queue(dir: &Path) -> Vec<Value> {
    json(dir, &["mod", "queue"]).as_array().cloned().unwrap()
}

#[test]
fn the_queue_shows_the_post_and_its_printed_ids_and_keys_are_taken_back() {
    let root = tempfile::tempdir().unwrap();
    let (admin, member, _a, k) = admin_and_member(root.path());
    ok(&admin, &["join", "vent"]);
    ok(&member, &["join", "vent"]);

    let full = ok(&member, &["post", "vent", "a hard night, again"])
        .trim()
        .to_string();
    wait_until("kit's post on ada's node", || {
        read_json(&admin, "vent").len() == 1
    });
    // The short post id as `read` prints it; the reporter uses it.
    let post_short = printed(&ok(&member, &["read", "vent"]), "mp1");
    assert!(full.starts_with(&post_short) && post_short.len() < full.len());
    let out = mutual(&member)
        .args(["report", &post_short, "--reason", "-"])
        .write_stdin("looks like a crisis")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    wait_until("the report in ada's queue", || queue(&admin).len() == 1);
    let row = &queue(&admin)[0];
    assert_eq!(row["post"], full.as_str());
    assert_eq!(row["reason"], "looks like a crisis");
    assert_eq!(row["reported"]["topic"], "vent");
    assert_eq!(row["reported"]["body"], "a hard night, again");
    assert_eq!(row["reported"]["author"]["key"], k.key.as_str());
    assert_eq!(row["reported"]["author"]["name"], "kit");

    let screen = ok(&admin, &["mod", "queue"]);
    assert!(screen.contains("in vent by kit ("), "{screen}");
    assert!(screen.contains("| a hard night, again"), "{screen}");
    let report_short = printed(&screen, "ma1");
    assert!(row["id"].as_str().unwrap().starts_with(&report_short));
    let kit_short = fingerprint(&screen, "in vent by kit");
    assert!(
        k.key.starts_with(&format!("mu1{kit_short}")),
        "{kit_short} is kit's"
    );

    // Unknown and malformed short forms are refused clearly, changing nothing.
    fails(
        &admin,
        &["mute", "qqqqqqqq"],
        "no key starting with qqqqqqqq",
    );
    fails(&admin, &["mod", "hide", "ma1qqqqqqqq"], "no report with id");
    fails(&admin, &["mod", "hide", "mp1qqqqqqqq"], "no post");
    assert_eq!(
        json(&admin, &["mod", "list"])["hidden"],
        Value::Array(vec![])
    );

    // The printed fingerprint names kit in a mute.
    ok(&admin, &["mute", &kit_short]);
    assert!(read_json(&admin, "vent").is_empty(), "kit is muted");
    ok(&admin, &["unmute", &kit_short]);
    assert_eq!(read_json(&admin, "vent").len(), 1);

    // The report's printed id names its post in `mod hide`.
    ok(&admin, &["mod", "hide", &report_short]);
    let hidden = json(&admin, &["mod", "list"])["hidden"].clone();
    assert!(hidden.to_string().contains(&full), "{hidden}");
    ok(&admin, &["mod", "unhide", &post_short]);
    assert_eq!(
        json(&admin, &["mod", "list"])["hidden"],
        Value::Array(vec![])
    );

    // And the author retracts by the short id `read` printed.
    ok(&member, &["retract", &post_short]);
    assert!(read_json(&member, "vent").is_empty());

    // The printed fingerprint, bare and prefixed, names kit in a block
    // (last: a block deletes kit's posts, and an unblock brings them back
    // only through sync).
    ok(&admin, &["mod", "block", &kit_short, "--reason", "test"]);
    assert_eq!(
        json(&admin, &["mod", "list"])["blocks"][0]["author"],
        k.key.as_str()
    );
    ok(&admin, &["mod", "unblock", &format!("mu1{kit_short}")]);
    assert_eq!(
        json(&admin, &["mod", "list"])["blocks"],
        Value::Array(vec![])
    );
}
