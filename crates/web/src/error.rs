//! How the API says no: every error is a problem document. Body and query errors are
//! sorted here once: malformed JSON is 400, a wrong content type 415, a body too large
//! 413, and JSON that parses but does not fit (unknown or missing fields) 422.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use switchyard_domain::StoreError;
use switchyard_domain::app::{AppError, FieldError};
use switchyard_problem::Problem;

/// The largest JSON body the API reads.
const JSON_LIMIT: usize = 256 * 1024;

#[derive(Debug)]
pub struct ApiError(pub Problem);

pub type ApiResult<T> = Result<T, ApiError>;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.status, self.0.title)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.error_response()
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        ApiError(p)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(e.into())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError(StoreError::from(e).into())
    }
}

pub fn not_found(what: &str) -> ApiError {
    ApiError(Problem::not_found(format!("no {what} with this id")))
}

/// Maps a store miss to a 404 naming the resource, and anything else as usual.
pub fn missing(what: &'static str) -> impl FnOnce(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => not_found(what),
        other => other.into(),
    }
}

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT)
        .error_handler(|err, _req: &HttpRequest| {
            let problem = match &err {
                JsonPayloadError::ContentType => {
                    Problem::unsupported_media_type("send the body as application/json")
                }
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => {
                    Problem::payload_too_large(JSON_LIMIT)
                }
                JsonPayloadError::Deserialize(e) if e.is_data() => {
                    Problem::invalid(vec![FieldError::new("body", e)])
                }
                JsonPayloadError::Deserialize(e) => {
                    Problem::bad_request(format!("malformed JSON: {e}"))
                }
                other => Problem::bad_request(other.to_string()),
            };
            ApiError(problem).into()
        })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        ApiError(Problem::invalid(vec![FieldError::new("query", err)])).into()
    })
}

/// A path that does not fit its route, such as an id that is not one of its kind: a 404
/// before any query, as a problem document for the API and the not-found page for the
/// dashboard.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_err: PathError, req: &HttpRequest| {
        if req.path().starts_with("/api/") {
            ApiError(Problem::not_found("no such resource")).into()
        } else {
            crate::dashboard::PageError::NotFound.into()
        }
    })
}
