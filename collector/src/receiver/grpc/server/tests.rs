#![allow(clippy::unwrap_used, reason = "test assertions")]

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::*;

const SETTINGS: H2Settings = H2Settings {
    stream_window: 1 << 20,
    connection_window: 4 << 20,
    max_frame_size: 1 << 20,
};

type Response = http::Response<tonic::body::Body>;

fn ok() -> Response {
    http::Response::new(tonic::body::Body::empty())
}

async fn start<S: GrpcService>(service: S) -> (SocketAddr, CancellationToken, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(listener, service, SETTINGS, stop.clone()));
    (addr, stop, server)
}

/// One HTTP/2 connection; every request sent through the handle shares it.
async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    send
}

fn request() -> http::Request<Empty<Bytes>> {
    http::Request::post(
        "http://127.0.0.1/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    )
    .body(Empty::new())
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_runs_its_only_stream_in_its_own_task_and_spawns_the_others() {
    // Each request records the task it runs in; the first one waits for the second, so both
    // are in flight on one connection at once.
    let tasks = Arc::new(Mutex::new(Vec::new()));
    let second_arrived = Arc::new(Notify::new());
    let seen = Arc::clone(&tasks);
    let arrived = Arc::clone(&second_arrived);
    let service = tower::service_fn(move |_request: http::Request<hyper::body::Incoming>| {
        let seen = Arc::clone(&seen);
        let arrived = Arc::clone(&arrived);
        async move {
            let index = {
                let mut seen = seen.lock();
                seen.push(tokio::task::id());
                seen.len()
            };
            match index {
                1 => arrived.notified().await,
                2 => arrived.notify_one(),
                _ => {}
            }
            Ok::<_, Infallible>(ok())
        }
    });
    let (addr, stop, server) = start(service).await;
    let mut send = connect(addr).await;

    let first = send.send_request(request());
    let first = tokio::spawn(first);
    while tasks.lock().is_empty() {
        tokio::task::yield_now().await;
    }
    let second = send.send_request(request()).await.unwrap();
    assert_eq!(second.status(), http::StatusCode::OK);
    assert_eq!(first.await.unwrap().unwrap().status(), http::StatusCode::OK);
    // Alone in flight again.
    send.send_request(request()).await.unwrap();

    let tasks = tasks.lock().clone();
    assert_eq!(tasks.len(), 3);
    assert_ne!(
        tasks[0], tasks[1],
        "a second stream in flight gets a task of its own"
    );
    assert_eq!(
        tasks[0], tasks[2],
        "a connection's only stream runs in the connection's task"
    );
    stop.cancel();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_finishes_the_streams_in_flight_and_closes_the_listener() {
    let release = Arc::new(Notify::new());
    let started = Arc::new(Notify::new());
    let (release_in, started_in) = (Arc::clone(&release), Arc::clone(&started));
    let service = tower::service_fn(move |_request: http::Request<hyper::body::Incoming>| {
        let (release, started) = (Arc::clone(&release_in), Arc::clone(&started_in));
        async move {
            started.notify_one();
            release.notified().await;
            Ok::<_, Infallible>(ok())
        }
    });
    let (addr, stop, server) = start(service).await;
    let mut send = connect(addr).await;
    let in_flight = tokio::spawn(send.send_request(request()));
    started.notified().await;

    stop.cancel();
    // The server waits for the stream in flight.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!server.is_finished());
    release.notify_one();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_stream_ends_alone_and_its_connection_serves_on() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let service = tower::service_fn(move |_request: http::Request<hyper::body::Incoming>| {
        let call = counted.fetch_add(1, Ordering::Relaxed);
        async move {
            assert!(
                call != 0,
                "the first request's handler panics (expected in this test)"
            );
            Ok::<_, Infallible>(ok())
        }
    });
    let (addr, stop, server) = start(service).await;
    let mut send = connect(addr).await;
    assert!(send.send_request(request()).await.is_err());
    let response = send.send_request(request()).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    stop.cancel();
    server.await.unwrap();
}

/// A stream that wakes itself at every poll (as a tokio resource does when the task's
/// cooperative budget is spent) must not keep the connection's task from yielding: on a
/// one-thread runtime the task that lets the stream finish could never run.
#[test]
fn a_stream_that_always_wakes_itself_lets_other_tasks_run() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let service = tower::service_fn(|_request: http::Request<hyper::body::Incoming>| {
                let ready = Arc::new(AtomicBool::new(false));
                let setter = Arc::clone(&ready);
                tokio::spawn(async move { setter.store(true, Ordering::Relaxed) });
                std::future::poll_fn(move |cx| {
                    if ready.load(Ordering::Relaxed) {
                        Poll::Ready(Ok::<_, Infallible>(ok()))
                    } else {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                })
            });
            let (addr, stop, server) = start(service).await;
            let mut send = connect(addr).await;
            let response = send.send_request(request()).await.unwrap();
            assert_eq!(response.status(), http::StatusCode::OK);
            stop.cancel();
            server.await.unwrap();
        });
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the connection's task spun instead of yielding");
}
