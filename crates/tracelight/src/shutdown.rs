//! Waiting for the signal to stop.

/// Resolves when the process receives SIGTERM (Unix) or Ctrl-C.
///
/// Pass it to `axum::serve(..).with_graceful_shutdown(..)` so in-flight requests drain before
/// [`Telemetry::shutdown`](crate::Telemetry::shutdown) flushes telemetry. If a signal handler
/// cannot be installed, that source is ignored (and logged) rather than resolving at once.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(target: "tracelight", %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::warn!(target: "tracelight", %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(target: "tracelight", "Ctrl-C received, shutting down"),
        () = terminate => tracing::info!(target: "tracelight", "SIGTERM received, shutting down"),
    }
}
