//! Switchyard's model and its rules, and the Postgres store that keeps them. Nothing here
//! knows actix-web or apalis's workers: the data plane, control plane and worker crates
//! call into this one, never the other way.

pub mod accounts;
pub mod app;
pub mod delivery;
pub mod ids;
pub mod model;
pub mod netguard;
pub mod providers;
pub mod routing;
pub mod secrets;
pub mod store;

pub use store::StoreError;
