//! The one place where core errors become Python exceptions. The exception classes are defined in
//! `ctxsched/exceptions.py` (so they can subclass both `ContextSchedError` and the matching built-in).

use pyo3::PyErr;

use crate::error::SchedError;

pyo3::import_exception!(ctxsched.exceptions, UnknownEncodingError);
pyo3::import_exception!(ctxsched.exceptions, InvalidTokenError);
pyo3::import_exception!(ctxsched.exceptions, BudgetError);
pyo3::import_exception!(ctxsched.exceptions, DuplicateSegmentIdError);
pyo3::import_exception!(ctxsched.exceptions, PolicyError);
pyo3::import_exception!(ctxsched.exceptions, MessageFormatError);

impl From<SchedError> for PyErr {
    fn from(error: SchedError) -> Self {
        let message = error.to_string();
        match error {
            SchedError::UnknownEncoding { .. } => UnknownEncodingError::new_err(message),
            SchedError::InvalidToken { .. } => InvalidTokenError::new_err(message),
            SchedError::Budget { .. } | SchedError::QuotaInfeasible { .. } | SchedError::Uncuttable { .. } => {
                BudgetError::new_err(message)
            }
            SchedError::DuplicateId { .. } => DuplicateSegmentIdError::new_err(message),
            SchedError::MessageFormat { index, problem } => MessageFormatError::new_err((index, problem)),
            SchedError::InvalidPolicy(_) => PolicyError::new_err(message),
            SchedError::InvalidArgument(_) => pyo3::exceptions::PyValueError::new_err(message),
            SchedError::Interrupted { .. } => pyo3::exceptions::PyKeyboardInterrupt::new_err(message),
        }
    }
}
