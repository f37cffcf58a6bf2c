//! The service graph: client/server (and producer/consumer) span pairs across services,
//! named and labelled like the `servicegraph` connector's output (`metric-names.md` §C).
//!
//! A CLIENT (PRODUCER) span waits under `(trace id, its span id)`; a SERVER (CONSUMER) span
//! waits under `(trace id, its parent span id)`. When both halves of a key are present the
//! edge `client → server` is counted: one request, failed when either side has status ERROR,
//! both durations, and for messaging the producer-end → consumer-start delay. Halves wait at
//! most `wait` seconds (spans of one trace reach the collector from different services,
//! seconds apart: SDK batch processors export every 5 s by default, hence a longer wait than
//! the connector's 2 s) and at most `max_pending` halves wait at once; past that new halves
//! are dropped and counted. An expired CLIENT half with a `peer.service` attribute becomes an
//! edge to that virtual node; other expired halves are counted as unpaired. A CLIENT span
//! with `db.system` is a database edge at once (`server` = `db.name`/`db.namespace`, else the
//! system).

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;

use super::exposition;
use super::names::{
    GRAPH_BUCKETS_SECONDS, GRAPH_CLIENT_SECONDS, GRAPH_DROPPED, GRAPH_FAILED,
    GRAPH_MESSAGING_SECONDS, GRAPH_REQUESTS, GRAPH_SERVER_SECONDS, GRAPH_UNPAIRED, LABEL_CLIENT,
    LABEL_CONNECTION_TYPE, LABEL_OVERFLOW, LABEL_SERVER,
};
use super::series::{Histogram, LabelHasher, SeriesTable};
use super::spanmetrics::service_of;
use crate::intern::Names;
use crate::model::{SpanId, SpanKind, SpanRef, SpanView, StatusCode, TraceId};

/// Attributes naming the peer of an unpaired CLIENT span, in order of preference.
const PEER_ATTRIBUTES: [&str; 1] = ["peer.service"];
/// Attributes naming a database, in order of preference (old and new semconv).
const DB_NAME_ATTRIBUTES: [&str; 2] = ["db.name", "db.namespace"];
/// The attribute that marks a CLIENT span as a database call.
const DB_SYSTEM: &str = "db.system";
/// Distinct service and peer names the halves share ([`Names`]); past it a name is copied
/// per half.
const MAX_NAMES: usize = 4096;
/// Longest name the halves share (longer ones are copied per half): the table stays under
/// ~1 MiB whatever the spans hold.
const MAX_NAME_LEN: usize = 128;

/// The `connection_type` of an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Connection {
    Direct,
    Messaging,
    Database,
}

impl Connection {
    fn label(self) -> &'static str {
        match self {
            Self::Direct => "",
            Self::Messaging => "messaging_system",
            Self::Database => "database",
        }
    }
}

#[derive(Debug)]
struct EdgeKey {
    client: Arc<str>,
    server: Arc<str>,
    connection: Connection,
}

#[derive(Debug)]
struct Edge {
    requests: u64,
    failed: u64,
    server: Histogram,
    client: Histogram,
    messaging: Histogram,
}

impl Edge {
    fn new() -> Self {
        Self {
            requests: 0,
            failed: 0,
            server: Histogram::new(&GRAPH_BUCKETS_SECONDS),
            client: Histogram::new(&GRAPH_BUCKETS_SECONDS),
            messaging: Histogram::new(&GRAPH_BUCKETS_SECONDS),
        }
    }
}

/// One side of a pending edge.
#[derive(Debug)]
struct Half {
    service: Arc<str>,
    start_ns: u64,
    end_ns: u64,
    failed: bool,
    messaging: bool,
    peer: Option<Arc<str>>,
}

impl Half {
    fn of(span: &SpanView<'_>, service: Arc<str>, peer: Option<Arc<str>>) -> Self {
        Self {
            service,
            start_ns: span.start_ns,
            end_ns: span.end_ns,
            failed: span.status_code == StatusCode::Error,
            messaging: matches!(span.kind, SpanKind::Producer | SpanKind::Consumer),
            peer,
        }
    }

    fn seconds(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

#[derive(Debug, Default)]
struct Pending {
    client: Option<Half>,
    server: Option<Half>,
    deadline: u64,
}

/// Pairing settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GraphLimits {
    /// Seconds a half waits for its other half.
    pub(crate) wait: u64,
    /// Halves waiting at once.
    pub(crate) max_pending: usize,
    /// Edge series cap.
    pub(crate) max_series: usize,
}

/// The service-graph aggregate.
#[derive(Debug)]
pub(crate) struct ServiceGraph {
    limits: GraphLimits,
    pending: HashMap<(TraceId, SpanId), Pending>,
    edges: SeriesTable<EdgeKey, Edge>,
    names: Names,
    unpaired: u64,
    dropped: u64,
}

impl ServiceGraph {
    /// An empty graph.
    pub(crate) fn new(limits: GraphLimits) -> Self {
        Self {
            limits,
            pending: HashMap::new(),
            edges: SeriesTable::new(limits.max_series),
            names: Names::new(MAX_NAMES, MAX_NAME_LEN),
            unpaired: 0,
            dropped: 0,
        }
    }

    /// Takes one span into account; `now` in monotonic seconds.
    pub(crate) fn observe(&mut self, hasher: &LabelHasher, span: &SpanRef<'_, '_>, now: u64) {
        let Some(service) = service_of(span) else {
            return;
        };
        let (key, is_client) = match span.kind {
            SpanKind::Client | SpanKind::Producer => {
                if span.kind == SpanKind::Client
                    && let Some(db) = database_of(span)
                {
                    let half = Half::of(span, self.names.get(service), None);
                    self.record(hasher, &half, None, &db, Connection::Database, now);
                    return;
                }
                ((span.trace_id, span.span_id), true)
            }
            SpanKind::Server | SpanKind::Consumer => match span.parent_span_id {
                Some(parent) => ((span.trace_id, parent), false),
                // A root server span has no caller to pair with.
                None => return,
            },
            SpanKind::Internal | SpanKind::Unspecified => return,
        };
        // The cap needs a lookup only when it is reached.
        if self.pending.len() >= self.limits.max_pending && !self.pending.contains_key(&key) {
            self.dropped += 1;
            return;
        }
        let peer = is_client
            .then(|| attribute(span, &PEER_ATTRIBUTES))
            .flatten();
        let peer = peer.map(|p| self.names.get(&p));
        let half = Half::of(span, self.names.get(service), peer);
        let deadline = now + self.limits.wait;
        // One lookup: the entry either waits for its other half or is taken out complete.
        let mut entry = match self.pending.entry(key) {
            Entry::Occupied(entry) => entry,
            Entry::Vacant(vacant) => {
                let pending = if is_client {
                    Pending {
                        client: Some(half),
                        server: None,
                        deadline,
                    }
                } else {
                    Pending {
                        client: None,
                        server: Some(half),
                        deadline,
                    }
                };
                vacant.insert(pending);
                return;
            }
        };
        let waiting = entry.get_mut();
        let slot = if is_client {
            &mut waiting.client
        } else {
            &mut waiting.server
        };
        if slot.replace(half).is_some() {
            // A duplicate half (a span sent twice): keep the newer one.
            self.unpaired += 1;
        }
        if waiting.client.is_none() || waiting.server.is_none() {
            return;
        }
        if let Pending {
            client: Some(client),
            server: Some(server),
            ..
        } = entry.remove()
        {
            let connection = if client.messaging || server.messaging {
                Connection::Messaging
            } else {
                Connection::Direct
            };
            self.record(
                hasher,
                &client,
                Some(&server),
                &server.service,
                connection,
                now,
            );
        }
    }

    fn record(
        &mut self,
        hasher: &LabelHasher,
        client: &Half,
        server: Option<&Half>,
        server_name: &str,
        connection: Connection,
        now: u64,
    ) {
        let mut h = hasher.start();
        client.service.hash(&mut h);
        server_name.hash(&mut h);
        connection.hash(&mut h);
        let edge = self.edges.update(
            h.finish(),
            |k| {
                *k.client == *client.service
                    && *k.server == *server_name
                    && k.connection == connection
            },
            || {
                let key = EdgeKey {
                    client: Arc::clone(&client.service),
                    server: server_name.into(),
                    connection,
                };
                (key, Edge::new())
            },
            now,
        );
        edge.requests += 1;
        if client.failed || server.is_some_and(|s| s.failed) {
            edge.failed += 1;
        }
        edge.client
            .observe(&GRAPH_BUCKETS_SECONDS, client.seconds());
        if let Some(server) = server {
            edge.server
                .observe(&GRAPH_BUCKETS_SECONDS, server.seconds());
            if connection == Connection::Messaging {
                let delay = server.start_ns.saturating_sub(client.end_ns) as f64 / 1e9;
                edge.messaging.observe(&GRAPH_BUCKETS_SECONDS, delay);
            }
        }
    }

    /// Expires halves past their deadline and edges idle for longer than `max_idle`.
    pub(crate) fn expire(&mut self, hasher: &LabelHasher, now: u64, max_idle: u64) {
        let expired: Vec<_> = self
            .pending
            .extract_if(|_, p| p.deadline <= now)
            .map(|(_, p)| p)
            .collect();
        for pending in expired {
            match pending.client {
                Some(client) if pending.server.is_none() => match &client.peer {
                    Some(peer) => {
                        let peer = Arc::clone(peer);
                        self.record(hasher, &client, None, &peer, Connection::Direct, now);
                    }
                    None => self.unpaired += 1,
                },
                Some(_) => self.unpaired += 2,
                None => self.unpaired += u64::from(pending.server.is_some()),
            }
        }
        self.edges.expire(now, max_idle);
    }

    /// Edge series (overflow included), updates folded into the overflow, edges expired,
    /// halves waiting.
    pub(crate) fn counts(&self) -> (usize, u64, u64, usize) {
        (
            self.edges.len(),
            self.edges.overflowed(),
            self.edges.expired(),
            self.pending.len(),
        )
    }

    /// Renders every family, edges sorted by client, server, connection type.
    pub(crate) fn render(&self, out: &mut String) {
        let edges = self
            .edges
            .sorted_by(|k| (k.client.clone(), k.server.clone(), k.connection));
        let label_sets: Vec<Vec<(&str, &str)>> = edges
            .iter()
            .map(|(key, _)| match key {
                Some(k) => vec![
                    (LABEL_CLIENT, &*k.client),
                    (LABEL_SERVER, &*k.server),
                    (LABEL_CONNECTION_TYPE, k.connection.label()),
                ],
                None => vec![(LABEL_OVERFLOW, "true")],
            })
            .collect();
        let rows = || edges.iter().map(|(_, e)| *e).zip(&label_sets);
        for (name, help, value) in [
            (
                GRAPH_REQUESTS,
                "Requests between two services.",
                (|e: &Edge| e.requests) as fn(&Edge) -> u64,
            ),
            (
                GRAPH_FAILED,
                "Requests between two services where either side failed.",
                |e: &Edge| e.failed,
            ),
        ] {
            exposition::header(out, name, "counter", help);
            for (edge, labels) in rows() {
                exposition::sample(out, name, labels, value(edge) as f64);
            }
        }
        for (name, help, hist) in [
            (
                GRAPH_SERVER_SECONDS,
                "Server-side duration of requests between two services, seconds.",
                (|e: &Edge| &e.server) as fn(&Edge) -> &Histogram,
            ),
            (
                GRAPH_CLIENT_SECONDS,
                "Client-side duration of requests between two services, seconds.",
                |e: &Edge| &e.client,
            ),
            (
                GRAPH_MESSAGING_SECONDS,
                "Time between a message's production and its consumption, seconds.",
                |e: &Edge| &e.messaging,
            ),
        ] {
            exposition::header(out, name, "histogram", help);
            for (edge, labels) in rows() {
                let h = hist(edge);
                if h.count() > 0 {
                    exposition::histogram(out, name, labels, &GRAPH_BUCKETS_SECONDS, h);
                }
            }
        }
        exposition::header(
            out,
            GRAPH_UNPAIRED,
            "counter",
            "Client or server spans whose other half did not arrive in time.",
        );
        exposition::sample(out, GRAPH_UNPAIRED, &[], self.unpaired as f64);
        exposition::header(
            out,
            GRAPH_DROPPED,
            "counter",
            "Client or server spans not paired because too many were waiting.",
        );
        exposition::sample(out, GRAPH_DROPPED, &[], self.dropped as f64);
    }
}

/// The database a CLIENT span calls, if it is a database call.
fn database_of<'s>(span: &SpanRef<'_, 's>) -> Option<Cow<'s, str>> {
    let system = attribute(span, &[DB_SYSTEM])?;
    Some(attribute(span, &DB_NAME_ATTRIBUTES).unwrap_or(system))
}

/// The first of `names` present as a non-empty span attribute, as a string.
fn attribute<'s>(span: &SpanRef<'_, 's>, names: &[&str]) -> Option<Cow<'s, str>> {
    names.iter().find_map(|name| {
        span.attributes()
            .iter()
            .find(|kv| kv.key == *name)
            .map(|kv| kv.value.to_search_string())
            .filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{AttrValue, BatchView, KeyValue, Resource, Scope, Span, Status};

    fn span(service: &str, kind: SpanKind, id: u8, parent: Option<u8>) -> Span {
        let sid = |b: u8| SpanId::from_slice(&[b; 8]).unwrap();
        Span {
            trace_id: TraceId::from_slice(&[7; 16]).unwrap(),
            span_id: sid(id),
            parent_span_id: parent.map(sid),
            trace_state: String::new(),
            flags: 0,
            name: "op".to_owned(),
            kind,
            start_ns: 0,
            end_ns: 5_000_000,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: Status::default(),
            resource: Arc::new(Resource {
                service_name: service.to_owned(),
                attributes: Vec::new(),
            }),
            scope: Arc::new(Scope::default()),
        }
    }

    fn attr(mut s: Span, key: &str, value: &str) -> Span {
        s.attributes.push(KeyValue {
            key: key.to_owned(),
            value: AttrValue::String(value.to_owned()),
        });
        s
    }

    fn graph(max_pending: usize) -> ServiceGraph {
        ServiceGraph::new(GraphLimits {
            wait: 10,
            max_pending,
            max_series: 100,
        })
    }

    fn observe(g: &mut ServiceGraph, h: &LabelHasher, span: &Span, now: u64) {
        let batch = BatchView::from_spans([span]);
        for s in batch.spans() {
            g.observe(h, &s, now);
        }
    }

    fn render(g: &ServiceGraph) -> String {
        let mut out = String::new();
        g.render(&mut out);
        out.lines()
            .filter(|l| {
                l.starts_with("traces_service_graph_request_total")
                    || l.starts_with("traces_service_graph_unpaired")
                    || l.starts_with("traces_service_graph_dropped")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn expired_halves_become_virtual_edges_or_unpaired() {
        let h = LabelHasher::default();
        let mut g = graph(100);
        observe(
            &mut g,
            &h,
            &attr(
                span("a", SpanKind::Client, 1, None),
                "peer.service",
                "stripe",
            ),
            0,
        );
        observe(&mut g, &h, &span("a", SpanKind::Client, 2, None), 0);
        observe(&mut g, &h, &span("b", SpanKind::Server, 3, Some(9)), 0);
        g.expire(&h, 9, 300);
        assert_eq!(g.counts().3, 3, "nothing expires before the wait is over");
        g.expire(&h, 10, 300);
        assert_eq!(g.counts().3, 0);
        assert_eq!(
            render(&g),
            "traces_service_graph_request_total{client=\"a\",server=\"stripe\",connection_type=\"\"} 1\n\
             traces_service_graph_unpaired_spans_total 2\n\
             traces_service_graph_dropped_spans_total 0"
        );
    }

    #[test]
    fn a_database_is_named_by_db_name_then_db_namespace_then_db_system() {
        let database = |attrs: &[(&str, &str)]| {
            let s = attrs
                .iter()
                .fold(span("a", SpanKind::Client, 1, None), |s, (k, v)| {
                    attr(s, k, v)
                });
            let batch = BatchView::from_spans([&s]);
            let view = batch.spans().next().unwrap();
            database_of(&view).map(Cow::into_owned)
        };
        let pg = ("db.system", "postgresql");
        assert_eq!(database(&[]), None);
        assert_eq!(database(&[("db.name", "shop")]), None, "no db.system");
        assert_eq!(database(&[pg]).as_deref(), Some("postgresql"));
        assert_eq!(
            database(&[("db.namespace", "ns"), pg, ("db.name", "shop")]).as_deref(),
            Some("shop")
        );
        assert_eq!(
            database(&[pg, ("db.namespace", "ns")]).as_deref(),
            Some("ns")
        );
        // An empty value counts as absent; only the first occurrence of a key is read.
        assert_eq!(
            database(&[pg, ("db.name", ""), ("db.namespace", "ns")]).as_deref(),
            Some("ns")
        );
        assert_eq!(
            database(&[pg, ("db.name", ""), ("db.name", "late")]).as_deref(),
            Some("postgresql")
        );
        assert_eq!(database(&[("db.system", ""), ("db.name", "shop")]), None);
    }

    #[test]
    fn a_full_store_drops_new_halves_but_still_pairs_waiting_ones() {
        let h = LabelHasher::default();
        let mut g = graph(2);
        observe(&mut g, &h, &span("a", SpanKind::Client, 1, None), 0);
        observe(&mut g, &h, &span("a", SpanKind::Client, 2, None), 0);
        observe(&mut g, &h, &span("a", SpanKind::Client, 3, None), 0);
        observe(&mut g, &h, &span("b", SpanKind::Server, 4, Some(1)), 0);
        assert_eq!(
            render(&g),
            "traces_service_graph_request_total{client=\"a\",server=\"b\",connection_type=\"\"} 1\n\
             traces_service_graph_unpaired_spans_total 0\n\
             traces_service_graph_dropped_spans_total 1"
        );
    }

    #[test]
    fn roots_internal_spans_and_anonymous_services_are_not_paired() {
        let h = LabelHasher::default();
        let mut g = graph(100);
        observe(&mut g, &h, &span("a", SpanKind::Server, 1, None), 0);
        observe(&mut g, &h, &span("a", SpanKind::Internal, 2, Some(1)), 0);
        observe(
            &mut g,
            &h,
            &span(crate::model::NO_SERVICE_NAME, SpanKind::Client, 3, None),
            0,
        );
        assert_eq!(g.counts().3, 0);
    }
}
