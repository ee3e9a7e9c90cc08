//! Which events a route takes. Event-type globs live here; payload filters and templates
//! join them with the routing work.

mod glob;

pub use glob::{EventTypes, Glob, GlobError};
