//! The `tracelight-loadgen` binary: see `tracelight-loadgen --help`.
//!
//! Exit codes: 0 done, 1 failure (including a run in which no request was acknowledged),
//! 2 bad command line.

use std::process::ExitCode;

use clap::Parser as _;
use tracelight_loadgen::{Cli, run_cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.validate() {
        eprintln!("tracelight-loadgen: {e:#}");
        return ExitCode::from(2);
    }
    match run_cli(&cli) {
        Ok(report) => {
            if cli.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.succeeded() {
                ExitCode::SUCCESS
            } else {
                eprintln!("tracelight-loadgen: no request was acknowledged");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("tracelight-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
