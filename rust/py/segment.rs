//! `ctxsched.Segment`: a frozen, cheap-to-build Python object around the core's plain `Segment`.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use pyo3::types::PyDateTime;

use super::convert::{text_arg, type_error, TruncationArg};
use super::freshness::{datetime, FreshnessArgs, SegmentError};
use crate::segment::{Pin, Segment, Truncation};

#[pyclass(frozen, name = "Segment", module = "ctxsched._core")]
pub(crate) struct PySegment {
    pub(crate) core: Segment,
    /// `None` until `pack` names it `{kind}-{index}`.
    pub(crate) explicit_id: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) summarizable: bool,
    pub(crate) metadata: Option<Py<PyAny>>,
}

fn pin_arg(value: Option<&Bound<'_, PyAny>>) -> PyResult<Pin> {
    let Some(value) = value.filter(|value| !value.is_none()) else {
        return Ok(Pin::None);
    };
    let name = value.cast::<PyString>().map_err(|_| type_error(value, "pin", "'head', 'tail' or None"))?;
    match name.to_str()? {
        "head" => Ok(Pin::Head),
        "tail" => Ok(Pin::Tail),
        other => Err(PyValueError::new_err(format!("pin must be 'head', 'tail' or None, not {other:?}"))),
    }
}

impl PySegment {
    /// A segment the core made (a conversation's), with its id given.
    pub(crate) fn from_core(core: Segment, role: Option<String>) -> Self {
        let explicit_id = Some(core.id.to_string());
        Self { core, explicit_id, role, summarizable: false, metadata: None }
    }
}

#[pymethods]
impl PySegment {
    #[new]
    #[pyo3(signature = (
        text, *, id = None, kind = "history", role = None, priority = None, pin = None, required = false,
        group = None, truncate = None, min_tokens = 0, summarizable = false, relevance = 0.0, trust = None,
        metadata = None, overhead = 0, stub = None, observed_at = None, expires_at = None, ttl = None, key = None,
        version = 0, age = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        text: &Bound<'_, PyAny>,
        id: Option<String>,
        kind: &str,
        role: Option<String>,
        priority: Option<i64>,
        pin: Option<&Bound<'_, PyAny>>,
        required: bool,
        group: Option<String>,
        truncate: Option<TruncationArg>,
        min_tokens: usize,
        summarizable: bool,
        relevance: f64,
        trust: Option<&str>,
        metadata: Option<Py<PyAny>>,
        overhead: usize,
        stub: Option<String>,
        observed_at: Option<&Bound<'_, PyAny>>,
        expires_at: Option<&Bound<'_, PyAny>>,
        ttl: Option<&Bound<'_, PyAny>>,
        key: Option<String>,
        version: i64,
        age: Option<u32>,
    ) -> PyResult<Self> {
        let text: Arc<str> = Arc::from(text_arg(text, "text")?.as_ref());
        if kind.is_empty() {
            return Err(PyValueError::new_err("kind must be a non-empty str"));
        }
        if !relevance.is_finite() {
            return Err(PyValueError::new_err(format!("relevance must be a finite number, not {relevance}")));
        }
        let who =
            id.as_deref().map_or_else(|| format!("of kind {kind:?} ({})", preview(&text)), |id| format!("{id:?}"));
        let untrusted = match trust {
            None => None,
            Some("trusted") => Some(false),
            Some("untrusted") => Some(true),
            Some(other) => {
                let problem = format!("segment {who}: trust must be 'trusted' or 'untrusted', not {other:?}");
                return Err(SegmentError::new_err(problem));
            }
        };
        let mut core = Segment::new(id.clone().unwrap_or_default(), kind, text);
        core.priority = priority;
        core.pin = pin_arg(pin)?;
        core.required = required;
        core.group = group.map(Arc::from);
        core.truncation = truncate.map(|truncate| truncate.0);
        core.min_tokens = min_tokens;
        core.relevance = relevance;
        core.overhead = overhead;
        core.stub = stub.map(Arc::from);
        core.untrusted = untrusted;
        core.age = age;
        core.freshness = FreshnessArgs { observed_at, expires_at, ttl, key, version }.check(&who)?;
        Ok(Self { core, explicit_id: id, role, summarizable, metadata })
    }

    #[getter]
    fn text(&self) -> &str {
        &self.core.text
    }
    #[getter]
    fn id(&self) -> Option<&str> {
        self.explicit_id.as_deref()
    }
    #[getter]
    fn kind(&self) -> &str {
        &self.core.kind
    }
    #[getter]
    fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }
    #[getter]
    fn priority(&self) -> Option<i64> {
        self.core.priority
    }
    #[getter]
    fn pin(&self) -> Option<&'static str> {
        match self.core.pin {
            Pin::None => None,
            Pin::Head => Some("head"),
            Pin::Tail => Some("tail"),
        }
    }
    #[getter]
    fn required(&self) -> bool {
        self.core.required
    }
    #[getter]
    fn group(&self) -> Option<&str> {
        self.core.group.as_deref()
    }
    #[getter]
    fn truncate(&self) -> Option<&str> {
        self.core.truncation.as_ref().map(Truncation::name)
    }
    #[getter]
    fn min_tokens(&self) -> usize {
        self.core.min_tokens
    }
    #[getter]
    fn overhead(&self) -> usize {
        self.core.overhead
    }
    #[getter]
    fn stub(&self) -> Option<&str> {
        self.core.stub.as_deref()
    }
    #[getter]
    fn summarizable(&self) -> bool {
        self.summarizable
    }
    #[getter]
    fn relevance(&self) -> f64 {
        self.core.relevance
    }
    #[getter]
    fn trust(&self) -> Option<&'static str> {
        self.core.untrusted.map(|untrusted| if untrusted { "untrusted" } else { "trusted" })
    }
    /// When its content was observed, as an aware datetime in UTC.
    #[getter]
    fn observed_at<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDateTime>>> {
        datetime(py, self.core.freshness.observed_at)
    }
    /// When it stops being true (from `expires_at`, or `observed_at` plus `ttl`).
    #[getter]
    fn expires_at<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDateTime>>> {
        datetime(py, self.core.freshness.expires_at)
    }
    #[getter]
    fn age(&self) -> Option<u32> {
        self.core.age
    }
    #[getter]
    fn key(&self) -> Option<&str> {
        self.core.freshness.key.as_deref()
    }
    #[getter]
    fn version(&self) -> i64 {
        self.core.freshness.version
    }
    #[getter]
    fn metadata(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.metadata.as_ref().map(|metadata| metadata.clone_ref(py))
    }

    fn __repr__(&self) -> String {
        let id = self.explicit_id.as_deref().map(|id| format!("id={id:?}, ")).unwrap_or_default();
        format!("Segment({}, {id}kind={:?})", preview(&self.core.text), self.core.kind)
    }
}

/// The start of a text, quoted, for messages.
fn preview(text: &str) -> String {
    let start: String = text.chars().take(40).collect();
    let more = if text.chars().nth(40).is_some() { "…" } else { "" };
    format!("{start:?}{more}")
}
