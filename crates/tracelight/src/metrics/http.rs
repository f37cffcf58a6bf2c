//! Cached series handles for the HTTP RED metrics.
//!
//! Registering a series builds a [`metrics::Key`] (a label vector with owned strings) and looks
//! it up in the recorder's registry. Doing that per request costs allocations and hashing of
//! every label; instead each distinct (route, method, scheme, status) is registered once and its
//! [`Histogram`] handle kept in a read-mostly map looked up with a borrowed `&str` route.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use hashbrown::{Equivalent, HashMap};
use metrics::{Gauge, Histogram, Label};
use parking_lot::RwLock;

use super::MetricsHandle;
use super::names::*;
use crate::middleware::route::{InternedRoute, MAX_INTERNED_ROUTES};

/// Normalised request methods: the nine standard ones, then `_OTHER`.
pub(crate) const METHODS: [&str; 10] = [
    "CONNECT",
    "DELETE",
    "GET",
    "HEAD",
    "OPTIONS",
    "PATCH",
    "POST",
    "PUT",
    "TRACE",
    OTHER_METHOD,
];

/// Index into [`METHODS`]; non-standard methods (including lowercase spellings) map to `_OTHER`.
pub(crate) fn method_index(m: &http::Method) -> u8 {
    match *m {
        http::Method::CONNECT => 0,
        http::Method::DELETE => 1,
        http::Method::GET => 2,
        http::Method::HEAD => 3,
        http::Method::OPTIONS => 4,
        http::Method::PATCH => 5,
        http::Method::POST => 6,
        http::Method::PUT => 7,
        http::Method::TRACE => 8,
        _ => 9,
    }
}

/// `url.scheme` values.
pub(crate) const SCHEMES: [&str; 2] = ["http", "https"];

/// Upper bound on cached client series; beyond it the target host collapses to `_OTHER`, so a
/// client calling many distinct hosts cannot grow memory without bound.
const MAX_CLIENT_SERIES: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
struct SeriesKey {
    text: Box<str>,
    packed: u64,
}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.as_bytes().hash(state);
        self.packed.hash(state);
    }
}

/// A borrowed lookup key hashing exactly like [`SeriesKey`].
struct SeriesQuery<'a> {
    text: &'a str,
    packed: u64,
}

impl Hash for SeriesQuery<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.as_bytes().hash(state);
        self.packed.hash(state);
    }
}

impl Equivalent<SeriesKey> for SeriesQuery<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        self.packed == key.packed && *self.text == *key.text
    }
}

/// Read-mostly cache of histogram handles.
#[derive(Debug, Default)]
struct HistogramCache {
    map: RwLock<HashMap<SeriesKey, Histogram>>,
}

impl HistogramCache {
    fn get_or_register(
        &self,
        text: &str,
        packed: u64,
        register: impl FnOnce() -> Histogram,
    ) -> Histogram {
        let q = SeriesQuery { text, packed };
        if let Some(h) = self.map.read().get(&q) {
            return h.clone();
        }
        let mut map = self.map.write();
        map.entry_ref(&q).or_insert_with(register).clone()
    }

    fn len(&self) -> usize {
        self.map.read().len()
    }
}

// hashbrown's `entry_ref` needs `&Q: Into<K>`; build the owned key from the query.
impl From<&SeriesQuery<'_>> for SeriesKey {
    fn from(q: &SeriesQuery<'_>) -> Self {
        SeriesKey {
            text: q.text.into(),
            packed: q.packed,
        }
    }
}

/// Histogram slots per route: distinct (method, scheme, status) seen on one route. A route
/// rarely sees more than a handful; past this the series go to the shared, locked map.
const ROUTE_SLOTS: usize = 32;

/// The duration histograms of one route, by (method, scheme, status): a small open-addressed
/// table whose slots are written once, so lookups take no lock and clone nothing.
#[derive(Debug)]
struct RouteSeries {
    slots: [OnceLock<(u32, Histogram)>; ROUTE_SLOTS],
}

impl RouteSeries {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The histogram for `key`, registering it in the first free slot of its probe sequence;
    /// `None` when the table is full (the caller falls back to the shared map).
    fn get_or_register(
        &self,
        key: u32,
        register: impl FnOnce() -> Histogram,
    ) -> Option<&Histogram> {
        let mut register = Some(register);
        // Fibonacci hashing of the packed key; slots fill once and are never cleared, so a key
        // is always found before the first free slot of its sequence.
        let start = (key.wrapping_mul(0x9E37_79B9) >> 27) as usize;
        for i in 0..ROUTE_SLOTS {
            let slot = &self.slots[(start + i) % ROUTE_SLOTS];
            let (k, h) = match slot.get() {
                Some(entry) => entry,
                None => slot.get_or_init(|| {
                    let register = register.take().unwrap_or_else(|| unreachable!());
                    (key, register())
                }),
            };
            if *k == key {
                return Some(h);
            }
        }
        None
    }
}

/// Server-side RED instruments.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    handle: MetricsHandle,
    /// Per interned route (indexed by [`InternedRoute::id`]), created on the route's first
    /// request.
    routes: Box<[OnceLock<Box<RouteSeries>>]>,
    /// Requests that matched no route.
    unmatched: RouteSeries,
    /// Routes past the interning cap, and full route tables.
    overflow: HistogramCache,
    /// `http_server_active_requests`, by method × scheme, registered on first use so that
    /// methods never seen do not show up as zero series.
    active: [OnceLock<Gauge>; METHODS.len() * SCHEMES.len()],
}

/// The route label of a request, resolved once when the request arrives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RouteLabel<'a> {
    /// An interned template.
    Interned(&'static InternedRoute),
    /// A template past the interning cap.
    Text(&'a str),
    /// No route matched: [`UNMATCHED_ROUTE`].
    Unmatched,
}

impl ServerMetrics {
    pub(crate) fn new(handle: MetricsHandle) -> Self {
        Self {
            handle,
            routes: (0..MAX_INTERNED_ROUTES).map(|_| OnceLock::new()).collect(),
            unmatched: RouteSeries::new(),
            overflow: HistogramCache::default(),
            active: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The in-flight gauge for a method and scheme index.
    pub(crate) fn active(&self, method: u8, scheme: u8) -> &Gauge {
        let method = usize::from(method).min(METHODS.len() - 1);
        let scheme = usize::from(scheme).min(SCHEMES.len() - 1);
        self.active[method * SCHEMES.len() + scheme].get_or_init(|| {
            self.handle.gauge(
                HTTP_SERVER_ACTIVE_REQUESTS,
                vec![
                    Label::from_static_parts(LABEL_HTTP_REQUEST_METHOD, METHODS[method]),
                    Label::from_static_parts(LABEL_URL_SCHEME, SCHEMES[scheme]),
                ],
            )
        })
    }

    /// Records one request duration. `status` is 0 when no response was produced; `error` is
    /// whether the request counts as failed (5xx or no response).
    pub(crate) fn record_duration(
        &self,
        route: RouteLabel<'_>,
        method: u8,
        scheme: u8,
        status: u16,
        error: bool,
        seconds: f64,
    ) {
        let key = u32::from(method) | u32::from(scheme) << 4 | u32::from(status) << 5;
        let key = key | u32::from(error) << 31;
        let text = match route {
            RouteLabel::Interned(r) => r.route,
            RouteLabel::Text(t) => t,
            RouteLabel::Unmatched => UNMATCHED_ROUTE,
        };
        let register = || self.register_duration(text, method, scheme, status, error);
        let table = match route {
            RouteLabel::Interned(r) => self
                .routes
                .get(r.id)
                .map(|t| &**t.get_or_init(|| Box::new(RouteSeries::new()))),
            RouteLabel::Unmatched => Some(&self.unmatched),
            RouteLabel::Text(_) => None,
        };
        if let Some(h) = table.and_then(|t| t.get_or_register(key, register)) {
            h.record(seconds);
            return;
        }
        self.overflow
            .get_or_register(text, u64::from(key), register)
            .record(seconds);
    }

    fn register_duration(
        &self,
        route: &str,
        method: u8,
        scheme: u8,
        status: u16,
        error: bool,
    ) -> Histogram {
        let mut labels = vec![
            Label::from_static_parts(
                LABEL_HTTP_REQUEST_METHOD,
                METHODS[usize::from(method).min(9)],
            ),
            Label::new(LABEL_HTTP_ROUTE, route.to_owned()),
        ];
        // Status 0: the service failed without a response (semconv: no status attribute).
        if status != 0 {
            labels.push(Label::new(
                LABEL_HTTP_RESPONSE_STATUS_CODE,
                status.to_string(),
            ));
        }
        labels.push(Label::from_static_parts(
            LABEL_URL_SCHEME,
            SCHEMES[usize::from(scheme).min(1)],
        ));
        if error {
            let error_type = if status == 0 {
                OTHER_METHOD.to_owned()
            } else {
                status.to_string()
            };
            labels.push(Label::new(LABEL_ERROR_TYPE, error_type));
        }
        self.handle.histogram(HTTP_SERVER_REQUEST_DURATION, labels)
    }
}

/// How an outgoing request ended, for `error_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientOutcome {
    /// A response with this status; 4xx and 5xx count as errors on the client side.
    Status(u16),
    /// No response: the error kind (`timeout`, `connect`, …), used as `error_type`.
    Failed(&'static str),
}

/// Client-side RED instruments.
#[derive(Debug)]
pub(crate) struct ClientMetrics {
    handle: MetricsHandle,
    durations: HistogramCache,
}

impl ClientMetrics {
    pub(crate) fn new(handle: MetricsHandle) -> Self {
        Self {
            handle,
            durations: HistogramCache::default(),
        }
    }

    pub(crate) fn duration(
        &self,
        method: u8,
        host: &str,
        port: u16,
        outcome: ClientOutcome,
    ) -> Histogram {
        let host = if self.durations.len() >= MAX_CLIENT_SERIES {
            OTHER_METHOD
        } else {
            host
        };
        let (status, kind) = match outcome {
            ClientOutcome::Status(s) => (s, 0u64),
            ClientOutcome::Failed(kind) => (0, error_kind_index(kind)),
        };
        let packed =
            u64::from(method) | u64::from(port) << 8 | u64::from(status) << 24 | kind << 40;
        self.durations.get_or_register(host, packed, || {
            let mut labels = vec![
                Label::from_static_parts(
                    LABEL_HTTP_REQUEST_METHOD,
                    METHODS[usize::from(method).min(9)],
                ),
                Label::new(LABEL_SERVER_ADDRESS, host.to_owned()),
                Label::new(LABEL_SERVER_PORT, port.to_string()),
            ];
            match outcome {
                ClientOutcome::Status(s) => {
                    labels.push(Label::new(LABEL_HTTP_RESPONSE_STATUS_CODE, s.to_string()));
                    if s >= 400 {
                        labels.push(Label::new(LABEL_ERROR_TYPE, s.to_string()));
                    }
                }
                ClientOutcome::Failed(kind) => {
                    labels.push(Label::from_static_parts(LABEL_ERROR_TYPE, kind));
                }
            }
            self.handle.histogram(HTTP_CLIENT_REQUEST_DURATION, labels)
        })
    }
}

/// Client error kinds, in `error_type` spelling.
pub(crate) const CLIENT_ERROR_KINDS: [&str; 5] =
    ["timeout", "connect", "redirect", "body", "_OTHER"];

fn error_kind_index(kind: &str) -> u64 {
    CLIENT_ERROR_KINDS
        .iter()
        .position(|k| *k == kind)
        .map_or(CLIENT_ERROR_KINDS.len() as u64, |i| i as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_normalised_case_sensitively() {
        assert_eq!(
            METHODS[usize::from(method_index(&http::Method::GET))],
            "GET"
        );
        assert_eq!(
            METHODS[usize::from(method_index(&http::Method::PATCH))],
            "PATCH"
        );
        let lower = http::Method::from_bytes(b"get").unwrap();
        assert_eq!(METHODS[usize::from(method_index(&lower))], "_OTHER");
        let custom = http::Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(METHODS[usize::from(method_index(&custom))], "_OTHER");
    }

    #[test]
    fn series_are_registered_once_and_reused() {
        let handle = MetricsHandle::new("svc");
        let m = ServerMetrics::new(handle.clone());
        let a = RouteLabel::Interned(crate::middleware::route::interned("/a/{id}").unwrap());
        m.record_duration(a, 2, 0, 200, false, 0.01);
        m.record_duration(a, 2, 0, 200, false, 0.02);
        m.record_duration(a, 2, 0, 500, true, 0.03);
        m.record_duration(RouteLabel::Text("/b"), 2, 0, 200, false, 0.04);
        m.record_duration(RouteLabel::Unmatched, 2, 0, 404, false, 0.05);
        assert_eq!(m.overflow.len(), 1);
        let text = handle.render();
        assert!(text.contains(
            "http_server_request_duration_seconds_count{service_name=\"svc\",http_request_method=\"GET\",http_route=\"/a/{id}\",http_response_status_code=\"200\",url_scheme=\"http\"} 2"
        ), "{text}");
        assert!(text.contains("error_type=\"500\"} 1"), "{text}");
        assert!(text.contains("http_route=\"/b\""), "{text}");
        assert!(
            text.contains("http_route=\"unmatched\",http_response_status_code=\"404\""),
            "{text}"
        );
    }

    #[test]
    fn a_full_route_table_overflows_to_the_shared_map() {
        let handle = MetricsHandle::new("svc");
        let m = ServerMetrics::new(handle.clone());
        let r = RouteLabel::Interned(crate::middleware::route::interned("/full").unwrap());
        for status in 200..(200 + ROUTE_SLOTS as u16 + 3) {
            m.record_duration(r, 2, 0, status, false, 0.01);
            m.record_duration(r, 2, 0, status, false, 0.01);
        }
        assert_eq!(m.overflow.len(), 3);
        let text = handle.render();
        let counts = text
            .lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
            .filter(|l| l.contains("http_route=\"/full\""))
            .inspect(|l| assert!(l.ends_with(" 2"), "{l}"))
            .count();
        assert_eq!(counts, ROUTE_SLOTS + 3, "{text}");
    }
}
