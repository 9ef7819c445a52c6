//! `pack_chat`, `chat_tokens` and `count_tools`: conversations read once, packed in one call, and given
//! back as the caller's objects.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::anthropic;
use super::chat_read::{as_dict, read, type_name, Format, Reader, Reading};
use super::chat_summary::{self, PyChatSummaries, SummaryArg};
use super::enter_core;
use super::packer::PyPacker;
use super::result::{Inputs, PyPackResult};
use super::tokenizer::PyTokenizer;
use crate::chat::ToolAccounting;
use crate::chat::{count_tools as count_tool_definitions, plan, plan_summaries, Accounting, Lineage, Linked, Message};
use crate::chat::{Planned, Role};
use crate::error::SchedError;
use crate::packer::Packed;
use crate::segment::Segment;
use crate::tokenizer::Tokenizer;

/// `ctxsched.ChatAccounting`, read by attribute.
#[derive(FromPyObject)]
pub(crate) struct AccountingArg {
    #[pyo3(attribute("tokens_per_message"))]
    per_message: usize,
    #[pyo3(attribute("tokens_per_name"))]
    per_name: usize,
    #[pyo3(attribute("tokens_per_tool_call"))]
    per_tool_call: usize,
    #[pyo3(attribute("reply_priming"))]
    reply_priming: usize,
    #[pyo3(attribute("image_tokens"))]
    image_tokens: usize,
    #[pyo3(attribute("audio_part_tokens"))]
    audio_tokens: usize,
    #[pyo3(attribute("file_part_tokens"))]
    file_tokens: usize,
    #[pyo3(attribute("unknown_part_tokens"))]
    unknown_part_tokens: usize,
}

impl AccountingArg {
    pub(super) fn core(&self) -> Accounting {
        Accounting {
            per_message: self.per_message,
            per_name: self.per_name,
            per_tool_call: self.per_tool_call,
            reply_priming: self.reply_priming,
            image_tokens: self.image_tokens,
            audio_tokens: self.audio_tokens,
            file_tokens: self.file_tokens,
            unknown_part_tokens: self.unknown_part_tokens,
        }
    }
}

/// A packed conversation, for `ctxsched.PackedMessages`.
#[pyclass(frozen, get_all, name = "PackedChat", module = "ctxsched._core")]
pub(crate) struct PyPackedChat {
    result: Py<PyPackResult>,
    /// The packed messages: the caller's objects where kept whole, dict copies where changed (for
    /// Anthropic, the `{"system", "messages"}` dict).
    messages: Py<PyAny>,
    /// For each packed message, its index in the input (`None` for a summary).
    indices: Vec<Option<usize>>,
    /// Input messages replaced by their stub.
    stubbed: Vec<usize>,
    repairs: Vec<String>,
    /// For each input message, the index of its decision in `result.decisions` (`None`: dropped by a repair;
    /// for Anthropic, the decision of the message's last unit): a list, or for a session's pack a dict by
    /// the message's index in the conversation.
    primary: Py<PyAny>,
    /// A fallback that was taken, said plainly.
    note: Option<String>,
}

/// How to give a conversation's messages back.
pub(crate) enum Layout {
    Chat(Reading),
    Anthropic(anthropic::Layout),
}

/// Read a conversation in any format: its messages (units, for Anthropic) and how to give them back.
fn read_any(messages: &Bound<'_, PyAny>, format: Format, reader: &Reader) -> PyResult<(Vec<Message>, Layout)> {
    if format == Format::Anthropic {
        let (units, layout) = anthropic::read(messages, reader)?;
        return Ok((units, Layout::Anthropic(layout)));
    }
    let (read, reading) = read(messages, format, reader, 0)?;
    Ok((read, Layout::Chat(reading)))
}

/// Pack a conversation: read it, link it, check whether it fits, pack it (with the GIL released), and
/// build the messages to send. `reserved` tokens (tool definitions) are kept free before packing. With
/// `summaries`, history that must go may be summarised: if some is, the result is a `ChatSummaries`
/// waiting for the hooks, else the `PackedChat`.
#[pyfunction]
#[pyo3(signature = (messages, packer, budget, accounting, *, format = "openai", repair = false, reserved = 0, summaries = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_chat(
    py: Python<'_>,
    messages: &Bound<'_, PyAny>,
    packer: Bound<'_, PyPacker>,
    budget: usize,
    accounting: AccountingArg,
    format: &str,
    repair: bool,
    reserved: usize,
    summaries: Option<SummaryArg>,
) -> PyResult<Py<PyAny>> {
    let format = Format::parse(format)?;
    let handle = packer.get();
    let core = handle.core();
    let Some(tokenizer) = core.tokenizer() else {
        return Err(SchedError::InvalidArgument("pack_chat needs a packer with a built-in encoding".to_owned()).into());
    };
    let accounting = accounting.core();
    let reader = Reader { tokenizer, accounting };
    let (conversation, layout) = read_any(messages, format, &reader)?;
    let work_bytes = conversation.iter().map(|message| message.text.len()).sum::<usize>().max(conversation.len() * 64);
    let budget = budget.saturating_sub(reserved);
    if let Some(summaries) = summaries {
        let settings = chat_summary::settings(summaries, budget.saturating_sub(core.policy().reserve_output));
        let phase_one = enter_core(py, work_bytes, || {
            plan_summaries(core, &conversation, repair, tokenizer, accounting, budget, &settings)
        })
        .map_err(|error| handle.interrupted(error))?;
        if let Some(phase_one) = phase_one {
            let pending = PyChatSummaries::new(
                py,
                packer.clone().unbind(),
                conversation,
                layout,
                phase_one,
                budget,
                accounting,
                settings,
            )?;
            return Ok(Py::new(py, pending)?.into_any());
        }
    }
    let conversation = &conversation;
    let planned = enter_core(py, work_bytes, || plan(core, conversation, repair, tokenizer, accounting, budget))
        .map_err(|error| handle.interrupted(error))?;
    let result = packed_chat(py, &layout, conversation, planned, core.policy().separator.clone(), &[])?;
    Ok(Py::new(py, result)?.into_any())
}

/// The Python result of a pack: the messages to send in the caller's format, and the decisions.
pub(super) fn packed_chat(
    py: Python<'_>,
    layout: &Layout,
    conversation: &[Message],
    planned: Planned,
    separator: String,
    lineage: &[(usize, Lineage)],
) -> PyResult<PyPackedChat> {
    let Planned { linked, chat, packed, note } = planned;
    let segments: Arc<[Segment]> = chat.segments.into();
    let (out, indices, stubbed) = match layout {
        Layout::Chat(reading) => {
            let (out, indices, stubbed) =
                output(py, reading, conversation, &chat.owners, &chat.primary, &linked, &packed, &segments)?;
            (out.into_any(), indices, stubbed)
        }
        Layout::Anthropic(layout) => {
            let (out, indices, stubbed) =
                anthropic::output(py, layout, conversation, &chat.owners, &chat.primary, &linked, &packed, &segments)?;
            (out.into_any(), indices, stubbed)
        }
    };
    let roles: Arc<[&'static str]> = chat
        .owners
        .iter()
        .map(|&owner| conversation.get(owner).map_or("", |message| message.role.sent_name()))
        // A restated task is sent as the user's.
        .chain(packed.appended.iter().map(|_| "user"))
        .collect();
    let metadata = super::chat_summary::lineage_metadata(py, lineage)?;
    let result = Py::new(py, PyPackResult::new(Inputs::Chat(roles), segments, packed, separator).with(metadata))?;
    Ok(PyPackedChat {
        result,
        messages: out.unbind(),
        indices,
        stubbed,
        repairs: linked.repairs,
        primary: match layout {
            Layout::Anthropic(layout) => {
                let summaries: Vec<bool> = chat_units_summaries(conversation);
                PyList::new(py, layout.by_message(&chat.primary, &summaries))?.into_any().unbind()
            }
            Layout::Chat(_) => PyList::new(py, chat.primary)?.into_any().unbind(),
        },
        note,
    })
}

/// For each unit read, whether it is a summary.
fn chat_units_summaries(conversation: &[Message]) -> Vec<bool> {
    conversation.iter().map(|message| message.role == Role::Summary).collect()
}

impl PyPackedChat {
    /// For each packed message, its index in the input (summaries, which have none, left out).
    pub(super) fn indices(&self) -> Vec<usize> {
        self.indices.iter().flatten().copied().collect()
    }

    /// The packed messages.
    pub(super) fn messages(&self) -> &Py<PyAny> {
        &self.messages
    }

    /// The pack of messages `numbers` of a longer conversation (message `i` read is its message
    /// `numbers[i]`), named by those numbers.
    /// A summary read in its first source's place (`summaries[i]`) is not that message: `decision` of the
    /// number finds the source's.
    pub(super) fn numbered(mut self, py: Python<'_>, numbers: &[usize], summaries: &[bool]) -> PyResult<Self> {
        let number = |index: &mut usize| *index = numbers.get(*index).copied().unwrap_or(*index);
        self.indices.iter_mut().flatten().for_each(number);
        self.stubbed.iter_mut().for_each(number);
        let by_number = PyDict::new(py);
        for (position, primary) in self.primary.bind(py).try_iter()?.enumerate() {
            if summaries.get(position).copied().unwrap_or(false) {
                continue;
            }
            by_number.set_item(numbers.get(position).copied().unwrap_or(position), primary?)?;
        }
        self.primary = by_number.into_any().unbind();
        Ok(self)
    }
}

/// The messages to send, in order: for each placed message, the caller's object, or a dict copy with its
/// content cut or stubbed, or its unanswered calls removed. Also each one's input index, and the stubbed.
#[allow(clippy::too_many_arguments)]
fn output<'py>(
    py: Python<'py>,
    reading: &Reading,
    messages: &[Message],
    owners: &[usize],
    primary: &[Option<usize>],
    linked: &Linked,
    packed: &Packed,
    segments: &[Segment],
) -> PyResult<Output<'py>> {
    let out = PyList::empty(py);
    let (mut indices, mut stubbed) = (Vec::new(), Vec::new());
    for &index in &packed.order {
        let Some(&owner) = owners.get(index) else { continue };
        if primary.get(owner).copied().flatten() != Some(index) {
            continue;
        }
        if messages.get(owner).is_some_and(|message| message.role == Role::Summary) {
            out.append(super::chat_summary::summary_message(
                py,
                &segments.get(index).map_or("".into(), |s| s.text.clone()),
                reading.responses,
            )?)?;
            indices.push(None);
            continue;
        }
        let action = packed.decisions.get(index).map_or("kept", |decision| decision.action());
        let cut = matches!(action, "truncated" | "stubbed") || packed.rewritten(index);
        let removed = linked.removed_calls.get(&owner);
        let (Some(original), Some(dict)) = (reading.originals.get(owner), reading.dicts.get(owner)) else { continue };
        if !cut && removed.is_none() {
            out.append(original.bind(py))?;
        } else {
            let copy = dict.bind(py).copy()?;
            if cut {
                let key = reading.content_keys.get(owner).copied().unwrap_or("content");
                let part = messages.get(owner).and_then(|message| message.cut_part);
                replace_text(&copy, key, part, packed.text_of(segments, index).unwrap_or_default())?;
            }
            if let Some(removed) = removed {
                remove_calls(&copy, removed)?;
            }
            out.append(copy)?;
        }
        if action == "stubbed" {
            stubbed.push(owner);
        }
        indices.push(Some(owner));
    }
    // A restated task goes last, as the user's (OpenAI takes a user message after tool results), with the
    // source's name, which its framing counts.
    for (source, text) in packed.appended_texts(segments.len()) {
        let message = PyDict::new(py);
        message.set_item("role", "user")?;
        message.set_item("content", text)?;
        let name = owners.get(source).and_then(|&owner| messages.get(owner)).and_then(|m| m.name.as_deref());
        if let Some(name) = name {
            message.set_item("name", name)?;
        }
        out.append(message)?;
        indices.push(None);
    }
    Ok((out, indices, stubbed))
}

/// The messages to send, each one's input index (`None` for a summary), and the stubbed.
type Output<'py> = (Bound<'py, PyList>, Vec<Option<usize>>, Vec<usize>);

/// Set `container[key]` to `text`: the whole value, or the text of its part numbered `part` (a copy of the
/// list with a copy of that part).
pub(crate) fn replace_text(container: &Bound<'_, PyDict>, key: &str, part: Option<usize>, text: &str) -> PyResult<()> {
    let list = part.map(|_| container.get_item(key)).transpose()?.flatten();
    let list = list.as_ref().and_then(|list| list.cast::<PyList>().ok());
    let (Some(part), Some(list)) = (part, list) else { return container.set_item(key, text) };
    let copy = PyList::new(container.py(), list.iter())?;
    if let Some(item) = as_dict(&list.get_item(part)?)? {
        let item = item.copy()?;
        item.set_item("text", text)?;
        copy.set_item(part, item)?;
    }
    container.set_item(key, copy)
}

/// Remove the calls numbered `removed` from a message dict: entries of `tool_calls` by position, and its
/// `function_call`, numbered after them.
fn remove_calls(message: &Bound<'_, PyDict>, removed: &[usize]) -> PyResult<()> {
    let py = message.py();
    let calls = message.get_item(intern!(py, "tool_calls"))?;
    let calls = calls.as_ref().and_then(|calls| calls.cast::<PyList>().ok());
    let count = calls.map_or(0, PyListMethods::len);
    if let Some(calls) = calls {
        let kept: Vec<Bound<'_, PyAny>> =
            calls.iter().enumerate().filter(|(number, _)| !removed.contains(number)).map(|(_, call)| call).collect();
        if kept.is_empty() {
            message.del_item(intern!(py, "tool_calls"))?;
        } else {
            message.set_item(intern!(py, "tool_calls"), PyList::new(py, kept)?)?;
        }
    }
    if removed.contains(&count) && message.contains(intern!(py, "function_call"))? {
        message.del_item(intern!(py, "function_call"))?;
    }
    Ok(())
}

/// The tokens of each message of a conversation, read as `pack_chat` reads it: (role, content tokens,
/// other tokens (framing, name, parts, calls), a preview of the content). The reply priming is not in it.
#[pyfunction]
#[pyo3(signature = (messages, tokenizer, accounting, *, format = "openai"))]
pub(crate) fn chat_tokens(
    py: Python<'_>,
    messages: &Bound<'_, PyAny>,
    tokenizer: PyRef<'_, PyTokenizer>,
    accounting: AccountingArg,
    format: &str,
) -> PyResult<Vec<(&'static str, usize, usize, String)>> {
    const PREVIEW_CHARS: usize = 60;
    let (tokenizer, accounting) = (tokenizer.inner, accounting.core());
    let reader = Reader { tokenizer, accounting };
    let (conversation, _) = read_any(messages, Format::parse(format)?, &reader)?;
    let conversation = &conversation;
    let texts: Vec<&str> = conversation
        .iter()
        .flat_map(|message| std::iter::once(&*message.text).chain(message.calls.iter().map(|call| &*call.arguments)))
        .collect();
    let work_bytes = texts.iter().map(|text| text.len()).sum::<usize>();
    let counts = enter_core(py, work_bytes, || Ok(tokenizer.count_many(&texts)))?;
    let mut counts = counts.into_iter();
    let mut rows = Vec::with_capacity(conversation.len());
    for message in conversation {
        let content = counts.next().unwrap_or(0);
        let mut other = message.fixed;
        if message.has_content() {
            other += accounting.per_message + tokenizer.count(message.role.name());
        }
        if let Some(name) = &message.name {
            other += accounting.per_name + tokenizer.count(name);
        }
        for call in &message.calls {
            other += accounting.per_tool_call + tokenizer.count(&call.name) + counts.next().unwrap_or(0);
        }
        let preview: String = message.text.chars().take(PREVIEW_CHARS).collect();
        rows.push((message.role.name(), content, other, preview));
    }
    Ok(rows)
}

/// The tokens of tool definitions (a list of dicts or the SDKs' pydantic objects), by the cookbook recipe
/// with these constants: the total, and (name, tokens) per tool.
#[pyfunction]
#[pyo3(signature = (tools, tokenizer, func_init, prop_init, prop_key, enum_init, enum_item, func_end))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn count_tools(
    tools: &Bound<'_, PyAny>,
    tokenizer: PyRef<'_, PyTokenizer>,
    func_init: i64,
    prop_init: i64,
    prop_key: i64,
    enum_init: i64,
    enum_item: i64,
    func_end: i64,
) -> PyResult<(usize, Vec<(String, usize)>)> {
    let py = tools.py();
    let items: Vec<Bound<'_, PyAny>> = match (tools.cast::<PyList>(), tools.cast::<pyo3::types::PyTuple>()) {
        (Ok(list), _) => list.iter().collect(),
        (_, Ok(tuple)) => tuple.iter().collect(),
        _ => {
            let problem = format!("tools must be a list of tool definitions, not {}", type_name(tools));
            return Err(pyo3::exceptions::PyTypeError::new_err(problem));
        }
    };
    let mut plain = Vec::with_capacity(items.len());
    for item in items {
        plain.push(as_dict(&item)?.map_or(item, Bound::into_any));
    }
    let text: String = py
        .import(intern!(py, "json"))?
        .call_method1(intern!(py, "dumps"), (PyList::new(py, plain)?,))
        .and_then(|text| text.extract())
        .map_err(|error| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "tools must be JSON data (dicts, lists, str, numbers): {error}"
            ))
        })?;
    let accounting = ToolAccounting { func_init, prop_init, prop_key, enum_init, enum_item, func_end };
    let count = count_tool_definitions(&text, tokenizer.inner, accounting)?;
    Ok((count.total, count.tools))
}

/// The width and height of a PNG, GIF or JPEG image in a base64 data URL, if they can be read.
#[pyfunction]
pub(crate) fn image_size(url: &str) -> Option<(f64, f64)> {
    crate::chat::image_size(url)
}

/// `OpenAI`'s cost of an image part (`image_url` or `input_image`), read as `pack_chat` reads it.
#[pyfunction]
pub(crate) fn image_part_tokens(part: &Bound<'_, PyAny>, accounting: AccountingArg) -> PyResult<usize> {
    let Some(part) = as_dict(part)? else {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!("part must be a dict, not {}", type_name(part))));
    };
    let reader =
        Reader { tokenizer: Tokenizer::new(crate::tokenizer::Encoding::O200kBase), accounting: accounting.core() };
    reader.image(&part)
}
