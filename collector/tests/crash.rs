//! Crash safety with a real process: the collector binary is killed with SIGKILL while clients
//! are sending, restarted on the same data directory, and every span it had acknowledged must
//! be there. (Spans of requests in flight at the kill were never acknowledged; they may or may
//! not be stored.)

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::collections::HashMap;

#[path = "support/process.rs"]
mod process;

use process::{CollectorProcess, Load, stored_span_count};

/// Requests to see acknowledged before the kill.
const ACKED_BEFORE_KILL: usize = 120;
const SENDERS: u64 = 4;
const SPANS_PER_REQUEST: usize = 40;

/// The binary with the embedded store in `data_dir`.
fn spawn(data_dir: &std::path::Path) -> CollectorProcess {
    CollectorProcess::spawn(&[
        "--storage".as_ref(),
        "embedded".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_spans_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = spawn(dir.path());
    let client = reqwest::Client::new();
    let load = Load::start_with(SENDERS, SPANS_PER_REQUEST, &collector.http, 0);
    // Kill while the senders are mid-stream.
    load.wait_acked(ACKED_BEFORE_KILL).await;
    collector.kill();
    let acked = load.stop().await;
    assert!(acked.len() >= ACKED_BEFORE_KILL);

    // Restart on the same directory: every acknowledged span is there.
    let mut collector = spawn(dir.path());
    let ready = client
        .get(format!("{}/ready", collector.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let mut missing = Vec::new();
    let mut checked = 0;
    for traces in &acked {
        for (trace_id, spans) in traces {
            let found = stored_span_count(&client, &collector.query, trace_id).await;
            if found < *spans {
                missing.push(format!("{trace_id}: {found} of {spans} spans"));
            }
            checked += spans;
        }
    }
    collector.kill();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged traces lost spans after SIGKILL: {:?}",
        missing.len(),
        acked.iter().map(HashMap::len).sum::<usize>(),
        &missing[..missing.len().min(10)]
    );
    assert!(checked >= ACKED_BEFORE_KILL * SPANS_PER_REQUEST);
}
