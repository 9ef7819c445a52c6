//! Python bindings: the only code in the crate that knows about Python.

// PyO3 extracts arguments as owned values (`Vec<u32>` for token ids); taking them by value is the API.
#![allow(clippy::needless_pass_by_value)]

mod anthropic;
mod breakpoints;
mod chat;
mod chat_read;
mod chat_summary;
mod convert;
mod errors;
mod freshness;
mod packer;
mod responses_read;
mod result;
mod segment;
mod session;
mod summary;
mod tokenizer;

use pyo3::prelude::*;

/// Run `work` with the GIL released when it is big enough to be worth it, and map core errors to
/// Python exceptions. Every entry point that does real work goes through here.
///
/// Releasing and re-taking the GIL costs a few hundred nanoseconds; counting a short chat message costs
/// about as much, so small inputs keep the GIL (tiktoken pays that price on every call).
fn enter_core<T, F>(py: Python<'_>, work_bytes: usize, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> crate::Result<T> + Send,
{
    const DETACH_ABOVE_BYTES: usize = 16 * 1024;
    let result = if work_bytes > DETACH_ABOVE_BYTES { py.detach(work) } else { work() };
    result.map_err(PyErr::from)
}

#[pymodule(gil_used = false)]
pub mod _core {
    #[pymodule_export]
    use super::chat::{chat_tokens, count_tools, pack_chat, PyPackedChat};
    #[pymodule_export]
    use super::chat_summary::PyChatSummaries;
    #[pymodule_export]
    use super::packer::PyPacker;
    #[pymodule_export]
    use super::result::{PyDecision, PyEvictedSegment, PyKindUsage, PyPackResult, PyPlacedSegment, PyPlacement};
    #[pymodule_export]
    use super::segment::PySegment;
    #[pymodule_export]
    use super::session::{PyCacheReport, PyChatSession};
    #[pymodule_export]
    use super::summary::{pack_summarised, plan_summaries};
    #[pymodule_export]
    use super::tokenizer::{count_tokens, encodings, PyTokenizer, PyTruncated};

    #[pymodule_export]
    use super::chat::{image_part_tokens, image_size};

    #[pymodule_init]
    fn init(module: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        module.add("__version__", env!("CARGO_PKG_VERSION"))?;
        super::trust_constants(module)?;
        module.add("PanicException", module.py().get_type::<pyo3::panic::PanicException>())
    }
}

/// The trust rules Python shows its users (they live in `crate::trust`, written once).
fn trust_constants(module: &Bound<'_, PyModule>) -> PyResult<()> {
    use crate::trust::{Fence, BUILTIN_PATTERNS, DATAMARK, FENCE_CLOSE, FENCE_OPEN, PATTERNS_VERSION};
    module.add("FENCE_OPEN", FENCE_OPEN)?;
    module.add("FENCE_CLOSE", FENCE_CLOSE)?;
    module.add("DATAMARK", DATAMARK.to_string())?;
    module.add("PATTERNS_VERSION", PATTERNS_VERSION)?;
    module.add("BUILTIN_PATTERNS", BUILTIN_PATTERNS.to_vec())?;
    let notices = pyo3::types::PyDict::new(module.py());
    for (name, fence) in [("delimit", Fence::Delimit), ("datamark", Fence::Datamark), ("none", Fence::None)] {
        notices.set_item(name, fence.notice())?;
    }
    module.add("FENCE_NOTICES", notices)?;
    module.add("RESTATE_HEADER", crate::packer::RESTATE_HEADER)?;
    module.add("RESTATED_KIND", crate::packer::RESTATED_KIND)
}
