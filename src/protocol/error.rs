//! The error taxonomy of the IAM protocol: every failure any adapter returns is one of these.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The eight error types of the seed protocol, serialised in kebab-case (`auth-failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    Duplicate,
    AuthFailed,
    WeakPassword,
    Disabled,
    OperationNotPermitted,
    InternalError,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid-argument",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Duplicate => "duplicate",
            ErrorKind::AuthFailed => "auth-failed",
            ErrorKind::WeakPassword => "weak-password",
            ErrorKind::Disabled => "disabled",
            ErrorKind::OperationNotPermitted => "operation-not-permitted",
            ErrorKind::InternalError => "internal-error",
        }
    }
}

/// The single message every authentication failure carries: one bucket, no oracle.
pub const AUTH_FAILED_MESSAGE: &str = "authentication failed";

/// The caller already used this request id for a different request (REST: 422).
pub const REQUEST_ID_REUSED_MESSAGE: &str = "request_id was already used for a different request";

/// A request with this caller's request id is still being applied (REST: 409).
pub const REQUEST_IN_PROGRESS_MESSAGE: &str = "request in progress";

/// A protocol error: a taxonomy type and a human-readable message that never carries a
/// secret or an internal detail (causes are logged, not returned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, utoipa::ToSchema)]
pub struct IamError {
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for IamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl IamError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        IamError { kind, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn duplicate(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Duplicate, message)
    }
    /// Always the same message, whatever the cause.
    pub fn auth_failed() -> Self {
        Self::new(ErrorKind::AuthFailed, AUTH_FAILED_MESSAGE)
    }
    pub fn weak_password(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::WeakPassword, message)
    }
    pub fn disabled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Disabled, message)
    }
    pub fn not_permitted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::OperationNotPermitted, message)
    }
    /// The message is generic on purpose; log the cause before calling this.
    pub fn internal() -> Self {
        Self::new(ErrorKind::InternalError, "internal error")
    }
    /// [`REQUEST_ID_REUSED_MESSAGE`]: nothing was applied.
    pub fn request_id_reused() -> Self {
        Self::invalid(REQUEST_ID_REUSED_MESSAGE)
    }
    /// [`REQUEST_IN_PROGRESS_MESSAGE`]: nothing was applied by this attempt.
    pub fn request_in_progress() -> Self {
        Self::invalid(REQUEST_IN_PROGRESS_MESSAGE)
    }
    /// Whether this is [`IamError::request_id_reused`].
    pub fn is_request_id_reused(&self) -> bool {
        self.kind == ErrorKind::InvalidArgument && self.message == REQUEST_ID_REUSED_MESSAGE
    }
    /// Whether this is [`IamError::request_in_progress`].
    pub fn is_request_in_progress(&self) -> bool {
        self.kind == ErrorKind::InvalidArgument && self.message == REQUEST_IN_PROGRESS_MESSAGE
    }
}
