//! Chat conversations as segments: the one reader behind `pack_messages`, `count_messages` and the CLI.
//!
//! The bindings turn the caller's objects (`OpenAI` chat messages, the SDKs' message objects, Responses
//! input items) into [`Message`]s, counting what cannot be cut (content parts, refusals) as they go. Here
//! the conversation is linked ([`link`]: which result answers which call, repairs, typed errors naming the
//! message) and made into segments ([`segments`]: the default chat policy's kinds, pins, groups and stubs).
//!
//! Accounting (DESIGN.md): a message costs `per_message` + its role + its content (+ `per_name` + its
//! name); each tool call `per_tool_call` + its function name + its arguments; the reply priming is counted
//! once per prompt. A Responses function-call item costs what a tool call costs.

mod image;
mod link;
mod plan;
mod segments;
mod summary;
mod tools;

use std::sync::Arc;

pub use image::{anthropic_image_tokens, image_size, image_tokens, ImageDetail};
pub use link::{check_growing, link, Linked};
pub(crate) use plan::{is_infeasible, pack_segments, plan_linked};
pub use plan::{plan, Planned};
pub use segments::{segments, segments_numbered, ChatSegments};
pub use segments::{summary_id, summary_segment, SUMMARY_KIND};
pub use summary::{
    fallback_text, fit_inputs, inputs_fingerprint, message_runs, place_summaries, plan_summaries, summary_framing,
    Lineage, MessageRun, Placing, RunOutcome, SummarySettings, SUMMARY_HEADER,
};
pub use tools::{count_tools, ToolAccounting, ToolCount};

/// The kind of the segments that hold a message's tool calls.
pub const TOOL_CALL_KIND: &str = "tool_call";

/// The constants of chat accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accounting {
    /// Framing tokens of every message.
    pub per_message: usize,
    /// Extra tokens of a message with a `name`.
    pub per_name: usize,
    /// Framing tokens of every tool call.
    pub per_tool_call: usize,
    /// Tokens that prime the reply, once per prompt.
    pub reply_priming: usize,
    /// An image whose size is not known.
    pub image_tokens: usize,
    /// An audio part (its length is not read).
    pub audio_tokens: usize,
    /// A file part (a PDF, say: its pages are not read).
    pub file_tokens: usize,
    /// A content part of a type not known here.
    pub unknown_part_tokens: usize,
}

/// A chat role, or for Responses items the item's type where it has no role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    /// The legacy `function` role: the result of an assistant's `function_call`.
    Function,
    /// A Responses `reasoning` item: it stays with the item that follows it.
    Reasoning,
    /// A Responses item of another type, kept or dropped whole.
    Item,
    /// A summary of earlier messages that stands in their place: sent as a user message.
    Summary,
}

impl Role {
    /// The chat role of this name, if it is one.
    pub fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            "function" => Role::Function,
            _ => return None,
        })
    }

    /// The role's name (in segment ids, and counted as the message's role).
    pub fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Function => "function",
            Role::Reasoning => "reasoning",
            Role::Item => "item",
            Role::Summary => "summary",
        }
    }

    /// The role the provider is sent (and that is counted): a summary goes as a user message.
    pub fn sent_name(self) -> &'static str {
        match self {
            Role::Summary => "user",
            role => role.name(),
        }
    }

    /// The names a chat message's `role` may take, for error messages.
    pub const CHAT: &'static str = "system, developer, user, assistant, tool, function";
}

/// A tool call: an entry of an assistant's `tool_calls`, its legacy `function_call`, or a Responses
/// call item.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// `None` for a legacy `function_call`, which is answered by the next `function` message.
    pub id: Option<String>,
    pub name: String,
    /// Counted only as far as a decision needs (they can be long); never cut.
    pub arguments: Arc<str>,
}

/// Which call a result answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A `tool` message's `tool_call_id` (or a Responses output's `call_id`).
    Call(String),
    /// A legacy `function` message: the nearest unanswered `function_call`.
    Legacy,
}

/// One message (or Responses item), read.
#[derive(Debug, Clone)]
pub struct Message {
    pub role: Role,
    /// The content that may be cut (a string content), else empty.
    pub text: Arc<str>,
    /// Whether `text` may be cut: a string content, or the longest text part of a list of parts (the
    /// other parts are kept whole and counted in `fixed`); not a list without text parts.
    pub cuttable: bool,
    /// For a list content, the part whose text `text` is.
    pub cut_part: Option<usize>,
    /// Tokens already counted beyond `text`: content parts, a refusal.
    pub fixed: usize,
    pub name: Option<String>,
    pub calls: Vec<ToolCall>,
    pub answers: Option<Answer>,
    /// Whether the message has framing (`per_message` + role): not a Responses call item, whose cost is
    /// its call's.
    pub framed: bool,
    /// A Responses item the model produced (reasoning, its message, its calls): a run of such items is
    /// one turn, kept or dropped together when it made calls.
    pub model_output: bool,
    /// The number errors and repairs call it by: its index, or for a unit of an Anthropic message, the
    /// message's.
    pub number: usize,
}

impl Message {
    /// A message of `role` with string content `text` and nothing else.
    pub fn new(role: Role, text: impl Into<Arc<str>>) -> Self {
        Self {
            role,
            text: text.into(),
            cuttable: true,
            cut_part: None,
            fixed: 0,
            name: None,
            calls: Vec::new(),
            answers: None,
            framed: true,
            model_output: false,
            number: 0,
        }
    }

    /// Whether the message carries content of its own (a Responses call item has only its call).
    pub fn has_content(&self) -> bool {
        self.framed
    }
}
