//! Serve an [`axum::Router`] on a loopback ephemeral port for tests that need a real socket.
//!
//! The router is served with `into_make_service_with_connect_info::<SocketAddr>()`, so
//! handlers and middleware that extract `ConnectInfo<SocketAddr>` work.

use std::fmt;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running HTTP server on `127.0.0.1` with an ephemeral port.
///
/// Dropping it starts a graceful shutdown: no new connections are accepted and in-flight
/// requests finish in the background. Use [`TestServer::shutdown`] to wait for that.
pub struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0` and serves `router` on a tokio task.
    ///
    /// # Panics
    ///
    /// Panics if a loopback port can't be bound.
    pub async fn spawn(router: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test server on 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of the test server");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
            if let Err(err) = result {
                eprintln!("tracelight-testkit: test server failed: {err}");
            }
        });
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An absolute URL for `path` on this server, e.g. `url("/metrics")` →
    /// `http://127.0.0.1:PORT/metrics`. A missing leading `/` is added.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("http://{}{path}", self.addr)
        } else {
            format!("http://{}/{path}", self.addr)
        }
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    ///
    /// Idle keep-alive connections held by a client are closed by the server; a client in the
    /// middle of a slow request keeps this waiting until the request completes.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // A panicked or cancelled server task has nothing left to wait for.
            let _ = task.await;
        }
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
