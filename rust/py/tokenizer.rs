//! `ctxsched._core.Tokenizer` and `count_tokens`.

use std::borrow::Cow;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString, PyTuple};

use super::convert::{text_arg, type_error, EncodingArg, StrategyArg};
use super::enter_core;
use crate::tokenizer::{Encoding, Tokenizer};
use crate::truncation::{Strategy, DEFAULT_MARKER};

/// A token limit: a non-negative `int`. Values beyond what the machine can address mean "no limit".
#[derive(Clone, Copy)]
pub(crate) struct TokenLimit(pub(crate) usize);

impl<'a, 'py> FromPyObject<'a, 'py> for TokenLimit {
    type Error = PyErr;

    fn extract(value: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let int = value.cast::<PyInt>().map_err(|_| type_error(&value, "a token limit", "int"))?;
        if let Ok(limit) = int.extract::<usize>() {
            return Ok(Self(limit));
        }
        if int.lt(0)? {
            return Err(PyValueError::new_err(format!("a token limit must be >= 0, got {}", int.as_any())));
        }
        Ok(Self(usize::MAX))
    }
}

/// Exact token counting, encoding, decoding and truncation for one built-in encoding.
#[pyclass(frozen, eq, hash, name = "Tokenizer", module = "ctxsched._core")]
#[derive(PartialEq, Eq, Hash)]
pub(crate) struct PyTokenizer {
    pub(crate) inner: Tokenizer,
}

#[pymethods]
impl PyTokenizer {
    #[new]
    #[pyo3(signature = (encoding = EncodingArg(Encoding::O200kBase)), text_signature = "(encoding='o200k_base')")]
    fn py_new(encoding: EncodingArg) -> Self {
        Self { inner: Tokenizer::new(encoding.0) }
    }

    /// The encoding's name.
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.encoding().name()
    }

    /// One past the largest token id, special tokens included (tiktoken's ``n_vocab``).
    #[getter]
    fn vocab_size(&self) -> u32 {
        self.inner.vocab_size()
    }

    fn count(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<usize> {
        let text = text_arg(text, "text")?;
        enter_core(py, text.len(), || Ok(self.inner.count(&text)))
    }

    fn count_many(&self, py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
        if texts.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err("texts must be an iterable of str, not a single str"));
        }
        let items = texts
            .try_iter()
            .map_err(|_| type_error(texts, "texts", "an iterable of str"))?
            .collect::<PyResult<Vec<_>>>()?;
        let texts = items
            .iter()
            .enumerate()
            .map(|(index, item)| text_arg(item, &format!("texts[{index}]")))
            .collect::<PyResult<Vec<Cow<'_, str>>>>()?;
        let work_bytes = texts.iter().map(|text| text.len()).sum();
        let texts: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        enter_core(py, work_bytes, || Ok(self.inner.count_many(&texts)))
    }

    fn count_up_to(&self, py: Python<'_>, text: &Bound<'_, PyAny>, limit: TokenLimit) -> PyResult<Option<usize>> {
        let text = text_arg(text, "text")?;
        enter_core(py, text.len(), || Ok(self.inner.count_up_to(&text, limit.0)))
    }

    fn fits(&self, py: Python<'_>, text: &Bound<'_, PyAny>, max_tokens: TokenLimit) -> PyResult<bool> {
        let text = text_arg(text, "text")?;
        enter_core(py, text.len(), || Ok(self.inner.fits(&text, max_tokens.0)))
    }

    fn encode(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        let text = text_arg(text, "text")?;
        enter_core(py, text.len(), || Ok(self.inner.encode(&text)))
    }

    fn decode(&self, py: Python<'_>, tokens: Vec<u32>) -> PyResult<String> {
        enter_core(py, tokens.len() * 4, || self.inner.decode(&tokens))
    }

    fn decode_bytes<'py>(&self, py: Python<'py>, tokens: Vec<u32>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = enter_core(py, tokens.len() * 4, || self.inner.decode_bytes(&tokens))?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[pyo3(signature = (text, max_tokens, strategy = StrategyArg(Strategy::Head), marker = None))]
    #[pyo3(text_signature = "(self, text, max_tokens, strategy='head', marker=None)")]
    fn truncate<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        max_tokens: TokenLimit,
        strategy: StrategyArg,
        marker: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let original = text;
        let text = text_arg(original, "text")?;
        let cut = enter_core(py, text.len(), || {
            Ok(self.inner.cut(&text, max_tokens.0, strategy.0, marker.unwrap_or(DEFAULT_MARKER)).text)
        })?;
        // A text that fits comes back as the very same object (no copy, identity preserved).
        if matches!((&cut, &text), (Cow::Borrowed(cut), Cow::Borrowed(whole)) if cut.len() == whole.len()) {
            return Ok(original.clone());
        }
        Ok(PyString::new(py, &cut).into_any())
    }

    #[pyo3(signature = (text, max_tokens, strategy = StrategyArg(Strategy::Auto), marker = None))]
    #[pyo3(text_signature = "(self, text, max_tokens, strategy='auto', marker=None)")]
    fn cut(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        max_tokens: TokenLimit,
        strategy: StrategyArg,
        marker: Option<&str>,
    ) -> PyResult<PyTruncated> {
        let text = text_arg(text, "text")?;
        enter_core(py, text.len(), || {
            let cut = self.inner.cut(&text, max_tokens.0, strategy.0, marker.unwrap_or(DEFAULT_MARKER));
            Ok(PyTruncated {
                tokens: self.inner.count(&cut.text),
                text: cut.text.into_owned(),
                strategy: cut.strategy.name(),
                fallback: cut.fallback,
            })
        })
    }

    /// The bytes of every ordinary token, in rank order (tiktoken's ``token_byte_values``).
    fn token_byte_values<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        (0..self.inner.ordinary_vocab_size())
            .filter_map(|token| self.inner.token_bytes(token))
            .map(|bytes| PyBytes::new(py, bytes))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("Tokenizer({:?})", self.name())
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let args = PyTuple::new(py, [slf.get().name()])?;
        Ok((py.get_type::<Self>().into_any(), args))
    }
}

/// A text cut to a limit, with the strategy that cut it and why, if it is not the one asked for.
#[pyclass(frozen, get_all, name = "Truncated", module = "ctxsched._core")]
pub(crate) struct PyTruncated {
    text: String,
    tokens: usize,
    strategy: &'static str,
    fallback: Option<String>,
}

#[pymethods]
impl PyTruncated {
    fn __repr__(&self) -> String {
        format!("Truncated(tokens={}, strategy={:?}, fallback={:?})", self.tokens, self.strategy, self.fallback)
    }
}

/// Exact number of tokens in `text` for a built-in encoding.
#[pyfunction]
#[pyo3(signature = (text, encoding = EncodingArg(Encoding::O200kBase)))]
#[pyo3(text_signature = "(text, encoding='o200k_base')")]
pub(crate) fn count_tokens(py: Python<'_>, text: &Bound<'_, PyAny>, encoding: EncodingArg) -> PyResult<usize> {
    let tokenizer = Tokenizer::new(encoding.0);
    let text = text_arg(text, "text")?;
    enter_core(py, text.len(), || Ok(tokenizer.count(&text)))
}

/// The names of the built-in encodings, the default first.
#[pyfunction]
pub(crate) fn encodings() -> Vec<&'static str> {
    Encoding::ALL.map(Encoding::name).to_vec()
}
