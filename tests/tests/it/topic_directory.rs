//! Issue 18's topic directory: a moderator describes topics, the signed
//! descriptions reach every member (one who joined none of them included),
//! `mutual topics --all` lists them marked joined or not, and a member
//! still joins any name. Nodes listen on 127.0.0.1 only; waits poll a
//! condition with a deadline.

use crate::support::*;

#[test]
fn the_directory_reaches_a_member_and_topics_all_shows_it() {
    let root = tempfile::tempdir().unwrap();
    let (admin, member, _a, _k) = admin_and_member(root.path());

    ok(
        &admin,
        &[
            "topics",
            "describe",
            "grief",
            "losing someone, and living on",
        ],
    );
    ok(
        &admin,
        &[
            "topics",
            "describe",
            "burnout",
            "when work takes everything",
        ],
    );
    ok(&member, &["join", "burnout"]);
    fails(
        &member,
        &["topics", "describe", "grief", "mine now"],
        "moderator",
    );

    wait_until("the directory on kit's node", || {
        json(&member, &["topics", "--all"])["directory"]
            .as_array()
            .is_some_and(|d| d.len() == 2)
    });
    let screen = ok(&member, &["topics", "--all"]);
    let line_of = |name: &str| {
        screen
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not listed: {screen}"))
            .to_string()
    };
    assert!(line_of("burnout").contains("[joined]"), "{screen}");
    assert!(line_of("burnout").contains("when work takes everything"));
    assert!(!line_of("grief").contains("[joined]"), "{screen}");
    assert!(line_of("grief").contains("losing someone, and living on"));

    // Any name can still be joined; a removal reaches the member too.
    ok(&member, &["join", "night-owls"]);
    ok(&admin, &["topics", "describe", "grief", ""]);
    wait_until("grief out of kit's directory", || {
        json(&member, &["topics", "--all"])["directory"]
            .as_array()
            .is_some_and(|d| d.len() == 1)
    });
    let screen = ok(&member, &["topics", "--all"]);
    assert!(!screen.contains("grief"), "{screen}");
    assert!(
        screen.contains("night-owls"),
        "joined, not listed: {screen}"
    );

    // A newcomer sees the directory and the newest rules at `community
    // join`, before their node ever ran; a running member's `mutual rules`
    // shows the newest version too.
    let rules_file = root.path().join("rules.txt");
    std::fs::write(&rules_file, "Second rules: listen first.").unwrap();
    ok(
        &admin,
        &["community", "rules", "--file", rules_file.to_str().unwrap()],
    );
    wait_until("the new rules on kit's node", || {
        ok(&member, &["rules"]).contains("Second rules: listen first.")
    });
    assert!(ok(&member, &["rules"]).contains("Rules (version"));
    let lee = root.path().join("lee");
    init(&lee, "lee");
    let code = ok(&admin, &["invite"]);
    let joined = ok(&lee, &["community", "join", code.trim()]);
    assert!(joined.contains("Second rules: listen first."), "{joined}");
    let burnout = joined
        .lines()
        .find(|l| l.contains("burnout"))
        .unwrap_or_else(|| panic!("the directory at join: {joined}"));
    assert!(burnout.contains("when work takes everything"), "{joined}");
    // Offline, `mutual rules` says which rules it shows.
    assert!(ok(&lee, &["rules"]).contains("As the community was created"));
}
