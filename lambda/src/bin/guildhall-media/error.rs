//! Why an invocation failed (as opposed to an upload being refused, which is a `failed` callback
//! and a successful invocation). A failed invocation is retried by Lambda for asynchronous
//! invocations, so these are the transient or misconfiguration cases.

use lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{operation} {key}: {detail}")]
    S3 {
        operation: &'static str,
        key: String,
        detail: String,
    },
    #[error("callback: {0}")]
    Callback(String),
    #[error("GUILDHALL_CALLBACK_URL is not set; S3 events cannot be reported")]
    NoCallbackUrl,
    #[error("processing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<WorkerError> for Diagnostic {
    fn from(err: WorkerError) -> Self {
        let error_type = match err {
            WorkerError::S3 { .. } => "S3Error",
            WorkerError::Callback(_) => "CallbackError",
            WorkerError::NoCallbackUrl => "ConfigError",
            WorkerError::Task(_) => "InternalError",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
}
