//! Reading a conversation from the caller's objects: `OpenAI` chat messages (dicts, any mapping, or the
//! SDK's pydantic objects, read through `model_dump`) and Responses input items. Content parts, refusals
//! and images are counted here, as they are read; what may be cut is left as text.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyMapping, PyString, PyTuple};

use super::convert::text_arg;
use crate::chat::{image_size, image_tokens, Accounting, Answer, ImageDetail, Message, Role, ToolCall};
use crate::error::SchedError;
use crate::tokenizer::Tokenizer;

/// A conversation's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    OpenAi,
    Responses,
    Anthropic,
}

impl Format {
    pub(crate) fn parse(name: &str) -> PyResult<Self> {
        match name {
            "openai" => Ok(Format::OpenAi),
            "responses" => Ok(Format::Responses),
            "anthropic" => Ok(Format::Anthropic),
            _ => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "format must be 'openai', 'responses' or 'anthropic', not {name:?}"
            ))),
        }
    }
}

/// What is needed to give each message of a conversation back.
#[derive(Default)]
pub(crate) struct Reading {
    /// The caller's objects.
    pub(crate) originals: Vec<Py<PyAny>>,
    /// Each message as a dict (the caller's dict, or a copy of a model's fields), for copies.
    pub(crate) dicts: Vec<Py<PyDict>>,
    /// The key a cut content goes back under: `content`, or a Responses output's `output`.
    pub(crate) content_keys: Vec<&'static str>,
    /// Responses items (a summary goes back as a `message` item).
    pub(crate) responses: bool,
}

impl Reading {
    /// The objects of messages `numbers`, in that order.
    pub(crate) fn select(&self, py: Python<'_>, numbers: &[usize]) -> Self {
        let mut selected = Self { responses: self.responses, ..Self::default() };
        for &number in numbers {
            let (Some(original), Some(dict), Some(key)) =
                (self.originals.get(number), self.dicts.get(number), self.content_keys.get(number))
            else {
                continue;
            };
            selected.originals.push(original.clone_ref(py));
            selected.dicts.push(dict.clone_ref(py));
            selected.content_keys.push(key);
        }
        selected
    }
}

/// The problem with message `index`, as a `MessageFormatError`.
pub(crate) fn bad(index: usize, problem: impl Into<String>) -> PyErr {
    SchedError::MessageFormat { index: Some(index), problem: problem.into() }.into()
}

pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value.get_type().name().map_or_else(|_| "?".to_owned(), |name| name.to_string())
}

/// A `str`'s text (lone surrogates replaced), or `None` for any other type.
pub(crate) fn text(value: &Bound<'_, PyAny>) -> Option<Arc<str>> {
    if !value.is_instance_of::<PyString>() {
        return None;
    }
    text_arg(value, "text").ok().map(|text| Arc::from(text.as_ref()))
}

/// `value` as a dict: itself, a copy of a mapping, or a pydantic model's `model_dump(exclude_none=True)`.
pub(crate) fn as_dict<'py>(value: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyDict>>> {
    let py = value.py();
    if let Ok(dict) = value.cast::<PyDict>() {
        return Ok(Some(dict.clone()));
    }
    if let Ok(mapping) = value.cast::<PyMapping>() {
        let dict = PyDict::new(py);
        dict.update(mapping)?;
        return Ok(Some(dict));
    }
    if value.hasattr(intern!(py, "model_dump"))? {
        let keywords = PyDict::new(py);
        keywords.set_item(intern!(py, "exclude_none"), true)?;
        let dumped = value.call_method(intern!(py, "model_dump"), (), Some(&keywords))?;
        return Ok(dumped.cast_into::<PyDict>().ok());
    }
    Ok(None)
}

/// Read `messages` (a list or tuple) in `format` (`OpenAI` chat or Responses), numbered from `first`.
pub(crate) fn read<'py>(
    messages: &Bound<'py, PyAny>,
    format: Format,
    reader: &Reader,
    first: usize,
) -> PyResult<(Vec<Message>, Reading)> {
    let items: Vec<Bound<'py, PyAny>> = if let Ok(list) = messages.cast::<PyList>() {
        list.iter().collect()
    } else if let Ok(tuple) = messages.cast::<PyTuple>() {
        tuple.iter().collect()
    } else {
        let problem = format!("messages must be a list of messages, not {}", type_name(messages));
        return Err(SchedError::MessageFormat { index: None, problem }.into());
    };
    let mut read = Vec::with_capacity(items.len());
    let mut reading = Reading {
        dicts: Vec::with_capacity(items.len()),
        content_keys: Vec::with_capacity(items.len()),
        originals: Vec::new(),
        responses: format == Format::Responses,
    };
    for (index, item) in (first..).zip(&items) {
        let Some(dict) = as_dict(item)? else {
            let expected =
                if format == Format::OpenAi { "a dict or an SDK message object" } else { "a dict or an SDK item" };
            return Err(bad(index, format!("must be {expected}, not {}", type_name(item))));
        };
        let (mut message, key) = match format {
            Format::Responses => reader.responses_item(index, &dict)?,
            _ => (reader.chat_message(index, &dict)?, "content"),
        };
        message.number = index;
        read.push(message);
        reading.dicts.push(dict.unbind());
        reading.content_keys.push(key);
    }
    reading.originals = items.into_iter().map(Bound::unbind).collect();
    Ok((read, reading))
}

pub(crate) struct Reader {
    pub(crate) tokenizer: Tokenizer,
    pub(crate) accounting: Accounting,
}

impl Reader {
    /// One `OpenAI` chat message.
    fn chat_message(&self, index: usize, dict: &Bound<'_, PyDict>) -> PyResult<Message> {
        let py = dict.py();
        let role_value = dict.get_item(intern!(py, "role"))?;
        let role = role_value.as_ref().and_then(text).and_then(|role| Role::parse(&role));
        let Some(role) = role else {
            let shown =
                role_value.map_or_else(|| Ok("no role".to_owned()), |role| role.repr().map(|r| format!("role {r}")))?;
            return Err(bad(index, format!("has {shown}; the roles are {}", Role::CHAT)));
        };
        let mut message = Message::new(role, "");
        match dict.get_item(intern!(py, "content"))? {
            Some(content) if !content.is_none() => self.content(index, &content, &mut message)?,
            Some(_) if matches!(role, Role::Assistant | Role::Tool | Role::Function) => {}
            None if role == Role::Assistant => {}
            _ => return Err(bad(index, format!("({}) has no content", role.name()))),
        }
        message.name = Self::optional_text(index, dict, intern!(py, "name"), "a name")?.map(|name| name.to_string());
        match role {
            Role::Assistant => self.assistant_extras(index, dict, &mut message)?,
            Role::Tool => {
                let id = dict.get_item(intern!(py, "tool_call_id"))?.as_ref().and_then(text);
                let Some(id) = id else { return Err(bad(index, "is a tool result without a str tool_call_id")) };
                message.answers = Some(Answer::Call(id.to_string()));
            }
            Role::Function => {
                if message.name.is_none() {
                    return Err(bad(index, "is a function result without a str name"));
                }
                message.answers = Some(Answer::Legacy);
            }
            _ => {}
        }
        Ok(message)
    }

    /// An assistant's refusal, tool calls and legacy function call.
    fn assistant_extras(&self, index: usize, dict: &Bound<'_, PyDict>, message: &mut Message) -> PyResult<()> {
        let py = dict.py();
        if let Some(refusal) = Self::optional_text(index, dict, intern!(py, "refusal"), "a refusal")? {
            message.fixed += self.tokenizer.count(&refusal);
        }
        match dict.get_item(intern!(py, "tool_calls"))? {
            Some(calls) if !calls.is_none() => {
                let Ok(calls) = calls.cast::<PyList>() else {
                    return Err(bad(index, format!("has tool_calls of type {}, not list", type_name(&calls))));
                };
                for (number, call) in calls.iter().enumerate() {
                    message.calls.push(tool_call(index, number, &call)?);
                }
            }
            _ => {}
        }
        if let Some(call) = dict.get_item(intern!(py, "function_call"))?.filter(|call| !call.is_none()) {
            let function = as_dict(&call)?;
            let name = function.as_ref().map(|f| f.get_item(intern!(py, "name"))).transpose()?.flatten();
            let arguments = function.as_ref().map(|f| f.get_item(intern!(py, "arguments"))).transpose()?.flatten();
            let name = name.as_ref().and_then(text);
            let arguments = arguments.map_or_else(|| Some(Arc::from("")), |arguments| text(&arguments));
            let (Some(name), Some(arguments)) = (name, arguments) else {
                return Err(bad(index, "has a function_call whose name or arguments are not str"));
            };
            message.calls.push(ToolCall { id: None, name: name.to_string(), arguments });
        }
        Ok(())
    }

    /// An optional str field (absent or `None`: `None`).
    fn optional_text(
        index: usize,
        dict: &Bound<'_, PyDict>,
        key: &Bound<'_, PyString>,
        what: &str,
    ) -> PyResult<Option<Arc<str>>> {
        match dict.get_item(key)? {
            Some(value) if !value.is_none() => match text(&value) {
                Some(value) => Ok(Some(value)),
                None => Err(bad(index, format!("has {what} of type {}, not str", type_name(&value)))),
            },
            _ => Ok(None),
        }
    }

    /// A content: a string (which may be cut) or a list of parts (counted here, kept whole).
    pub(crate) fn content(&self, index: usize, content: &Bound<'_, PyAny>, message: &mut Message) -> PyResult<()> {
        if let Some(content) = text(content) {
            message.text = content;
            return Ok(());
        }
        let Ok(parts) = content.cast::<PyList>() else {
            return Err(bad(
                index,
                format!("has content of type {}; expected str or a list of parts", type_name(content)),
            ));
        };
        let mut read = Vec::with_capacity(parts.len());
        for (number, part) in parts.iter().enumerate() {
            let Some(part) = as_dict(&part)? else {
                return Err(bad(index, format!("has content part {number} of type {}, not dict", type_name(&part))));
            };
            read.push(part);
        }
        // The longest text part may be cut (an MCP tool's output is often one text part); the rest is kept.
        let longest = read
            .iter()
            .enumerate()
            .filter_map(|(number, part)| Some((number, text_part(part).ok()??)))
            .max_by_key(|(number, text)| (text.len(), std::cmp::Reverse(*number)));
        message.cuttable = longest.is_some();
        if let Some((number, longest)) = longest {
            message.text = longest;
            message.cut_part = Some(number);
        }
        for (number, part) in read.iter().enumerate() {
            if message.cut_part != Some(number) {
                message.fixed += self.part(index, number, part)?;
            }
        }
        Ok(())
    }

    /// The tokens of one content part (chat and Responses part types).
    fn part(&self, index: usize, number: usize, part: &Bound<'_, PyDict>) -> PyResult<usize> {
        let py = part.py();
        let kind = part.get_item(intern!(py, "type"))?.as_ref().and_then(text);
        let field = |key: &str| -> PyResult<Option<Arc<str>>> { Ok(part.get_item(key)?.as_ref().and_then(text)) };
        let accounting = &self.accounting;
        Ok(match kind.as_deref() {
            Some(kind @ ("text" | "input_text" | "output_text" | "summary_text" | "reasoning_text")) => {
                let Some(text) = field("text")? else {
                    return Err(bad(index, format!("has {kind} part {number} without a str text")));
                };
                self.tokenizer.count(&text)
            }
            Some("refusal") => field("refusal")?.map_or(0, |refusal| self.tokenizer.count(&refusal)),
            Some("image_url" | "input_image") => self.image(part)?,
            Some("input_audio") => accounting.audio_tokens,
            Some("file" | "input_file") => accounting.file_tokens,
            Some("ctxsched_fixed") => part.get_item("tokens")?.and_then(|tokens| tokens.extract().ok()).unwrap_or(0),
            _ => accounting.unknown_part_tokens,
        })
    }

    /// An image part's cost: a chat `image_url` part ({"url", "detail"} or a plain URL) or a Responses
    /// `input_image` part.
    pub(crate) fn image(&self, part: &Bound<'_, PyDict>) -> PyResult<usize> {
        let py = part.py();
        let image = part.get_item(intern!(py, "image_url"))?;
        let nested = image.as_ref().map(as_dict).transpose()?.flatten();
        let holder = nested.as_ref().unwrap_or(part);
        let url = match &nested {
            Some(nested) => nested.get_item(intern!(py, "url"))?,
            None => image,
        };
        let detail = holder.get_item(intern!(py, "detail"))?.as_ref().and_then(text);
        let detail = if detail.as_deref() == Some("low") { ImageDetail::Low } else { ImageDetail::High };
        let number = |key: &str| -> PyResult<Option<f64>> {
            Ok(holder.get_item(key)?.and_then(|value| value.extract::<f64>().ok()))
        };
        let size = match (number("width")?, number("height")?) {
            (Some(width), Some(height)) => Some((width, height)),
            _ => url.as_ref().and_then(text).and_then(|url| image_size(&url)),
        };
        Ok(image_tokens(detail, size, self.accounting.image_tokens))
    }
}

fn field<'py>(dict: Option<&Bound<'py, PyDict>>, key: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(dict.map(|dict| dict.get_item(key)).transpose()?.flatten())
}

/// The text of a text part (chat, Responses or Anthropic), if it is one.
pub(crate) fn text_part(part: &Bound<'_, PyDict>) -> PyResult<Option<Arc<str>>> {
    let kind = part.get_item(intern!(part.py(), "type"))?.as_ref().and_then(text);
    if !matches!(kind.as_deref(), Some("text" | "input_text" | "output_text")) {
        return Ok(None);
    }
    Ok(part.get_item(intern!(part.py(), "text"))?.as_ref().and_then(text))
}

/// One entry of an assistant's `tool_calls`: a function call, or a custom tool's call.
fn tool_call(index: usize, number: usize, call: &Bound<'_, PyAny>) -> PyResult<ToolCall> {
    let py = call.py();
    let call = as_dict(call)?;
    let id = field(call.as_ref(), intern!(py, "id"))?.as_ref().and_then(text);
    let function = field(call.as_ref(), intern!(py, "function"))?.filter(|function| !function.is_none());
    let (function, arguments_key) = match function {
        Some(function) => (Some(function), intern!(py, "arguments")),
        None => (field(call.as_ref(), intern!(py, "custom"))?, intern!(py, "input")),
    };
    let function = function.as_ref().map(as_dict).transpose()?.flatten();
    let (Some(id), Some(function)) = (id, function) else {
        return Err(bad(index, format!("has tool call {number} without an id and a function")));
    };
    let name = function.get_item(intern!(py, "name"))?.as_ref().and_then(text);
    let arguments = match function.get_item(arguments_key)? {
        None => Some(Arc::from("")),
        Some(arguments) => text(&arguments),
    };
    let (Some(name), Some(arguments)) = (name, arguments) else {
        return Err(bad(index, format!("has tool call {number} whose name or arguments are not str")));
    };
    Ok(ToolCall { id: Some(id.to_string()), name: name.to_string(), arguments })
}
