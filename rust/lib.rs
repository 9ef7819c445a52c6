//! ctxsched's core: exact, offline token counting and token-boundary truncation for
//! `OpenAI`'s `o200k_base` and `cl100k_base` encodings, with the scheduler built on top of it.
//!
//! The crate is plain Rust and testable with `cargo test`; the Python bindings live in [`py`] behind the
//! `python` feature and are the only code that knows about Python.
#![forbid(unsafe_code)]

mod chat;
mod error;
mod packer;
mod policy;
mod segment;
mod session;
mod tokenizer;
mod truncation;
mod trust;

#[cfg(feature = "python")]
mod py;

pub use chat::{
    anthropic_image_tokens, check_growing, count_tools, image_size, image_tokens, link, plan, segments,
    segments_numbered, Accounting, Answer, ChatSegments, ImageDetail, Linked, Message, Planned, Role, ToolAccounting,
    ToolCall, ToolCount, TOOL_CALL_KIND,
};
pub use chat::{
    fallback_text, fit_inputs, inputs_fingerprint, message_runs, place_summaries, plan_summaries, summary_framing,
    summary_id, summary_segment, Lineage, MessageRun, Placing, RunOutcome, SummarySettings, SUMMARY_HEADER,
    SUMMARY_KIND,
};
pub use error::{Result, SchedError};
pub use packer::{
    Admission, Appended, Cut, Decision, Eviction, KindUsage, Packed, Packer, Placement, Region, Restate, Summarised,
    Summary, SummaryRun, TruncatorFailure, Truncators, HIGH_PRIORITY, RESTATED_KIND, RESTATE_HEADER,
};
pub use policy::{Amount, Policy, Quota};
pub use segment::{content_hash, Freshness, Pin, Segment, Truncation};
pub use session::{
    Applied, CacheReport, Earlier, Held, HeldSummaries, Marks, Outcomes, Plan, Session, SessionPack, SessionRun,
    Settings, FIRST_PACK,
};
pub use tokenizer::{Encoding, Keep, Tokenizer};
pub use truncation::{Strategy, Truncated, DEFAULT_MARKER};
pub use trust::{
    datamark, fenced, neutralise, Fence, Patterns, Prepared, TrustPolicy, BUILTIN_PATTERNS, DATAMARK, FENCE_CLOSE,
    FENCE_OPEN, PATTERNS_VERSION,
};
