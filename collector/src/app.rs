//! Wiring: binds the listeners, starts the components, and shuts them down in order.
//!
//! Shutdown order (on the `shutdown` token, or when a server fails):
//! 1. `/ready` turns false; the OTLP receivers stop accepting and finish in-flight requests;
//! 2. the pipeline drains: every queued batch is written and answered;
//! 3. the store is flushed;
//! 4. the forward senders stop (requests in flight get their answer; the rest stays queued);
//! 5. the query and admin servers stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Readiness};
use crate::config::{StorageBackend, ValidatedConfig};
use crate::derived::Derived;
use crate::error::RunError;
use crate::forward::ForwardRuntime;
use crate::metrics::Metrics;
use crate::pipeline::pipeline;
use crate::query::{self, QueryState};
use crate::receiver::{Ingest, grpc, http};
use crate::store::{EmbeddedStore, MemoryStore, NullStore, SpanStore};

/// The OTLP/gRPC server's HTTP/2 receive window per stream: one typical export (512 spans,
/// ~250 KB) fits with room to spare. Memory is bounded by the request size limit and the
/// decode budget, not by the window.
const GRPC_STREAM_WINDOW_BYTES: u32 = 1 << 20;
/// The largest HTTP/2 frame the OTLP/gRPC server accepts.
const GRPC_MAX_FRAME_BYTES: u32 = 1 << 20;
/// The receive window per connection (several streams in flight).
const GRPC_CONNECTION_WINDOW_BYTES: u32 = 4 << 20;
/// How long the pipeline may take to drain at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The addresses actually bound (useful with port 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundAddrs {
    /// OTLP/gRPC.
    pub grpc: SocketAddr,
    /// OTLP/HTTP.
    pub http: SocketAddr,
    /// Query API.
    pub query: SocketAddr,
    /// Admin.
    pub admin: SocketAddr,
}

/// A started collector.
#[derive(Debug)]
pub struct Running {
    addrs: BoundAddrs,
    metrics: Arc<Metrics>,
    task: JoinHandle<Result<(), RunError>>,
}

impl Running {
    /// The bound addresses.
    pub fn addrs(&self) -> BoundAddrs {
        self.addrs
    }

    /// The collector's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Waits until the collector has shut down (after the `shutdown` token is cancelled).
    pub async fn wait(self) -> Result<(), RunError> {
        self.task.await.unwrap_or_else(|e| {
            Err(RunError::Panicked {
                component: "supervisor",
                message: e.to_string(),
            })
        })
    }
}

/// Runs the collector until `shutdown` is cancelled, then shuts down in order.
pub async fn run(config: ValidatedConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    start(config, shutdown).await?.wait().await
}

/// Binds and starts everything with the configured store; returns once serving.
pub async fn start(
    config: ValidatedConfig,
    shutdown: CancellationToken,
) -> Result<Running, RunError> {
    let store: Arc<dyn SpanStore> = match config.backend() {
        StorageBackend::None => Arc::new(NullStore),
        StorageBackend::Memory => {
            Arc::new(MemoryStore::new(config.config().storage.memory_max_spans))
        }
        StorageBackend::Embedded => {
            let settings = config.embedded();
            let dir = settings.dir.clone();
            // Opening replays the write-ahead log: blocking I/O, off the async threads.
            let opened = tokio::task::spawn_blocking(move || EmbeddedStore::open(settings))
                .await
                .map_err(|e| RunError::Panicked {
                    component: "store",
                    message: e.to_string(),
                })?;
            Arc::new(opened.map_err(|source| RunError::OpenStore { dir, source })?)
        }
    };
    start_with_store(config, store, shutdown).await
}

async fn bind(component: &'static str, addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind {
            component,
            addr,
            source,
        })
}

fn local_addr(
    component: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, RunError> {
    listener.local_addr().map_err(|source| RunError::Bind {
        component,
        addr,
        source,
    })
}

/// Like [`start`], with a caller-provided store (tests, benchmarks, other engines).
pub async fn start_with_store(
    config: ValidatedConfig,
    store: Arc<dyn SpanStore>,
    shutdown: CancellationToken,
) -> Result<Running, RunError> {
    let c = config.config();
    let grpc_listener = bind("otlp-grpc", c.receiver.grpc_listen).await?;
    let http_listener = bind("otlp-http", c.receiver.http_listen).await?;
    let query_listener = bind("query", c.query.listen).await?;
    let admin_listener = bind("admin", c.admin.listen).await?;
    let addrs = BoundAddrs {
        grpc: local_addr("otlp-grpc", &grpc_listener, c.receiver.grpc_listen)?,
        http: local_addr("otlp-http", &http_listener, c.receiver.http_listen)?,
        query: local_addr("query", &query_listener, c.query.listen)?,
        admin: local_addr("admin", &admin_listener, c.admin.listen)?,
    };

    let metrics = Arc::new(Metrics::default());
    // Forward queues are recovered before anything is received (blocking I/O, off the runtime).
    let upstreams = config.upstreams();
    let forward = if upstreams.is_empty() {
        None
    } else {
        let data_dir = c.storage.data_dir.clone();
        let runtime = ForwardRuntime::start(data_dir, c.forwarding.clone(), upstreams).await?;
        metrics.set_forward(Arc::clone(runtime.forwarder().metrics()));
        Some(runtime)
    };
    let (sender, worker) = pipeline(
        c.pipeline.capacity,
        c.pipeline.max_queued_spans,
        Arc::clone(&store),
        Arc::clone(&metrics),
    );
    let derived = Derived::new(&c.spanmetrics, &c.servicegraph).map(Arc::new);
    let worker = worker.with_derived(derived.clone());
    let worker = worker.with_forward(forward.as_ref().map(|f| Arc::clone(f.forwarder())));
    let probe = sender.probe();
    let worker = tokio::task::spawn_blocking(move || worker.run());
    let ingest = Arc::new(
        Ingest::new(sender, Arc::clone(&metrics), config.retry_after())
            .with_decode_budget(c.receiver.max_in_flight_bytes),
    );
    let ready = Arc::new(Readiness::default());
    let max_bytes = c.receiver.max_request_bytes;

    let receivers_stop = CancellationToken::new();
    let servers_stop = CancellationToken::new();
    let mut receivers: JoinSet<(&'static str, Result<(), RunError>)> = JoinSet::new();
    let mut servers: JoinSet<(&'static str, Result<(), RunError>)> = JoinSet::new();

    let grpc_service = grpc::service(Arc::clone(&ingest), max_bytes);
    let grpc_layer = grpc::ResourceExhaustedLayer::new(Arc::clone(&metrics));
    let stop = receivers_stop.clone();
    receivers.spawn(async move {
        let settings = grpc::server::H2Settings {
            // HTTP/2's default 64 KiB windows make a 250 KB export wait for several
            // WINDOW_UPDATE round trips; a request up to the window is sent at once.
            stream_window: GRPC_STREAM_WINDOW_BYTES,
            connection_window: GRPC_CONNECTION_WINDOW_BYTES,
            // Fewer, larger DATA frames per export (HTTP/2's default is 16 KiB).
            max_frame_size: GRPC_MAX_FRAME_BYTES,
        };
        let service = tower::Layer::layer(&grpc_layer, grpc_service);
        grpc::server::serve(grpc_listener, service, settings, stop).await;
        ("otlp-grpc", Ok(()))
    });
    receivers.spawn(serve_http(
        "otlp-http",
        http_listener,
        http::router(Arc::clone(&ingest), max_bytes),
        receivers_stop.clone(),
    ));
    servers.spawn(serve_http(
        "query",
        query_listener,
        query::router(
            QueryState::new(Arc::clone(&store), Arc::clone(&metrics)).with_derived(derived.clone()),
        ),
        servers_stop.clone(),
    ));
    servers.spawn(serve_http(
        "admin",
        admin_listener,
        admin::router(
            Arc::clone(&metrics),
            Arc::clone(&store),
            probe,
            Arc::clone(&ready),
            derived,
        ),
        servers_stop.clone(),
    ));
    ready.set(true);
    tracing::info!(
        otlp_grpc = %addrs.grpc,
        otlp_http = %addrs.http,
        query = %addrs.query,
        admin = %addrs.admin,
        "tracelight collector listening"
    );

    let supervisor = Supervisor {
        receivers,
        servers,
        receivers_stop,
        servers_stop,
        ready,
        ingest,
        worker,
        store,
        forward,
    };
    let task = tokio::spawn(supervisor.run(shutdown));
    Ok(Running {
        addrs,
        metrics,
        task,
    })
}

async fn serve_http(
    component: &'static str,
    listener: TcpListener,
    router: axum::Router,
    stop: CancellationToken,
) -> (&'static str, Result<(), RunError>) {
    // Answers are written at once, not held back by Nagle for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .map_err(|source| RunError::Serve { component, source });
    (component, result)
}

struct Supervisor {
    receivers: JoinSet<(&'static str, Result<(), RunError>)>,
    servers: JoinSet<(&'static str, Result<(), RunError>)>,
    receivers_stop: CancellationToken,
    servers_stop: CancellationToken,
    ready: Arc<Readiness>,
    ingest: Arc<Ingest>,
    worker: JoinHandle<()>,
    store: Arc<dyn SpanStore>,
    forward: Option<ForwardRuntime>,
}

/// Keeps the first error; logs the others.
fn note(
    first: &mut Option<RunError>,
    joined: Result<(&'static str, Result<(), RunError>), tokio::task::JoinError>,
    expected: bool,
) {
    let error = match joined {
        Ok((_, Ok(()))) if expected => return,
        Ok((component, Ok(()))) => RunError::Stopped(component),
        Ok((_, Err(e))) => e,
        Err(e) => RunError::Panicked {
            component: "server",
            message: e.to_string(),
        },
    };
    tracing::error!(error = %error, "collector component failed");
    first.get_or_insert(error);
}

impl Supervisor {
    async fn run(mut self, shutdown: CancellationToken) -> Result<(), RunError> {
        let mut first_error = None;
        tokio::select! {
            () = shutdown.cancelled() => tracing::info!("shutdown requested"),
            Some(joined) = self.receivers.join_next() => note(&mut first_error, joined, false),
            Some(joined) = self.servers.join_next() => note(&mut first_error, joined, false),
        }
        self.ready.set(false);

        tracing::info!("stopping OTLP receivers");
        self.receivers_stop.cancel();
        while let Some(joined) = self.receivers.join_next().await {
            note(&mut first_error, joined, true);
        }
        // The receivers held the other pipeline senders; this was the last one.
        drop(self.ingest);

        tracing::info!("draining pipeline");
        match tokio::time::timeout(DRAIN_TIMEOUT, self.worker).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(RunError::Panicked {
                    component: "pipeline",
                    message: e.to_string(),
                });
            }
            Err(_) => {
                first_error.get_or_insert(RunError::DrainTimeout(DRAIN_TIMEOUT));
            }
        }

        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(RunError::Flush(e));
            }
            Err(e) => {
                first_error.get_or_insert(RunError::Panicked {
                    component: "store",
                    message: e.to_string(),
                });
            }
        }

        if let Some(forward) = self.forward {
            tracing::info!("stopping forwarding");
            forward.shutdown().await;
        }

        self.servers_stop.cancel();
        while let Some(joined) = self.servers.join_next().await {
            note(&mut first_error, joined, true);
        }
        match first_error {
            None => {
                tracing::info!("collector stopped");
                Ok(())
            }
            Some(e) => Err(e),
        }
    }
}
