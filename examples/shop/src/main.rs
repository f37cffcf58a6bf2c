//! Run with: `cargo run -p shop -- demo`. See `examples/shop/README.md`.
//!
//! Exit codes: 0 clean stop, 1 runtime failure, 2 bad command line or configuration.

use std::process::ExitCode;
use std::time::Duration;

use shop::config::{ConfigError, SystemEnv};

fn main() -> ExitCode {
    let Some(command) = std::env::args().nth(1) else {
        eprintln!("{}", shop::USAGE);
        return ExitCode::from(2);
    };
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{}", shop::USAGE);
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("shop: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(shop::run(&command, &SystemEnv));
    // A service stopped by SIGTERM may still have a thread blocked reading stdin.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shop {command}: {e:#}");
            let usage = e.is::<ConfigError>() || e.is::<shop::UsageError>();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
