//! RFC 7807 problem documents, the one error shape of the data plane and the JSON API.
//! `type` is stable per kind of problem so clients can branch on it; `detail` is for
//! people. A 500 never carries internals: the log holds the cause, keyed by request id.

use serde::Serialize;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
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
        p.errors = vec![FieldError {
            field: field.to_owned(),
            message,
        }];
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

impl From<crate::StoreError> for Problem {
    fn from(e: crate::StoreError) -> Self {
        use crate::StoreError;
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
