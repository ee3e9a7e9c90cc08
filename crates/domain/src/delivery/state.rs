//! Delivery and destination states, and which moves between them are allowed.
//! `DeliveryStatus::can_become` is the specification; the store enforces it in SQL, where
//! a concurrent change cannot slip between check and write: every update names the state
//! it leaves (a claim leaves `pending`, an outcome leaves `in_flight` with its task, a
//! replay leaves a settled state), so a delivery never leaves `succeeded` by accident and
//! `unknown_outcome` waits for a person.

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
            (Pending, InFlight | Held | Throttled | Cancelled | Failed)
                | (
                    InFlight,
                    Succeeded | Failed | Pending | UnknownOutcome | InFlight | Held
                )
                | (Held, Pending | Cancelled | Throttled)
                // A throttled delivery is claimed where it waits, or waits again.
                | (Throttled, InFlight | Throttled | Pending | Held | Cancelled)
                | (Succeeded | Failed | UnknownOutcome | Cancelled, Pending)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::*;
    use super::*;

    #[test]
    fn transition_table() {
        // (from, to, allowed)
        let table = [
            (Pending, InFlight, true),
            (Pending, Succeeded, false),
            (InFlight, Succeeded, true),
            (InFlight, Failed, true),
            (InFlight, Pending, true),
            (InFlight, UnknownOutcome, true),
            // A worker that died mid-send leaves the delivery in flight; the next run
            // starts a new attempt from there.
            (InFlight, InFlight, true),
            // The receiver said it is gone (Slack's no_service): the delivery waits.
            (InFlight, Held, true),
            (Succeeded, Failed, false),
            (Succeeded, InFlight, false),
            (Failed, Pending, true),
            (Failed, Succeeded, false),
            (UnknownOutcome, InFlight, false),
            (UnknownOutcome, Pending, true),
            (Held, Pending, true),
            (Held, InFlight, false),
            (Throttled, Pending, true),
            (Throttled, InFlight, true),
            (Throttled, Throttled, true),
            (Throttled, Succeeded, false),
            (Pending, Throttled, true),
            (Cancelled, Pending, true),
            (Cancelled, InFlight, false),
        ];
        for (from, to, allowed) in table {
            assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
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
