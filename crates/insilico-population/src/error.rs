//! One error type for the crate: every message names what was being computed
//! (or which file was read) and what is wrong with it.

use std::path::PathBuf;
use std::sync::Arc;

/// Errors from loading representations and computing population measures. `Clone`, so
/// that a result computed once for several measures (ridge's R^2 and r) can be handed to
/// each, error or not.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    /// (The cause is in the message and not also a `source`, which error chains print again.)
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: Arc<std::io::Error>,
    },
    /// A file was read but its contents are not a usable matrix.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// Two representations that must describe the same stimuli do not.
    #[error("{what}: the two representations have {x} and {y} stimuli (rows); they must be the same stimuli in the same order")]
    StimulusMismatch {
        what: &'static str,
        x: usize,
        y: usize,
    },
    /// Not enough stimuli (rows) for the computation to be defined.
    #[error("{what}: {stimuli} stimuli, at least {needed} needed ({why})")]
    TooFewStimuli {
        what: &'static str,
        stimuli: usize,
        needed: usize,
        why: &'static str,
    },
    /// The data make the measure undefined (constant units, zero variance...).
    #[error("{what}: {reason}")]
    Degenerate { what: &'static str, reason: String },
    /// A parameter is out of its range.
    #[error("{what}: {reason}")]
    InvalidArgument { what: &'static str, reason: String },
    /// A decomposition from the linear-algebra library did not converge.
    #[error("{what}: {decomposition} did not converge")]
    NoConvergence {
        what: &'static str,
        decomposition: &'static str,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// The error of a file that could not be read, for `map_err`.
pub(crate) fn unreadable(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    |cause| Error::Io {
        path: path.to_owned(),
        cause: Arc::new(cause),
    }
}

pub(crate) fn degenerate(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Degenerate {
        what,
        reason: reason.into(),
    }
}

pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidArgument {
        what,
        reason: reason.into(),
    }
}
