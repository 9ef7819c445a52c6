//! `ctxsched._core.Packer`: the allocator behind `ctxsched.Scheduler`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::convert::{AmountArg, TruncationArg};
use super::enter_core;
use super::result::{Inputs, PyPackResult};
use super::segment::PySegment;
use super::tokenizer::{PyTokenizer, TokenLimit};
use crate::error::SchedError;
use crate::packer::Restate;
use crate::packer::{Packer, TruncatorFailure, Truncators};
use crate::policy::{Policy, Quota};
use crate::segment::Segment;
use crate::trust::{Fence, Patterns, TrustPolicy};

/// A tokenizer (or none, for counts computed in Python), a policy in core form, and the count memo.
#[pyclass(frozen, name = "Packer", module = "ctxsched._core")]
pub(crate) struct PyPacker {
    inner: Packer,
    /// The same truncators the packer calls, to re-raise an exception that must not be swallowed.
    truncators: Option<Arc<PyTruncators>>,
}

impl PyPacker {
    /// The core packer.
    pub(crate) fn core(&self) -> &Packer {
        &self.inner
    }

    /// `error`, or the `KeyboardInterrupt`/`SystemExit` a truncator raised that caused it.
    pub(crate) fn interrupted(&self, error: PyErr) -> PyErr {
        self.truncators.as_ref().and_then(|truncators| truncators.take_interrupt()).unwrap_or(error)
    }
}

#[pymethods]
impl PyPacker {
    #[new]
    #[pyo3(signature = (
        tokenizer, *, reserve_output = 0, quotas = BTreeMap::new(), segment_caps = BTreeMap::new(),
        priorities = BTreeMap::new(), default_priority = 0, truncation = BTreeMap::new(), reorder = BTreeSet::new(),
        separator = "\n\n", elision_marker = crate::truncation::DEFAULT_MARKER, truncators = None, joined = true,
        max_age = None, stale_penalty = 0, fence = "delimit", demote_pins = false, quarantine = false,
        builtin_patterns = true, patterns = Vec::new(), untrusted_kinds = BTreeSet::new(), half_life = None,
        notice = false, restate = None, as_of = false
    ))]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn py_new(
        tokenizer: Option<PyRef<'_, PyTokenizer>>,
        reserve_output: usize,
        quotas: BTreeMap<String, (AmountArg, Option<AmountArg>)>,
        segment_caps: BTreeMap<String, AmountArg>,
        priorities: BTreeMap<String, i64>,
        default_priority: i64,
        truncation: BTreeMap<String, TruncationArg>,
        reorder: BTreeSet<String>,
        separator: &str,
        elision_marker: &str,
        truncators: Option<Bound<'_, PyDict>>,
        joined: bool,
        max_age: Option<f64>,
        stale_penalty: i64,
        fence: &str,
        demote_pins: bool,
        quarantine: bool,
        builtin_patterns: bool,
        patterns: Vec<(String, String)>,
        untrusted_kinds: BTreeSet<String>,
        half_life: Option<f64>,
        notice: bool,
        restate: Option<(Vec<String>, String, usize)>,
        as_of: bool,
    ) -> PyResult<Self> {
        let fence = Fence::parse(fence).ok_or_else(|| {
            SchedError::InvalidPolicy(format!("fence must be 'delimit', 'datamark' or 'none', not {fence:?}"))
        })?;
        let patterns = Arc::new(Patterns::new(builtin_patterns, &patterns)?);
        let trust = TrustPolicy { fence, demote_pins, quarantine, patterns, untrusted_kinds, half_life, notice };
        let policy = Policy {
            reserve_output,
            quotas: quotas
                .into_iter()
                .map(|(kind, (min, max))| (kind, Quota { min: min.0, max: max.map(|max| max.0) }))
                .collect(),
            segment_caps: segment_caps.into_iter().map(|(kind, cap)| (kind, cap.0)).collect(),
            priorities,
            default_priority,
            truncation: truncation.into_iter().map(|(kind, truncation)| (kind, truncation.0)).collect(),
            reorder,
            separator: separator.to_owned(),
            elision_marker: elision_marker.to_owned(),
            joined,
            max_age,
            stale_penalty,
            as_of,
            trust,
            restate: restate.map(|(ids, kind, after_tokens)| Restate { ids, kind, after_tokens }),
        };
        let builtin = tokenizer.as_ref().map(|tokenizer| tokenizer.inner);
        let mut inner = Packer::new(builtin, policy);
        let mut shared = None;
        if let (Some(truncators), Some(tokenizer)) = (truncators, tokenizer) {
            let mut functions = BTreeMap::new();
            for (name, function) in truncators.iter() {
                let name: String = name.extract().map_err(|_| PyTypeError::new_err("truncator names must be str"))?;
                if !function.is_callable() {
                    return Err(PyTypeError::new_err(format!("truncator {name:?} must be callable")));
                }
                functions.insert(name, function.unbind());
            }
            let truncators =
                Arc::new(PyTruncators { functions, tokenizer: tokenizer.into(), interrupt: Mutex::new(None) });
            inner = inner.with_truncators(Box::new(Arc::clone(&truncators)));
            shared = Some(truncators);
        }
        Ok(Self { inner, truncators: shared })
    }

    /// Texts whose token counts are memoised.
    #[getter]
    fn memo_size(&self) -> usize {
        self.inner.memo_len()
    }

    #[getter]
    fn separator(&self) -> &str {
        &self.inner.policy().separator
    }

    /// The total tokens of `segments` (texts and overheads) if at most `limit`, else `None`.
    fn total_up_to(&self, py: Python<'_>, segments: &Bound<'_, PyAny>, limit: TokenLimit) -> PyResult<Option<usize>> {
        let (_, core) = core_segments(segments)?;
        let work_bytes = core.iter().map(|segment| segment.text.len()).sum::<usize>();
        enter_core(py, work_bytes, || Ok(self.inner.total_up_to(&core, limit.0)))
    }

    #[pyo3(signature = (segments, budget, counts = None, separator_tokens = 0, *, caps = true, now = None))]
    #[allow(clippy::too_many_arguments)]
    fn pack(
        &self,
        py: Python<'_>,
        segments: &Bound<'_, PyAny>,
        budget: TokenLimit,
        counts: Option<Vec<usize>>,
        separator_tokens: usize,
        caps: bool,
        now: Option<f64>,
    ) -> PyResult<PyPackResult> {
        let (inputs, core) = core_segments(segments)?;
        let work_bytes = core.iter().map(|segment| segment.text.len()).sum::<usize>();
        let external = counts.as_deref().map(|counts| (counts, separator_tokens));
        let pack = || {
            if caps {
                self.inner.pack_at(&core, budget.0, external, now)
            } else {
                self.inner.pack_without_caps(&core, budget.0, external)
            }
        };
        // A truncator raised KeyboardInterrupt or SystemExit: that exception, not a summary of it.
        let packed = enter_core(py, work_bytes.max(core.len() * 64), pack).map_err(|error| self.interrupted(error))?;
        Ok(PyPackResult::new(inputs, core, packed, self.inner.policy().separator.clone()))
    }
}

/// The user's truncation functions, called as `function(text, max_tokens, tokenizer)`. Only here does the
/// core call back into Python, with the GIL taken for the call; any failure becomes a reason string,
/// which the packer records while it falls back to `auto`.
struct PyTruncators {
    functions: BTreeMap<String, Py<PyAny>>,
    tokenizer: Py<PyTokenizer>,
    /// An exception that stops packing (not an `Exception`: `KeyboardInterrupt`, `SystemExit`).
    interrupt: Mutex<Option<PyErr>>,
}

impl PyTruncators {
    fn take_interrupt(&self) -> Option<PyErr> {
        self.interrupt.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Truncators for PyTruncators {
    fn has(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    fn names(&self) -> Vec<String> {
        self.functions.keys().cloned().collect()
    }

    fn truncate(&self, name: &str, text: &str, max_tokens: usize) -> Result<String, TruncatorFailure> {
        let failed = |reason: String| TruncatorFailure::Failed(reason);
        let function = self.functions.get(name).ok_or_else(|| failed("is not registered".to_owned()))?;
        Python::attach(|py| {
            let result = match function.bind(py).call1((text, max_tokens, self.tokenizer.bind(py))) {
                Ok(result) => result,
                Err(error) if error.is_instance_of::<PyException>(py) => {
                    return Err(failed(format!("raised {}", describe(py, &error))))
                }
                Err(error) => {
                    *self.interrupt.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
                    return Err(TruncatorFailure::Interrupt);
                }
            };
            let text = result.cast::<PyString>().map_err(|_| {
                let type_name = result.get_type().name().map_or_else(|_| "?".to_owned(), |name| name.to_string());
                failed(format!("returned {type_name}, not str"))
            })?;
            text.to_str().map(str::to_owned).map_err(|_| failed("returned a str that is not valid Unicode".to_owned()))
        })
    }
}

/// `TypeName: message` for a Python exception.
fn describe(py: Python<'_>, error: &PyErr) -> String {
    let type_name = error.get_type(py).name().map_or_else(|_| "?".to_owned(), |name| name.to_string());
    format!("{type_name}: {}", error.value(py))
}

/// The `Segment`s of a Python list, and their core copies (ids defaulted to `{kind}-{index}`).
pub(super) fn core_segments(segments: &Bound<'_, PyAny>) -> PyResult<(Inputs, Arc<[Segment]>)> {
    let list = segments.cast::<PyList>().map_err(|_| PyTypeError::new_err("segments must be a list of Segment"))?;
    let mut inputs: Vec<Py<PySegment>> = Vec::with_capacity(list.len());
    let mut core: Vec<Segment> = Vec::with_capacity(list.len());
    for (index, item) in list.iter().enumerate() {
        let segment = item.cast_into::<PySegment>().map_err(|error| {
            PyTypeError::new_err(format!(
                "segments[{index}] must be a ctxsched.Segment, not {}",
                error.into_inner().get_type().name().map_or_else(|_| "?".to_owned(), |name| name.to_string())
            ))
        })?;
        let mut copy = segment.get().core.clone();
        if segment.get().explicit_id.is_none() {
            copy.id = format!("{}-{index}", copy.kind).into();
        }
        core.push(copy);
        inputs.push(segment.unbind());
    }
    Ok((Inputs::Segments(inputs), core.into()))
}
