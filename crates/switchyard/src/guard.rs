//! What keeps a slow or greedy client from holding the server: a request's body must
//! arrive within a deadline (else 408, and the connection is closed), and one
//! client address may hold only so many connections open at once (over the cap a new
//! connection is closed at once). Connections from a trusted proxy are not capped: a load
//! balancer carries many clients, and caps them itself.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, web};
use futures::Stream;

/// Bounds the reading of the request's body by `deadline`, counted from when its head
/// arrived: a client that stalls or trickles gets 408 and its connection closed. The
/// handler reads the body as ever (a declared length over its limit is still refused
/// before a byte is read); a handler that answers without reading all of it has the
/// connection closed, so an unread body cannot hold it either.
pub async fn body_deadline(
    deadline: Duration,
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let has_body = req.headers().contains_key(TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if !has_body {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let reading = Rc::new(Reading::default());
    let inner = req.take_payload();
    let bounded = Bounded {
        inner,
        sleep: Box::pin(tokio::time::sleep(deadline)),
        reading: reading.clone(),
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(bounded),
    });
    let (http, res) = next.call(req).await?.into_parts();
    if reading.late.get() {
        let mut refused =
            HttpResponse::RequestTimeout().body("the request body did not arrive in time");
        refused
            .head_mut()
            .set_connection_type(ConnectionType::Close);
        return Ok(ServiceResponse::new(http, refused).map_into_right_body());
    }
    let mut res = res;
    if !reading.done.get() {
        res.head_mut().set_connection_type(ConnectionType::Close);
    }
    Ok(ServiceResponse::new(http, res).map_into_left_body())
}

/// What became of a body's reading.
#[derive(Default)]
struct Reading {
    /// The deadline passed before the body was read.
    late: Cell<bool>,
    /// The body was read to its end.
    done: Cell<bool>,
}

/// A body stream that fails once its deadline passes.
struct Bounded {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    reading: Rc<Reading>,
}

impl Stream for Bounded {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            if item.is_none() {
                self.reading.done.set(true);
            }
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.reading.late.set(true);
            let late =
                std::io::Error::new(std::io::ErrorKind::TimedOut, "the body arrived too slowly");
            return Poll::Ready(Some(Err(PayloadError::Io(late))));
        }
        Poll::Pending
    }
}

/// Open connections per client address.
#[derive(Clone, Default)]
pub struct Connections {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One counted connection: dropped with the connection, it is counted no more.
pub struct Counted {
    connections: Connections,
    ip: IpAddr,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Connections {
    /// Counts a new connection from `peer`: `None` when the address already holds `cap`
    /// open (the caller closes it), else the count to keep with the connection.
    pub fn admit(&self, peer: SocketAddr, cap: usize) -> Option<Counted> {
        let ip = peer.ip().to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Counted {
            connections: self.clone(),
            ip,
        })
    }
}
