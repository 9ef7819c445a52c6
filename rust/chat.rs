//! Chat messages (`OpenAI` format) as segments, the way `ctxsched.pack_messages` packs them.
//!
//! This is the fast path for well-formed conversations whose contents are strings: the bindings read the
//! message dicts straight into [`Message`]s and [`ChatSegments::from_messages`] builds what the allocator packs, with no
//! Python object per message. Anything else (content parts, a malformed message, a tool result without
//! its call) is left to the Python front-end, which says which message is wrong or repairs it; it builds
//! the same segments, and a test checks that both paths pack alike.
//!
//! Accounting (DESIGN.md): a message costs `per_message` + its role + its content (+ `per_name` + its
//! name); each tool call `per_tool_call` + its function name + its arguments.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::segment::{Pin, Segment, Truncation};
use crate::tokenizer::Tokenizer;

/// The kind of the segments that hold a message's tool calls.
pub const TOOL_CALL_KIND: &str = "tool_call";

/// The per-message constants of chat accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accounting {
    /// Framing tokens of every message.
    pub per_message: usize,
    /// Extra tokens of a message with a `name`.
    pub per_name: usize,
    /// Framing tokens of every tool call.
    pub per_tool_call: usize,
}

/// A chat role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    /// The role of this name, if it is one.
    pub fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            _ => return None,
        })
    }

    /// The role's name in the format.
    pub fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A tool call of an assistant message.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Arc<str>,
}

/// One message whose content is a string (an absent content is the empty string).
#[derive(Debug, Clone)]
pub struct Message {
    pub role: Role,
    pub content: Arc<str>,
    pub name: Option<String>,
    /// An assistant message's tool calls.
    pub calls: Vec<ToolCall>,
    /// A tool result's `tool_call_id`.
    pub answers: Option<String>,
}

/// The segments of a conversation, and for each segment the index of its message.
pub struct ChatSegments {
    pub segments: Vec<Segment>,
    pub owners: Vec<usize>,
}

impl ChatSegments {
    /// The segments of `messages`; see [`segments`].
    pub fn from_messages(messages: &[Message], tokenizer: Tokenizer, accounting: Accounting) -> Option<Self> {
        segments(messages, tokenizer, accounting)
    }
}

/// The segments of `messages`, or `None` if their tool calls and results do not pair up one to one (each
/// result after its call): the Python front-end names the message or repairs it.
///
/// System and developer messages are pinned to the head; the first and the last user message are
/// required; an assistant message with tool calls, its calls (segments of kind `tool_call`, never cut) and
/// their results form one group; a tool result's stub names its tool.
fn segments(messages: &[Message], tokenizer: Tokenizer, accounting: Accounting) -> Option<ChatSegments> {
    let groups = groups(messages)?;
    let users: Vec<usize> = (0..messages.len()).filter(|&index| is_user(messages, index)).collect();
    let required = [users.first().copied(), users.last().copied()];
    let mut chat = ChatSegments { segments: Vec::new(), owners: Vec::new() };
    let tool_names: FxHashMap<&str, &str> =
        messages.iter().flat_map(|message| &message.calls).map(|call| (&*call.id, &*call.name)).collect();
    for (index, message) in messages.iter().enumerate() {
        let role = message.role.name();
        let is_required = required.contains(&Some(index));
        let kind = match message.role {
            _ if is_required => "instruction",
            Role::System | Role::Developer => "system",
            Role::Tool => "tool_result",
            Role::User | Role::Assistant => "history",
        };
        let group = groups.get(&index).map(|turn| format!("turn-{turn}"));
        let mut segment = Segment::new(format!("{index}:{role}"), kind, Arc::clone(&message.content));
        segment.pin = if kind == "system" { Pin::Head } else { Pin::None };
        segment.required = is_required;
        segment.group.clone_from(&group);
        segment.overhead = accounting.per_message + tokenizer.count(role);
        if let Some(name) = &message.name {
            segment.overhead += accounting.per_name + tokenizer.count(name);
        }
        if message.role == Role::Tool && !message.content.is_empty() {
            let tool = message.answers.as_deref().and_then(|id| tool_names.get(id)).copied().unwrap_or("tool");
            segment.stub = Some(format!("[{tool} output removed to fit the context window: {{n}} tokens]").into());
        }
        chat.segments.push(segment);
        chat.owners.push(index);
        for (number, call) in message.calls.iter().enumerate() {
            let mut segment =
                Segment::new(format!("{index}:call-{number}"), TOOL_CALL_KIND, Arc::clone(&call.arguments));
            segment.group.clone_from(&group);
            segment.truncation = Some(Truncation::None);
            segment.overhead = accounting.per_tool_call + tokenizer.count(&call.name);
            chat.segments.push(segment);
            chat.owners.push(index);
        }
    }
    Some(chat)
}

fn is_user(messages: &[Message], index: usize) -> bool {
    messages.get(index).is_some_and(|message| message.role == Role::User)
}

/// The turn (its assistant message's index) of every assistant message with tool calls and of every tool
/// result; `None` if a result answers no earlier call or one already answered, a call is left unanswered,
/// or two calls share an id.
fn groups(messages: &[Message]) -> Option<FxHashMap<usize, usize>> {
    let mut turn_of_call: FxHashMap<&str, usize> = FxHashMap::default();
    let mut answered: FxHashSet<&str> = FxHashSet::default();
    let mut groups = FxHashMap::default();
    for (index, message) in messages.iter().enumerate() {
        for call in &message.calls {
            if turn_of_call.insert(&call.id, index).is_some() {
                return None;
            }
            groups.insert(index, index);
        }
        if message.role == Role::Tool {
            let id = message.answers.as_deref()?;
            let turn = *turn_of_call.get(id)?;
            if !answered.insert(id) {
                return None;
            }
            groups.insert(index, turn);
        }
    }
    (answered.len() == turn_of_call.len()).then_some(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;

    fn message(role: Role, content: &str) -> Message {
        Message { role, content: content.into(), name: None, calls: Vec::new(), answers: None }
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: id.to_owned(), name: name.to_owned(), arguments: arguments.into() }
    }

    const ACCOUNTING: Accounting = Accounting { per_message: 3, per_name: 1, per_tool_call: 3 };

    fn conversation() -> Vec<Message> {
        let mut assistant = message(Role::Assistant, "");
        assistant.calls = vec![call("a", "bash", "{\"cmd\": \"ls\"}"), call("b", "read", "{}")];
        let mut first = message(Role::Tool, "x.py\ny.py");
        first.answers = Some("a".to_owned());
        let mut second = message(Role::Tool, "");
        second.answers = Some("b".to_owned());
        vec![
            message(Role::System, "Be brief."),
            message(Role::User, "Fix it."),
            assistant,
            first,
            second,
            message(Role::User, "Thanks, go on."),
        ]
    }

    #[test]
    fn segments_follow_the_chat_policy_and_its_accounting() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let messages = conversation();
        let Some(chat) = segments(&messages, tokenizer, ACCOUNTING) else { panic!("a valid conversation") };
        let ids: Vec<&str> = chat.segments.iter().map(|segment| segment.id.as_str()).collect();
        assert_eq!(ids, ["0:system", "1:user", "2:assistant", "2:call-0", "2:call-1", "3:tool", "4:tool", "5:user"]);
        assert_eq!(chat.owners, [0, 1, 2, 2, 2, 3, 4, 5]);
        let kinds: Vec<&str> = chat.segments.iter().map(|segment| segment.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["system", "instruction", "history", "tool_call", "tool_call", "tool_result", "tool_result", "instruction"]
        );
        let turn: Vec<bool> = chat.segments.iter().map(|segment| segment.group.as_deref() == Some("turn-2")).collect();
        assert_eq!(turn, [false, false, true, true, true, true, true, false]);
        assert!(chat.segments.first().is_some_and(|system| system.pin == Pin::Head));
        // The framing: 3 per message plus its role; 3 per call plus its function name.
        let overheads: Vec<usize> = chat.segments.iter().map(|segment| segment.overhead).collect();
        let role = |name: &str| 3 + tokenizer.count(name);
        let call = |name: &str| 3 + tokenizer.count(name);
        let expected =
            [role("system"), role("user"), role("assistant"), call("bash"), call("read"), role("tool"), role("tool")];
        assert_eq!(overheads.get(..7), Some(&expected[..]));
        // A result with text has a stub naming its tool; an empty one has none.
        let stubs: Vec<Option<&str>> = chat.segments.iter().map(|segment| segment.stub.as_deref()).collect();
        assert!(stubs.get(5).copied().flatten().is_some_and(|stub| stub.starts_with("[bash output removed")));
        assert_eq!(stubs.get(6).copied().flatten(), None);
    }

    #[test]
    fn unpaired_calls_and_results_are_left_to_the_python_front_end() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let mut unanswered = conversation();
        unanswered.remove(4);
        assert!(segments(&unanswered, tokenizer, ACCOUNTING).is_none());
        let mut orphan = conversation();
        orphan.swap(2, 3);
        assert!(segments(&orphan, tokenizer, ACCOUNTING).is_none());
        let mut twice = conversation();
        let again = twice.get(3).cloned();
        twice.extend(again);
        assert!(segments(&twice, tokenizer, ACCOUNTING).is_none());
    }
}
