//! Issue 15's measurements of the web app, in the real browser (ignored by
//! default; prints its figures):
//!
//! ```sh
//! cargo test -p mutual-tests --test web_measure -- --ignored --nocapture
//! ```
//!
//! - time from `handle.publish` on node A to the post drawn in node B's
//!   open topic page (a MutationObserver notes when each post's element
//!   enters the page), p50 / p99 / max over 200 posts, one every 1.1 s
//!   (under the per-author gossip limit of 60 a minute);
//! - the weight of each page with its assets (Chromium's resource timing),
//!   and that every request the pages made went to the app on 127.0.0.1.

use std::time::Duration;

use crate::web_support::{App, Driver};
use anyhow::{bail, Result};
use mutual_tests::{start_bulk, topic, wait_until, TestNet, DEADLINE};
use protocol::post::Draft;
use serde_json::Value;

/// Time between two measured posts.
const PACE: Duration = Duration::from_millis(1100);

const POSTS: usize = 200;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn web_measure() -> Result<()> {
    let driver = Driver::start().await?;
    let mut net = TestNet::new()?;
    let a = start_bulk(net.member("river")?, &[]).await?;
    let b = start_bulk(net.member("stone")?, &[&a.addr]).await?;
    for n in [&a, &b] {
        n.handle.join(topic("t")).await?;
    }
    let probe = a
        .handle
        .publish(
            topic("t"),
            Draft {
                body: "probe".into(),
                ..Draft::default()
            },
        )
        .await?
        .to_string();
    wait_until(DEADLINE, "gossip from A to B", || async {
        b.ids("t").await.contains(&probe)
    })
    .await?;
    let app = App::serve(&b).await?;
    let browser = driver.browser().await?;
    app.login(&browser).await?;

    // Page weight, and where every request went.
    println!("page weight (bytes of bodies as sent, with assets; 127.0.0.1 only):");
    let base = app.base();
    for path in ["/", "/t/t", "/me", "/mod", "/log", "/status"] {
        browser.goto(&format!("{base}{path}")).await?;
        browser
            .wait_for("the page", "document.readyState === 'complete'")
            .await?;
        let v: Value = browser
            .exec(
                "const nav = performance.getEntriesByType('navigation')[0];\
                 const res = performance.getEntriesByType('resource');\
                 const all = [nav, ...res];\
                 return { bytes: all.reduce((s, e) => s + (e.encodedBodySize || 0), 0),\
                          decoded: all.reduce((s, e) => s + (e.decodedBodySize || 0), 0),\
                          requests: all.length, urls: all.map(e => e.name) };",
                vec![],
            )
            .await?;
        let foreign: Vec<&str> = v["urls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|u| !u.starts_with(&base))
            .collect();
        if !foreign.is_empty() {
            bail!("{path}: requests left the app: {foreign:?}");
        }
        println!(
            "  {path:<8} {:>6} bytes ({} decoded) in {} requests",
            v["bytes"], v["decoded"], v["requests"]
        );
    }

    // Latency to the drawn post.
    browser.goto(&format!("{base}/t/t")).await?;
    browser
        .wait_for(
            "the live stream",
            "document.documentElement.dataset.live === '1'",
        )
        .await?;
    browser
        .exec(
            "window.__drawn = {};\
             new MutationObserver((list) => { const now = Date.now();\
               for (const m of list) for (const n of m.addedNodes)\
                 if (n.nodeType === 1 && n.matches('li.post')) window.__drawn[n.dataset.id] = now; })\
               .observe(document.getElementById('thread'), { childList: true, subtree: true });\
             return true;",
            vec![],
        )
        .await?;
    // B's own PostStored events, to tell the network's share from the app's.
    let mut events = b.handle.subscribe();
    let stored = tokio::spawn(async move {
        let mut at = std::collections::HashMap::new();
        while at.len() < POSTS {
            match tokio::time::timeout(DEADLINE, events.recv()).await {
                Ok(Ok(node::NodeEvent::PostStored(p))) => {
                    at.insert(p.id.clone(), node::now_ms());
                }
                Ok(Ok(_)) => {}
                _ => break,
            }
        }
        at
    });
    let mut sent: Vec<(String, u64)> = Vec::new();
    for i in 0..POSTS {
        let at = node::now_ms();
        let id = a
            .handle
            .publish(
                topic("t"),
                Draft {
                    body: format!("measured post {i}"),
                    ..Draft::default()
                },
            )
            .await?
            .to_string();
        sent.push((id, at));
        // Pacing, not synchronisation: one author may gossip at most 60
        // posts a minute (node::core::limits::AUTHOR_GOSSIP_PER_MINUTE);
        // faster, the rest are ignored by B and arrive by sync seconds
        // later, which measures the limit, not the app.
        tokio::time::sleep(PACE).await;
    }
    browser
        .wait_for(
            "every post drawn",
            &format!("Object.keys(window.__drawn).length >= {POSTS}"),
        )
        .await?;
    let drawn = browser.exec("return window.__drawn;", vec![]).await?;
    let mut lat: Vec<u64> = sent
        .iter()
        .filter_map(|(id, at)| drawn[id].as_u64().map(|d| d.saturating_sub(*at)))
        .collect();
    if lat.len() != POSTS {
        bail!("{} of {POSTS} posts were drawn", lat.len());
    }
    lat.sort_unstable();
    let stored = stored.await?;
    let mut net_lat: Vec<u64> = sent
        .iter()
        .filter_map(|(id, at)| stored.get(id).map(|s| s.saturating_sub(*at)))
        .collect();
    net_lat.sort_unstable();
    let mut app_lat: Vec<u64> = sent
        .iter()
        .filter_map(|(id, _)| {
            let s = stored.get(id)?;
            drawn[id].as_u64().map(|d| d.saturating_sub(*s))
        })
        .collect();
    app_lat.sort_unstable();
    println!(
        "publish on A -> PostStored on B (the network's share): p50 {} ms, p99 {} ms ({} posts)",
        percentile(&net_lat, 0.5),
        percentile(&net_lat, 0.99),
        net_lat.len()
    );
    println!(
        "PostStored on B -> drawn in B's page (the app's share: SSE, render, DOM): p50 {} ms, p99 {} ms",
        percentile(&app_lat, 0.5),
        percentile(&app_lat, 0.99)
    );
    println!(
        "publish on A -> drawn in B's open page, {POSTS} posts one every {PACE:?}: p50 {} ms, p99 {} ms, max {} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    );
    browser.close().await?;
    Ok(())
}
