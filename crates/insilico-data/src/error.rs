//! The error type of this crate. Every variant that concerns a file names it,
//! because "bad magic" without a path is useless when a directory holds
//! eight nearly identical files.

use std::path::Path;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, DataError>;

/// Everything that can go wrong while finding, reading or checking data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: corrupt gzip stream: {detail}")]
    CorruptGzip { file: String, detail: String },
    #[error("{file}: bad magic: {detail}")]
    BadMagic { file: String, detail: String },
    #[error("{file}: bad dimensions: {detail}")]
    BadDims { file: String, detail: String },
    #[error("{file}: truncated: {detail}")]
    Truncated { file: String, detail: String },
    #[error("{file}: trailing bytes: {detail}")]
    TrailingBytes { file: String, detail: String },
    #[error("{file}: malformed: {detail}")]
    Malformed { file: String, detail: String },
    #[error("{file}: checksum mismatch: expected sha256 {expected}, found {found}")]
    ChecksumMismatch {
        file: String,
        expected: String,
        found: String,
    },
    #[error("unknown dataset '{name}'; known datasets: {known}")]
    UnknownDataset { name: String, known: String },
    #[error("dataset '{dataset}' not found: {detail}")]
    NotFound { dataset: String, detail: String },
    #[error("{url}: download failed: {detail}")]
    Download { url: String, detail: String },
    #[error("manifest: {0}")]
    Manifest(String),
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            file: path.display().to_string(),
            source,
        }
    }
}
