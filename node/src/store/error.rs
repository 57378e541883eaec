//! What can go wrong with the store, said so that a person knows what to do.
//! sled's own error type stays in this module's private conversions: no sled
//! type appears in the store's public API.

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use sled::transaction::TransactionError;

/// Why the store failed. Each message names the cause and what to try.
/// Clone: one failed batch write is the answer for every item in it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another store in this process) holds the
    /// directory's lock: two nodes writing one store would corrupt it.
    #[error(
        "the data directory at {} is in use by another mutual node: stop that node first, \
         or start this one with another --data-dir",
        .path.display()
    )]
    InUse {
        /// The store directory.
        path: PathBuf,
    },
    /// The store directory could not be opened or created.
    #[error(
        "cannot open the store at {}: {detail} (check that the directory is writable by this \
         user and that the disk has free space)",
        .path.display()
    )]
    Open {
        /// The store directory.
        path: PathBuf,
        /// The underlying cause.
        detail: String,
    },
    /// The store was written by a newer mutual whose layout this one does
    /// not know; reading it could misread or damage it.
    #[error(
        "the store at {} has layout version {found}, but this mutual reads up to version \
         {supported}: upgrade mutual",
        .path.display()
    )]
    NewerLayout {
        /// The store directory.
        path: PathBuf,
        /// The layout version found on disk.
        found: u64,
        /// The newest layout version this build reads.
        supported: u64,
    },
    /// The store is sealed under other keys than the ones given: another
    /// data directory's store, or the wrong passphrase. Nothing was
    /// written.
    #[error(
        "the store at {} is encrypted under other keys than this data directory's: it \
         belongs to another identity or data directory, or the passphrase is not the one it \
         was sealed with; or its key check file (keycheck) is damaged. Nothing was changed",
        .path.display()
    )]
    WrongKeys {
        /// The store directory.
        path: PathBuf,
    },
    /// The database itself found damage on disk (not one bad value, which
    /// is skipped with a warning instead).
    #[error(
        "the store is damaged ({detail}): stop the node, move its store directory aside and \
         start again; the node will fetch the community's history from its peers"
    )]
    Corrupt {
        /// What was found.
        detail: String,
    },
    /// A read or write failed while the store was open.
    #[error(
        "the store could not {during}: {detail} (check free disk space and the permissions \
         of the data directory)"
    )]
    Io {
        /// What the store was doing, as a verb phrase ("write a post").
        during: &'static str,
        /// The underlying cause.
        detail: String,
    },
}

impl StoreError {
    /// Maps a sled error raised while doing `during`.
    pub(super) fn backend(during: &'static str, e: sled::Error) -> StoreError {
        match e {
            sled::Error::Corruption { at, .. } => StoreError::Corrupt {
                detail: match at {
                    Some(at) => format!("corrupt data at {at:?}"),
                    None => "corrupt data".to_string(),
                },
            },
            other => StoreError::Io {
                during,
                detail: other.to_string(),
            },
        }
    }

    /// Maps a sled error raised while opening the store at `path`.
    pub(super) fn opening(path: &Path, e: sled::Error) -> StoreError {
        match e {
            sled::Error::Io(ref io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                StoreError::InUse {
                    path: path.to_path_buf(),
                }
            }
            sled::Error::Corruption { .. } => StoreError::backend("open", e),
            other => StoreError::Open {
                path: path.to_path_buf(),
                detail: other.to_string(),
            },
        }
    }
}

/// Attaches what the store was doing to a sled failure.
pub(super) trait During<T> {
    /// Converts the error, naming the operation (a verb phrase).
    fn during(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> During<T> for Result<T, sled::Error> {
    fn during(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::backend(what, e))
    }
}

impl<T> During<T> for Result<T, TransactionError<Infallible>> {
    fn during(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| match e {
            TransactionError::Abort(never) => match never {},
            TransactionError::Storage(e) => StoreError::backend(what, e),
        })
    }
}
