//! Switchyard's model and its rules, and the Postgres store that keeps them. Nothing here
//! knows actix-web or apalis's workers: the data plane, control plane and worker crates
//! call into this one, never the other way.
//!
//! # Glossary
//!
//! One word, one meaning, in the code and in the docs:
//!
//! - **source**: where a sender posts its webhooks (GitHub, Stripe, Anthropic…), with the
//!   secret that verifies them and its ingest URL.
//! - **event**: one request a source accepted, stored once; a duplicate of it (the same
//!   provider event id, or the same content within an hour) is acknowledged and dropped.
//! - **route**: which events of a source go to which destination (event-type globs and a
//!   filter) and what each becomes (its templates).
//! - **destination**: where deliveries go: a routine, a Slack webhook, email recipients or
//!   an HTTP endpoint, with its state, limits and breaker.
//! - **target**: the kind-specific half of a destination: what it sends to and how (a fire
//!   URL and token, a webhook URL, recipients, a URL with method and headers).
//! - **delivery**: one event on its way to one destination through one route. The
//!   deliveries table is the queue; a delivery moves through the states in
//!   [`delivery::DeliveryStatus`]. A [`model::DeliveryPlan`] is one about to be made.
//! - **attempt**: one try at sending a delivery, with what was sent and what came back.
//! - **replay**: a deliberate new series of attempts for a finished delivery; a **re-run**
//!   sends a stored event through today's routes again, making new deliveries.
//! - **retrying**: a pending delivery whose last attempt failed; **failing**: a
//!   destination still taking deliveries whose latest attempts failed. Both are labels
//!   for people, not states.
//! - **test event**: an event a person sent from a source's page (the provider's sample),
//!   marked as such in the logs; its deliveries are real.

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
