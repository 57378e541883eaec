//! The community's admission settings in the web app (issue 18), for
//! those who do not live in a terminal: invitations with a number of uses
//! and an expiry, lockdowns and lifting them (moderators), and the next
//! version of the rules and the admission policy (the admin).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use node::api::{CommunityView, LockdownView};
use protocol::{Admission, ModActionKind, Scope, TopicName};
use serde::Deserialize;

use crate::actions::back_to;
use crate::pages::{self, clean, csrf_field, Back, Note, Viewer};
use crate::time;
use crate::App;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The home page's invite form: in an invite-only community moderators
/// choose the uses and the days it stays valid, and other members are
/// told whom to ask (their node would refuse).
pub(crate) fn invite_form(v: &Viewer, community: &CommunityView) -> Markup {
    let invite_only = community.admission == "invite-only";
    html! {
        @if invite_only && !v.moderator {
            p class="muted" { "This community is invite-only: ask its admin or a moderator to invite someone." }
        } @else {
            form method="post" action="/invite" class="stack" {
                (csrf_field(v))
                input type="hidden" name="back" value="home";
                @if invite_only {
                    label for="invite-uses" { "How many people it admits" }
                    input type="number" id="invite-uses" name="uses" min="1" max="1000" value="1";
                    label for="invite-days" { "Valid for (days)" }
                    input type="number" id="invite-days" name="days" min="1" max="90" value="7";
                }
                button type="submit" { "Make an invite code" }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct InviteForm {
    #[serde(default)]
    uses: Option<String>,
    #[serde(default)]
    days: Option<String>,
    #[serde(flatten)]
    back: Back,
}

/// Reads a whole number typed in a form field; blank is `None`.
fn number(field: &str, text: Option<&str>, min: u64, max: u64) -> Result<Option<u64>, String> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "{field} must be a whole number from {min} to {max}, not “{text}”; nothing was changed."
        )),
    }
}

/// `POST /invite`: an invite code, shown on the page.
pub(crate) async fn invite(State(app): State<App>, Form(f): Form<InviteForm>) -> Response {
    let asked = number("Uses", f.uses.as_deref(), 1, 1000)
        .and_then(|uses| Ok((uses, number("Days", f.days.as_deref(), 1, 90)?)));
    let code = match asked {
        Err(e) => Err(e),
        Ok((None, None)) => app.handle.invite().await.map_err(|e| e.to_string()),
        Ok((uses, days)) => {
            let uses = uses.unwrap_or(1) as u32;
            let valid = days.map_or(node::admission::DEFAULT_INVITE_VALIDITY_MS, |d| d * DAY_MS);
            match app.handle.invite_with(uses, valid).await {
                Ok(Some(issued)) => Ok(issued.invite),
                Ok(None) => app.handle.invite().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match code {
        Ok(code) => {
            let note = Note {
                info: Some(pages::invite_note(&code)),
                ..Note::default()
            };
            let mut resp = pages::again(&app, &f.back, note).await;
            *resp.status_mut() = StatusCode::OK;
            resp
        }
        Err(e) => pages::again(&app, &f.back, Note::error(e)).await,
    }
}

/// The moderation page's settings: lockdowns for moderators, the rules
/// and admission policy for the admin.
pub(crate) fn settings_section(v: &Viewer, community: &CommunityView, admin: bool) -> Markup {
    html! {
        section aria-labelledby="lockdown-h" {
            h2 id="lockdown-h" { "Lockdown" }
            p class="muted" { "No new member is admitted while the community is locked down; a topic's lockdown can also hold the posts of recent members for approval. Everyone sees a lockdown and its reason." }
            @if community.lockdowns.is_empty() {
                p { "No lockdown." }
            } @else {
                ul {
                    @for l in &community.lockdowns {
                        li { (lockdown_item(v, l)) }
                    }
                }
            }
            form method="post" action="/mod/lockdown" class="stack" {
                (csrf_field(v))
                input type="hidden" name="back" value="mod";
                input type="hidden" name="act" value="lock";
                label for="lock-topic" { "Topic (blank for the whole community)" }
                input type="text" id="lock-topic" name="topic" autocomplete="off";
                label for="lock-days" { "Hold posts of members admitted within (days, blank for none)" }
                input type="number" id="lock-days" name="days" min="1" max="365";
                label for="lock-reason" { "Reason (public)" }
                input type="text" id="lock-reason" name="reason" required autocomplete="off";
                button type="submit" { "Lock down" }
            }
        }
        @if admin {
            section aria-labelledby="rules-edit-h" {
                h2 id="rules-edit-h" { "Rules and admission" }
                p class="muted" {
                    "Publishes the next version"
                    @if let Some(version) = community.rules_version { " (now version " (version) ")" }
                    "; every node takes the newest."
                }
                form method="post" action="/mod/rules" class="stack" {
                    (csrf_field(v))
                    input type="hidden" name="back" value="mod";
                    label for="rules-text" { "Rules" }
                    textarea id="rules-text" name="rules" rows="8" { (clean(&community.rules)) }
                    label for="rules-admission" { "Who may join" }
                    select id="rules-admission" name="admission" {
                        option value="invite-only" selected[community.admission == "invite-only"] { "by invitation only" }
                        option value="open" selected[community.admission == "open"] { "anyone with a code" }
                    }
                    label for="rules-probation" { "First posts of a new member held for approval (0 for none)" }
                    input type="number" id="rules-probation" name="probation" min="0" max="20"
                        value=(community.probation_posts);
                    button type="submit" { "Publish" }
                }
            }
        }
    }
}

fn lockdown_item(v: &Viewer, l: &LockdownView) -> Markup {
    let scope = if l.scope == "community" {
        "The whole community".to_string()
    } else {
        format!("Topic {}", clean(&l.scope))
    };
    html! {
        (scope) ", since " (time::utc(l.at)) ": " q { (clean(&l.reason)) }
        @if let Some(days) = l.hold_recent_days { " (holds posts of members admitted within " (days) " days)" }
        " "
        form method="post" action="/mod/lockdown" class="inline" {
            (csrf_field(v))
            input type="hidden" name="back" value="mod";
            input type="hidden" name="act" value="lift";
            @if l.scope != "community" { input type="hidden" name="topic" value=(l.scope); }
            button type="submit" { "Lift" }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct LockdownForm {
    act: String,
    #[serde(default)]
    days: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(flatten)]
    back: Back,
}

/// `POST /mod/lockdown`: locks the community or a topic down, or lifts it.
pub(crate) async fn lockdown(State(app): State<App>, Form(f): Form<LockdownForm>) -> Response {
    let scope = match f
        .back
        .topic
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => Ok(Scope::Community),
        Some(t) => TopicName::parse(t)
            .map(Scope::Topic)
            .map_err(|e| e.to_string()),
    };
    let kind = scope.and_then(|scope| match f.act.as_str() {
        "lift" => Ok(ModActionKind::LiftLockdown { scope }),
        "lock" => {
            let days = number("Days", f.days.as_deref(), 1, 365)?;
            Ok(ModActionKind::Lockdown {
                scope,
                hold_recent_days: days.map(|d| d as u32),
                reason: f.reason.clone().unwrap_or_default().trim().to_string(),
            })
        }
        other => Err(format!("unknown lockdown action {other:?}")),
    });
    let done = match kind {
        Ok(kind) => app.handle.moderate(kind).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let back = Back::page("mod");
    match done {
        Ok(_) => back_to(&back, None),
        Err(e) => pages::again(&app, &back, Note::error(e)).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct RulesForm {
    #[serde(default)]
    rules: String,
    admission: String,
    #[serde(default)]
    probation: Option<String>,
}

/// `POST /mod/rules`: the admin publishes the next version of the rules
/// and the admission policy.
pub(crate) async fn rules(State(app): State<App>, Form(f): Form<RulesForm>) -> Response {
    let back = Back::page("mod");
    let admission = match f.admission.as_str() {
        "open" => Ok(Admission::Open),
        "invite-only" => Ok(Admission::InviteOnly),
        other => Err(format!("unknown admission {other:?}")),
    };
    let probation = number(
        "Posts held for approval",
        f.probation.as_deref(),
        0,
        protocol::moderation::MAX_PROBATION_POSTS.into(),
    );
    let done = match (admission, probation) {
        (Ok(admission), Ok(probation)) => app
            .handle
            .update_manifest(
                Some(f.rules.replace("\r\n", "\n")),
                Some(admission),
                probation.map(|p| p as u32),
            )
            .await
            .map_err(|e| e.to_string()),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match done {
        Ok(_) => back_to(&back, None),
        Err(e) => pages::again(&app, &back, Note::error(e)).await,
    }
}
