//! Query-string grammar of the Jaeger v1 and api_v3 endpoints.
//!
//! Empty values (`&minDuration&maxDuration`, as Jaeger UI sends them) count as absent.

use base64::Engine as _;

use crate::model::{SpanKind, TraceId};
use crate::store::{DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT, TraceQuery};

/// v1 search looks back this far when `start` is missing (upstream default: 2 days).
pub const DEFAULT_SEARCH_LOOKBACK_NS: u64 = 2 * 24 * 3600 * 1_000_000_000;
/// `/api/dependencies` looks back this far when `lookback` is missing: 24 h, in ms.
pub const DEFAULT_DEPENDENCIES_LOOKBACK_MS: u64 = 24 * 3600 * 1000;

/// A malformed or missing parameter. The `Display` text is the error message clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// A required parameter is missing.
    #[error("parameter '{0}' is required")]
    Required(&'static str),
    /// A v1 parameter that does not parse.
    #[error("unable to parse param '{name}': {reason}")]
    Invalid {
        /// Parameter name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An api_v3 parameter that is missing or does not parse.
    #[error("malformed parameter {name}: {reason}")]
    Malformed {
        /// Parameter name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The maximum duration is below the minimum.
    #[error("'{max}' should be greater than '{min}'")]
    DurationOrder {
        /// Name of the minimum parameter.
        min: &'static str,
        /// Name of the maximum parameter.
        max: &'static str,
    },
    /// The v1 `tags` parameter is not a JSON object of strings.
    #[error("malformed 'tags' parameter, cannot unmarshal JSON: {0}")]
    Tags(String),
    /// A v1 `tag` parameter without `key:value`.
    #[error("malformed 'tag' parameter, expecting key:value, received: {0}")]
    Tag(String),
}

/// Decoded query-string pairs, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a raw query string (`None` = no parameters).
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    /// The first non-empty value of the first name (in `names` order) that has one.
    pub fn get(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|name| {
            self.0
                .iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.as_str())
        })
    }

    /// Every non-empty value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is `true`.
    pub fn flag(&self, name: &str) -> bool {
        self.get(&[name]) == Some("true")
    }
}

/// Parses a Go duration (`1.5s`, `100ms`, `1h2m`, `0`) into nanoseconds.
pub fn parse_go_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let s = text.strip_prefix('+').unwrap_or(text);
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(bad());
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let frac_digits = &frac_part[..frac_part.len().min(18)];
        let frac: u128 = if frac_digits.is_empty() {
            0
        } else {
            frac_digits.parse().map_err(|_| bad())?
        };
        let frac_ns =
            frac * scale / 10u128.pow(u32::try_from(frac_digits.len()).map_err(|_| bad())?);
        total = int
            .checked_mul(scale)
            .and_then(|v| v.checked_add(frac_ns))
            .and_then(|v| v.checked_add(total))
            .ok_or_else(bad)?;
        rest = after;
    }
    u64::try_from(total).map_err(|_| bad())
}

/// Parses an RFC 3339 timestamp (nanosecond precision) into ns since the epoch.
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("parsing time {text:?}: {e}"))?;
    t.timestamp_nanos_opt()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("time {text:?} is out of range"))
}

/// Parses a v3 trace id: hex, or base64 (standard or URL-safe, padded or not).
pub fn parse_v3_trace_id(text: &str) -> Result<TraceId, String> {
    if let Ok(id) = TraceId::from_hex(text) {
        return Ok(id);
    }
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| format!("invalid trace id {text:?}"))?;
    TraceId::from_slice(&bytes).map_err(|e| format!("invalid trace id {text:?}: {e}"))
}

/// Parses a v1 trace id (hex, up to 32 digits).
pub fn parse_v1_trace_id(text: &str) -> Result<TraceId, ParamError> {
    TraceId::from_hex(text).map_err(|e| ParamError::Invalid {
        name: "traceID",
        reason: e.to_string(),
    })
}

/// Parses a span kind name; empty means "all kinds".
pub fn parse_span_kind(
    name: &'static str,
    text: Option<&str>,
) -> Result<Option<SpanKind>, ParamError> {
    text.map(|t| {
        SpanKind::from_jaeger_name(t).ok_or_else(|| ParamError::Invalid {
            name,
            reason: format!("unsupported span kind {t:?}"),
        })
    })
    .transpose()
}

fn parse_u64(name: &'static str, text: Option<&str>) -> Result<Option<u64>, ParamError> {
    text.map(|t| {
        t.parse::<u64>().map_err(|e| ParamError::Invalid {
            name,
            reason: format!("{t:?}: {e}"),
        })
    })
    .transpose()
}

fn v1_duration(name: &'static str, params: &Params) -> Result<Option<u64>, ParamError> {
    params
        .get(&[name])
        .map(|t| parse_go_duration(t).map_err(|reason| ParamError::Invalid { name, reason }))
        .transpose()
}

fn json_tags(text: &str) -> Result<Vec<(String, String)>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| e.to_string())?;
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            other => Err(format!("value of {k:?} is not a string: {other}")),
        })
        .collect()
}

/// The v1 `GET /api/traces` search parameters (without `traceID`).
pub fn v1_search(params: &Params, now_ns: u64) -> Result<TraceQuery, ParamError> {
    let service = params
        .get(&["service"])
        .ok_or(ParamError::Required("service"))?;
    let mut tags = Vec::new();
    for text in params.all("tags") {
        tags.extend(json_tags(text).map_err(ParamError::Tags)?);
    }
    for text in params.all("tag") {
        let (k, v) = text
            .split_once(':')
            .ok_or_else(|| ParamError::Tag(text.to_owned()))?;
        tags.push((k.to_owned(), v.to_owned()));
    }
    let micros = |name| -> Result<Option<u64>, ParamError> {
        Ok(parse_u64(name, params.get(&[name]))?.map(|us| us.saturating_mul(1000)))
    };
    let end = micros("end")?.unwrap_or(now_ns);
    let start = micros("start")?.unwrap_or(now_ns.saturating_sub(DEFAULT_SEARCH_LOOKBACK_NS));
    let min = v1_duration("minDuration", params)?;
    let max = v1_duration("maxDuration", params)?;
    if let (Some(min), Some(max)) = (min, max)
        && max < min
    {
        return Err(ParamError::DurationOrder {
            min: "minDuration",
            max: "maxDuration",
        });
    }
    let limit = parse_u64("limit", params.get(&["limit"]))?
        .filter(|l| *l > 0)
        .map_or(DEFAULT_SEARCH_LIMIT, |l| {
            usize::try_from(l).unwrap_or(usize::MAX)
        });
    if limit > MAX_SEARCH_LIMIT {
        return Err(ParamError::Invalid {
            name: "limit",
            reason: above_max(limit),
        });
    }
    Ok(TraceQuery {
        service: Some(service.to_owned()),
        operation: params.get(&["operation"]).map(str::to_owned),
        tags,
        start_min_ns: start,
        start_max_ns: end,
        duration_min_ns: min,
        duration_max_ns: max,
        limit,
    })
}

/// Why a search limit is refused.
fn above_max(limit: usize) -> String {
    format!("{limit} traces is more than the {MAX_SEARCH_LIMIT} a search may return")
}

/// The v1 repeated `traceID` parameters (at most [`MAX_SEARCH_LIMIT`]).
pub fn v1_trace_ids(params: &Params) -> Result<Vec<TraceId>, ParamError> {
    let count = params.all("traceID").count();
    if count > MAX_SEARCH_LIMIT {
        return Err(ParamError::Invalid {
            name: "traceID",
            reason: above_max(count),
        });
    }
    params.all("traceID").map(parse_v1_trace_id).collect()
}

/// The api_v3 search parameters (`query.*`, camelCase or snake_case).
pub fn v3_search(params: &Params) -> Result<TraceQuery, ParamError> {
    let time = |name: &'static str, camel: &str| -> Result<u64, ParamError> {
        let text = params.get(&[camel, name]).ok_or(ParamError::Malformed {
            name,
            reason: "missing required parameter".to_owned(),
        })?;
        parse_rfc3339(text).map_err(|reason| ParamError::Malformed { name, reason })
    };
    let duration = |name: &'static str, camel: &str| -> Result<Option<u64>, ParamError> {
        params
            .get(&[camel, name])
            .map(|t| parse_go_duration(t).map_err(|reason| ParamError::Malformed { name, reason }))
            .transpose()
    };
    let start_min_ns = time("query.start_time_min", "query.startTimeMin")?;
    let start_max_ns = time("query.start_time_max", "query.startTimeMax")?;
    let duration_min_ns = duration("query.duration_min", "query.durationMin")?;
    let duration_max_ns = duration("query.duration_max", "query.durationMax")?;
    if let (Some(min), Some(max)) = (duration_min_ns, duration_max_ns)
        && max < min
    {
        return Err(ParamError::DurationOrder {
            min: "query.duration_min",
            max: "query.duration_max",
        });
    }
    let tags = match params.get(&["query.attributes"]) {
        Some(text) => json_tags(text).map_err(|reason| ParamError::Malformed {
            name: "query.attributes",
            reason,
        })?,
        None => Vec::new(),
    };
    let depth = params.get(&[
        "query.searchDepth",
        "query.search_depth",
        "query.num_traces",
    ]);
    let limit = depth
        .map(|t| {
            t.parse::<usize>().map_err(|e| ParamError::Malformed {
                name: "query.search_depth",
                reason: format!("{t:?}: {e}"),
            })
        })
        .transpose()?
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_SEARCH_LIMIT);
    if limit > MAX_SEARCH_LIMIT {
        return Err(ParamError::Malformed {
            name: "query.search_depth",
            reason: above_max(limit),
        });
    }
    Ok(TraceQuery {
        service: params
            .get(&["query.serviceName", "query.service_name"])
            .map(str::to_owned),
        operation: params
            .get(&["query.operationName", "query.operation_name"])
            .map(str::to_owned),
        tags,
        start_min_ns,
        start_max_ns,
        duration_min_ns,
        duration_max_ns,
        limit,
    })
}

/// `/api/dependencies` parameters: returns `(start_ns, end_ns, service)`.
pub fn dependencies(
    params: &Params,
    now_ns: u64,
) -> Result<(u64, u64, Option<String>), ParamError> {
    let end_ms = parse_u64("endTs", params.get(&["endTs"]))?.unwrap_or(now_ns / 1_000_000);
    let lookback_ms = parse_u64("lookback", params.get(&["lookback"]))?
        .unwrap_or(DEFAULT_DEPENDENCIES_LOOKBACK_MS);
    let end_ns = end_ms.saturating_mul(1_000_000);
    let start_ns = end_ms.saturating_sub(lookback_ms).saturating_mul(1_000_000);
    Ok((
        start_ns,
        end_ns,
        params.get(&["service"]).map(str::to_owned),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_go_duration("1.2s"), Ok(1_200_000_000));
        assert_eq!(parse_go_duration("1h2m3s"), Ok(3_723_000_000_000));
        assert_eq!(parse_go_duration("1.5us"), Ok(1_500));
        assert_eq!(parse_go_duration("2µs"), Ok(2_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("7ns"), Ok(7));
        for bad in ["", "10", "1x", "-1s", "s", "1..2s", "99999999999999999999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339_and_v3_ids() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Ok(1_500_000_000));
        assert_eq!(
            parse_rfc3339("2024-01-31T05:28:29.209712345+00:00"),
            Ok(1_706_678_909_209_712_345)
        );
        assert!(parse_rfc3339("yesterday").is_err());
        let hex = "83a9efd15c1c98a977e0711cc93ee28b";
        let id = parse_v3_trace_id(hex).unwrap();
        assert_eq!(parse_v3_trace_id("g6nv0VwcmKl34HEcyT7iiw==").unwrap(), id);
        assert_eq!(parse_v3_trace_id("g6nv0VwcmKl34HEcyT7iiw").unwrap(), id);
        assert!(parse_v3_trace_id("nope!").is_err());
    }

    #[test]
    fn v1_search_grammar() {
        let p = Params::parse(Some(
            "service=api&operation=GET%20%2F&tags=%7B%22http.status_code%22%3A%22500%22%7D\
             &tag=error:true&tag=url:http://x&start=1000&end=2000&minDuration=1ms\
             &maxDuration&limit=5&lookback=1h",
        ));
        let q = v1_search(&p, 9_999_999_999).unwrap();
        assert_eq!(q.service.as_deref(), Some("api"));
        assert_eq!(q.operation.as_deref(), Some("GET /"));
        assert_eq!(
            q.tags,
            vec![
                ("http.status_code".to_owned(), "500".to_owned()),
                ("error".to_owned(), "true".to_owned()),
                ("url".to_owned(), "http://x".to_owned()),
            ]
        );
        assert_eq!((q.start_min_ns, q.start_max_ns), (1_000_000, 2_000_000));
        assert_eq!(
            (q.duration_min_ns, q.duration_max_ns),
            (Some(1_000_000), None)
        );
        assert_eq!(q.limit, 5);
    }

    #[test]
    fn v1_search_errors_and_defaults() {
        let now = 10 * DEFAULT_SEARCH_LOOKBACK_NS;
        let err = |q: &str| {
            v1_search(&Params::parse(Some(q)), now)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err("operation=x"), "parameter 'service' is required");
        assert_eq!(
            err("service=a&minDuration=2s&maxDuration=1s"),
            "'maxDuration' should be greater than 'minDuration'"
        );
        assert!(err("service=a&tags=[1]").starts_with("malformed 'tags' parameter"));
        assert_eq!(
            err("service=a&tag=novalue"),
            "malformed 'tag' parameter, expecting key:value, received: novalue"
        );
        assert!(err("service=a&limit=x").starts_with("unable to parse param 'limit'"));
        assert_eq!(
            err("service=a&limit=1501"),
            "unable to parse param 'limit': 1501 traces is more than the 1500 a search may return"
        );
        let at_max = v1_search(&Params::parse(Some("service=a&limit=1500")), now).unwrap();
        assert_eq!(at_max.limit, MAX_SEARCH_LIMIT);
        let ids = |n: usize| {
            let query: Vec<String> = (1..=n).map(|i| format!("traceID={i:x}")).collect();
            v1_trace_ids(&Params::parse(Some(&query.join("&"))))
        };
        assert_eq!(ids(MAX_SEARCH_LIMIT).unwrap().len(), MAX_SEARCH_LIMIT);
        assert_eq!(
            ids(MAX_SEARCH_LIMIT + 1).unwrap_err().to_string(),
            "unable to parse param 'traceID': 1501 traces is more than the 1500 a search may return"
        );
        assert!(err("service=a&minDuration=5").starts_with("unable to parse param 'minDuration'"));
        let q = v1_search(&Params::parse(Some("service=a")), now).unwrap();
        assert_eq!(q.start_max_ns, now);
        assert_eq!(q.start_min_ns, now - DEFAULT_SEARCH_LOOKBACK_NS);
        assert_eq!(q.limit, DEFAULT_SEARCH_LIMIT);
    }

    #[test]
    fn v3_search_grammar_with_aliases() {
        let p = Params::parse(Some(
            "query.service_name=api&query.operationName=op&query.start_time_min=1970-01-01T00:00:01Z\
             &query.startTimeMax=1970-01-01T00:00:02Z&query.duration_min=1ms\
             &query.num_traces=3&query.attributes=%7B%22k%22%3A%22v%22%7D",
        ));
        let q = v3_search(&p).unwrap();
        assert_eq!(q.service.as_deref(), Some("api"));
        assert_eq!(q.operation.as_deref(), Some("op"));
        assert_eq!(
            (q.start_min_ns, q.start_max_ns),
            (1_000_000_000, 2_000_000_000)
        );
        assert_eq!(q.duration_min_ns, Some(1_000_000));
        assert_eq!(q.limit, 3);
        assert_eq!(q.tags, vec![("k".to_owned(), "v".to_owned())]);
        let deep = v3_search(&Params::parse(Some(
            "query.start_time_min=1970-01-01T00:00:01Z&query.start_time_max=1970-01-01T00:00:02Z\
             &query.search_depth=100000",
        )))
        .unwrap_err();
        assert_eq!(
            deep.to_string(),
            "malformed parameter query.search_depth: 100000 traces is more than the 1500 a search may return"
        );
        let err = v3_search(&Params::parse(Some("query.start_time_min=bad"))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("malformed parameter query.start_time_min: parsing time"),
            "{err}"
        );
    }

    #[test]
    fn dependencies_params() {
        let p = Params::parse(Some("endTs=10000&lookback=4000&service=a"));
        assert_eq!(
            dependencies(&p, 0).unwrap(),
            (6_000_000_000, 10_000_000_000, Some("a".to_owned()))
        );
        assert!(dependencies(&Params::parse(Some("endTs=x")), 0).is_err());
    }
}
