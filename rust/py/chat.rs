//! `ctxsched._core.chat_segments`: a conversation's segments read straight from its message dicts.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::tokenizer::PyTokenizer;
use crate::chat::{Accounting, ChatSegments, Message, Role, ToolCall};
use crate::segment::Segment;

/// The segments of a conversation (for `Packer.pack` and `Packer.total_up_to`) and the message of each.
#[pyclass(frozen, name = "ChatSegments", module = "ctxsched._core")]
pub(crate) struct PyChatSegments {
    pub(crate) segments: Arc<[Segment]>,
    pub(crate) roles: Arc<[&'static str]>,
    owners: Vec<usize>,
}

#[pymethods]
impl PyChatSegments {
    /// For each segment, the index of its message.
    #[getter]
    fn owners(&self) -> Vec<usize> {
        self.owners.clone()
    }

    fn __len__(&self) -> usize {
        self.segments.len()
    }
}

/// The segments of `messages` (a list of dicts in `OpenAI` chat format), or `None` when the conversation
/// needs the Python front-end: content that is not a string, a malformed message, lone surrogates, tool
/// calls and results that do not pair up.
#[pyfunction]
pub(crate) fn chat_segments(
    messages: &Bound<'_, PyAny>,
    tokenizer: PyRef<'_, PyTokenizer>,
    per_message: usize,
    per_name: usize,
    per_tool_call: usize,
) -> PyResult<Option<PyChatSegments>> {
    let Ok(list) = messages.cast::<PyList>() else { return Ok(None) };
    let mut parsed = Vec::with_capacity(list.len());
    for item in list.iter() {
        let Some(message) = read_message(&item)? else { return Ok(None) };
        parsed.push(message);
    }
    let accounting = Accounting { per_message, per_name, per_tool_call };
    let Some(chat) = ChatSegments::from_messages(&parsed, tokenizer.inner, accounting) else { return Ok(None) };
    let roles = chat.owners.iter().map(|&owner| parsed.get(owner).map_or("", |message| message.role.name())).collect();
    Ok(Some(PyChatSegments { segments: chat.segments.into(), roles, owners: chat.owners }))
}

/// A `str`'s text, unless it holds lone surrogates (the Python path repairs those).
fn text(value: &Bound<'_, PyAny>) -> Option<Arc<str>> {
    value.cast::<PyString>().ok()?.to_str().ok().map(Arc::from)
}

fn read_message(item: &Bound<'_, PyAny>) -> PyResult<Option<Message>> {
    let py = item.py();
    let Ok(dict) = item.cast::<PyDict>() else { return Ok(None) };
    let Some(role) = dict.get_item(intern!(py, "role"))? else { return Ok(None) };
    let Some(role) = role.cast::<PyString>().ok().and_then(|role| Role::parse(role.to_str().ok()?)) else {
        return Ok(None);
    };
    let content = match dict.get_item(intern!(py, "content"))? {
        Some(content) if !content.is_none() => match text(&content) {
            Some(content) => content,
            None => return Ok(None),
        },
        // No content: fine for an assistant message, and for a tool result that says so (`"content": None`).
        Some(_) if matches!(role, Role::Assistant | Role::Tool) => Arc::from(""),
        None if role == Role::Assistant => Arc::from(""),
        _ => return Ok(None),
    };
    let name = match dict.get_item(intern!(py, "name"))? {
        Some(name) if !name.is_none() => match text(&name) {
            Some(name) => Some(name.to_string()),
            None => return Ok(None),
        },
        _ => None,
    };
    let calls = match dict.get_item(intern!(py, "tool_calls"))? {
        Some(calls) if role == Role::Assistant && !calls.is_none() => match read_calls(&calls)? {
            Some(calls) => calls,
            None => return Ok(None),
        },
        _ => Vec::new(),
    };
    let answers = if role == Role::Tool {
        match dict.get_item(intern!(py, "tool_call_id"))?.as_ref().and_then(text) {
            Some(id) => Some(id.to_string()),
            None => return Ok(None),
        }
    } else {
        None
    };
    Ok(Some(Message { role, content, name, calls, answers }))
}

fn read_calls(calls: &Bound<'_, PyAny>) -> PyResult<Option<Vec<ToolCall>>> {
    let py = calls.py();
    let Ok(calls) = calls.cast::<PyList>() else { return Ok(None) };
    let mut read = Vec::with_capacity(calls.len());
    for call in calls.iter() {
        let Ok(call) = call.cast::<PyDict>() else { return Ok(None) };
        let id = call.get_item(intern!(py, "id"))?.as_ref().and_then(text);
        let function = call.get_item(intern!(py, "function"))?;
        let Some(function) = function.as_ref().and_then(|function| function.cast::<PyDict>().ok()) else {
            return Ok(None);
        };
        let name = function.get_item(intern!(py, "name"))?.as_ref().and_then(text);
        let arguments = match function.get_item(intern!(py, "arguments"))? {
            None => Some(Arc::from("")),
            Some(arguments) => text(&arguments),
        };
        let (Some(id), Some(name), Some(arguments)) = (id, name, arguments) else { return Ok(None) };
        read.push(ToolCall { id: id.to_string(), name: name.to_string(), arguments });
    }
    Ok(Some(read))
}
