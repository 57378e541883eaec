//! Printing: lines to stdout (a closed pipe ends the command quietly),
//! JSON lines, relative times, author labels and threaded posts.
//!
//! Everything that came from the network (bodies, pseudonyms, reasons,
//! content warnings, community names and rules) goes through [`clean`] or
//! [`clean_line`] first: control characters, bidirectional overrides and
//! zero-width characters show as visible escapes (`\u{202E}`), so a post
//! cannot send escape sequences to the reader's terminal nor make text,
//! or a pseudonym, look like something else. JSON output stays exact.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::io::{self, Write};
use std::str::FromStr;

use node::api::{ActorView, PostView};
use node::handle::RemovalReason;
use protocol::PublicKey;
use serde::Serialize;

/// Deepest indentation of replies; deeper replies line up at this depth.
const MAX_INDENT_DEPTH: usize = 6;
/// Spaces per reply level.
const INDENT: &str = "    ";

/// Prints one line to stdout.
pub(crate) fn line(text: impl Display) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// Prints a value as one line of JSON.
pub(crate) fn json(value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string(value)?;
    Ok(line(text)?)
}

/// Text from the network made safe to show ([`protocol::display::display_safe`]):
/// control characters (escape sequences, carriage returns, …),
/// bidirectional controls and zero-width characters become visible escapes
/// such as `\u{1B}`; newlines and tabs stay.
pub(crate) fn clean(text: &str) -> String {
    protocol::display::display_safe(text).into_owned()
}

/// Like [`clean`], on one line: newlines become spaces too.
pub(crate) fn clean_line(text: &str) -> String {
    clean(text).replace(['\n', '\t'], " ")
}

/// The short key fingerprint shown next to a pseudonym.
pub(crate) fn fingerprint(key: &str) -> String {
    PublicKey::from_str(key)
        .map(|k| k.short())
        .unwrap_or_else(|_| clean_line(&key.chars().take(11).collect::<String>()))
}

/// "pseudonym (fingerprint)", or "anonymous (fingerprint)".
pub(crate) fn who(name: Option<&str>, key: &str) -> String {
    let name = name
        .map(clean_line)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "anonymous".into());
    format!("{name} ({})", fingerprint(key))
}

/// An actor of the moderation log or a hide.
pub(crate) fn actor(a: &ActorView) -> String {
    who(a.name.as_deref(), &a.key)
}

/// The 11-character form of a printable id (`mp1` + 8), which the node
/// resolves back while it is unique.
pub(crate) fn short_id(id: &str) -> String {
    clean_line(&id.chars().take(11).collect::<String>())
}

/// The short form of the `id` in a node's `{"id": …}` answer (an action
/// just taken), or nothing.
pub(crate) fn answered_id(result: &serde_json::Value) -> String {
    result
        .get("id")
        .and_then(serde_json::Value::as_str)
        .map(short_id)
        .unwrap_or_default()
}

/// The line `read --follow` prints when a post on screen goes away.
pub(crate) fn removal_line(id: &str, reason: RemovalReason) -> String {
    let why = match reason {
        RemovalReason::Retracted => "retracted by its author",
        RemovalReason::Hidden => "hidden by a moderator",
        RemovalReason::Blocked => "its author was blocked by a moderator",
    };
    format!("[{why}] {}", short_id(id))
}

/// The line `read --follow` prints when a post is pinned or unpinned.
pub(crate) fn pin_line(id: &str, pinned: bool) -> String {
    let what = if pinned { "pinned" } else { "unpinned" };
    format!("[{what}] {}", short_id(id))
}

/// How long ago `at_ms` was, at `now_ms`: "just now", "5m ago", "3h ago", …
pub(crate) fn ago(now_ms: u64, at_ms: u64) -> String {
    if at_ms > now_ms {
        let ahead = (at_ms - now_ms) / 1000;
        return if ahead < 60 {
            "just now".into()
        } else {
            format!("in {} (clock ahead)", span(ahead))
        };
    }
    let secs = (now_ms - at_ms) / 1000;
    if secs < 60 {
        "just now".into()
    } else {
        format!("{} ago", span(secs))
    }
}

fn span(secs: u64) -> String {
    match secs {
        0..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        86_400..=2_591_999 => format!("{}d", secs / 86_400),
        2_592_000..=31_535_999 => format!("{}mo", secs / 2_592_000),
        _ => format!("{}y", secs / 31_536_000),
    }
}

/// Bytes for people: "512 B", "1.5 MiB".
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

/// How to render posts.
#[derive(Clone, Copy)]
pub(crate) struct Style {
    /// The current time, for relative times.
    pub(crate) now_ms: u64,
    /// Show bodies behind content warnings.
    pub(crate) show_warned: bool,
}

/// One post at reply depth `depth`, as lines. With `mark_reply`, a reply
/// names the post it answers.
pub(crate) fn post_lines(post: &PostView, depth: usize, style: Style, mark_reply: bool) -> String {
    let pad = INDENT.repeat(depth.min(MAX_INDENT_DEPTH));
    let arrow = if depth > 0 { "↳ " } else { "" };
    let mut header = format!(
        "{pad}{arrow}{}  {} · {}",
        short_id(&post.id),
        who(post.author_name.as_deref(), &post.author),
        ago(style.now_ms, post.created_at)
    );
    if post.pinned {
        header.push_str(" · pinned");
    }
    if post.held {
        header
            .push_str(" · waiting for a moderator's approval (only you and the moderators see it)");
    }
    if mark_reply {
        if let Some(parent) = &post.parent {
            header.push_str(&format!(" · reply to {}", short_id(parent)));
        }
    }
    let body_pad = format!("{pad}{}  ", if depth > 0 { "  " } else { "" });
    let mut out = vec![header];
    if post.hidden {
        let by = post
            .hidden_by
            .as_ref()
            .map(actor)
            .unwrap_or_else(|| "a moderator".into());
        let reason = post
            .hidden_reason
            .as_deref()
            .map(clean_line)
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "no reason given".into());
        let what = if post.rejected { "rejected" } else { "hidden" };
        out.push(format!("{body_pad}[{what} by {by}: {reason}]"));
    } else {
        let body = post.body.as_deref().map(clean).unwrap_or_default();
        match &post.content_warning {
            Some(cw) if !style.show_warned => {
                out.push(format!(
                    "{body_pad}CW: {} (folded; --show-warned to read)",
                    clean_line(cw)
                ));
            }
            Some(cw) => {
                out.push(format!("{body_pad}CW: {}", clean_line(cw)));
                out.extend(body.lines().map(|l| format!("{body_pad}{l}")));
            }
            None => out.extend(body.lines().map(|l| format!("{body_pad}{l}"))),
        }
    }
    out.join("\n")
}

/// Orders posts for reading: pinned posts first, then threads oldest first
/// (so the newest is last), each reply under its parent. Returns each post
/// with its depth. `posts` may come in any order.
pub(crate) fn thread_order(posts: &[PostView]) -> Vec<(&PostView, usize)> {
    let mut sorted: Vec<&PostView> = posts.iter().collect();
    sorted.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let shown: HashSet<&str> = sorted.iter().map(|p| p.id.as_str()).collect();
    let is_root = |p: &PostView| {
        p.pinned
            || p.parent
                .as_deref()
                .is_none_or(|parent| !shown.contains(parent))
    };
    let mut children: HashMap<&str, Vec<&PostView>> = HashMap::new();
    for p in &sorted {
        if !is_root(p) {
            if let Some(parent) = p.parent.as_deref() {
                children.entry(parent).or_default().push(p);
            }
        }
    }
    let (pinned, unpinned): (Vec<&PostView>, Vec<&PostView>) = sorted
        .iter()
        .copied()
        .filter(|p| is_root(p))
        .partition(|p| p.pinned);
    let mut out = Vec::with_capacity(sorted.len());
    let mut seen: HashSet<&str> = HashSet::new();
    for root in pinned.into_iter().chain(unpinned) {
        // Depth-first without recursion: a long reply chain cannot
        // overflow the stack.
        let mut stack = vec![(root, 0usize)];
        while let Some((p, depth)) = stack.pop() {
            if !seen.insert(p.id.as_str()) {
                continue;
            }
            out.push((p, depth));
            if let Some(kids) = children.get(p.id.as_str()) {
                for kid in kids.iter().rev() {
                    stack.push((*kid, depth + 1));
                }
            }
        }
    }
    out
}

/// The posts of a read, threaded, as text.
pub(crate) fn thread_text(posts: &[PostView], style: Style) -> String {
    thread_order(posts)
        .into_iter()
        // A reply shown at the top level (pinned, or its parent is not
        // shown) names its parent.
        .map(|(p, depth)| post_lines(p, depth, style, depth == 0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(id: &str, at: u64, parent: Option<&str>) -> PostView {
        PostView {
            id: id.into(),
            topic: "t".into(),
            author: "mu1xyz".into(),
            author_name: Some("river".into()),
            created_at: at,
            parent: parent.map(str::to_string),
            content_warning: None,
            body: Some(format!("body of {id}")),
            hidden: false,
            hidden_by: None,
            hidden_reason: None,
            pinned: false,
            held: false,
            rejected: false,
        }
    }

    #[test]
    fn threads_pinned_first_replies_under_parents_newest_last() {
        let mut pinned = post("p4", 4, None);
        pinned.pinned = true;
        let posts = vec![
            post("p1", 1, None),
            post("p2", 2, None),
            post("p3", 3, Some("p1")),
            pinned,
            post("p5", 5, Some("p3")),
            post("p6", 6, Some("gone")),
        ];
        let order: Vec<(&str, usize)> = thread_order(&posts)
            .into_iter()
            .map(|(p, d)| (p.id.as_str(), d))
            .collect();
        assert_eq!(
            order,
            vec![
                ("p4", 0),
                ("p1", 0),
                ("p3", 1),
                ("p5", 2),
                ("p2", 0),
                ("p6", 0)
            ]
        );
    }

    #[test]
    fn warned_hidden_and_hostile_text_render_safely() {
        let style = Style {
            now_ms: 10 * 3_600_000,
            show_warned: false,
        };
        let mut p = post("mp1abcdefghijk", 7 * 3_600_000, None);
        p.content_warning = Some("self-harm".into());
        p.body = Some("secret\x1b[2J".into());
        let text = post_lines(&p, 0, style, false);
        assert!(text.contains("CW: self-harm"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("3h ago"), "{text}");
        assert!(text.contains("mp1abcdefgh "), "{text}");
        let shown = post_lines(
            &p,
            1,
            Style {
                show_warned: true,
                ..style
            },
            false,
        );
        assert!(shown.contains("secret\\u{1B}[2J"), "{shown}");
        assert!(!shown.contains('\x1b'));

        let mut h = post("mp1zzzzzzzzzz", 0, None);
        h.hidden = true;
        h.body = None;
        h.hidden_by = Some(ActorView {
            key: "mu1qqqqqqqqqqqq".into(),
            name: Some("mo".into()),
        });
        h.hidden_reason = Some("unkind".into());
        let text = post_lines(&h, 0, style, false);
        assert!(text.contains("[hidden by mo ("), "{text}");
        assert!(text.ends_with(": unkind]"), "{text}");
    }

    #[test]
    fn spoofing_characters_show_as_escapes_in_every_network_text() {
        use protocol::display::is_unsafe_for_display;
        let style = Style {
            now_ms: 0,
            show_warned: true,
        };
        let mut p = post("mp1abcdefghijk", 0, None);
        p.author_name = Some("ad\u{200B}min\u{202E}".into());
        p.body = Some("pay \u{2066}here\u{2069}\nline two\u{200D}".into());
        p.content_warning = Some("cw\u{FEFF}\u{202A}".into());
        let text = post_lines(&p, 0, style, false);
        assert!(text.contains("ad\\u{200B}min\\u{202E} ("), "{text}");
        assert!(text.contains("pay \\u{2066}here\\u{2069}"), "{text}");
        assert!(text.contains("line two\\u{200D}"), "{text}");
        assert!(text.contains("CW: cw\\u{FEFF}\\u{202A}"), "{text}");
        let mut h = post("mp1zzzzzzzzzz", 0, None);
        h.hidden = true;
        h.body = None;
        h.hidden_by = Some(ActorView {
            key: "mu1qqqqqqqqqqqq".into(),
            name: Some("mo\u{202D}d".into()),
        });
        h.hidden_reason = Some("spam\u{2060}\r".into());
        let hidden = post_lines(&h, 0, style, false);
        assert!(hidden.contains("mo\\u{202D}d ("), "{hidden}");
        assert!(hidden.ends_with(": spam\\u{2060}\\u{0D}]"), "{hidden}");
        for shown in [&text, &hidden] {
            assert!(
                !shown.chars().any(|c| c != '\n' && is_unsafe_for_display(c)),
                "{shown:?}"
            );
        }
        // Single-line texts lose their line breaks too.
        assert_eq!(clean_line("a\nb\u{202E}"), "a b\\u{202E}");
    }

    #[test]
    fn follow_changes_read_as_what_happened() {
        let id = "mp1abcdefghijklmnop";
        assert_eq!(
            removal_line(id, RemovalReason::Retracted),
            "[retracted by its author] mp1abcdefgh"
        );
        assert_eq!(
            removal_line(id, RemovalReason::Hidden),
            "[hidden by a moderator] mp1abcdefgh"
        );
        assert_eq!(
            removal_line(id, RemovalReason::Blocked),
            "[its author was blocked by a moderator] mp1abcdefgh"
        );
        assert_eq!(pin_line(id, true), "[pinned] mp1abcdefgh");
        assert_eq!(pin_line(id, false), "[unpinned] mp1abcdefgh");
    }

    #[test]
    fn times_and_sizes_read_naturally() {
        assert_eq!(ago(100_000, 90_000), "just now");
        assert_eq!(ago(10 * 60_000, 0), "10m ago");
        assert_eq!(ago(3 * 86_400_000, 0), "3d ago");
        assert_eq!(ago(400 * 86_400_000, 0), "1y ago");
        assert_eq!(ago(0, 10 * 60_000), "in 10m (clock ahead)");
        assert_eq!(bytes(100), "100 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
