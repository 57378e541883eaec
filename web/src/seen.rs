//! When the person last opened each topic (sealed in the data
//! directory's vault, as it names topics), for "new since your last
//! visit".

use std::collections::BTreeMap;
use std::sync::Mutex;

use node::vault::Role;
use node::DataDir;

pub(crate) struct Seen {
    data: DataDir,
    times: Mutex<BTreeMap<String, u64>>,
}

impl Seen {
    pub(crate) fn load(data: &DataDir) -> Seen {
        let times = data
            .read_sealed(Role::WEB_SEEN)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Seen {
            data: data.clone(),
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
            if let Err(e) = self.data.write_sealed(Role::WEB_SEEN, &bytes) {
                tracing::warn!("could not remember the topics' last visits: {e}");
            }
        }
        before
    }
}
