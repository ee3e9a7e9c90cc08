//! Which events a route takes and what each becomes: event-type globs, payload filters
//! and templates.

mod glob;
pub mod recipes;
pub mod template;
pub mod timeline;

pub use glob::{EventTypes, Glob, GlobError};
pub use template::{EventContext, Filter, TemplateError};
