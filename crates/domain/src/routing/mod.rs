//! Which events a route takes and what each becomes: event-type globs, payload filters
//! and templates, put together in [`pipeline`].

mod glob;
pub mod pipeline;
pub mod recipes;
mod sequencing;
pub mod template;
pub mod timeline;

pub use glob::{EventTypes, Glob, GlobError};
pub use pipeline::{
    CompiledRoute, EventFacts, Message, RouteRule, RoutedEvent, Templates, Verdict,
};
pub use template::{Filter, TemplateError};
