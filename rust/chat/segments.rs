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

use rustc_hash::FxHashMap;

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
    segments_numbered(messages, linked, tokenizer, accounting, keep_latest_turn, &[])
}

/// [`segments`] for part of a conversation: message `i` here is message `numbers[i]` of the whole, and ids
/// and group names say so (an empty `numbers`: the whole conversation).
pub fn segments_numbered(
    messages: &[Message],
    linked: &Linked,
    tokenizer: Tokenizer,
    accounting: Accounting,
    keep_latest_turn: bool,
    numbers: &[usize],
) -> ChatSegments {
    let number = |index: usize| numbers.get(index).copied().unwrap_or(index);
    let kept = |index: &usize| linked.kept(*index);
    let users: Vec<usize> =
        (0..messages.len()).filter(kept).filter(|&index| is_role(messages, index, Role::User)).collect();
    let required = [users.first().copied(), users.last().copied()];
    // The model is in the middle of its task when its latest turn came after the user's last word.
    let latest_turn = latest_turn(messages, linked).filter(|&turn| keep_latest_turn && users.last() < Some(&turn));
    let mut chat = ChatSegments { primary: vec![None; messages.len()], latest_turn, ..ChatSegments::default() };
    let mut names = Names { tokenizer, counts: FxHashMap::default() };
    // Each message's age: the assistant messages after it (the model's turns since it was written).
    let mut ages = vec![0u32; messages.len()];
    let mut later = 0u32;
    for index in (0..messages.len()).rev() {
        if let Some(age) = ages.get_mut(index) {
            *age = later;
        }
        if kept(&index) && is_role(messages, index, Role::Assistant) {
            later = later.saturating_add(1);
        }
    }
    for (index, message) in messages.iter().enumerate().filter(|(index, _)| kept(index)) {
        let turn = linked.turns.get(index).copied().flatten();
        let in_latest = turn.is_some() && turn == latest_turn;
        let group: Option<Arc<str>> = turn.map(|turn| format!("turn-{}", number(turn)).into());
        if message.has_content() {
            let required = required.contains(&Some(index));
            let mut segment = content_segment(message, number(index), &mut names, accounting, required);
            segment.age = ages.get(index).copied();
            if message.role.is_result() && !message.text.is_empty() {
                let tool = linked.answers.get(index).copied().flatten().and_then(|(at, number)| {
                    messages.get(at).and_then(|call| call.calls.get(number)).map(|call| call.name.as_str())
                });
                let tool = tool.or(message.name.as_deref()).unwrap_or("tool");
                segment.stub = Some(format!("[{tool} output removed to fit the context window: {{n}} tokens]").into());
            }
            if in_latest {
                segment.required = true;
                if &*segment.kind == "history" && message.cuttable {
                    segment.truncation = Some(Truncation::Cut(Strategy::Middle));
                }
            }
            segment.group.clone_from(&group);
            push(&mut chat, segment, index);
        }
        for (call_number, call) in message.calls.iter().enumerate() {
            if !linked.call_kept(index, call_number) {
                continue;
            }
            let mut segment = Segment::new(
                format!("{}:call-{call_number}", number(index)),
                TOOL_CALL_KIND,
                Arc::clone(&call.arguments),
            );
            segment.group.clone_from(&group);
            segment.truncation = Some(Truncation::None);
            segment.overhead = accounting.per_tool_call + names.count(&call.name);
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

/// Token counts of roles, names and tool names: they repeat, so each is counted once per conversation.
struct Names<'a> {
    tokenizer: Tokenizer,
    counts: FxHashMap<&'a str, usize>,
}

impl<'a> Names<'a> {
    fn count(&mut self, name: &'a str) -> usize {
        let tokenizer = self.tokenizer;
        *self.counts.entry(name).or_insert_with(|| tokenizer.count(name))
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
fn content_segment<'a>(
    message: &'a Message,
    index: usize,
    names: &mut Names<'a>,
    accounting: Accounting,
    required: bool,
) -> Segment {
    let role = message.role.sent_name();
    let kind = match message.role {
        _ if required => "instruction",
        Role::System | Role::Developer => "system",
        Role::Tool | Role::Function => "tool_result",
        Role::User | Role::Assistant | Role::Reasoning | Role::Item => "history",
        Role::Summary => SUMMARY_KIND,
    };
    let mut segment = Segment::new(format!("{index}:{}", message.role.name()), kind, Arc::clone(&message.text));
    segment.pin = if kind == "system" { Pin::Head } else { Pin::None };
    // A summary stays until a later one takes it in: its sources are gone.
    segment.required = required || message.role == Role::Summary;
    if !message.cuttable {
        segment.truncation = Some(Truncation::None);
    }
    segment.overhead = accounting.per_message + names.count(role) + message.fixed;
    if let Some(name) = &message.name {
        segment.overhead += accounting.per_name + names.count(name);
    }
    segment
}

/// The kind of a summary's segment.
pub const SUMMARY_KIND: &str = "summary";

/// The id of the summary message numbered `number` (its first source's number).
pub fn summary_id(number: usize) -> String {
    format!("{number}:{}", Role::Summary.name())
}

/// The segment of a summary message (numbered `number` in the conversation: its first source's).
pub fn summary_segment(message: &Message, number: usize, tokenizer: Tokenizer, accounting: Accounting) -> Segment {
    let mut names = Names { tokenizer, counts: FxHashMap::default() };
    content_segment(message, number, &mut names, accounting, false)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{link, Answer, ToolCall};
    use crate::tokenizer::Encoding;

    const ACCOUNTING: Accounting = Accounting {
        per_message: 3,
        per_name: 1,
        per_tool_call: 3,
        reply_priming: 3,
        image_tokens: 765,
        audio_tokens: 500,
        file_tokens: 1500,
        unknown_part_tokens: 100,
    };

    fn conversation(last_user: bool) -> Vec<Message> {
        let mut assistant = Message::new(Role::Assistant, "Let me look.");
        assistant.calls = vec![ToolCall { id: Some("a".to_owned()), name: "bash".to_owned(), arguments: "{}".into() }];
        let mut result = Message::new(Role::Tool, "x.py");
        result.answers = Some(Answer::Call("a".to_owned()));
        let mut messages =
            vec![Message::new(Role::System, "Be brief."), Message::new(Role::User, "Fix it."), assistant, result];
        if last_user {
            messages.push(Message::new(Role::User, "Thanks."));
        }
        messages
    }

    #[test]
    fn segments_follow_the_chat_policy() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let messages = conversation(true);
        let Ok(linked) = link(&messages, false) else { panic!("valid") };
        let chat = segments(&messages, &linked, tokenizer, ACCOUNTING, true);
        let ids: Vec<&str> = chat.segments.iter().map(|segment| &*segment.id).collect();
        assert_eq!(ids, ["0:system", "1:user", "2:assistant", "2:call-0", "3:tool", "4:user"]);
        let kinds: Vec<&str> = chat.segments.iter().map(|segment| &*segment.kind).collect();
        assert_eq!(kinds, ["system", "instruction", "history", "tool_call", "tool_result", "instruction"]);
        assert_eq!(chat.primary, [Some(0), Some(1), Some(2), Some(4), Some(5)]);
        assert_eq!(chat.owners, [0, 1, 2, 2, 3, 4]);
        // A user spoke after the latest turn: it is not required.
        assert_eq!(chat.latest_turn, None);
        assert!(chat.segments.get(4).is_some_and(|result| !result.required && result.stub.is_some()));
        let overheads: Vec<usize> = chat.segments.iter().map(|segment| segment.overhead).collect();
        let role = |name: &str| 3 + tokenizer.count(name);
        assert_eq!(
            overheads,
            [role("system"), role("user"), role("assistant"), role("bash"), role("tool"), role("user")]
        );
    }

    #[test]
    fn the_latest_turn_is_required_when_the_model_is_mid_task() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let messages = conversation(false);
        let Ok(linked) = link(&messages, false) else { panic!("valid") };
        let chat = segments(&messages, &linked, tokenizer, ACCOUNTING, true);
        assert_eq!(chat.latest_turn, Some(2));
        let required: Vec<bool> = chat.segments.iter().map(|segment| segment.required).collect();
        assert_eq!(required, [false, true, true, true, true]);
        let assistant = chat.segments.get(2).and_then(|segment| segment.truncation.clone());
        assert_eq!(assistant, Some(Truncation::Cut(Strategy::Middle)));
        let relaxed = segments(&messages, &linked, tokenizer, ACCOUNTING, false);
        assert_eq!(relaxed.latest_turn, None);
        assert!(relaxed.segments.iter().skip(2).all(|segment| !segment.required));
    }
}
