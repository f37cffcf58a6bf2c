//! The `tracelight-collector` binary: parses the command line, loads the configuration and
//! runs the collector until SIGTERM or Ctrl-C.
//!
//! Exit codes: 0 clean stop (or valid `--check-config`), 1 runtime failure, 2 bad
//! configuration.

use std::process::ExitCode;

use clap::Parser as _;
use tokio_util::sync::CancellationToken;
use tracelight_collector::cli::Cli;
use tracelight_collector::config::ProcessEnv;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.load_config(&ProcessEnv) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tracelight-collector: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        match toml::to_string_pretty(config.config()) {
            Ok(text) => {
                println!("# configuration OK; effective settings:\n{text}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("tracelight-collector: cannot print configuration: {e}");
                return ExitCode::from(1);
            }
        }
    }
    // The team lead switches this to `tracelight::builder("tracelight-collector")` later.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(wait_for_signal(shutdown.clone()));
        tracelight_collector::run(config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "collector failed");
            ExitCode::from(1)
        }
    }
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("signal received, shutting down");
    shutdown.cancel();
}
