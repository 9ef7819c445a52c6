//! The summary step's two phases for `ctxsched.Scheduler` (the hooks themselves run in Python, between them).

use std::collections::BTreeSet;

use pyo3::prelude::*;

use super::convert::AmountArg;
use super::enter_core;
use super::packer::{core_segments, PyPacker};
use super::result::{Inputs, PyPackResult};
use super::segment::PySegment;
use super::tokenizer::TokenLimit;
use crate::packer::{Summary, SummaryRun};

/// Phase 1: the runs of evicted segments to summarise, as (member indices, tokens the summary may take, a
/// hash of the members' texts);
/// `reserve` (tokens, or a fraction of the usable budget) is what all summaries may take.
/// Only segments whose kind is in `kinds` and that allow it (`Segment(summarize=True)`) are summarised.
#[pyfunction]
pub(crate) fn plan_summaries(
    py: Python<'_>,
    packer: PyRef<'_, PyPacker>,
    segments: &Bound<'_, PyAny>,
    budget: TokenLimit,
    kinds: BTreeSet<String>,
    reserve: AmountArg,
    merge: bool,
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
    let plan = || allocator.plan_summaries(&core, budget.0, &kinds, &allowed, reserve, merge);
    let runs = enter_core(py, work_bytes, plan).map_err(|error| packer.interrupted(error))?;
    Ok(runs
        .into_iter()
        .map(|run| {
            let fingerprint = format!("{:032x}", run.fingerprint(&core));
            (run.members, run.max_tokens, fingerprint)
        })
        .collect())
}

/// Phase 2: pack with each run's summary in place. `summaries` holds, per run, (members, tokens it may take,
/// the summary `Segment` or `None` when the hook failed, what went wrong, whether to cut the run's own text
/// instead of leaving it evicted, the hook's name).
#[pyfunction]
#[allow(clippy::type_complexity)]
pub(crate) fn pack_summarised(
    py: Python<'_>,
    packer: PyRef<'_, PyPacker>,
    segments: &Bound<'_, PyAny>,
    budget: TokenLimit,
    summaries: Vec<(Vec<usize>, usize, Option<Py<PySegment>>, Option<String>, bool, String)>,
) -> PyResult<PyPackResult> {
    let (inputs, core) = core_segments(segments)?;
    let Inputs::Segments(mut inputs) = inputs else {
        return Err(pyo3::exceptions::PyTypeError::new_err("segments must be a list of Segment"));
    };
    let mut given = Vec::with_capacity(summaries.len());
    let mut plans = Vec::with_capacity(summaries.len());
    for (members, max_tokens, segment, failure, truncate_on_failure, hook) in summaries {
        let run = SummaryRun { members, max_tokens };
        let core_segment = segment.as_ref().map(|segment| segment.get().core.clone());
        plans.push(Summary { run, segment: core_segment, failure, truncate_on_failure, hook });
        given.push(segment);
    }
    let work_bytes = core.iter().map(|segment| segment.text.len()).sum::<usize>();
    let allocator = packer.core();
    let summarised = enter_core(py, work_bytes, || allocator.pack_summarised(&core, budget.0, &plans))
        .map_err(|error| packer.interrupted(error))?;
    // The summaries placed, as segments: the hook's own `Segment`, or one for the cut that stood in.
    let mut by_id = given.into_iter().flatten();
    let mut all: Vec<crate::segment::Segment> = core.to_vec();
    for extra in &summarised.extras {
        let own = by_id.by_ref().find(|segment| segment.get().core.id == extra.id);
        inputs.push(match own {
            Some(own) => own,
            None => Py::new(py, stand_in(py, extra, &core, &plans)?)?,
        });
        all.push(extra.clone());
    }
    let separator = packer.core().policy().separator.clone();
    Ok(PyPackResult::new(Inputs::Segments(inputs), all.into(), summarised.packed, separator))
}

/// The segment of a cut that stood in for a failed hook, with the lineage a hook's summary has.
fn stand_in(
    py: Python<'_>,
    extra: &crate::segment::Segment,
    core: &[crate::segment::Segment],
    plans: &[Summary],
) -> PyResult<PySegment> {
    let first_id = |plan: &&Summary| plan.run.members.first().and_then(|&member| core.get(member)).map(|s| &s.id);
    let plan = plans.iter().find(|plan| first_id(plan).is_some_and(|id| format!("summary-{id}") == *extra.id));
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
