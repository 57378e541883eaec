//! What the forms do. Each checks its input as the CLI and the control
//! socket do (the same messages), asks the node, then redirects (303) to
//! the page the form was on; a refusal shows that page again with the
//! message and what was typed, and changes nothing.

use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use protocol::moderation::{ModActionKind, Scope};
use protocol::post::Draft;
use protocol::{PublicKey, TopicName};
use serde::Deserialize;

use crate::pages::{self, Back, Kept, Note};
use crate::App;

/// A 303 to a path of this app (never a place a form names).
fn see_other(path: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(path) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Where to go after a form of `back` succeeded.
pub(crate) fn back_to(back: &Back, anchor: Option<&str>) -> Response {
    match (back.back.as_str(), back.topic.as_deref()) {
        ("topic", Some(t)) if TopicName::parse(t).is_ok() => match anchor {
            // The query survives a fetch (a fragment does not): the
            // page's script focuses that post.
            Some(id) => see_other(&format!("/t/{t}?p={id}#p-{id}")),
            None => see_other(&format!("/t/{t}")),
        },
        ("me", _) => see_other("/me"),
        ("mod", _) => see_other("/mod"),
        _ => see_other("/"),
    }
}

fn opt(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}

#[derive(Deserialize)]
pub(crate) struct PostForm {
    body: String,
    #[serde(default)]
    cw: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
}

/// `POST /t/{topic}/post`.
pub(crate) async fn post(
    State(app): State<App>,
    Path(topic): Path<String>,
    Form(f): Form<PostForm>,
) -> Response {
    let back = Back {
        back: "topic".into(),
        topic: Some(topic.clone()),
    };
    let kept = Kept {
        body: f.body.clone(),
        cw: f.cw.clone().unwrap_or_default(),
        reply_to: opt(f.reply_to.clone()),
    };
    let refuse = |e: String| Note {
        error: Some(e),
        kept: Some(kept.clone()),
        ..Note::default()
    };
    let t = match TopicName::parse(&topic) {
        Ok(t) => t,
        Err(e) => return pages::again(&app, &Back::default(), Note::error(e.to_string())).await,
    };
    let parent = match opt(f.reply_to) {
        Some(p) => match app.handle.resolve_post(&p).await {
            Ok(id) => Some(id),
            Err(e) => return pages::again(&app, &back, refuse(e.to_string())).await,
        },
        None => None,
    };
    if f.body.trim().is_empty() {
        return pages::again(
            &app,
            &back,
            refuse("the post is empty; write something".into()),
        )
        .await;
    }
    let draft = Draft {
        // Browsers send line breaks as CRLF.
        body: f.body.replace("\r\n", "\n"),
        parent,
        content_warning: opt(f.cw),
    };
    match app.handle.publish(t, draft).await {
        Ok(id) => back_to(&back, Some(&id.to_string())),
        Err(e) => pages::again(&app, &back, refuse(e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct TopicForm {
    topic: String,
}

/// `POST /join`.
pub(crate) async fn join(State(app): State<App>, Form(f): Form<TopicForm>) -> Response {
    let home = Back::default();
    let t = match TopicName::parse(f.topic.trim()) {
        Ok(t) => t,
        Err(e) => return pages::again(&app, &home, Note::error(e.to_string())).await,
    };
    let name = t.to_string();
    match app.handle.join(t).await {
        Ok(()) => see_other(&format!("/t/{name}")),
        Err(e) => pages::again(&app, &home, Note::error(e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct PostRef {
    post: String,
    #[serde(flatten)]
    back: Back,
}

/// `POST /retract`.
pub(crate) async fn retract(State(app): State<App>, Form(f): Form<PostRef>) -> Response {
    let result = match app.handle.resolve_post(&f.post).await {
        Ok(id) => app.handle.retract(id).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => back_to(&f.back, None),
        Err(e) => pages::again(&app, &f.back, Note::error(e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct ReportForm {
    post: String,
    #[serde(default)]
    reason: String,
    #[serde(flatten)]
    back: Back,
}

/// `POST /report`.
pub(crate) async fn report(State(app): State<App>, Form(f): Form<ReportForm>) -> Response {
    let id = match app.handle.resolve_post(&f.post).await {
        Ok(id) => id,
        Err(e) => return pages::again(&app, &f.back, Note::error(e.to_string())).await,
    };
    let reason = f.reason.replace("\r\n", "\n");
    match app.handle.report(id, reason).await {
        Ok(_) => {
            let note = Note {
                info: Some(maud::html! { p { "Report sent: only the moderators can read it." } }),
                ..Note::default()
            };
            let mut resp = pages::again(&app, &f.back, note).await;
            *resp.status_mut() = StatusCode::OK;
            resp
        }
        Err(e) => pages::again(&app, &f.back, Note::error(e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct MuteForm {
    author: String,
    mute: String,
    #[serde(flatten)]
    back: Back,
}

/// `POST /mute` (`mute=1`) and unmute (`mute=0`).
pub(crate) async fn mute(State(app): State<App>, Form(f): Form<MuteForm>) -> Response {
    let key = match PublicKey::from_str(f.author.trim()) {
        Ok(k) => k,
        Err(e) => return pages::again(&app, &f.back, Note::error(e.to_string())).await,
    };
    match app.handle.mute(key, f.mute == "1").await {
        Ok(()) => back_to(&f.back, None),
        Err(e) => pages::again(&app, &f.back, Note::error(e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct NameForm {
    #[serde(default)]
    name: String,
}

/// `POST /me/name`: the new pseudonym signs the next posts at once and is
/// kept in the data directory.
pub(crate) async fn name(State(app): State<App>, Form(f): Form<NameForm>) -> Response {
    let back = Back::page("me");
    let name = Some(f.name);
    let checked = match node::datadir::check_pseudonym(name) {
        Ok(n) => n,
        Err(e) => return pages::again(&app, &back, Note::error(e.to_string())).await,
    };
    if let Err(e) = app.handle.set_pseudonym(checked.clone()).await {
        return pages::again(&app, &back, Note::error(e.to_string())).await;
    }
    match app.data.set_pseudonym(checked) {
        Ok(_) => see_other("/me"),
        Err(e) => pages::again(&app, &back, Note::error(e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct ModForm {
    act: String,
    target: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(flatten)]
    back: Back,
}

/// `POST /mod/act`: hide, unhide, pin, unpin, block, unblock, approve,
/// reject.
pub(crate) async fn moderate(State(app): State<App>, Form(f): Form<ModForm>) -> Response {
    let refuse = |e: String| Note::error(e);
    let target = f.target.trim();
    let reason = f.reason.unwrap_or_default().replace("\r\n", "\n");
    let post_id = || async {
        app.handle
            .resolve_post(target)
            .await
            .map_err(|e| e.to_string())
    };
    let key = || PublicKey::from_str(target).map_err(|e| e.to_string());
    // Blocks: "topic" means the post's topic; "given" the topic field
    // (blank: the community); "community" the community.
    let scope = || -> Result<Scope, String> {
        let topic = opt(f.back.topic.clone());
        match (f.scope.as_deref(), topic) {
            (Some("community"), _) | (_, None) => Ok(Scope::Community),
            (_, Some(t)) => TopicName::parse(t.trim())
                .map(Scope::Topic)
                .map_err(|e| e.to_string()),
        }
    };
    // Approvals and rejections of held posts (`approval.rs`).
    if let "approve" | "reject" = f.act.as_str() {
        let done = match post_id().await {
            Ok(post) if f.act == "approve" => app.handle.approve(post).await,
            Ok(post) => app.handle.reject(post, reason).await,
            Err(e) => return pages::again(&app, &f.back, refuse(e)).await,
        };
        return match done {
            Ok(_) => back_to(&f.back, None),
            Err(e) => pages::again(&app, &f.back, refuse(e.to_string())).await,
        };
    }
    let kind: Result<ModActionKind, String> = match f.act.as_str() {
        "hide" => post_id()
            .await
            .map(|post| ModActionKind::Hide { post, reason }),
        "unhide" => post_id().await.map(|post| ModActionKind::Unhide { post }),
        "pin" => post_id().await.map(|post| ModActionKind::Pin { post }),
        "unpin" => post_id().await.map(|post| ModActionKind::Unpin { post }),
        "block" => key().and_then(|author| {
            Ok(ModActionKind::Block {
                author,
                scope: scope()?,
                reason,
            })
        }),
        "unblock" => key().and_then(|author| {
            Ok(ModActionKind::Unblock {
                author,
                scope: scope()?,
            })
        }),
        other => Err(format!("unknown moderation action {other:?}")),
    };
    let kind = match kind {
        Ok(k) => k,
        Err(e) => return pages::again(&app, &f.back, refuse(e)).await,
    };
    match app.handle.moderate(kind).await {
        Ok(_) => back_to(&f.back, None),
        Err(e) => pages::again(&app, &f.back, refuse(e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct ResolveForm {
    report: String,
    outcome: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(flatten)]
    back: Back,
}

/// `POST /mod/resolve`: closes a report with an outcome (and a note
/// sealed to the moderators); it leaves every moderator's queue.
pub(crate) async fn resolve(State(app): State<App>, Form(f): Form<ResolveForm>) -> Response {
    use protocol::moderation::ReportOutcome;
    let outcome = match f.outcome.as_str() {
        "hidden" => ReportOutcome::Hidden,
        "blocked" => ReportOutcome::Blocked,
        "none" => ReportOutcome::NoAction,
        other => {
            return pages::again(
                &app,
                &f.back,
                Note::error(format!("unknown outcome {other:?}")),
            )
            .await
        }
    };
    let note = f.note.unwrap_or_default().replace("\r\n", "\n");
    match app
        .handle
        .resolve_report(f.report.trim().to_string(), outcome, note)
        .await
    {
        Ok(_) => back_to(&f.back, None),
        Err(e) => pages::again(&app, &f.back, Note::error(e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct PassphraseForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    again: String,
}

/// `POST /me/passphrase`: sets the passphrase of this device's keys, or
/// changes it (the current one asked first). Only the master-key file is
/// rewritten, atomically; the node goes on running.
pub(crate) async fn passphrase(State(app): State<App>, Form(f): Form<PassphraseForm>) -> Response {
    let back = Back::page("me");
    let refuse = |text: &str| Note::error(text.to_string());
    let current = zeroize::Zeroizing::new(f.current.into_bytes());
    let new = zeroize::Zeroizing::new(f.new.into_bytes());
    let again = zeroize::Zeroizing::new(f.again.into_bytes());
    if new.is_empty() {
        return pages::again(
            &app,
            &back,
            refuse("Type the new passphrase; nothing was changed."),
        )
        .await;
    }
    if *new != *again {
        return pages::again(
            &app,
            &back,
            refuse("The two new passphrases differ; nothing was changed."),
        )
        .await;
    }
    let data = app.data.clone();
    let done = tokio::task::spawn_blocking(move || -> Result<(), String> {
        if data.is_locked().map_err(|e| e.to_string())? {
            let file = std::fs::read(data.master_path()).map_err(|e| e.to_string())?;
            if node::vault::Vault::open_master(&file, Some(&current)).is_err() {
                return Err("The current passphrase is not right; nothing was changed.".into());
            }
        }
        data.set_passphrase(Some(&new), node::vault::KdfParams::DEFAULT)
            .map_err(|e| e.to_string())
    })
    .await;
    match done {
        Ok(Ok(())) => see_other("/me?passphrase=set"),
        Ok(Err(e)) => pages::again(&app, &back, Note::error(e)).await,
        Err(e) => pages::again(&app, &back, Note::error(format!("failed: {e}"))).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct ForgetForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /me/forget`: with the word typed, stops the node; `mutual run`
/// then destroys the data directory (keys overwritten, every file
/// removed), as `mutual forget` does.
pub(crate) async fn forget(State(app): State<App>, Form(f): Form<ForgetForm>) -> Response {
    if f.confirm.trim() != "forget" {
        let back = Back::page("me");
        return pages::again(
            &app,
            &back,
            Note::error("Type the word forget to confirm; nothing was changed."),
        )
        .await;
    }
    app.forget.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Err(e) = app.handle.shutdown().await {
        tracing::warn!("stopping the node to forget this device: {e}");
    }
    (
        StatusCode::OK,
        pages::plain_page(
            "Forgotten",
            "The node has stopped, and this device's mutual keys and posts are being destroyed. \
             You can close this tab. Only your recovery phrase can bring the identity back.",
        ),
    )
        .into_response()
}
