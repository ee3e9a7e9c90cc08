//! Rate limits of the sign-in forms. Per client address: 20 tries in 10 minutes (more than
//! anyone types by hand). Per account: 10 in 10 minutes, whichever address they come from,
//! counted for addresses with and without an account alike. The same counters cap forms
//! that send on a person's behalf ("send test").

use actix_web::HttpRequest;
use chrono::{Duration, Utc};
use switchyard_domain::store::throttle::{self, Limit};

use super::error::PageError;
use crate::WebState;

const PER_IP: Limit = Limit {
    limit: 20,
    window: Duration::minutes(10),
};
const PER_ACCOUNT: Limit = Limit {
    limit: 10,
    window: Duration::minutes(10),
};

#[derive(Debug, Clone)]
pub struct Key {
    pub key: String,
    limit: Limit,
}

/// The client's address as the socket saw it. Behind a proxy every client shares the
/// proxy's address; the limit then holds for all of them together.
pub fn per_ip(form: &str, req: &HttpRequest) -> Key {
    let ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    Key {
        key: format!("{form}:ip:{ip}"),
        limit: PER_IP,
    }
}

pub fn per_account(form: &str, email: &str) -> Key {
    Key {
        key: format!("{form}:account:{}", email.trim().to_lowercase()),
        limit: PER_ACCOUNT,
    }
}

/// Ten per ten minutes per object a form acts on: a destination's "send test", which sends
/// past the destination's own limits and budgets.
pub fn per_target(form: &str, id: &str) -> Key {
    Key {
        key: format!("{form}:{id}"),
        limit: PER_ACCOUNT,
    }
}

/// Counts one try against every key; a 429 page when any is over its limit.
pub async fn check(state: &WebState, keys: &[Key]) -> Result<(), PageError> {
    let now = Utc::now();
    let mut wait = None;
    for key in keys {
        if let Some(left) = throttle::hit(&state.pool, &key.key, key.limit, now).await? {
            wait = wait.max(Some(left.num_seconds()));
        }
    }
    match wait {
        Some(retry_after) => Err(PageError::TooMany { retry_after }),
        None => Ok(()),
    }
}
