//! Rate limits of the sign-in forms. Per client address: 20 tries in 10 minutes (more than
//! anyone types by hand). Per account: 10 in 10 minutes, whichever address they come from,
//! counted for addresses with and without an account alike. The same counters cap forms
//! that send on a person's behalf ("send test").

use std::net::IpAddr;

use actix_web::HttpRequest;
use chrono::{Duration, Utc};
use ipnet::IpNet;
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

/// Per client address: the socket's peer, or behind a trusted proxy the client it
/// names (see [`client_ip`]).
pub fn per_ip(form: &str, req: &HttpRequest, state: &WebState) -> Key {
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    let ip = client_ip(
        req.peer_addr().map(|a| a.ip()),
        &forwarded.join(","),
        &state.trusted_proxies,
    )
    .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    Key {
        key: format!("{form}:ip:{ip}"),
        limit: PER_IP,
    }
}

/// The client's address. A peer that is not a trusted proxy is the client. From a trusted
/// proxy, `X-Forwarded-For` is read from the right, since each proxy appends the address
/// it saw: the first entry that is not itself a trusted proxy is the client, and anything
/// left of it the client could have written. All trusted, or unreadable: the peer.
pub fn client_ip(peer: Option<IpAddr>, forwarded: &str, trusted: &[IpNet]) -> Option<IpAddr> {
    // An IPv4 client of a server listening on `[::]` appears as `::ffff:a.b.c.d`.
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    for entry in forwarded.rsplit(',') {
        match entry.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) if is_trusted(&ip) => continue,
            Ok(ip) => return Some(ip),
            Err(_) => break,
        }
    }
    Some(peer)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // Not through a trusted proxy: the header is the client's own word, ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), "1.2.3.4", &trusted),
            ip("203.0.113.9")
        );
        // Through one: the address it saw.
        assert_eq!(
            client_ip(ip("10.0.0.7"), "198.51.100.4", &trusted),
            ip("198.51.100.4")
        );
        // Through two, with a forged entry first: the rightmost untrusted one.
        assert_eq!(
            client_ip(ip("10.0.0.7"), "1.2.3.4, 198.51.100.4, 10.0.0.9", &trusted),
            ip("198.51.100.4")
        );
        // A mapped IPv4 peer is the IPv4 address it maps.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.7"), "198.51.100.4", &trusted),
            ip("198.51.100.4")
        );
        // Nothing usable: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.7"), "", &trusted), ip("10.0.0.7"));
        assert_eq!(
            client_ip(ip("10.0.0.7"), "garbage", &trusted),
            ip("10.0.0.7")
        );
        // No proxies trusted (the default): always the peer.
        assert_eq!(
            client_ip(ip("10.0.0.7"), "198.51.100.4", &[]),
            ip("10.0.0.7")
        );
    }
}
