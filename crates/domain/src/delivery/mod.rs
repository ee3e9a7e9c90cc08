//! What happens to a delivery: its states, whether its destination lets it go now, how an
//! attempt's outcome is classified, and when (if ever) the next attempt runs. All pure:
//! time and jitter come in as arguments.

pub mod admission;
pub mod breaker;
pub mod compose;
pub mod limits;
mod policy;
mod state;
pub mod transition;

pub use policy::{
    Decision, MAX_ATTEMPTS, Outcome, RETRY_AFTER_CAP, decide, parse_retry_after, retry_later,
};
pub use state::{DeliveryStatus, DestinationKind, DestinationState};
pub use transition::Transition;
