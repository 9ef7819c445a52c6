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
    /// The mandatory set (pinned and required segments, and their groups) cannot fit, even truncated.
    #[error(
        "the mandatory set needs {needed} tokens but only {usable} are usable (budget {budget} - reserve {reserve}); \
         it holds {}", describe(.members)
    )]
    Budget {
        /// Tokens the mandatory set needs at its smallest.
        needed: usize,
        /// Budget minus the output reserve.
        usable: usize,
        /// The budget asked for.
        budget: usize,
        /// The policy's output reserve.
        reserve: usize,
        /// (id, kind, tokens at its smallest) of each mandatory segment.
        members: Vec<(String, String, usize)>,
    },
    /// Mandatory segments of one kind exceed that kind's quota maximum, even truncated.
    #[error("mandatory segments of kind {kind:?} need {needed} tokens, above its quota maximum of {max}; they are {}", describe(.members))]
    QuotaInfeasible {
        /// The kind.
        kind: String,
        /// Tokens they need at their smallest.
        needed: usize,
        /// The kind's resolved maximum.
        max: usize,
        /// (id, kind, tokens) of each.
        members: Vec<(String, String, usize)>,
    },
    /// A mandatory segment whose planned cut keeps nothing: no character boundary within that many tokens.
    #[error(
        "segment {id:?} must be kept but cannot be cut to {tokens} tokens without splitting a character; \
         raise the budget or its min_tokens"
    )]
    Uncuttable {
        /// The segment's id.
        id: String,
        /// The size it was to be cut to.
        tokens: usize,
    },
    /// Two segments share an id.
    #[error("segment id {id:?} is used by segments {first} and {second}; ids must be unique")]
    DuplicateId {
        /// The id.
        id: String,
        /// Index of the first segment with it.
        first: usize,
        /// Index of the second.
        second: usize,
    },
    /// A chat message (or the conversation) that is not valid in its format.
    #[error("{}{problem}", index.map_or_else(String::new, |index| format!("messages[{index}] ")))]
    MessageFormat {
        /// The message's position (`None`: the conversation as a whole).
        index: Option<usize>,
        /// What is wrong with it, as a predicate ("has role 'bot'; the roles are ...").
        problem: String,
    },
    /// A policy that is valid on its own but not for this budget.
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// The caller broke an API contract (for example, a count list of the wrong length).
    #[error("{0}")]
    InvalidArgument(String),
    /// A user truncator asked for the whole pack to stop (in Python: it raised `KeyboardInterrupt` or
    /// `SystemExit`, which the bindings re-raise).
    #[error("truncator {name:?} interrupted packing")]
    Interrupted {
        /// The truncator's name.
        name: String,
    },
}

fn describe(members: &[(String, String, usize)]) -> String {
    const SHOWN: usize = 20;
    let mut parts: Vec<String> =
        members.iter().take(SHOWN).map(|(id, kind, tokens)| format!("{id} ({kind}, {tokens} tokens)")).collect();
    if members.len() > SHOWN {
        parts.push(format!("and {} more", members.len() - SHOWN));
    }
    parts.join(", ")
}

/// The core's result type.
pub type Result<T> = std::result::Result<T, SchedError>;
