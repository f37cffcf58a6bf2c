//! Pre-encoded requests, with fresh trace ids and timestamps on every send.
//!
//! The requests are encoded once, up front, so the load generator measures the collector and
//! not prost's encoder. Re-sending the same bytes would be unrealistic in two ways that change
//! a store's work: every trace id would repeat (a store that ignores retried spans would do
//! less), and every span would carry the same old timestamps (time indexes would see random
//! inserts into the past instead of appends at "now"). So each send copies the bytes and
//! patches them in place ([`EncodedRequest::fresh_copy`]): the first 8 bytes of every trace id
//! are XORed with a per-send salt, and every span's start and end time are shifted by the time
//! elapsed since the pool was built. A memcpy and a few stores per span, no re-encoding. Span and
//! parent ids stay as they are; they only need to be unique within a trace.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::payload::{build_request, mix64};

/// `Span.trace_id` is field 1 with wire type LEN (tag byte 0x0a), always 16 bytes (0x10).
const TRACE_ID_PREFIX: [u8; 2] = [0x0a, 0x10];

/// `Span.start_time_unix_nano`: field 7, wire type I64 (tag byte 0x39), little-endian.
const START_TIME_TAG: u8 = 0x39;

/// `Span.end_time_unix_nano`: field 8, wire type I64 (tag byte 0x41), little-endian.
const END_TIME_TAG: u8 = 0x41;

/// Where one span's patchable fields are in the encoding.
#[derive(Debug, Clone, Copy)]
struct SpanOffsets {
    trace_id: usize,
    start_time: usize,
    end_time: usize,
}

/// One encoded `ExportTraceServiceRequest` and where its spans' trace ids and times are.
#[derive(Debug, Clone)]
pub struct EncodedRequest {
    bytes: Bytes,
    spans: Vec<SpanOffsets>,
}

/// Offset of the 8 bytes after the first `tag` + `value` (little-endian) in `bytes[from..to]`.
fn find_fixed64(bytes: &[u8], from: usize, to: usize, tag: u8, value: u64) -> Option<usize> {
    let mut pattern = [0u8; 9];
    pattern[0] = tag;
    pattern[1..].copy_from_slice(&value.to_le_bytes());
    bytes
        .get(from..to)?
        .windows(pattern.len())
        .position(|w| w == pattern)
        .map(|i| from + i + 1)
}

fn add_to_u64_le(bytes: &mut [u8], offset: usize, delta: u64) {
    let field = &mut bytes[offset..offset + 8];
    let mut value = [0u8; 8];
    value.copy_from_slice(field);
    field.copy_from_slice(&u64::from_le_bytes(value).wrapping_add(delta).to_le_bytes());
}

impl EncodedRequest {
    /// Encodes `request` and locates the trace id, start and end time of each of its spans.
    ///
    /// # Panics
    /// If a span's trace id is not 16 bytes, or a field cannot be found in the encoding (a bug
    /// in the payload builder).
    pub fn encode(request: &ExportTraceServiceRequest) -> Self {
        let bytes = request.encode_to_vec();
        // In encoding order, which is the order of the generated structs.
        let spans: Vec<_> = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .collect();
        let mut ids: Vec<&[u8]> = spans.iter().map(|s| s.trace_id.as_slice()).collect();
        assert!(
            ids.iter().all(|id| id.len() == 16),
            "generated trace ids are 16 bytes"
        );
        ids.sort_unstable();
        ids.dedup();
        let trace_id_offsets: Vec<usize> = (TRACE_ID_PREFIX.len()..bytes.len().saturating_sub(15))
            .filter(|&i| {
                bytes[i - 2..i] == TRACE_ID_PREFIX && ids.binary_search(&&bytes[i..i + 16]).is_ok()
            })
            .collect();
        assert_eq!(
            trace_id_offsets.len(),
            spans.len(),
            "every span's trace id must be found in the encoding"
        );
        let offsets = spans
            .iter()
            .enumerate()
            .map(|(i, span)| {
                let trace_id = trace_id_offsets[i];
                let next = trace_id_offsets.get(i + 1).copied().unwrap_or(bytes.len());
                let start_time = find_fixed64(
                    &bytes,
                    trace_id + 16,
                    next,
                    START_TIME_TAG,
                    span.start_time_unix_nano,
                )
                .expect("every span's start time is in the encoding");
                let end_time = find_fixed64(
                    &bytes,
                    start_time + 8,
                    next,
                    END_TIME_TAG,
                    span.end_time_unix_nano,
                )
                .expect("every span's end time is in the encoding");
                SpanOffsets {
                    trace_id,
                    start_time,
                    end_time,
                }
            })
            .collect();
        Self {
            bytes: Bytes::from(bytes),
            spans: offsets,
        }
    }

    /// The encoded request as built.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Spans in the request.
    pub fn spans(&self) -> usize {
        self.spans.len()
    }

    /// A copy whose trace ids are all XORed with `salt` (big-endian, first 8 bytes of each)
    /// and whose span start and end times are all `shift_ns` later.
    ///
    /// Distinct salts give distinct trace ids; `fresh_copy(0, 0)` gives the original bytes.
    pub fn fresh_copy(&self, salt: u64, shift_ns: u64) -> Bytes {
        let mut out = self.bytes.to_vec();
        let salt = salt.to_be_bytes();
        for span in &self.spans {
            for (byte, s) in out[span.trace_id..span.trace_id + 8].iter_mut().zip(salt) {
                *byte ^= s;
            }
            add_to_u64_le(&mut out, span.start_time, shift_ns);
            add_to_u64_le(&mut out, span.end_time, shift_ns);
        }
        Bytes::from(out)
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A rotation of pre-encoded requests with distinct trace ids.
#[derive(Debug, Clone)]
pub struct RequestPool {
    requests: Vec<EncodedRequest>,
    seed: u64,
    start_unix_nanos: u64,
}

impl RequestPool {
    /// Builds `size` (≥ 1) requests of `spans_per_request` spans each, whose spans start at
    /// `start_unix_nanos` (plus 1 ms per trace).
    pub fn build(size: usize, spans_per_request: usize, seed: u64, start_unix_nanos: u64) -> Self {
        let requests = (0..size.max(1) as u64)
            .map(|i| {
                let request = build_request(spans_per_request, mix64(seed ^ i), start_unix_nanos);
                EncodedRequest::encode(&request)
            })
            .collect();
        Self {
            requests,
            seed,
            start_unix_nanos,
        }
    }

    /// The pooled requests.
    pub fn requests(&self) -> &[EncodedRequest] {
        &self.requests
    }

    /// The bytes of the `n`-th send, made at `now_unix_nanos`: pool entry `n % size`, with
    /// trace ids unique to `n` and times moved forward by the time since the pool's start.
    pub fn nth_at(&self, n: u64, now_unix_nanos: u64) -> Bytes {
        let entry = &self.requests[(n % self.requests.len() as u64) as usize];
        // mix64 is a bijection, so no two sends of the run share a salt.
        let salt = mix64(self.seed.wrapping_add(n));
        entry.fresh_copy(salt, now_unix_nanos.saturating_sub(self.start_unix_nanos))
    }

    /// [`nth_at`](Self::nth_at) now.
    pub fn nth(&self, n: u64) -> Bytes {
        self.nth_at(n, now_unix_nanos())
    }

    /// Spans per request (all entries have the same count).
    pub fn spans_per_request(&self) -> usize {
        self.requests.first().map_or(0, EncodedRequest::spans)
    }

    /// Encoded size of the first entry in bytes.
    pub fn bytes_per_request(&self) -> usize {
        self.requests.first().map_or(0, |r| r.bytes().len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use prost::Message as _;

    use super::*;
    use crate::payload::spans_with_service;

    fn decode(bytes: &[u8]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(bytes).unwrap()
    }

    /// (trace id, span id, parent id) of every span.
    fn ids(request: &ExportTraceServiceRequest) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        spans_with_service(request)
            .into_iter()
            .map(|(s, _)| {
                (
                    s.trace_id.clone(),
                    s.span_id.clone(),
                    s.parent_span_id.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn finds_every_trace_id() {
        let request = build_request(512, 1, 1_000);
        let encoded = EncodedRequest::encode(&request);
        assert_eq!(encoded.spans(), 512);
        assert_eq!(decode(encoded.bytes()), request);
        assert_eq!(encoded.fresh_copy(0, 0), *encoded.bytes());
    }

    #[test]
    fn fresh_copies_change_trace_ids_and_times_only() {
        let request = build_request(100, 1, 1_000);
        let encoded = EncodedRequest::encode(&request);
        let before = ids(&request);
        let after = ids(&decode(&encoded.fresh_copy(0xDEAD_BEEF_0000_0001, 0)));
        assert_eq!(before.len(), after.len());
        // Old trace id → new trace id must be a bijection: traces stay whole and distinct.
        let mut mapping = BTreeMap::new();
        for ((t0, s0, p0), (t1, s1, p1)) in before.iter().zip(&after) {
            assert_ne!(t0, t1, "trace id unchanged");
            assert_eq!(t0[8..], t1[8..], "only the first 8 bytes change");
            assert_eq!((s0, p0), (s1, p1), "span and parent ids must not change");
            assert_eq!(mapping.entry(t0.clone()).or_insert_with(|| t1.clone()), t1);
        }
        let new: BTreeSet<_> = mapping.values().collect();
        assert_eq!(new.len(), mapping.len());
        // Everything else is byte-for-byte the same.
        let shift = 3_600_000_000_000;
        let mut patched = decode(&encoded.fresh_copy(7, shift));
        for rs in &mut patched.resource_spans {
            for ss in &mut rs.scope_spans {
                for span in &mut ss.spans {
                    span.trace_id[..8]
                        .iter_mut()
                        .zip(7u64.to_be_bytes())
                        .for_each(|(b, s)| *b ^= s);
                    span.start_time_unix_nano -= shift;
                    span.end_time_unix_nano -= shift;
                }
            }
        }
        assert_eq!(patched, request);
    }

    #[test]
    fn every_send_gets_new_trace_ids() {
        let pool = RequestPool::build(2, 50, 99, 1_000);
        assert_eq!(pool.requests().len(), 2);
        assert_eq!(pool.spans_per_request(), 50);
        let mut seen = BTreeSet::new();
        // Four rounds through the pool: entries repeat, trace ids must not.
        for n in 0..8 {
            for (trace_id, _, _) in ids(&decode(&pool.nth_at(n, 1_000))) {
                seen.insert((n, trace_id));
            }
        }
        let distinct: BTreeSet<_> = seen.iter().map(|(_, t)| t).collect();
        assert_eq!(distinct.len(), 8 * 10, "trace ids repeated across sends");
    }

    #[test]
    fn times_move_with_the_clock() {
        let start = 1_700_000_000_000_000_000;
        let pool = RequestPool::build(1, 10, 5, start);
        let later = start + 90_000_000_000;
        let request = decode(&pool.nth_at(3, later));
        for (span, _) in spans_with_service(&request) {
            // The 2 traces start 1 ms apart; spans start within 20 ms and last under 50 ms.
            assert!(span.start_time_unix_nano >= later);
            assert!(span.start_time_unix_nano < later + 21_000_000);
            assert!(span.end_time_unix_nano > span.start_time_unix_nano);
            assert!(span.end_time_unix_nano - span.start_time_unix_nano < 50_000_000);
        }
    }
}
