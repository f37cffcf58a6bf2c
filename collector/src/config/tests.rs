//! Precedence, validation and naming of the collector's settings.

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_validate() {
    let v = Config::default().validate().unwrap();
    assert_eq!(
        v.config().receiver.grpc_listen.to_string(),
        DEFAULT_GRPC_LISTEN
    );
    assert_eq!(v.config().receiver.max_request_bytes, 64 * 1024 * 1024);
    assert_eq!(v.backend(), StorageBackend::Embedded);
    assert_eq!(v.config().storage.retention_hours, 168);
}

#[test]
fn the_pipeline_capacity_bounds_the_embedded_stores_intake() {
    let mut c = Config::default();
    c.pipeline.capacity = 7;
    let v = c.validate().unwrap();
    // Prepared batches go straight to the store's commit thread and wait there.
    assert_eq!(v.embedded().queue_depth, 7);
}

#[test]
fn direct_io_is_on_by_default_and_reaches_the_embedded_store() {
    let v = Config::default().validate().unwrap();
    assert!(v.embedded().direct_io);
    let c = resolve(
        None,
        &env(&[("TRACELIGHT_STORAGE_DIRECT_IO", "false")]),
        &[],
    )
    .unwrap();
    assert!(!c.validate().unwrap().embedded().direct_io);
    let c = parse_file(Path::new("c.toml"), "[storage]\ndirect_io = false\n").unwrap();
    assert!(!c.storage.direct_io);
    let e = resolve(None, &env(&[("TRACELIGHT_STORAGE_DIRECT_IO", "off")]), &[]).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "storage.direct_io (from environment variable TRACELIGHT_STORAGE_DIRECT_IO)"
        ),
        "{e}"
    );
}

#[test]
fn precedence_cli_over_env_over_file() {
    let file = parse_file(
        Path::new("t.toml"),
        "[receiver]\ngrpc_listen = \"127.0.0.1:1\"\nhttp_listen = \"127.0.0.1:2\"\n\
         [query]\nlisten = \"127.0.0.1:3\"\n",
    )
    .unwrap();
    let env = env(&[
        ("TRACELIGHT_RECEIVER_HTTP_LISTEN", "127.0.0.1:20"),
        ("TRACELIGHT_QUERY_LISTEN", "127.0.0.1:30"),
    ]);
    let cli = [(Setting::QueryListen, "127.0.0.1:300".to_owned())];
    let c = resolve(Some(file), &env, &cli).unwrap();
    assert_eq!(c.receiver.grpc_listen.port(), 1); // file
    assert_eq!(c.receiver.http_listen.port(), 20); // env over file
    assert_eq!(c.query.listen.port(), 300); // cli over env
    assert_eq!(c.admin.listen.port(), 8888); // default
}

#[test]
fn errors_name_the_setting() {
    let e = parse_file(Path::new("t.toml"), "[receiver]\ngrpc_listn = \"x\"\n").unwrap_err();
    assert!(e.to_string().contains("grpc_listn"), "{e}");
    let e = resolve(None, &env(&[("TRACELIGHT_PIPELINE_CAPACITY", "many")]), &[]).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "pipeline.capacity (from environment variable TRACELIGHT_PIPELINE_CAPACITY)"
        ),
        "{e}"
    );
    let c = resolve(
        None,
        &env(&[]),
        &[(Setting::StorageBackend, "disk".to_owned())],
    )
    .unwrap();
    let e = c.validate().unwrap_err();
    assert!(
        e.to_string().starts_with("storage.backend: unsupported"),
        "{e}"
    );
    let mut c = Config::default();
    c.admin.listen = c.query.listen;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .starts_with("admin.listen:")
    );
    let mut c = Config::default();
    c.receiver.max_request_bytes = 1;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .starts_with("receiver.max_request_bytes")
    );
}

#[test]
fn the_in_flight_budget_defaults_to_32_mib_and_is_set_from_file_or_env() {
    let v = Config::default().validate().unwrap();
    assert_eq!(v.config().receiver.max_in_flight_bytes, 32 << 20);
    let file = parse_file(
        Path::new("c.toml"),
        "[receiver]\nmax_in_flight_bytes = 1048576\n",
    )
    .unwrap();
    assert_eq!(file.receiver.max_in_flight_bytes, 1 << 20);
    let c = resolve(
        None,
        &env(&[("TRACELIGHT_RECEIVER_MAX_IN_FLIGHT_BYTES", "268435456")]),
        &[],
    )
    .unwrap();
    assert_eq!(c.receiver.max_in_flight_bytes, 256 << 20);
    let mut c = Config::default();
    c.receiver.max_in_flight_bytes = 1000;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("receiver.max_in_flight_bytes"), "{e}");
    let e = resolve(
        None,
        &env(&[("TRACELIGHT_RECEIVER_MAX_IN_FLIGHT_BYTES", "lots")]),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(
            "receiver.max_in_flight_bytes (from environment variable TRACELIGHT_RECEIVER_MAX_IN_FLIGHT_BYTES)"
        ),
        "{e}"
    );
}

#[test]
fn derived_metrics_settings_parse_and_validate() {
    let c = resolve(
        None,
        &env(&[
            (
                "TRACELIGHT_SPANMETRICS_DIMENSIONS",
                " http.request.method, ,k8s.pod.name",
            ),
            ("TRACELIGHT_SERVICEGRAPH_ENABLED", "false"),
        ]),
        &[(Setting::SpanMetricsMaxSeries, "200".to_owned())],
    )
    .unwrap();
    assert_eq!(
        c.spanmetrics.dimensions,
        ["http.request.method", "k8s.pod.name"]
    );
    assert_eq!(c.spanmetrics.max_series, 200);
    assert!(!c.servicegraph.enabled);
    let e = resolve(
        None,
        &env(&[("TRACELIGHT_SPANMETRICS_ENABLED", "yes")]),
        &[],
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "spanmetrics.enabled (from environment variable TRACELIGHT_SPANMETRICS_ENABLED)"
        ),
        "{e}"
    );
    for (setting, raw, expected) in [
        (
            Setting::SpanMetricsMaxSeries,
            "0",
            "spanmetrics.max_series:",
        ),
        (
            Setting::SpanMetricsSeriesExpiry,
            "1",
            "spanmetrics.series_expiry_seconds:",
        ),
        (
            Setting::ServiceGraphWaitSeconds,
            "0",
            "servicegraph.wait_seconds:",
        ),
        (
            Setting::ServiceGraphMaxPending,
            "0",
            "servicegraph.max_pending:",
        ),
    ] {
        let e = resolve(None, &env(&[]), &[(setting, raw.to_owned())])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().starts_with(expected), "{e}");
    }
    let file = parse_file(
        Path::new("t.toml"),
        "[spanmetrics]\nmax_series = 10\n[servicegraph]\nwait_seconds = 30\n",
    )
    .unwrap();
    assert_eq!(file.spanmetrics.max_series, 10);
    assert_eq!(file.servicegraph.wait_seconds, 30);
    assert!(parse_file(Path::new("t.toml"), "[spanmetrics]\nmax_serie = 10\n").is_err());
}

#[test]
fn env_names_and_file_path_lookup() {
    assert_eq!(
        Setting::MemoryMaxSpans.env(),
        "TRACELIGHT_STORAGE_MEMORY_MAX_SPANS"
    );
    assert!(read_file(None, &env(&[])).unwrap().is_none());
    let e = read_file(None, &env(&[(ENV_CONFIG, "/nonexistent/tl.toml")])).unwrap_err();
    assert!(matches!(e, ConfigError::ReadFile { .. }));
}
