//! Wake-ups: one connection per process listens for new work and turns each
//! notification into a coalesced wake-up of whoever waits for it.
//!
//! Two channels are heard. `switchyard_deliveries` is notified by whatever makes
//! deliveries due: ingest right after its commits (coalesced), a replay, a re-run, a
//! bulk replay or a resume in its transaction. It wakes the delivery claimer.
//! `apalis::job::insert` is notified by a trigger when side jobs are pushed (once per
//! queue per statement; see the migrations); it wakes that queue's apalis workers, as a
//! poll strategy.
//!
//! Why one listener: apalis-postgres gives every worker a LISTEN connection of its own,
//! read only when that worker is ready for more work. Under load the notifications
//! backed up on those sockets and the server, blocked writing them inside a transaction,
//! held back the xmin horizon: no dead row could be vacuumed, and every claim slowed
//! until deliveries fell behind for good. Here each notification is read as it comes.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::Stream;
use futures::task::AtomicWaker;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use switchyard_domain::store::queue::DELIVERIES_CHANNEL;
use tokio::sync::Notify;

/// The channel apalis-postgres's insert trigger notifies.
const JOBS_CHANNEL: &str = "apalis::job::insert";
/// How long to wait before listening again after the connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// One kind of work's wake-up signal: a count of wake-ups, the tasks waiting for the
/// next one, and the wakers of its streams.
#[derive(Default)]
pub struct Signal {
    count: AtomicU64,
    notify: Notify,
    streams: Mutex<Vec<Weak<AtomicWaker>>>,
}

impl Signal {
    pub fn wake(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
        if let Ok(mut streams) = self.streams.lock() {
            streams.retain(|stream| match stream.upgrade() {
                Some(waker) => {
                    waker.wake();
                    true
                }
                None => false,
            });
        }
    }

    /// The wake-ups so far: take it before looking for work, then wait with
    /// [`Signal::changed_since`], so a wake-up that comes while looking is not missed.
    pub fn seen(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Returns once a wake-up has come since `seen`.
    pub async fn changed_since(&self, seen: u64) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.seen() != seen {
                return;
            }
            notified.await;
        }
    }
}

/// The wake-up signals of a process: the delivery claimer's and one per side queue, fed
/// by [`Wakeups::listen`].
#[derive(Clone)]
pub struct Wakeups {
    deliveries: Arc<Signal>,
    queues: Arc<HashMap<&'static str, Arc<Signal>>>,
}

impl Wakeups {
    pub fn new(side_queues: &[&'static str]) -> Wakeups {
        let queues = side_queues
            .iter()
            .map(|queue| (*queue, Arc::default()))
            .collect();
        Wakeups {
            deliveries: Arc::default(),
            queues: Arc::new(queues),
        }
    }

    /// The delivery claimer's signal.
    pub fn deliveries(&self) -> Arc<Signal> {
        self.deliveries.clone()
    }

    /// A stream that yields whenever `queue` was woken since it last yielded (any number
    /// of wake-ups make one item): a poll strategy for that queue's apalis workers.
    pub fn stream(&self, queue: &str) -> Wake {
        let signal = self.queues[queue].clone();
        let waker = Arc::new(AtomicWaker::new());
        if let Ok(mut streams) = signal.streams.lock() {
            streams.push(Arc::downgrade(&waker));
        }
        let seen = signal.seen();
        Wake {
            signal,
            waker,
            seen,
        }
    }

    fn wake_queue(&self, queue: &str) {
        if let Some(signal) = self.queues.get(queue) {
            signal.wake();
        }
    }

    fn wake_all(&self) {
        self.deliveries.wake();
        for signal in self.queues.values() {
            signal.wake();
        }
    }

    /// Reads notifications until the process ends, listening again whenever the
    /// connection is lost. Everything is woken after a reconnect, since work made
    /// meanwhile was announced to nobody.
    pub async fn listen(self, pool: PgPool) {
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::debug!(error = %e, "wake-ups: cannot connect; retrying");
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            };
            if let Err(e) = listener
                .listen_all([DELIVERIES_CHANNEL, JOBS_CHANNEL])
                .await
            {
                tracing::debug!(error = %e, "wake-ups: cannot listen; retrying");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
            self.wake_all();
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) if notification.channel() == DELIVERIES_CHANNEL => {
                        self.deliveries.wake();
                    }
                    Ok(Some(notification)) => {
                        // The trigger sends `{"job_type": …, "id": …}`.
                        let inserted: serde_json::Value =
                            serde_json::from_str(notification.payload()).unwrap_or_default();
                        match inserted["job_type"].as_str() {
                            Some(queue) => self.wake_queue(queue),
                            None => self.wake_all(),
                        }
                    }
                    // The connection dropped and was made again: notifications sent
                    // meanwhile are lost.
                    Ok(None) => self.wake_all(),
                    Err(e) => {
                        tracing::debug!(error = %e, "wake-ups: listener failed; reconnecting");
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                        break;
                    }
                }
            }
        }
    }
}

/// A side queue's wake-up stream (see [`Wakeups::stream`]). It registers its task's
/// waker on every poll, before it looks, so a wake-up that comes after it said "nothing
/// yet" still wakes the task.
pub struct Wake {
    signal: Arc<Signal>,
    waker: Arc<AtomicWaker>,
    seen: u64,
}

impl Stream for Wake {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let this = self.get_mut();
        this.waker.register(cx.waker());
        let count = this.signal.seen();
        if count == this.seen {
            return Poll::Pending;
        }
        this.seen = count;
        Poll::Ready(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn many_pushes_make_one_wake_up_and_only_for_their_queue() {
        let wakeups = Wakeups::new(&["a", "b"]);
        let mut a = wakeups.stream("a");
        let mut b = wakeups.stream("b");
        for _ in 0..100 {
            wakeups.wake_queue("a");
        }
        assert_eq!(a.next().await, Some(()));
        let quiet = tokio::time::timeout(Duration::from_millis(100), a.next()).await;
        assert!(quiet.is_err(), "a hundred pushes, one wake-up");
        let quiet = tokio::time::timeout(Duration::from_millis(100), b.next()).await;
        assert!(quiet.is_err(), "queue b was not pushed to");
        wakeups.wake_all();
        assert_eq!(b.next().await, Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_after_the_stream_said_nothing_yet_wakes_its_task() {
        let wakeups = Wakeups::new(&["a"]);
        let mut a = wakeups.stream("a");
        let waiting = tokio::spawn(async move { a.next().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        wakeups.wake_queue("a");
        let woken = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert_eq!(woken.expect("woken").expect("task"), Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_while_the_claimer_looked_is_not_spent() {
        let wakeups = Wakeups::new(&[]);
        let signal = wakeups.deliveries();
        let seen = signal.seen();
        // Comes while the claimer is busy claiming, before it waits.
        signal.wake();
        let woken = tokio::time::timeout(Duration::from_secs(1), signal.changed_since(seen)).await;
        assert!(woken.is_ok(), "the wake-up during the claim counts");
        let seen = signal.seen();
        let quiet = tokio::time::timeout(Duration::from_secs(1), signal.changed_since(seen)).await;
        assert!(quiet.is_err(), "and only once");
        let waiting = tokio::spawn({
            let signal = signal.clone();
            async move { signal.changed_since(seen).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        signal.wake();
        let woken = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(woken.is_ok(), "a waiting claimer is woken");
    }
}
