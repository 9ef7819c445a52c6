//! Summaries in conversations: the stateless pack's two phases (`ChatSummaries`), and what sessions share
//! with it: the hooks' inputs, their outcomes, a summary's message and its lineage.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyDict;

use super::chat::{packed_chat, Layout, PyPackedChat};
use super::convert::AmountArg;
use super::packer::PyPacker;
use super::segment::PySegment;
use crate::chat::{fit_inputs, inputs_fingerprint, place_summaries, Accounting, Lineage, Message, MessageRun};
use crate::chat::{Placing, Planned, RunOutcome, SummarySettings};
use crate::error::SchedError;
use crate::segment::Segment;
use crate::session::Outcomes;

/// `ctxsched.hooks`' settings for one pack: (kinds, room for all summaries, merge runs, the most input
/// tokens per hook call, the hook's name, cut the inputs when a hook fails).
pub(crate) type SummaryArg = (BTreeSet<String>, AmountArg, bool, usize, String, bool);

/// A run for Python: (the hook's inputs, tokens its text may take, the inputs' key, depth).
pub(crate) type RunForHook = (Vec<Py<PySegment>>, usize, String, u8);

/// The hooks' results by run key: (the summary's text, or `None` and what went wrong).
pub(crate) type OutcomesArg = HashMap<String, (Option<String>, Option<String>)>;

/// The settings of `arg`, its room resolved against the `usable` budget.
pub(crate) fn settings(arg: SummaryArg, usable: usize) -> SummarySettings {
    let (kinds, reserve, merge, input_tokens, hook, truncate) = arg;
    SummarySettings { kinds, reserve: reserve.0.resolve(usable), merge, input_tokens, hook, truncate }
}

/// A run as the hook sees it.
pub(crate) fn for_hook(
    py: Python<'_>,
    inputs: &[(Segment, &'static str)],
    max_tokens: usize,
    key: u128,
    depth: u8,
) -> PyResult<RunForHook> {
    let segments = inputs
        .iter()
        .map(|(segment, role)| Py::new(py, PySegment::from_core(segment.clone(), Some((*role).to_owned()))))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((segments, max_tokens, format!("{key:032x}"), depth))
}

/// The hooks' results, checked by Python already (a `str` within its target, or what went wrong).
pub(crate) fn outcomes(given: OutcomesArg, truncate: bool) -> PyResult<Outcomes> {
    let mut outcomes = Outcomes::default();
    for (key, (text, problem)) in given {
        let Ok(key) = u128::from_str_radix(&key, 16) else {
            return Err(SchedError::InvalidArgument(format!("{key:?} is not a summary run's key")).into());
        };
        let outcome = match (text, problem) {
            (Some(text), _) => RunOutcome::Text(text.into()),
            (None, problem) => RunOutcome::Failed { problem: problem.unwrap_or_default(), truncate },
        };
        outcomes.insert(key, outcome);
    }
    Ok(outcomes)
}

/// A summary as the provider is sent it: a user message (a `message` item for Responses).
pub(crate) fn summary_message<'py>(py: Python<'py>, text: &str, responses: bool) -> PyResult<Bound<'py, PyDict>> {
    let message = PyDict::new(py);
    if responses {
        message.set_item("type", "message")?;
    }
    message.set_item("role", crate::chat::Role::Summary.sent_name())?;
    message.set_item("content", text)?;
    Ok(message)
}

/// Each summary segment's metadata: what it replaced, the messages it covers, its depth, hook and size.
pub(crate) fn lineage_metadata(py: Python<'_>, lineage: &[(usize, Lineage)]) -> PyResult<Vec<(usize, Py<PyAny>)>> {
    lineage
        .iter()
        .map(|(position, lineage)| {
            let metadata = PyDict::new(py);
            let replaces: Vec<&str> = lineage.replaces.iter().map(|id| &**id).collect();
            metadata.set_item("summarises", replaces)?;
            metadata.set_item("messages", &lineage.messages)?;
            metadata.set_item("depth", lineage.depth)?;
            metadata.set_item("hook", &*lineage.hook)?;
            metadata.set_item("max_tokens", lineage.max_tokens)?;
            metadata.set_item("fallback", lineage.fallback.as_deref())?;
            Ok((*position, metadata.into_any().unbind()))
        })
        .collect()
}

/// A run of a stateless pack: its runs, the hook's inputs, and the messages it covers.
struct StatelessRun {
    run: MessageRun,
    inputs: Vec<Segment>,
    sources: Vec<usize>,
    key: u128,
    source_tokens: usize,
}

/// What phase 2 of a stateless pack needs.
struct Pending {
    conversation: Vec<Message>,
    layout: Layout,
    planned: Planned,
    runs: Vec<StatelessRun>,
    budget: usize,
    accounting: Accounting,
    settings: SummarySettings,
}

/// A conversation packed with room kept for summaries, waiting for its hooks (`ctxsched.pack_messages`
/// with a summarizer): `runs` to summarise, then `finish` with their outcomes.
#[pyclass(frozen, name = "ChatSummaries", module = "ctxsched._core")]
pub(crate) struct PyChatSummaries {
    packer: Py<PyPacker>,
    runs: Vec<RunForHook>,
    pending: Mutex<Option<Pending>>,
}

impl PyChatSummaries {
    /// Phase 1's result: the runs for the hooks, with what phase 2 needs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        py: Python<'_>,
        packer: Py<PyPacker>,
        conversation: Vec<Message>,
        layout: Layout,
        (planned, runs): (Planned, Vec<MessageRun>),
        budget: usize,
        accounting: Accounting,
        settings: SummarySettings,
    ) -> PyResult<Self> {
        let Some(tokenizer) = packer.get().core().tokenizer() else {
            return Err(SchedError::InvalidArgument("summaries need a built-in encoding".to_owned()).into());
        };
        let marker = packer.get().core().policy().elision_marker.clone();
        let mut for_python = Vec::with_capacity(runs.len());
        let mut stateless = Vec::with_capacity(runs.len());
        for run in runs {
            let role = |position: &usize| {
                let owner = planned.chat.owners.get(*position).and_then(|&owner| conversation.get(owner));
                owner.map_or("user", |message| message.role.name())
            };
            let roles: Vec<&'static str> = run.segments.iter().map(role).collect();
            let segments = run.segments.iter().filter_map(|&position| planned.chat.segments.get(position).cloned());
            let inputs = fit_inputs(segments.collect(), settings.input_tokens, tokenizer, &marker);
            let paired: Vec<(Segment, &'static str)> = inputs.iter().cloned().zip(roles).collect();
            let key = inputs_fingerprint(&paired, 1, run.max_tokens);
            for_python.push(for_hook(py, &paired, run.max_tokens, key, 1)?);
            let source_tokens = run
                .segments
                .iter()
                .filter_map(|&position| planned.chat.segments.get(position))
                .map(|segment| tokenizer.count(&segment.text))
                .sum();
            // By the messages read (an Anthropic message's units each have their own); see `finish`.
            let sources = run.messages.clone();
            stateless.push(StatelessRun { run, inputs, sources, key, source_tokens });
        }
        let pending = Pending { conversation, layout, planned, runs: stateless, budget, accounting, settings };
        Ok(Self { packer, runs: for_python, pending: Mutex::new(Some(pending)) })
    }
}

#[pymethods]
impl PyChatSummaries {
    /// The runs to summarise: (the hook's inputs, tokens its text may take, the inputs' key, depth).
    #[getter]
    fn runs(&self, py: Python<'_>) -> Vec<RunForHook> {
        self.runs
            .iter()
            .map(|(inputs, max_tokens, key, depth)| {
                (inputs.iter().map(|input| input.clone_ref(py)).collect(), *max_tokens, key.clone(), *depth)
            })
            .collect()
    }

    /// Pack again with each run's summary (by its key) in its place; a run without one falls back.
    fn finish(&self, py: Python<'_>, given: OutcomesArg) -> PyResult<PyPackedChat> {
        let mut pending = self.pending.lock_py_attached(py).map_err(|_| finished())?;
        let truncate = pending.as_ref().ok_or_else(finished)?.settings.truncate;
        let outcomes = outcomes(given, truncate)?;
        let Some(Pending { mut conversation, layout, planned, runs, budget, accounting, settings }) = pending.take()
        else {
            return Err(finished());
        };
        let missing = RunOutcome::Failed { problem: "gave no result".to_owned(), truncate: settings.truncate };
        let placing: Vec<Placing<'_>> = runs
            .iter()
            .map(|run| Placing {
                run: &run.run,
                outcome: outcomes.get(&run.key).unwrap_or(&missing),
                inputs: &run.inputs,
                sources: &run.sources,
                depth: 1,
                source_tokens: run.source_tokens,
            })
            .collect();
        let packer = self.packer.get();
        let core = packer.core();
        let Planned { linked, mut chat, note, packed: phase_one } = planned;
        let packing = chat.segments.clone();
        let work_bytes = packing.iter().map(|segment| segment.text.len()).sum::<usize>();
        let placed = super::enter_core(py, work_bytes, || {
            place_summaries(core, &packing, &mut conversation, &mut chat, budget, &placing, accounting, &settings.hook)
        });
        let (pack, mut lineage) = match placed {
            Ok(placed) => placed,
            Err(error) => {
                // Nothing was changed: the summaries can be finished again.
                drop(placing);
                let planned = Planned { linked, chat, packed: phase_one, note };
                *pending = Some(Pending { conversation, layout, planned, runs, budget, accounting, settings });
                return Err(packer.interrupted(error));
            }
        };
        drop(pending);
        // The lineage by the caller's messages (an Anthropic message's units share its number).
        for (_, lineage) in &mut lineage {
            lineage.messages =
                lineage.messages.iter().filter_map(|&unit| conversation.get(unit)).map(|m| m.number).collect();
            lineage.messages.dedup();
        }
        let planned = Planned { linked, chat, packed: pack, note };
        packed_chat(py, &layout, &conversation, planned, core.policy().separator.clone(), &lineage)
    }
}

fn finished() -> PyErr {
    SchedError::InvalidArgument("these summaries were finished already".to_owned()).into()
}
