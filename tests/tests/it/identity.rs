//! Keys a person can keep and protect, through the real `mutual` binary:
//! the recovery phrase (`init`, `init --restore`, `id --phrase`), the
//! passphrase (`--passphrase-file`, `mutual passphrase`, a SIGKILL in the
//! middle of it), damage to a key file, and `mutual forget`.
//! Waiting is polling a condition with a deadline, never a sleep.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Instant;

use mutual_tests::daemon::LISTEN;
use serde_json::Value;

use crate::support::*;

/// A file holding `pass`, for `--passphrase-file`.
fn pass_file(root: &Path, name: &str, pass: &str) -> PathBuf {
    let path = root.join(name);
    std::fs::write(&path, format!("{pass}\n")).unwrap();
    path
}

/// `mutual --passphrase-file FILE ARGS…`.
fn with_pass(dir: &Path, file: &Path, args: &[&str]) -> std::process::Output {
    mutual(dir)
        .arg("--passphrase-file")
        .arg(file)
        .args(args)
        .output()
        .expect("mutual runs")
}

/// `mutual init --restore` with `words` on standard input.
fn restore(dir: &Path, words: &str) -> std::process::Output {
    let mut child = std::process::Command::new(mutual_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(["--json", "init", "--restore"])
        .env_remove("MUTUAL_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(words.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_phrase_restores_the_same_key_and_a_mistyped_one_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let first = root.path().join("laptop");
    let made = json(&first, &["init", "--name", "river"]);
    let author = made["author"].as_str().unwrap().to_string();
    let phrase = made["recovery_phrase"].as_str().unwrap().to_string();
    assert_eq!(phrase.split(' ').count(), 24);
    let shown = json(&first, &["id", "--phrase"]);
    assert_eq!(shown["recovery_phrase"], phrase.as_str());
    assert_eq!(shown["author"], author.as_str());

    // On another machine: the words, one per line, in capitals.
    let second = root.path().join("new-laptop");
    let out = restore(&second, &phrase.to_uppercase().replace(' ', "\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let restored: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(restored["author"], author.as_str());
    assert_eq!(restored["recovery_phrase"], Value::Null, "not printed back");
    assert_eq!(
        json(&second, &["id", "--phrase"])["author"],
        author.as_str()
    );
    assert_eq!(
        json(&second, &["id", "--phrase"])["recovery_phrase"],
        phrase.as_str()
    );

    // A mistyped word, a word too few, and a real word in the wrong place
    // (its checksum): each named, and no directory made.
    let words: Vec<&str> = phrase.split(' ').collect();
    let mut typo = words.clone();
    typo[6] = "rivr";
    let other_word = ["abandon", "ability", "able", "about", "above"]
        .into_iter()
        .find(|w| {
            let mut changed = words.clone();
            changed[0] = w;
            *w != words[0] && node::vault::secret_of_phrase(&changed.join(" ")).is_err()
        })
        .unwrap();
    let mut wrong = words.clone();
    wrong[0] = other_word;
    for (input, said) in [
        (
            typo.join(" "),
            "word 7 (\"rivr\") is not a recovery-phrase word",
        ),
        (
            words[..23].join(" "),
            "a recovery phrase has 24 words; this has 23",
        ),
        (
            wrong.join(" "),
            "the words do not add up (their checksum is wrong)",
        ),
    ] {
        let dir = root.path().join("typo");
        let out = restore(&dir, &input);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(said), "{said:?} in {stderr:?}");
        assert!(stderr.contains("nothing was written"), "{stderr}");
        assert!(!stderr.contains(words[1]), "the words are not echoed");
        assert!(!dir.exists(), "no directory was made");
    }
}

#[test]
fn a_flipped_bit_in_the_author_key_stops_the_node_naming_the_file_and_the_phrase() {
    let root = tempfile::tempdir().unwrap();
    let dir = mutual_tests::daemon::admin_dir(root.path(), "river").unwrap();
    let key = dir.join("vault").join("author");
    let mut bytes = std::fs::read(&key).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x08;
    std::fs::write(&key, &bytes).unwrap();
    let out = mutual(&dir)
        .args(["run", "--listen", LISTEN, "--no-upnp", "--no-ui"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: {} is damaged", key.display())),
        "{stderr}"
    );
    assert!(stderr.contains("recovery phrase"), "{stderr}");
    assert!(stderr.contains("mutual init --restore"), "{stderr}");
    assert!(!dir.join("store").exists(), "the node never started");
    fails(&dir, &["id", "--phrase"], "is damaged");
}

#[test]
fn a_wrong_passphrase_changes_nothing_and_after_a_change_only_the_new_one_opens() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("d");
    let old = pass_file(root.path(), "old", "blue lantern at dusk");
    let new = pass_file(root.path(), "new", "seven quiet herons");
    let wrong = pass_file(root.path(), "wrong", "blue lantern at dawn");
    let out = with_pass(&dir, &old, &["--json", "init", "--name", "river"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(made["passphrase"], true);
    assert!(with_pass(&dir, &old, &["community", "create", "Circle"])
        .status
        .success());

    let before = snapshot(&dir);
    fails(&dir, &["rules"], "locked with a passphrase");
    // Without the app (which could take it, see web_cli.rs), `run` has
    // nowhere to ask.
    fails(
        &dir,
        &["run", "--no-ui", "--no-upnp"],
        "locked with a passphrase",
    );
    for args in [
        &["rules"][..],
        &["id", "--phrase"],
        &["passphrase", "--remove"],
    ] {
        let out = with_pass(&dir, &wrong, args);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("wrong passphrase for"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_eq!(snapshot(&dir), before, "nothing changed");

    let out = with_pass(
        &dir,
        &old,
        &["passphrase", "--new-passphrase-file", new.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = snapshot(&dir);
    let changed: Vec<&PathBuf> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| &a.0)
        .collect();
    assert_eq!(before.len(), after.len());
    assert_eq!(changed, vec![&dir.join("vault").join("master")]);
    assert!(!with_pass(&dir, &old, &["rules"]).status.success());
    let out = with_pass(&dir, &new, &["rules"]);
    assert!(
        text(&out.stdout).starts_with("Circle"),
        "{}",
        text(&out.stderr)
    );

    // Removed (with --yes, not being at a terminal): no passphrase needed.
    fails(
        &dir,
        &["passphrase", "--remove"],
        "locked with a passphrase",
    );
    assert!(with_pass(&dir, &new, &["passphrase", "--remove", "--yes"])
        .status
        .success());
    assert!(ok(&dir, &["rules"]).starts_with("Circle"));
}

#[test]
fn sigkill_during_a_passphrase_change_leaves_the_old_or_the_new_one() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("d");
    let a = pass_file(root.path(), "a", "first passphrase");
    let b = pass_file(root.path(), "b", "second passphrase");
    assert!(with_pass(&dir, &a, &["init"]).status.success());
    let opens = |file: &Path| with_pass(&dir, file, &["id", "--phrase"]).status.success();
    let change = |from: &Path, to: &Path| {
        let mut c = std::process::Command::new(mutual_bin());
        c.arg("--data-dir")
            .arg(&dir)
            .arg("--passphrase-file")
            .arg(from)
            .args(["passphrase", "--new-passphrase-file"])
            .arg(to)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    // How long a whole change takes (two Argon2id derivations), so the
    // kills below land all along it.
    let started = Instant::now();
    assert!(change(&a, &b).status().unwrap().success());
    let whole = started.elapsed();
    let (mut current, mut other) = (b.clone(), a.clone());
    let (mut old_kept, mut new_kept) = (0, 0);
    const KILLS: u32 = 12;
    for i in 0..KILLS {
        let mut child = change(&current, &other).spawn().unwrap();
        let at = whole * (i + 1) / KILLS;
        // Not a wait for a condition: the moment of the kill, spread along
        // the measured length of a change.
        std::thread::sleep(at);
        let _ = child.kill();
        let _ = child.wait();
        match (opens(&current), opens(&other)) {
            (true, false) => old_kept += 1,
            (false, true) => {
                new_kept += 1;
                std::mem::swap(&mut current, &mut other);
            }
            both => panic!("after a kill at {at:?}: opens with old, new = {both:?}"),
        }
    }
    assert_eq!(old_kept + new_kept, KILLS);
    eprintln!(
        "{KILLS} kills along {whole:?}: {old_kept} kept the old passphrase, {new_kept} the new one"
    );
}

#[test]
fn forget_stops_the_running_node_and_removes_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = mutual_tests::daemon::admin_dir(root.path(), "river").unwrap();
    let mut daemon = Daemon::start(&dir, &[]).unwrap();
    ok(&dir, &["join", "t"]);
    ok(&dir, &["post", "t", "something to forget"]);

    let before = snapshot(&dir);
    fails(&dir, &["forget"], "give --yes to confirm");
    assert_eq!(
        snapshot(&dir).len(),
        before.len(),
        "nothing removed without --yes"
    );
    let said = ok(&dir, &["forget", "--yes"]);
    assert!(said.contains("The running node stopped."), "{said}");
    let status = daemon.wait_exit().unwrap();
    assert!(status.success(), "the node stopped cleanly: {status}");
    assert!(!dir.exists(), "the directory is gone");
    fails(&dir, &["forget", "--yes"], "does not exist");

    // A directory that is not mutual's is left alone.
    let foreign = root.path().join("thesis");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("chapter.tex"), b"x").unwrap();
    fails(
        &foreign,
        &["forget", "--yes"],
        "is not a mutual data directory",
    );
    assert!(foreign.join("chapter.tex").exists());
}

/// Issue 16's stolen-laptop test: a node with a passphrase joins a topic,
/// posts, mutes and reports; afterwards no file anywhere under the data
/// directory (the store included) shows a marker word of a post, the
/// topic's name, the pseudonym, the community's name or a key.
#[test]
fn with_a_passphrase_no_file_of_the_data_directory_shows_a_word_a_name_or_a_key() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("d");
    let pass = pass_file(root.path(), "pass", "lantern");
    let pseudonym = "Marigoldwren";
    let community = "Quietharbour";
    let out = with_pass(&dir, &pass, &["--json", "init", "--name", pseudonym]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let author = made["author"].as_str().unwrap().to_string();
    let phrase = made["recovery_phrase"].as_str().unwrap().to_string();
    assert!(with_pass(&dir, &pass, &["community", "create", community])
        .status
        .success());
    // The node runs (the app makes its secret, the node its port file).
    let wrapper = format!("MUTUAL_PASSPHRASE_FILE={}", pass.display());
    let daemon = Daemon::start_via(&dir, &[], &["env", &wrapper]).unwrap();
    let peer_id = daemon.peer_id.clone();
    let topic = "lanternmoths";
    let body = "Ceruleanfox wrote about the Vermilionheron at work";
    ok(&dir, &["join", topic]);
    let posted = mutual(&dir)
        .args(["post", topic, "-"])
        .write_stdin(body)
        .output()
        .unwrap();
    assert!(posted.status.success(), "{}", text(&posted.stderr));
    let shown = read_json(&dir, topic);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["body"], body);
    // A clean stop: the store flushes everything it holds.
    daemon.terminate().unwrap();
    assert!(dir.join("vault").join("web.secret").exists());

    let secret = node::vault::secret_of_phrase(&phrase).unwrap();
    let public = protocol::PublicKey::from_str(&author).unwrap();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("the pseudonym", pseudonym.as_bytes().to_vec()),
        (
            "the pseudonym, lower case",
            pseudonym.to_lowercase().into_bytes(),
        ),
        ("the community's name", community.as_bytes().to_vec()),
        ("the author key, printed", author.clone().into_bytes()),
        ("the author key's bytes", public.as_bytes().to_vec()),
        ("the secret key's bytes", secret.to_bytes().to_vec()),
        ("the peer id", peer_id.into_bytes()),
        ("the topic's name", topic.as_bytes().to_vec()),
        ("a word of the post", b"Ceruleanfox".to_vec()),
        ("another word of the post", b"Vermilionheron".to_vec()),
    ];
    let files = snapshot(&dir);
    assert!(
        files.iter().any(|(p, _)| p.starts_with(dir.join("store"))),
        "the store's files are among those searched"
    );
    for (path, bytes) in &files {
        for (what, needle) in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == &needle[..]),
                "{what} is readable in {}",
                path.display()
            );
        }
    }
}

#[test]
fn an_earlier_versions_directory_is_sealed_at_first_open_under_the_passphrase_given() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("old");
    // As an earlier version's `init` and `community create` left it.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("MUTUAL"), b"marker\n").unwrap();
    let secret = protocol::SecretKey::generate();
    std::fs::write(dir.join("author.key"), secret.to_bytes()).unwrap();
    let transport = libp2p::identity::Keypair::generate_ed25519();
    std::fs::write(
        dir.join("transport.key"),
        transport.to_protobuf_encoding().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("pseudonym"), "Marigoldwren\n").unwrap();
    let manifest = protocol::CommunityManifest::create("Quietharbour", "", &secret, 1).unwrap();
    std::fs::write(dir.join("community"), protocol::wire::encode(&manifest)).unwrap();
    let pass = pass_file(root.path(), "pass", "lantern");

    let out = with_pass(&dir, &pass, &["rules"]);
    assert!(
        text(&out.stdout).starts_with("Quietharbour"),
        "{}",
        text(&out.stderr)
    );
    for old in ["author.key", "transport.key", "pseudonym", "community"] {
        assert!(!dir.join(old).exists(), "{old} is gone");
    }
    fails(&dir, &["rules"], "locked with a passphrase");
    let shown: Value =
        serde_json::from_slice(&with_pass(&dir, &pass, &["--json", "id", "--phrase"]).stdout)
            .unwrap();
    assert_eq!(shown["author"], secret.public().to_string().as_str());
    let daemon = Daemon::start_via(
        &dir,
        &[],
        &["env", &format!("MUTUAL_PASSPHRASE_FILE={}", pass.display())],
    )
    .unwrap();
    assert_eq!(
        daemon.peer_id,
        transport.public().to_peer_id().to_string(),
        "the same transport key"
    );
    let id = json(&dir, &["id"]);
    assert_eq!(id["name"], "Marigoldwren");
}

/// Runs `mutual --data-dir DIR ARGS…` at a terminal (a pseudo-terminal
/// made by `script`, from util-linux), giving `answer` the output since its
/// last reply each time more arrives; what it returns is typed. Returns
/// everything shown and whether the command succeeded.
fn at_terminal(
    dir: &Path,
    args: &[&str],
    mut answer: impl FnMut(&str, &str) -> Option<String>,
) -> (String, bool) {
    use std::io::Read;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut command = vec![
        quote(mutual_bin().to_str().unwrap()),
        "--data-dir".into(),
        quote(dir.to_str().unwrap()),
    ];
    command.extend(args.iter().map(|a| quote(a)));
    let mut child = std::process::Command::new("script")
        .args(["-qefc", &command.join(" "), "/dev/null"])
        .env_remove("MUTUAL_DATA_DIR")
        .env_remove("MUTUAL_PASSPHRASE_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let (mut all, mut answered) = (String::new(), 0);
    let end = Instant::now() + DEADLINE;
    loop {
        match rx.recv_timeout(POLL) {
            Ok(bytes) => all.push_str(&String::from_utf8_lossy(&bytes)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(reply) = answer(&all[answered..], &all) {
            answered = all.len();
            stdin.write_all(reply.as_bytes()).unwrap();
        }
        assert!(Instant::now() < end, "the command hung at: {all}");
    }
    let status = child.wait().unwrap();
    (all, status.success())
}

/// Word `n` (from 1) of the numbered phrase `init` printed in `shown`.
fn word_shown(shown: &str, n: usize) -> String {
    let tokens: Vec<&str> = shown.split_whitespace().collect();
    let label = format!("{n}.");
    let at = tokens.iter().position(|t| *t == label).unwrap();
    tokens[at + 1].to_string()
}

#[test]
fn at_a_terminal_init_asks_the_passphrase_twice_and_three_words_back() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("d");
    let mut asked_words = 0;
    let mut wrong_once = false;
    let (shown, ok) = at_terminal(&dir, &["init", "--name", "river"], |new, all| {
        if new.contains("New passphrase (empty for none): ")
            || new.contains("The same passphrase again: ")
        {
            return Some("kestrel over water\n".into());
        }
        let prompt = new.trim_end().rsplit("type word ").next()?;
        let n: usize = prompt.strip_suffix(':')?.parse().ok()?;
        if !wrong_once {
            wrong_once = true;
            return Some("notaword\n".into());
        }
        asked_words += 1;
        Some(format!("{}\n", word_shown(all, n)))
    });
    assert!(ok, "{shown}");
    assert_eq!(asked_words, 3, "{shown}");
    assert!(shown.contains("That is not the word"), "{shown}");
    assert!(shown.contains("Write these 24 words on paper"), "{shown}");
    // (Whether the passphrase is echoed is not asserted: rpassword shows
    // the prompt before it turns echo off, so a reply typed at once could
    // race it; a person types after the prompt.)
    assert!(shown.contains("its keys under your passphrase"), "{shown}");

    // Locked: a command asks for it at the terminal, and it opens.
    let (shown, ok) = at_terminal(&dir, &["id", "--phrase"], |new, _| {
        new.contains("Passphrase for ")
            .then(|| "kestrel over water\n".to_string())
    });
    assert!(ok, "{shown}");
    assert!(shown.contains(" 1. "), "{shown}");

    // `forget` wants the word typed.
    let (shown, ok) = at_terminal(&dir, &["forget"], |new, _| {
        new.contains("Type forget to go on: ")
            .then(|| "no\n".to_string())
    });
    assert!(!ok && shown.contains("not forgotten"), "{shown}");
    assert!(dir.exists());
    let (shown, ok) = at_terminal(&dir, &["forget"], |new, _| {
        new.contains("Type forget to go on: ")
            .then(|| "forget\n".to_string())
    });
    assert!(ok, "{shown}");
    assert!(!dir.exists());
}
