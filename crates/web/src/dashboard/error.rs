//! How the dashboard says no: a page, never a problem document. Signing in is a 303 to
//! the log-in page that comes back to where the person was going.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use switchyard_domain::StoreError;
use switchyard_domain::app::AppError;

#[derive(Debug)]
pub enum PageError {
    /// Not signed in: go to the log-in page, then back to `next`.
    SignIn {
        next: String,
    },
    NotFound,
    /// A link that was used, revoked or expired.
    Gone(&'static str),
    Forbidden(&'static str),
    /// A form without the session's CSRF token.
    Csrf,
    /// Too many tries; the wait in seconds.
    TooMany {
        retry_after: i64,
    },
    BadRequest(String),
    TooLarge,
    /// The database cannot be reached: try again in a moment.
    Unavailable,
    Internal,
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => PageError::NotFound,
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "dashboard: database unavailable");
                PageError::Unavailable
            }
            other => {
                tracing::error!(error = ?other, "dashboard: store error");
                PageError::Internal
            }
        }
    }
}

/// A use case's refusal where no form can show it beside a field.
impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound(_) => PageError::NotFound,
            AppError::Store(e) => e.into(),
            AppError::Conflict(why) => PageError::BadRequest(why),
            AppError::Invalid(fields) => PageError::BadRequest(
                fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }
}

/// A team page's path, `/t/{team}/…/{id}`, its id typed: one that is malformed or of
/// another kind is a 404 before any query (see `crate::error::path_config`).
/// (The team's slug is the [`Member`](super::session::Member) extractor's to read.)
#[derive(Debug, serde::Deserialize)]
pub struct TeamPath<Id> {
    pub id: Id,
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "dashboard: template failed");
        PageError::Internal
    }
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl PageError {
    fn text(&self) -> (&'static str, String) {
        match self {
            PageError::SignIn { .. } => ("Sign in", "Sign in to continue.".to_owned()),
            PageError::NotFound => (
                "Not found",
                "There is nothing here, or it belongs to a team you are not in.".to_owned(),
            ),
            PageError::Gone(why) => ("This link no longer works", (*why).to_owned()),
            PageError::Forbidden(why) => ("Not allowed", (*why).to_owned()),
            PageError::Csrf => (
                "Form expired",
                "This form was not sent from your current session. Go back, reload the page and try again."
                    .to_owned(),
            ),
            PageError::TooMany { retry_after } => (
                "Too many attempts",
                format!(
                    "Too many attempts from here. Wait {} and try again.",
                    wait_text(*retry_after)
                ),
            ),
            PageError::BadRequest(why) => ("Bad request", why.clone()),
            PageError::TooLarge => ("Too large", "That form was too large to read.".to_owned()),
            PageError::Unavailable => (
                "Try again in a moment",
                "Switchyard cannot reach its database just now. Nothing was changed; try again in a moment."
                    .to_owned(),
            ),
            PageError::Internal => (
                "Something went wrong",
                "Switchyard could not finish this request. Nothing was changed; try again in a moment."
                    .to_owned(),
            ),
        }
    }
}

/// "3 minutes", "1 minute", "40 seconds".
pub fn wait_text(seconds: i64) -> String {
    match seconds {
        s if s >= 90 => format!("{} minutes", (s + 59) / 60),
        s if s >= 60 => "1 minute".to_owned(),
        s if s > 1 => format!("{s} seconds"),
        _ => "1 second".to_owned(),
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignIn { .. } => StatusCode::SEE_OTHER,
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::Gone(_) => StatusCode::GONE,
            PageError::Forbidden(_) | PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PageError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let PageError::SignIn { next } = self {
            let location = if next.is_empty() || next == "/" {
                "/login".to_owned()
            } else {
                format!("/login?next={}", super::forms::encode(next))
            };
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .finish();
        }
        let (title, message) = self.text();
        let body = ErrorPage {
            title,
            message: &message,
        }
        .render()
        .unwrap_or_else(|_| message.clone());
        let mut res = HttpResponse::build(self.status_code());
        match self {
            PageError::TooMany { retry_after } => {
                res.insert_header((header::RETRY_AFTER, retry_after.max(&1).to_string()));
            }
            PageError::Unavailable => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_people_say_them() {
        assert_eq!(wait_text(0), "1 second");
        assert_eq!(wait_text(45), "45 seconds");
        assert_eq!(wait_text(60), "1 minute");
        assert_eq!(wait_text(599), "10 minutes");
    }
}
