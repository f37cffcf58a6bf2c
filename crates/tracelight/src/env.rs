//! Reading configuration from the environment through a lookup trait.
//!
//! [`EnvLookup`] is how `tracelight` reads every variable it honours, so tests (and embedders with
//! their own configuration source) never need to mutate the process environment. The real
//! environment is [`SystemEnv`]; a `HashMap<String, String>` or a slice of pairs works too.
//!
//! ```
//! use std::collections::HashMap;
//! use tracelight::env::EnvLookup;
//!
//! let env: HashMap<String, String> =
//!     [("OTEL_SERVICE_NAME".to_owned(), "orders".to_owned())].into();
//! assert_eq!(EnvLookup::get(&env, "OTEL_SERVICE_NAME").as_deref(), Some("orders"));
//! assert_eq!(EnvLookup::get(&env, "RUST_LOG"), None);
//! ```

use std::collections::HashMap;
use std::fmt;

/// `OTEL_SERVICE_NAME`: the `service.name` resource attribute.
pub const ENV_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `OTEL_RESOURCE_ATTRIBUTES`: extra resource attributes, `key=value,key2=value2` (percent-encoded values).
pub const ENV_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// `OTEL_EXPORTER_OTLP_ENDPOINT`: base endpoint for all signals (`/v1/traces` is appended for HTTP).
pub const ENV_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: full traces endpoint, used as is.
pub const ENV_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf`.
pub const ENV_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`: signal-specific override of [`ENV_OTLP_PROTOCOL`].
pub const ENV_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// `OTEL_EXPORTER_OTLP_HEADERS`: headers sent with every export, `key=value,...`.
pub const ENV_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`: signal-specific headers, merged over [`ENV_OTLP_HEADERS`].
pub const ENV_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
/// `OTEL_EXPORTER_OTLP_TIMEOUT`: export timeout in milliseconds.
pub const ENV_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`: signal-specific override of [`ENV_OTLP_TIMEOUT`].
pub const ENV_OTLP_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
/// `OTEL_TRACES_SAMPLER`: `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`,
/// `parentbased_always_off`, `parentbased_traceidratio`.
pub const ENV_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
/// `OTEL_TRACES_SAMPLER_ARG`: the ratio for the `*traceidratio` samplers, in `[0, 1]`.
pub const ENV_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
/// `OTEL_PROPAGATORS`: comma-separated `tracecontext`, `baggage`, `b3`, `b3multi`, or `none`.
pub const ENV_PROPAGATORS: &str = "OTEL_PROPAGATORS";
/// `OTEL_TRACES_EXPORTER`: `otlp`, `console` or `none`.
pub const ENV_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
/// `OTEL_SDK_DISABLED`: `true` turns span export off (ids still exist for log correlation).
pub const ENV_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// `RUST_LOG`: an [`EnvFilter`](tracing_subscriber::EnvFilter) directive string.
pub const ENV_RUST_LOG: &str = "RUST_LOG";
/// `TRACELIGHT_LOG_FORMAT`: `json`, `pretty` or `compact`.
pub const ENV_LOG_FORMAT: &str = "TRACELIGHT_LOG_FORMAT";

/// A source of environment variables.
///
/// Implemented for the process environment ([`SystemEnv`]), for `HashMap<String, String>` and for
/// slices of `(&str, &str)` pairs, so tests can describe an environment without touching the
/// process's own.
pub trait EnvLookup: Send + Sync {
    /// The value of `key`, or `None` when it is unset. Values that are not valid Unicode are
    /// treated as unset by [`SystemEnv`].
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

impl EnvLookup for SystemEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl EnvLookup for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl EnvLookup for [(&str, &str)] {
    fn get(&self, key: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    }
}

impl<const N: usize> EnvLookup for [(&'static str, &'static str); N] {
    fn get(&self, key: &str) -> Option<String> {
        EnvLookup::get(self.as_slice(), key)
    }
}

/// An invalid environment variable: which one, what it held and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for {var}: {reason}")]
pub struct EnvError {
    /// The variable, e.g. `OTEL_TRACES_SAMPLER`.
    pub var: &'static str,
    /// The value it held.
    pub value: String,
    /// Why it was refused, including the accepted values where there is a fixed set.
    pub reason: String,
}

impl EnvError {
    pub(crate) fn new(var: &'static str, value: &str, reason: impl fmt::Display) -> Self {
        Self {
            var,
            value: value.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Reads `var`, treating an empty or all-whitespace value as unset (as the OTel spec asks).
pub(crate) fn read(env: &dyn EnvLookup, var: &str) -> Option<String> {
    env.get(var)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Parses a W3C-baggage-style list `key=value,key2=value2` with percent-encoded values, as used by
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`.
pub(crate) fn parse_key_values(
    var: &'static str,
    value: &str,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut out = Vec::new();
    for member in value.split(',') {
        let member = member.trim();
        if member.is_empty() {
            continue;
        }
        let Some((key, val)) = member.split_once('=') else {
            return Err(EnvError::new(
                var,
                value,
                format_args!("list member {member:?} is not key=value"),
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(EnvError::new(
                var,
                value,
                format_args!("list member {member:?} has an empty key"),
            ));
        }
        let val = percent_decode(val.trim()).ok_or_else(|| {
            EnvError::new(
                var,
                value,
                format_args!("value of {key:?} has an invalid percent-encoding"),
            )
        })?;
        out.push((key.to_owned(), val));
    }
    Ok(out)
}

fn percent_decode(input: &str) -> Option<String> {
    if !input.contains('%') {
        return Some(input.to_owned());
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_val(*bytes.get(i + 1)?)?;
            let lo = hex_val(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses an OTel boolean: `true`/`false`, case-insensitive.
pub(crate) fn parse_bool(var: &'static str, value: &str) -> Result<bool, EnvError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(EnvError::new(var, value, "expected true or false"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_are_trimmed_and_percent_decoded() {
        let kv = parse_key_values(
            ENV_RESOURCE_ATTRIBUTES,
            " deployment.environment = prod , team=a%2Cb,, ",
        )
        .unwrap();
        assert_eq!(
            kv,
            vec![
                ("deployment.environment".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "a,b".to_owned()),
            ]
        );
    }

    #[test]
    fn key_values_errors_name_the_variable() {
        let err = parse_key_values(ENV_OTLP_HEADERS, "authorization").unwrap_err();
        assert_eq!(err.var, ENV_OTLP_HEADERS);
        assert!(
            err.to_string().contains("OTEL_EXPORTER_OTLP_HEADERS"),
            "{err}"
        );
        assert!(parse_key_values(ENV_OTLP_HEADERS, "=x").is_err());
        assert!(parse_key_values(ENV_OTLP_HEADERS, "a=%zz").is_err());
        assert!(parse_key_values(ENV_OTLP_HEADERS, "a=%4").is_err());
    }

    #[test]
    fn empty_values_read_as_unset() {
        let env = [("A", "  "), ("B", " x ")];
        assert_eq!(read(&env, "A"), None);
        assert_eq!(read(&env, "B").as_deref(), Some("x"));
        assert_eq!(read(&env, "C"), None);
    }

    #[test]
    fn booleans() {
        assert!(parse_bool(ENV_SDK_DISABLED, "TRUE").unwrap());
        assert!(!parse_bool(ENV_SDK_DISABLED, "false").unwrap());
        assert!(parse_bool(ENV_SDK_DISABLED, "1").is_err());
    }
}
