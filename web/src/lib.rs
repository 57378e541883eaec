//! mutual's local web app: the node serves it on 127.0.0.1 only, as a
//! client of [`NodeHandle`] (like the control socket). Every page, asset,
//! API and event stream needs the session cookie, which a one-time login
//! link (`mutual ui`) exchanges; the `Host` header must name the loopback
//! address the app is served on (DNS rebinding); every state change is a
//! POST carrying the session's CSRF token; every answer carries a strict
//! Content-Security-Policy and `Cache-Control: no-store`. Every asset is
//! compiled into the binary; nothing is loaded from anywhere else.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod actions;
mod approval;
mod community;
mod events;
mod locked;
mod pages;
mod security;
mod seen;
mod time;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use node::{DataDir, NodeError, NodeHandle};

pub use locked::{serve_locked, LockedServer};
pub use security::{login_link, new_login_link};

/// The port file in the data directory (`web.port`).
const PORT_FILE: &str = "port";

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) handle: NodeHandle,
    pub(crate) data: DataDir,
    pub(crate) keys: Arc<security::Keys>,
    pub(crate) port: u16,
    pub(crate) seen: Arc<seen::Seen>,
    /// Set by "Forget this device": `mutual run` destroys the data
    /// directory once the node has stopped.
    pub(crate) forget: Arc<AtomicBool>,
}

/// The app, served.
pub struct WebServer {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    forget: Arc<AtomicBool>,
}

impl WebServer {
    /// The app's address, `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether the person asked the app to forget this device (the node
    /// was then asked to stop): the data directory is to be destroyed.
    pub fn forget_requested(&self) -> bool {
        self.forget.load(Ordering::SeqCst)
    }

    /// Stops serving.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The port this data directory's app was last served on.
pub fn remembered_port(data: &DataDir) -> Result<Option<u16>, NodeError> {
    let path = data.web_file(PORT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u16>().map(Some).map_err(|_| {
            NodeError::BadInput(format!(
                "{} should hold a port number; fix it, delete it (a new port is then chosen), \
                 or start with --ui-port PORT",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(security::io_err(format!("reading {}", path.display()), e)),
    }
}

/// Serves the app on 127.0.0.1: on `port` if given, else on the port the
/// data directory remembers, else on a free one; the port used is
/// remembered for the next start (so a bookmark keeps working).
pub async fn serve(
    handle: NodeHandle,
    data: DataDir,
    port: Option<u16>,
) -> Result<WebServer, NodeError> {
    let listener = bind(&data, port).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| security::io_err("reading the app's address", e))?;
    let keys = Arc::new(security::Keys::load_or_create(&data)?);
    let forget = Arc::new(AtomicBool::new(false));
    let app = App {
        forget: forget.clone(),
        seen: Arc::new(seen::Seen::load(&data)),
        handle,
        data,
        keys,
        port: addr.port(),
    };
    let router = router(app);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!("the app's server stopped: {e}");
        }
    });
    Ok(WebServer { addr, task, forget })
}

/// Binds the app's port on 127.0.0.1: `port` if given, else the one the
/// data directory remembers, else a free one; remembers the port used.
pub(crate) async fn bind(
    data: &DataDir,
    port: Option<u16>,
) -> Result<tokio::net::TcpListener, NodeError> {
    let remembered = remembered_port(data)?;
    let wanted = port.or(remembered).unwrap_or(0);
    let listener = match tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, wanted)).await {
        Ok(l) => l,
        // The remembered port is taken (by something else): a free one,
        // said out loud; a port asked for on the command line is an error.
        Err(e) if port.is_none() && wanted != 0 => {
            tracing::warn!("the app's port {wanted} is in use ({e}); serving it on a free port");
            tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(|e| security::io_err("binding the app's port on 127.0.0.1", e))?
        }
        Err(e) => {
            return Err(security::io_err(
                format!("binding the app's port {wanted} on 127.0.0.1"),
                e,
            ))
        }
    };
    let addr = listener
        .local_addr()
        .map_err(|e| security::io_err("reading the app's address", e))?;
    if remembered != Some(addr.port()) {
        node::datadir::write_private(
            &data.web_file(PORT_FILE),
            addr.port().to_string().as_bytes(),
        )?;
    }
    Ok(listener)
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/t/{topic}", get(pages::topic))
        .route("/t/{topic}/post", post(actions::post))
        .route("/join", post(actions::join))
        .route("/retract", post(actions::retract))
        .route("/report", post(actions::report))
        .route("/mute", post(actions::mute))
        .route("/me", get(pages::me))
        .route("/me/name", post(actions::name))
        .route("/me/passphrase", post(actions::passphrase))
        .route("/me/forget", post(actions::forget))
        .route("/mod", get(pages::moderation))
        .route("/mod/act", post(actions::moderate))
        .route("/mod/resolve", post(actions::resolve))
        .route("/mod/lockdown", post(community::lockdown))
        .route("/mod/rules", post(community::rules))
        .route("/invite", post(community::invite))
        .route("/log", get(pages::log))
        .route("/status", get(pages::status))
        .route("/events", get(events::stream))
        .route("/assets/app.css", get(pages::css))
        .route("/assets/app.js", get(pages::js))
        .route("/favicon.ico", get(pages::favicon))
        .route("/login", get(security::login))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            security::guard,
        ))
        .with_state(app)
}
