//! Every move a delivery makes between states, named: one variant per move, each made
//! by one store function. A move says which states it leaves and the one it enters; the
//! store binds those in its SQL (`WHERE status = ANY(from)`, `SET status = to`) rather
//! than spelling states out, and the tests check the whole table against
//! [`DeliveryStatus::can_become`] both ways: every move is allowed, and every allowed
//! change is some move.

use super::DeliveryStatus::{self, *};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// A claim starts a send under a lease: a due delivery, or one whose lease ran out
    /// (`claim::write::start`).
    Start,
    /// A claim leaves it pending: until a back-off or a probe's cool-down ends, or due
    /// again at once (`claim::write::apply`).
    Defer,
    /// A claim gives it a rate slot, or waits for a budget window.
    Throttle,
    /// A claim parks it behind its paused or disabled destination.
    Hold,
    /// A routine fire whose lease ran out: it may have started a session, so a person
    /// decides.
    LoseFire,
    /// The answer was a success (`outcomes`).
    Succeed,
    /// The answer asks for another attempt later.
    Retry,
    /// Retries are exhausted, or the answer is final.
    Fail,
    /// Nobody can say whether the send took effect.
    Doubt,
    /// The receiver says it is gone for good: the delivery waits for the destination to
    /// be mended.
    Park,
    /// The attempt was never sent (its lease would not cover it): due again at once.
    GiveBack,
    /// The oldest waiting delivery becomes the breaker's next probe
    /// (`breaker::next_probe`).
    Probe,
    /// A person resumes the destination: its held deliveries are due at once
    /// (`destinations::resume`)…
    Release,
    /// …or, under a rate limit, each in its slot.
    ReleaseIntoSlots,
    /// A person replays a settled delivery (`deliveries::replay`, bulk replays).
    Replay,
    /// A person sends a delivery waiting for its next attempt now
    /// (`deliveries::retry_now`).
    RetryNow,
    /// A person cancels a delivery that is still waiting (`deliveries::cancel`).
    Cancel,
}

impl Transition {
    pub const ALL: &'static [Transition] = &[
        Transition::Start,
        Transition::Defer,
        Transition::Throttle,
        Transition::Hold,
        Transition::LoseFire,
        Transition::Succeed,
        Transition::Retry,
        Transition::Fail,
        Transition::Doubt,
        Transition::Park,
        Transition::GiveBack,
        Transition::Probe,
        Transition::Release,
        Transition::ReleaseIntoSlots,
        Transition::Replay,
        Transition::RetryNow,
        Transition::Cancel,
    ];

    /// The states the move leaves.
    pub fn from(self) -> &'static [DeliveryStatus] {
        match self {
            // What a claim locks: due deliveries, and expired leases.
            Transition::Start | Transition::Defer | Transition::Throttle | Transition::Hold => {
                &[Pending, Throttled, InFlight]
            }
            Transition::LoseFire
            | Transition::Succeed
            | Transition::Retry
            | Transition::Fail
            | Transition::Doubt
            | Transition::Park
            | Transition::GiveBack => &[InFlight],
            Transition::Probe => &[Held, Pending, Throttled],
            Transition::Release | Transition::ReleaseIntoSlots => &[Held, Pending],
            Transition::Replay => &[Succeeded, Failed, UnknownOutcome, Cancelled],
            Transition::RetryNow => &[Pending],
            Transition::Cancel => &[Pending, Held, Throttled],
        }
    }

    /// The state the move enters.
    pub fn to(self) -> DeliveryStatus {
        match self {
            Transition::Start => InFlight,
            Transition::Defer
            | Transition::Retry
            | Transition::GiveBack
            | Transition::Probe
            | Transition::Release
            | Transition::Replay
            | Transition::RetryNow => Pending,
            Transition::Throttle | Transition::ReleaseIntoSlots => Throttled,
            Transition::Hold | Transition::Park => Held,
            Transition::LoseFire | Transition::Doubt => UnknownOutcome,
            Transition::Succeed => Succeeded,
            Transition::Fail => Failed,
            Transition::Cancel => Cancelled,
        }
    }

    /// Whether the move may be made from `status`.
    pub fn leaves(self, status: DeliveryStatus) -> bool {
        self.from().contains(&status)
    }

    /// The states it leaves, as the store binds them.
    pub fn from_names(self) -> Vec<&'static str> {
        self.from().iter().map(|s| s.as_str()).collect()
    }

    /// The claim's move that leaves a delivery waiting where it is: throttled in its
    /// rate slot, or pending.
    pub fn wait_in(status: DeliveryStatus) -> Transition {
        match status {
            Throttled => Transition::Throttle,
            _ => Transition::Defer,
        }
    }

    /// The move an answer to a send makes, for the state the retry policy chose.
    pub fn after_send(next: DeliveryStatus) -> Option<Transition> {
        [
            Transition::Succeed,
            Transition::Retry,
            Transition::Fail,
            Transition::Doubt,
            Transition::Park,
        ]
        .into_iter()
        .find(|t| t.to() == next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_move_is_allowed_and_every_allowed_change_is_a_move() {
        for t in Transition::ALL {
            for from in t.from() {
                assert!(from.can_become(t.to()), "{t:?}: {from} -> {}", t.to());
            }
        }
        for from in DeliveryStatus::ALL {
            for to in DeliveryStatus::ALL {
                if from.can_become(*to) {
                    assert!(
                        Transition::ALL
                            .iter()
                            .any(|t| t.leaves(*from) && t.to() == *to),
                        "{from} -> {to} is allowed but no move makes it"
                    );
                }
            }
        }
    }

    #[test]
    fn an_answer_maps_to_one_move() {
        assert_eq!(Transition::after_send(Succeeded), Some(Transition::Succeed));
        assert_eq!(Transition::after_send(Pending), Some(Transition::Retry));
        assert_eq!(Transition::after_send(Held), Some(Transition::Park));
        assert_eq!(Transition::after_send(InFlight), None);
    }
}
