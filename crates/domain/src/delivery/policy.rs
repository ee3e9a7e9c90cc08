//! The retry policy: a pure function from an attempt's outcome to what happens next.
//! The worker asks `decide`, and a retry is the delivery made due again at the time it
//! says.

use chrono::{DateTime, Duration, Utc};

use super::DestinationKind;

/// Attempts in one series (the first send, or one replay), retries included.
pub const MAX_ATTEMPTS: u32 = 10;

/// The longest a `Retry-After` is honoured for.
pub const RETRY_AFTER_CAP: Duration = Duration::hours(6);

/// Delay before retry n (after the n-th failed attempt).
const SCHEDULE: [Duration; 9] = [
    Duration::seconds(5),
    Duration::seconds(30),
    Duration::minutes(2),
    Duration::minutes(10),
    Duration::minutes(30),
    Duration::hours(1),
    Duration::hours(3),
    Duration::hours(6),
    Duration::hours(12),
];

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered. `retry_after` is the parsed header, if any.
    Response {
        status: u16,
        retry_after: Option<DateTime<Utc>>,
    },
    /// Nothing was sent: DNS, connect or TLS failed. Safe to retry for every kind.
    NotSent { error: String },
    /// The request went out but no answer came (timeout, connection dropped).
    NoResponse { error: String },
    /// The address is one we refuse to send to; retrying will not change that.
    Refused { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Succeeded,
    Failed {
        reason: String,
    },
    RetryAt(DateTime<Utc>),
    /// A routine fire that may have started a paid session: a person decides.
    UnknownOutcome {
        reason: String,
    },
}

/// The next try after attempt number `attempt` of its series failed for `reason` in a
/// way worth retrying: at `retry_after` if the other side asked (capped), else on the
/// schedule; or, with every attempt spent, failed.
pub fn retry_later(
    attempt: u32,
    reason: String,
    retry_after: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    jitter: f64,
) -> Decision {
    if attempt >= MAX_ATTEMPTS {
        return Decision::Failed {
            reason: format!("{reason}; gave up after {attempt} attempts"),
        };
    }
    let at = match retry_after {
        Some(at) => at.clamp(now, now + RETRY_AFTER_CAP),
        None => {
            now + jittered(
                SCHEDULE[(attempt as usize - 1).min(SCHEDULE.len() - 1)],
                jitter,
            )
        }
    };
    Decision::RetryAt(at)
}

/// `attempt` is the 1-based number of the attempt just made within its series; `jitter`
/// is in [-1, 1] and spreads retries by ±20 %. `detail` is what the answer said beyond
/// its status (an API's error message), used in place of the bare status in reasons.
pub fn decide(
    kind: DestinationKind,
    attempt: u32,
    outcome: &Outcome,
    detail: Option<&str>,
    now: DateTime<Utc>,
    jitter: f64,
) -> Decision {
    let retry = |reason: String, retry_after: Option<DateTime<Utc>>| {
        retry_later(attempt, reason, retry_after, now, jitter)
    };
    let routine = kind == DestinationKind::Routine;
    match outcome {
        Outcome::Response { status, .. } if (200..300).contains(status) => Decision::Succeeded,
        // An SMTP reply: 4xx says try again later, 5xx says never.
        Outcome::Response { status, .. } if kind == DestinationKind::Email => {
            let reason = detail.map_or_else(|| format!("SMTP {status}"), str::to_owned);
            if (400..500).contains(status) {
                retry(reason, None)
            } else {
                Decision::Failed { reason }
            }
        }
        Outcome::Response {
            status,
            retry_after,
        } => {
            let reason = detail.map_or_else(|| format!("HTTP {status}"), str::to_owned);
            let retryable = if routine {
                matches!(status, 429 | 500 | 502 | 503 | 504)
            } else {
                matches!(status, 408 | 409 | 425 | 429 | 500..=599)
            };
            if (300..400).contains(status) {
                Decision::Failed {
                    reason: format!("{reason}: redirects are not followed"),
                }
            } else if retryable {
                retry(reason, *retry_after)
            } else {
                Decision::Failed { reason }
            }
        }
        Outcome::NotSent { error } => retry(error.clone(), None),
        Outcome::NoResponse { error } if routine => Decision::UnknownOutcome {
            reason: format!("{error}; the routine may have started, so it is not fired again"),
        },
        Outcome::NoResponse { error } => retry(error.clone(), None),
        Outcome::Refused { error } => Decision::Failed {
            reason: error.clone(),
        },
    }
}

fn jittered(base: Duration, jitter: f64) -> Duration {
    let factor = 1.0 + 0.2 * jitter.clamp(-1.0, 1.0);
    Duration::milliseconds((base.num_milliseconds() as f64 * factor) as i64)
}

/// `Retry-After` as seconds or an HTTP-date; `None` when it is neither.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        let seconds = i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .min(RETRY_AFTER_CAP.num_seconds());
        return Some(now + Duration::seconds(seconds));
    }
    DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|at| at.with_timezone(&Utc).min(now + RETRY_AFTER_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DestinationKind::{Email, Http, Routine};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
    }

    fn status(code: u16) -> Outcome {
        Outcome::Response {
            status: code,
            retry_after: None,
        }
    }

    fn delay(decision: Decision) -> Duration {
        match decision {
            Decision::RetryAt(at) => at - now(),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn two_hundreds_succeed() {
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(
                decide(Http, 1, &status(code), None, now(), 0.0),
                Decision::Succeeded
            );
        }
    }

    #[test]
    fn retries_follow_the_schedule_without_jitter() {
        let expected = [5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200];
        for (i, secs) in expected.iter().enumerate() {
            let d = delay(decide(Http, i as u32 + 1, &status(503), None, now(), 0.0));
            assert_eq!(d, Duration::seconds(*secs), "after attempt {}", i + 1);
        }
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(
            delay(decide(Http, 2, &status(500), None, now(), 1.0)),
            Duration::seconds(36)
        );
        assert_eq!(
            delay(decide(Http, 2, &status(500), None, now(), -1.0)),
            Duration::seconds(24)
        );
        assert_eq!(
            delay(decide(Http, 2, &status(500), None, now(), 7.0)),
            Duration::seconds(36)
        );
    }

    #[test]
    fn the_tenth_failure_is_final() {
        match decide(Http, 10, &status(500), None, now(), 0.0) {
            Decision::Failed { reason } => assert!(reason.contains("10 attempts"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_status_classes() {
        // (status, retried)
        let table = [
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (408, true),
            (409, true),
            (410, false),
            (422, false),
            (425, true),
            (429, true),
            (500, true),
            (501, true),
            (502, true),
            (503, true),
            (504, true),
            (301, false),
            (302, false),
            (307, false),
        ];
        for (code, retried) in table {
            let decision = decide(Http, 1, &status(code), None, now(), 0.0);
            assert_eq!(
                matches!(decision, Decision::RetryAt(_)),
                retried,
                "HTTP {code}: {decision:?}"
            );
        }
    }

    #[test]
    fn routines_retry_only_where_no_session_can_have_started() {
        let table = [
            (429, true),
            (500, true),
            (502, true),
            (503, true),
            (504, true),
            (408, false),
            (409, false),
            (501, false),
            (400, false),
        ];
        for (code, retried) in table {
            let decision = decide(Routine, 1, &status(code), None, now(), 0.0);
            assert_eq!(
                matches!(decision, Decision::RetryAt(_)),
                retried,
                "HTTP {code}: {decision:?}"
            );
        }
    }

    #[test]
    fn a_lost_answer_is_retried_for_http_but_unknown_for_routines() {
        let lost = Outcome::NoResponse {
            error: "timed out".into(),
        };
        assert!(matches!(
            decide(Http, 1, &lost, None, now(), 0.0),
            Decision::RetryAt(_)
        ));
        assert!(matches!(
            decide(Routine, 1, &lost, None, now(), 0.0),
            Decision::UnknownOutcome { .. }
        ));
        let unsent = Outcome::NotSent {
            error: "connection refused".into(),
        };
        assert!(matches!(
            decide(Routine, 1, &unsent, None, now(), 0.0),
            Decision::RetryAt(_)
        ));
    }

    #[test]
    fn an_answer_s_own_message_names_the_failure() {
        let detail = Some("HTTP 400 invalid_request_error: This routine is paused.");
        assert_eq!(
            decide(Routine, 1, &status(400), detail, now(), 0.0),
            Decision::Failed {
                reason: "HTTP 400 invalid_request_error: This routine is paused.".to_owned()
            }
        );
        match decide(
            Http,
            MAX_ATTEMPTS,
            &status(500),
            Some("HTTP 500 busy"),
            now(),
            0.0,
        ) {
            Decision::Failed { reason } => assert!(reason.starts_with("HTTP 500 busy; gave up")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn smtp_replies_retry_on_4xx_and_fail_on_5xx() {
        assert_eq!(
            decide(Email, 1, &status(250), None, now(), 0.0),
            Decision::Succeeded
        );
        assert!(matches!(
            decide(Email, 1, &status(451), None, now(), 0.0),
            Decision::RetryAt(_)
        ));
        assert_eq!(
            decide(Email, 1, &status(550), None, now(), 0.0),
            Decision::Failed {
                reason: "SMTP 550".to_owned()
            }
        );
    }

    #[test]
    fn refused_addresses_fail_at_once() {
        let refused = Outcome::Refused {
            error: "private address".into(),
        };
        assert!(matches!(
            decide(Http, 1, &refused, None, now(), 0.0),
            Decision::Failed { .. }
        ));
    }

    #[test]
    fn retry_after_is_honoured_up_to_six_hours() {
        let soon = Outcome::Response {
            status: 429,
            retry_after: Some(now() + Duration::seconds(2)),
        };
        assert_eq!(
            delay(decide(Http, 1, &soon, None, now(), 0.9)),
            Duration::seconds(2)
        );
        let far = Outcome::Response {
            status: 503,
            retry_after: Some(now() + Duration::days(3)),
        };
        assert_eq!(
            delay(decide(Http, 1, &far, None, now(), 0.0)),
            RETRY_AFTER_CAP
        );
        let past = Outcome::Response {
            status: 503,
            retry_after: Some(now() - Duration::days(1)),
        };
        assert_eq!(
            delay(decide(Http, 1, &past, None, now(), 0.0)),
            Duration::zero()
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        assert_eq!(
            parse_retry_after("120", now()),
            Some(now() + Duration::seconds(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now()), Some(now()));
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 12:00:30 GMT", now()),
            Some(now() + Duration::seconds(30))
        );
        // A date decades away backs off no longer than the cap.
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2099 12:00:00 GMT", now()),
            Some(now() + RETRY_AFTER_CAP)
        );
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-5", now()), None);
        assert_eq!(parse_retry_after("99999999999999999999", now()), None);
    }
}
