//! The summary step's two phases for `ctxsched.Scheduler` (the hooks themselves run in Python, between them).

use std::collections::BTreeSet;

use pyo3::prelude::*;

use super::convert::AmountArg;
use super::enter_core;
use super::packer::{core_segments, PyPacker};
use super::result::{Inputs, PyPackResult};
use super::segment::PySegment;
use super::tokenizer::TokenLimit;
use crate::packer::{Summary, SummaryRun, SUMMARY_PREFIX};
use crate::segment::Segment;

/// Phase 1: the runs of evicted segments to summarise, as (member indices, tokens the summary may take, a
/// hash of the members' texts);
/// `reserve` (tokens, or a fraction of the usable budget) is what all summaries may take.
/// Only segments whose kind is in `kinds` and that allow it (`Segment(summarize=True)`) are summarised.
#[pyfunction]
#[pyo3(signature = (packer, segments, budget, kinds, reserve, merge, now = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_summaries(
    py: Python<'_>,
    packer: PyRef<'_, PyPacker>,
    segments: &Bound<'_, PyAny>,
    budget: TokenLimit,
    kinds: BTreeSet<String>,
    reserve: AmountArg,
    merge: bool,
    now: Option<f64>,
) -> PyResult<Vec<(Vec<usize>, usize, String)>> {
    let usable = budget.0.saturating_sub(packer.core().policy().reserve_output);
    let reserve = reserve.0.resolve(usable);
    let (inputs, core) = core_segments(segments)?;
    let allowed: Vec<bool> = match &inputs {
        Inputs::Segments(inputs) => inputs.iter().map(|input| input.get().summarizable).collect(),
        Inputs::Chat(_) => vec![true; core.len()],
    };
    let work_bytes = core.iter().map(|segment| segment.text.len()).sum::<usize>();
    let allocator = packer.core();
    let plan = || allocator.plan_summaries(&core, budget.0, &kinds, &allowed, reserve, merge, now);
    let runs = enter_core(py, work_bytes, plan).map_err(|error| packer.interrupted(error))?;
    Ok(runs
        .into_iter()
        .map(|run| {
            let fingerprint = format!("{:032x}", run.fingerprint(&core));
            (run.members, run.max_tokens, fingerprint)
        })
        .collect())
}

/// Phase 2: pack with each run's summary in place. `runs` holds, per run, (members, tokens it may take,
/// the hook's text or `None` when it failed, what went wrong); `truncate`: a failed run's own text, cut,
/// stands in (else it stays evicted); `hook` names the hook. Each summary `Segment` records its lineage.
#[pyfunction]
#[pyo3(signature = (packer, segments, budget, runs, truncate, hook, now = None))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub(crate) fn pack_summarised(
    py: Python<'_>,
    packer: PyRef<'_, PyPacker>,
    segments: &Bound<'_, PyAny>,
    budget: TokenLimit,
    runs: Vec<(Vec<usize>, usize, Option<String>, Option<String>)>,
    truncate: bool,
    hook: String,
    now: Option<f64>,
) -> PyResult<PyPackResult> {
    let (inputs, core) = core_segments(segments)?;
    let Inputs::Segments(mut inputs) = inputs else {
        return Err(pyo3::exceptions::PyTypeError::new_err("segments must be a list of Segment"));
    };
    let plans: Vec<Summary> = runs
        .into_iter()
        .map(|(members, max_tokens, text, failure)| {
            let first = members.first().and_then(|&member| core.get(member));
            let segment = text.zip(first).map(|(text, first)| {
                Segment::new(format!("{SUMMARY_PREFIX}{}", first.id), crate::chat::SUMMARY_KIND, text)
            });
            let run = SummaryRun { members, max_tokens };
            Summary { run, segment, failure, truncate_on_failure: truncate, hook: hook.clone() }
        })
        .collect();
    let work_bytes = core.iter().map(|segment| segment.text.len()).sum::<usize>();
    let allocator = packer.core();
    let summarised = enter_core(py, work_bytes, || allocator.pack_summarised(&core, budget.0, &plans, now))
        .map_err(|error| packer.interrupted(error))?;
    let mut all: Vec<Segment> = core.to_vec();
    for extra in &summarised.extras {
        inputs.push(Py::new(py, summary_segment(py, extra, &core, &plans)?)?);
        all.push(extra.clone());
    }
    let separator = packer.core().policy().separator.clone();
    Ok(PyPackResult::new(Inputs::Segments(inputs), all.into(), summarised.packed, separator))
}

/// A placed summary as a `Segment`, with its lineage: the ids it replaces, the hook, depth 1, its size,
/// and what went wrong when a cut of the run's own text stands in.
fn summary_segment(py: Python<'_>, extra: &Segment, core: &[Segment], plans: &[Summary]) -> PyResult<PySegment> {
    let first_id = |plan: &&Summary| plan.run.members.first().and_then(|&member| core.get(member)).map(|s| &s.id);
    let plan = plans.iter().find(|plan| first_id(plan).is_some_and(|id| format!("{SUMMARY_PREFIX}{id}") == *extra.id));
    let metadata = pyo3::types::PyDict::new(py);
    if let Some(plan) = plan {
        let sources: Vec<&str> =
            plan.run.members.iter().filter_map(|&member| core.get(member)).map(|s| &*s.id).collect();
        metadata.set_item("summarises", sources)?;
        metadata.set_item("hook", &plan.hook)?;
        metadata.set_item("depth", 1)?;
        metadata.set_item("max_tokens", plan.run.max_tokens)?;
        metadata.set_item("fallback", plan.failure.as_deref())?;
    }
    let mut segment = PySegment::from_core(extra.clone(), None);
    segment.explicit_id = Some(extra.id.to_string());
    segment.metadata = Some(metadata.into_any().unbind());
    Ok(segment)
}
