//! Issue 9: logs never hold post bodies, report reasons or secret keys.

use std::io::Write;
use std::sync::{Arc, Mutex};

use mutual_tests::{gossip_until_judged, start, topic, wait_until, TestNet, DEADLINE};
use protocol::moderation::ModActionKind;
use protocol::post::Draft;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_bodies_reports_or_keys() -> anyhow::Result<()> {
    let capture = Capture::default();
    // The default level (info), and debug for our own crate, which is
    // stricter than what a user sees.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,node=debug"))
        .with_writer(capture.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)?;

    let mut net = TestNet::new()?;
    let a = start(net.admin.clone(), &[]).await?;
    let b = start(net.member("b")?, &[&a.addr]).await?;
    a.handle.join(topic("t")).await?;
    b.handle.join(topic("t")).await?;
    let body = "my secret struggle with panic attacks";
    let id = b
        .handle
        .publish(
            topic("t"),
            Draft {
                body: body.into(),
                ..Draft::default()
            },
        )
        .await?;
    wait_until(DEADLINE, "the post on a", || async {
        a.count("t").await == 1
    })
    .await?;
    let reason = "this reveals a colleague's diagnosis";
    b.handle.report(id, reason.into()).await?;
    wait_until(DEADLINE, "the report on a", || async {
        a.handle
            .mod_queue()
            .await
            .map(|q| q.len() == 1)
            .unwrap_or(false)
    })
    .await?;
    a.handle
        .moderate(ModActionKind::Hide {
            post: id,
            reason: "privacy".into(),
        })
        .await?;
    // A forged message is rejected and logged at debug: its reason must not
    // carry the content either. b gossips forged posts (a new one every
    // second) until a has judged one; only then are the logs read.
    let b_id = b.data.identity()?;
    let mut events = a.handle.subscribe();
    let judged = gossip_until_judged(
        &b,
        &net.gossip_topic(&topic("t")),
        &mut events,
        &mut Vec::new(),
        |i| {
            let mut forged = protocol::Post::write(
                &b_id,
                net.manifest.id(),
                topic("t"),
                Draft {
                    body: format!("forged words {i}"),
                    ..Draft::default()
                },
                node::now_ms(),
            )?;
            forged.content.body = format!("tampered confession {i}");
            Ok(protocol::Message::Post(forged).encode())
        },
    )
    .await?;
    assert_eq!(judged.verdict, node::GossipVerdict::Reject);
    let secrets: Vec<String> = [&net.admin, &b.data]
        .iter()
        .map(|d| d.identity().map(|i| hex(&i.secret.to_bytes())))
        .collect::<Result<_, _>>()?;
    a.stop().await;
    b.stop().await;
    let logs = String::from_utf8_lossy(&capture.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?)
        .to_string();
    assert!(logs.contains("store flushed"), "the capture works: {logs}");
    for needle in [body, reason, "tampered confession", "forged words"] {
        assert!(!logs.contains(needle), "logs contain {needle:?}");
    }
    for s in secrets {
        assert!(!logs.contains(&s), "logs contain a secret key");
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
