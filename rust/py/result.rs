//! `PackResult` and the objects it hands out: placed and evicted segments, decisions, usage.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::segment::PySegment;
use crate::packer::{Decision, Packed};
use crate::segment::Segment;

/// A segment as placed in the packed prompt.
#[pyclass(frozen, get_all, name = "PlacedSegment", module = "ctxsched._core")]
pub(crate) struct PyPlacedSegment {
    id: String,
    kind: String,
    role: Option<String>,
    text: String,
    tokens: usize,
    original_tokens: usize,
    action: &'static str,
    rule: &'static str,
    index: usize,
    segment: Py<PySegment>,
}

#[pymethods]
impl PyPlacedSegment {
    fn __repr__(&self) -> String {
        format!(
            "PlacedSegment(id={:?}, kind={:?}, tokens={}, action={:?})",
            self.id, self.kind, self.tokens, self.action
        )
    }
}

/// A segment that was not placed, and why.
#[pyclass(frozen, get_all, name = "EvictedSegment", module = "ctxsched._core")]
pub(crate) struct PyEvictedSegment {
    id: String,
    kind: String,
    tokens: usize,
    counted: bool,
    rule: &'static str,
    reason: String,
    index: usize,
    segment: Py<PySegment>,
}

#[pymethods]
impl PyEvictedSegment {
    fn __repr__(&self) -> String {
        format!("EvictedSegment(id={:?}, kind={:?}, rule={:?})", self.id, self.kind, self.rule)
    }
}

/// What happened to one input segment and the rule behind it.
#[pyclass(frozen, get_all, name = "Decision", module = "ctxsched._core")]
pub(crate) struct PyDecision {
    id: String,
    kind: String,
    index: usize,
    action: &'static str,
    rule: &'static str,
    detail: String,
    tokens_before: usize,
    counted: bool,
    tokens_after: usize,
    strategy: Option<String>,
    fallback: Option<String>,
    flags: Vec<String>,
    untrusted: bool,
}

impl PyDecision {
    /// The decision about the segment `id` of kind `kind`.
    pub(crate) fn new(decision: &Decision, id: String, kind: String) -> Self {
        Self {
            id,
            kind,
            index: decision.index,
            action: decision.action(),
            rule: decision.rule(),
            detail: decision.detail(),
            tokens_before: decision.tokens_before,
            counted: decision.counted,
            tokens_after: decision.tokens_after,
            strategy: decision.strategy.clone(),
            fallback: decision.fallback.clone(),
            flags: decision.flags.clone(),
            untrusted: decision.untrusted,
        }
    }
}

#[pymethods]
impl PyDecision {
    fn __repr__(&self) -> String {
        format!("Decision(id={:?}, action={:?}, rule={:?})", self.id, self.action, self.rule)
    }
}

/// Tokens of one kind against its quota.
#[pyclass(frozen, get_all, name = "KindUsage", module = "ctxsched._core")]
pub(crate) struct PyKindUsage {
    tokens: usize,
    kept: usize,
    evicted: usize,
    min: usize,
    max: Option<usize>,
}

#[pymethods]
impl PyKindUsage {
    fn __repr__(&self) -> String {
        format!(
            "KindUsage(tokens={}, kept={}, evicted={}, min={}, max={})",
            self.tokens,
            self.kept,
            self.evicted,
            self.min,
            self.max.map_or_else(|| "None".to_owned(), |max| max.to_string())
        )
    }
}

/// Where one placed segment sits: its token offset (separators included), its tokens, its region (`head`,
/// `body` or `tail`), and whether it counts as high-priority for the placement score.
#[pyclass(frozen, get_all, name = "Placement", module = "ctxsched._core")]
pub(crate) struct PyPlacement {
    id: String,
    kind: String,
    index: usize,
    offset: usize,
    tokens: usize,
    region: &'static str,
    high_priority: bool,
}

#[pymethods]
impl PyPlacement {
    fn __repr__(&self) -> String {
        format!("Placement(id={:?}, region={:?}, offset={}, tokens={})", self.id, self.region, self.offset, self.tokens)
    }
}

/// The segments a pack was given: the caller's `Segment` objects, or a conversation's segments (made into
/// `Segment` objects only when asked for), with the role of each.
pub(crate) enum Inputs {
    Segments(Vec<Py<PySegment>>),
    Chat(Arc<[&'static str]>),
}

/// The packed prompt: placed segments in order, evicted ones, decisions, exact tokens, usage.
#[pyclass(frozen, name = "PackResult", module = "ctxsched._core")]
pub(crate) struct PyPackResult {
    inputs: Inputs,
    core: Arc<[Segment]>,
    packed: Packed,
    separator: String,
    /// A conversation's segments' metadata (a summary's lineage), by position.
    metadata: Vec<(usize, Py<PyAny>)>,
}

impl PyPackResult {
    pub(crate) fn new(inputs: Inputs, core: Arc<[Segment]>, packed: Packed, separator: String) -> Self {
        // What the packer added after the inputs (a restated task) is a segment of the result too.
        let core = if packed.appended.is_empty() {
            core
        } else {
            core.iter().chain(packed.appended.iter().map(|appended| &appended.segment)).cloned().collect()
        };
        Self { inputs, core, packed, separator, metadata: Vec::new() }
    }

    /// The result with `metadata` for a conversation's segments, by position.
    pub(crate) fn with(self, metadata: Vec<(usize, Py<PyAny>)>) -> Self {
        Self { metadata, ..self }
    }

    fn decision_of(&self, index: usize) -> Option<&Decision> {
        self.packed.decisions.get(index)
    }

    fn py_decision(&self, decision: &Decision) -> PyDecision {
        PyDecision::new(decision, self.id(decision.index), self.kind(decision.index))
    }

    fn id(&self, index: usize) -> String {
        self.core.get(index).map(|segment| segment.id.to_string()).unwrap_or_default()
    }

    fn kind(&self, index: usize) -> String {
        self.core.get(index).map(|segment| segment.kind.to_string()).unwrap_or_default()
    }

    fn input(&self, py: Python<'_>, index: usize) -> Option<Py<PySegment>> {
        match &self.inputs {
            Inputs::Segments(inputs) if index < inputs.len() => inputs.get(index).map(|segment| segment.clone_ref(py)),
            Inputs::Segments(_) => Py::new(py, PySegment::from_core(self.core.get(index)?.clone(), None)).ok(),
            Inputs::Chat(roles) => {
                let (core, role) = (self.core.get(index)?, roles.get(index)?);
                let mut segment = PySegment::from_core(core.clone(), Some((*role).to_owned()));
                let metadata = self.metadata.iter().find(|(at, _)| *at == index);
                segment.metadata = metadata.map(|(_, metadata)| metadata.clone_ref(py));
                Py::new(py, segment).ok()
            }
        }
    }
}

#[pymethods]
impl PyPackResult {
    /// Placed segments in final order.
    #[getter]
    fn segments(&self, py: Python<'_>) -> Vec<PyPlacedSegment> {
        self.packed
            .order
            .iter()
            .filter_map(|&index| {
                let decision = self.decision_of(index)?;
                let segment = self.input(py, index)?;
                Some(PyPlacedSegment {
                    id: self.id(index),
                    kind: self.kind(index),
                    role: segment.get().role.clone(),
                    text: self.packed.text_of(&self.core, index)?.to_owned(),
                    tokens: decision.tokens_after,
                    original_tokens: decision.tokens_before,
                    action: decision.action(),
                    rule: decision.rule(),
                    index,
                    segment,
                })
            })
            .collect()
    }

    /// Segments not placed, in input order.
    #[getter]
    fn evicted(&self, py: Python<'_>) -> Vec<PyEvictedSegment> {
        self.packed
            .decisions
            .iter()
            .filter(|decision| decision.outcome.is_err())
            .filter_map(|decision| {
                Some(PyEvictedSegment {
                    id: self.id(decision.index),
                    kind: self.kind(decision.index),
                    tokens: decision.tokens_before,
                    counted: decision.counted,
                    rule: decision.rule(),
                    reason: decision.detail(),
                    index: decision.index,
                    segment: self.input(py, decision.index)?,
                })
            })
            .collect()
    }

    /// One decision per input segment, in input order.
    #[getter]
    fn decisions(&self) -> Vec<PyDecision> {
        self.packed.decisions.iter().map(|decision| self.py_decision(decision)).collect()
    }

    /// The decision about input segment `index`.
    ///
    /// Raises:
    ///     `IndexError`: no such segment.
    fn decision(&self, index: usize) -> PyResult<PyDecision> {
        let decision = self.decision_of(index).ok_or_else(|| {
            pyo3::exceptions::PyIndexError::new_err(format!("no segment {index}: the pack had {}", self.core.len()))
        })?;
        Ok(self.py_decision(decision))
    }

    /// Each placed segment's place, in prompt order.
    #[getter]
    fn placement(&self) -> Vec<PyPlacement> {
        self.packed
            .placement()
            .into_iter()
            .map(|place| PyPlacement {
                id: self.id(place.index),
                kind: self.kind(place.index),
                index: place.index,
                offset: place.offset,
                tokens: place.tokens,
                region: place.region.name(),
                high_priority: place.high,
            })
            .collect()
    }

    /// The share of high-priority tokens placed in the head or the tail (`None`: none placed).
    #[getter]
    fn placement_score(&self) -> Option<f64> {
        self.packed.placement_score()
    }

    /// Exact tokens of `text()`.
    #[getter]
    fn tokens(&self) -> usize {
        self.packed.tokens
    }

    #[getter]
    fn budget(&self) -> usize {
        self.packed.budget
    }

    /// Budget minus the output reserve; `tokens` never exceeds it.
    #[getter]
    fn usable(&self) -> usize {
        self.packed.usable
    }

    /// Per-kind usage against quotas.
    #[getter]
    fn usage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (kind, usage) in &self.packed.usage {
            let value = PyKindUsage {
                tokens: usage.tokens,
                kept: usage.kept,
                evicted: usage.evicted,
                min: usage.min,
                max: usage.max,
            };
            dict.set_item(kind, Py::new(py, value)?)?;
        }
        Ok(dict)
    }

    /// The separator the prompt was packed with (and `tokens` counted with).
    #[getter]
    fn separator(&self) -> &str {
        &self.separator
    }

    /// The packed prompt as one string: placed segments joined by the packing separator (or another;
    /// `tokens` counts the packing separator's render).
    #[pyo3(signature = (separator = None))]
    fn text(&self, separator: Option<&str>) -> String {
        self.packed.render(&self.core, separator.unwrap_or(&self.separator))
    }

    /// The decision log as text a person can read at a glance.
    fn explain(&self) -> String {
        let ids: Vec<String> = self.core.iter().map(|segment| segment.id.to_string()).collect();
        self.packed.explain(&self.core, &ids)
    }

    fn __repr__(&self) -> String {
        format!(
            "PackResult(placed={}, evicted={}, tokens={}, usable={})",
            self.packed.order.len(),
            self.core.len() - self.packed.order.len(),
            self.packed.tokens,
            self.packed.usable
        )
    }
}
