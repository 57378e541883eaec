//! A node in its own process, for the crash tests: they kill it with
//! SIGKILL mid-work and check what survives.
//!
//! `mutual-testnode DATA_DIR TOPIC BOOTSTRAP|- PUBLISH_COUNT`
//! starts a node on 127.0.0.1, joins TOPIC, syncs from BOOTSTRAP, publishes
//! PUBLISH_COUNT posts and prints `ACK <post id>` after each acknowledged
//! one, and `HAVE <n>` as its post count grows; then runs until killed.
//!
//! `mutual-testnode import DATA_DIR FILE` starts a node on 127.0.0.1 on
//! DATA_DIR (no bootstrap, no per-author limit), prints `READY`, then takes
//! the messages of FILE (each a 4-byte big-endian length and an encoded
//! `Message`) one at a time through the arrival path, as an import: it
//! prints `GO <i>` before the `i`th and `DONE <i> true|false` (newly
//! stored?) once the node answered; then runs until killed.

use std::time::Duration;

use anyhow::Context;
use node::{DataDir, NodeConfig, ReadQuery};
use protocol::post::Draft;
use protocol::{Message, TopicName};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, dir, file] = args.as_slice() {
        if mode == "import" {
            return import(dir, file).await;
        }
    }
    let [_, dir, topic, bootstrap, count] = args.as_slice() else {
        anyhow::bail!("usage: mutual-testnode DATA_DIR TOPIC BOOTSTRAP|- PUBLISH_COUNT");
    };
    let topic = TopicName::parse(topic)?;
    let count: usize = count.parse().context("PUBLISH_COUNT")?;
    let mut config = NodeConfig::local(DataDir::new(dir));
    config.author_posts_per_minute = usize::MAX;
    if bootstrap != "-" {
        config.bootstrap = vec![bootstrap.clone()];
    }
    let running = node::start(config).await?;
    let handle = running.handle;
    handle.join(topic.clone()).await?;
    let reporter = {
        let handle = handle.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(status) = handle.topics().await {
                    let n: u64 = status
                        .iter()
                        .filter(|t| t.name == topic.as_str())
                        .map(|t| t.posts)
                        .sum();
                    println!("HAVE {n}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for i in 0..count {
        let id = handle
            .publish(
                topic.clone(),
                Draft {
                    body: format!("own post {i}"),
                    ..Draft::default()
                },
            )
            .await?;
        println!("ACK {id}");
    }
    let _ = handle
        .read(
            topic,
            ReadQuery {
                limit: 1,
                since_ms: None,
            },
        )
        .await;
    reporter.await?;
    Ok(())
}

/// The `import` mode (see the module documentation).
async fn import(dir: &str, file: &str) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    let mut messages = Vec::new();
    let mut rest = bytes.as_slice();
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        anyhow::ensure!(tail.len() >= len, "{file}: a message is cut short");
        let (message, tail) = tail.split_at(len);
        messages.push(Message::decode(message)?);
        rest = tail;
    }
    anyhow::ensure!(rest.is_empty(), "{file}: trailing bytes");
    let mut config = NodeConfig::local(DataDir::new(dir));
    config.author_posts_per_minute = usize::MAX;
    let running = node::start(config).await?;
    let handle = running.handle;
    println!("READY");
    for (i, message) in messages.into_iter().enumerate() {
        println!("GO {i}");
        let stored = handle.import(message).await?;
        println!("DONE {i} {stored}");
    }
    running.task.await??;
    Ok(())
}
