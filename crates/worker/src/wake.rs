//! Waking the queue's workers when a task is pushed.
//!
//! A trigger NOTIFYs `apalis::job::insert` when tasks are pushed (once per queue per
//! statement; see the migrations). apalis-postgres's own
//! listener gives every worker a connection of its own, read only when that worker is
//! ready for more work. Under load the notifications backed up on those sockets, and the
//! server, blocked writing them inside a transaction, held back the xmin horizon: no dead
//! row could be vacuumed or pruned, and every fetch and claim slowed until deliveries
//! fell behind for good. Here one task per process reads every notification as it comes
//! and turns them into one coalesced wake-up per queue, on a single connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::Stream;
use futures::task::AtomicWaker;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

/// The channel apalis-postgres's insert trigger notifies.
const CHANNEL: &str = "apalis::job::insert";
/// How long to wait before listening again after the connection failed.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
/// A queue's wake-up is repeated this much later, and again each time while wake-ups
/// keep coming. A worker whose fetch was already running when a notification came spends
/// the wake-up on that fetch, which may not see the new tasks; the repeat sends it back
/// for them rather than leaving them to the fallback poll a second later. (A fetch still
/// running when the repeat comes is left to that poll.)
const FOLLOW_UP: Duration = Duration::from_millis(20);

/// One queue's wake-up signal: a count of wake-ups and the wakers of its streams.
#[derive(Default)]
struct Signal {
    count: AtomicU64,
    streams: Mutex<Vec<Weak<AtomicWaker>>>,
    follow_up_pending: AtomicBool,
}

impl Signal {
    fn wake(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
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
}

/// One wake-up signal per queue, fed by [`Wakeups::listen`].
#[derive(Clone)]
pub struct Wakeups {
    queues: Arc<HashMap<&'static str, Arc<Signal>>>,
}

impl Wakeups {
    pub fn new(queues: &[&'static str]) -> Wakeups {
        let queues = queues
            .iter()
            .map(|queue| (*queue, Arc::default()))
            .collect();
        Wakeups {
            queues: Arc::new(queues),
        }
    }

    /// A stream that yields whenever `queue` was woken since it last yielded (any number
    /// of wake-ups make one item): a poll strategy for that queue's workers.
    pub fn stream(&self, queue: &str) -> Wake {
        let signal = self.queues[queue].clone();
        let waker = Arc::new(AtomicWaker::new());
        if let Ok(mut streams) = signal.streams.lock() {
            streams.push(Arc::downgrade(&waker));
        }
        let seen = signal.count.load(Ordering::SeqCst);
        Wake {
            signal,
            waker,
            seen,
        }
    }

    /// Wakes `queue`'s workers now and again [`FOLLOW_UP`] later, repeating until a
    /// repeat finds no other wake-up came meanwhile (one repeater per queue).
    fn wake(&self, queue: &str) {
        let Some(signal) = self.queues.get(queue) else {
            return;
        };
        signal.wake();
        if !signal.follow_up_pending.swap(true, Ordering::SeqCst) {
            let signal = signal.clone();
            tokio::spawn(async move {
                loop {
                    let before = signal.count.load(Ordering::SeqCst);
                    tokio::time::sleep(FOLLOW_UP).await;
                    signal.wake();
                    // Only this repeat since: quiet, done.
                    if signal.count.load(Ordering::SeqCst) == before + 1 {
                        break;
                    }
                }
                signal.follow_up_pending.store(false, Ordering::SeqCst);
            });
        }
    }

    fn wake_all(&self) {
        for queue in self.queues.keys() {
            self.wake(queue);
        }
    }

    /// Reads notifications until the process ends, listening again whenever the
    /// connection is lost. Every queue is woken after a reconnect, since tasks pushed
    /// meanwhile were announced to nobody.
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
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::debug!(error = %e, "wake-ups: cannot listen; retrying");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
            self.wake_all();
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        // The trigger sends `{"job_type": …, "id": …}`.
                        let inserted: serde_json::Value =
                            serde_json::from_str(notification.payload()).unwrap_or_default();
                        match inserted["job_type"].as_str() {
                            Some(queue) => self.wake(queue),
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

/// A queue's wake-up stream (see [`Wakeups::stream`]). It registers its task's waker on
/// every poll, before it looks, so a wake-up that comes after it said "nothing yet" still
/// wakes the task.
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
        let count = this.signal.count.load(Ordering::SeqCst);
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
    async fn many_pushes_make_one_wake_up_and_its_repeat_and_only_for_their_queue() {
        let wakeups = Wakeups::new(&["a", "b"]);
        let mut a = wakeups.stream("a");
        let mut b = wakeups.stream("b");
        for _ in 0..100 {
            wakeups.wake("a");
        }
        assert_eq!(a.next().await, Some(()));
        // The one repeat, a moment later.
        let repeat = tokio::time::timeout(FOLLOW_UP * 5, a.next()).await;
        assert_eq!(repeat, Ok(Some(())));
        let quiet = tokio::time::timeout(FOLLOW_UP * 5, a.next()).await;
        assert!(
            quiet.is_err(),
            "a hundred pushes, one wake-up and one repeat"
        );
        let quiet = tokio::time::timeout(FOLLOW_UP * 5, b.next()).await;
        assert!(quiet.is_err(), "queue b was not pushed to");
        wakeups.wake_all();
        assert_eq!(b.next().await, Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_repeats_go_on_while_wake_ups_keep_coming_then_stop() {
        let wakeups = Wakeups::new(&["a"]);
        let mut a = wakeups.stream("a");
        wakeups.wake("a");
        assert_eq!(a.next().await, Some(()));
        tokio::time::sleep(FOLLOW_UP / 2).await;
        wakeups.wake("a");
        assert_eq!(a.next().await, Some(()));
        // A repeat at FOLLOW_UP; another came meanwhile, so one more after it; then none.
        let first = tokio::time::timeout(FOLLOW_UP, a.next()).await;
        assert_eq!(first, Ok(Some(())));
        let second = tokio::time::timeout(FOLLOW_UP * 2, a.next()).await;
        assert_eq!(second, Ok(Some(())));
        let quiet = tokio::time::timeout(FOLLOW_UP * 5, a.next()).await;
        assert!(quiet.is_err(), "the repeats stop once wake-ups do");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_after_the_stream_said_nothing_yet_wakes_its_task() {
        let wakeups = Wakeups::new(&["a"]);
        let mut a = wakeups.stream("a");
        let waiting = tokio::spawn(async move { a.next().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        wakeups.wake("a");
        let woken = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert_eq!(woken.expect("woken").expect("task"), Some(()));
    }
}
