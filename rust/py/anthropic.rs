//! Anthropic's Messages format: `{"system": ..., "messages": [...]}` with content blocks, read into units and
//! written back.
//!
//! Each message is split into units the allocator decides on separately: a user message's `tool_result`
//! blocks are one unit each (answering the `tool_use` of the same id); the rest of a message (text, images,
//! tool uses, thinking) is one unit. Written back, a message whose units are all kept whole is your object;
//! otherwise a copy holding the kept blocks (a cut or stubbed `tool_result` has only its `content` changed).
//! Consecutive messages of the same role that eviction brings together are merged, so the output alternates
//! and starts with the user's task; every `tool_result` stays right after its `tool_use`.

use std::collections::BTreeMap;
use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::chat::replace_text;
use super::chat_read::{as_dict, bad, text, text_part, type_name, Reader};
use crate::chat::{anthropic_image_tokens, image_size, Answer, Linked, Message, Role, ToolCall};
use crate::error::SchedError;
use crate::packer::Packed;
use crate::segment::Segment;

/// Where a unit came from.
#[derive(Clone)]
pub(crate) struct Origin {
    /// Its message; `None` for the system prompt.
    message: Option<usize>,
    /// Its blocks; `None` for a string content.
    blocks: Option<Vec<usize>>,
    /// The block of each of its tool calls.
    call_blocks: Vec<usize>,
}

/// An Anthropic conversation as read: the caller's objects and each unit's origin.
pub(crate) struct Layout {
    /// The conversation dict (its system prompt and other keys; its messages are replaced).
    conversation: Py<PyDict>,
    /// The caller's message objects, and each as a dict.
    originals: Vec<Py<PyAny>>,
    plain: Vec<Py<PyDict>>,
    origins: Vec<Origin>,
}

impl Layout {
    /// A layout for a conversation read message by message (a session's), with this system prompt.
    pub(crate) fn growing(
        py: Python<'_>,
        system: Option<&Bound<'_, PyAny>>,
        reader: &Reader,
    ) -> PyResult<(Vec<Message>, Self)> {
        let conversation = PyDict::new(py);
        if let Some(system) = system.filter(|system| !system.is_none()) {
            conversation.set_item(intern!(py, "system"), system)?;
        }
        let mut layout = Layout {
            conversation: conversation.unbind(),
            originals: Vec::new(),
            plain: Vec::new(),
            origins: Vec::new(),
        };
        let units = layout.read_system(py, reader)?;
        Ok((units, layout))
    }

    fn read_system(&mut self, py: Python<'_>, _reader: &Reader) -> PyResult<Vec<Message>> {
        let mut units = Vec::new();
        let system = self.conversation.bind(py).get_item(intern!(py, "system"))?;
        if let Some(system) = system.filter(|system| !system.is_none()) {
            let mut unit = Message::new(Role::System, "");
            unit.text = match text(&system) {
                Some(system) => system,
                None => Arc::from(system_text(&system)?),
            };
            units.push(unit);
            self.origins.push(Origin { message: None, blocks: None, call_blocks: Vec::new() });
        }
        Ok(units)
    }

    /// Read `messages` (Anthropic messages, numbered after those read so far) into units; nothing is kept
    /// if one is malformed.
    pub(crate) fn read_messages(&mut self, messages: &Bound<'_, PyAny>, reader: &Reader) -> PyResult<Vec<Message>> {
        let Ok(list) = messages.cast::<PyList>() else {
            let problem = format!("messages must be a list of Anthropic messages, not {}", type_name(messages));
            return Err(SchedError::MessageFormat { index: None, problem }.into());
        };
        let first = self.originals.len();
        let mut units = Vec::new();
        let mut origins = Vec::new();
        let mut read = Vec::new();
        for (index, message) in (first..).zip(list.iter()) {
            let Some(plain) = as_dict(&message)? else {
                return Err(bad(index, format!("must be a dict, not {}", type_name(&message))));
            };
            let role = role_of(index, &plain)?;
            read_message(index, role, &plain, reader, &mut units, &mut origins)?;
            read.push((message.unbind(), plain.unbind()));
        }
        for (unit, origin) in units.iter_mut().zip(&origins) {
            unit.number = origin.message.unwrap_or(0);
        }
        self.origins.extend(origins);
        for (original, plain) in read {
            self.originals.push(original);
            self.plain.push(plain);
        }
        Ok(units)
    }

    /// The layout of units `units` only (a session's pack reads the prompt's and the new ones), its messages
    /// renumbered from 0; and for each of its messages, its number in this layout.
    pub(crate) fn select(&self, py: Python<'_>, units: &[usize]) -> (Self, Vec<usize>) {
        // In the conversation's order, whatever the order of `units` (a summary placed now comes last).
        let mut numbers: Vec<usize> =
            units.iter().filter_map(|&unit| self.origins.get(unit)).filter_map(|origin| origin.message).collect();
        numbers.sort_unstable();
        numbers.dedup();
        let mut origins = Vec::with_capacity(units.len());
        for origin in units.iter().filter_map(|&unit| self.origins.get(unit)) {
            let mut origin = origin.clone();
            origin.message = origin.message.and_then(|message| numbers.binary_search(&message).ok());
            origins.push(origin);
        }
        let originals = numbers.iter().filter_map(|&message| self.originals.get(message)).map(|o| o.clone_ref(py));
        let plain = numbers.iter().filter_map(|&message| self.plain.get(message)).map(|p| p.clone_ref(py));
        let layout = Layout {
            conversation: self.conversation.clone_ref(py),
            originals: originals.collect(),
            plain: plain.collect(),
            origins,
        };
        (layout, numbers)
    }

    /// Where reading stands now, to rewind to if what is read next is refused.
    pub(crate) fn mark(&self) -> (usize, usize) {
        (self.originals.len(), self.origins.len())
    }

    /// Forget what was read after `mark`.
    pub(crate) fn rewind(&mut self, (messages, units): (usize, usize)) {
        self.originals.truncate(messages);
        self.plain.truncate(messages);
        self.origins.truncate(units);
    }

    /// The message each unit came from (`None`: the system prompt).
    pub(crate) fn message_of(&self, unit: usize) -> Option<usize> {
        self.origins.get(unit).and_then(|origin| origin.message)
    }

    /// For each message, the segment of its last unit (its text and tool uses; for a message of tool
    /// results only, its last result), from the segment of each unit.
    /// A summary's unit (`summaries[unit]`) is not its message's.
    pub(crate) fn by_message(&self, primary: &[Option<usize>], summaries: &[bool]) -> Vec<Option<usize>> {
        let mut by_message = vec![None; self.originals.len()];
        for (unit, origin) in self.origins.iter().enumerate() {
            if summaries.get(unit).copied().unwrap_or(false) {
                continue;
            }
            if let Some(slot) = origin.message.and_then(|message| by_message.get_mut(message)) {
                *slot = primary.get(unit).copied().flatten();
            }
        }
        by_message
    }
}

/// Read an Anthropic conversation into units.
pub(crate) fn read(conversation: &Bound<'_, PyAny>, reader: &Reader) -> PyResult<(Vec<Message>, Layout)> {
    let py = conversation.py();
    let not_a_conversation = || -> PyErr {
        let problem = "an Anthropic conversation is a dict with a \"messages\" list".to_owned();
        SchedError::MessageFormat { index: None, problem }.into()
    };
    let conversation = as_dict(conversation)?.ok_or_else(not_a_conversation)?;
    let Some(list) = conversation.get_item(intern!(py, "messages"))? else { return Err(not_a_conversation()) };
    if !list.is_instance_of::<PyList>() {
        return Err(not_a_conversation());
    }
    let mut layout =
        Layout { conversation: conversation.unbind(), originals: Vec::new(), plain: Vec::new(), origins: Vec::new() };
    let mut units = layout.read_system(py, reader)?;
    units.extend(layout.read_messages(&list, reader)?);
    Ok((units, layout))
}

/// The role of Anthropic message `index`: the user's or the assistant's, and the user's first.
fn role_of(index: usize, plain: &Bound<'_, PyDict>) -> PyResult<Role> {
    let py = plain.py();
    let role = plain.get_item(intern!(py, "role"))?.as_ref().and_then(text);
    match role.as_deref() {
        Some("user") => Ok(Role::User),
        Some("assistant") if index > 0 => Ok(Role::Assistant),
        Some("assistant") => Err(bad(0, "is not the user's; an Anthropic conversation starts with a user turn")),
        _ => {
            let shown = plain
                .get_item(intern!(py, "role"))?
                .map_or_else(|| Ok("None".to_owned()), |r| r.repr().map(|r| r.to_string()))?;
            Err(bad(index, format!("has role {shown}; Anthropic roles are 'user' and 'assistant'")))
        }
    }
}

/// The text blocks of a system prompt given as blocks, joined.
fn system_text(system: &Bound<'_, PyAny>) -> PyResult<String> {
    let Ok(blocks) = system.cast::<PyList>() else {
        let problem = format!("the system prompt must be a str or a list of blocks, not {}", type_name(system));
        return Err(SchedError::MessageFormat { index: None, problem }.into());
    };
    let mut joined = String::new();
    for block in blocks.iter() {
        let block = as_dict(&block)?;
        let text_of = block.map(|block| block.get_item("text")).transpose()?.flatten();
        if let Some(part) = text_of.as_ref().and_then(text) {
            joined.push_str(&part);
        }
    }
    Ok(joined)
}

/// The units of one message: each `tool_result` block of a user message, then the rest.
fn read_message(
    index: usize,
    role: Role,
    message: &Bound<'_, PyDict>,
    reader: &Reader,
    units: &mut Vec<Message>,
    origins: &mut Vec<Origin>,
) -> PyResult<()> {
    let py = message.py();
    let content = message.get_item(intern!(py, "content"))?;
    let Some(content) = content else { return Err(bad(index, format!("({}) has no content", role.name()))) };
    if let Some(content) = text(&content) {
        units.push(Message::new(role, content));
        origins.push(Origin { message: Some(index), blocks: None, call_blocks: Vec::new() });
        return Ok(());
    }
    let Ok(blocks) = content.cast::<PyList>() else {
        return Err(bad(
            index,
            format!("has content of type {}; expected str or a list of blocks", type_name(&content)),
        ));
    };
    let mut rest = Message::new(role, "");
    rest.cuttable = false;
    let mut texts = Vec::new();
    let mut rest_origin = Origin { message: Some(index), blocks: Some(Vec::new()), call_blocks: Vec::new() };
    for (number, block) in blocks.iter().enumerate() {
        let Some(block) = as_dict(&block)? else {
            return Err(bad(index, format!("has content block {number} of type {}, not dict", type_name(&block))));
        };
        let kind = block.get_item(intern!(py, "type"))?.as_ref().and_then(text);
        match kind.as_deref() {
            Some("tool_result") if role == Role::User => {
                units.push(tool_result(index, number, &block, reader)?);
                origins.push(Origin { message: Some(index), blocks: Some(vec![number]), call_blocks: Vec::new() });
                continue;
            }
            Some("tool_use") if role == Role::Assistant => {
                let id = block.get_item(intern!(py, "id"))?.as_ref().and_then(text);
                let name = block.get_item(intern!(py, "name"))?.as_ref().and_then(text);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(bad(index, format!("has tool_use block {number} without a str id and name")));
                };
                let input = block.get_item(intern!(py, "input"))?;
                let arguments = match input {
                    Some(input) => Reader::json_text(&input).map_err(|error| {
                        bad(index, format!("has tool_use block {number} whose input is not JSON data ({error})"))
                    })?,
                    None => "{}".to_owned(),
                };
                rest.calls.push(ToolCall {
                    id: Some(id.to_string()),
                    name: name.to_string(),
                    arguments: arguments.into(),
                });
                rest_origin.call_blocks.push(number);
            }
            Some("text") => match text_part(&block)? {
                Some(text) => texts.push((number, text)),
                None => return Err(bad(index, format!("has text block {number} without a str text"))),
            },
            kind => rest.fixed += block_tokens(index, number, kind, &block, reader)?,
        }
        if let Some(numbers) = &mut rest_origin.blocks {
            numbers.push(number);
        }
    }
    take_longest(&mut rest, texts, reader);
    if rest_origin.blocks.as_ref().is_some_and(|numbers| !numbers.is_empty()) {
        units.push(rest);
        origins.push(rest_origin);
    }
    Ok(())
}

/// The longest of `texts` (numbered blocks) becomes the unit's text, which may be cut; the others are
/// counted and kept whole.
fn take_longest(unit: &mut Message, texts: Vec<(usize, Arc<str>)>, reader: &Reader) {
    let longest = texts.iter().enumerate().max_by_key(|(at, (_, text))| (text.len(), std::cmp::Reverse(*at)));
    let chosen = longest.map(|(at, _)| at);
    for (at, (number, text)) in texts.into_iter().enumerate() {
        if Some(at) == chosen {
            unit.text = text;
            unit.cut_part = Some(number);
            unit.cuttable = true;
        } else {
            unit.fixed += reader.tokenizer.count(&text);
        }
    }
}

/// A `tool_result` block as a unit: its content a string (which may be cut) or blocks (kept whole).
fn tool_result(index: usize, number: usize, block: &Bound<'_, PyDict>, reader: &Reader) -> PyResult<Message> {
    let py = block.py();
    let Some(id) = block.get_item(intern!(py, "tool_use_id"))?.as_ref().and_then(text) else {
        return Err(bad(index, format!("has tool_result block {number} without a str tool_use_id")));
    };
    let mut unit = Message::new(Role::Tool, "");
    unit.answers = Some(Answer::Call(id.to_string()));
    let Some(content) = block.get_item(intern!(py, "content"))?.filter(|content| !content.is_none()) else {
        return Ok(unit);
    };
    if let Some(content) = text(&content) {
        unit.text = content;
        return Ok(unit);
    }
    let Ok(blocks) = content.cast::<PyList>() else {
        let problem = format!("has tool_result block {number} with content of type {}", type_name(&content));
        return Err(bad(index, problem));
    };
    unit.cuttable = false;
    let mut texts = Vec::new();
    for (inner, item) in blocks.iter().enumerate() {
        let Some(item) = as_dict(&item)? else {
            let problem = format!("has block {inner} of tool_result {number} of type {}, not dict", type_name(&item));
            return Err(bad(index, problem));
        };
        if let Some(text) = text_part(&item)? {
            texts.push((inner, text));
            continue;
        }
        let kind = item.get_item(intern!(py, "type"))?.as_ref().and_then(text);
        unit.fixed += block_tokens(index, number, kind.as_deref(), &item, reader)?;
    }
    take_longest(&mut unit, texts, reader);
    Ok(unit)
}

/// The tokens of a block other than a tool use or result.
fn block_tokens(
    index: usize,
    number: usize,
    kind: Option<&str>,
    block: &Bound<'_, PyDict>,
    reader: &Reader,
) -> PyResult<usize> {
    let field = |key: &str| -> PyResult<Option<Arc<str>>> { Ok(block.get_item(key)?.as_ref().and_then(text)) };
    let accounting = &reader.accounting;
    Ok(match kind {
        Some("text") => {
            let Some(text) = field("text")? else {
                return Err(bad(index, format!("has text block {number} without a str text")));
            };
            reader.tokenizer.count(&text)
        }
        Some("thinking") => field("thinking")?.map_or(0, |thinking| reader.tokenizer.count(&thinking)),
        Some("redacted_thinking") => field("data")?.map_or(0, |data| reader.tokenizer.count(&data)),
        Some("image") => {
            let source = block.get_item("source")?.as_ref().map(as_dict).transpose()?.flatten();
            let number_of = |key: &str| -> PyResult<Option<f64>> {
                Ok(source
                    .as_ref()
                    .map(|source| source.get_item(key))
                    .transpose()?
                    .flatten()
                    .and_then(|value| value.extract().ok()))
            };
            let data = source.as_ref().map(|source| source.get_item("data")).transpose()?.flatten();
            let from_data = data.as_ref().and_then(text).and_then(|data| {
                let head: String = data.chars().take(65_536).collect();
                image_size(&format!("data:image/x;base64,{head}"))
            });
            let size = match (number_of("width")?, number_of("height")?) {
                _ if from_data.is_some() => from_data,
                (Some(width), Some(height)) => Some((width, height)),
                _ => None,
            };
            anthropic_image_tokens(size, accounting.image_tokens)
        }
        Some("document") => accounting.file_tokens,
        _ => accounting.unknown_part_tokens,
    })
}

/// The packed conversation, the Anthropic message index of each packed message, and the messages with a
/// stubbed result.
#[allow(clippy::too_many_arguments)]
pub(crate) fn output<'py>(
    py: Python<'py>,
    layout: &Layout,
    units: &[Message],
    owners: &[usize],
    primary: &[Option<usize>],
    linked: &Linked,
    packed: &Packed,
    segments: &[Segment],
) -> PyResult<Output<'py>> {
    let result = layout.conversation.bind(py).copy()?;
    // For each kept message, its kept blocks (`None`: a string content), each with its unit if it changed.
    let mut kept: BTreeMap<usize, BTreeMap<Option<usize>, Option<usize>>> = BTreeMap::new();
    // Summaries, each after the blocks of the first message it covers.
    let mut summaries: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    let mut stubbed = Vec::new();
    for &index in &packed.order {
        let Some(&unit) = owners.get(index) else { continue };
        if primary.get(unit).copied().flatten() != Some(index) {
            continue;
        }
        if let Some(summary) = units.get(unit).filter(|unit| unit.role == Role::Summary) {
            // A session's summary is read where its first message was; a new one is numbered by its first unit.
            let Some(message) = layout.message_of(unit).or_else(|| layout.message_of(summary.number)) else { continue };
            let text = segments.get(index).map_or("", |segment| &*segment.text);
            summaries.entry(message).or_default().push(text);
            continue;
        }
        let Some(origin) = layout.origins.get(unit) else { continue };
        let action = packed.decisions.get(index).map_or("kept", |decision| decision.action());
        let cut = matches!(action, "truncated" | "stubbed") || packed.rewritten(index);
        let changed = cut || linked.removed_calls.contains_key(&unit);
        let Some(message) = origin.message else {
            if cut {
                let text = packed.text_of(segments, index).unwrap_or_default();
                let system = layout.conversation.bind(py).get_item(intern!(py, "system"))?;
                if system.is_some_and(|system| system.is_instance_of::<PyString>()) {
                    result.set_item(intern!(py, "system"), text)?;
                } else {
                    let block = PyDict::new(py);
                    block.set_item("type", "text")?;
                    block.set_item("text", text)?;
                    result.set_item(intern!(py, "system"), PyList::new(py, [block])?)?;
                }
            }
            continue;
        };
        if action == "stubbed" {
            stubbed.push(message);
        }
        let blocks: Vec<Option<usize>> =
            origin.blocks.as_ref().map_or(vec![None], |numbers| numbers.iter().copied().map(Some).collect());
        for block in blocks {
            kept.entry(message).or_default().insert(block, changed.then_some(unit));
        }
    }
    let mut rebuilt: Vec<(Bound<'py, PyAny>, Arc<str>)> = Vec::new();
    let mut indices = Vec::new();
    let mut messages: Vec<usize> = kept.keys().chain(summaries.keys()).copied().collect();
    messages.sort_unstable();
    messages.dedup();
    for message in messages {
        let mut sent = Vec::new();
        if let Some(blocks) = kept.get(&message) {
            let (Some(original), Some(plain)) = (layout.originals.get(message), layout.plain.get(message)) else {
                continue;
            };
            let (original, plain) = (original.bind(py), plain.bind(py));
            let role = plain.get_item(intern!(py, "role"))?.as_ref().and_then(text).unwrap_or_else(|| Arc::from(""));
            sent.push((
                rebuild(py, original, plain, blocks, (layout, units), linked, packed, segments, primary)?,
                role,
            ));
        }
        for text in summaries.get(&message).into_iter().flatten() {
            sent.push((summary_message(py, text)?, Arc::from(Role::Summary.sent_name())));
        }
        for (out, role) in sent {
            match rebuilt.last_mut() {
                Some((previous, previous_role)) if *previous_role == role => *previous = merge(py, previous, &out)?,
                _ => {
                    rebuilt.push((out, role));
                    indices.push(message);
                }
            }
        }
    }
    let mut indices: Vec<Option<usize>> = indices.into_iter().map(Some).collect();
    // Anthropic has no message after the last turn for the tail: a restated task is a text block at the end of
    // the final user turn (or a user turn of its own after a final assistant one).
    for (_, text) in packed.appended_texts(segments.len()) {
        let tail = text_message(py, "user", text)?;
        match rebuilt.last_mut() {
            Some((previous, role)) if &**role == "user" => *previous = merge(py, previous, &tail)?,
            _ => {
                rebuilt.push((tail, Arc::from("user")));
                indices.push(None);
            }
        }
    }
    let messages = PyList::new(py, rebuilt.into_iter().map(|(message, _)| message))?;
    result.set_item(intern!(py, "messages"), messages)?;
    Ok((result, indices, stubbed))
}

/// The packed conversation, each packed message's index in the input (`None`: added), the stubbed.
type Output<'py> = (Bound<'py, PyDict>, Vec<Option<usize>>, Vec<usize>);

/// A summary as an Anthropic user message with one text block.
fn summary_message<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    text_message(py, Role::Summary.sent_name(), text)
}

/// An Anthropic message of `role` with one text block.
fn text_message<'py>(py: Python<'py>, role: &str, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let block = PyDict::new(py);
    block.set_item("type", "text")?;
    block.set_item("text", text)?;
    let message = PyDict::new(py);
    message.set_item("role", role)?;
    message.set_item("content", PyList::new(py, [block])?)?;
    Ok(message.into_any())
}

/// One message with only its kept blocks, cut results cut and removed tool uses gone; the caller's object
/// when nothing of it changed.
#[allow(clippy::too_many_arguments)]
fn rebuild<'py>(
    py: Python<'py>,
    original: &Bound<'py, PyAny>,
    plain: &Bound<'py, PyDict>,
    blocks: &BTreeMap<Option<usize>, Option<usize>>,
    (layout, units): (&Layout, &[Message]),
    linked: &Linked,
    packed: &Packed,
    segments: &[Segment],
    primary: &[Option<usize>],
) -> PyResult<Bound<'py, PyAny>> {
    let cut_text = |unit: usize| primary.get(unit).copied().flatten().and_then(|index| packed.text_of(segments, index));
    let content = plain.get_item(intern!(py, "content"))?;
    let content = content.as_ref().and_then(|content| content.cast::<PyList>().ok());
    let whole = content.as_ref().is_none_or(|content| content.len() == blocks.len());
    if whole && blocks.values().all(Option::is_none) {
        return Ok(original.clone());
    }
    let copy = plain.copy()?;
    let Some(content) = content else {
        let unit = blocks.values().flatten().next().copied();
        copy.set_item(intern!(py, "content"), unit.and_then(cut_text))?;
        return Ok(copy.into_any());
    };
    let out = PyList::empty(py);
    for (&number, &unit) in blocks {
        let Some(number) = number else { continue };
        let block = content.get_item(number)?;
        let Some(unit) = unit else {
            out.append(block)?;
            continue;
        };
        let (Some(origin), Some(read)) = (layout.origins.get(unit), units.get(unit)) else { continue };
        let text = cut_text(unit).unwrap_or_default();
        if let Some(call) = origin.call_blocks.iter().position(|&at| at == number) {
            if linked.call_kept(unit, call) {
                out.append(block)?; // else removed by a repair: it had no result
            }
        } else if origin.blocks.as_deref() == Some(&[number][..]) && is_result(&block)? {
            let Some(block) = as_dict(&block)?.map(|block| block.copy()).transpose()? else { continue };
            replace_text(&block, "content", read.cut_part, text)?;
            out.append(block)?;
        } else if read.cut_part == Some(number) {
            let Some(block) = as_dict(&block)?.map(|block| block.copy()).transpose()? else { continue };
            block.set_item("text", text)?;
            out.append(block)?;
        } else {
            out.append(block)?;
        }
    }
    copy.set_item(intern!(py, "content"), out)?;
    Ok(copy.into_any())
}

fn is_result(block: &Bound<'_, PyAny>) -> PyResult<bool> {
    let Some(block) = as_dict(block)? else { return Ok(false) };
    Ok(block.get_item("type")?.as_ref().and_then(text).as_deref() == Some("tool_result"))
}

/// Two messages of the same role as one: their blocks, in order.
fn merge<'py>(py: Python<'py>, first: &Bound<'py, PyAny>, second: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let blocks = |message: &Bound<'py, PyAny>| -> PyResult<Vec<Bound<'py, PyAny>>> {
        let Some(message) = as_dict(message)? else { return Ok(Vec::new()) };
        let Some(content) = message.get_item(intern!(py, "content"))? else { return Ok(Vec::new()) };
        if let Ok(list) = content.cast::<PyList>() {
            return Ok(list.iter().collect());
        }
        let block = PyDict::new(py);
        block.set_item("type", "text")?;
        block.set_item("text", content)?;
        Ok(vec![block.into_any()])
    };
    let Some(merged) = as_dict(first)?.map(|first| first.copy()).transpose()? else { return Ok(first.clone()) };
    let mut content = blocks(first)?;
    content.extend(blocks(second)?);
    merged.set_item(intern!(py, "content"), PyList::new(py, content)?)?;
    Ok(merged.into_any())
}
