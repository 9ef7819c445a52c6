//! A segment's freshness from Python: times as timezone-aware datetimes or seconds since the epoch, a
//! time to live as a timedelta or seconds, a memory key and version. Checked here, once, naming the segment.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDateTime, PyDelta, PyTzInfo};

use crate::segment::Freshness;

pyo3::import_exception!(ctxsched.exceptions, SegmentError);

/// What `Segment(...)` was given about freshness.
pub(crate) struct FreshnessArgs<'a, 'py> {
    pub(crate) observed_at: Option<&'a Bound<'py, PyAny>>,
    pub(crate) expires_at: Option<&'a Bound<'py, PyAny>>,
    pub(crate) ttl: Option<&'a Bound<'py, PyAny>>,
    pub(crate) key: Option<String>,
    pub(crate) version: i64,
}

impl FreshnessArgs<'_, '_> {
    /// The checked freshness; `who` names the segment in errors.
    pub(crate) fn check(self, who: &str) -> PyResult<Freshness> {
        let error = |problem: String| SegmentError::new_err(format!("segment {who}: {problem}"));
        let observed_at = moment(self.observed_at, "observed_at").map_err(error)?;
        let mut expires_at = moment(self.expires_at, "expires_at").map_err(error)?;
        if let Some(ttl) = seconds(self.ttl).map_err(error)? {
            if expires_at.is_some() {
                return Err(error("give expires_at or ttl, not both".to_owned()));
            }
            let Some(observed) = observed_at else {
                return Err(error("a ttl counts from observed_at, which is missing".to_owned()));
            };
            expires_at = Some(observed + ttl);
        }
        if let (Some(observed), Some(expires)) = (observed_at, expires_at) {
            if expires < observed {
                return Err(error(format!(
                    "expires_at ({}) is before observed_at ({})",
                    crate::packer::moment(expires),
                    crate::packer::moment(observed)
                )));
            }
        }
        if self.key.as_deref() == Some("") {
            return Err(error("key must be a non-empty str".to_owned()));
        }
        Ok(Freshness { observed_at, expires_at, key: self.key.map(Arc::from), version: self.version })
    }
}

/// A time as seconds since the epoch: an aware datetime, or a finite number of seconds.
fn moment(value: Option<&Bound<'_, PyAny>>, name: &str) -> Result<Option<f64>, String> {
    let Some(value) = value.filter(|value| !value.is_none()) else { return Ok(None) };
    if let Ok(time) = value.cast::<PyDateTime>() {
        let offset = time.call_method0("utcoffset").map_err(|error| error.to_string())?;
        if offset.is_none() {
            return Err(format!("{name} is a naive datetime; give it a timezone (datetime.timezone.utc, say)"));
        }
        return time.call_method0("timestamp").and_then(|stamp| stamp.extract()).map(Some).map_err(|e| e.to_string());
    }
    finite(value, name, "a timezone-aware datetime or seconds since the epoch").map(Some)
}

/// A duration in seconds, at least 0: a timedelta or a number.
fn seconds(value: Option<&Bound<'_, PyAny>>) -> Result<Option<f64>, String> {
    let Some(value) = value.filter(|value| !value.is_none()) else { return Ok(None) };
    let ttl = match value.cast::<PyDelta>() {
        Ok(delta) => {
            delta.call_method0("total_seconds").and_then(|total| total.extract()).map_err(|e| e.to_string())?
        }
        Err(_) => finite(value, "ttl", "a timedelta or a number of seconds")?,
    };
    if ttl < 0.0 {
        return Err(format!("ttl must not be negative, not {ttl} seconds"));
    }
    Ok(Some(ttl))
}

fn finite(value: &Bound<'_, PyAny>, name: &str, expected: &str) -> Result<f64, String> {
    let number = (!value.is_instance_of::<PyBool>()).then(|| value.extract::<f64>().ok()).flatten();
    match number {
        Some(number) if number.is_finite() => Ok(number),
        Some(number) => Err(format!("{name} must be finite, not {number}")),
        None => Err(format!("{name} must be {expected}, not {}", type_name(value))),
    }
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value.get_type().name().map_or_else(|_| "an unknown type".to_owned(), |name| name.to_string())
}

/// A time (seconds since the epoch) as an aware datetime in UTC, for the getters.
pub(crate) fn datetime(py: Python<'_>, seconds: Option<f64>) -> PyResult<Option<Bound<'_, PyDateTime>>> {
    let Some(seconds) = seconds else { return Ok(None) };
    let utc = PyTzInfo::utc(py)?;
    PyDateTime::from_timestamp(py, seconds, Some(&utc)).map(Some)
}
