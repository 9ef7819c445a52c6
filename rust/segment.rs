//! What the scheduler packs: segments, plain data with no Python in them.

use std::sync::Arc;

use crate::truncation::Strategy;

/// Where a segment must sit, if anywhere in particular.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pin {
    /// Placed in natural (input) order with the body.
    #[default]
    None,
    /// Always kept, before everything else.
    Head,
    /// Always kept, after everything else.
    Tail,
}

/// How a segment may be cut to fit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Truncation {
    /// Never cut: kept whole or evicted.
    None,
    /// Cut by a built-in strategy.
    Cut(Strategy),
    /// Cut by the user's truncation hook of this name; its result is checked, and `auto` is used if it fails.
    Hook(Arc<str>),
}

impl Truncation {
    /// The name as the Python API spells it: `none`, a strategy's name, or the hook's name.
    pub fn name(&self) -> &str {
        match self {
            Truncation::None => "none",
            Truncation::Cut(strategy) => strategy.name(),
            Truncation::Hook(name) => name,
        }
    }
}

/// One piece of the prompt and what the scheduler may do with it.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Unique within one `pack` call.
    pub id: Arc<str>,
    /// Consumer class: system, instruction, `tool_result`, history, retrieval, or any user-defined kind.
    pub kind: Arc<str>,
    /// The text, shared so that packing never copies it.
    pub text: Arc<str>,
    /// A 128-bit hash of `text`, the key of the token-count memo.
    pub content_hash: u128,
    /// Higher is kept first; `None` takes the policy's default for the kind.
    pub priority: Option<i64>,
    /// Placement constraint; a pinned segment is always kept.
    pub pin: Pin,
    /// Always kept, in natural position.
    pub required: bool,
    /// Segments sharing a group are kept or evicted together.
    pub group: Option<Arc<str>>,
    /// `None` takes the policy's default for the kind.
    pub truncation: Option<Truncation>,
    /// A truncated segment keeps at least this many tokens (or is not cut at all).
    pub min_tokens: usize,
    /// For placement of reordered kinds: higher goes to the edges of its block.
    pub relevance: f64,
    /// Tokens it costs beyond its text (a chat message's framing, tool calls, images): always counted,
    /// never cut.
    pub overhead: usize,
    /// A short stand-in for the segment (a template: `{n}` becomes the tokens of `text`). Before whole
    /// units are evicted, the oldest segments that have one are replaced by it, as few as make a difference
    /// (a chat tool result becomes "[bash output removed …: 1,234 tokens]" and its call stays valid).
    pub stub: Option<Arc<str>>,
    /// When it was true, until when, and which memory it is a version of.
    pub freshness: Freshness,
    /// Whether its text came from tools, files or the web, not from the user or the developer (see `trust`);
    /// `None`: as the policy says of its kind.
    pub untrusted: Option<bool>,
    /// How many turns ago it was written (in a conversation: the assistant messages after it), for the
    /// untrusted half-life; `None`: not known.
    pub age: Option<u32>,
}

/// When a segment's content was observed and how long it holds, in seconds since the Unix epoch (UTC), and
/// the memory it is a version of: of segments sharing a `key`, only the highest `version` is current.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Freshness {
    pub observed_at: Option<f64>,
    pub expires_at: Option<f64>,
    pub key: Option<Arc<str>>,
    pub version: i64,
}

/// The kind segments kept as they were sent are packed under (by a session): no quota of the policy applies to
/// them (they were counted against their own kind's when decided).
pub(crate) const KEPT_KIND: &str = "(kept as sent)";

impl Segment {
    /// A segment of `kind` with default settings; the content hash is computed here, once.
    pub fn new(id: impl Into<Arc<str>>, kind: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Self {
        let text = text.into();
        Self {
            id: id.into(),
            kind: kind.into(),
            content_hash: content_hash(&text),
            text,
            priority: None,
            pin: Pin::None,
            required: false,
            group: None,
            truncation: None,
            min_tokens: 0,
            relevance: 0.0,
            overhead: 0,
            stub: None,
            freshness: Freshness::default(),
            untrusted: None,
            age: None,
        }
    }

    /// A segment a session keeps as it was sent: its text is what the provider saw, so nothing is added to it.
    pub fn is_kept_as_sent(&self) -> bool {
        &*self.kind == KEPT_KIND
    }

    /// Pinned or required: always kept.
    pub fn is_mandatory(&self) -> bool {
        self.required || self.pin != Pin::None
    }
}

/// The memo key for a text: xxh3's 128-bit hash (collisions are not a practical concern at this width).
pub fn content_hash(text: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}
