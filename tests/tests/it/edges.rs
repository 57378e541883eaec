//! The local edges of the real `mutual` binary: a busy or stuck control
//! socket, open `read --follow` screens that must show what was taken
//! back, post and report texts kept out of the command line, text that
//! cannot spoof the screen, and a data directory that `mutual run` keeps
//! private and repairs or refuses clearly.
//!
//! Daemons listen on 127.0.0.1 only. Waiting is always polling a condition
//! with a deadline, never a sleep.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use crate::support::*;

/// A `mutual run` child process whose log goes to a file, killed when
/// dropped.
struct LoggedDaemon {
    child: Child,
    log: PathBuf,
}

impl LoggedDaemon {
    /// Starts `mutual run` on `dir` at log level `level` and waits until it
    /// answers `mutual id`.
    fn start(dir: &Path, level: &str) -> LoggedDaemon {
        let log = dir.with_extension("log");
        let child = StdCommand::new(mutual_bin())
            .arg("--data-dir")
            .arg(dir)
            .args(["run", "--listen", LISTEN, "--no-upnp"])
            .env_remove("MUTUAL_DATA_DIR")
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("mutual run starts");
        let mut daemon = LoggedDaemon { child, log };
        wait_until("the daemon to answer `mutual id`", || {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("mutual run exited early ({status}): {}", daemon.log_text());
            }
            run(dir, &["id"]).status.success()
        });
        daemon
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LoggedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data directory with an identity and a community of its own.
fn admin_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    init(&dir, name);
    ok(&dir, &["community", "create", "Circle"]);
    dir
}

/// `mutual ARGS` with `input` on standard input: (success, stdout, stderr).
fn with_stdin(dir: &Path, args: &[&str], input: &str) -> (bool, String, String) {
    let out = mutual(dir)
        .args(args)
        .write_stdin(input.as_bytes().to_vec())
        .output()
        .unwrap();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn bodies(dir: &Path, topic: &str) -> Vec<String> {
    read_json(dir, topic)
        .iter()
        .filter_map(|p| p["body"].as_str().map(str::to_string))
        .collect()
}

/// Opens a raw connection to the node's control socket.
fn raw_connection(dir: &Path) -> UnixStream {
    UnixStream::connect(dir.join("mutual.sock")).expect("the socket answers")
}

#[test]
fn a_busy_node_is_reported_and_a_post_given_up_on_is_never_published() {
    let root = tempfile::tempdir().unwrap();
    let dir = admin_dir(root.path(), "river");
    let daemon = LoggedDaemon::start(&dir, "info");
    ok(&dir, &["join", "t"]);

    // Clients that connect and say nothing take every request slot.
    let silent: Vec<UnixStream> = (0..64).map(|_| raw_connection(&dir)).collect();
    let started = Instant::now();
    let err = fails(
        &dir,
        &["--timeout", "2", "status"],
        "did not answer within 2 s",
    );
    assert!(
        err.contains(&format!(
            "the node at {} did not answer within 2 s (waiting for its answer to `status`): is \
             it busy or stuck?",
            dir.display()
        )),
        "{err}"
    );
    // A post the person gives up on (the client's own time limit here; a
    // killed client is the same to the node).
    let out = mutual(&dir)
        .args(["--timeout", "2", "post", "t", "-"])
        .write_stdin("given up on")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("did not answer within 2 s (waiting for its answer to `post`)"),
        "{err}"
    );
    assert!(err.contains("it may still carry the request out"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(9),
        "both gave up before the node's 10 s line limit freed a slot"
    );
    // The slots free up (the node lets silent clients go after 10 s; here
    // they leave), and the node reaches the post: proof it was read.
    drop(silent);
    wait_until("the node to drop the abandoned post", || {
        daemon
            .log_text()
            .contains("the client of a `post` request hung up before it was carried out")
    });
    assert!(
        bodies(&dir, "t").is_empty(),
        "the given-up post was not published"
    );
    let (posted, _, stderr) = with_stdin(&dir, &["post", "t", "-"], "kept");
    assert!(posted, "{stderr}");
    assert_eq!(bodies(&dir, "t"), vec!["kept".to_string()]);

    // Sixty-four open follows do not keep `status` out; a 65th is refused.
    let mut follows = Vec::new();
    for _ in 0..64 {
        let mut f = raw_connection(&dir);
        f.write_all(b"{\"cmd\":\"follow\",\"topic\":\"t\",\"events\":true}\n")
            .unwrap();
        let mut reader = BufReader::new(f.try_clone().unwrap());
        let mut ack = String::new();
        reader.read_line(&mut ack).unwrap();
        assert_eq!(ack.trim(), r#"{"ok":true,"result":null}"#);
        follows.push(f);
    }
    let status = json(&dir, &["--timeout", "5", "status"]);
    assert_eq!(status["posts"], 1);
    fails(
        &dir,
        &["read", "t", "--follow"],
        "this node already streams to 64 followers (`read --follow`), its most; stop one",
    );
    drop(follows);
}

/// A `mutual read --follow` child whose output lines arrive on a channel.
struct FollowScreen {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl FollowScreen {
    fn start(dir: &Path, topic: &str) -> FollowScreen {
        let mut child = StdCommand::new(mutual_bin())
            .arg("--data-dir")
            .arg(dir)
            .args(["read", topic, "--follow"])
            .env_remove("MUTUAL_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        FollowScreen {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `what`; returns it.
    fn wait_for(&mut self, what: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(what)) {
                return line.clone();
            }
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {what:?} on the screen: {:?}", self.seen),
            }
        }
    }
}

impl Drop for FollowScreen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_open_screen_shows_retractions_and_hides() {
    let root = tempfile::tempdir().unwrap();
    let dir = admin_dir(root.path(), "river");
    let _daemon = LoggedDaemon::start(&dir, "warn");
    ok(&dir, &["join", "t"]);
    let (_, early, _) = with_stdin(&dir, &["post", "t", "-"], "before the screen opened");
    let early = early.trim().to_string();
    let mut screen = FollowScreen::start(&dir, "t");
    screen.wait_for("before the screen opened");
    // Posted in a panic, taken back: the open screen says so.
    let (_, panic, _) = with_stdin(&dir, &["post", "t", "-"], "my manager is Sam from floor 3");
    let panic = panic.trim().to_string();
    screen.wait_for("my manager is Sam");
    ok(&dir, &["retract", &panic]);
    let line = screen.wait_for("[retracted by its author]");
    assert_eq!(line, format!("[retracted by its author] {}", &panic[..11]));
    // A moderator hides the older post.
    ok(
        &dir,
        &["mod", "hide", &early, "--reason", "names a colleague"],
    );
    let line = screen.wait_for("[hidden by a moderator]");
    assert_eq!(line, format!("[hidden by a moderator] {}", &early[..11]));
}

/// An "editor" for `$EDITOR`: writes `text` into the file it is given.
fn fake_editor(root: &Path, text: &str) -> PathBuf {
    let script = root.join("editor.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' '{text}' > \"$1\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    script
}

/// Runs `mutual ARGS` with a terminal as standard input (through
/// util-linux `script`); `None` where `script` is missing.
fn on_a_terminal(dir: &Path, args: &str, env: &[(&str, &str)]) -> Option<(bool, String)> {
    let command = format!(
        "{} --data-dir {} {args}",
        mutual_bin().display(),
        dir.display()
    );
    let mut cmd = StdCommand::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .env_remove("MUTUAL_DATA_DIR")
        .env_remove("EDITOR")
        .env_remove("VISUAL")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().ok()?;
    let mut all = text(&out.stdout);
    all.push_str(&text(&out.stderr));
    Some((out.status.success(), all))
}

#[test]
fn texts_come_from_standard_input_or_the_editor_and_inline_text_warns() {
    let root = tempfile::tempdir().unwrap();
    let dir = admin_dir(root.path(), "river");
    let _daemon = LoggedDaemon::start(&dir, "warn");
    ok(&dir, &["join", "t"]);
    let visible = "stood in the command line";

    let (posted, id, stderr) = with_stdin(&dir, &["post", "t", "-"], "from a pipe\n");
    assert!(posted, "{stderr}");
    assert!(!stderr.contains(visible), "{stderr}");
    let id = id.trim().to_string();
    // Without `-`, a pipe is read too.
    let (posted, _, stderr) = with_stdin(&dir, &["post", "t", "--reply-to", &id], "a reply");
    assert!(posted, "{stderr}");
    assert!(!stderr.contains(visible), "{stderr}");
    // Nothing to post is refused.
    let (posted, _, stderr) = with_stdin(&dir, &["post", "t"], "  \n");
    assert!(!posted);
    assert!(
        stderr.contains("the post is empty, so nothing was sent"),
        "{stderr}"
    );
    // Inline still works, with a warning.
    let out = run(&dir, &["post", "t", "inline"]);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "warning: the post stood in the command line, where other users of this computer \
             can read it (`ps`) while the command runs; next time use `mutual post TOPIC -`"
        ),
        "{stderr}"
    );
    assert_eq!(
        bodies(&dir, "t"),
        vec!["from a pipe", "a reply", "inline"],
        "in posting order"
    );

    // Reports the same way.
    let (reported, _, stderr) = with_stdin(&dir, &["report", &id, "--reason", "-"], "private");
    assert!(reported, "{stderr}");
    assert!(!stderr.contains(visible), "{stderr}");
    let out = run(&dir, &["report", &id, "--reason", "inline reason"]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("warning: the reason stood in the command line"),
        "{}",
        text(&out.stderr)
    );
    let reasons: Vec<String> = json(&dir, &["mod", "queue"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, vec!["private", "inline reason"]);

    // On a terminal with no text: the editor, or a clear way out.
    let editor = fake_editor(root.path(), "written in the editor");
    let editor = editor.to_str().unwrap();
    let Some((posted, out)) = on_a_terminal(&dir, "post t", &[("EDITOR", editor)]) else {
        eprintln!("util-linux `script` is missing: the editor path is left to the unit test");
        return;
    };
    assert!(posted, "{out}");
    assert!(!out.contains(visible), "{out}");
    assert!(bodies(&dir, "t").contains(&"written in the editor".to_string()));
    let (posted, out) = on_a_terminal(&dir, "post t", &[("VISUAL", editor)]).unwrap();
    assert!(posted, "{out}");
    let (posted, out) = on_a_terminal(&dir, "post t", &[]).unwrap();
    assert!(!posted);
    assert!(
        out.contains("no editor to write the post in: set EDITOR"),
        "{out}"
    );
    let (reported, out) =
        on_a_terminal(&dir, &format!("report {id}"), &[("EDITOR", editor)]).unwrap();
    assert!(reported, "{out}");
    // No draft is left behind.
    let drafts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("-draft-"))
        .collect();
    assert!(drafts.is_empty(), "{drafts:?}");
}

#[test]
fn text_output_cannot_be_spoofed_and_json_stays_exact() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("river");
    let name = "ad\u{200B}min\u{202E}";
    ok(&dir, &["init", "--name", name]);
    ok(&dir, &["community", "create", "Circle\u{2066}"]);
    let _daemon = LoggedDaemon::start(&dir, "warn");
    ok(&dir, &["join", "t"]);
    let body = "pay \u{202E}txt.exe\u{200D} now\x1b[2J";
    let (posted, _, stderr) = with_stdin(&dir, &["post", "t", "-"], body);
    assert!(posted, "{stderr}");
    let screen = ok(&dir, &["read", "t"]);
    assert!(
        screen.contains("ad\\u{200B}min\\u{202E} ("),
        "the pseudonym: {screen}"
    );
    assert!(
        screen.contains("pay \\u{202E}txt.exe\\u{200D} now\\u{1B}[2J"),
        "the body: {screen}"
    );
    for c in ['\u{200B}', '\u{202E}', '\u{200D}', '\x1b'] {
        assert!(!screen.contains(c), "{c:?} in {screen:?}");
    }
    let rules = ok(&dir, &["rules"]);
    assert!(rules.starts_with("Circle\\u{2066} ("), "{rules}");
    // JSON is exact.
    let posts = read_json(&dir, "t");
    assert_eq!(posts[0]["body"], body);
    assert_eq!(posts[0]["author_name"], name);
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `mutual run` that must fail at start: its stderr.
fn run_fails(dir: &Path) -> String {
    let out = mutual(dir)
        .args(["run", "--listen", LISTEN, "--no-upnp"])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    text(&out.stderr)
}

#[test]
fn run_keeps_the_data_dir_private_and_repairs_or_refuses_what_it_finds() {
    let root = tempfile::tempdir().unwrap();
    let dir = admin_dir(root.path(), "river");
    let vault = dir.join("vault");

    // A loosened key and a lost transport key.
    let author_key = vault.join("author");
    set_mode(&author_key, 0o644);
    set_mode(&dir, 0o755);
    std::fs::remove_file(vault.join("transport")).unwrap();
    let daemon = LoggedDaemon::start(&dir, "warn");
    let log = daemon.log_text();
    assert!(
        log.contains(&format!(
            "{} was open to other users (mode 644); made it private to you",
            author_key.display()
        )),
        "{log}"
    );
    assert!(log.contains("(mode 755); made it private"), "{log}");
    assert!(
        log.contains(&format!(
            "the transport key was missing, so a new one is in {}",
            vault.join("transport").display()
        )),
        "{log}"
    );
    assert_eq!(mode_of(&author_key), 0o600);
    assert_eq!(mode_of(&dir), 0o700);
    // What the node made while running (the store's files, the socket) is
    // private too: the binary runs under umask 077.
    ok(&dir, &["join", "t"]);
    ok(&dir, &["post", "t", "stored"]);
    drop(daemon);
    for (path, _) in snapshot(&dir) {
        let mode = mode_of(&path);
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
    }
    assert!(
        !snapshot(&dir.join("store")).is_empty(),
        "the store has files"
    );
    assert_eq!(mode_of(&dir.join("store")), 0o700);

    // A damaged community file is named.
    let community = vault.join("community");
    std::fs::write(&community, b"garbage").unwrap();
    let err = run_fails(&dir);
    assert!(
        err.contains(&format!("error: {} is damaged", community.display())),
        "{err}"
    );
    assert!(err.contains("join the community again"), "{err}");
    fails(
        &dir,
        &["rules"],
        &format!("{} is damaged", community.display()),
    );
}
