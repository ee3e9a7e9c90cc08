//! The claim's decision, made in Rust between reading and writing: expired leases
//! settle first, then the due deliveries take turns across destinations, and each
//! destination's state ([`admit`]) and limits ([`gate`]) decide about its deliveries in
//! due order. Nothing here touches the database.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{Candidate, ClaimRequest, Locked, earliest};
use crate::delivery::admission::{Admission, Standing, admit};
use crate::delivery::limits::{LimitState, Limits, Verdict, gate};
use crate::delivery::{DeliveryStatus, DestinationKind, Transition};
use crate::ids::{AttemptId, DeliveryId, DestinationId, TeamId};

pub(super) const LOST: &str =
    "no outcome was recorded before the attempt's lease ran out: its worker stopped or stalled";
pub(super) const UNKNOWN_FIRE: &str = "the fire's lease ran out before its outcome was recorded (its \
worker stopped or stalled): it may have started a session, so it is not fired again";

/// A delivery that is not started: where it goes instead.
pub(super) struct Move {
    pub(super) id: DeliveryId,
    pub(super) transition: Transition,
    pub(super) next_attempt_at: Option<DateTime<Utc>>,
    pub(super) slot_at: Option<DateTime<Utc>>,
    pub(super) error: Option<String>,
}

/// A routine fire whose lease ran out: it may have started a session, so it is not
/// fired again.
pub(super) struct Unknown {
    pub(super) team: TeamId,
    pub(super) delivery: DeliveryId,
    pub(super) destination: DestinationId,
}

/// What the claim decided, written by [`apply`] and [`start`].
#[derive(Default)]
pub(super) struct Plan {
    pub(super) starts: Vec<(DeliveryId, AttemptId, bool)>,
    pub(super) moves: Vec<Move>,
    /// Attempts whose lease ran out without an outcome.
    pub(super) lost: Vec<AttemptId>,
    pub(super) unknown: Vec<Unknown>,
    /// Probes chosen by this claim.
    pub(super) probes: Vec<(DestinationId, DeliveryId)>,
    /// Open breakers whose probe this claim settled as unknown: they need another.
    pub(super) reprobe: Vec<(TeamId, DestinationId, Option<DateTime<Utc>>)>,
    /// New limit state of limited destinations.
    pub(super) limits: Vec<(DestinationId, LimitState)>,
    pub(super) next_due: Option<DateTime<Utc>>,
    /// Destinations with due deliveries that could not be sent for now: no room in
    /// this claimer, or at their concurrency limit. They go when a send ends.
    pub(super) blocked: HashSet<DestinationId>,
    pub(super) crowded: bool,
}

/// Decides about every candidate: expired leases first, then the due deliveries taking
/// turns across destinations (each destination's oldest, then each one's next, …), each
/// destination's in due order.
pub(super) fn plan(
    candidates: Vec<Candidate>,
    mut locked: HashMap<DestinationId, Locked>,
    request: &ClaimRequest<'_>,
    now: DateTime<Utc>,
) -> Plan {
    let mut plan = Plan::default();
    let mut standings: HashMap<DestinationId, Standing> = HashMap::new();
    let mut room: HashMap<DestinationId, usize> = HashMap::new();
    let mut limits: HashMap<DestinationId, Limits> = HashMap::new();
    for c in &candidates {
        let standing = locked
            .get(&c.destination_id)
            .map_or_else(|| c.standing(), |l| l.standing.clone());
        standings
            .entry(c.destination_id.clone())
            .or_insert(standing);
        let busy = request.busy.get(&c.destination_id).copied().unwrap_or(0);
        room.entry(c.destination_id.clone())
            .or_insert(request.per_destination.saturating_sub(busy));
        if c.limited {
            limits.insert(c.destination_id.clone(), c.limits.0);
        }
    }
    let chosen_before: HashMap<DestinationId, Option<DeliveryId>> = standings
        .iter()
        .map(|(d, s)| (d.clone(), s.probe.clone()))
        .collect();
    for c in in_turns(candidates) {
        let standing = standings
            .get_mut(&c.destination_id)
            .expect("a standing per candidate's destination");
        if c.taken_over && c.kind == DestinationKind::Routine {
            plan.lost.extend(c.current_attempt_id.clone());
            if standing.probe.as_ref() == Some(&c.id) {
                standing.probe = None;
                plan.reprobe.push((
                    c.team_id.clone(),
                    c.destination_id.clone(),
                    standing.probe_at,
                ));
            }
            plan.moves.push(Move {
                id: c.id.clone(),
                transition: Transition::LoseFire,
                next_attempt_at: None,
                slot_at: None,
                error: Some(UNKNOWN_FIRE.to_owned()),
            });
            plan.unknown.push(Unknown {
                team: c.team_id,
                delivery: c.id,
                destination: c.destination_id,
            });
            continue;
        }
        let waiting = |transition, at| Move {
            id: c.id.clone(),
            transition,
            next_attempt_at: at,
            slot_at: None,
            error: None,
        };
        let decided = match admit(standing, &c.id, now) {
            Admission::Hold => waiting(Transition::Hold, None),
            Admission::WaitUntil(at) => {
                plan.next_due = earliest(plan.next_due, Some(at));
                waiting(Transition::Defer, Some(at))
            }
            Admission::Send { probe } => {
                let free = room
                    .get_mut(&c.destination_id)
                    .expect("room per destination");
                if *free == 0 {
                    plan.crowded = true;
                    plan.blocked.insert(c.destination_id.clone());
                    continue;
                }
                if plan.starts.len() >= request.limit {
                    continue;
                }
                let verdict = match (
                    limits.get(&c.destination_id),
                    locked.get_mut(&c.destination_id),
                ) {
                    (Some(destination_limits), Some(l)) => {
                        let (verdict, next) = gate(destination_limits, l.limits, c.slot_at, now);
                        l.limits = next;
                        if verdict == Verdict::Send {
                            l.limits.in_flight += 1;
                        }
                        verdict
                    }
                    _ => Verdict::Send,
                };
                match verdict {
                    // It stays due (a taken-over one too: its attempt is lost either
                    // way), and goes when a send of its destination ends.
                    Verdict::Busy { .. } => {
                        plan.crowded = true;
                        plan.blocked.insert(c.destination_id.clone());
                        if c.taken_over {
                            waiting(Transition::Defer, Some(now))
                        } else if c.slot_at.is_some() {
                            // Keeps its place in the queue; gives up its rate slot.
                            waiting(Transition::wait_in(c.status), c.next_attempt_at)
                        } else {
                            continue;
                        }
                    }
                    Verdict::Wait {
                        until, reserved, ..
                    } => {
                        plan.next_due = earliest(plan.next_due, Some(until));
                        Move {
                            slot_at: reserved,
                            ..waiting(Transition::Throttle, Some(until))
                        }
                    }
                    Verdict::Send => {
                        *free -= 1;
                        plan.lost
                            .extend(c.current_attempt_id.clone().filter(|_| c.taken_over));
                        plan.starts.push((c.id, AttemptId::generate(), probe));
                        continue;
                    }
                }
            }
        };
        // Every move is one the table allows from where the delivery stands (the
        // claim read that under its lock); one that is not would be a bug here, so the
        // delivery is left as it is and the error said.
        if !decided.transition.leaves(c.status) {
            tracing::error!(delivery = %c.id, status = %c.status, transition = ?decided.transition,
                "a claim chose a move its delivery cannot make");
            continue;
        }
        plan.lost
            .extend(c.current_attempt_id.clone().filter(|_| c.taken_over));
        plan.moves.push(decided);
    }
    for (destination, standing) in &standings {
        if let Some(probe) = &standing.probe
            && chosen_before.get(destination) != Some(&standing.probe)
        {
            plan.probes.push((destination.clone(), probe.clone()));
        }
    }
    // A destination whose probe was settled above and got no new one from this claim
    // takes its oldest waiting one.
    plan.reprobe
        .retain(|(_, d, _)| standings.get(d).is_some_and(|s| s.probe.is_none()));
    plan.limits = locked
        .into_iter()
        .filter(|(d, _)| limits.contains_key(d))
        .map(|(d, l)| (d, l.limits))
        .collect();
    // Alerts lock their grouping rows: raised in one order by every claimer.
    plan.unknown
        .sort_by(|a, b| a.destination.cmp(&b.destination));
    plan
}

/// Expired leases in the order they ran out, then the due deliveries taking turns across
/// destinations (each destination's first, then each one's second, …), each
/// destination's in due order, its throttled ones first: they were looked at (and given
/// their rate slot) before its pending ones still waiting, so they are ahead of them.
pub(super) fn in_turns(candidates: Vec<Candidate>) -> Vec<Candidate> {
    let (mut ordered, due): (Vec<Candidate>, Vec<Candidate>) =
        candidates.into_iter().partition(|c| c.taken_over);
    let mut queues: Vec<Vec<Candidate>> = Vec::new();
    let mut index: HashMap<DestinationId, usize> = HashMap::new();
    let mut due = due;
    let key = |c: &Candidate| (c.status != DeliveryStatus::Throttled, c.next_attempt_at);
    due.sort_by(|a, b| (key(a), &a.id).cmp(&(key(b), &b.id)));
    for c in due {
        let i = *index.entry(c.destination_id.clone()).or_insert_with(|| {
            queues.push(Vec::new());
            queues.len() - 1
        });
        queues[i].push(c);
    }
    let mut queues: Vec<std::vec::IntoIter<Candidate>> =
        queues.into_iter().map(Vec::into_iter).collect();
    loop {
        let before = ordered.len();
        for queue in &mut queues {
            ordered.extend(queue.next());
        }
        if ordered.len() == before {
            return ordered;
        }
    }
}
