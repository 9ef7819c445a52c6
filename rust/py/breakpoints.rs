//! Anthropic sessions: the report in Anthropic messages, and `cache_control` breakpoints.
//!
//! Anthropic caches the prompt up to a block marked `cache_control` (tools, then the system prompt, then
//! the messages), at most four marks per request, and only prefixes of at least a minimum length (1,024
//! tokens for most models). A session marks, where the prefix up to them is long enough:
//! - the end of the system prompt (it outlives every epoch);
//! - the last message kept from before the epoch's cut point (it outlives the next epoch too);
//! - the end of what the previous prompt shared with this one (read from the cache now);
//! - the last message (written now, read by the next call).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::anthropic::Layout;
use super::chat_read::as_dict;
use crate::session::CacheReport;

/// At most this many `cache_control` marks per request (Anthropic's limit).
const MAX_BREAKPOINTS: usize = 4;

/// The report of a session's pack in terms of the Anthropic messages sent: `indices` is the conversation
/// index of the first Anthropic message of each packed message (merged messages share one). Returns the
/// report and the system prompt's tokens.
pub(crate) fn anthropic_report(report: CacheReport, layout: &Layout, indices: &[usize]) -> (CacheReport, usize) {
    // The packed message an Anthropic message went into: the last one starting at or before it.
    let position = |unit: usize| -> Option<usize> {
        let message = layout.message_of(unit)?;
        indices.partition_point(|&first| first <= message).checked_sub(1)
    };
    let mut tokens = vec![0usize; indices.len()];
    let mut system = 0usize;
    for (&unit, &unit_tokens) in report.messages.iter().zip(&report.message_tokens) {
        match position(unit).and_then(|at| tokens.get_mut(at)) {
            Some(slot) => *slot += unit_tokens,
            None => system += unit_tokens,
        }
    }
    // A position among the units, as a position among the packed messages (a unit of the system prompt
    // is before them all).
    let at = |unit_position: usize| -> usize {
        report.messages.get(unit_position).map_or(indices.len(), |&unit| position(unit).unwrap_or(0))
    };
    let converted = CacheReport {
        first_change: report.first_change.map(at),
        frozen_messages: at(report.frozen_messages),
        common: at(report.common),
        message_tokens: tokens,
        messages: indices.to_vec(),
        ..report
    };
    (converted, system)
}

/// Mark the blocks where caching pays (see the module docs); `before` is the tokens sent before the
/// messages and the system prompt (tool definitions).
pub(crate) fn place(
    conversation: &Bound<'_, PyAny>,
    report: &CacheReport,
    before: usize,
    system_tokens: usize,
    min_tokens: usize,
) -> PyResult<usize> {
    let py = conversation.py();
    let Some(conversation) = as_dict(conversation)? else { return Ok(0) };
    let mut upto = Vec::with_capacity(report.message_tokens.len());
    let mut total = before + system_tokens;
    for &tokens in &report.message_tokens {
        total += tokens;
        upto.push(total);
    }
    let last = report.message_tokens.len().checked_sub(1);
    let mut marks: Vec<usize> = [report.frozen_messages.checked_sub(1), report.common.checked_sub(1), last]
        .into_iter()
        .flatten()
        .filter(|&at| upto.get(at).is_some_and(|&tokens| tokens >= min_tokens))
        .collect();
    marks.sort_unstable();
    marks.dedup();
    let mut placed = 0;
    let system_pays = system_tokens > 0 && before + system_tokens >= min_tokens;
    if system_pays && marks.len() < MAX_BREAKPOINTS {
        if let Some(system) = conversation.get_item(intern!(py, "system"))? {
            if let Some(marked) = marked_content(py, &system)? {
                conversation.set_item(intern!(py, "system"), marked)?;
                placed += 1;
            }
        }
    }
    let Some(messages) = conversation.get_item(intern!(py, "messages"))? else { return Ok(placed) };
    let Ok(messages) = messages.cast_into::<PyList>() else { return Ok(placed) };
    // The latest marks matter most: with the system's, keep the last ones.
    let room = MAX_BREAKPOINTS - placed;
    for &at in marks.iter().rev().take(room) {
        let Ok(message) = messages.get_item(at) else { continue };
        let Some(message) = as_dict(&message)? else { continue };
        let Some(content) = message.get_item(intern!(py, "content"))? else { continue };
        if let Some(marked) = marked_content(py, &content)? {
            let copy = message.copy()?;
            copy.set_item(intern!(py, "content"), marked)?;
            messages.set_item(at, copy)?;
            placed += 1;
        }
    }
    Ok(placed)
}

/// A copy of a content (a string or a list of blocks) with `cache_control` on its last block, if that
/// block can carry one (not a thinking block, not an empty text).
fn marked_content<'py>(py: Python<'py>, content: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyList>>> {
    let ephemeral = || -> PyResult<Bound<'py, PyDict>> {
        let mark = PyDict::new(py);
        mark.set_item("type", "ephemeral")?;
        Ok(mark)
    };
    if let Ok(text) = content.cast::<PyString>() {
        if text.to_str()?.is_empty() {
            return Ok(None);
        }
        let block = PyDict::new(py);
        block.set_item("type", "text")?;
        block.set_item("text", text)?;
        block.set_item("cache_control", ephemeral()?)?;
        return Ok(Some(PyList::new(py, [block])?));
    }
    let Ok(blocks) = content.cast::<PyList>() else { return Ok(None) };
    let Some(last) = blocks.len().checked_sub(1) else { return Ok(None) };
    let Some(block) = as_dict(&blocks.get_item(last)?)? else { return Ok(None) };
    let kind = block.get_item("type")?.and_then(|kind| kind.extract::<String>().ok());
    if matches!(kind.as_deref(), Some("thinking" | "redacted_thinking")) {
        return Ok(None);
    }
    let block = block.copy()?;
    block.set_item("cache_control", ephemeral()?)?;
    let copy = PyList::new(py, blocks.iter())?;
    copy.set_item(last, block)?;
    Ok(Some(copy))
}
