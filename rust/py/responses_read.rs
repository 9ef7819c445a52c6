//! Reading `OpenAI` Responses input items (what the Agents SDK sends): `message` items, function and custom
//! tool calls with their outputs, `reasoning` items, and any other item whole.
//!
//! An item type ending in `_call` with a `call_id` is a call, and one ending in `_call_output` with the
//! same `call_id` is its result, so computer, shell and future call types pair up like function calls.
//! Items other than messages and results are never cut (a reasoning item's encrypted content must come
//! back as it was); the ones this reader does not know are counted by their JSON text.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::chat_read::{bad, text, type_name, Reader};
use crate::chat::{Answer, Message, Role, ToolCall};

impl Reader {
    /// One Responses item, and the key its content goes back under if it is cut.
    pub(crate) fn responses_item(&self, index: usize, item: &Bound<'_, PyDict>) -> PyResult<(Message, &'static str)> {
        let py = item.py();
        let kind = item.get_item(intern!(py, "type"))?;
        let kind = match &kind {
            Some(kind) => match text(kind) {
                Some(kind) => kind,
                None => return Err(bad(index, format!("has a type of type {}, not str", type_name(kind)))),
            },
            // An "easy input message": a role and a content, no type.
            None => Arc::from("message"),
        };
        match &*kind {
            "message" => Ok((self.responses_message(index, item)?, "content")),
            "reasoning" => Ok((self.reasoning(item)?, "content")),
            kind if kind.ends_with("_call_output") => self.call_output(index, item),
            kind if kind.ends_with("_call") => Ok((self.call_item(index, kind, item)?, "content")),
            _ => {
                let mut message = Message::new(Role::Item, "");
                message.cuttable = false;
                message.fixed = self.json_tokens(item.as_any())?;
                Ok((message, "content"))
            }
        }
    }

    fn responses_message(&self, index: usize, item: &Bound<'_, PyDict>) -> PyResult<Message> {
        let py = item.py();
        let role = item.get_item(intern!(py, "role"))?;
        let parsed = role.as_ref().and_then(text).and_then(|role| Role::parse(&role));
        let Some(role) = parsed.filter(|role| !role.is_result()) else {
            let shown =
                role.map_or_else(|| Ok("no role".to_owned()), |role| role.repr().map(|r| format!("role {r}")))?;
            return Err(bad(index, format!("has {shown}; message items are system, developer, user or assistant")));
        };
        let mut message = Message::new(role, "");
        match item.get_item(intern!(py, "content"))? {
            Some(content) if !content.is_none() => self.content(index, &content, &mut message)?,
            _ => return Err(bad(index, format!("({}) has no content", role.name()))),
        }
        message.model_output = role == Role::Assistant;
        Ok(message)
    }

    /// A reasoning item: its summary and content texts, and its encrypted content counted as text (the
    /// reasoning it stands for is billed as input; its encryption is longer, so this errs on the safe side).
    fn reasoning(&self, item: &Bound<'_, PyDict>) -> PyResult<Message> {
        let py = item.py();
        let mut message = Message::new(Role::Reasoning, "");
        message.cuttable = false;
        message.model_output = true;
        for key in [intern!(py, "summary"), intern!(py, "content")] {
            let Some(parts) = item.get_item(key)?.filter(|parts| !parts.is_none()) else { continue };
            let mut counted = Message::new(Role::Reasoning, "");
            if self.content(0, &parts, &mut counted).is_ok() {
                message.fixed += counted.fixed + self.tokenizer.count(&counted.text);
            } else {
                message.fixed += self.json_tokens(&parts)?;
            }
        }
        if let Some(encrypted) = item.get_item(intern!(py, "encrypted_content"))?.as_ref().and_then(text) {
            message.fixed += self.tokenizer.count(&encrypted);
        }
        Ok(message)
    }

    /// A call item: a function or custom tool call, or another type's (`computer_call`, ...).
    fn call_item(&self, index: usize, kind: &str, item: &Bound<'_, PyDict>) -> PyResult<Message> {
        let py = item.py();
        let mut message = Message::new(Role::Assistant, "");
        message.framed = false;
        message.model_output = true;
        let call_id = item.get_item(intern!(py, "call_id"))?.as_ref().and_then(text);
        let field = |key: &Bound<'_, PyString>| -> PyResult<Option<Arc<str>>> {
            Ok(item.get_item(key)?.as_ref().and_then(text))
        };
        let (name, arguments) = match kind {
            "function_call" => (field(intern!(py, "name"))?, field(intern!(py, "arguments"))?),
            "custom_tool_call" => (field(intern!(py, "name"))?, field(intern!(py, "input"))?),
            _ => (Some(Arc::from(kind)), Some(Arc::from(Self::json_text(item.as_any())?))),
        };
        let Some(call_id) = call_id else {
            if matches!(kind, "function_call" | "custom_tool_call") {
                return Err(bad(index, format!("is a {kind} without a str call_id")));
            }
            // A call the provider runs itself (web search, say): no result item answers it.
            let mut message = Message::new(Role::Item, "");
            message.cuttable = false;
            message.model_output = true;
            message.fixed = self.json_tokens(item.as_any())?;
            return Ok(message);
        };
        let (Some(name), Some(arguments)) = (name, arguments) else {
            return Err(bad(index, format!("is a {kind} whose name or arguments are not str")));
        };
        message.calls.push(ToolCall { id: Some(call_id.to_string()), name: name.to_string(), arguments });
        Ok(message)
    }

    /// A call's output: a string (which may be cut) or anything else (counted whole).
    fn call_output(&self, index: usize, item: &Bound<'_, PyDict>) -> PyResult<(Message, &'static str)> {
        let py = item.py();
        let Some(call_id) = item.get_item(intern!(py, "call_id"))?.as_ref().and_then(text) else {
            return Err(bad(index, "is a call output without a str call_id"));
        };
        let mut message = Message::new(Role::Tool, "");
        message.answers = Some(Answer::Call(call_id.to_string()));
        match item.get_item(intern!(py, "output"))? {
            Some(output) if !output.is_none() => {
                if let Some(output) = text(&output) {
                    message.text = output;
                } else if self.content(index, &output, &mut message).is_err() {
                    message.cuttable = false;
                    message.fixed = self.json_tokens(&output)?;
                }
            }
            _ => {}
        }
        Ok((message, "output"))
    }

    /// `value` as JSON text (`str()` for what JSON cannot hold).
    pub(crate) fn json_text(value: &Bound<'_, PyAny>) -> PyResult<String> {
        let py = value.py();
        let keywords = PyDict::new(py);
        keywords.set_item("default", py.get_type::<PyString>())?;
        keywords.set_item("ensure_ascii", false)?;
        let json = py.import(intern!(py, "json"))?;
        json.call_method("dumps", (value,), Some(&keywords))?.extract()
    }

    fn json_tokens(&self, value: &Bound<'_, PyAny>) -> PyResult<usize> {
        Ok(self.tokenizer.count(&Self::json_text(value)?))
    }
}
