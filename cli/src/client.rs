//! Talking to the running node over its control socket, after checking that
//! the data directory is ours.

use anyhow::Result;
use node::control::{self, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Ctx;

impl Ctx {
    /// Refuses a data directory that holds someone else's files, without
    /// writing anything: an existing non-empty directory with no identity
    /// must at least carry mutual's marker (which `DataDir::ensure` checks
    /// before it writes).
    pub(crate) fn check_dir(&self) -> Result<()> {
        let path = self.data.path();
        if !path.exists() || self.data.has_identity() {
            return Ok(());
        }
        if !path.is_dir() {
            self.data.ensure()?;
        }
        let empty = std::fs::read_dir(path)
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false);
        if !empty {
            self.data.ensure()?;
        }
        Ok(())
    }

    /// Sends one request to the running node and returns its result.
    pub(crate) async fn call(&self, request: Request) -> Result<Value> {
        self.check_dir()?;
        let wait = self.wait_for(&request);
        Ok(control::request_within(&self.data.socket_path(), &request, wait).await?)
    }

    /// How long to wait for each answer line to `request`: `--timeout`, or
    /// the request's own default.
    pub(crate) fn wait_for(&self, request: &Request) -> std::time::Duration {
        self.timeout.unwrap_or_else(|| request.reply_timeout())
    }

    /// Sends one request and decodes its result as `T`.
    pub(crate) async fn call_as<T: DeserializeOwned>(&self, request: Request) -> Result<T> {
        let value = self.call(request).await?;
        serde_json::from_value(value).map_err(|e| {
            anyhow::anyhow!(
                "the node sent a reply this client does not understand ({e}); are `mutual` and the node the same version?"
            )
        })
    }
}
