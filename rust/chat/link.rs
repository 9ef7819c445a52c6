//! Which result answers which call, and the turns that must be kept or dropped together.
//!
//! A result answers the nearest earlier call with its id that is still unanswered, so an agent that
//! reuses a call id in a later turn (each call answered right after it) is read as the provider reads it.
//! A legacy `function` message answers the nearest unanswered `function_call`. A result that answers
//! nothing and a call left unanswered are errors naming the message, or with `repair` are removed and
//! recorded.

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Answer, Message};
use crate::error::{Result, SchedError};

/// A linked conversation: what a repair removed, the turn of each grouped message, and what each
/// result answers.
#[derive(Debug, Default)]
pub struct Linked {
    /// Messages a repair dropped.
    pub dropped: Vec<bool>,
    /// For each message, the numbers of the tool calls a repair removed from it.
    pub removed_calls: FxHashMap<usize, Vec<usize>>,
    /// For each message in a turn that is kept or dropped whole, the index of the turn's first message.
    pub turns: Vec<Option<usize>>,
    /// For each result, the (message, call number) it answers.
    pub answers: Vec<Option<(usize, usize)>>,
    /// What was repaired, one sentence each.
    pub repairs: Vec<String>,
}

impl Linked {
    /// Whether message `index` is kept.
    pub fn kept(&self, index: usize) -> bool {
        !self.dropped.get(index).copied().unwrap_or(true)
    }

    /// Whether call `number` of message `index` survived the repairs.
    pub fn call_kept(&self, index: usize, number: usize) -> bool {
        self.removed_calls.get(&index).is_none_or(|removed| !removed.contains(&number))
    }
}

type CallKey<'a> = Option<&'a str>;

/// Link `messages`; see the module docs.
pub fn link(messages: &[Message], repair: bool) -> Result<Linked> {
    let (mut linked, open) = answer(messages, repair)?;
    let mut unanswered: Vec<(usize, usize)> = open.into_values().flatten().collect();
    unanswered.sort_unstable();
    if let Some(&(index, number)) = unanswered.first() {
        if !repair {
            let call = describe_call(messages, index, number);
            let problem = format!("has {call} with no result after it");
            return Err(SchedError::MessageFormat { index: Some(number_of(messages, index)), problem });
        }
        remove_calls(messages, &unanswered, &mut linked);
    }
    group_turns(messages, &mut linked);
    Ok(linked)
}

/// Check a conversation that is still growing: every result must answer an earlier call, but calls may
/// still wait for their results. With `results_next` (`OpenAI` chat), nothing but results may come while
/// calls wait for theirs, as the provider requires.
pub fn check_growing(messages: &[Message], results_next: bool) -> Result<()> {
    answer(messages, false)?;
    if !results_next {
        return Ok(());
    }
    let mut waiting = 0usize;
    for (at, message) in messages.iter().enumerate() {
        if message.answers.is_some() {
            waiting = waiting.saturating_sub(1);
        } else if waiting > 0 {
            let problem = format!("comes before the results of the {waiting} tool call(s) above it");
            return Err(SchedError::MessageFormat { index: Some(number_of(messages, at)), problem });
        }
        waiting += message.calls.len();
    }
    Ok(())
}

/// Unanswered calls by id, nearest last.
type Open<'a> = FxHashMap<CallKey<'a>, Vec<(usize, usize)>>;

/// Match each result to the call it answers; what is left open.
fn answer(messages: &[Message], repair: bool) -> Result<(Linked, Open<'_>)> {
    let count = messages.len();
    let mut linked = Linked {
        dropped: vec![false; count],
        turns: vec![None; count],
        answers: vec![None; count],
        ..Linked::default()
    };
    // Ids seen at all, to say why a result answers nothing.
    let mut open: Open<'_> = FxHashMap::default();
    let mut seen: FxHashSet<CallKey<'_>> = FxHashSet::default();
    for (at, message) in messages.iter().enumerate() {
        for (number, call) in message.calls.iter().enumerate() {
            let key = call.id.as_deref();
            open.entry(key).or_default().push((at, number));
            seen.insert(key);
        }
        let Some(answer) = &message.answers else { continue };
        let key = match answer {
            Answer::Call(id) => Some(id.as_str()),
            Answer::Legacy => None,
        };
        if let Some(call) = open.get_mut(&key).and_then(Vec::pop) {
            set(&mut linked.answers, at, Some(call));
            continue;
        }
        let what = describe_result(answer);
        let index = number_of(messages, at);
        let problem =
            if seen.contains(&key) { "answers a call already answered" } else { "answers no earlier tool call" };
        if !repair {
            return Err(SchedError::MessageFormat { index: Some(index), problem: format!("is {what} that {problem}") });
        }
        set(&mut linked.dropped, at, true);
        linked.repairs.push(format!("dropped message {index}, {what} that {problem}"));
    }
    Ok((linked, open))
}

/// What errors and repairs call message `index`.
fn number_of(messages: &[Message], index: usize) -> usize {
    messages.get(index).map_or(index, |message| message.number)
}

fn describe_result(answer: &Answer) -> String {
    match answer {
        Answer::Call(id) => format!("a tool result ({id:?})"),
        Answer::Legacy => "a function result".to_owned(),
    }
}

fn describe_call(messages: &[Message], index: usize, number: usize) -> String {
    let call = messages.get(index).and_then(|message| message.calls.get(number));
    match call.and_then(|call| call.id.as_deref()) {
        Some(id) => format!("tool call {id:?}"),
        None => "a function_call".to_owned(),
    }
}

/// The repair of unanswered calls: each is removed from its message, and a message left with nothing is
/// dropped.
fn remove_calls(messages: &[Message], unanswered: &[(usize, usize)], linked: &mut Linked) {
    let mut by_message: Vec<(usize, Vec<usize>)> = Vec::new();
    for &(index, number) in unanswered {
        match by_message.last_mut() {
            Some((last, numbers)) if *last == index => numbers.push(number),
            _ => by_message.push((index, vec![number])),
        }
    }
    for (index, numbers) in by_message {
        let Some(message) = messages.get(index) else { continue };
        let names: Vec<String> = numbers.iter().map(|&number| describe_call(messages, index, number)).collect();
        let names = names.join(", ");
        let (at, index) = (index, number_of(messages, index));
        let empty = message.text.is_empty() && message.fixed == 0 || !message.has_content();
        if numbers.len() == message.calls.len() && empty {
            set(&mut linked.dropped, at, true);
            linked.repairs.push(format!("dropped message {index}: its only calls ({names}) have no results"));
        } else {
            linked.repairs.push(format!("removed {names} with no results from message {index}"));
        }
        linked.removed_calls.insert(at, numbers);
    }
}

/// Turns: an assistant message that made calls, with their results; for Responses items, a run of the
/// model's output items (reasoning, its message, its calls) with the results of its calls, or a run with
/// reasoning and no calls (a reasoning item stays with what follows it).
fn group_turns(messages: &[Message], linked: &mut Linked) {
    let mut run_start = 0;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let continues = message.model_output && index > 0 && messages.get(index - 1).is_some_and(|m| m.model_output);
        if !continues {
            run_start = index;
        }
        if !linked.kept(index) {
            continue;
        }
        let calls = (0..message.calls.len()).any(|number| linked.call_kept(index, number));
        let reasoning = message.role == super::Role::Reasoning;
        if calls || reasoning || runs.last().is_some_and(|&(start, _)| start == run_start) {
            match runs.last_mut() {
                Some((start, end)) if *start == run_start => *end = index,
                _ => runs.push((run_start, index)),
            }
        }
    }
    for (start, end) in runs {
        let has_calls =
            (start..=end).any(|index| linked.kept(index) && messages.get(index).is_some_and(|m| !m.calls.is_empty()));
        let members = (start..=end).filter(|&index| linked.kept(index)).count();
        if !has_calls && members < 2 {
            continue;
        }
        for index in start..=end {
            if linked.kept(index) {
                set(&mut linked.turns, index, Some(start));
            }
        }
    }
    for index in 0..messages.len() {
        if let Some(Some((call_message, _))) = linked.answers.get(index).copied() {
            if linked.kept(index) {
                let turn = linked.turns.get(call_message).copied().flatten();
                set(&mut linked.turns, index, turn);
            }
        }
    }
    join_trailing_reasoning(messages, linked);
}

/// A reasoning item that ends a run of the model's output (what follows it is not the model's: a user
/// message, say) still stays with the item that follows it: that item's turn, or a turn of the two.
fn join_trailing_reasoning(messages: &[Message], linked: &mut Linked) {
    for (index, message) in messages.iter().enumerate() {
        let next = index + 1;
        let follows = messages.get(next).is_some_and(|next| !next.model_output);
        if message.role != super::Role::Reasoning || !follows || !linked.kept(index) || !linked.kept(next) {
            continue;
        }
        let turn = linked.turns.get(next).copied().flatten().unwrap_or(index);
        let own = linked.turns.get(index).copied().flatten();
        // Everything already in the reasoning item's turn moves with it.
        for slot in &mut linked.turns {
            if own.is_some() && *slot == own {
                *slot = Some(turn);
            }
        }
        set(&mut linked.turns, index, Some(turn));
        set(&mut linked.turns, next, Some(turn));
    }
}

/// `slots[index] = value`, for an index known to be in range.
fn set<T>(slots: &mut [T], index: usize, value: T) {
    if let Some(slot) = slots.get_mut(index) {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Role, ToolCall};

    fn call(id: Option<&str>) -> ToolCall {
        ToolCall { id: id.map(str::to_owned), name: "bash".to_owned(), arguments: "{}".into() }
    }

    fn assistant(calls: &[Option<&str>]) -> Message {
        let mut message = Message::new(Role::Assistant, "");
        message.calls = calls.iter().map(|&id| call(id)).collect();
        message
    }

    fn result(id: Option<&str>) -> Message {
        let mut message = Message::new(if id.is_some() { Role::Tool } else { Role::Function }, "out");
        message.answers = Some(id.map_or(Answer::Legacy, |id| Answer::Call(id.to_owned())));
        message
    }

    /// Each message numbered by its index, as the reader numbers an `OpenAI` conversation.
    fn numbered(mut messages: Vec<Message>) -> Vec<Message> {
        for (index, message) in messages.iter_mut().enumerate() {
            message.number = index;
        }
        messages
    }

    #[test]
    fn a_result_answers_the_nearest_unanswered_call_with_its_id() {
        let messages = vec![
            Message::new(Role::User, "go"),
            assistant(&[Some("t")]),
            result(Some("t")),
            assistant(&[Some("t"), None]),
            result(None),
            result(Some("t")),
        ];
        let Ok(linked) = link(&messages, false) else { panic!("a valid conversation") };
        assert_eq!(linked.answers, [None, None, Some((1, 0)), None, Some((3, 1)), Some((3, 0))]);
        assert_eq!(linked.turns, [None, Some(1), Some(1), Some(3), Some(3), Some(3)]);
    }

    #[test]
    fn orphans_and_unanswered_calls_are_errors_or_repairs() {
        let orphan = numbered(vec![
            Message::new(Role::User, "go"),
            assistant(&[Some("a")]),
            result(Some("a")),
            result(Some("a")),
        ]);
        let error = link(&orphan, false).err().map(|error| error.to_string());
        assert_eq!(error.as_deref(), Some("messages[3] is a tool result (\"a\") that answers a call already answered"));
        let Ok(repaired) = link(&orphan, true) else { panic!("repairable") };
        assert_eq!(repaired.dropped, [false, false, false, true]);
        let unanswered =
            numbered(vec![Message::new(Role::User, "go"), assistant(&[Some("a"), Some("b")]), result(Some("b"))]);
        let error = link(&unanswered, false).err().map(|error| error.to_string());
        assert_eq!(error.as_deref(), Some("messages[1] has tool call \"a\" with no result after it"));
        let Ok(repaired) = link(&unanswered, true) else { panic!("repairable") };
        assert!(!repaired.call_kept(1, 0) && repaired.call_kept(1, 1));
        assert_eq!(repaired.repairs, ["removed tool call \"a\" with no results from message 1"]);
        // A message left with nothing is dropped, and what answered nothing with it.
        let empty = vec![Message::new(Role::User, "go"), assistant(&[None])];
        let Ok(repaired) = link(&empty, true) else { panic!("repairable") };
        assert_eq!(repaired.dropped, [false, true]);
    }

    #[test]
    fn a_run_of_model_output_items_is_one_turn_with_its_results() {
        let mut reasoning = Message::new(Role::Reasoning, "");
        reasoning.model_output = true;
        let mut first = assistant(&[Some("a")]);
        first.model_output = true;
        first.framed = false;
        let mut second = assistant(&[Some("b")]);
        second.model_output = true;
        second.framed = false;
        let mut lone = Message::new(Role::Reasoning, "");
        lone.model_output = true;
        let mut said = Message::new(Role::Assistant, "done");
        said.model_output = true;
        let messages = vec![
            Message::new(Role::User, "go"),
            reasoning,
            first,
            second,
            result(Some("b")),
            result(Some("a")),
            lone,
            said,
        ];
        let Ok(linked) = link(&messages, false) else { panic!("a valid conversation") };
        assert_eq!(linked.turns, [None, Some(1), Some(1), Some(1), Some(1), Some(1), Some(6), Some(6)]);
    }

    #[test]
    fn a_reasoning_item_before_a_user_message_stays_with_it() {
        let mut reasoning = Message::new(Role::Reasoning, "");
        reasoning.model_output = true;
        let messages = vec![Message::new(Role::User, "go"), reasoning, Message::new(Role::User, "and?")];
        let Ok(linked) = link(&messages, false) else { panic!("a valid conversation") };
        assert_eq!(linked.turns, [None, Some(1), Some(1)]);
    }
}
