//! The one error type of the core. It stays a Rust value until the Python boundary, where
//! `py/errors.rs` maps each variant to a Python exception.

/// Everything that can go wrong in the core, each variant naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    /// An encoding name that is not built in.
    #[error("unknown encoding {name:?}; known encodings: {known}")]
    UnknownEncoding {
        /// The name that was asked for.
        name: String,
        /// The built-in names, comma-separated.
        known: String,
    },
    /// A token id that the encoding does not have.
    #[error("token id {token} is not in {encoding} (valid ids: 0..{vocab_size})")]
    InvalidToken {
        /// The offending id.
        token: u32,
        /// The encoding's name.
        encoding: &'static str,
        /// One past the largest valid id.
        vocab_size: u32,
    },
}

/// The core's result type.
pub type Result<T> = std::result::Result<T, SchedError>;
