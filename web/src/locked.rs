//! The app while the data directory is locked: one page that takes the
//! passphrase. `mutual run` serves it when the vault has a passphrase and
//! neither a terminal nor `--passphrase-file` can give it, and starts the
//! node once the page has unlocked the vault.
//!
//! The full app's session key is sealed in the vault, so this page has its
//! own login: the same one-time link (`mutual ui`, or the link `run`
//! prints) gives a cookie whose value is random and lives only in this
//! process, and the form carries a CSRF token of the same kind. The
//! `Host`, cross-site and header rules are the full app's. Every guess
//! costs an Argon2id derivation, and one guess runs at a time.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::html;
use node::{DataDir, NodeError};
use rand::RngCore;
use serde::Deserialize;
use tokio::sync::{oneshot, Mutex};
use zeroize::Zeroizing;

use crate::security::{self, LoginQuery};

/// What the locked page's handlers share.
#[derive(Clone)]
struct Locked {
    data: DataDir,
    port: u16,
    /// The cookie's value for this process (random, never written).
    session: Arc<String>,
    /// The form's token (random, never written).
    csrf: Arc<String>,
    /// One passphrase guess at a time.
    guessing: Arc<Mutex<()>>,
}

/// The locked page, served until [`LockedServer::close`].
pub struct LockedServer {
    /// Where it listens (127.0.0.1).
    pub addr: std::net::SocketAddr,
    /// A one-time login link to the page (valid 10 minutes).
    pub link: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl LockedServer {
    /// Stops serving after the requests in progress are answered (the
    /// answer to the unlocking POST among them), and frees the port for
    /// the app.
    pub async fn close(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for LockedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Serves the unlock page on 127.0.0.1, on the app's port (as
/// [`crate::serve`] chooses it), and makes a login link to it.
pub async fn serve_locked(data: DataDir, port: Option<u16>) -> Result<LockedServer, NodeError> {
    let listener = crate::bind(&data, port).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| security::io_err("reading the app's address", e))?;
    let link = security::new_login_link(&data)?;
    let state = Locked {
        data,
        port: addr.port(),
        session: Arc::new(random_token()),
        csrf: Arc::new(random_token()),
        guessing: Arc::new(Mutex::new(())),
    };
    let router = Router::new()
        .route("/login", get(login))
        .route("/", get(unlock_page).post(unlock))
        .route("/assets/app.css", get(crate::pages::css))
        .fallback(not_yet)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = served.await {
            tracing::warn!("the unlock page's server stopped: {e}");
        }
    });
    Ok(LockedServer {
        addr,
        link,
        stop: Some(stop),
        task,
    })
}

/// The full app's rules that need no session: `Host`, cross-site
/// requests, and the security headers on every answer.
async fn guard(State(app): State<Locked>, req: Request, next: Next) -> Response {
    let resp = match security::refuse_foreign(req.headers(), app.port) {
        Some(refused) => refused,
        None => next.run(req).await,
    };
    security::with_headers(resp)
}

/// `GET /login?token=…`: the one-time token becomes this process's cookie.
async fn login(State(app): State<Locked>, Query(q): Query<LoginQuery>) -> Response {
    if !security::take_login_token(&app.data, q.token.as_deref()) {
        return security::unauthorized("This link was used already or has expired.");
    }
    security::signed_in_to_home(&cookie_name(app.port), &app.session)
}

/// Its own name, so the full app's cookie is never taken for this one.
fn cookie_name(port: u16) -> String {
    format!("unlock_{port}")
}

fn signed_in(headers: &HeaderMap, app: &Locked) -> bool {
    security::has_cookie(headers, &cookie_name(app.port), &app.session)
}

async fn unlock_page(State(app): State<Locked>, headers: HeaderMap) -> Response {
    if !signed_in(&headers, &app) {
        return security::unauthorized("You are not signed in to this app.");
    }
    form_page(&app, StatusCode::OK, None)
}

fn form_page(app: &Locked, status: StatusCode, error: Option<&str>) -> Response {
    let page = crate::pages::bare_page(
        None,
        html! {
            h1 { "Locked" }
            p { "This device's mutual data is protected by a passphrase. Type it to start the node." }
            @if let Some(e) = error {
                p class="error" role="alert" id="unlock-error" tabindex="-1" { (e) }
            }
            form method="post" action="/" {
                input type="hidden" name="csrf" value=(app.csrf.as_str());
                label for="passphrase" { "Passphrase" }
                input type="password" id="passphrase" name="passphrase" autocomplete="current-password" required
                    autofocus aria-describedby=[error.map(|_| "unlock-error")];
                button type="submit" { "Unlock" }
            }
        },
    );
    (status, page).into_response()
}

#[derive(Deserialize)]
struct UnlockForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    passphrase: String,
}

/// `POST /`: the passphrase opens the vault (for `mutual run`, which waits
/// on it), then a new login link brings the browser into the app.
async fn unlock(
    State(app): State<Locked>,
    headers: HeaderMap,
    Form(f): Form<UnlockForm>,
) -> Response {
    if !signed_in(&headers, &app) {
        return security::unauthorized("You are not signed in to this app.");
    }
    if !security::same(&f.csrf, &app.csrf) {
        return security::stale_form();
    }
    let pass = Zeroizing::new(f.passphrase.into_bytes());
    let _one_at_a_time = app.guessing.lock().await;
    let data = app.data.clone();
    let opened = tokio::task::spawn_blocking(move || data.unlock(Some(&pass))).await;
    match opened {
        Ok(Ok(())) => {}
        Ok(Err(NodeError::WrongPassphrase(_))) => {
            return form_page(
                &app,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("That passphrase does not open this data directory. Nothing was changed."),
            )
        }
        Ok(Err(e)) => {
            return form_page(
                &app,
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&e.to_string()),
            )
        }
        Err(e) => {
            return form_page(
                &app,
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&format!("unlocking failed: {e}")),
            )
        }
    }
    // The full app takes over this port once the node has started; its
    // login link brings this browser in.
    let next = match security::new_login_link(&app.data) {
        Ok(link) => link,
        Err(e) => {
            return form_page(
                &app,
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&e.to_string()),
            )
        }
    };
    let path = next
        .split_once("/login")
        .map(|(_, rest)| format!("/login{rest}"))
        .unwrap_or_else(|| "/login".into());
    let page = crate::pages::bare_page(
        Some(&path),
        html! {
            h1 { "Unlocked" }
            p role="status" { "The node is starting; the app opens in a moment." }
            p { a href=(path) { "Open the app" } }
        },
    );
    (StatusCode::OK, page).into_response()
}

/// Anything else: the app is not there yet.
async fn not_yet(method: Method) -> Response {
    let status = if method == Method::GET {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::METHOD_NOT_ALLOWED
    };
    (
        status,
        crate::pages::plain_page(
            "Locked",
            "This device's mutual data is locked: open the page at / to unlock it.",
        ),
    )
        .into_response()
}
