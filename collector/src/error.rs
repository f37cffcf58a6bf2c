//! The error of [`crate::run`].

use std::net::SocketAddr;

use crate::store::StoreError;

/// Why the collector could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A listener could not be bound.
    #[error("cannot listen for {component} on {addr}: {source}")]
    Bind {
        /// `otlp-grpc`, `otlp-http`, `query` or `admin`.
        component: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP server failed while running.
    #[error("{component} server failed: {source}")]
    Serve {
        /// The component.
        component: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A server task ended without being asked to.
    #[error("{0} server stopped unexpectedly")]
    Stopped(&'static str),
    /// A task panicked.
    #[error("{component} task panicked: {message}")]
    Panicked {
        /// The component.
        component: &'static str,
        /// The join error text.
        message: String,
    },
    /// The pipeline did not drain in time; queued spans may be lost.
    #[error("pipeline did not drain within {0:?}")]
    DrainTimeout(std::time::Duration),
    /// The store could not be opened (or its write-ahead log not replayed).
    #[error("cannot open the store in {}: {source}", dir.display())]
    OpenStore {
        /// The data directory.
        dir: std::path::PathBuf,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The final store flush failed.
    #[error("store flush failed: {0}")]
    Flush(#[source] StoreError),
    /// Forwarding could not start (queue recovery, TLS or endpoint setup).
    #[error("cannot start forwarding: {0}")]
    Forward(#[from] crate::forward::ForwardError),
}
