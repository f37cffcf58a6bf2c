//! Effective configuration, and the one place that states precedence.
//!
//! Every setting is resolved by `Config::resolve` in this order, first match wins:
//!
//! 1. **code**: a value set on the [`Builder`](crate::Builder);
//! 2. **environment**: the standard `OTEL_*` variables, `RUST_LOG` and `TRACELIGHT_LOG_FORMAT`
//!    (see [`env`](mod@crate::env) for the list), read through an [`EnvLookup`];
//! 3. **defaults**: the `DEFAULT_*` constants of this module and the OTel specification.
//!
//! Signal-specific variables (`OTEL_EXPORTER_OTLP_TRACES_*`) win over the generic ones.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use crate::env::{self, EnvError, EnvLookup};
use crate::error::InitError;
use crate::propagation::PropagatorKind;

/// Default OTLP/gRPC endpoint.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// Default OTLP/HTTP base endpoint (`/v1/traces` is appended).
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
/// Path appended to a base OTLP/HTTP endpoint for traces.
pub const HTTP_TRACES_PATH: &str = "/v1/traces";
/// Default export timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on [`Telemetry::shutdown`](crate::Telemetry::shutdown).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// How log lines are written.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line; `trace_id` and `span_id` are top-level keys.
    Json,
    /// Multi-line human-readable output.
    Pretty,
    /// One human-readable line per event.
    Compact,
}

impl LogFormat {
    fn parse(value: &str) -> Result<Self, EnvError> {
        match value.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" => Ok(Self::Pretty),
            "compact" => Ok(Self::Compact),
            _ => Err(EnvError::new(
                env::ENV_LOG_FORMAT,
                value,
                "expected json, pretty or compact",
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Pretty => "pretty",
            Self::Compact => "compact",
        }
    }
}

/// OTLP transport.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (port 4317 by default).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318 by default). The OTel default.
    HttpProtobuf,
}

impl Protocol {
    fn parse(var: &'static str, value: &str) -> Result<Self, EnvError> {
        match value {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => Err(EnvError::new(
                var,
                value,
                "http/json is not supported; use grpc or http/protobuf",
            )),
            _ => Err(EnvError::new(var, value, "expected grpc or http/protobuf")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Where finished spans go.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracesExporter {
    /// OTLP over [`Protocol`], batched.
    Otlp,
    /// Pretty-printed to stdout (for development).
    Console,
    /// Not exported. Spans and ids still exist, so logs stay correlated and context propagates.
    None,
}

impl TracesExporter {
    fn parse(value: &str) -> Result<Self, EnvError> {
        match value {
            "otlp" => Ok(Self::Otlp),
            "console" => Ok(Self::Console),
            "none" => Ok(Self::None),
            _ => Err(EnvError::new(
                env::ENV_TRACES_EXPORTER,
                value,
                "expected otlp, console or none",
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Otlp => "otlp",
            Self::Console => "console",
            Self::None => "none",
        }
    }
}

/// Which spans are recorded and exported (`OTEL_TRACES_SAMPLER`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// Record every span.
    AlwaysOn,
    /// Record no span (ids still exist and propagate).
    AlwaysOff,
    /// Record a fraction of traces, decided from the trace id.
    TraceIdRatio(f64),
    /// Follow the remote parent's decision; roots always sampled. The default.
    ParentBasedAlwaysOn,
    /// Follow the remote parent's decision; roots never sampled.
    ParentBasedAlwaysOff,
    /// Follow the remote parent's decision; roots sampled by trace-id ratio.
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    fn parse(value: &str, arg: Option<&str>) -> Result<Self, EnvError> {
        let ratio = || -> Result<f64, EnvError> {
            let Some(arg) = arg else { return Ok(1.0) };
            match arg.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(EnvError::new(
                    env::ENV_TRACES_SAMPLER_ARG,
                    arg,
                    "expected a ratio between 0 and 1",
                )),
            }
        };
        match value {
            "always_on" => Ok(Self::AlwaysOn),
            "always_off" => Ok(Self::AlwaysOff),
            "traceidratio" => Ok(Self::TraceIdRatio(ratio()?)),
            "parentbased_always_on" => Ok(Self::ParentBasedAlwaysOn),
            "parentbased_always_off" => Ok(Self::ParentBasedAlwaysOff),
            "parentbased_traceidratio" => Ok(Self::ParentBasedTraceIdRatio(ratio()?)),
            _ => Err(EnvError::new(
                env::ENV_TRACES_SAMPLER,
                value,
                "expected always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio",
            )),
        }
    }
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlwaysOn => f.write_str("always_on"),
            Self::AlwaysOff => f.write_str("always_off"),
            Self::TraceIdRatio(r) => write!(f, "traceidratio({r})"),
            Self::ParentBasedAlwaysOn => f.write_str("parentbased_always_on"),
            Self::ParentBasedAlwaysOff => f.write_str("parentbased_always_off"),
            Self::ParentBasedTraceIdRatio(r) => write!(f, "parentbased_traceidratio({r})"),
        }
    }
}

fn parse_propagators(value: &str) -> Result<Vec<PropagatorKind>, EnvError> {
    let mut kinds = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = match name {
            "tracecontext" => PropagatorKind::TraceContext,
            "baggage" => PropagatorKind::Baggage,
            "b3" => PropagatorKind::B3Single,
            "b3multi" => PropagatorKind::B3Multi,
            "none" => continue,
            _ => {
                return Err(EnvError::new(
                    env::ENV_PROPAGATORS,
                    value,
                    format_args!(
                        "unknown propagator {name:?}; expected tracecontext, baggage, b3, b3multi or none"
                    ),
                ));
            }
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// Settings made in code. `None` means "not set here": fall through to the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct CodeSettings {
    pub(crate) service_name: Option<String>,
    pub(crate) service_version: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) log_filter: Option<String>,
    pub(crate) sampler: Option<Sampler>,
    pub(crate) traces_exporter: Option<TracesExporter>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) endpoint: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) export_timeout: Option<Duration>,
    pub(crate) propagators: Option<Vec<PropagatorKind>>,
    pub(crate) shutdown_timeout: Option<Duration>,
}

/// The effective configuration after applying code settings, environment and defaults.
///
/// Logged once at start-up (with header values redacted) by [`init`](crate::init).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `service.name`.
    pub service_name: String,
    /// `service.version`, when known.
    pub service_version: Option<String>,
    /// Extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES` and code), in order.
    pub resource_attributes: Vec<(String, String)>,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter directives (`RUST_LOG` syntax).
    pub log_filter: String,
    /// Span sampler.
    pub sampler: Sampler,
    /// Span exporter.
    pub traces_exporter: TracesExporter,
    /// OTLP transport.
    pub protocol: Protocol,
    /// Full OTLP traces endpoint (for HTTP, including `/v1/traces`).
    pub endpoint: String,
    /// Headers sent with every export.
    pub headers: Vec<(String, String)>,
    /// Timeout of one export call.
    pub export_timeout: Duration,
    /// Active propagators, in extraction order.
    pub propagators: Vec<PropagatorKind>,
    /// Bound on [`Telemetry::shutdown`](crate::Telemetry::shutdown) and on `Drop`.
    pub shutdown_timeout: Duration,
}

impl Config {
    /// Resolves `code` over `env` over defaults. This function is the precedence rule.
    pub(crate) fn resolve(code: CodeSettings, env: &dyn EnvLookup) -> Result<Self, InitError> {
        use crate::env::*;
        let var = |name: &str| read(env, name);

        let service_name = code
            .service_name
            .filter(|s| !s.is_empty())
            .or_else(|| var(ENV_SERVICE_NAME))
            .ok_or(InitError::MissingServiceName)?;

        let mut resource_attributes = match var(ENV_RESOURCE_ATTRIBUTES) {
            Some(v) => parse_key_values(ENV_RESOURCE_ATTRIBUTES, &v)?,
            None => Vec::new(),
        };
        // Code attributes come after env ones so that they win when the resource is built.
        resource_attributes.extend(code.resource_attributes);
        let service_version = code.service_version.or_else(|| {
            resource_attributes
                .iter()
                .rev()
                .find(|(k, _)| k == "service.version")
                .map(|(_, v)| v.clone())
        });

        let log_format = match (code.log_format, var(ENV_LOG_FORMAT)) {
            (Some(f), _) => f,
            (None, Some(v)) => LogFormat::parse(&v)?,
            (None, None) if std::io::stdout().is_terminal() => LogFormat::Compact,
            (None, None) => LogFormat::Json,
        };
        let log_filter = code
            .log_filter
            .or_else(|| var(ENV_RUST_LOG))
            .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());

        let sampler = match (code.sampler, var(ENV_TRACES_SAMPLER)) {
            (Some(s), _) => s,
            (None, Some(v)) => Sampler::parse(&v, var(ENV_TRACES_SAMPLER_ARG).as_deref())?,
            (None, None) => Sampler::ParentBasedAlwaysOn,
        };

        let sdk_disabled = match var(ENV_SDK_DISABLED) {
            Some(v) => parse_bool(ENV_SDK_DISABLED, &v)?,
            None => false,
        };
        let traces_exporter = match (code.traces_exporter, var(ENV_TRACES_EXPORTER)) {
            (Some(e), _) => e,
            (None, _) if sdk_disabled => TracesExporter::None,
            (None, Some(v)) => {
                // The spec allows a list; we export to one destination, so take a single value.
                TracesExporter::parse(&v)?
            }
            (None, None) => TracesExporter::Otlp,
        };

        let protocol = match code.protocol {
            Some(p) => p,
            None => match var(ENV_OTLP_TRACES_PROTOCOL) {
                Some(v) => Protocol::parse(ENV_OTLP_TRACES_PROTOCOL, &v)?,
                None => match var(ENV_OTLP_PROTOCOL) {
                    Some(v) => Protocol::parse(ENV_OTLP_PROTOCOL, &v)?,
                    None => Protocol::HttpProtobuf,
                },
            },
        };

        let endpoint = match (
            code.endpoint,
            var(ENV_OTLP_TRACES_ENDPOINT),
            var(ENV_OTLP_ENDPOINT),
        ) {
            (Some(e), _, _) => validate_endpoint("endpoint", &e)?,
            (None, Some(e), _) => validate_endpoint(ENV_OTLP_TRACES_ENDPOINT, &e)?,
            (None, None, Some(base)) => {
                let base = validate_endpoint(ENV_OTLP_ENDPOINT, &base)?;
                match protocol {
                    Protocol::Grpc => base,
                    Protocol::HttpProtobuf => {
                        format!("{}{HTTP_TRACES_PATH}", base.trim_end_matches('/'))
                    }
                }
            }
            (None, None, None) => match protocol {
                Protocol::Grpc => DEFAULT_GRPC_ENDPOINT.to_owned(),
                Protocol::HttpProtobuf => format!("{DEFAULT_HTTP_ENDPOINT}{HTTP_TRACES_PATH}"),
            },
        };

        let mut headers = match var(ENV_OTLP_HEADERS) {
            Some(v) => parse_key_values(ENV_OTLP_HEADERS, &v)?,
            None => Vec::new(),
        };
        if let Some(v) = var(ENV_OTLP_TRACES_HEADERS) {
            merge(&mut headers, parse_key_values(ENV_OTLP_TRACES_HEADERS, &v)?);
        }
        merge(&mut headers, code.headers);
        for (name, value) in &headers {
            if http::HeaderName::try_from(name.as_str()).is_err()
                || http::HeaderValue::try_from(value.as_str()).is_err()
            {
                return Err(InitError::Env(EnvError::new(
                    ENV_OTLP_HEADERS,
                    name,
                    "not a valid HTTP header name and value",
                )));
            }
        }

        let export_timeout = match code.export_timeout {
            Some(t) => t,
            None => match var(ENV_OTLP_TRACES_TIMEOUT) {
                Some(v) => parse_millis(ENV_OTLP_TRACES_TIMEOUT, &v)?,
                None => match var(ENV_OTLP_TIMEOUT) {
                    Some(v) => parse_millis(ENV_OTLP_TIMEOUT, &v)?,
                    None => DEFAULT_EXPORT_TIMEOUT,
                },
            },
        };

        let propagators = match (code.propagators, var(ENV_PROPAGATORS)) {
            (Some(p), _) => p,
            (None, Some(v)) => parse_propagators(&v)?,
            (None, None) => vec![PropagatorKind::TraceContext, PropagatorKind::Baggage],
        };

        Ok(Self {
            service_name,
            service_version,
            resource_attributes,
            log_format,
            log_filter,
            sampler,
            traces_exporter,
            protocol,
            endpoint,
            headers,
            export_timeout,
            propagators,
            shutdown_timeout: code.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
        })
    }
}

/// Later entries replace earlier ones with the same (case-insensitive) name.
fn merge(into: &mut Vec<(String, String)>, from: Vec<(String, String)>) {
    for (k, v) in from {
        into.retain(|(existing, _)| !existing.eq_ignore_ascii_case(&k));
        into.push((k, v));
    }
}

fn parse_millis(var: &'static str, value: &str) -> Result<Duration, EnvError> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| EnvError::new(var, value, "expected a whole number of milliseconds"))
}

fn validate_endpoint(var: &'static str, value: &str) -> Result<String, EnvError> {
    match value.parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() =>
        {
            Ok(value.to_owned())
        }
        _ => Err(EnvError::new(
            var,
            value,
            "expected an http:// or https:// URL with a host",
        )),
    }
}

/// The one-line summary logged at start-up. Header values are redacted.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "service.name={} service.version={} traces.exporter={} protocol={} endpoint={} \
             sampler={} propagators=",
            self.service_name,
            self.service_version.as_deref().unwrap_or("-"),
            self.traces_exporter.name(),
            self.protocol.name(),
            self.endpoint,
            self.sampler,
        )?;
        for (i, p) in self.propagators.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}", p.otel_name())?;
        }
        write!(
            f,
            " headers=[{}] export_timeout={}ms log.format={} log.filter={} resource=[",
            self.headers
                .iter()
                .map(|(k, _)| format!("{k}=<redacted>"))
                .collect::<Vec<_>>()
                .join(","),
            self.export_timeout.as_millis(),
            self.log_format.name(),
            self.log_filter,
        )?;
        for (i, (k, v)) in self.resource_attributes.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{k}={v}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests;
