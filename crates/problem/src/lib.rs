//! RFC 7807 problem documents, the one error shape of the data plane and the JSON API,
//! and the one mapping from the domain's errors to them. `type` is stable per kind of
//! problem so clients can branch on it; `detail` is for people. A 500 never carries
//! internals: the log holds the cause, keyed by request id. An unavailable database is a
//! 503 with `Retry-After`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use switchyard_domain::StoreError;
use switchyard_domain::app::AppError;
pub use switchyard_domain::app::FieldError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Field-level reasons for a 422.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    fn new(slug: &str, title: &'static str, status: u16, detail: Option<String>) -> Self {
        Problem {
            kind: format!("https://switchyard.dev/problems/{slug}"),
            title,
            status,
            detail,
            errors: Vec::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new("bad-request", "Bad request", 400, Some(detail.into()))
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new("unauthorized", "Unauthorized", 401, Some(detail.into()))
    }
    /// A webhook whose signature or timestamp failed: `reason` names which
    /// (`signature-mismatch`, `timestamp-too-old`, …) in the problem's `type`.
    pub fn signature_rejected(reason: &str, detail: impl Into<String>) -> Self {
        Self::new(
            reason,
            "Signature verification failed",
            401,
            Some(detail.into()),
        )
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new("not-found", "Not found", 404, Some(detail.into()))
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new("conflict", "Conflict", 409, Some(detail.into()))
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            "payload-too-large",
            "Payload too large",
            413,
            Some(format!(
                "the body is larger than this source's limit of {limit} bytes"
            )),
        )
    }
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            "unsupported-media-type",
            "Unsupported media type",
            415,
            Some(detail.into()),
        )
    }
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let mut p = Self::new(
            "validation",
            "Invalid request",
            422,
            Some("the request has invalid fields".to_owned()),
        );
        p.errors = errors;
        p
    }
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut p = Self::new("validation", "Invalid request", 422, Some(message.clone()));
        p.errors = vec![FieldError::new(field, message)];
        p
    }
    pub fn unavailable() -> Self {
        Self::new(
            "unavailable",
            "Service unavailable",
            503,
            Some("the database is unavailable; retry shortly".to_owned()),
        )
    }
    pub fn internal() -> Self {
        Self::new("internal", "Internal error", 500, None)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Problem::not_found("no such resource"),
            StoreError::Conflict(message) => Problem::conflict(message),
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                Problem::unavailable()
            }
            other => {
                tracing::error!(error = ?other, "store error");
                Problem::internal()
            }
        }
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(errors) => Problem::invalid(errors),
            AppError::NotFound(what) => Problem::not_found(format!("no {what} with this id")),
            AppError::Conflict(why) => Problem::conflict(why),
            AppError::Store(e) => e.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.title)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if self.status == 503 {
            res.insert_header(("Retry-After", "1"));
        }
        res.content_type("application/problem+json")
            .body(self.to_json())
    }
}
