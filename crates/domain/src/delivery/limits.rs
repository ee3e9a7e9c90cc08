//! Per-destination limits: how many sends may run at once, how fast they may start, and
//! how many a destination may take per hour and per day (a routine's budget of paid
//! sessions). `gate` is the whole rule, pure; the claim keeps its state in the
//! destination's runtime row and calls it under that row's lock, so every worker process
//! obeys one limit.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// What a destination is limited to. Every field is optional; none means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    /// Sends started per minute at most, spread evenly (60 is one a second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_minute: Option<u32>,
    /// Sends in flight at once at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Sends per clock hour (UTC) at most; more wait for the next hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_per_hour: Option<u32>,
    /// Sends per UTC day at most; more wait for the next day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_per_day: Option<u32>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The time between two sends under the rate limit.
    pub fn interval(&self) -> Option<Duration> {
        let rate = self.rate_per_minute.filter(|r| *r > 0)?;
        Some(Duration::milliseconds(60_000 / i64::from(rate)).max(Duration::milliseconds(1)))
    }
}

/// Sends counted in one budget window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub start: Option<DateTime<Utc>>,
    pub used: i32,
}

/// A destination's limit state, as stored on its row, plus what the claim counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitState {
    pub next_slot_at: Option<DateTime<Utc>>,
    pub hour: Window,
    pub day: Window,
    /// Deliveries of the destination in flight now.
    pub in_flight: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send now.
    Send,
    /// Not before `until`. `reserved` is a rate slot the delivery now holds.
    Wait {
        until: DateTime<Utc>,
        reserved: Option<DateTime<Utc>>,
        reason: String,
    },
    /// As many sends are in flight as the destination allows: it stays due, and goes
    /// when one of them ends. A rate slot it held is given up: spent late, it would go
    /// out in a burst with the slots after it.
    Busy { reason: String },
}

/// Whether one delivery may be sent now. `reserved` is the rate slot it already holds,
/// if an earlier verdict gave it one. Returns the verdict and the destination's new
/// state (a send counts against the budgets and takes the next rate slot).
pub fn gate(
    limits: &Limits,
    state: LimitState,
    reserved: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (Verdict, LimitState) {
    let mut next = state;
    if let Some(max) = limits.max_in_flight
        && state.in_flight >= i64::from(max)
    {
        let reason = format!("the destination's limit of {max} sends at once is reached");
        return (Verdict::Busy { reason }, state);
    }
    next.hour = current(state.hour, hour_start(now));
    next.day = current(state.day, day_start(now));
    let budgets = [
        (
            limits.budget_per_hour,
            next.hour,
            Duration::hours(1),
            "hour",
        ),
        (limits.budget_per_day, next.day, Duration::days(1), "day"),
    ];
    for (budget, window, length, name) in budgets {
        if let (Some(max), Some(start)) = (budget, window.start)
            && window.used >= i32::try_from(max).unwrap_or(i32::MAX)
        {
            let reason = format!("the destination's budget of {max} sends per {name} is spent");
            return (wait(start + length, None, reason), state);
        }
    }
    if let Some(interval) = limits.interval() {
        match reserved {
            // Its own slot, come due (a claim comes a little after its time).
            Some(slot) if slot <= now => {}
            Some(slot) => {
                return (
                    wait(slot, reserved, "waiting for its rate slot".to_owned()),
                    state,
                );
            }
            None => {
                let slot = state.next_slot_at.map_or(now, |at| at.max(now));
                next.next_slot_at = Some(slot + interval);
                if slot > now {
                    let reason = format!(
                        "the destination's rate of {} sends per minute",
                        limits.rate_per_minute.unwrap_or_default()
                    );
                    // The slot is taken whether it waits or not: it is this delivery's.
                    return (
                        wait(slot, Some(slot), reason),
                        next_with_windows_of(state, next),
                    );
                }
            }
        }
    }
    next.hour.used += 1;
    next.day.used += 1;
    (Verdict::Send, next)
}

/// A delivery that waits spends no budget: keep the stored windows, but the slot taken.
fn next_with_windows_of(stored: LimitState, next: LimitState) -> LimitState {
    LimitState {
        next_slot_at: next.next_slot_at,
        ..stored
    }
}

fn wait(until: DateTime<Utc>, reserved: Option<DateTime<Utc>>, reason: String) -> Verdict {
    Verdict::Wait {
        until,
        reserved,
        reason,
    }
}

fn current(window: Window, start: DateTime<Utc>) -> Window {
    if window.start == Some(start) {
        window
    } else {
        Window {
            start: Some(start),
            used: 0,
        }
    }
}

fn hour_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), now.day(), now.hour(), 0, 0)
        .single()
        .unwrap_or(now)
}

fn day_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
        .single()
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, h, m, s).unwrap()
    }

    fn limits(
        rate: Option<u32>,
        in_flight: Option<u32>,
        hour: Option<u32>,
        day: Option<u32>,
    ) -> Limits {
        Limits {
            rate_per_minute: rate,
            max_in_flight: in_flight,
            budget_per_hour: hour,
            budget_per_day: day,
        }
    }

    #[test]
    fn no_limits_always_send_and_only_count() {
        let (verdict, state) = gate(
            &Limits::default(),
            LimitState::default(),
            None,
            at(10, 0, 0),
        );
        assert_eq!(verdict, Verdict::Send);
        assert_eq!(state.hour.used, 1);
        assert!(Limits::default().is_empty());
    }

    #[test]
    fn a_rate_spreads_sends_into_reserved_slots_in_claim_order() {
        let l = limits(Some(60), None, None, None);
        let now = at(10, 0, 0);
        let (first, state) = gate(&l, LimitState::default(), None, now);
        assert_eq!(first, Verdict::Send);
        assert_eq!(state.next_slot_at, Some(at(10, 0, 1)));
        let (second, state) = gate(&l, state, None, now);
        assert_eq!(
            second,
            Verdict::Wait {
                until: at(10, 0, 1),
                reserved: Some(at(10, 0, 1)),
                reason: "the destination's rate of 60 sends per minute".to_owned()
            }
        );
        let (third, state) = gate(&l, state, None, now);
        assert!(matches!(third, Verdict::Wait { until, .. } if until == at(10, 0, 2)));
        assert_eq!(state.hour.used, 1, "waiting spends no budget");
        // The second comes back at its slot and goes without taking another.
        let (again, after) = gate(&l, state, Some(at(10, 0, 1)), at(10, 0, 1));
        assert_eq!(again, Verdict::Send);
        assert_eq!(after.next_slot_at, state.next_slot_at);
        // Early, it keeps waiting for the same slot.
        let (early, _) = gate(&l, state, Some(at(10, 0, 1)), now);
        assert!(matches!(early, Verdict::Wait { reserved: Some(s), .. } if s == at(10, 0, 1)));
    }

    #[test]
    fn concurrency_holds_back_without_touching_the_state() {
        let l = limits(None, Some(2), None, None);
        let state = LimitState {
            in_flight: 2,
            ..LimitState::default()
        };
        let (verdict, after) = gate(&l, state, None, at(10, 0, 0));
        assert!(matches!(verdict, Verdict::Busy { .. }), "{verdict:?}");
        assert_eq!(after, state);
        let (verdict, _) = gate(
            &l,
            LimitState {
                in_flight: 1,
                ..state
            },
            None,
            at(10, 0, 0),
        );
        assert_eq!(verdict, Verdict::Send);
    }

    #[test]
    fn budgets_wait_for_the_next_window_and_reset_there() {
        let l = limits(None, None, Some(2), Some(3));
        let mut state = LimitState::default();
        for _ in 0..2 {
            let (verdict, next) = gate(&l, state, None, at(10, 15, 0));
            assert_eq!(verdict, Verdict::Send);
            state = next;
        }
        let (verdict, _) = gate(&l, state, None, at(10, 59, 59));
        assert!(
            matches!(verdict, Verdict::Wait { until, .. } if until == at(11, 0, 0)),
            "{verdict:?}"
        );
        let (verdict, state) = gate(&l, state, None, at(11, 0, 0));
        assert_eq!(verdict, Verdict::Send, "a new hour");
        assert_eq!((state.hour.used, state.day.used), (1, 3));
        let (verdict, _) = gate(&l, state, None, at(11, 30, 0));
        match verdict {
            Verdict::Wait { until, reason, .. } => {
                assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap());
                assert!(reason.contains("per day"), "{reason}");
            }
            other => panic!("the day's budget is spent: {other:?}"),
        }
    }

    #[test]
    fn a_busy_destination_keeps_its_rate_slots_for_others() {
        let l = limits(Some(60), Some(1), None, None);
        let busy = LimitState {
            in_flight: 1,
            next_slot_at: Some(at(10, 0, 2)),
            ..LimitState::default()
        };
        let (verdict, after) = gate(&l, busy, Some(at(10, 0, 1)), at(10, 0, 5));
        assert!(matches!(verdict, Verdict::Busy { .. }), "{verdict:?}");
        assert_eq!(after.next_slot_at, busy.next_slot_at, "no slot taken");
    }

    #[test]
    fn a_budget_blocked_delivery_reserves_no_rate_slot() {
        let l = limits(Some(60), None, Some(1), None);
        let (_, state) = gate(&l, LimitState::default(), None, at(10, 0, 0));
        let (verdict, after) = gate(&l, state, None, at(10, 0, 5));
        assert!(matches!(verdict, Verdict::Wait { reserved: None, .. }));
        assert_eq!(after.next_slot_at, state.next_slot_at);
    }

    #[test]
    fn the_interval_is_a_minute_over_the_rate() {
        assert_eq!(
            limits(Some(60), None, None, None).interval(),
            Some(Duration::seconds(1))
        );
        assert_eq!(
            limits(Some(1), None, None, None).interval(),
            Some(Duration::minutes(1))
        );
        assert_eq!(limits(Some(0), None, None, None).interval(), None);
        assert_eq!(
            limits(Some(1_000_000), None, None, None).interval(),
            Some(Duration::milliseconds(1))
        );
    }
}
