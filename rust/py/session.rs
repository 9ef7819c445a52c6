//! `ChatSession`: a conversation kept between packs (for `ctxsched.Session`).
//!
//! The state sits behind a mutex in a frozen class, locked with the GIL released (`lock_py_attached`), so
//! two threads packing one session wait for each other instead of deadlocking on the GIL.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::MutexExt;

use super::chat::{packed_chat, AccountingArg, Layout};
use super::chat_read::{read, Format, Reader, Reading};
use super::chat_summary::{self, OutcomesArg, SummaryArg};
use super::enter_core;
use super::packer::PyPacker;
use super::result::PyDecision;
use super::{anthropic, breakpoints};
use crate::chat::Accounting;
use crate::chat::Role;
use crate::error::SchedError;
use crate::session::{CacheReport, Marks, Plan, Session, Settings};
use pyo3::types::PyList;

/// The caller's objects, to give back.
enum Objects {
    Chat(Reading),
    Anthropic(anthropic::Layout),
}

/// A conversation's messages as read, the caller's objects to give back, and the session's decisions.
struct State {
    session: Session,
    objects: Objects,
}

/// One conversation, packed turn after turn with its prefix kept stable (`ctxsched.Session`).
#[pyclass(frozen, name = "ChatSession", module = "ctxsched._core")]
pub(crate) struct PyChatSession {
    packer: Py<PyPacker>,
    accounting: Accounting,
    format: Format,
    budget: usize,
    /// Tokens kept free before packing (tool definitions): part of every prompt's cached prefix.
    reserved: usize,
    marks: Marks,
    /// Anthropic: the shortest prefix worth a `cache_control` mark.
    min_cache_tokens: usize,
    state: Mutex<State>,
}

/// What a session pack kept of the previous prompt (`PackedMessages.cache`).
#[pyclass(frozen, get_all, name = "CacheReport", module = "ctxsched._core")]
pub(crate) struct PyCacheReport {
    /// Tokens at the start of this prompt identical to the previous prompt's (tool definitions included).
    prefix_tokens: usize,
    /// The position in `messages` of the first message that differs from the previous prompt; `None` when
    /// the previous prompt is a prefix of this one.
    first_change: Option<usize>,
    /// Why it differs: the first pack, a new epoch, a new pin, a fresh pack.
    reason: Option<String>,
    /// The epoch this prompt belongs to (1 after the first pack).
    epoch: u64,
    /// Leading messages kept from before the current epoch's cut point.
    frozen_messages: usize,
    /// Tokens of each packed message, in order.
    message_tokens: Vec<usize>,
    /// Anthropic: the `cache_control` marks placed (0 for the `OpenAI` formats, cached automatically).
    breakpoints: usize,
}

#[pymethods]
impl PyCacheReport {
    /// One line: the prefix kept, where the prompt changed and why, the epoch.
    fn describe(&self) -> String {
        let change = match (self.first_change, &self.reason) {
            (Some(at), Some(reason)) => format!("changed from message {at} ({reason})"),
            _ => "the previous prompt plus new messages".to_owned(),
        };
        format!("{} tokens of prefix kept; {change}; epoch {}", self.prefix_tokens, self.epoch)
    }

    fn __repr__(&self) -> String {
        format!(
            "CacheReport(prefix_tokens={}, first_change={:?}, reason={:?}, epoch={})",
            self.prefix_tokens, self.first_change, self.reason, self.epoch
        )
    }
}

impl PyCacheReport {
    fn new(report: CacheReport, reserved: usize, breakpoints: usize) -> Self {
        // Tool definitions come before the messages and do not change within a session.
        let first = report.reason.as_deref() == Some(crate::session::FIRST_PACK);
        Self {
            prefix_tokens: report.prefix_tokens.saturating_add(if first { 0 } else { reserved }),
            first_change: report.first_change,
            reason: report.reason,
            epoch: report.epoch,
            frozen_messages: report.frozen_messages,
            message_tokens: report.message_tokens,
            breakpoints,
        }
    }
}

#[pymethods]
impl PyChatSession {
    #[new]
    #[pyo3(signature = (
        packer, budget, accounting, *, format = "openai", reserved = 0, high = 1.0, low = 0.85, recent = 0.05,
        system = None, min_cache_tokens = 1024,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        packer: Py<PyPacker>,
        budget: usize,
        accounting: AccountingArg,
        format: &str,
        reserved: usize,
        high: f64,
        low: f64,
        recent: f64,
        system: Option<&Bound<'_, PyAny>>,
        min_cache_tokens: usize,
    ) -> PyResult<Self> {
        let format = Format::parse(format)?;
        let Some(tokenizer) = packer.get().core().tokenizer() else {
            return Err(
                SchedError::InvalidArgument("a session needs a packer with a built-in encoding".to_owned()).into()
            );
        };
        let marks = Marks { high, low, recent }.check()?;
        let accounting = accounting.core();
        let mut session = Session::new(format != Format::Responses);
        let objects = if format == Format::Anthropic {
            let reader = Reader { tokenizer, accounting };
            let (units, layout) = anthropic::Layout::growing(py, system, &reader)?;
            session.extend(units)?;
            Objects::Anthropic(layout)
        } else if system.is_some_and(|system| !system.is_none()) {
            let problem = "system= is for the Anthropic format; OpenAI formats take a system message";
            return Err(SchedError::InvalidArgument(problem.to_owned()).into());
        } else {
            Objects::Chat(Reading { responses: format == Format::Responses, ..Reading::default() })
        };
        let state = Mutex::new(State { session, objects });
        Ok(Self { packer, accounting, format, budget, reserved, marks, min_cache_tokens, state })
    }

    /// Read and append `messages`; nothing is appended if one of them is malformed.
    fn extend(&self, py: Python<'_>, messages: &Bound<'_, PyAny>) -> PyResult<()> {
        let tokenizer = self.tokenizer()?;
        let reader = Reader { tokenizer, accounting: self.accounting };
        if self.format == Format::Anthropic {
            let mut state = self.state.lock_py_attached(py).map_err(|_| poisoned())?;
            let State { session, objects: Objects::Anthropic(layout) } = &mut *state else {
                return Err(SchedError::InvalidArgument("an Anthropic session without its layout".to_owned()).into());
            };
            let mark = layout.mark();
            let units = layout.read_messages(messages, &reader)?;
            if let Err(error) = session.extend(units) {
                layout.rewind(mark);
                return Err(error.into());
            }
            return Ok(());
        }
        // Read (which may run the caller's `model_dump`) before taking the lock, numbered from the length
        // then, and renumbered under the lock if another thread appended meanwhile.
        let first = self.state.lock_py_attached(py).map_err(|_| poisoned())?.session.messages().len();
        let (mut read_messages, reading) = read(messages, self.format, &reader, first)?;
        let mut state = self.state.lock_py_attached(py).map_err(|_| poisoned())?;
        let now = state.session.messages().len();
        for (number, message) in (now..).zip(&mut read_messages) {
            message.number = number;
        }
        state.session.extend(read_messages)?;
        if let Objects::Chat(kept) = &mut state.objects {
            kept.originals.extend(reading.originals);
            kept.dicts.extend(reading.dicts);
            kept.content_keys.extend(reading.content_keys);
        }
        Ok(())
    }

    /// Pack the conversation: the messages to send and what the prompt kept of the previous one. The
    /// session changes only once both are built. With `summaries`, a new epoch may summarise what goes:
    /// without `outcomes` its runs come back first (a list), to be packed again with the hooks' outcomes.
    #[pyo3(signature = (summaries = None, outcomes = None))]
    fn pack(
        &self,
        py: Python<'_>,
        summaries: Option<SummaryArg>,
        outcomes: Option<OutcomesArg>,
    ) -> PyResult<Py<PyAny>> {
        let packer = self.packer.get();
        let core = packer.core();
        let tokenizer = self.tokenizer()?;
        let budget = self.budget.saturating_sub(self.reserved);
        let summaries =
            summaries.map(|arg| chat_summary::settings(arg, budget.saturating_sub(core.policy().reserve_output)));
        let outcomes = match (outcomes, &summaries) {
            (Some(given), Some(settings)) => Some(chat_summary::outcomes(given, settings.truncate)?),
            _ => None,
        };
        let mut state = self.state.lock_py_attached(py).map_err(|_| poisoned())?;
        let State { session, objects } = &mut *state;
        let settings = Settings {
            packer: core,
            tokenizer,
            accounting: self.accounting,
            budget,
            marks: self.marks,
            summaries: summaries.as_ref(),
        };
        let planned = enter_core(py, session.work_bytes(), || session.plan(settings, outcomes.as_ref()))
            .map_err(|error| packer.interrupted(error))?;
        let planned = match planned {
            Plan::Ready(planned) => planned,
            Plan::Summarise(runs) => {
                let runs = runs
                    .iter()
                    .map(|run| chat_summary::for_hook(py, &run.inputs, run.run.max_tokens, run.fingerprint, run.depth))
                    .collect::<PyResult<Vec<_>>>()?;
                return Ok(PyList::new(py, runs)?.into_any().unbind());
            }
        };
        let lineage = planned.lineage.clone();
        let (messages, numbers, planned, report, applied) = planned.into_parts();
        let summary_positions: Vec<bool> = messages.iter().map(|message| message.role == Role::Summary).collect();
        let separator = core.policy().separator.clone();
        let (result, report, breakpoints) = match objects {
            Objects::Chat(reading) => {
                let layout = Layout::Chat(reading.select(py, &numbers));
                let result = packed_chat(py, &layout, &messages, planned, separator, &lineage)?;
                (result.numbered(py, &numbers, &summary_positions)?, report, 0)
            }
            Objects::Anthropic(full) => {
                let (selected, message_numbers) = full.select(py, &numbers);
                let layout = Layout::Anthropic(selected);
                // The lineage in Anthropic messages, not units.
                let lineage: Vec<_> = lineage
                    .into_iter()
                    .map(|(at, mut lineage)| {
                        lineage.messages = lineage.messages.iter().filter_map(|&unit| full.message_of(unit)).collect();
                        lineage.messages.dedup();
                        (at, lineage)
                    })
                    .collect();
                let result = packed_chat(py, &layout, &messages, planned, separator, &lineage)?;
                let result = result.numbered(py, &message_numbers, &[])?;
                let (report, system) = breakpoints::anthropic_report(report, full, &result.indices());
                let placed = breakpoints::place(
                    result.messages().bind(py),
                    &report,
                    self.reserved,
                    system,
                    self.min_cache_tokens,
                )?;
                (result, report, placed)
            }
        };
        session.apply(applied);
        let report = PyCacheReport::new(report, self.reserved, breakpoints);
        Ok((result, report).into_pyobject(py)?.into_any().unbind())
    }

    /// The decision about message `index` if an earlier pack evicted it, else `None`.
    fn earlier(&self, py: Python<'_>, index: usize) -> PyResult<Option<PyDecision>> {
        let state = self.state.lock_py_attached(py).map_err(|_| poisoned())?;
        Ok(state
            .session
            .earlier(index)
            .map(|earlier| PyDecision::new(&earlier.decision, earlier.id.to_string(), earlier.kind.to_string())))
    }

    /// Messages appended so far.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.state.lock_py_attached(py).map_err(|_| poisoned())?.session.messages().len())
    }

    /// Messages appended since the last pack.
    #[getter]
    fn pending(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.state.lock_py_attached(py).map_err(|_| poisoned())?.session.pending())
    }

    /// The current epoch (0 before the first pack).
    #[getter]
    fn epoch(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.state.lock_py_attached(py).map_err(|_| poisoned())?.session.epoch())
    }
}

impl PyChatSession {
    fn tokenizer(&self) -> PyResult<crate::tokenizer::Tokenizer> {
        self.packer.get().core().tokenizer().ok_or_else(|| {
            SchedError::InvalidArgument("a session needs a packer with a built-in encoding".to_owned()).into()
        })
    }
}

/// A session whose lock was poisoned: a panic while packing it (which the core never does on purpose).
fn poisoned() -> PyErr {
    SchedError::InvalidArgument("this session was left unusable by a panic in an earlier pack".to_owned()).into()
}
