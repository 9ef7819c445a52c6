//! Conversions from Python arguments, each with an error that names what was wrong and what is valid.

use std::borrow::Cow;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

use crate::policy::Amount;
use crate::segment::Truncation;
use crate::tokenizer::Encoding;
use crate::truncation::Strategy;

/// Borrow the text of a Python `str` argument.
///
/// Lone surrogates (which `str` allows and UTF-8 cannot hold) are replaced by U+FFFD the way tiktoken
/// does it: through UTF-16 with `surrogatepass`, so a surrogate *pair* spelled as two code points becomes
/// the character it encodes and only unpaired halves are replaced.
pub(crate) fn text_arg<'a>(value: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, str>> {
    let text = value.cast::<PyString>().map_err(|_| type_error(value, what, "str"))?;
    if let Ok(borrowed) = text.to_str() {
        return Ok(Cow::Borrowed(borrowed));
    }
    let utf16 = text.call_method1("encode", ("utf-16", "surrogatepass"))?;
    let repaired = utf16.call_method1("decode", ("utf-16", "replace"))?;
    Ok(Cow::Owned(repaired.extract::<String>()?))
}

/// `TypeError: {what} must be {expected}, not {type}`.
pub(crate) fn type_error(value: &Bound<'_, PyAny>, what: &str, expected: &str) -> PyErr {
    let type_name = value.get_type().name().map_or_else(|_| "?".to_owned(), |name| name.to_string());
    PyTypeError::new_err(format!("{what} must be {expected}, not {type_name}"))
}

/// An encoding name argument.
#[derive(Clone, Copy)]
pub(crate) struct EncodingArg(pub(crate) Encoding);

impl<'a, 'py> FromPyObject<'a, 'py> for EncodingArg {
    type Error = PyErr;

    fn extract(value: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let name = value.cast::<PyString>().map_err(|_| type_error(&value, "encoding", "str"))?;
        Ok(Self(name.to_str()?.parse()?))
    }
}

/// A built-in truncation strategy's name.
#[derive(Clone, Copy)]
pub(crate) struct StrategyArg(pub(crate) Strategy);

impl<'a, 'py> FromPyObject<'a, 'py> for StrategyArg {
    type Error = PyErr;

    fn extract(value: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let name = value.cast::<PyString>().map_err(|_| type_error(&value, "strategy", "str"))?;
        Ok(Self(name.to_str()?.parse()?))
    }
}

/// A segment's `truncate` option: `"none"`, a built-in strategy, or the name of a registered truncator.
#[derive(Clone)]
pub(crate) struct TruncationArg(pub(crate) Truncation);

impl<'a, 'py> FromPyObject<'a, 'py> for TruncationArg {
    type Error = PyErr;

    fn extract(value: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let name = value.cast::<PyString>().map_err(|_| type_error(&value, "truncate", "str"))?;
        let name = name.to_str()?;
        if name == "none" {
            return Ok(Self(Truncation::None));
        }
        if let Ok(strategy) = name.parse::<Strategy>() {
            return Ok(Self(Truncation::Cut(strategy)));
        }
        if name.trim().is_empty() {
            return Err(PyValueError::new_err(
                "truncate must be 'none', a built-in strategy or a truncator's name, not an empty string",
            ));
        }
        Ok(Self(Truncation::Hook(name.into())))
    }
}

/// A size: an `int` number of tokens, or a `float` fraction of the usable budget in [0, 1].
#[derive(Clone, Copy)]
pub(crate) struct AmountArg(pub(crate) Amount);

impl<'a, 'py> FromPyObject<'a, 'py> for AmountArg {
    type Error = PyErr;

    fn extract(value: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if value.is_instance_of::<PyBool>() {
            return Err(type_error(&value, "an amount", "int tokens or a float fraction"));
        }
        if value.is_instance_of::<PyInt>() {
            let tokens: i64 = value.extract()?;
            return usize::try_from(tokens)
                .map(|tokens| Self(Amount::Tokens(tokens)))
                .map_err(|_| PyValueError::new_err(format!("a token amount must be >= 0, got {tokens}")));
        }
        if value.is_instance_of::<PyFloat>() {
            let fraction: f64 = value.extract()?;
            if !(0.0..=1.0).contains(&fraction) {
                return Err(PyValueError::new_err(format!("a fraction must be within [0, 1], got {fraction}")));
            }
            return Ok(Self(Amount::Fraction(fraction)));
        }
        Err(type_error(&value, "an amount", "int tokens or a float fraction"))
    }
}
