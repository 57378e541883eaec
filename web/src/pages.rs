//! The pages (maud escapes every value; network text also goes through
//! the node's `display_safe`, as the CLI shows it).

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use node::api::{ActorView, PostView};
use node::ReadQuery;
use protocol::display::display_safe;
use protocol::TopicName;

use crate::time;
use crate::App;

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

/// Replies nest at most this deep on screen; deeper ones line up there.
const MAX_DEPTH: usize = 6;
/// Posts a topic page shows (the newest).
const TOPIC_PAGE_POSTS: usize = 300;
/// Posts per topic looked at for unread counts and replies to me.
const HOME_SCAN_POSTS: usize = 500;

/// Text from the network, made safe to show (escapes come from maud).
pub(crate) fn clean(text: &str) -> String {
    display_safe(text).into_owned()
}

/// `river (mu1abcd…)` or the key's fingerprint alone.
pub(crate) fn who(name: Option<&str>, key: &str) -> String {
    let fp = fingerprint(key);
    match name {
        Some(n) if !n.trim().is_empty() => format!("{} ({fp})", clean(n)),
        _ => fp,
    }
}

fn actor(a: &ActorView) -> String {
    who(a.name.as_deref(), &a.key)
}

pub(crate) fn fingerprint(key: &str) -> String {
    key.chars().take(12).collect::<String>() + "…"
}

pub(crate) fn short_id(id: &str) -> String {
    id.chars().take(11).collect()
}

/// Who is looking, for what the pages offer.
#[derive(Clone)]
pub(crate) struct Viewer {
    pub(crate) me: String,
    pub(crate) moderator: bool,
    pub(crate) csrf: String,
    /// Drawing the report queue: moderation forms come back to it.
    pub(crate) in_queue: bool,
}

impl Viewer {
    pub(crate) async fn of(app: &App) -> Result<Viewer, String> {
        let me = app.handle.id().await.map_err(|e| e.to_string())?.author;
        let list = app.handle.mod_list().await.map_err(|e| e.to_string())?;
        let moderator = list.admin.key == me || list.moderators.iter().any(|m| m.key == me);
        Ok(Viewer {
            me,
            moderator,
            csrf: app.keys.csrf(),
            in_queue: false,
        })
    }
}

/// Which page a form lives on, to show it again with an error.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub(crate) struct Back {
    #[serde(default)]
    pub(crate) back: String,
    #[serde(default)]
    pub(crate) topic: Option<String>,
}

impl Back {
    /// Back to a page without a topic (`me`, `mod`, `home`).
    pub(crate) fn page(name: &str) -> Back {
        Back {
            back: name.into(),
            topic: None,
        }
    }
}

/// What the person typed, kept when a post is refused.
#[derive(Clone, Debug, Default)]
pub(crate) struct Kept {
    pub(crate) body: String,
    pub(crate) cw: String,
    pub(crate) reply_to: Option<String>,
}

/// Something to say at the top of a page.
#[derive(Clone, Debug, Default)]
pub(crate) struct Note {
    pub(crate) error: Option<String>,
    pub(crate) info: Option<Markup>,
    pub(crate) kept: Option<Kept>,
}

impl Note {
    pub(crate) fn error(text: impl Into<String>) -> Note {
        Note {
            error: Some(text.into()),
            ..Note::default()
        }
    }
}

pub(crate) fn csrf_field(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

/// A page with no session or another problem: no navigation, no script.
pub(crate) fn plain_page(title: &str, text: &str) -> axum::response::Html<String> {
    bare_page(None, html! { h1 { (title) } p { (text) } })
}

/// A page of its own `main` content alone (no navigation, no script),
/// moving on to `refresh` after two seconds when given.
pub(crate) fn bare_page(refresh: Option<&str>, main: Markup) -> axum::response::Html<String> {
    axum::response::Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    @if let Some(to) = refresh {
                        meta http-equiv="refresh" content=(format!("2;url={to}"));
                    }
                    title { "mutual" }
                    link rel="stylesheet" href="/assets/app.css";
                }
                body {
                    main id="main" { (main) }
                }
            }
        }
        .into_string(),
    )
}

fn layout(current: &str, topic: Option<&str>, note: &Note, content: Markup) -> Markup {
    let nav = [
        ("/", "Home"),
        ("/me", "You"),
        ("/mod", "Moderation"),
        ("/log", "Public log"),
        ("/status", "Status"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { "mutual" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="/favicon.ico";
                script type="module" src="/assets/app.js" {}
            }
            body data-topic=[topic] {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    nav aria-label="Main" {
                        ul {
                            @for (href, label) in nav {
                                li {
                                    @if href == current {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    button type="button" id="exit" class="exit" title="Leave at once (or press Esc twice)" {
                        "Quick exit"
                    }
                }
                main id="main" tabindex="-1" {
                    @if let Some(e) = &note.error {
                        div class="error" role="alert" id="error" tabindex="-1" {
                            p { strong { "Not done: " } (e) }
                        }
                    }
                    @if let Some(i) = &note.info {
                        div class="info" role="status" { (i) }
                    }
                    (content)
                }
                p id="live" class="visually-hidden" aria-live="polite" {}
            }
        }
    }
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, axum::response::Html(markup.into_string())).into_response()
}

fn failed(e: impl std::fmt::Display) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        layout(
            "",
            None,
            &Note::error(format!("the node did not answer: {e}")),
            html! {},
        ),
    )
}

pub(crate) async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

pub(crate) async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

pub(crate) async fn favicon() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        layout(
            "",
            None,
            &Note::default(),
            html! { h1 { "Not found" } p { a href="/" { "Home" } } },
        ),
    )
}

/// Paragraph-preserving body text (CSS keeps the line breaks).
pub(crate) fn body_text(text: &str) -> Markup {
    html! { div class="body" { (clean(text)) } }
}

/// One post with its reply, report, retract, mute and moderation forms,
/// and `replies` under it. Also what live updates insert.
pub(crate) fn post_item(p: &PostView, v: &Viewer, replies: Markup, new: bool) -> Markup {
    let mine = p.author == v.me;
    let short = short_id(&p.id);
    let dom = format!("p-{}", p.id);
    let head_id = format!("h-{}", p.id);
    html! {
        li class="post" id=(dom) data-id=(p.id) data-parent=[p.parent.as_deref()]
            data-author=(p.author) data-pinned=(if p.pinned { "1" } else { "0" }) {
            article aria-labelledby=(head_id) tabindex="-1" {
                header id=(head_id) {
                    span class="author" { (who(p.author_name.as_deref(), &p.author)) }
                    " · "
                    time datetime=(time::iso(p.created_at)) { (time::utc(p.created_at)) }
                    @if p.pinned { " " span class="badge pin" { "Pinned" } }
                    @if p.held { " " span class="badge held" { "Waiting for a moderator's approval" } }
                    @if mine { " " span class="badge" { "You" } }
                    @if new && !mine { " " span class="badge new" { "New" } }
                }
                @if p.hidden {
                    p class="notice" {
                        (if p.rejected { "Rejected by a moderator" } else { "Hidden by a moderator" })
                        @if let Some(by) = &p.hidden_by { " (" (actor(by)) ")" }
                        @if let Some(r) = p.hidden_reason.as_deref().filter(|r| !r.trim().is_empty()) {
                            ": " (clean(r))
                        }
                    }
                } @else if let Some(cw) = &p.content_warning {
                    details class="cw" {
                        summary { "Content warning: " (clean(cw)) " — show" }
                        @if let Some(b) = &p.body { (body_text(b)) }
                    }
                } @else if let Some(b) = &p.body {
                    (body_text(b))
                }
                @if p.hidden && v.moderator {
                    div class="actions" {
                        form method="post" action="/mod/act" class="inline" {
                            (csrf_field(v))
                            input type="hidden" name="act" value="unhide";
                            input type="hidden" name="target" value=(p.id);
                            input type="hidden" name="topic" value=(p.topic);
                            input type="hidden" name="back" value=(if v.in_queue { "mod" } else { "topic" });
                            button type="submit" { "Show again" span class="visually-hidden" { " " (short) } }
                        }
                    }
                }
                @if !p.hidden {
                    div class="actions" {
                        details class="act" {
                            summary { "Reply" span class="visually-hidden" { " to " (short) } }
                            (post_form(v, &p.topic, Some(&p.id), None))
                        }
                        @if mine {
                            form method="post" action="/retract" class="inline" {
                                (csrf_field(v))
                                input type="hidden" name="post" value=(p.id);
                                input type="hidden" name="topic" value=(p.topic);
                                input type="hidden" name="back" value="topic";
                                button type="submit" { "Retract" span class="visually-hidden" { " " (short) } }
                            }
                        } @else {
                            details class="act" {
                                summary { "Report" span class="visually-hidden" { " " (short) } }
                                form method="post" action="/report" {
                                    (csrf_field(v))
                                    input type="hidden" name="post" value=(p.id);
                                    input type="hidden" name="topic" value=(p.topic);
                                    input type="hidden" name="back" value="topic";
                                    label for=(format!("why-{}", p.id)) { "Why (only moderators read it)" }
                                    textarea id=(format!("why-{}", p.id)) name="reason" rows="2" required {}
                                    button type="submit" { "Send report" }
                                }
                            }
                            form method="post" action="/mute" class="inline" {
                                (csrf_field(v))
                                input type="hidden" name="author" value=(p.author);
                                input type="hidden" name="mute" value="1";
                                input type="hidden" name="topic" value=(p.topic);
                                input type="hidden" name="back" value="topic";
                                button type="submit" { "Mute author" span class="visually-hidden" { " of " (short) } }
                            }
                        }
                        @if v.moderator {
                            details class="act" {
                                summary { "Moderate" span class="visually-hidden" { " " (short) } }
                                (mod_forms(v, p))
                            }
                        }
                    }
                }
            }
            ol class="replies" { (replies) }
        }
    }
}

/// The moderation forms of one post (hide, pin, block its author).
fn mod_forms(v: &Viewer, p: &PostView) -> Markup {
    let back = if v.in_queue || p.topic.is_empty() {
        "mod"
    } else {
        "topic"
    };
    html! {
        form method="post" action="/mod/act" {
            (csrf_field(v))
            input type="hidden" name="act" value="hide";
            input type="hidden" name="target" value=(p.id);
            input type="hidden" name="topic" value=(p.topic);
            input type="hidden" name="back" value=(back);
            label for=(format!("hide-{}", p.id)) { "Reason for hiding (public)" }
            input type="text" id=(format!("hide-{}", p.id)) name="reason" required;
            button type="submit" { "Hide post" }
        }
        form method="post" action="/mod/act" class="inline" {
            (csrf_field(v))
            input type="hidden" name="act" value=(if p.pinned { "unpin" } else { "pin" });
            input type="hidden" name="target" value=(p.id);
            input type="hidden" name="topic" value=(p.topic);
            input type="hidden" name="back" value=(back);
            button type="submit" { (if p.pinned { "Unpin" } else { "Pin" }) }
        }
        form method="post" action="/mod/act" {
            (csrf_field(v))
            input type="hidden" name="act" value="block";
            input type="hidden" name="target" value=(p.author);
            input type="hidden" name="topic" value=(p.topic);
            input type="hidden" name="back" value=(back);
            label for=(format!("block-{}", p.id)) { "Reason for blocking the author (public)" }
            input type="text" id=(format!("block-{}", p.id)) name="reason" required;
            fieldset {
                legend { "Where" }
                label { input type="radio" name="scope" value="topic" checked; " This topic" }
                label { input type="radio" name="scope" value="community"; " The whole community" }
            }
            button type="submit" { "Block author" }
        }
    }
}

/// The form to write a post (or a reply to `parent`).
fn post_form(v: &Viewer, topic: &str, parent: Option<&str>, kept: Option<&Kept>) -> Markup {
    let suffix = parent.map(|p| format!("-{p}")).unwrap_or_default();
    let cw_id = format!("cw{suffix}");
    let body_id = format!("body{suffix}");
    let (body, cw) = match kept {
        Some(k) if k.reply_to.as_deref() == parent => (k.body.as_str(), k.cw.as_str()),
        _ => ("", ""),
    };
    html! {
        form method="post" action=(format!("/t/{topic}/post")) class="compose" {
            (csrf_field(v))
            @if let Some(p) = parent { input type="hidden" name="reply_to" value=(p); }
            label for=(body_id) { (if parent.is_some() { "Your reply" } else { "Your post" }) }
            textarea id=(body_id) name="body" rows=(if parent.is_some() { "3" } else { "4" }) required { (body) }
            label for=(cw_id) { "Content warning (optional)" }
            input type="text" id=(cw_id) name="cw" value=(cw) maxlength="200";
            button type="submit" { (if parent.is_some() { "Send reply" } else { "Post" }) }
        }
    }
}

/// Threads: pinned first, then oldest first; replies under their parent
/// (oldest first), nested at most [`MAX_DEPTH`] deep.
pub(crate) fn thread(posts: &[PostView], v: &Viewer, seen: u64) -> Markup {
    let ids: HashSet<&str> = posts.iter().map(|p| p.id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&PostView>> = HashMap::new();
    let mut roots: Vec<&PostView> = Vec::new();
    for p in posts {
        match p.parent.as_deref().filter(|x| ids.contains(x)) {
            Some(parent) => children.entry(parent).or_default().push(p),
            None => roots.push(p),
        }
    }
    for list in children.values_mut() {
        list.sort_by_key(|p| p.created_at);
    }
    roots.sort_by_key(|p| (!p.pinned, p.created_at));
    html! {
        @for p in roots { (subtree(p, &children, v, seen, 1)) }
    }
}

fn subtree(
    p: &PostView,
    children: &HashMap<&str, Vec<&PostView>>,
    v: &Viewer,
    seen: u64,
    depth: usize,
) -> Markup {
    let replies = if depth >= MAX_DEPTH {
        // Flatten the rest of this branch at the deepest level.
        let mut flat = Vec::new();
        let mut stack: Vec<&PostView> = children
            .get(p.id.as_str())
            .map(|c| c.iter().rev().copied().collect())
            .unwrap_or_default();
        while let Some(x) = stack.pop() {
            flat.push(x);
            if let Some(c) = children.get(x.id.as_str()) {
                stack.extend(c.iter().rev().copied());
            }
        }
        html! { @for x in flat { (post_item(x, v, html!{}, x.created_at > seen)) } }
    } else {
        html! {
            @for c in children.get(p.id.as_str()).into_iter().flatten() {
                (subtree(c, children, v, seen, depth + 1))
            }
        }
    };
    post_item(p, v, replies, p.created_at > seen)
}

/// Renders the page a form came from again, with what went wrong.
pub(crate) async fn again(app: &App, back: &Back, note: Note) -> Response {
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    let mut resp = match (back.back.as_str(), back.topic.as_deref()) {
        ("topic", Some(t)) => topic_page(app, t, note, false).await,
        ("me", _) => me_page(app, note).await,
        ("mod", _) => mod_page(app, note).await,
        _ => home_page(app, note).await,
    };
    if resp.status() == StatusCode::OK {
        *resp.status_mut() = status;
    }
    resp
}

pub(crate) async fn home(State(app): State<App>) -> Response {
    home_page(&app, Note::default()).await
}

pub(crate) async fn home_page(app: &App, note: Note) -> Response {
    let v = match Viewer::of(app).await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let community = match app.handle.community().await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let topics = match app.handle.topics().await {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    let directory = app.handle.topic_directory().await.unwrap_or_default();
    // Unread counts and replies to my posts, from each topic's newest posts.
    let mut rows = Vec::new();
    let mut replies: Vec<PostView> = Vec::new();
    for t in &topics {
        let seen = app.seen.get(&t.name);
        let Ok(name) = TopicName::parse(&t.name) else {
            continue;
        };
        let posts = app
            .handle
            .read(
                name,
                ReadQuery {
                    limit: HOME_SCAN_POSTS,
                    since_ms: None,
                },
            )
            .await
            .unwrap_or_default();
        let unread = posts
            .iter()
            .filter(|p| p.created_at > seen && p.author != v.me && !p.hidden)
            .count();
        let more = unread == posts.len() && posts.len() == HOME_SCAN_POSTS;
        let mine: HashSet<&str> = posts
            .iter()
            .filter(|p| p.author == v.me)
            .map(|p| p.id.as_str())
            .collect();
        for p in &posts {
            if p.author != v.me
                && !p.hidden
                && p.parent.as_deref().is_some_and(|x| mine.contains(x))
            {
                replies.push(p.clone());
            }
        }
        rows.push((t.name.clone(), t.posts, unread, more, seen));
    }
    // Replies to me first: newest first, unread ones before the rest.
    replies.sort_by_key(|p| {
        (
            p.created_at <= app.seen.get(&p.topic),
            std::cmp::Reverse(p.created_at),
        )
    });
    replies.truncate(10);
    let content = html! {
        h1 { (clean(&community.name)) }
        section aria-labelledby="replies-h" {
            h2 id="replies-h" { "Replies to you" }
            @if replies.is_empty() {
                p { "No replies to your posts yet." }
            } @else {
                ul class="replies-to-me" {
                    @for p in &replies {
                        li {
                            a href=(format!("/t/{}#p-{}", p.topic, p.id)) {
                                (who(p.author_name.as_deref(), &p.author)) " in " (p.topic)
                            }
                            @if p.created_at > app.seen.get(&p.topic) { " " span class="badge new" { "New" } }
                            @if p.content_warning.is_none() {
                                @if let Some(b) = &p.body {
                                    p class="excerpt" { (clean(&b.chars().take(140).collect::<String>())) }
                                }
                            } @else {
                                p class="excerpt" { "(behind a content warning)" }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="topics-h" {
            h2 id="topics-h" { "Your topics" }
            @if rows.is_empty() {
                p { "You have not joined a topic yet." }
            } @else {
                ul class="topics" {
                    @for (name, total, unread, more, _) in &rows {
                        li {
                            a href=(format!("/t/{name}")) { (name) }
                            " "
                            span class="badge new" data-unread=(name) data-count=(unread) hidden[*unread == 0] {
                                (unread) (if *more { "+" } else { "" }) " new"
                            }
                            " "
                            span class="muted" { (total) " posts" }
                            @if let Some(d) = directory.iter().find(|d| &d.topic == name) {
                                " — " span class="muted" { (clean(&d.description)) }
                            }
                        }
                    }
                }
            }
            (directory_section(&v, &directory))
            form method="post" action="/join" class="row" {
                (csrf_field(&v))
                input type="hidden" name="back" value="home";
                label for="join-topic" { "Join a topic" }
                input type="text" id="join-topic" name="topic" required autocomplete="off"
                    aria-describedby="join-help";
                button type="submit" { "Join" }
                p id="join-help" class="muted" { "Letters, digits, - and _ (such as burnout)." }
            }
        }
        section aria-labelledby="rules-h" {
            h2 id="rules-h" { "Community rules" }
            div class="rules" { (clean(&community.rules)) }
        }
        section aria-labelledby="invite-h" {
            h2 id="invite-h" { "Invite someone" }
            (crate::community::invite_form(&v, &community))
        }
    };
    page(StatusCode::OK, layout("/", None, &note, content))
}

/// Closes a report with an outcome: it leaves every moderator's queue;
/// the outcome is public, the note sealed to the moderators.
fn resolve_form(v: &Viewer, r: &node::api::ReportView) -> Markup {
    let id = format!("resolve-{}", short_id(&r.id));
    html! {
        form method="post" action="/mod/resolve" class="row" {
            (csrf_field(v))
            input type="hidden" name="back" value="mod";
            input type="hidden" name="report" value=(r.id);
            label for=(format!("{id}-outcome")) { "Resolve as" }
            select id=(format!("{id}-outcome")) name="outcome" {
                option value="none" { "no action needed" }
                option value="hidden" { "post hidden" }
                option value="blocked" { "author blocked" }
            }
            label for=(format!("{id}-note")) { "Note for moderators" }
            input type="text" id=(format!("{id}-note")) name="note" autocomplete="off";
            button type="submit" { "Resolve" }
        }
    }
}

/// The community's topic directory (moderators describe topics; issue
/// 18): the topics this node has not joined, each with its description
/// and a button to join it. Any other name can still be joined below.
fn directory_section(v: &Viewer, directory: &[node::api::DirectoryEntryView]) -> Markup {
    let others: Vec<&node::api::DirectoryEntryView> =
        directory.iter().filter(|d| !d.joined).collect();
    html! {
        h3 id="directory-h" { "More topics in this community" }
        @if others.is_empty() {
            p class="muted" {
                @if directory.is_empty() {
                    "The moderators have not listed the community's topics yet."
                } @else {
                    "You have joined every topic the moderators list."
                }
            }
        } @else {
            ul class="topics directory" aria-labelledby="directory-h" {
                @for d in &others {
                    li {
                        form method="post" action="/join" class="row" {
                            (csrf_field(v))
                            input type="hidden" name="back" value="home";
                            input type="hidden" name="topic" value=(d.topic);
                            strong { (clean(&d.topic)) }
                            " — " (clean(&d.description)) " "
                            button type="submit" aria-label=(format!("Join {}", clean(&d.topic))) { "Join" }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn topic(State(app): State<App>, Path(name): Path<String>) -> Response {
    topic_page(&app, &name, Note::default(), true).await
}

pub(crate) async fn topic_page(app: &App, name: &str, note: Note, visit: bool) -> Response {
    let topic = match TopicName::parse(name) {
        Ok(t) => t,
        Err(e) => return home_page(app, Note::error(e.to_string())).await,
    };
    let v = match Viewer::of(app).await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let joined = app
        .handle
        .topics()
        .await
        .map(|ts| ts.iter().any(|t| t.name == topic.as_str()))
        .unwrap_or(false);
    if !joined {
        let e = node::NodeError::NotJoined(topic.to_string()).to_string();
        return home_page(app, Note::error(e)).await;
    }
    let posts = match app
        .handle
        .read(
            topic.clone(),
            ReadQuery {
                limit: TOPIC_PAGE_POSTS,
                since_ms: None,
            },
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let seen = if visit {
        app.seen.mark(topic.as_str(), node::now_ms())
    } else {
        app.seen.get(topic.as_str())
    };
    let kept = note.kept.clone();
    let content = html! {
        h1 { "Topic " (topic.as_str()) }
        section aria-labelledby="write-h" {
            h2 id="write-h" class="visually-hidden" { "Write a post" }
            (post_form(&v, topic.as_str(), None, kept.as_ref()))
        }
        section aria-labelledby="posts-h" {
            h2 id="posts-h" { "Posts" }
            p id="empty" hidden[!posts.is_empty()] { "No posts yet." }
            ol id="thread" class="thread" { (thread(&posts, &v, seen)) }
        }
    };
    page(
        StatusCode::OK,
        layout("", Some(topic.as_str()), &note, content),
    )
}

/// `/me?passphrase=set`: after the passphrase form succeeded.
#[derive(serde::Deserialize)]
pub(crate) struct MeQuery {
    #[serde(default)]
    passphrase: Option<String>,
}

pub(crate) async fn me(
    State(app): State<App>,
    axum::extract::Query(q): axum::extract::Query<MeQuery>,
) -> Response {
    let note = if q.passphrase.as_deref() == Some("set") {
        Note {
            info: Some(html! { "The passphrase is set. It is asked whenever the node starts." }),
            ..Note::default()
        }
    } else {
        Note::default()
    };
    me_page(&app, note).await
}

pub(crate) async fn me_page(app: &App, note: Note) -> Response {
    let v = match Viewer::of(app).await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let id = match app.handle.id().await {
        Ok(id) => id,
        Err(e) => return failed(e),
    };
    // The pseudonym as kept in the data directory (a change shows at once).
    let name = app.data.identity().ok().and_then(|i| i.name).or(id.name);
    let muted = app.handle.muted().await.unwrap_or_default();
    let has_passphrase = app.data.is_locked().unwrap_or(false);
    let content = html! {
        h1 { "You" }
        section aria-labelledby="key-h" {
            h2 id="key-h" { "Your key" }
            p { "Others see your posts under this key and your pseudonym. Nothing else identifies you." }
            p { code class="key" { (v.me) } }
            p class="muted" { "Peer id of this node: " code { (id.peer_id) } }
        }
        section aria-labelledby="name-h" {
            h2 id="name-h" { "Pseudonym" }
            form method="post" action="/me/name" {
                (csrf_field(&v))
                input type="hidden" name="back" value="me";
                label for="name" { "Pseudonym (blank for none)" }
                input type="text" id="name" name="name" value=(name.as_deref().map(clean).unwrap_or_default())
                    autocomplete="off" aria-describedby="name-help";
                p id="name-help" class="muted" { "Signs your next posts; once one of them arrives, everyone sees the new name next to all your posts, with the same key." }
                button type="submit" { "Save pseudonym" }
            }
        }
        section aria-labelledby="pass-h" {
            h2 id="pass-h" { "Passphrase" }
            @if has_passphrase {
                p { "Your keys on this device are protected by a passphrase: without it, a copy of this device's mutual folder reveals no key." }
            } @else {
                p class="warning" { "No passphrase: anyone who copies this device's mutual folder (a backup of the laptop, say) can read your keys and post as you. Setting one is recommended." }
            }
            form method="post" action="/me/passphrase" {
                (csrf_field(&v))
                @if has_passphrase {
                    label for="pass-current" { "Current passphrase" }
                    input type="password" id="pass-current" name="current" autocomplete="current-password" required;
                }
                label for="pass-new" { "New passphrase" }
                input type="password" id="pass-new" name="new" autocomplete="new-password" required;
                label for="pass-again" { "New passphrase again" }
                input type="password" id="pass-again" name="again" autocomplete="new-password" required;
                button type="submit" { @if has_passphrase { "Change passphrase" } @else { "Set passphrase" } }
            }
        }
        section aria-labelledby="muted-h" {
            h2 id="muted-h" { "Muted authors" }
            @if muted.is_empty() {
                p { "You mute nobody." }
            } @else {
                ul {
                    @for k in &muted {
                        li {
                            code { (fingerprint(k)) }
                            " "
                            form method="post" action="/mute" class="inline" {
                                (csrf_field(&v))
                                input type="hidden" name="author" value=(k);
                                input type="hidden" name="mute" value="0";
                                input type="hidden" name="back" value="me";
                                button type="submit" { "Unmute" span class="visually-hidden" { " " (fingerprint(k)) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="forget-h" {
            h2 id="forget-h" { "Forget this device" }
            p { "Stops the node and destroys this device's mutual keys, community and every stored post, for good. Only your recovery phrase can bring your identity back." }
            form method="post" action="/me/forget" {
                (csrf_field(&v))
                label for="forget-confirm" { "Type forget to confirm" }
                input type="text" id="forget-confirm" name="confirm" autocomplete="off" required;
                button type="submit" class="danger" { "Forget this device" }
            }
        }
    };
    page(StatusCode::OK, layout("/me", None, &note, content))
}

pub(crate) async fn moderation(State(app): State<App>) -> Response {
    mod_page(&app, Note::default()).await
}

pub(crate) async fn mod_page(app: &App, note: Note) -> Response {
    let v = match Viewer::of(app).await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    if !v.moderator {
        let content = html! {
            h1 { "Moderation" }
            p { "Only the community's admin and moderators act here. Every action they take is in the " a href="/log" { "public log" } "." }
        };
        return page(StatusCode::OK, layout("/mod", None, &note, content));
    }
    let v = Viewer {
        in_queue: true,
        ..v
    };
    let queue = app.handle.mod_queue().await.unwrap_or_default();
    let held = app.handle.held_posts().await.unwrap_or_default();
    let community = match app.handle.community().await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let admin = community.admin == v.me;
    let mut reported = Vec::new();
    for r in queue.iter().rev() {
        let post = match r.post.parse::<protocol::PostId>() {
            Ok(id) => app.handle.post(id).await.ok().flatten(),
            Err(_) => None,
        };
        reported.push((r, post));
    }
    let content = html! {
        h1 { "Moderation" }
        section aria-labelledby="queue-h" {
            h2 id="queue-h" { "Reports" }
            @if reported.is_empty() {
                p { "No reports." }
            } @else {
                ol class="queue" {
                    @for (r, post) in &reported {
                        li class="report" {
                            p {
                                "Reported by " (actor(&r.reporter)) ", " (time::utc(r.at)) ": "
                                q { (clean(&r.reason)) }
                            }
                            @match post {
                                Some(p) => {
                                    ol class="thread" { (post_item(p, &v, html!{}, false)) }
                                }
                                None => @match &r.reported {
                                    // The copy the report carries: a topic
                                    // this moderator never joined.
                                    Some(copy) => {
                                        p { "In " (clean(&copy.topic)) ", by " (actor(&copy.author)) " (post " (short_id(&r.post)) "):" }
                                        blockquote class="reported" { (clean(&copy.body)) }
                                    }
                                    None => {
                                        p class="notice" { "Post " (short_id(&r.post)) " is no longer shown on this node (retracted, blocked or not held)." }
                                    }
                                },
                            }
                            (resolve_form(&v, r))
                        }
                    }
                }
            }
        }
        (crate::approval::held_section(&held, &v))
        section aria-labelledby="act-h" {
            h2 id="act-h" { "Act on a post or an author" }
            form method="post" action="/mod/act" class="stack" {
                (csrf_field(&v))
                input type="hidden" name="back" value="mod";
                label for="act-action" { "Action" }
                select id="act-action" name="act" {
                    option value="hide" { "Hide a post" }
                    option value="unhide" { "Show a hidden post again" }
                    option value="pin" { "Pin a post" }
                    option value="unpin" { "Unpin a post" }
                    option value="block" { "Block an author" }
                    option value="unblock" { "Lift a block" }
                }
                label for="act-target" { "Post id or author key" }
                input type="text" id="act-target" name="target" required autocomplete="off";
                label for="act-topic" { "Topic (blocks only; blank for the whole community)" }
                input type="text" id="act-topic" name="topic" autocomplete="off";
                input type="hidden" name="scope" value="given";
                label for="act-reason" { "Reason (public)" }
                input type="text" id="act-reason" name="reason" autocomplete="off";
                button type="submit" { "Take action" }
            }
        }
        (crate::community::settings_section(&v, &community, admin))
    };
    page(StatusCode::OK, layout("/mod", None, &note, content))
}

pub(crate) async fn log(State(app): State<App>) -> Response {
    let list = match app.handle.mod_list().await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let reason = |r: &str| {
        if r.trim().is_empty() {
            String::new()
        } else {
            format!(": “{}”", clean(r))
        }
    };
    let content = html! {
        h1 { "Public moderation log" }
        p { "Admin: " (actor(&list.admin)) }
        p { "Moderators: "
            @if list.moderators.is_empty() { "none" }
            @for (i, m) in list.moderators.iter().enumerate() {
                @if i > 0 { ", " } (actor(m))
            }
        }
        @if !list.blocks.is_empty() {
            h2 { "Blocks" }
            ul { @for b in &list.blocks {
                li { code { (fingerprint(&b.author)) } " in "
                    (if b.scope == "community" { "the whole community".to_string() } else { format!("topic {}", clean(&b.scope)) })
                    ", by " (actor(&b.by)) ", " (time::utc(b.at)) (reason(&b.reason)) }
            } }
        }
        @if !list.hidden.is_empty() {
            h2 { "Hidden posts" }
            ul { @for h in &list.hidden {
                li { code { (short_id(&h.post)) } " by " (actor(&h.by)) ", " (time::utc(h.at)) (reason(&h.reason)) }
            } }
        }
        @if !list.pinned.is_empty() {
            h2 { "Pinned posts" }
            ul { @for p in &list.pinned { li { code { (short_id(p)) } } } }
        }
        h2 { "Every action" }
        @if list.log.is_empty() { p { "No action yet." } }
        ol class="log" {
            @for e in list.log.iter().rev() {
                li { time datetime=(time::iso(e.at)) { (time::utc(e.at)) } " — " (actor(&e.by)) ": "
                    (clean(&e.action)) (e.reason.as_deref().map(reason).unwrap_or_default()) }
            }
        }
    };
    page(
        StatusCode::OK,
        layout("/log", None, &Note::default(), content),
    )
}

pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS.get(unit).copied().unwrap_or("TiB"))
}

pub(crate) async fn status(State(app): State<App>) -> Response {
    let s = match app.handle.status().await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let sync = &s.sync;
    let done = sync.received;
    let total = sync.received + sync.missing;
    let content = html! {
        h1 { "Status" }
        dl class="facts" {
            dt { "Community" } dd { (clean(&s.community)) }
            dt { "Connected peers" } dd { (s.peers) " (" (s.community_peers) " of this community)" }
            dt { "How others reach you" } dd { (clean(&s.reachability)) }
            dt { "Remembered peers" } dd { (s.remembered_peers) }
            dt { "Posts stored" } dd { (s.posts) }
            dt { "Store size" } dd { (bytes(s.store_bytes)) }
        }
        h2 { "History sync" }
        @if sync.active_sessions > 0 {
            label for="sync" { "Catching up: " (done) " of " (total) " items" }
            progress id="sync" max=(total.max(1)) value=(done) { (done) " of " (total) }
        } @else {
            label for="sync" { "Up to date (" (sync.completed_sessions) " sync sessions, " (sync.received) " items received)" }
            progress id="sync" max="1" value="1" { "up to date" }
        }
        @if !s.problems.is_empty() {
            h2 { "Problems" }
            ul { @for p in &s.problems { li { (clean(p)) } } }
        }
        h2 { "Topics" }
        ul { @for t in &s.topics { li { (t.name) ": " (t.posts) " posts" } } }
    };
    page(
        StatusCode::OK,
        layout("/status", None, &Note::default(), content),
    )
}

/// An invite code, shown once.
pub(crate) fn invite_note(code: &str) -> Markup {
    html! {
        p { "Give this code to the person you invite, through a channel you trust. They join with it while your node is online." }
        label for="invite-code" { "Invite code" }
        textarea id="invite-code" readonly rows="4" { (code) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(id: &str, at: u64, parent: Option<&str>, pinned: bool) -> PostView {
        PostView {
            id: id.into(),
            topic: "t".into(),
            author: "mu1author".into(),
            author_name: Some("river".into()),
            created_at: at,
            parent: parent.map(str::to_string),
            content_warning: None,
            body: Some(format!("body of {id}")),
            hidden: false,
            hidden_by: None,
            hidden_reason: None,
            pinned,
            held: false,
            rejected: false,
        }
    }

    fn viewer() -> Viewer {
        Viewer {
            me: "mu1me".into(),
            moderator: false,
            csrf: "tok".into(),
            in_queue: false,
        }
    }

    fn order(html: &str) -> Vec<String> {
        html.split("data-id=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn threads_pinned_first_then_oldest_replies_under_their_parent() {
        let posts = vec![
            post("a", 1, None, false),
            post("b", 2, None, true),
            post("c", 3, Some("a"), false),
            post("d", 4, Some("zz-unknown"), false),
            post("e", 5, Some("c"), false),
        ];
        let html = thread(&posts, &viewer(), 0).into_string();
        assert_eq!(order(&html), ["b", "a", "c", "e", "d"]);
        // c is inside a's replies, e inside c's.
        let a = html.find("id=\"p-a\"").unwrap();
        let c = html.find("id=\"p-c\"").unwrap();
        let d = html.find("id=\"p-d\"").unwrap();
        assert!(a < c && c < d);
    }

    #[test]
    fn network_text_is_escaped_and_spoofing_characters_shown() {
        let mut p = post("x", 1, None, false);
        p.body = Some("<script>alert(1)</script> \u{202E}evil".into());
        p.author_name = Some("<b>name</b>".into());
        p.content_warning = Some("<i>cw</i>".into());
        let html = post_item(&p, &viewer(), html! {}, false).into_string();
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>name"));
        assert!(!html.contains("<i>cw"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("\\u{202E}evil"));
        assert!(html.contains("<details class=\"cw\">"));
    }

    #[test]
    fn hidden_posts_show_the_notice_and_no_actions() {
        let mut p = post("x", 1, None, false);
        p.hidden = true;
        p.body = None;
        p.hidden_reason = Some("names of employers".into());
        let html = post_item(&p, &viewer(), html! {}, false).into_string();
        assert!(html.contains("Hidden by a moderator"));
        assert!(html.contains("names of employers"));
        assert!(!html.contains("action=\"/report\""));
    }

    #[test]
    fn forms_carry_the_csrf_token_and_own_posts_offer_retract() {
        let mut p = post("x", 1, None, false);
        p.author = "mu1me".into();
        let html = post_item(&p, &viewer(), html! {}, false).into_string();
        assert!(html.contains("action=\"/retract\""));
        assert!(!html.contains("action=\"/report\""));
        let forms = html.matches("<form").count();
        assert_eq!(forms, html.matches("name=\"csrf\" value=\"tok\"").count());
    }
}
