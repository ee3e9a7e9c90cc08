//! Forms: every state-changing request carries a CSRF token, as the `csrf_token` field or
//! (from htmx) the `X-CSRF-Token` header. A signed-in person's token is their session's;
//! the sign-in forms, which come before any session, use a random token that is also set
//! as a cookie (double submit). Validation errors go back next to their fields.

use std::collections::BTreeMap;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use switchyard_domain::app::{AppError, FieldError};
use switchyard_domain::secrets::random_token;

use super::error::PageError;
use super::session::{MaybeViewer, state};
use crate::body::field_holding_nul;

/// The largest form the dashboard reads (a route's template is the largest field).
pub const FORM_LIMIT: usize = 256 * 1024;
const ANON_CSRF_COOKIE: &str = "sy_csrf";
const CSRF_FIELD: &str = "csrf_token";
const CSRF_HEADER: &str = "x-csrf-token";

/// A form body whose CSRF token checked out, parsed into `T`. Repeated fields fill a
/// `Vec` (a multi-select).
pub struct Posted<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Posted<T> {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await.map_err(|_| PageError::TooLarge)?;
            let unreadable = |e: serde_html_form::de::Error| {
                PageError::BadRequest(format!("this form could not be read: {e}"))
            };
            let fields = serde_html_form::from_bytes::<Vec<(String, String)>>(&body);
            let presented = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| {
                    let fields = fields.as_ref().ok()?;
                    fields
                        .iter()
                        .find(|(k, _)| k == CSRF_FIELD)
                        .map(|(_, v)| v.clone())
                })
                .ok_or(PageError::Csrf)?;
            // Signed in, only the session's token counts: a cookie a sibling site could
            // plant must not stand in for it.
            let viewer = MaybeViewer::extract(&req).await?;
            let expected = match viewer.0 {
                Some(v) => Some(v.csrf),
                None => req.cookie(ANON_CSRF_COOKIE).map(|c| c.value().to_owned()),
            };
            if !expected.is_some_and(|expected| same(&expected, &presented)) {
                return Err(PageError::Csrf);
            }
            // PostgreSQL stores no NUL character: refuse one before it reaches a query.
            if let Some(name) = field_holding_nul(fields.map_err(unreadable)?) {
                return Err(PageError::BadRequest(format!(
                    "the {name} field holds a NUL character, which Switchyard cannot store"
                )));
            }
            serde_html_form::from_bytes::<T>(&body)
                .map(Posted)
                .map_err(unreadable)
        })
    }
}

fn same(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The CSRF token for a form that may be shown signed in or out: the session's, or the
/// anonymous one with its cookie when the browser has none yet.
pub fn form_csrf(req: &HttpRequest, viewer: &MaybeViewer) -> (String, Option<Cookie<'static>>) {
    match &viewer.0 {
        Some(v) => (v.csrf.clone(), None),
        None => anonymous_csrf(req),
    }
}

/// The CSRF token for a form shown before sign-in, and the cookie to set when the
/// browser has none yet.
fn anonymous_csrf(req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    if let Some(c) = req.cookie(ANON_CSRF_COOKIE)
        && c.value().len() >= 32
    {
        return (c.value().to_owned(), None);
    }
    let token = random_token(32);
    let secure = state(req).map(|s| s.secure_cookies()).unwrap_or(false);
    let cookie = Cookie::build(ANON_CSRF_COOKIE, token.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .finish();
    (token, Some(cookie))
}

/// A form that carries nothing but its CSRF token (a button).
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

/// Form errors by field name; `form` holds those of no single field.
#[derive(Debug, Clone, Default)]
pub struct Errors(BTreeMap<String, String>);

impl Errors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| message.into());
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A use case's refusal, for the form again: each field error next to its field (one
    /// the form does not show, or a refusal of no field, lands under `form`, so nothing
    /// is lost). A missing resource or a failed store is a page of its own.
    pub fn from_app(error: AppError, shown: &[&str]) -> Result<Self, PageError> {
        let mut errors = Errors::default();
        match error {
            AppError::Invalid(fields) => errors.add_fields(fields, shown),
            AppError::Conflict(why) => errors.add("form", sentence(&why)),
            AppError::NotFound(_) => return Err(PageError::NotFound),
            AppError::Store(e) => return Err(e.into()),
        }
        Ok(errors)
    }

    /// These mistakes (fields that did not parse) and what the use case's dry run says
    /// of the rest, together: a form shows every mistake at once. A field keeps its own
    /// first mistake.
    pub fn and_checked(
        mut self,
        checked: Result<(), AppError>,
        shown: &[&str],
    ) -> Result<Self, PageError> {
        if let Err(e) = checked {
            for (field, message) in Errors::from_app(e, shown)?.0 {
                self.add(&field, message);
            }
        }
        Ok(self)
    }

    fn add_fields(&mut self, fields: Vec<FieldError>, shown: &[&str]) {
        for e in fields {
            let field = e
                .field
                .split(['.', '['])
                .next()
                .unwrap_or_default()
                .to_owned();
            if shown.contains(&field.as_str()) {
                self.add(&field, sentence(&e.message));
            } else {
                self.add("form", sentence(&format!("{}: {}", e.field, e.message)));
            }
        }
    }
}

/// A message as a sentence: "the password must be…" → "The password must be….".
pub fn sentence(text: &str) -> String {
    let text = text.trim();
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let stop = if text.ends_with(['.', '!', '?']) {
        ""
    } else {
        "."
    };
    format!("{}{}{stop}", first.to_uppercase(), chars.as_str())
}

/// A field as typed, trimmed; `None` when it was left empty.
pub fn filled(raw: &str) -> Option<String> {
    let raw = raw.trim();
    (!raw.is_empty()).then(|| raw.to_owned())
}

/// A list typed one per line or separated by commas or semicolons (email addresses).
pub fn items(raw: &str) -> Vec<String> {
    raw.split([',', ';', '\n']).filter_map(filled).collect()
}

/// A `datetime-local` value (`2026-11-27T10:30`, seconds optional), read as UTC.
pub fn local_time(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let raw = raw.trim();
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .map(|t| t.and_utc())
}

/// Percent-encodes a value for a query string.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A `next` target that stays on this site: a path, never `//host` or a URL.
pub fn local_path(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    // Browsers drop tabs and newlines from URLs, so `/\t/host` would become `//host`.
    let plain = !next
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    (plain && next.starts_with('/') && !next.starts_with("//")).then(|| next.to_owned())
}

/// The hint under a secret's field. A form sent back with errors shows its secrets empty
/// (a secret is never written into a page), so one that was typed says to type it again.
pub fn secret_hint(errors: &Errors, typed: &str, otherwise: &'static str) -> &'static str {
    if !errors.is_empty() && !typed.trim().is_empty() {
        "Enter it again: a secret you typed is never sent back to the page."
    } else {
        otherwise
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            local_path(Some("/t/acme/sources")).as_deref(),
            Some("/t/acme/sources")
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "",
            "sources",
        ] {
            assert_eq!(local_path(Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn refusals_land_next_to_their_fields() {
        let invalid = AppError::Invalid(vec![
            FieldError::new("name", "too long"),
            FieldError::new("hmac.header", "missing"),
        ]);
        let errors = Errors::from_app(invalid, &["name"]).expect("field errors");
        assert_eq!(errors.get("name"), Some("Too long."));
        assert_eq!(errors.get("form"), Some("Hmac.header: missing."));
        let conflict = Errors::from_app(AppError::Conflict("taken.".into()), &["name"]);
        assert_eq!(conflict.expect("a form error").get("form"), Some("Taken."));
        assert!(matches!(
            Errors::from_app(AppError::NotFound("source"), &["name"]),
            Err(PageError::NotFound)
        ));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", ""));
    }
}
