//! Driving Debian's headless Chromium through chromedriver (W3C
//! WebDriver), with a client of a few dozen lines over plain HTTP on
//! 127.0.0.1 (a WebDriver crate would bring a second copy of several
//! crates of the tree). Also: in-process nodes with the app served.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Keys of the WebDriver key actions.
pub(crate) const TAB: &str = "\u{E004}";
pub(crate) const ENTER: &str = "\u{E007}";
pub(crate) const ESCAPE: &str = "\u{E00C}";

/// How long a browser condition may take before the test fails.
pub(crate) const BROWSER_DEADLINE: Duration = Duration::from_secs(30);

/// A chromedriver process (killed on drop).
pub(crate) struct Driver {
    child: Child,
    port: u16,
    /// Every session opened, closed on drop (a failed test would otherwise
    /// leave its browsers running: killing chromedriver does not end them).
    sessions: std::sync::Mutex<Vec<String>>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let sessions = self.sessions.lock().map(|s| s.clone()).unwrap_or_default();
        for id in sessions {
            delete_session_blocking(self.port, &id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `DELETE /session/{id}` without a runtime (from `Drop`), bounded in time.
fn delete_session_blocking(port: u16, id: &str) {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_ok() {
        let mut buf = [0u8; 4096];
        // The answer comes once the browser has quit.
        let _ = s.read(&mut buf);
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// One HTTP/1.1 exchange on 127.0.0.1 (the answer read to its end).
pub(crate) async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(req.as_bytes()).await?;
    stream.write_all(body).await?;
    // Read the head, then exactly the body (a server may keep the
    // connection open whatever `Connection: close` asked).
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the connection closed before the HTTP head ended");
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head_text = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let length = head_text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head_text.contains("transfer-encoding: chunked");
    loop {
        let body = raw.len() - split - 4;
        let done = match length {
            Some(len) => body >= len,
            None if chunked => raw.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        rest = dechunk(&rest)?;
    }
    Ok((status, headers, rest))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunk"))?;
        let size_text = String::from_utf8_lossy(&data[..end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

impl Driver {
    /// Starts chromedriver; fails (never skips) when Chromium or its
    /// driver is not installed.
    pub(crate) async fn start() -> Result<Driver> {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
            if !Path::new(path).exists() {
                bail!(
                    "{path} ({what}) is missing: the web app's browser tests need Debian's \
                     browser and its WebDriver; install them with \
                     `apt-get install -y chromium chromium-driver` (.ci/run does)"
                );
            }
        }
        let port = free_port()?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let driver = Driver {
            child,
            port,
            sessions: std::sync::Mutex::new(Vec::new()),
        };
        let end = tokio::time::Instant::now() + BROWSER_DEADLINE;
        loop {
            if let Ok((200, _, body)) = http(port, "GET", "/status", &[], b"").await {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["value"]["ready"] == json!(true) {
                    return Ok(driver);
                }
            }
            if tokio::time::Instant::now() > end {
                bail!("chromedriver did not get ready within {BROWSER_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new headless Chromium with a fresh profile.
    pub(crate) async fn browser(&self) -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--disable-default-apps", "--disable-extensions",
                        "--window-size=1200,900",
                        format!("--user-data-dir={}", profile.path().display()),
                    ]
                }
            }}
        });
        let v = wd(self.port, "POST", "/session", Some(caps)).await?;
        let session = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {v}"))?
            .to_string();
        if let Ok(mut s) = self.sessions.lock() {
            s.push(session.clone());
        }
        Ok(Browser {
            port: self.port,
            session,
            _profile: profile,
        })
    }
}

/// A WebDriver command; its `value`, or the driver's error.
async fn wd(port: u16, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, _, answer) = http(
        port,
        method,
        path,
        &[("Content-Type", "application/json; charset=utf-8")],
        body.as_bytes(),
    )
    .await?;
    let v: Value = serde_json::from_slice(&answer)
        .with_context(|| format!("WebDriver {method} {path}: not JSON (HTTP {status})"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if status >= 400 || value.get("error").is_some() {
        bail!(
            "WebDriver {method} {path}: {} {}",
            value["error"],
            value["message"].as_str().unwrap_or_default()
        );
    }
    if path == "/session" {
        return Ok(value);
    }
    Ok(value)
}

/// One browser session.
pub(crate) struct Browser {
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        wd(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
        .await
    }

    pub(crate) async fn goto(&self, url: &str) -> Result<()> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await?;
        Ok(())
    }

    pub(crate) async fn url(&self) -> Result<String> {
        Ok(self
            .cmd("GET", "/url", None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub(crate) async fn back(&self) -> Result<()> {
        self.cmd("POST", "/back", Some(json!({}))).await?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page;
    /// a returned promise is awaited.
    pub(crate) async fn exec(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Waits until the JavaScript expression `condition` is truthy.
    pub(crate) async fn wait_for(&self, what: &str, condition: &str) -> Result<()> {
        let script = format!("return !!({condition});");
        let end = tokio::time::Instant::now() + BROWSER_DEADLINE;
        loop {
            if let Ok(v) = self.exec(&script, vec![]).await {
                if v == json!(true) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > end {
                let url = self.url().await.unwrap_or_default();
                bail!("timed out after {BROWSER_DEADLINE:?} waiting for {what} (at {url})");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub(crate) async fn find(&self, css: &str) -> Result<String> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .with_context(|| format!("finding {css}"))?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no element id for {css} in {v}"))
    }

    pub(crate) async fn click(&self, css: &str) -> Result<()> {
        let id = self.find(css).await?;
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await
            .with_context(|| format!("clicking {css}"))?;
        Ok(())
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let id = self.find(css).await?;
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .with_context(|| format!("typing into {css}"))?;
        Ok(())
    }

    /// Presses keys (each character, or a key such as [`TAB`]) on whatever
    /// has the focus, as a person would.
    pub(crate) async fn keys(&self, keys: &str) -> Result<()> {
        let mut actions = Vec::new();
        for c in keys.chars() {
            actions.push(json!({ "type": "keyDown", "value": c.to_string() }));
            actions.push(json!({ "type": "keyUp", "value": c.to_string() }));
        }
        self.cmd(
            "POST",
            "/actions",
            Some(json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] })),
        )
        .await?;
        self.cmd("DELETE", "/actions", None).await?;
        Ok(())
    }

    /// Resizes the window (CSS pixels at 100 % zoom).
    pub(crate) async fn set_size(&self, width: u32, height: u32) -> Result<()> {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn screenshot(&self, path: &Path) -> Result<()> {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .context("decoding the screenshot")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    pub(crate) async fn close(self) -> Result<()> {
        self.cmd("DELETE", "", None).await?;
        Ok(())
    }
}

/// Where the browser tests save their screenshots: `target/web-screenshots`,
/// and also `docs/screenshots` (the README's) when
/// `MUTUAL_WEB_SCREENSHOTS=docs`.
pub(crate) fn screenshot_paths(name: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = vec![root
        .join("target/web-screenshots")
        .join(format!("{name}.png"))];
    if std::env::var("MUTUAL_WEB_SCREENSHOTS").as_deref() == Ok("docs") {
        out.push(root.join("docs/screenshots").join(format!("{name}.png")));
    }
    out
}

/// A node's app: where it is and how to log in.
pub(crate) struct App {
    pub(crate) server: web::WebServer,
    pub(crate) data: node::DataDir,
}

impl App {
    pub(crate) async fn serve(node: &mutual_tests::TestNode) -> Result<App> {
        let server = web::serve(node.handle.clone(), node.data.clone(), None).await?;
        Ok(App {
            server,
            data: node.data.clone(),
        })
    }

    pub(crate) fn base(&self) -> String {
        self.server.base_url()
    }

    pub(crate) fn port(&self) -> u16 {
        self.server.addr.port()
    }

    pub(crate) fn login_link(&self) -> Result<String> {
        Ok(web::new_login_link(&self.data)?)
    }

    /// Logs `browser` in (a fresh one-time link) and waits for the home page.
    pub(crate) async fn login(&self, browser: &Browser) -> Result<()> {
        browser.goto(&self.login_link()?).await?;
        browser
            .wait_for(
                "the home page after login",
                "document.querySelector('header.top') && location.pathname === '/'",
            )
            .await
    }
}

/// The `name=value` of the cookie an answer sets, if any.
pub(crate) fn set_cookie(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .and_then(|(_, v)| v.split(';').next())
        .map(str::to_string)
}

/// The CSRF token in a page's forms, if any.
pub(crate) fn csrf_in(page: &str) -> Option<String> {
    page.split_once("name=\"csrf\" value=\"")
        .and_then(|(_, rest)| rest.split('"').next())
        .map(str::to_string)
}

/// POSTs an urlencoded form `body` to `path` with the cookie `cookie`
/// (`name=value`).
pub(crate) async fn post_form(
    port: u16,
    cookie: &str,
    path: &str,
    body: &str,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    http(
        port,
        "POST",
        path,
        &[
            ("Cookie", cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .await
}
