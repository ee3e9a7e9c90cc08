//! The circuit breaker's numbers: how many consecutive failed attempts across a
//! destination open it, and how the cool-down before each probe grows. Pure; the store
//! keeps the count in the destination's runtime row and applies these rules in the
//! transaction that records an attempt.

use chrono::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failed attempts that open the breaker.
    pub threshold: u32,
    /// The cool-down before the first probe.
    pub first_cooldown: Duration,
    /// The longest cool-down; each failed probe doubles it up to this.
    pub max_cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            threshold: 10,
            first_cooldown: Duration::minutes(5),
            max_cooldown: Duration::hours(1),
        }
    }
}

impl BreakerPolicy {
    /// The cool-down after a failed probe: double the last, within the bounds.
    pub fn after_failed_probe(&self, last: Duration) -> Duration {
        (last * 2).clamp(self.first_cooldown, self.max_cooldown)
    }

    /// Whether `consecutive` failures open the breaker.
    pub fn opens_at(&self, consecutive: i32) -> bool {
        i64::from(consecutive) >= i64::from(self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cool_downs_double_from_five_minutes_to_an_hour() {
        let p = BreakerPolicy::default();
        let mut cooldown = p.first_cooldown;
        let mut seen = vec![cooldown.num_minutes()];
        for _ in 0..6 {
            cooldown = p.after_failed_probe(cooldown);
            seen.push(cooldown.num_minutes());
        }
        assert_eq!(seen, [5, 10, 20, 40, 60, 60, 60]);
        assert_eq!(p.after_failed_probe(Duration::zero()), p.first_cooldown);
    }

    #[test]
    fn ten_consecutive_failures_open_it() {
        let p = BreakerPolicy::default();
        assert!(!p.opens_at(9));
        assert!(p.opens_at(10));
        assert!(p.opens_at(11));
    }
}
