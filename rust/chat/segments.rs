//! The default chat policy's segments for a linked conversation.
//!
//! - System and developer messages are pinned to the head; the first user message (the task) and the last
//!   are required.
//! - A turn (an assistant message with its tool calls, or a run of Responses output items) and the results
//!   of its calls form one group; each call is a segment of kind `tool_call`, never cut.
//! - The latest turn that made calls, if no user message came after it, is required: the model must see the
//!   result of the call it just made.
//!   What of it cannot fit whole is cut (the assistant's text in the middle, a result by its strategy)
//!   before anything is dropped.
//! - A tool result's stub names its tool.

use std::sync::Arc;

use super::{Accounting, Linked, Message, Role, TOOL_CALL_KIND};
use crate::segment::{Pin, Segment, Truncation};
use crate::tokenizer::Tokenizer;
use crate::truncation::Strategy;

/// The segments of a conversation, and how they map back to its messages.
#[derive(Debug, Default)]
pub struct ChatSegments {
    pub segments: Vec<Segment>,
    /// For each segment, the index of its message.
    pub owners: Vec<usize>,
    /// For each message, its own segment (its content's, or a call item's call): its decision. `None` for
    /// a message a repair dropped.
    pub primary: Vec<Option<usize>>,
    /// The first message of the latest turn that made calls, if it was made required.
    pub latest_turn: Option<usize>,
}

/// The segments of `messages` as linked; with `keep_latest_turn`, the latest turn that made calls is
/// required.
pub fn segments(
    messages: &[Message],
    linked: &Linked,
    tokenizer: Tokenizer,
    accounting: Accounting,
    keep_latest_turn: bool,
) -> ChatSegments {
    let kept = |index: &usize| linked.kept(*index);
    let users: Vec<usize> =
        (0..messages.len()).filter(kept).filter(|&index| is_role(messages, index, Role::User)).collect();
    let required = [users.first().copied(), users.last().copied()];
    // The model is in the middle of its task when its latest turn came after the user's last word.
    let latest_turn = latest_turn(messages, linked).filter(|&turn| keep_latest_turn && users.last() < Some(&turn));
    let mut chat = ChatSegments { primary: vec![None; messages.len()], latest_turn, ..ChatSegments::default() };
    for (index, message) in messages.iter().enumerate().filter(|(index, _)| kept(index)) {
        let turn = linked.turns.get(index).copied().flatten();
        let in_latest = turn.is_some() && turn == latest_turn;
        let group = turn.map(|turn| format!("turn-{turn}"));
        if message.has_content() {
            let mut segment = content_segment(message, index, tokenizer, accounting, required.contains(&Some(index)));
            if message.role.is_result() && !message.text.is_empty() {
                let tool = linked.answers.get(index).copied().flatten().and_then(|(at, number)| {
                    messages.get(at).and_then(|call| call.calls.get(number)).map(|call| call.name.as_str())
                });
                let tool = tool.or(message.name.as_deref()).unwrap_or("tool");
                segment.stub = Some(format!("[{tool} output removed to fit the context window: {{n}} tokens]").into());
            }
            if in_latest {
                segment.required = true;
                if segment.kind == "history" && message.cuttable {
                    segment.truncation = Some(Truncation::Cut(Strategy::Middle));
                }
            }
            segment.group.clone_from(&group);
            push(&mut chat, segment, index);
        }
        for (number, call) in message.calls.iter().enumerate() {
            if !linked.call_kept(index, number) {
                continue;
            }
            let mut segment =
                Segment::new(format!("{index}:call-{number}"), TOOL_CALL_KIND, Arc::clone(&call.arguments));
            segment.group.clone_from(&group);
            segment.truncation = Some(Truncation::None);
            segment.overhead = accounting.per_tool_call + tokenizer.count(&call.name);
            segment.required = in_latest;
            push(&mut chat, segment, index);
        }
    }
    chat
}

impl Role {
    /// A tool's or function's result.
    pub fn is_result(self) -> bool {
        matches!(self, Role::Tool | Role::Function)
    }
}

fn push(chat: &mut ChatSegments, segment: Segment, owner: usize) {
    if let Some(primary) = chat.primary.get_mut(owner) {
        primary.get_or_insert(chat.segments.len());
    }
    chat.segments.push(segment);
    chat.owners.push(owner);
}

/// The segment of a message's own content, with its kind, pin and framing.
fn content_segment(
    message: &Message,
    index: usize,
    tokenizer: Tokenizer,
    accounting: Accounting,
    required: bool,
) -> Segment {
    let role = message.role.name();
    let kind = match message.role {
        _ if required => "instruction",
        Role::System | Role::Developer => "system",
        Role::Tool | Role::Function => "tool_result",
        Role::User | Role::Assistant | Role::Reasoning | Role::Item => "history",
    };
    let mut segment = Segment::new(format!("{index}:{role}"), kind, Arc::clone(&message.text));
    segment.pin = if kind == "system" { Pin::Head } else { Pin::None };
    segment.required = required;
    if !message.cuttable {
        segment.truncation = Some(Truncation::None);
    }
    segment.overhead = accounting.per_message + tokenizer.count(role) + message.fixed;
    if let Some(name) = &message.name {
        segment.overhead += accounting.per_name + tokenizer.count(name);
    }
    segment
}

fn is_role(messages: &[Message], index: usize, role: Role) -> bool {
    messages.get(index).is_some_and(|message| message.role == role)
}

/// The first message of the latest turn whose calls survived the repairs.
fn latest_turn(messages: &[Message], linked: &Linked) -> Option<usize> {
    (0..messages.len())
        .rev()
        .filter(|&index| linked.kept(index))
        .find(|&index| {
            let calls = messages.get(index).map_or(0, |message| message.calls.len());
            (0..calls).any(|number| linked.call_kept(index, number))
        })
        .and_then(|index| linked.turns.get(index).copied().flatten())
}
