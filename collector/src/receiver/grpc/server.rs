//! The OTLP/gRPC server: accepts HTTP/2 (h2c) connections on a listener and serves each one
//! with hyper, running a connection's streams in the connection's own task.
//!
//! tonic's server (and hyper's `TokioExecutor`) spawns a task for every HTTP/2 stream. An OTLP
//! exporter sends one export at a time per connection (or a few), so each export was a new task
//! woken by the connection's task after it read the request, possibly on the other runtime
//! worker, and the response went back the same way. Here the connection's task polls the
//! stream itself while it is the connection's only one in flight, as hyper's HTTP/1.1 server
//! does with every request: the bytes are read, decoded and answered on one thread without a
//! task hand-off. A stream that arrives while another of the same connection is still in
//! flight is spawned as before, so a client that multiplexes many exports over one connection
//! (the OpenTelemetry Collector's exporter does) still has them served in parallel.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;
use futures_util::{FutureExt as _, StreamExt as _};
use hyper::server::conn::http2;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// HTTP/2 settings of the gRPC server.
#[derive(Debug, Clone, Copy)]
pub struct H2Settings {
    /// Receive window per stream, bytes.
    pub stream_window: u32,
    /// Receive window per connection, bytes.
    pub connection_window: u32,
    /// Largest frame accepted, bytes.
    pub max_frame_size: u32,
}

/// What [`serve`] runs for each request: a cloneable tower service answering gRPC over
/// HTTP/2 (the receiver's stack, [`super::ResourceExhausted`] around
/// [`super::raw::RawTraceServer`]).
pub trait GrpcService:
    tower::Service<
        http::Request<hyper::body::Incoming>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> GrpcService for S where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// How long the accept loop waits after an accept error that is not about one connection
/// (e.g. too many open files) before it tries again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `service` on `listener` until `stop` is cancelled, then stops accepting, lets every
/// connection finish the streams it has (HTTP/2 GOAWAY) and returns once all are closed.
/// Accept errors are logged and retried, so this only returns when stopped.
pub async fn serve<S: GrpcService>(
    listener: TcpListener,
    service: S,
    settings: H2Settings,
    stop: CancellationToken,
) {
    let (closing_tx, closing_rx) = watch::channel(false);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "otlp-grpc: accept failed; retrying");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            service.clone(),
            settings,
            closing_rx.clone(),
        ));
    }
    drop(listener);
    drop(closing_rx);
    // Connections watch `closing`: each one starts its graceful shutdown, and the sender's
    // `closed` resolves when the last connection has dropped its receiver.
    let _ = closing_tx.send(true);
    closing_tx.closed().await;
}

/// Errors that concern one connection only; the listener is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection<S: GrpcService>(
    stream: TcpStream,
    peer: SocketAddr,
    service: S,
    settings: H2Settings,
    mut closing: watch::Receiver<bool>,
) {
    // Without TCP_NODELAY a response's small trailing frames wait for the client's delayed
    // ACK (40 ms on Linux).
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, %peer, "otlp-grpc: TCP_NODELAY not set");
    }
    let streams = Arc::new(LocalStreams::default());
    let mut builder = http2::Builder::new(StreamExecutor {
        streams: Arc::clone(&streams),
    });
    builder
        .timer(TokioTimer::new())
        .initial_stream_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window)
        .max_frame_size(settings.max_frame_size);
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let mut driven = Driven::new(connection, streams);
    let mut shutting_down = *closing.borrow();
    if shutting_down {
        driven.connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = &mut driven => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "otlp-grpc: connection ended with an error");
                }
                break;
            }
            changed = closing.changed(), if !shutting_down => {
                // A closed channel (the server is gone) shuts down as well.
                let _ = changed;
                shutting_down = true;
                driven.connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The streams of one connection that run in the connection's task.
#[derive(Default)]
struct LocalStreams {
    /// Handed over by hyper (from inside the connection's poll), not yet polled.
    new: Mutex<Vec<BoxFuture<'static, ()>>>,
    /// Streams run locally and not finished: new or running.
    in_flight: AtomicUsize,
}

/// The executor hyper gets for a connection's streams: the first stream in flight runs in the
/// connection's task, any other one in a task of its own.
#[derive(Clone)]
struct StreamExecutor {
    streams: Arc<LocalStreams>,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        if self.streams.in_flight.load(Ordering::Relaxed) == 0 {
            self.streams.in_flight.fetch_add(1, Ordering::Relaxed);
            // A panic in a stream ends that stream only, as it would in a task of its own.
            let future = AssertUnwindSafe(future).catch_unwind().map(|_| ());
            self.streams.new.lock().push(Box::pin(future));
        } else {
            tokio::spawn(future);
        }
    }
}

/// How many times one poll of a connection's task may go round its connection and streams
/// before it yields to the runtime (a resource out of tokio's cooperative budget wakes the task
/// at once, so passes without a limit could spin).
const MAX_PASSES: usize = 16;

/// A connection and the streams it runs in its own task; done when the connection is closed and
/// its local streams have finished.
struct Driven<C, E> {
    connection: Pin<Box<C>>,
    streams: Arc<LocalStreams>,
    running: FuturesUnordered<BoxFuture<'static, ()>>,
    /// The connection's result, once it has ended.
    ended: Option<Result<(), E>>,
    wake: Arc<PassWake>,
    /// `wake` as a `Waker`, given to the connection and the streams.
    waker: Waker,
}

impl<C, E> Driven<C, E> {
    fn new(connection: C, streams: Arc<LocalStreams>) -> Self {
        let wake = Arc::new(PassWake::default());
        Self {
            connection: Box::pin(connection),
            streams,
            running: FuturesUnordered::new(),
            ended: None,
            waker: Waker::from(Arc::clone(&wake)),
            wake,
        }
    }
}

/// The waker of a connection and its local streams. The connection and a stream wake each
/// other all the time (a request's data for the stream, a response for the connection), and
/// both are polled by the same task: waking the task for that would poll it once more after it
/// already went round. So a wake while the task is going round only asks for another pass; any
/// other wake (the store's commit, the socket) wakes the task.
#[derive(Default)]
struct PassWake {
    task: AtomicWaker,
    passing: AtomicBool,
    woken: AtomicBool,
}

impl Wake for PassWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Sequentially consistent with `poll`'s end of passes: either this sees `passing`
        // cleared and wakes the task, or the task sees `woken` and goes round again.
        self.woken.store(true, Ordering::SeqCst);
        if !self.passing.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

impl<C, E> Future for Driven<C, E>
where
    C: Future<Output = Result<(), E>>,
    E: Unpin,
{
    type Output = Result<(), E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.wake.task.register(cx.waker());
        let mut inner = Context::from_waker(&this.waker);
        let mut passes = 0;
        loop {
            this.wake.passing.store(true, Ordering::SeqCst);
            this.wake.woken.store(false, Ordering::SeqCst);
            if this.ended.is_none()
                && let Poll::Ready(result) = this.connection.as_mut().poll(&mut inner)
            {
                this.ended = Some(result);
            }
            let new = std::mem::take(&mut *this.streams.new.lock());
            this.running.extend(new);
            while let Poll::Ready(Some(())) = this.running.poll_next_unpin(&mut inner) {
                this.streams.in_flight.fetch_sub(1, Ordering::Relaxed);
            }
            this.wake.passing.store(false, Ordering::SeqCst);
            if !this.wake.woken.load(Ordering::SeqCst) {
                break;
            }
            passes += 1;
            if passes == MAX_PASSES {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        match this.ended.take() {
            Some(result) if this.running.is_empty() => Poll::Ready(result),
            ended => {
                this.ended = ended;
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests;
