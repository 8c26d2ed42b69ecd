//! One error type for the JSON API: `{"error": {"code", "message"}}` with a 4xx status for the
//! caller's mistakes. Faults of the service itself are logged with the request id and hidden
//! behind a generic 500; an unreachable database is a 503.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// A fault of ours: logged in full, answered without details.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong on our side; the error was logged. Try again, and quote the X-Request-Id header if it persists.")
    }
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "database unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The database is not answering; try again shortly.",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::unavailable(e),
            StoreError::Conflict(c) => ApiError::conflict(
                "conflict",
                format!("that would duplicate an existing value ({c})"),
            ),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::JsonSyntaxError(_) => StatusCode::BAD_REQUEST,
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(
            status,
            "invalid_body",
            format!(
                "The request body is not what this endpoint takes: {}",
                r.body_text()
            ),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

impl From<FormRejection> for ApiError {
    fn from(r: FormRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_form", r.body_text())
    }
}

/// `axum::Json` whose rejections are `ApiError`s.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<crate::sso::OrgError> for ApiError {
    fn from(e: crate::sso::OrgError) -> Self {
        use crate::sso::OrgError;
        match e {
            OrgError::Invalid(code, m) => ApiError::unprocessable(code, m),
            OrgError::SlugTaken(_) => ApiError::conflict("slug_taken", e.to_string()),
            OrgError::DomainTaken => ApiError::conflict("domain_taken", e.to_string()),
            OrgError::Store(s) => s.into(),
        }
    }
}

impl From<crate::sso::SecretError> for ApiError {
    fn from(e: crate::sso::SecretError) -> Self {
        use crate::sso::SecretError;
        match e {
            SecretError::Invalid(m) => ApiError::unprocessable("invalid_secret", m),
            SecretError::JwksUnusable(m) => ApiError::unprocessable("jwks_unusable", m),
            SecretError::NameTaken(_) => ApiError::conflict("secret_name_taken", e.to_string()),
            SecretError::Store(s) => s.into(),
        }
    }
}

impl From<crate::sso::ConnectError> for ApiError {
    fn from(e: crate::sso::ConnectError) -> Self {
        use crate::sso::ConnectError;
        match e {
            ConnectError::Invalid(i) => ApiError::unprocessable("invalid_connection", i.0),
            ConnectError::Discovery(d) => {
                ApiError::unprocessable("discovery_failed", d.to_string())
            }
            ConnectError::Conflict => {
                ApiError::conflict("concurrent_change", ConnectError::Conflict.to_string())
            }
            ConnectError::Store(s) => s.into(),
        }
    }
}
