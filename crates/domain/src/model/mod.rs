//! The things Switchyard keeps, as the store reads them and the API shows them, and the
//! parsed inputs that create them. Raw strings stop here: a `Name` is trimmed and bounded,
//! a `DestinationUrl` has passed the SSRF policy.

mod delivery;
mod destination;
mod event;
mod names;
pub mod reconcile;
mod route;
pub mod sequencing;
mod source;
mod team;

pub use delivery::{Attempt, Delivery, DeliveryFilter, DeliveryLine};
pub use destination::{
    AuthScheme, Credentials, Destination, DestinationConfig, DestinationUrl, HttpMethod, hint,
};
pub use event::{DeliveryPlan, Event, EventFilter, NewEvent, like_pattern};
pub use names::{Name, NameError};
pub use reconcile::{SessionStatus, StatusChange};
pub use route::Route;
pub use sequencing::{Coalesce, Ordering, Sequence};
pub use source::Source;
pub use team::{ApiKey, Team};

/// One page of a list: items newest first, and the cursor for the next page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Page {
            items: Vec::new(),
            next_cursor: None,
        }
    }
}

/// Where a list starts and how long a page is.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Items strictly older than this id.
    pub cursor: Option<String>,
    pub limit: u32,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 250;
}
