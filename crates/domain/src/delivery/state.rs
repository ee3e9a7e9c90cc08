//! Delivery and destination states, and which moves between them are allowed.
//! `can_become` on each is the specification, tested as a whole table. A delivery moves
//! only by the named [`Transition`](super::transition::Transition)s, each made by one
//! store function whose SQL names the states it leaves, where a concurrent change cannot
//! slip between check and write (a claim leaves `pending` or `throttled`, or `in_flight`
//! whose lease ran out; an outcome leaves `in_flight` with its attempt, fenced by the
//! attempt's id; a replay leaves a settled state), so a delivery never leaves
//! `succeeded` by accident and `unknown_outcome` waits for a person. Only a person
//! cancels a delivery, and only one still waiting (`pending`, `held`, `throttled`); a
//! replay takes a cancelled delivery like any settled one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)+
                    other => Err(format!(
                        concat!("unknown ", stringify!($name), " {:?}; expected one of: {}"),
                        other,
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// Where one delivery stands.
    DeliveryStatus {
        Pending => "pending",
        InFlight => "in_flight",
        Succeeded => "succeeded",
        Failed => "failed",
        Held => "held",
        Throttled => "throttled",
        UnknownOutcome => "unknown_outcome",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// Whether a destination is taking deliveries.
    DestinationState {
        Active => "active",
        Paused => "paused",
        AutoDisabled => "auto_disabled",
        BackingOff => "backing_off",
    }
);

string_enum!(
    /// What a destination is.
    DestinationKind {
        Http => "http",
        Routine => "routine",
        Slack => "slack",
        Email => "email",
    }
);

impl DeliveryStatus {
    /// Whether nothing more will happen to the delivery without a person.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Succeeded
                | DeliveryStatus::Failed
                | DeliveryStatus::UnknownOutcome
                | DeliveryStatus::Cancelled
        )
    }

    /// Whether a person may replay a delivery in this state: anything that is not
    /// waiting or being sent. Replaying a success is allowed on purpose (re-send).
    pub fn is_replayable(self) -> bool {
        self.is_final()
    }

    pub fn can_become(self, next: DeliveryStatus) -> bool {
        use DeliveryStatus::*;
        matches!(
            (self, next),
            (Pending, InFlight | Pending | Held | Throttled | Cancelled)
                | (
                    InFlight,
                    Succeeded | Failed | Pending | UnknownOutcome | InFlight | Held | Throttled
                )
                | (Held, Pending | Throttled | Cancelled)
                // A throttled delivery is claimed where it waits, or waits again.
                | (Throttled, InFlight | Throttled | Pending | Held | Cancelled)
                | (Succeeded | Failed | UnknownOutcome | Cancelled, Pending)
        )
    }
}

impl DestinationState {
    /// Who moves a destination where: a person pauses and resumes; a 429 backs it off
    /// and its time or a success ends that; the circuit breaker (or a receiver saying it
    /// is gone) disables it, and a probe or a person brings it back.
    pub fn can_become(self, next: DestinationState) -> bool {
        use DestinationState::*;
        matches!(
            (self, next),
            (Active, Paused | BackingOff | AutoDisabled)
                | (BackingOff, Active | BackingOff | Paused | AutoDisabled)
                | (AutoDisabled, Active | Paused)
                | (Paused, Active)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::*;
    use super::*;

    /// Every delivery transition, allowed or not: (from, the states it may become).
    #[test]
    fn delivery_transition_table() {
        use DeliveryStatus::*;
        let allowed: [(DeliveryStatus, &[DeliveryStatus]); 8] = [
            // Claimed, waiting out a back-off (or sent at once by a person), parked
            // behind its destination, or cancelled by a person.
            (Pending, &[InFlight, Pending, Held, Throttled, Cancelled]),
            // An outcome; a retry; a routine fire nobody can vouch for; an expired lease
            // taken over (sent again, or waiting, held or throttled like any claim); a
            // receiver that is gone (held for the destination).
            (
                InFlight,
                &[
                    Succeeded,
                    Failed,
                    Pending,
                    UnknownOutcome,
                    InFlight,
                    Held,
                    Throttled,
                ],
            ),
            (Succeeded, &[Pending]),
            (Failed, &[Pending]),
            // Released (at once, or into a rate slot), or cancelled.
            (Held, &[Pending, Throttled, Cancelled]),
            (Throttled, &[InFlight, Throttled, Pending, Held, Cancelled]),
            // Only a person's replay moves a settled delivery.
            (UnknownOutcome, &[Pending]),
            (Cancelled, &[Pending]),
        ];
        for (from, to) in allowed {
            for next in DeliveryStatus::ALL {
                assert_eq!(
                    from.can_become(*next),
                    to.contains(next),
                    "{from} -> {next}"
                );
            }
        }
    }

    /// Every destination transition, allowed or not.
    #[test]
    fn destination_transition_table() {
        use DestinationState::*;
        let allowed: [(DestinationState, &[DestinationState]); 4] = [
            (Active, &[Paused, BackingOff, AutoDisabled]),
            (BackingOff, &[Active, BackingOff, Paused, AutoDisabled]),
            (AutoDisabled, &[Active, Paused]),
            (Paused, &[Active]),
        ];
        for (from, to) in allowed {
            for next in DestinationState::ALL {
                assert_eq!(
                    from.can_become(*next),
                    to.contains(next),
                    "{from} -> {next}"
                );
            }
        }
    }

    #[test]
    fn only_settled_deliveries_are_replayable() {
        let replayable: Vec<_> = DeliveryStatus::ALL
            .iter()
            .copied()
            .filter(|s| s.is_replayable())
            .collect();
        assert_eq!(
            replayable,
            vec![Succeeded, Failed, UnknownOutcome, Cancelled]
        );
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for status in DeliveryStatus::ALL {
            assert_eq!(status.as_str().parse::<DeliveryStatus>().unwrap(), *status);
        }
        assert!("bogus".parse::<DeliveryStatus>().is_err());
    }
}
