//! When the person last opened each topic (`web.seen` in the data
//! directory, 0600), for "new since your last visit".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use node::DataDir;

pub(crate) struct Seen {
    path: PathBuf,
    times: Mutex<BTreeMap<String, u64>>,
}

impl Seen {
    pub(crate) fn load(data: &DataDir) -> Seen {
        let path = data.web_file("seen");
        let times = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Seen {
            path,
            times: Mutex::new(times),
        }
    }

    /// When `topic` was last opened (0: never).
    pub(crate) fn get(&self, topic: &str) -> u64 {
        self.times
            .lock()
            .map(|t| t.get(topic).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Records a visit of `topic` at `now_ms`; returns the previous one.
    pub(crate) fn mark(&self, topic: &str, now_ms: u64) -> u64 {
        let Ok(mut times) = self.times.lock() else {
            return 0;
        };
        let before = times.insert(topic.to_string(), now_ms).unwrap_or(0);
        if let Ok(bytes) = serde_json::to_vec(&*times) {
            if let Err(e) = node::datadir::write_private(&self.path, &bytes) {
                tracing::warn!("could not remember the topics' last visits: {e}");
            }
        }
        before
    }
}
