use super::*;

/// A borrowed list of variables (`[(&str, &str)]` is unsized, so it can't be `&dyn EnvLookup`).
struct Pairs<'a>(&'a [(&'a str, &'a str)]);

impl EnvLookup for Pairs<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn resolve(env: &[(&str, &str)]) -> Result<Config, InitError> {
    let code = CodeSettings {
        service_name: Some("orders".to_owned()),
        ..CodeSettings::default()
    };
    Config::resolve(code, &Pairs(env))
}

fn env_error(env: &[(&str, &str)]) -> EnvError {
    match resolve(env) {
        Err(InitError::Env(e)) => e,
        other => panic!("expected an env error, got {other:?}"),
    }
}

#[test]
fn defaults_follow_the_spec() {
    let cfg = resolve(&[]).unwrap();
    assert_eq!(cfg.service_name, "orders");
    assert_eq!(cfg.protocol, Protocol::HttpProtobuf);
    assert_eq!(cfg.endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(cfg.sampler, Sampler::ParentBasedAlwaysOn);
    assert_eq!(cfg.traces_exporter, TracesExporter::Otlp);
    assert_eq!(
        cfg.propagators,
        vec![PropagatorKind::TraceContext, PropagatorKind::Baggage]
    );
    assert_eq!(cfg.export_timeout, Duration::from_secs(10));
    assert_eq!(cfg.shutdown_timeout, Duration::from_secs(5));
    assert_eq!(cfg.log_filter, "info");
}

#[test]
fn code_wins_over_env_which_wins_over_defaults() {
    let env = [
        ("OTEL_SERVICE_NAME", "from-env"),
        ("OTEL_TRACES_SAMPLER", "always_off"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("TRACELIGHT_LOG_FORMAT", "pretty"),
    ];
    let code = CodeSettings {
        service_name: Some("from-code".to_owned()),
        sampler: Some(Sampler::AlwaysOn),
        ..CodeSettings::default()
    };
    let cfg = Config::resolve(code, &Pairs(&env)).unwrap();
    assert_eq!(cfg.service_name, "from-code");
    assert_eq!(cfg.sampler, Sampler::AlwaysOn);
    // Not set in code: env wins over the default.
    assert_eq!(cfg.protocol, Protocol::Grpc);
    assert_eq!(cfg.endpoint, "http://localhost:4317");
    assert_eq!(cfg.log_format, LogFormat::Pretty);

    let cfg = Config::resolve(CodeSettings::default(), &Pairs(&env)).unwrap();
    assert_eq!(cfg.service_name, "from-env");
}

#[test]
fn missing_service_name_is_an_error() {
    let err = Config::resolve(CodeSettings::default(), &Pairs(&[])).unwrap_err();
    assert!(matches!(err, InitError::MissingServiceName));
    assert!(err.to_string().contains("OTEL_SERVICE_NAME"), "{err}");
}

#[test]
fn generic_endpoint_gets_the_signal_path_for_http_only() {
    let cfg = resolve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).unwrap();
    assert_eq!(cfg.endpoint, "http://collector:4318/v1/traces");
    let cfg = resolve(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ])
    .unwrap();
    assert_eq!(cfg.endpoint, "http://collector:4317");
    let cfg = resolve(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:9999/custom"),
    ])
    .unwrap();
    assert_eq!(cfg.endpoint, "http://c:9999/custom");
}

#[test]
fn signal_specific_settings_win_over_generic_ones() {
    let cfg = resolve(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=a,x-tenant=t1"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization=b"),
    ])
    .unwrap();
    assert_eq!(cfg.protocol, Protocol::HttpProtobuf);
    assert_eq!(cfg.export_timeout, Duration::from_millis(250));
    assert_eq!(
        cfg.headers,
        vec![
            ("x-tenant".to_owned(), "t1".to_owned()),
            ("authorization".to_owned(), "b".to_owned())
        ]
    );
}

#[test]
fn samplers_parse_with_their_argument() {
    let s = |v, a: Option<&str>| {
        let mut env = vec![("OTEL_TRACES_SAMPLER", v)];
        if let Some(a) = a {
            env.push(("OTEL_TRACES_SAMPLER_ARG", a));
        }
        resolve(&env).unwrap().sampler
    };
    assert_eq!(s("always_on", None), Sampler::AlwaysOn);
    assert_eq!(s("always_off", None), Sampler::AlwaysOff);
    assert_eq!(s("traceidratio", Some("0.25")), Sampler::TraceIdRatio(0.25));
    assert_eq!(s("traceidratio", None), Sampler::TraceIdRatio(1.0));
    assert_eq!(
        s("parentbased_traceidratio", Some("0")),
        Sampler::ParentBasedTraceIdRatio(0.0)
    );
    assert_eq!(
        s("parentbased_always_off", None),
        Sampler::ParentBasedAlwaysOff
    );
}

#[test]
fn invalid_values_name_the_variable_and_the_value() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        (
            &[("OTEL_TRACES_SAMPLER", "sometimes")],
            "OTEL_TRACES_SAMPLER",
            "sometimes",
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ],
            "OTEL_TRACES_SAMPLER_ARG",
            "1.5",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "udp")],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "udp",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/json",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TIMEOUT", "5s")],
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "5s",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "collector:4317",
        ),
        (
            &[("OTEL_PROPAGATORS", "tracecontext,xray")],
            "OTEL_PROPAGATORS",
            "tracecontext,xray",
        ),
        (
            &[("OTEL_TRACES_EXPORTER", "zipkin")],
            "OTEL_TRACES_EXPORTER",
            "zipkin",
        ),
        (&[("OTEL_SDK_DISABLED", "yes")], "OTEL_SDK_DISABLED", "yes"),
        (
            &[("TRACELIGHT_LOG_FORMAT", "xml")],
            "TRACELIGHT_LOG_FORMAT",
            "xml",
        ),
        (
            &[("OTEL_RESOURCE_ATTRIBUTES", "team")],
            "OTEL_RESOURCE_ATTRIBUTES",
            "team",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_HEADERS", "bad header=1")],
            "OTEL_EXPORTER_OTLP_HEADERS",
            "bad header",
        ),
    ];
    for (env, var, value) in cases {
        let err = env_error(env);
        assert_eq!(err.var, *var, "{env:?}");
        let text = InitError::Env(err).to_string();
        assert!(
            text.contains(var) && text.contains(value),
            "{env:?} gave {text}"
        );
    }
}

#[test]
fn propagators_and_sdk_disabled() {
    let cfg = resolve(&[("OTEL_PROPAGATORS", "b3multi, tracecontext,b3multi")]).unwrap();
    assert_eq!(
        cfg.propagators,
        vec![PropagatorKind::B3Multi, PropagatorKind::TraceContext]
    );
    assert!(
        resolve(&[("OTEL_PROPAGATORS", "none")])
            .unwrap()
            .propagators
            .is_empty()
    );
    let cfg = resolve(&[
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_TRACES_EXPORTER", "otlp"),
    ])
    .unwrap();
    assert_eq!(cfg.traces_exporter, TracesExporter::None);
}

#[test]
fn resource_attributes_and_version() {
    let cfg = resolve(&[(
        "OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment=prod,service.version=1.2.3",
    )])
    .unwrap();
    assert_eq!(cfg.service_version.as_deref(), Some("1.2.3"));
    assert_eq!(cfg.resource_attributes.len(), 2);
}

#[test]
fn summary_redacts_header_values() {
    let cfg = resolve(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%20s3cret",
    )])
    .unwrap();
    let line = cfg.to_string();
    assert!(line.contains("authorization=<redacted>"), "{line}");
    assert!(!line.contains("s3cret"), "{line}");
    assert!(line.contains("service.name=orders"), "{line}");
}
