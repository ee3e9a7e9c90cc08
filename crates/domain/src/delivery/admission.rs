//! Whether a due delivery may be sent, as far as its destination's state goes: the rule
//! the claim applies to every delivery it picks up, in due order. Pure; the store reads
//! the destination's standing, asks [`admit`] for each of its deliveries, and writes the
//! answers back in the claim's transaction. Rate limits and budgets come after this, in
//! [`limits::gate`](super::limits::gate).

use chrono::{DateTime, Utc};

use super::DestinationState;
use crate::ids::DeliveryId;

/// What the claim knows of a destination while it decides about its deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub state: DestinationState,
    /// While backing off: when sending may start again.
    pub paused_until: Option<DateTime<Utc>>,
    /// While the breaker is open: the delivery chosen to probe it, and when it may go.
    pub probe: Option<DeliveryId>,
    pub probe_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send it now; `probe` when it is the open breaker's probe.
    Send { probe: bool },
    /// Not before this time. No attempt is spent: it is `pending` again, due then.
    WaitUntil(DateTime<Utc>),
    /// `held` until a person resumes the destination or a probe closes its breaker.
    Hold,
}

/// Decides about one due delivery of the destination. While the breaker is open and no
/// probe is chosen, the first delivery asked about becomes the probe, and `standing`
/// records it, so the deliveries after it in the same claim are held.
pub fn admit(standing: &mut Standing, delivery: &DeliveryId, now: DateTime<Utc>) -> Admission {
    match standing.state {
        DestinationState::Active => Admission::Send { probe: false },
        DestinationState::BackingOff => match standing.paused_until {
            Some(until) if until > now => Admission::WaitUntil(until),
            _ => Admission::Send { probe: false },
        },
        DestinationState::Paused => Admission::Hold,
        DestinationState::AutoDisabled => {
            let probe = standing.probe.get_or_insert_with(|| delivery.clone());
            if probe != delivery {
                return Admission::Hold;
            }
            match standing.probe_at {
                Some(at) if at > now => Admission::WaitUntil(at),
                _ => Admission::Send { probe: true },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn standing(state: DestinationState) -> Standing {
        Standing {
            state,
            paused_until: None,
            probe: None,
            probe_at: None,
        }
    }

    /// Every state, each with the times that matter to it: what a delivery comes to.
    #[test]
    fn admission_table() {
        let now = Utc::now();
        let later = now + Duration::seconds(30);
        let earlier = now - Duration::seconds(1);
        let this = DeliveryId::generate();
        let other = DeliveryId::generate();
        let cases = [
            (
                standing(DestinationState::Active),
                Admission::Send { probe: false },
            ),
            (
                Standing {
                    paused_until: Some(later),
                    ..standing(DestinationState::BackingOff)
                },
                Admission::WaitUntil(later),
            ),
            (
                Standing {
                    paused_until: Some(earlier),
                    ..standing(DestinationState::BackingOff)
                },
                Admission::Send { probe: false },
            ),
            (standing(DestinationState::Paused), Admission::Hold),
            (
                Standing {
                    probe: Some(other.clone()),
                    probe_at: Some(earlier),
                    ..standing(DestinationState::AutoDisabled)
                },
                Admission::Hold,
            ),
            (
                Standing {
                    probe: Some(this.clone()),
                    probe_at: Some(later),
                    ..standing(DestinationState::AutoDisabled)
                },
                Admission::WaitUntil(later),
            ),
            (
                Standing {
                    probe: Some(this.clone()),
                    probe_at: Some(earlier),
                    ..standing(DestinationState::AutoDisabled)
                },
                Admission::Send { probe: true },
            ),
        ];
        for (mut given, expected) in cases {
            let before = given.clone();
            assert_eq!(admit(&mut given, &this, now), expected, "{before:?}");
        }
    }

    #[test]
    fn an_open_breaker_without_a_probe_takes_the_first_delivery_and_holds_the_rest() {
        let now = Utc::now();
        let cooled = now + Duration::minutes(5);
        let mut open = Standing {
            probe_at: Some(cooled),
            ..standing(DestinationState::AutoDisabled)
        };
        let (first, second) = (DeliveryId::generate(), DeliveryId::generate());
        assert_eq!(admit(&mut open, &first, now), Admission::WaitUntil(cooled));
        assert_eq!(open.probe, Some(first.clone()));
        assert_eq!(admit(&mut open, &second, now), Admission::Hold);
        // Its cool-down over, the probe goes.
        assert_eq!(
            admit(&mut open, &first, cooled),
            Admission::Send { probe: true }
        );
    }
}
