//! A side worker that stopped on an error (its database went away: a restart, a
//! failover, a network cut) is started again by the monitor at once; this backend
//! wrapper makes the new run wait a moment before it touches the database, so an outage
//! that lasts is not a busy loop of failing starts. The wait is a timer the worker
//! polls, never a blocked thread.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{Backend, WorkerContext};
use apalis_core::backend::{BackendConfig, WireFormatBackend};
use futures::FutureExt;
use tokio::time::Sleep;

/// `inner`, untouched until `pause` has passed.
pub struct Rested<B> {
    inner: B,
    pause: Option<Pin<Box<Sleep>>>,
}

impl<B> Rested<B> {
    /// The first run starts at once; a restart waits `pause`.
    pub fn new(inner: B, restarts: usize, pause: Duration) -> Rested<B> {
        Rested {
            inner,
            pause: (restarts > 0).then(|| Box::pin(tokio::time::sleep(pause))),
        }
    }

    fn rested(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(pause) = &mut self.pause {
            futures::ready!(pause.poll_unpin(cx));
            self.pause = None;
        }
        Poll::Ready(())
    }
}

impl<B: Backend> Backend for Rested<B> {
    type Task = B::Task;
    type Error = B::Error;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), B::Error>> {
        futures::ready!(self.rested(cx));
        self.inner.poll_ready(cx, worker)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<B::Task, B::Error>>> {
        futures::ready!(self.rested(cx));
        self.inner.poll_next(cx, worker)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), B::Error>> {
        self.inner.poll_close(cx, worker)
    }
}

impl<B: BackendConfig> BackendConfig for Rested<B> {
    type Args = B::Args;
    type Id = B::Id;
    type Kind = B::Kind;
    type Config = B::Config;
    type Layer = B::Layer;

    fn config(&self) -> &B::Config {
        self.inner.config()
    }

    fn middleware(&mut self, worker: &mut WorkerContext) -> B::Layer {
        self.inner.middleware(worker)
    }
}

impl<B: WireFormatBackend> WireFormatBackend for Rested<B> {
    type Codec = B::Codec;
    type Compact = B::Compact;

    fn codec(&self) -> &B::Codec {
        self.inner.codec()
    }
}
