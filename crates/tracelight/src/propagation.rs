//! Exact, allocation-light context propagation over [`http::HeaderMap`]s.
//!
//! Implements [W3C Trace Context] (`traceparent` / `tracestate`), [W3C Baggage] (`baggage`) and
//! [Zipkin B3] (single `b3` header and multi `X-B3-*` headers) without global state, locks or
//! per-request `String`s on the hot path. Use [`Propagators`] for the configured set, or the
//! free functions ([`parse_traceparent`], [`format_traceparent`], [`parse_tracestate`], ...) for
//! one format.
//!
//! # Choices where the specifications leave room
//!
//! * **`traceparent` OWS** — leading/trailing spaces and tabs around the value are ignored: an
//!   HTTP field value never includes them (RFC 9110 §5.5), and the W3C test suite
//!   (`test_traceparent_ows_handling`) expects the value to be accepted.
//! * **`traceparent` flags** — the 8 raw bits are kept in [`TraceParent::flags`], but only the
//!   `sampled` bit reaches the [`SpanContext`] and is injected (Trace Context "Other Flags":
//!   "Vendors MUST set those to zero").
//! * **`tracestate`** — any invalid list-member or more than 32 list-members makes the whole
//!   combined header invalid, and it is dropped (test suite, `STRICT_LEVEL=2`). Keys follow the
//!   `simple-key` / `multi-tenant-key` grammar the test suite enforces (stricter than the
//!   single `key` rule of the published spec text); values follow `0*255(chr) nblk-chr` (1–256
//!   characters, last one not a space), so `foo=` is invalid. A repeated key keeps its first
//!   list-member ("Mutating the tracestate Field": receivers MAY drop duplicates). Headers are not
//!   truncated on inject ("tracestate Limits": vendors SHOULD propagate at least 512 characters).
//! * **Baggage** — invalid list-members are skipped, not the whole header; members past 8192
//!   bytes of combined header, past 180 list-members, or that [`Baggage`] itself refuses
//!   (opentelemetry keeps at most 64 entries / 8192 bytes) are dropped whole, as in
//!   opentelemetry's `BaggagePropagator`. See [`parse_baggage`].
//! * **B3** — both B3 kinds extract the single `b3` header first and fall back to the
//!   `X-B3-*` headers (OpenTelemetry propagators spec, "B3 Extract"); the kind only selects the
//!   injected format. See [`parse_b3`].
//!
//! [W3C Trace Context]: https://www.w3.org/TR/trace-context-2/
//! [W3C Baggage]: https://www.w3.org/TR/baggage/
//! [Zipkin B3]: https://github.com/openzipkin/b3-propagation
//! [`SpanContext`]: opentelemetry::trace::SpanContext
//! [`Baggage`]: opentelemetry::baggage::Baggage

mod b3;
mod baggage;
mod traceparent;
mod tracestate;

#[cfg(test)]
mod tests;

use http::HeaderMap;
use http::header::HeaderName;
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};

pub use self::b3::{B3, B3Sampling, parse_b3, parse_b3_single};
pub use self::baggage::{format_baggage, parse_baggage};
pub use self::traceparent::{TraceParent, format_traceparent, parse_traceparent};
pub use self::tracestate::{
    TraceStateError, format_tracestate, parse_tracestate, parse_tracestate_values,
};

/// Whether `headers` hold a header that some format extracts from: `traceparent`, `baggage`,
/// `b3` or `x-b3-*` (`tracestate` is only read with a `traceparent`). Header names are
/// lowercase in a [`HeaderMap`].
fn may_carry_context(headers: &HeaderMap) -> bool {
    headers.keys().any(is_carrier)
}

/// Whether some format extracts from a header named `name` (see [`may_carry_context`]).
pub(crate) fn is_carrier(name: &HeaderName) -> bool {
    let name = name.as_str();
    match name.len() {
        2 => name == "b3",
        7 => name == "baggage",
        11 => name == "traceparent",
        _ => name.starts_with("x-b3-"),
    }
}

/// `traceparent` (W3C Trace Context).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context).
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// `baggage` (W3C Baggage).
pub const BAGGAGE: HeaderName = HeaderName::from_static("baggage");
/// `b3` (B3 single header).
pub const B3_SINGLE: HeaderName = HeaderName::from_static("b3");
/// `x-b3-traceid` (B3 multi header).
pub const X_B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// `x-b3-spanid` (B3 multi header).
pub const X_B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
/// `x-b3-parentspanid` (B3 multi header; never injected, ignored on extract).
pub const X_B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// `x-b3-sampled` (B3 multi header).
pub const X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
/// `x-b3-flags` (B3 multi header; `1` means debug).
pub const X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Which propagation formats are active (`OTEL_PROPAGATORS` values `tracecontext`, `baggage`,
/// `b3`, `b3multi`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropagatorKind {
    /// W3C Trace Context: `traceparent` and `tracestate` (`tracecontext`).
    TraceContext,
    /// W3C Baggage: `baggage` (`baggage`).
    Baggage,
    /// B3, injected as the single `b3` header (`b3`).
    B3Single,
    /// B3, injected as the `X-B3-*` headers (`b3multi`).
    B3Multi,
}

impl PropagatorKind {
    const COUNT: usize = 4;

    /// The name of this kind in `OTEL_PROPAGATORS`.
    pub const fn otel_name(self) -> &'static str {
        match self {
            Self::TraceContext => "tracecontext",
            Self::Baggage => "baggage",
            Self::B3Single => "b3",
            Self::B3Multi => "b3multi",
        }
    }

    /// The kind named `name` in `OTEL_PROPAGATORS` (exact, lowercase), if supported.
    pub fn from_otel_name(name: &str) -> Option<Self> {
        match name {
            "tracecontext" => Some(Self::TraceContext),
            "baggage" => Some(Self::Baggage),
            "b3" => Some(Self::B3Single),
            "b3multi" => Some(Self::B3Multi),
            _ => None,
        }
    }
}

/// An `OTEL_PROPAGATORS` entry that is not supported here (e.g. `jaeger`, `xray`, a typo).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported propagator {0:?} in OTEL_PROPAGATORS (supported: tracecontext, baggage, b3, b3multi, none)"
)]
pub struct UnknownPropagator(pub String);

/// A cheap-to-clone, immutable, configured set of propagators (no global state, no locks).
///
/// # Extraction order
///
/// Formats are extracted in the order given to [`Propagators::new`], each one on top of the
/// context produced by the previous ones, like opentelemetry's `TextMapCompositePropagator`: a
/// format that finds nothing (or only invalid data) leaves the context as it was, so for the
/// remote span context **the last format that yields a valid one wins**, and the baggage of the
/// `Baggage` format replaces any earlier baggage only when the header yields at least one entry.
///
/// # Injection
///
/// Every configured format writes its headers (replacing existing values of the same names);
/// trace formats write nothing when the span context is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagators {
    kinds: [PropagatorKind; PropagatorKind::COUNT],
    len: u8,
}

impl Default for Propagators {
    /// [`Propagators::w3c`], the `OTEL_PROPAGATORS` default.
    fn default() -> Self {
        Self::w3c()
    }
}

impl Propagators {
    /// The given formats, in extraction order. Repeated kinds are ignored after their first
    /// occurrence; an empty slice gives a set that neither extracts nor injects anything.
    pub fn new(kinds: &[PropagatorKind]) -> Self {
        let mut out = Self {
            kinds: [PropagatorKind::TraceContext; PropagatorKind::COUNT],
            len: 0,
        };
        for &kind in kinds {
            if out.kinds().contains(&kind) {
                continue;
            }
            if let Some(slot) = out.kinds.get_mut(usize::from(out.len)) {
                *slot = kind;
                out.len += 1;
            }
        }
        out
    }

    /// `tracecontext,baggage`, the default of `OTEL_PROPAGATORS`.
    pub fn w3c() -> Self {
        Self::new(&[PropagatorKind::TraceContext, PropagatorKind::Baggage])
    }

    /// No propagation at all (`OTEL_PROPAGATORS=none`).
    pub fn none() -> Self {
        Self::new(&[])
    }

    /// Parses an `OTEL_PROPAGATORS` value: comma-separated names, surrounding whitespace
    /// ignored. An empty value gives the default ([`Propagators::w3c`]); `none` anywhere in the
    /// list gives [`Propagators::none`].
    ///
    /// # Errors
    ///
    /// [`UnknownPropagator`] for the first name that is neither supported nor `none`.
    pub fn from_otel_propagators(value: &str) -> Result<Self, UnknownPropagator> {
        let names = || value.split(',').map(str::trim).filter(|n| !n.is_empty());
        if names().next().is_none() {
            return Ok(Self::w3c());
        }
        if names().any(|n| n == "none") {
            return Ok(Self::none());
        }
        let mut kinds = [PropagatorKind::TraceContext; PropagatorKind::COUNT];
        let mut len = 0;
        for name in names() {
            let kind = PropagatorKind::from_otel_name(name)
                .ok_or_else(|| UnknownPropagator(name.into()))?;
            if !kinds[..len].contains(&kind)
                && let Some(slot) = kinds.get_mut(len)
            {
                *slot = kind;
                len += 1;
            }
        }
        Ok(Self::new(&kinds[..len]))
    }

    /// The active formats, in extraction order.
    pub fn kinds(&self) -> &[PropagatorKind] {
        self.kinds.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Whether `kind` is active.
    pub fn contains(&self, kind: PropagatorKind) -> bool {
        self.kinds().contains(&kind)
    }

    /// The header names these formats may read or write (e.g. for CORS `Access-Control-*`).
    pub fn fields(&self) -> impl Iterator<Item = HeaderName> + '_ {
        static TRACE_CONTEXT: [HeaderName; 2] = [TRACEPARENT, TRACESTATE];
        static BAGGAGE_FIELDS: [HeaderName; 1] = [BAGGAGE];
        static B3_SINGLE_FIELDS: [HeaderName; 1] = [B3_SINGLE];
        static B3_MULTI: [HeaderName; 4] = [X_B3_TRACE_ID, X_B3_SPAN_ID, X_B3_SAMPLED, X_B3_FLAGS];
        self.kinds().iter().flat_map(|kind| {
            let names: &'static [HeaderName] = match kind {
                PropagatorKind::TraceContext => &TRACE_CONTEXT,
                PropagatorKind::Baggage => &BAGGAGE_FIELDS,
                PropagatorKind::B3Single => &B3_SINGLE_FIELDS,
                PropagatorKind::B3Multi => &B3_MULTI,
            };
            names.iter().cloned()
        })
    }

    /// Extracts into a new, empty [`Context`] (not `Context::current()`): see
    /// [`Propagators::extract_with_context`].
    pub fn extract(&self, headers: &HeaderMap) -> Context {
        self.extract_with_context(&Context::new(), headers)
    }

    /// Extracts every active format, in order, on top of `cx` (see the type docs for the
    /// precedence rule). A remote span context is set with
    /// [`TraceContextExt::with_remote_span_context`](opentelemetry::trace::TraceContextExt)
    /// (`is_remote() == true`), baggage with
    /// [`BaggageExt::with_baggage`](opentelemetry::baggage::BaggageExt).
    pub fn extract_with_context(&self, cx: &Context, headers: &HeaderMap) -> Context {
        if !may_carry_context(headers) {
            return cx.clone();
        }
        self.extract_present(cx, headers)
    }

    /// [`Propagators::extract`] for headers known to hold a header some format reads
    /// ([`is_carrier`]): the middleware finds that out in its own pass over the headers, so
    /// that a request from outside any trace (the common case) costs no hashed lookup per
    /// format.
    pub(crate) fn extract_carried(&self, headers: &HeaderMap) -> Context {
        self.extract_present(&Context::new(), headers)
    }

    fn extract_present(&self, cx: &Context, headers: &HeaderMap) -> Context {
        let mut out: Option<Context> = None;
        let mut b3_done = false;
        for &kind in self.kinds() {
            let current = out.as_ref().unwrap_or(cx);
            let next = match kind {
                PropagatorKind::TraceContext => traceparent::extract_span_context(headers)
                    .map(|sc| current.with_remote_span_context(sc)),
                PropagatorKind::Baggage => {
                    let baggage = parse_baggage(headers);
                    (!baggage.is_empty()).then(|| current.with_baggage(baggage))
                }
                PropagatorKind::B3Single | PropagatorKind::B3Multi if !b3_done => {
                    b3_done = true;
                    b3::extract(current, headers)
                }
                PropagatorKind::B3Single | PropagatorKind::B3Multi => None,
            };
            if next.is_some() {
                out = next;
            }
        }
        out.unwrap_or_else(|| cx.clone())
    }

    /// Injects the span context of `cx.span()` (only when valid) and `cx.baggage()` (only when
    /// it has entries) into `headers`. A B3 debug decision extracted earlier into the same
    /// context (and still on the same trace) is injected as `b3: …-d` / `X-B3-Flags: 1`.
    pub fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        let span = cx.span();
        let sc = span.span_context();
        let debug = b3::is_debug(cx, sc);
        for &kind in self.kinds() {
            match kind {
                PropagatorKind::Baggage => {
                    if let Some(value) = format_baggage(cx.baggage()) {
                        set(headers, BAGGAGE, value);
                    }
                }
                _ => inject_trace(kind, sc, debug, headers),
            }
        }
    }

    /// Injects only the trace formats for `sc` (no baggage, no [`Context`]): the per-request fast
    /// path. Nothing is written for an invalid span context.
    pub fn inject_span_context(&self, sc: &SpanContext, headers: &mut HeaderMap) {
        for &kind in self.kinds() {
            inject_trace(kind, sc, false, headers);
        }
    }
}

/// Writes the trace headers of one format.
fn inject_trace(kind: PropagatorKind, sc: &SpanContext, debug: bool, headers: &mut HeaderMap) {
    if !sc.is_valid() {
        return;
    }
    match kind {
        PropagatorKind::TraceContext => {
            set(headers, TRACEPARENT, format_traceparent(sc));
            match format_tracestate(sc.trace_state()) {
                Some(value) => set(headers, TRACESTATE, value),
                // A stale tracestate next to the new traceparent would describe another span.
                None => drop(headers.remove(TRACESTATE)),
            }
        }
        PropagatorKind::B3Single => set(headers, B3_SINGLE, b3::format_single(sc, debug)),
        PropagatorKind::B3Multi => b3::inject_multi(sc, debug, headers),
        PropagatorKind::Baggage => {}
    }
}

/// Replaces the values of `name`; a map already at its maximum size is left unchanged.
fn set(headers: &mut HeaderMap, name: HeaderName, value: http::HeaderValue) {
    // `try_insert` only fails past 32768 entries; losing a header there beats panicking.
    drop(headers.try_insert(name, value));
}

/// Removes surrounding optional whitespace (SP / HTAB, RFC 9110 §5.6.3).
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Value of one lowercase hex digit; uppercase is rejected (Trace Context and B3 both require
/// lowercase).
#[inline]
pub(crate) const fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Parses 1–32 lowercase hex digits.
#[inline]
pub(crate) fn parse_hex_u128(s: &[u8]) -> Option<u128> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    s.iter().try_fold(0u128, |acc, &b| {
        Some((acc << 4) | u128::from(hex_digit(b)?))
    })
}

/// Parses 1–16 lowercase hex digits.
#[inline]
pub(crate) fn parse_hex_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter()
        .try_fold(0u64, |acc, &b| Some((acc << 4) | u64::from(hex_digit(b)?)))
}

/// The two lowercase hex digits of every byte value: one table lookup per byte instead of two
/// shifts, masks and lookups (ids are formatted on every response and log line).
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [HEX[i >> 4], HEX[i & 0x0f]];
        i += 1;
    }
    table
};

/// Writes `bytes` as lowercase hex into the first `2 * bytes.len()` bytes of `dst`.
#[inline]
pub(crate) fn write_hex(dst: &mut [u8], bytes: &[u8]) {
    for (pair, &b) in dst.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}
