//! Connections: how many may be open, how long one may sit idle or half-sent, and the loop
//! that serves them.
//!
//! At most `max` connections are open at once, and a connection only keeps its slot while it
//! serves a request whose headers arrived and whose body (if any) is being read after the
//! caller authenticated. A connection that is waiting for a request's headers (new, idle
//! between keep-alive requests, or a slowloris sending its headers a byte at a time), or that
//! is uploading a body nobody has authenticated yet (`/oauth2/token`), is *evictable*: when a
//! new connection arrives and every slot is taken, the connection evictable the longest is
//! closed to make room. So idle or half-sent sockets, however many, cannot lock a tenant out:
//! a tenant's new connection is admitted and sends its request at once, while an attacker
//! would have to open more connections than the limit in the few milliseconds that takes to
//! push it out again. Per-source-address limits were not chosen: behind a TLS-terminating
//! proxy every connection comes from the proxy, and on a shared NAT from one address.
//!
//! Only when every slot serves a request in progress is a new connection answered 503
//! (`Retry-After`, a JSON message) and closed, rather than left waiting in the kernel's
//! backlog where a client cannot tell a busy server from a dead one. Requests in progress are
//! bounded in time: headers by the header-read timeout (which also closes a keep-alive
//! connection idle that long), bodies by the body-read deadline ([`DeadlineBody`]) and
//! answers by the write-stall timeout (a client that stops reading its answer).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Sleep;
use tower_service::Service;

/// How long writing the 503 to a refused connection may take before it is just closed.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after an accept error (such as running out of file descriptors) before retrying.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The time bounds of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionTimeouts {
    /// Time to receive a request's headers, counted from when the server starts waiting for
    /// them: on a new connection and after each answer on a keep-alive one, so it is also
    /// the keep-alive idle timeout.
    pub header_read: Duration,
    /// Time an answer's bytes may wait for the client to read them before the connection is
    /// closed.
    pub write_stall: Duration,
}

/// Open, accepted, evicted and refused connection counts, and the slots themselves.
#[derive(Debug)]
pub struct ConnectionStats {
    max: usize,
    slots: Mutex<Slots>,
    refused: AtomicU64,
    accepted: AtomicU64,
    evicted: AtomicU64,
}

impl ConnectionStats {
    pub fn new(max: usize) -> ConnectionStats {
        ConnectionStats {
            max: max.max(1),
            slots: Mutex::new(Slots::default()),
            refused: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        self.slots.lock().open
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections answered 503 because every slot served a request in progress.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Idle or half-sent connections closed to make room for a new one.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Gives a new connection a slot, evicting the connection evictable the longest if every
    /// slot is taken; `None` if every slot serves a request in progress.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut slots = self.slots.lock();
        if slots.open >= self.max {
            let (_, victim) = slots.evictable.pop_first()?;
            let entry = slots.conns.get_mut(&victim)?;
            entry.since = None;
            entry.evicted = true;
            entry.evict.notify_one();
            slots.open -= 1;
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        slots.open += 1;
        let id = slots.next;
        slots.next += 1;
        let evict = Arc::new(Notify::new());
        slots.conns.insert(
            id,
            Entry {
                busy: 0,
                since: None,
                evicted: false,
                evict: evict.clone(),
            },
        );
        slots.mark_evictable(id);
        drop(slots);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            handle: ConnectionHandle {
                id,
                stats: self.clone(),
            },
            evict,
        })
    }

    /// Counts one more reason for connection `id` to keep its slot.
    fn hold(&self, id: u64) {
        let mut slots = self.slots.lock();
        let Some(entry) = slots.conns.get_mut(&id) else {
            return;
        };
        entry.busy += 1;
        if let Some(since) = entry.since.take() {
            slots.evictable.remove(&since);
        }
    }

    /// Drops one reason for connection `id` to keep its slot; with none left it is evictable.
    fn release(&self, id: u64) {
        let mut slots = self.slots.lock();
        let Some(entry) = slots.conns.get_mut(&id) else {
            return;
        };
        entry.busy = entry.busy.saturating_sub(1);
        if entry.busy == 0 && !entry.evicted {
            slots.mark_evictable(id);
        }
    }

    /// Whether connection `id` may be closed at once (nothing in progress on it).
    fn is_idle(&self, id: u64) -> bool {
        self.slots
            .lock()
            .conns
            .get(&id)
            .is_none_or(|entry| entry.busy == 0)
    }

    /// Frees the slot of a closed connection.
    fn close(&self, id: u64) {
        let mut slots = self.slots.lock();
        if let Some(entry) = slots.conns.remove(&id) {
            if let Some(since) = entry.since {
                slots.evictable.remove(&since);
            }
            if !entry.evicted {
                slots.open -= 1;
            }
        }
    }
}

/// The bookkeeping behind [`ConnectionStats`].
#[derive(Debug, Default)]
struct Slots {
    /// Connections counted against the limit (an evicted one stops counting at once).
    open: usize,
    /// The next connection id and evictable-since stamp (one sequence for both).
    next: u64,
    /// Evictable connections by the stamp of when they became evictable: the first one has
    /// been evictable the longest.
    evictable: BTreeMap<u64, u64>,
    conns: HashMap<u64, Entry>,
}

impl Slots {
    fn mark_evictable(&mut self, id: u64) {
        let stamp = self.next;
        self.next += 1;
        if let Some(entry) = self.conns.get_mut(&id) {
            entry.since = Some(stamp);
            self.evictable.insert(stamp, id);
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// Requests in progress that keep the slot (see [`ConnectionHandle::evictable_while`]).
    busy: usize,
    /// When the connection became evictable, if it is.
    since: Option<u64>,
    evicted: bool,
    evict: Arc<Notify>,
}

/// A connection's slot; dropping it frees the slot.
#[derive(Debug)]
struct Slot {
    handle: ConnectionHandle,
    evict: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.handle.stats.close(self.handle.id);
    }
}

/// The connection a request came on, in the request's extensions: lets a handler say that
/// the connection may be evicted while it waits for an unauthenticated body.
#[derive(Debug, Clone)]
pub struct ConnectionHandle {
    id: u64,
    stats: Arc<ConnectionStats>,
}

impl ConnectionHandle {
    /// Makes the connection evictable until the returned guard is dropped.
    pub fn evictable_while(&self) -> Evictable {
        self.stats.release(self.id);
        Evictable(self.clone())
    }

    fn busy(&self) -> Busy {
        self.stats.hold(self.id);
        Busy(self.clone())
    }
}

/// See [`ConnectionHandle::evictable_while`].
#[derive(Debug)]
pub struct Evictable(ConnectionHandle);

impl Drop for Evictable {
    fn drop(&mut self) {
        self.0.stats.hold(self.0.id);
    }
}

/// Keeps a connection's slot while a request is in progress on it.
#[derive(Debug)]
struct Busy(ConnectionHandle);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.stats.release(self.0.id);
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets every
/// connection finish the request in progress (idle ones close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stats: Arc<ConnectionStats>,
    timeouts: ConnectionTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed; retrying");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        match stats.admit() {
            Some(slot) => {
                let _ = stream.set_nodelay(true);
                tasks.spawn(serve_connection(
                    stream,
                    addr,
                    router.clone(),
                    slot,
                    timeouts,
                    stop_rx.clone(),
                ));
            }
            None => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(refuse(stream, stats.max));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

/// Serves one connection until it closes, is evicted or the server drains.
async fn serve_connection(
    stream: TcpStream,
    addr: SocketAddr,
    router: Router,
    slot: Slot,
    timeouts: ConnectionTimeouts,
    mut stop: watch::Receiver<bool>,
) {
    let write_pending = Arc::new(AtomicBool::new(false));
    let stream = StallLimitedStream {
        stream,
        write_stall: timeouts.write_stall,
        stalled: None,
        write_pending: write_pending.clone(),
    };
    let handle = slot.handle.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        let busy = handle.busy();
        request.extensions_mut().insert(ConnectInfo(addr));
        request.extensions_mut().insert(handle.clone());
        let mut router = router.clone();
        async move {
            let response = router.call(request).await?;
            Ok::<_, Infallible>(response.map(|body| WatchedBody { body, watch: busy }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %addr, "connection closed with an error");
                }
                break;
            }
            () = slot.evict.notified(), if !draining => {}
            _ = stop.wait_for(|stop| *stop), if !draining => {}
        }
        // Evicted, or the server drains. With nothing in progress and no answer left to flush
        // (idle, or half-sent headers, or an unauthenticated body), close at once; otherwise
        // finish the request in progress, then close.
        if slot.handle.stats.is_idle(slot.handle.id) && !write_pending.load(Ordering::Acquire) {
            break;
        }
        conn.as_mut().graceful_shutdown();
        draining = true;
    }
}

/// Answers a connection over the limit with a 503 and closes it.
async fn refuse(mut stream: TcpStream, max: usize) {
    let body = format!(
        "{{\"message\":\"the server already has {max} connections serving requests (its limit); retry after a short pause, or reuse connections (keep-alive) instead of opening many\"}}"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, write).await;
}

/// A body passed on as it comes, alongside a [`Watch`] that may end it early: what both the
/// answers (kept busy while they are written) and the request bodies (read by a deadline) are
/// wrapped in.
#[derive(Debug)]
pub struct WatchedBody<W> {
    body: Body,
    watch: W,
}

/// What a [`WatchedBody`] carries alongside its body.
pub trait Watch: Unpin {
    /// Ready with the error that ends the body once it is polled in vain; pending while the
    /// body may take its time.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<axum::Error>;
}

impl<W: Watch> http_body::Body for WatchedBody<W> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let error = ready!(self.watch.poll_end(cx));
        Poll::Ready(Some(Err(error)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An answer's body keeps its connection busy (not evictable) until hyper has written it and
/// drops it; it never ends the body.
impl Watch for Busy {
    fn poll_end(&mut self, _: &mut Context<'_>) -> Poll<axum::Error> {
        Poll::Pending
    }
}

/// A request body's deadline: the body fails with [`BodyReadTimeout`] once it passes, so that a
/// client sending a body a byte at a time cannot hold a request (and its slot) open.
#[derive(Debug)]
pub struct Deadline {
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl Watch for Deadline {
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<axum::Error> {
        ready!(self.sleep.as_mut().poll(cx));
        Poll::Ready(axum::Error::new(BodyReadTimeout(self.timeout)))
    }
}

/// A request body read by a deadline.
pub type DeadlineBody = WatchedBody<Deadline>;

impl DeadlineBody {
    /// The body must have arrived in full `timeout` from now.
    pub fn new(body: Body, timeout: Duration) -> DeadlineBody {
        let sleep = Box::pin(tokio::time::sleep(timeout));
        WatchedBody {
            body,
            watch: Deadline { sleep, timeout },
        }
    }
}

/// The error of a body that did not arrive within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
pub struct BodyReadTimeout(pub Duration);

/// A TCP stream whose writes fail once they have waited `write_stall` for the client to read.
#[derive(Debug)]
struct StallLimitedStream {
    stream: TcpStream,
    write_stall: Duration,
    /// Running while a write waits for the client.
    stalled: Option<Pin<Box<Sleep>>>,
    /// Shared with the connection's task: an answer is not fully handed to the kernel yet.
    write_pending: Arc<AtomicBool>,
}

impl StallLimitedStream {
    fn bound<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                self.write_pending.store(false, Ordering::Release);
                Poll::Ready(result)
            }
            Poll::Pending => {
                self.write_pending.store(true, Ordering::Release);
                let write_stall = self.write_stall;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(write_stall)));
                ready!(stalled.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not read its answer",
                )))
            }
        }
    }
}

impl AsyncRead for StallLimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallLimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.bound(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.bound(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.bound(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_evicts_the_connection_idle_longest_and_never_a_busy_one() {
        let stats = Arc::new(ConnectionStats::new(2));
        let first = stats.admit().expect("a free slot");
        let second = stats.admit().expect("a free slot");
        let _busy = second.handle.busy();
        let third = stats.admit().expect("the idle first connection makes room");
        assert_eq!(stats.evicted(), 1);
        assert_eq!(stats.open(), 2);
        let _busy_too = third.handle.busy();
        assert!(stats.admit().is_none(), "both slots serve requests");
        assert_eq!(
            stats.refused(),
            0,
            "refusals are counted by the accept loop"
        );
        drop(first);
        assert_eq!(stats.open(), 2, "an evicted connection no longer counted");
        drop(second);
        assert_eq!(stats.open(), 1);
    }

    #[test]
    fn a_connection_reading_an_unauthenticated_body_is_evictable() {
        let stats = Arc::new(ConnectionStats::new(1));
        let first = stats.admit().expect("a free slot");
        let busy = first.handle.busy();
        let waiting = first.handle.evictable_while();
        assert!(
            stats.admit().is_some(),
            "evicts the connection waiting for a body"
        );
        drop(waiting);
        drop(busy);
        assert_eq!(stats.evicted(), 1);
    }
}
