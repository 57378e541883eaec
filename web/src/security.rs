//! The session, the login link, the `Host` check, CSRF and the headers of
//! every answer.

use axum::body::{to_bytes, Body};
use axum::extract::{Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use node::vault::Role;
use node::{DataDir, NodeError};
use rand::RngCore;

use crate::App;

/// The pending one-time login token and its expiry (`web.login`, 0600).
const LOGIN_FILE: &str = "login";
/// How long a login link works (once).
const LOGIN_VALID_MS: u64 = 10 * 60 * 1000;
/// The largest form the app takes: a post is at most 8 KiB of text,
/// percent-encoding triples it at worst.
pub(crate) const MAX_FORM_BYTES: usize = 64 * 1024;

/// The strict policy: no inline script or style, nothing from elsewhere.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                              img-src 'self'; connect-src 'self'; form-action 'self'; \
                              frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn io_err(context: impl Into<String>, source: std::io::Error) -> NodeError {
    NodeError::Io {
        context: context.into(),
        source,
    }
}

/// The keys of this data directory's app.
pub(crate) struct Keys {
    secret: [u8; 32],
}

impl Keys {
    /// Reads the app's secret (sealed in the data directory's vault), or
    /// makes it (random).
    pub(crate) fn load_or_create(data: &DataDir) -> Result<Keys, NodeError> {
        if let Some(bytes) = data.read_sealed(Role::WEB_SECRET)? {
            if let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice()) {
                return Ok(Keys { secret });
            }
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        data.write_sealed(Role::WEB_SECRET, &secret)?;
        Ok(Keys { secret })
    }

    fn derive(&self, what: &str) -> blake3::Hash {
        blake3::keyed_hash(&self.secret, what.as_bytes())
    }

    /// The session cookie's value.
    pub(crate) fn session(&self) -> String {
        self.derive("mutual web session v1").to_hex().to_string()
    }

    /// The CSRF token every form carries.
    pub(crate) fn csrf(&self) -> String {
        self.derive("mutual web csrf v1").to_hex().to_string()
    }
}

/// The session cookie's name: ports share cookies (they are per host), so
/// two nodes' apps on one machine each have their own.
pub(crate) fn cookie_name(port: u16) -> String {
    format!("session_{port}")
}

/// Compares two tokens in constant time (through their BLAKE3 hashes,
/// whose equality is constant time).
pub(crate) fn same(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

/// Makes a new one-time login link for the app this data directory's
/// node serves (valid 10 minutes, replacing any earlier link).
pub fn new_login_link(data: &DataDir) -> Result<String, NodeError> {
    let Some(port) = crate::remembered_port(data)? else {
        return Err(NodeError::BadInput(
            "the app has never been served from this data directory: start the node with \
             `mutual run` (without --no-ui)"
                .into(),
        ));
    };
    let mut token = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut token);
    let token = hex::encode(token);
    let expiry = node::now_ms() + LOGIN_VALID_MS;
    node::datadir::write_private(
        &data.web_file(LOGIN_FILE),
        format!("{token} {expiry}").as_bytes(),
    )?;
    Ok(format!("http://127.0.0.1:{port}/login?token={token}"))
}

/// The same as [`new_login_link`] (the name `mutual ui` uses).
pub fn login_link(data: &DataDir) -> Result<String, NodeError> {
    new_login_link(data)
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginQuery {
    pub(crate) token: Option<String>,
}

/// Whether `given` is the pending one-time login token (unexpired); it is
/// used up either way once it matched.
pub(crate) fn take_login_token(data: &DataDir, given: Option<&str>) -> bool {
    let path = data.web_file(LOGIN_FILE);
    let pending = std::fs::read_to_string(&path).unwrap_or_default();
    let mut parts = pending.split_whitespace();
    let (token, expiry) = (
        parts.next(),
        parts.next().and_then(|e| e.parse::<u64>().ok()),
    );
    let valid = match (token, expiry, given) {
        (Some(t), Some(exp), Some(given)) => same(t, given) && node::now_ms() <= exp,
        _ => false,
    };
    if valid {
        let _ = std::fs::remove_file(&path);
    }
    valid
}

/// `GET /login?token=…`: a valid one-time token becomes the session cookie
/// (HttpOnly, SameSite=Strict), then `/` (the token leaves the address bar).
pub(crate) async fn login(State(app): State<App>, Query(q): Query<LoginQuery>) -> Response {
    if !take_login_token(&app.data, q.token.as_deref()) {
        return unauthorized("This login link was used already or has expired.");
    }
    signed_in_to_home(&cookie_name(app.port), &app.keys.session())
}

/// A 303 to `/` that sets the session cookie `name` (HttpOnly,
/// SameSite=Strict): the end of a login.
pub(crate) fn signed_in_to_home(name: &str, value: &str) -> Response {
    let cookie = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    let mut resp = (StatusCode::SEE_OTHER, "").into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(header::SET_COOKIE, v);
    }
    resp
}

pub(crate) fn unauthorized(why: &str) -> Response {
    let page = crate::pages::plain_page(
        "Not signed in",
        &format!("{why} Run `mutual ui` in a terminal and open the link it prints."),
    );
    (StatusCode::UNAUTHORIZED, page).into_response()
}

fn has_session(headers: &HeaderMap, app: &App) -> bool {
    has_cookie(headers, &cookie_name(app.port), &app.keys.session())
}

/// Whether the request carries the cookie `name` with the value `expected`.
pub(crate) fn has_cookie(headers: &HeaderMap, name: &str, expected: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .any(|(k, v)| k == name && same(v, expected))
}

fn host_ok(headers: &HeaderMap, port: u16) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}")
}

/// The value of the form field `name` in an urlencoded body.
pub(crate) fn form_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Every request: the `Host` check, the session, CSRF on POSTs; then the
/// security headers on whatever answers.
pub(crate) async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    with_headers(check(&app, req, next).await)
}

/// The security headers every answer carries.
pub(crate) fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The answer to a request with a foreign `Host` (DNS rebinding: a page of
/// another site whose name now points at 127.0.0.1 sends its own name) or
/// one that another site's page started (where the browser says so).
pub(crate) fn refuse_foreign(headers: &HeaderMap, port: u16) -> Option<Response> {
    if !host_ok(headers, port) {
        return Some(
            (
                StatusCode::MISDIRECTED_REQUEST,
                "This app answers only at its own loopback address.",
            )
                .into_response(),
        );
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Some(
            (
                StatusCode::FORBIDDEN,
                "Requests from other sites are refused.",
            )
                .into_response(),
        );
    }
    None
}

/// A form whose CSRF token is missing or stale: nothing changes.
pub(crate) fn stale_form() -> Response {
    (
        StatusCode::FORBIDDEN,
        crate::pages::plain_page(
            "Not sent",
            "This form did not come from this app's page (its token is missing \
             or stale), so nothing was changed. Reload the page and try again.",
        ),
    )
        .into_response()
}

async fn check(app: &App, req: Request, next: Next) -> Response {
    if let Some(refused) = refuse_foreign(req.headers(), app.port) {
        return refused;
    }
    if req.uri().path() == "/login" {
        if req.method() != Method::GET {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        return next.run(req).await;
    }
    if !has_session(req.headers(), app) {
        return unauthorized("You are not signed in to this app.");
    }
    match *req.method() {
        Method::GET | Method::HEAD => next.run(req).await,
        Method::POST => {
            let (parts, body) = req.into_parts();
            let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The form is too large; nothing was changed.",
                )
                    .into_response();
            };
            let token = form_field(&bytes, "csrf");
            if !token.is_some_and(|t| same(&t, &app.keys.csrf())) {
                return stale_form();
            }
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_must_be_the_loopback_address_and_port() {
        let mut h = HeaderMap::new();
        assert!(!host_ok(&h, 8080));
        for (host, ok) in [
            ("127.0.0.1:8080", true),
            ("localhost:8080", true),
            ("127.0.0.1", false),
            ("127.0.0.1:8081", false),
            ("evil.example:8080", false),
            ("127.0.0.1:8080.evil.example", false),
        ] {
            h.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(host_ok(&h, 8080), ok, "{host}");
        }
    }

    #[test]
    fn form_fields_and_tokens() {
        assert_eq!(
            form_field(b"a=1&csrf=x%20y&b=2", "csrf").as_deref(),
            Some("x y")
        );
        assert_eq!(form_field(b"a=1", "csrf"), None);
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("d"));
        data.init(None).unwrap();
        let k = Keys::load_or_create(&data).unwrap();
        let again = Keys::load_or_create(&data).unwrap();
        assert_eq!(k.session(), again.session());
        assert_ne!(k.session(), k.csrf());
        assert_eq!(k.session().len(), 64);
    }
}
