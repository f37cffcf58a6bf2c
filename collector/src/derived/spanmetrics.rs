//! RED metrics from spans, named and labelled like the `spanmetrics` connector's output.
//!
//! One series per `service_name`, `span_name`, `span_kind`, `status_code` and the configured
//! extra dimensions: `traces_span_metrics_calls_total` counts spans and
//! `traces_span_metrics_duration_milliseconds` holds their durations. Errors are the calls with
//! `status_code="STATUS_CODE_ERROR"` (§B.3 of `metric-names.md`); spans whose resource has no
//! `service.name` are skipped and counted.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use super::exposition;
use super::names::{
    LABEL_OVERFLOW, LABEL_SERVICE, LABEL_SPAN_KIND, LABEL_SPAN_NAME, LABEL_STATUS, SPAN_CALLS,
    SPAN_DURATION, SPAN_DURATION_BUCKETS_MS,
};
use super::series::{Histogram, LabelHasher, SeriesTable};
use crate::model::{NO_SERVICE_NAME, SpanKind, SpanRef, SpanView, StatusCode, ValueView};

/// The `span_kind` label value.
pub fn kind_label(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

/// The `status_code` label value.
pub fn status_label(status: StatusCode) -> &'static str {
    match status {
        StatusCode::Unset => "STATUS_CODE_UNSET",
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
    }
}

/// A span's duration in milliseconds; 0 when it ends before it starts.
pub(crate) fn duration_ms(span: &SpanView<'_>) -> f64 {
    span.end_ns.saturating_sub(span.start_ns) as f64 / 1e6
}

/// The service a span metric is attributed to, or `None` when the resource has none.
pub(crate) fn service_of<'a>(span: &SpanRef<'_, 'a>) -> Option<&'a str> {
    let name = span.service_name();
    (name != NO_SERVICE_NAME && !name.is_empty()).then_some(name)
}

#[derive(Debug)]
struct Key {
    service: Box<str>,
    name: Box<str>,
    kind: SpanKind,
    status: StatusCode,
    dims: Box<[Option<Box<str>>]>,
}

#[derive(Debug)]
struct Series {
    calls: u64,
    duration: Histogram,
}

/// A configured extra dimension.
#[derive(Debug)]
struct Dimension {
    attribute: String,
    label: String,
}

/// The span-metrics aggregate.
#[derive(Debug)]
pub(crate) struct SpanMetrics {
    dims: Vec<Dimension>,
    table: SeriesTable<Key, Series>,
    skipped: u64,
}

impl SpanMetrics {
    /// Aggregates with the extra `dimensions` (attribute names) and at most `cap` series.
    pub(crate) fn new(dimensions: &[String], cap: usize) -> Self {
        Self {
            dims: dimensions
                .iter()
                .map(|a| Dimension {
                    attribute: a.clone(),
                    label: exposition::label_name(a),
                })
                .collect(),
            table: SeriesTable::new(cap),
            skipped: 0,
        }
    }

    /// Counts one span; `operation` is [`LabelHasher::operation`] of its service, name and
    /// kind (unused when the span has no service name).
    pub(crate) fn observe(
        &mut self,
        hasher: &LabelHasher,
        operation: u64,
        span: &SpanRef<'_, '_>,
        now: u64,
    ) {
        let Some(service) = service_of(span) else {
            self.skipped += 1;
            return;
        };
        let dims: Vec<Option<Cow<'_, str>>> = self
            .dims
            .iter()
            .map(|d| dimension_value(span, &d.attribute))
            .collect();
        let mut h = hasher.start();
        h.write_u64(operation);
        span.status_code.hash(&mut h);
        for d in &dims {
            d.as_deref().hash(&mut h);
        }
        let hash = h.finish();
        let series = self.table.update(
            hash,
            |k| {
                *k.service == *service
                    && *k.name == *span.name
                    && k.kind == span.kind
                    && k.status == span.status_code
                    && k.dims
                        .iter()
                        .map(Option::as_deref)
                        .eq(dims.iter().map(Option::as_deref))
            },
            || {
                let key = Key {
                    service: service.into(),
                    name: span.name.into(),
                    kind: span.kind,
                    status: span.status_code,
                    dims: dims.iter().map(|d| d.as_deref().map(Box::from)).collect(),
                };
                let series = Series {
                    calls: 0,
                    duration: Histogram::new(&SPAN_DURATION_BUCKETS_MS),
                };
                (key, series)
            },
            now,
        );
        series.calls += 1;
        series
            .duration
            .observe(&SPAN_DURATION_BUCKETS_MS, duration_ms(span));
    }

    /// Removes series idle for longer than `max_idle` seconds.
    pub(crate) fn expire(&mut self, now: u64, max_idle: u64) {
        self.table.expire(now, max_idle);
    }

    /// Series held (overflow included), spans folded into the overflow, series expired, spans
    /// skipped for lack of a service name.
    pub(crate) fn counts(&self) -> (usize, u64, u64, u64) {
        (
            self.table.len(),
            self.table.overflowed(),
            self.table.expired(),
            self.skipped,
        )
    }

    /// Renders both families, series sorted by their labels.
    pub(crate) fn render(&self, out: &mut String) {
        let series = self.table.sorted_by(|k| {
            (
                k.service.clone(),
                k.name.clone(),
                k.kind,
                k.status.to_otlp(),
                k.dims.clone(),
            )
        });
        let label_sets: Vec<Vec<(&str, &str)>> = series
            .iter()
            .map(|(key, _)| match key {
                Some(k) => {
                    let mut set = vec![
                        (LABEL_SERVICE, &*k.service),
                        (LABEL_SPAN_NAME, &*k.name),
                        (LABEL_SPAN_KIND, kind_label(k.kind)),
                        (LABEL_STATUS, status_label(k.status)),
                    ];
                    for (dim, value) in self.dims.iter().zip(k.dims.iter()) {
                        if let Some(v) = value {
                            set.push((dim.label.as_str(), v));
                        }
                    }
                    set
                }
                None => vec![(LABEL_OVERFLOW, "true")],
            })
            .collect();
        exposition::header(
            out,
            SPAN_CALLS,
            "counter",
            "Spans received, by service, span name, kind and status.",
        );
        for ((_, s), labels) in series.iter().zip(&label_sets) {
            exposition::sample(out, SPAN_CALLS, labels, s.calls as f64);
        }
        exposition::header(
            out,
            SPAN_DURATION,
            "histogram",
            "Span durations in milliseconds, by service, span name, kind and status.",
        );
        for ((_, s), labels) in series.iter().zip(&label_sets) {
            exposition::histogram(
                out,
                SPAN_DURATION,
                labels,
                &SPAN_DURATION_BUCKETS_MS,
                &s.duration,
            );
        }
    }
}

/// An extra dimension's value: the span attribute, else the resource attribute.
fn dimension_value<'a>(span: &SpanRef<'_, 'a>, attribute: &str) -> Option<Cow<'a, str>> {
    let find = |attrs: &[crate::model::KvView<'a>]| {
        attrs
            .iter()
            .find(|kv| kv.key == attribute)
            .map(|kv| match kv.value {
                ValueView::Str(s) => Cow::Borrowed(s),
                ref other => other.to_search_string(),
            })
    };
    find(span.attributes()).or_else(|| find(span.resource_attributes()))
}
