//! The `tracelight-collector` binary: parses the command line, loads the configuration and
//! runs the collector until SIGTERM or Ctrl-C.
//!
//! Exit codes: 0 clean stop (or valid `--check-config`), 1 runtime failure, 2 bad
//! configuration.

use std::process::ExitCode;

use clap::Parser as _;
use tokio_util::sync::CancellationToken;
use tracelight::env::{ENV_TRACES_EXPORTER, EnvLookup, SystemEnv};
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracelight-collector: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        // The collector's own logs, traces and metrics, through tracelight. Its spans are not
        // exported unless OTEL_TRACES_EXPORTER asks for it: by default the OTLP endpoint would
        // be this collector itself, and exporting to yourself is a feedback loop.
        let env = EnvWithDefaults {
            env: SystemEnv,
            defaults: &[(ENV_TRACES_EXPORTER, "none")],
        };
        let telemetry = match tracelight::builder("tracelight-collector")
            .service_version(env!("CARGO_PKG_VERSION"))
            .env(env)
            .init()
        {
            Ok(t) => t,
            Err(e) => {
                eprintln!("tracelight-collector: telemetry configuration error: {e}");
                return ExitCode::from(2);
            }
        };
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            tracelight::shutdown_signal().await;
            signal.cancel();
        });
        let result = tracelight_collector::run(config, shutdown).await;
        let code = match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "collector failed");
                ExitCode::from(1)
            }
        };
        telemetry.shutdown().await;
        code
    })
}

/// The process environment, with fallbacks for variables it does not set.
struct EnvWithDefaults {
    env: SystemEnv,
    defaults: &'static [(&'static str, &'static str)],
}

impl EnvLookup for EnvWithDefaults {
    fn get(&self, key: &str) -> Option<String> {
        self.env.get(key).or_else(|| {
            self.defaults
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        })
    }
}
