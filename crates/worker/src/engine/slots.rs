//! Send slots: how many attempts this process sends at once, and how many of them each
//! destination holds. A claim asks for no more deliveries than it holds free slots, so
//! a claimed delivery never waits in memory while its lease runs; each started attempt
//! keeps its slot until its outcome is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchyard_domain::ids::DestinationId;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

pub struct Slots {
    permits: Arc<Semaphore>,
    busy: Mutex<HashMap<DestinationId, usize>>,
    freed: Notify,
}

/// One attempt's slot, given back when it is dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    destination: DestinationId,
    slots: Arc<Slots>,
}

impl Slots {
    pub fn new(count: usize) -> Arc<Slots> {
        Arc::new(Slots {
            permits: Arc::new(Semaphore::new(count.max(1))),
            busy: Mutex::default(),
            freed: Notify::new(),
        })
    }

    /// Waits for a free slot, then takes every free one up to `max`.
    pub async fn reserve(&self, max: usize) -> Vec<OwnedSemaphorePermit> {
        let Ok(first) = self.permits.clone().acquire_owned().await else {
            // The semaphore is never closed.
            return Vec::new();
        };
        let mut reserved = vec![first];
        while reserved.len() < max {
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => reserved.push(permit),
                Err(_) => break,
            }
        }
        reserved
    }

    /// The attempts in flight now, by destination.
    pub fn busy(&self) -> HashMap<DestinationId, usize> {
        self.busy.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Makes a reserved slot an attempt's.
    pub fn assign(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        destination: DestinationId,
    ) -> Slot {
        if let Ok(mut busy) = self.busy.lock() {
            *busy.entry(destination.clone()).or_default() += 1;
        }
        Slot {
            _permit: permit,
            destination,
            slots: self.clone(),
        }
    }

    /// Returns once an attempt has given its slot back (at once if one did since the
    /// last call).
    pub async fn freed(&self) {
        self.freed.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
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
        let second = slots.assign(reserved.next().unwrap(), a.clone());
        drop(reserved);
        assert_eq!(slots.busy().get(&a), Some(&2));
        drop(first);
        assert_eq!(slots.busy().get(&a), Some(&1));
        // One slot went back unused and one with the attempt: two are free.
        assert_eq!(slots.reserve(10).await.len(), 2);
        drop(second);
        assert!(slots.busy().is_empty());
        tokio::time::timeout(std::time::Duration::from_secs(1), slots.freed())
            .await
            .expect("a slot given back is noticed");
    }
}
