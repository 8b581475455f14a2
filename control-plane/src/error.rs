//! The JSON API's error type: one enum, one response shape, no internals on the wire.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything a control-plane endpoint can refuse with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or a parameter is malformed.
    #[error("{0}")]
    BadRequest(&'static str),
    /// A field is out of range; says which and why.
    #[error("{message}")]
    Invalid {
        /// The field, as named in the request.
        field: &'static str,
        /// What to do instead.
        message: String,
    },
    /// Missing or wrong credentials.
    #[error("unauthorized")]
    Unauthorized(&'static str),
    /// Authenticated, but the role or scopes do not allow this.
    #[error("forbidden")]
    Forbidden(&'static str),
    /// The change would break a rule (e.g. removing the last owner).
    #[error("conflict")]
    Conflict(&'static str),
    /// The organisation's plan does not include this; an upgrade does.
    #[error("{message}")]
    NotInPlan {
        /// The field, as named in the request.
        field: &'static str,
        /// What the plan lacks.
        message: String,
    },
    /// The body exceeds the endpoint's limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// No such route.
    #[error("not found")]
    NotFound,
    /// A service HumanProof depends on (Stripe, the database) did not answer; try again later.
    #[error("unavailable")]
    Unavailable(&'static str),
    /// A database failure; logged, never shown.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl ApiError {
    /// A field out of range: which, and what to give instead.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Invalid { .. } => "invalid_field",
            Self::NotInPlan { .. } => "not_in_plan",
            Self::Unauthorized(code)
            | Self::Forbidden(code)
            | Self::Conflict(code)
            | Self::Unavailable(code) => code,
            Self::PayloadTooLarge => "payload_too_large",
            Self::NotFound => "not_found",
            Self::Database(_) => "internal_error",
        }
    }

    /// HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotInPlan { .. } => StatusCode::PAYMENT_REQUIRED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error's JSON response, with `message` in place of the default one.
    pub fn response_with_message(&self, message: &str) -> Response {
        let mut body = json!({ "error": { "code": self.code(), "message": message } });
        if let Self::Invalid { field, .. } | Self::NotInPlan { field, .. } = self {
            body["error"]["field"] = json!(field);
        }
        (self.status_code(), Json(body)).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            Self::Database(err) => {
                tracing::error!(error = %err, "database error");
                "Internal error.".to_owned()
            }
            other => other.to_string(),
        };
        self.response_with_message(&message)
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge
        } else {
            Self::BadRequest("the request body could not be read")
        }
    }
}
