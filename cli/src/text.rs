//! Where the text of a post or a report comes from: standard input or the
//! person's editor, so it never stands in the command line. A command
//! line is readable by every user of the computer (`ps`, `/proc`) while the
//! command runs, and often lands in the shell's history; a post about one's
//! boss or a report's reason should not. Text given inline still works,
//! with a warning.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::Ctx;

/// What the text is, for messages and limits.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// A post's body.
    Post,
    /// A report's reason.
    Reason,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Post => "post",
            Kind::Reason => "reason",
        }
    }

    /// Bytes read at most: a little over what the node accepts, so a
    /// too-long text gets the node's precise message and a wrong file (a
    /// video) is not read whole.
    fn read_limit(self) -> u64 {
        node::control::MAX_REQUEST_BYTES as u64
    }

    /// How to give the text without the command line.
    fn how(self) -> &'static str {
        match self {
            Kind::Post => {
                "`mutual post TOPIC -` (standard input) or `mutual post TOPIC` (your editor)"
            }
            Kind::Reason => {
                "`mutual report POST --reason -` (standard input) or `mutual report POST` \
                 (your editor)"
            }
        }
    }
}

/// Where the text comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Given on the command line (visible in `ps`).
    Inline(String),
    /// Standard input.
    Stdin,
    /// A temporary file opened in the editor.
    Editor,
}

/// The source for an argument: `-` is standard input; no argument is the
/// editor on a terminal and standard input otherwise (a pipe or a file).
pub(crate) fn source(arg: Option<&str>, stdin_is_terminal: bool) -> Source {
    match arg {
        Some("-") => Source::Stdin,
        Some(text) => Source::Inline(text.to_string()),
        None if stdin_is_terminal => Source::Editor,
        None => Source::Stdin,
    }
}

/// The source for this process's argument.
pub(crate) fn source_of(arg: Option<&str>) -> Source {
    source(arg, std::io::stdin().is_terminal())
}

/// The editor command: `$EDITOR`, then `$VISUAL` (each only when set and
/// not blank).
pub(crate) fn editor_from(editor: Option<String>, visual: Option<String>) -> Option<String> {
    [editor, visual]
        .into_iter()
        .flatten()
        .map(|e| e.trim().to_string())
        .find(|e| !e.is_empty())
}

/// The text from `source` (trailing white space removed), refusing an
/// empty one. `Inline` is returned as it is (the warning comes from
/// [`warn_inline`]).
pub(crate) fn obtain(ctx: &Ctx, source: &Source, kind: Kind) -> Result<String> {
    let text = match source {
        Source::Inline(text) => return Ok(text.clone()),
        Source::Stdin => from_stdin(kind)?,
        Source::Editor => {
            let editor =
                editor_from(non_empty_env("EDITOR"), non_empty_env("VISUAL")).ok_or_else(|| {
                    anyhow::anyhow!(
                        "no editor to write the {} in: set EDITOR (such as `export EDITOR=nano`), \
                         or pipe the text in: {}",
                        kind.noun(),
                        kind.how()
                    )
                })?;
            from_editor(&editor, ctx.data.path(), kind)?
        }
    };
    let text = text.trim_end().to_string();
    if text.trim().is_empty() {
        anyhow::bail!("the {} is empty, so nothing was sent", kind.noun());
    }
    Ok(text)
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// After an inline text was used: one line on stderr saying it was
/// visible, and how to avoid that next time.
pub(crate) fn warn_inline(source: &Source, kind: Kind) {
    if matches!(source, Source::Inline(_)) {
        let _ = writeln!(
            std::io::stderr(),
            "warning: the {} stood in the command line, where other users of this computer can \
             read it (`ps`) while the command runs; next time use {}",
            kind.noun(),
            kind.how()
        );
    }
}

fn from_stdin(kind: Kind) -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let _ = writeln!(
            std::io::stderr(),
            "Type your {}, then press Ctrl-D on a new line.",
            kind.noun()
        );
    }
    let bytes = read_bounded(stdin.lock(), kind)
        .with_context(|| format!("cannot read the {} from standard input", kind.noun()))?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("the {} on standard input is not UTF-8 text", kind.noun()))
}

fn read_bounded(reader: impl Read, kind: Kind) -> Result<Vec<u8>> {
    let limit = kind.read_limit();
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        anyhow::bail!(
            "the {} is over {} KiB; a post is at most {} bytes and a reason {}",
            kind.noun(),
            limit / 1024,
            protocol::MAX_BODY_BYTES,
            protocol::MAX_REASON_BYTES
        );
    }
    Ok(bytes)
}

/// Opens `editor` on an empty temporary file in `dir` (the data directory,
/// mode 0700; the file is 0600) and returns what was written in it. The
/// file is deleted afterwards, whatever happened. The editor command is run
/// by `sh`, so it may carry options (`code --wait`).
pub(crate) fn from_editor(editor: &str, dir: &Path, kind: Kind) -> Result<String> {
    if !dir.is_dir() {
        anyhow::bail!("{} does not exist; run `mutual init` first", dir.display());
    }
    let file = tempfile::Builder::new()
        .prefix(&format!("{}-draft-", kind.noun()))
        .suffix(".txt")
        .tempfile_in(dir)
        .with_context(|| format!("cannot make a draft file in {}", dir.display()))?;
    node::datadir::set_mode(file.path(), 0o600)?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg(editor)
        .arg(file.path())
        .status()
        .with_context(|| format!("cannot start the editor `{editor}`"))?;
    if !status.success() {
        anyhow::bail!(
            "the editor `{editor}` ended with {status}, so nothing was sent; set EDITOR to \
             another editor, or pipe the text in: {}",
            kind.how()
        );
    }
    // Read by path: an editor may replace the file rather than write to it.
    let opened = std::fs::File::open(file.path())
        .with_context(|| format!("cannot read the draft {}", file.path().display()))?;
    let bytes = read_bounded(opened, kind)?;
    file.close()
        .with_context(|| format!("cannot delete the draft in {}", dir.display()))?;
    String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!(
            "the {} written in the editor is not UTF-8 text",
            kind.noun()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_follows_the_argument_and_the_terminal() {
        assert_eq!(source(Some("-"), true), Source::Stdin);
        assert_eq!(source(Some("-"), false), Source::Stdin);
        assert_eq!(source(Some("hi"), false), Source::Inline("hi".into()));
        assert_eq!(source(None, true), Source::Editor);
        assert_eq!(source(None, false), Source::Stdin);
    }

    #[test]
    fn editor_then_visual() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(editor_from(s("nano"), s("code -w")), s("nano"));
        assert_eq!(editor_from(None, s("code -w")), s("code -w"));
        assert_eq!(editor_from(s("  "), s("vi")), s("vi"));
        assert_eq!(editor_from(None, None), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_editor_writes_in_a_private_draft_in_the_data_dir_that_is_deleted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spy = dir.path().join("spy");
        std::fs::create_dir(&spy).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        // An "editor" with an option, that notes where it was asked to
        // write and the file's mode, then writes the text.
        let script = spy.join("ed.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n[ \"$1\" = --wait ] || exit 3\necho \"$2\" > {spy}/path\n\
                 stat -c %a \"$2\" > {spy}/mode\nprintf 'rough week\\n\\n' > \"$2\"\n",
                spy = spy.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        let editor = format!("{} --wait", script.display());
        let text = from_editor(&editor, &data, Kind::Post).unwrap();
        assert_eq!(text.trim_end(), "rough week");
        let path = std::fs::read_to_string(spy.join("path")).unwrap();
        let path = Path::new(path.trim());
        assert_eq!(path.parent(), Some(data.as_path()));
        assert_eq!(
            std::fs::read_to_string(spy.join("mode")).unwrap().trim(),
            "600"
        );
        assert!(!path.exists(), "the draft is deleted");
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);

        // A failing editor sends nothing and leaves nothing.
        let err = from_editor("false", &data, Kind::Reason).unwrap_err();
        assert!(err.to_string().contains("nothing was sent"), "{err}");
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    }
}
