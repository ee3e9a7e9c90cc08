//! Send slots: how many attempts this process sends at once, and how many of them each
//! destination holds. An attempt holds a slot while it is sent; once its answer is in
//! it waits for its outcome's commit without one (and without its event's body), still
//! holding a place among a bounded number of attempts in progress (twice the slots). A
//! claim asks for no more deliveries than it can start on both counts, so a claimed
//! delivery never waits in memory while its lease runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchyard_domain::ids::DestinationId;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Attempts in progress (sending, or waiting for their outcome's commit) per send slot.
pub const IN_PROGRESS_PER_SLOT: usize = 2;

pub struct Slots {
    sending: Arc<Semaphore>,
    in_progress: Arc<Semaphore>,
    busy: Mutex<HashMap<DestinationId, usize>>,
    freed: Notify,
}

/// Room for one attempt: a send slot and a place among the attempts in progress.
pub struct Reserved {
    send: OwnedSemaphorePermit,
    progress: OwnedSemaphorePermit,
}

/// One attempt's slot. [`Slot::sent`] gives the send slot back; dropping it gives back
/// everything.
pub struct Slot {
    send: Option<OwnedSemaphorePermit>,
    _progress: OwnedSemaphorePermit,
    destination: DestinationId,
    slots: Arc<Slots>,
}

impl Slots {
    pub fn new(count: usize) -> Arc<Slots> {
        let count = count.max(1);
        Arc::new(Slots {
            sending: Arc::new(Semaphore::new(count)),
            in_progress: Arc::new(Semaphore::new(count * IN_PROGRESS_PER_SLOT)),
            busy: Mutex::default(),
            freed: Notify::new(),
        })
    }

    /// Waits for room for one attempt, then takes all there is, up to `max`.
    pub async fn reserve(&self, max: usize) -> Vec<Reserved> {
        let (Ok(progress), Ok(send)) = (
            self.in_progress.clone().acquire_owned().await,
            self.sending.clone().acquire_owned().await,
        ) else {
            // The semaphores are never closed.
            return Vec::new();
        };
        let mut reserved = vec![Reserved { send, progress }];
        while reserved.len() < max {
            let (Ok(progress), Ok(send)) = (
                self.in_progress.clone().try_acquire_owned(),
                self.sending.clone().try_acquire_owned(),
            ) else {
                break;
            };
            reserved.push(Reserved { send, progress });
        }
        reserved
    }

    /// The attempts being sent now, by destination.
    pub fn busy(&self) -> HashMap<DestinationId, usize> {
        self.busy.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Makes reserved room an attempt's.
    pub fn assign(self: &Arc<Self>, reserved: Reserved, destination: DestinationId) -> Slot {
        if let Ok(mut busy) = self.busy.lock() {
            *busy.entry(destination.clone()).or_default() += 1;
        }
        Slot {
            send: Some(reserved.send),
            _progress: reserved.progress,
            destination,
            slots: self.clone(),
        }
    }

    /// Returns once a send ended or an attempt's outcome was recorded (at once if one
    /// did since the last call).
    pub async fn freed(&self) {
        self.freed.notified().await;
    }
}

impl Slot {
    /// The answer is in: the send slot goes back; the attempt stays in progress until
    /// its outcome is recorded.
    pub fn sent(&mut self) {
        if self.send.take().is_none() {
            return;
        }
        if let Ok(mut busy) = self.slots.busy.lock()
            && let Some(n) = busy.get_mut(&self.destination)
        {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.destination);
            }
        }
        self.slots.freed.notify_one();
    }
}

impl Drop for Slot {
    /// The attempt is over (its outcome recorded): its place in progress goes back, and
    /// the claimer hears of it too, since a destination's concurrency limit counts the
    /// attempt until its outcome is in.
    fn drop(&mut self) {
        self.sent();
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reservation_takes_the_free_slots_and_assigned_ones_count_per_destination() {
        let slots = Slots::new(3);
        let reserved = slots.reserve(10).await;
        assert_eq!(reserved.len(), 3);
        let mut reserved = reserved.into_iter();
        let a = DestinationId::generate();
        let first = slots.assign(reserved.next().unwrap(), a.clone());
        let mut second = slots.assign(reserved.next().unwrap(), a.clone());
        drop(reserved);
        assert_eq!(slots.busy().get(&a), Some(&2));
        drop(first);
        assert_eq!(slots.busy().get(&a), Some(&1));
        // One slot went back unused and one with the attempt: two are free.
        assert_eq!(slots.reserve(10).await.len(), 2);
        // Sent, the second waits for its commit without its send slot.
        second.sent();
        assert!(slots.busy().is_empty());
        assert_eq!(slots.reserve(10).await.len(), 3);
        tokio::time::timeout(std::time::Duration::from_secs(1), slots.freed())
            .await
            .expect("a slot given back is noticed");
        drop(second);
    }

    #[tokio::test]
    async fn attempts_waiting_for_their_commits_are_bounded_too() {
        let slots = Slots::new(1);
        let destination = DestinationId::generate();
        let mut waiting = Vec::new();
        for _ in 0..IN_PROGRESS_PER_SLOT {
            let reserved = slots.reserve(10).await.into_iter().next().unwrap();
            let mut slot = slots.assign(reserved, destination.clone());
            slot.sent();
            waiting.push(slot);
        }
        let full = tokio::time::timeout(std::time::Duration::from_millis(50), slots.reserve(1));
        assert!(full.await.is_err(), "no room while two wait for commits");
        waiting.pop();
        assert_eq!(slots.reserve(10).await.len(), 1);
    }
}
