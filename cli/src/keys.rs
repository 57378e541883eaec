//! Keys at rest, as a person handles them: `init` (with its recovery
//! phrase and passphrase, or `--restore`), `id --phrase`, `passphrase`,
//! `forget` and `shutdown`, and the passphrase every command that opens the
//! data directory asks for.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use node::control::{self, ControlError, Request};
use node::datadir::InitOptions;
use node::vault::{self, KdfParams, PHRASE_WORDS};
use node::NodeError;
use protocol::SecretKey;
use serde_json::json;
use zeroize::Zeroizing;

use crate::output::{self, line};
use crate::Ctx;

/// Largest passphrase file or phrase read: a passphrase or 24 words are far
/// less; this only keeps a wrong file from being read whole.
const MAX_SECRET_INPUT_BYTES: u64 = 4096;
/// How long `forget` and `shutdown` wait for a running node to stop.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// Options of `mutual init`.
#[derive(Args, Debug)]
pub(crate) struct InitArgs {
    /// A pseudonym shown next to your posts (optional).
    #[arg(long, value_name = "PSEUDONYM")]
    name: Option<String>,
    /// Rebuild your identity from its 24-word recovery phrase (typed at the
    /// terminal, or read from standard input when it is not one). A new
    /// transport key is made: peers see this node under a new peer id.
    #[arg(long)]
    restore: bool,
    /// Do not ask to type words of the recovery phrase back.
    #[arg(long)]
    no_confirm: bool,
    /// Keep the keys without a passphrase (anyone who copies the data
    /// directory can then use them). Without this flag or a
    /// --passphrase-file, a terminal asks for one.
    #[arg(long, conflicts_with = "passphrase_file")]
    no_passphrase: bool,
}

/// Options of `mutual passphrase`.
#[derive(Args, Debug)]
pub(crate) struct PassphraseArgs {
    /// Read the new passphrase from this file (its first line; the current
    /// one comes from --passphrase-file or the terminal).
    #[arg(long, value_name = "FILE", conflicts_with = "remove")]
    new_passphrase_file: Option<std::path::PathBuf>,
    /// Remove the passphrase: the keys are then kept without one.
    #[arg(long)]
    remove: bool,
    /// Do not ask to confirm --remove.
    #[arg(long)]
    yes: bool,
}

fn terminal() -> bool {
    std::io::stdin().is_terminal()
}

fn note(text: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr(), "{}", text.as_ref());
}

/// The passphrase in `path`: its first line, without the line break.
pub(crate) fn passphrase_from_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_INPUT_BYTES).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
    let end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len());
    let mut pass = Zeroizing::new(bytes.get(..end).unwrap_or_default().to_vec());
    if pass.last() == Some(&b'\r') {
        pass.pop();
    }
    if pass.is_empty() {
        anyhow::bail!(
            "the passphrase file {} is empty; write the passphrase on its first line",
            path.display()
        );
    }
    Ok(pass)
}

/// Asks for a passphrase at the terminal, without echo.
fn ask(prompt: &str) -> Result<Zeroizing<Vec<u8>>> {
    let text = rpassword::prompt_password(prompt).context("cannot read the passphrase")?;
    Ok(Zeroizing::new(text.into_bytes()))
}

/// A new passphrase typed twice at the terminal (`None`: left empty).
fn ask_new() -> Result<Option<Zeroizing<Vec<u8>>>> {
    for _ in 0..3 {
        let first = ask("New passphrase (empty for none): ")?;
        if first.is_empty() {
            return Ok(None);
        }
        let again = ask("The same passphrase again: ")?;
        if first == again {
            return Ok(Some(first));
        }
        note("The two passphrases differ; try again.");
    }
    anyhow::bail!("the passphrases typed differed three times; nothing was changed")
}

const NO_PASSPHRASE_WARNING: &str = "No passphrase: anyone who copies this data directory \
    (IT's backup of the laptop, say) can read your keys and post as you. `mutual passphrase` \
    sets one later.";

impl Ctx {
    /// Unlocks the data directory's vault for the command: with
    /// --passphrase-file, or asked at the terminal; a locked vault with
    /// neither is a clear error. A vault without a passphrase needs
    /// nothing (and an earlier version's directory is converted, under the
    /// --passphrase-file passphrase if one is given).
    pub(crate) fn unlock(&self) -> Result<()> {
        self.unlock_here()
    }

    /// Whether only the app can unlock the vault for `mutual run`: it has a
    /// passphrase, no --passphrase-file was given and there is no terminal
    /// to ask at.
    pub(crate) fn needs_app_unlock(&self) -> Result<bool> {
        Ok(self.data.has_identity()
            && self.passphrase_file.is_none()
            && !terminal()
            && self.data.is_locked()?)
    }

    fn unlock_here(&self) -> Result<()> {
        if !self.data.has_identity() {
            return Ok(());
        }
        if let Some(file) = &self.passphrase_file {
            let pass = passphrase_from_file(file)?;
            return Ok(self.data.unlock(Some(&pass))?);
        }
        if !self.data.is_locked()? {
            return Ok(self.data.unlock(None)?);
        }
        if !terminal() {
            return Err(NodeError::Locked(self.data.path().display().to_string()).into());
        }
        let pass = ask(&format!("Passphrase for {}: ", self.data.path().display()))?;
        Ok(self.data.unlock(Some(&pass))?)
    }
}

/// `mutual init [--name PSEUDONYM] [--restore] …`.
pub(crate) fn init(ctx: &Ctx, args: InitArgs) -> Result<()> {
    ctx.check_dir()?;
    if ctx.data.has_identity() {
        return Err(NodeError::IdentityExists(ctx.data.path().display().to_string()).into());
    }
    let name = node::datadir::check_pseudonym(args.name)?;
    // Everything asked before anything is written: a wrong word or an
    // interrupted prompt leaves no directory behind.
    let restored = if args.restore {
        Some(read_phrase()?)
    } else {
        None
    };
    let passphrase = if let Some(file) = &ctx.passphrase_file {
        Some(passphrase_from_file(file)?)
    } else if args.no_passphrase {
        None
    } else if terminal() {
        note("A passphrase keeps your keys and posts unreadable to anyone who copies this computer's files.");
        let pass = ask_new()?;
        if pass.is_none() {
            note(NO_PASSPHRASE_WARNING);
        }
        pass
    } else {
        note("No passphrase (standard input is not a terminal; give --passphrase-file FILE for one, or --no-passphrase to say so).");
        None
    };
    let is_restore = restored.is_some();
    let secret = restored.unwrap_or_else(SecretKey::generate);
    let phrase = vault::phrase_of(&secret);
    if !is_restore && !ctx.json {
        show_phrase(&phrase)?;
        if terminal() && !args.no_confirm {
            confirm_phrase(&phrase)?;
        } else {
            note("(Not checked that you wrote the phrase down: --no-confirm, or not a terminal.)");
        }
    }
    let has_passphrase = passphrase.is_some();
    let identity = ctx.data.init_with(InitOptions {
        name,
        passphrase,
        kdf: Some(KdfParams::DEFAULT),
        secret: Some(secret),
    })?;
    let author = identity.public().to_string();
    if ctx.json {
        // A restored identity's phrase is the one typed: not printed back.
        let shown = (!is_restore).then_some(phrase.as_str());
        return output::json(&json!({
            "author": author,
            "name": identity.name,
            "data_dir": ctx.data.path().display().to_string(),
            "passphrase": has_passphrase,
            "restored": is_restore,
            "recovery_phrase": shown,
        }));
    }
    line(format!(
        "{} identity {} in {}{}.",
        if is_restore { "Restored" } else { "Created" },
        output::who(identity.name.as_deref(), &author),
        ctx.data.path().display(),
        if has_passphrase {
            ", its keys under your passphrase"
        } else {
            ""
        }
    ))?;
    line(format!("Your key: {author}"))?;
    if is_restore {
        line("This node has a new peer id; your posts and roles are those of the key above.")?;
    }
    line("Next: `mutual community create NAME` to start a community, or `mutual community join INVITE` to join one.")?;
    Ok(())
}

/// Prints the recovery phrase, numbered, with what to do with it.
pub(crate) fn show_phrase(phrase: &str) -> Result<()> {
    line("Your recovery phrase, the only way back to this identity if this computer is lost or its keys are damaged:")?;
    line("")?;
    let words: Vec<&str> = phrase.split(' ').collect();
    for row in words.chunks(4).enumerate() {
        let (r, chunk) = row;
        let cells: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{:>2}. {w:<10}", r * 4 + i + 1))
            .collect();
        line(format!("  {}", cells.join(" ").trim_end()))?;
    }
    line("")?;
    line("Write these 24 words on paper and keep it at home, away from work: not on this computer, not in a photo or a cloud note. Anyone who has them can post as you.")?;
    Ok(())
}

/// Asks for three words of the phrase back, until they are right.
fn confirm_phrase(phrase: &str) -> Result<()> {
    use rand::seq::index::sample;
    let words: Vec<&str> = phrase.split(' ').collect();
    let mut picks = sample(&mut rand::thread_rng(), words.len(), 3).into_vec();
    picks.sort_unstable();
    let stdin = std::io::stdin();
    for &i in &picks {
        loop {
            let _ = write!(
                std::io::stderr(),
                "To check you wrote it down, type word {}: ",
                i + 1
            );
            let mut typed = String::new();
            if stdin.lock().read_line(&mut typed)? == 0 {
                anyhow::bail!("no answer; nothing was written, run `mutual init` again");
            }
            if Some(typed.trim().to_lowercase().as_str()) == words.get(i).copied() {
                break;
            }
            note("That is not the word; look at what you wrote and try again.");
        }
    }
    note("Thank you: the phrase is written down.");
    Ok(())
}

/// The author key of the recovery phrase typed at the terminal or given on
/// standard input. The words are never written anywhere.
fn read_phrase() -> Result<SecretKey> {
    let stdin = std::io::stdin();
    let mut text = Zeroizing::new(String::new());
    if terminal() {
        note(format!(
            "Type your {PHRASE_WORDS} recovery words, separated by spaces or on several lines; Enter on an empty line when done."
        ));
        let mut lock = stdin.lock();
        loop {
            let mut l = Zeroizing::new(String::new());
            if lock.read_line(&mut l)? == 0 || l.trim().is_empty() {
                break;
            }
            text.push_str(&l);
            text.push(' ');
            if text.split_whitespace().count() >= PHRASE_WORDS {
                break;
            }
        }
    } else {
        let mut bytes = Zeroizing::new(Vec::new());
        stdin
            .lock()
            .take(MAX_SECRET_INPUT_BYTES)
            .read_to_end(&mut bytes)
            .context("cannot read the recovery phrase from standard input")?;
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    vault::secret_of_phrase(&text).map_err(|e| anyhow::anyhow!("{e}; nothing was written"))
}

/// `mutual id --phrase`: the recovery phrase again, after the passphrase.
pub(crate) fn show_recovery(ctx: &Ctx) -> Result<()> {
    ctx.check_dir()?;
    ctx.unlock()?;
    let identity = ctx.data.identity()?;
    let phrase = vault::phrase_of(&identity.secret);
    let author = identity.public().to_string();
    if ctx.json {
        return output::json(&json!({ "author": author, "recovery_phrase": phrase.as_str() }));
    }
    line(format!("author   {author}"))?;
    show_phrase(&phrase)
}

/// `mutual passphrase`: sets, changes or removes the passphrase.
pub(crate) fn passphrase(ctx: &Ctx, args: PassphraseArgs) -> Result<()> {
    ctx.check_dir()?;
    if !ctx.data.has_identity() {
        return Err(NodeError::NoIdentity(ctx.data.path().display().to_string()).into());
    }
    ctx.unlock()?;
    let new = if args.remove {
        None
    } else if let Some(file) = &args.new_passphrase_file {
        Some(passphrase_from_file(file)?)
    } else if terminal() {
        ask_new()?
    } else {
        anyhow::bail!(
            "give the new passphrase with --new-passphrase-file FILE, or --remove to keep the keys without one"
        );
    };
    if new.is_none() && !args.yes {
        if !terminal() {
            anyhow::bail!("removing the passphrase needs --yes (standard input is not a terminal); nothing was changed");
        }
        note(NO_PASSPHRASE_WARNING);
        let _ = write!(std::io::stderr(), "Remove the passphrase? Type yes: ");
        let mut typed = String::new();
        std::io::stdin().lock().read_line(&mut typed)?;
        if typed.trim() != "yes" {
            anyhow::bail!("not removed; nothing was changed");
        }
    }
    ctx.data
        .set_passphrase(new.as_ref().map(|p| p.as_slice()), KdfParams::DEFAULT)?;
    let said = match new {
        Some(_) => "The passphrase is set: only it opens the keys from now on.",
        None => "The passphrase is removed: the keys open without one.",
    };
    if ctx.json {
        return output::json(&json!({ "passphrase": said.starts_with("The passphrase is set") }));
    }
    line(said)?;
    Ok(())
}

/// Asks the node running for this data directory to stop and waits until
/// it has (its control socket gone). `Ok(false)`: none was running.
async fn stop_node(ctx: &Ctx) -> Result<bool> {
    let socket = ctx.data.socket_path();
    match control::request_within(
        &socket,
        &Request::Shutdown,
        ctx.wait_for(&Request::Shutdown),
    )
    .await
    {
        Ok(_) | Err(ControlError::Closed) => {}
        Err(ControlError::NotRunning(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let end = Instant::now() + STOP_WAIT;
    while socket.exists() {
        if Instant::now() > end {
            anyhow::bail!(
                "the node for {} was asked to stop but still runs after {} s; stop it (Ctrl-C in its terminal) and try again",
                ctx.data.path().display(),
                STOP_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(true)
}

/// `mutual shutdown`: stops the running node.
pub(crate) async fn shutdown(ctx: &Ctx) -> Result<()> {
    ctx.check_dir()?;
    if !stop_node(ctx).await? {
        return Err(ControlError::NotRunning(ctx.data.path().display().to_string()).into());
    }
    if ctx.json {
        return output::json(&json!({ "stopped": true }));
    }
    line("The node stopped; its store is flushed.")?;
    Ok(())
}

/// `mutual forget [--yes]`: stops the node and destroys the data directory.
pub(crate) async fn forget(ctx: &Ctx, yes: bool) -> Result<()> {
    let dir = ctx.data.path().display().to_string();
    if !ctx.data.path().exists() {
        anyhow::bail!("{dir} does not exist: nothing to forget");
    }
    ctx.check_dir()?;
    if !yes {
        if !terminal() {
            anyhow::bail!("`mutual forget` destroys {dir} for good: give --yes to confirm (standard input is not a terminal)");
        }
        note(format!(
            "This destroys {dir}: your keys, your community and every post stored here, for good. Only your recovery phrase can bring the identity back."
        ));
        let _ = write!(std::io::stderr(), "Type forget to go on: ");
        let mut typed = String::new();
        std::io::stdin().lock().read_line(&mut typed)?;
        if typed.trim() != "forget" {
            anyhow::bail!("not forgotten; nothing was changed");
        }
    }
    let stopped = stop_node(ctx).await?;
    ctx.data.forget()?;
    if ctx.json {
        return output::json(&json!({ "forgotten": dir, "stopped_node": stopped }));
    }
    if stopped {
        line("The running node stopped.")?;
    }
    line(format!(
        "Forgot {dir}: its keys were overwritten and every file removed."
    ))?;
    Ok(())
}
