//! `mutual`: the command line of a mutual node. It parses, then either
//! works on the data directory (init, community, rules), runs a node in the
//! foreground (`run`), asks a running node over its control socket
//! (everything else), or runs the in-process demo; then prints.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod approval;
mod args;
mod client;
mod connect;
mod daemon;
mod demo;
mod directory;
mod doctor;
mod info;
mod invitations;
mod keys;
mod moderation;
mod offline;
mod output;
mod posts;
mod reports;
mod succession;
mod text;
mod ui;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// The parsed command line.
#[derive(Parser, Debug)]
#[command(
    name = "mutual",
    version,
    about = "Peer support with no central host",
    long_about = "Peer support with no central host.\n\nStart with `mutual init`, then \
                  `mutual community create NAME` or `mutual community join INVITE`, then \
                  `mutual run` in one terminal and the other commands in another."
)]
struct Cli {
    /// The node's data directory (keys, community, store, control socket).
    #[arg(long, global = true, env = "MUTUAL_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Read the passphrase of the data directory's keys from this file
    /// (its first line) instead of asking at the terminal.
    #[arg(
        long,
        global = true,
        env = "MUTUAL_PASSPHRASE_FILE",
        value_name = "FILE"
    )]
    passphrase_file: Option<PathBuf>,
    /// Print JSON instead of text (one object, or one per line for lists of
    /// posts).
    #[arg(long, global = true)]
    json: bool,
    /// Give up when the running node does not answer within this many
    /// seconds (default: 20, more for `connect`); a busy or stuck node is
    /// reported instead of waited on forever.
    #[arg(long, global = true, env = "MUTUAL_TIMEOUT", value_name = "SECONDS",
          value_parser = parse_timeout)]
    timeout: Option<std::time::Duration>,
    #[command(subcommand)]
    command: Command,
}

/// Every command.
#[derive(Subcommand, Debug)]
enum Command {
    /// Create this node's identity (keys) in the data directory, and show
    /// its recovery phrase; `--restore` rebuilds one from its phrase.
    Init(keys::InitArgs),
    /// Create or join a community (works without a running node).
    #[command(subcommand)]
    Community(CommunityCommand),
    /// Print an invite code for others to join this node's community (in
    /// an invite-only community: a new invitation, admin and moderators).
    Invite(invitations::InviteArgs),
    /// Print the community's name and rules.
    Rules,
    /// Run the node in the foreground until Ctrl-C.
    Run(daemon::RunArgs),
    /// Show this node's key, pseudonym, peer id and addresses.
    Id {
        /// Show the recovery phrase of your key instead (after the
        /// passphrase; no running node needed).
        #[arg(long)]
        phrase: bool,
    },
    /// Set, change or remove the passphrase of this data directory's keys.
    Passphrase(keys::PassphraseArgs),
    /// Stop the running node (it flushes its store first).
    Shutdown,
    /// Destroy this data directory for good: stop its node, overwrite its
    /// keys, delete every file. Only the recovery phrase brings the
    /// identity back.
    Forget {
        /// Do not ask to type `forget` to confirm.
        #[arg(long)]
        yes: bool,
    },
    /// Your identity's key: `rotate` moves it to a fresh one.
    #[command(subcommand)]
    Key(succession::KeyCommand),
    /// Change your pseudonym (none given: post without one).
    Name {
        /// The new pseudonym.
        pseudonym: Option<String>,
    },
    /// Join a topic.
    Join {
        /// Topic name (letters, digits, '-' and '_').
        topic: String,
    },
    /// Leave a topic.
    Leave {
        /// Topic name.
        topic: String,
        /// Also delete the topic's posts (and what remains of hidden ones)
        /// from this node's store. Joining it again fetches them anew.
        #[arg(long)]
        forget: bool,
    },
    /// List joined topics with their post counts; with --all, the
    /// community's topic directory too.
    Topics {
        /// Also show the community's topic directory (every topic
        /// moderators describe, joined or not).
        #[arg(long)]
        all: bool,
        /// Moderators: describe a topic in the directory.
        #[command(subcommand)]
        command: Option<directory::TopicsCommand>,
    },
    /// Post to a topic.
    Post(posts::PostArgs),
    /// Read a topic: pinned first, then oldest to newest, replies under
    /// their parent.
    Read(posts::ReadArgs),
    /// Take back one of your own posts, everywhere.
    Retract {
        /// The post's id (full, or the short form `read` prints).
        post: String,
    },
    /// Report a post to the moderators (only they can read the report).
    /// Without --reason, the reason is read from standard input, or written
    /// in your editor ($EDITOR) when standard input is a terminal.
    Report {
        /// The post's id (full, or the short form `read` prints), or the id
        /// of a report as `mod queue` prints it (which names its post).
        post: String,
        /// Why you report it; `-` reads it from standard input. Text given
        /// here is visible to other users of this computer (`ps`) while the
        /// command runs.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Stop seeing an author's posts on this node.
    Mute {
        /// The author's key: full (`mu1…`) or the 8-character fingerprint
        /// printed next to their pseudonym.
        author: String,
    },
    /// See a muted author's posts again.
    Unmute {
        /// The author's key: full (`mu1…`) or the 8-character fingerprint
        /// printed next to their pseudonym.
        author: String,
    },
    /// List connected peers.
    Peers,
    /// Show peers, topics, store size and sync progress.
    Status,
    /// Reconcile history with every connected peer now (the node also does
    /// this by itself, periodically and on joining a topic).
    Sync,
    /// Connect the running node to another node's address now (the node
    /// also finds peers by itself; this helps when it has none).
    Connect {
        /// The multiaddress, as `mutual id` prints it on the other node
        /// (such as /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…).
        addr: String,
    },
    /// Moderation: for the admin and moderators (anyone may `list`).
    #[command(subcommand)]
    Mod(moderation::ModCommand),
    /// Check the store of a stopped node (integrity, and acknowledged
    /// writes lost to damage on disk); `--repair` fixes what it can.
    Doctor(doctor::DoctorArgs),
    /// Print a login link to the app the running node serves on 127.0.0.1
    /// (and open it in the browser when there is one).
    Ui(ui::UiArgs),
    /// Run a narrated demo network of six nodes on 127.0.0.1.
    Demo,
}

/// `mutual community …`.
#[derive(Subcommand, Debug)]
enum CommunityCommand {
    /// Create a community with this identity as its admin.
    Create {
        /// The community's name.
        name: String,
        /// A file with the community's rules and welcome text.
        #[arg(long, value_name = "FILE")]
        rules_file: Option<PathBuf>,
        /// Anyone with an invite code may post (default: invite-only, each
        /// newcomer admitted by an invitation).
        #[arg(long)]
        open: bool,
        /// How many first posts of a new member wait for a moderator's
        /// approval (default 2; 0: none).
        #[arg(long, value_name = "N")]
        probation: Option<u32>,
    },
    /// Admin: publish new rules (the next version; every node shows it).
    Rules {
        /// A file with the new rules and welcome text.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Admin: change how people are admitted (the next version).
    Policy {
        /// Anyone with an invite code may post.
        #[arg(long, conflicts_with = "invite_only")]
        open: bool,
        /// Only people admitted by an invitation may post.
        #[arg(long)]
        invite_only: bool,
        /// How many first posts of a new member wait for approval.
        #[arg(long, value_name = "N")]
        probation: Option<u32>,
    },
    /// Join a community with an invite code: fetches the community from
    /// the inviter's node, which must be online.
    Join {
        /// The invite code (`mutual-invite:…`; spaces and line breaks in
        /// it are ignored), or `-` to read it from standard input.
        #[arg(required = true, num_args = 1..)]
        invite: Vec<String>,
    },
}

/// What every command gets: where the data directory is and how to print.
pub(crate) struct Ctx {
    /// The data directory.
    pub(crate) data: node::DataDir,
    /// Where the passphrase is, if not asked at the terminal.
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Print JSON.
    pub(crate) json: bool,
    /// How long to wait for the node's answers (`None`: each request's
    /// own default).
    pub(crate) timeout: Option<std::time::Duration>,
}

fn parse_timeout(text: &str) -> std::result::Result<std::time::Duration, String> {
    match text.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(std::time::Duration::from_secs(secs)),
        _ => Err("write a whole number of seconds, at least 1".into()),
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("", "", "mutual")
        .map(|d| d.data_dir().to_path_buf())
        .context("could not find a home directory for the default data directory; pass --data-dir DIR or set MUTUAL_DATA_DIR")
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let data = match cli.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let ctx = Ctx {
        data: node::DataDir::new(data),
        passphrase_file: cli.passphrase_file,
        json: cli.json,
        timeout: cli.timeout,
    };
    match cli.command {
        Command::Init(args) => keys::init(&ctx, args),
        Command::Community(CommunityCommand::Create {
            name,
            rules_file,
            open,
            probation,
        }) => offline::create(&ctx, &name, rules_file.as_deref(), open, probation),
        Command::Community(CommunityCommand::Rules { file }) => {
            let rules = offline::read_rules(&file)?;
            invitations::update(&ctx, Some(rules), None, None).await
        }
        Command::Community(CommunityCommand::Policy {
            open,
            invite_only,
            probation,
        }) => {
            let admission = match (open, invite_only) {
                (true, _) => Some("open"),
                (_, true) => Some("invite-only"),
                _ => None,
            };
            invitations::update(&ctx, None, admission, probation).await
        }
        Command::Community(CommunityCommand::Join { invite }) => offline::join(&ctx, &invite).await,
        Command::Rules => offline::rules(&ctx).await,
        Command::Run(args) => daemon::run(&ctx, args).await,
        Command::Invite(args) => invitations::invite(&ctx, args).await,
        Command::Id { phrase: true } => keys::show_recovery(&ctx),
        Command::Id { phrase: false } => info::id(&ctx).await,
        Command::Passphrase(args) => keys::passphrase(&ctx, args),
        Command::Shutdown => keys::shutdown(&ctx).await,
        Command::Forget { yes } => keys::forget(&ctx, yes).await,
        Command::Key(command) => succession::run(&ctx, command).await,
        Command::Name { pseudonym } => succession::name(&ctx, pseudonym).await,
        Command::Peers => info::peers(&ctx).await,
        Command::Status => info::status(&ctx).await,
        Command::Sync => info::sync(&ctx).await,
        Command::Connect { addr } => connect::connect(&ctx, addr).await,
        Command::Join { topic } => posts::join(&ctx, topic).await,
        Command::Leave { topic, forget } => posts::leave(&ctx, topic, forget).await,
        Command::Topics {
            command: Some(command),
            ..
        } => directory::run(&ctx, command).await,
        Command::Topics { all: true, .. } => directory::all(&ctx).await,
        Command::Topics { .. } => posts::topics(&ctx).await,
        Command::Post(args) => posts::post(&ctx, args).await,
        Command::Read(args) => posts::read(&ctx, args).await,
        Command::Retract { post } => posts::retract(&ctx, post).await,
        Command::Report { post, reason } => posts::report(&ctx, post, reason).await,
        Command::Mute { author } => posts::mute(&ctx, author, true).await,
        Command::Unmute { author } => posts::mute(&ctx, author, false).await,
        Command::Mod(command) => moderation::run(&ctx, command).await,
        Command::Doctor(args) => doctor::doctor(&ctx, args),
        Command::Ui(args) => ui::ui(&ctx, args).await,
        Command::Demo => demo::run().await,
    }
}

/// Makes every file and directory this process creates private to its
/// user (umask 077), before anything is created: keys, the store's files,
/// the socket and temporary files, whatever code creates them.
fn private_files() {
    #[cfg(unix)]
    {
        use nix::sys::stat::{umask, Mode};
        umask(Mode::from_bits_truncate(0o077));
    }
}

fn main() -> ExitCode {
    node::allocator::tune();
    private_files();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: could not start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A reader that closed our output (`mutual read t | head`) is
            // not an error.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
