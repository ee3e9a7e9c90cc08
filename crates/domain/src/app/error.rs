//! How a use case says no. Field errors are collected so one answer names every bad
//! field at once; each surface renders them its own way (a 422 problem document, or the
//! form again with a message under each field).

use serde::Serialize;

use crate::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Fields that do not pass, each with why.
    #[error("invalid: {0:?}")]
    Invalid(Vec<FieldError>),
    /// Nothing of this kind with that id in the team.
    #[error("no {0} with this id")]
    NotFound(&'static str),
    /// The command clashes with what is stored (why, for people).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store failed: unavailable (worth a retry) or broken.
    #[error(transparent)]
    Store(StoreError),
}

impl AppError {
    /// One field's error.
    pub fn field(field: &str, message: impl ToString) -> AppError {
        AppError::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound("resource"),
            StoreError::Conflict(why) => AppError::Conflict(why),
            other => AppError::Store(other),
        }
    }
}

/// A route's event types or filter that do not compile, as that field's error.
impl From<crate::routing::pipeline::RuleError> for AppError {
    fn from(e: crate::routing::pipeline::RuleError) -> Self {
        AppError::field(e.field, e.message)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// A store miss as the named thing missing.
pub(crate) fn missing(what: &'static str) -> impl FnOnce(StoreError) -> AppError {
    move |e| match e {
        StoreError::NotFound => AppError::NotFound(what),
        other => other.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl ToString) -> FieldError {
        FieldError {
            field: field.to_owned(),
            message: message.to_string(),
        }
    }
}

/// Collects field errors, so one answer names every bad field.
#[derive(Debug, Default)]
pub struct Invalid(Vec<FieldError>);

impl Invalid {
    pub fn add(&mut self, field: &str, message: impl ToString) {
        self.0.push(FieldError::new(field, message));
    }

    /// Keeps the value, or notes the error and gives `None`.
    pub fn check<T, E: ToString>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.add(field, e)).ok()
    }

    pub fn finish(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::Invalid(self.0))
        }
    }
}
