//! The one place where core errors become Python exceptions. The exception classes are defined in
//! `ctxsched/exceptions.py` (so they can subclass both `ContextSchedError` and the matching built-in).

use pyo3::PyErr;

use crate::error::SchedError;

pyo3::import_exception!(ctxsched.exceptions, UnknownEncodingError);
pyo3::import_exception!(ctxsched.exceptions, InvalidTokenError);

impl From<SchedError> for PyErr {
    fn from(error: SchedError) -> Self {
        let message = error.to_string();
        match error {
            SchedError::UnknownEncoding { .. } => UnknownEncodingError::new_err(message),
            SchedError::InvalidToken { .. } => InvalidTokenError::new_err(message),
        }
    }
}
