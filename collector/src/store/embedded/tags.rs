//! The hashes of search tags: every `key=value` pair a search can ask for, hashed for the
//! blocks' tag filters ([`super::filter`]) and the memtable chunks' summaries.
//!
//! The filters are persisted, so a block's summary says which function its tags were hashed
//! with ([`TagHash`]): format-1 to -3 blocks used [`TagHash::Mix`], format-4 blocks (written
//! since 2026-12-03) use [`TagHash::Rapid`]. A search hashes its tags with both and probes each
//! block with the hashes of its function.

use rapidhash::v3::{RapidSecrets, rapidhash_v3_seeded};

use super::block::hash_bytes;
use crate::model::same_str;
use crate::model::{BatchView, KvView, ScopeView, SpanRef, StatusCode, ValueView};

/// A function that hashes a `key=value` tag to 64 bits: the key first (cached per attribute
/// position, see [`KeyHashes`]), then the value seeded with the key's hash.
///
/// Both are fixed forever: blocks on disk hold filters of their hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TagHash {
    /// A splitmix64 finaliser over every 8 bytes, one after the other (formats 1–3). Its
    /// rounds form one dependency chain, ~6 multiplications for a 40-byte URL.
    Mix,
    /// rapidhash V3 (the `rapidhash` crate's portable `v3` functions, which match the C++
    /// reference; format 4): folded 64×64→128-bit multiplications over 16 bytes at a time, in
    /// independent lanes past 112 bytes.
    Rapid,
}

/// The seed of [`TagHash::Rapid`] key hashes.
const RAPID_KEY_SECRETS: RapidSecrets = RapidSecrets::seed_cpp(1);

impl TagHash {
    /// The function of new blocks and of the memtable's chunk summaries.
    pub(crate) const CURRENT: Self = Self::Rapid;

    /// The hash of tag `key=value`.
    pub(crate) fn of(self, key: &str, value: &str) -> u64 {
        self.value(self.key(key.as_bytes()), value.as_bytes())
    }

    #[inline]
    fn key(self, key: &[u8]) -> u64 {
        match self {
            Self::Mix => hash_bytes(1, key),
            Self::Rapid => rapidhash_v3_seeded(key, &RAPID_KEY_SECRETS),
        }
    }

    #[inline]
    fn value(self, key_hash: u64, value: &[u8]) -> u64 {
        match self {
            Self::Mix => hash_bytes(key_hash, value),
            Self::Rapid => rapidhash_v3_seeded(value, &RapidSecrets::seed_cpp(key_hash)),
        }
    }

    /// The hash of an attribute whose key hashed to `key_hash`, its value as a search
    /// matches it (integers and booleans as printed; scalars without allocating).
    ///
    /// Always inline: it runs for every attribute of a received batch, and as a call it cost
    /// `tag_hashes` 7.5 k more instructions per 100-span request (Callgrind).
    #[inline(always)]
    fn attribute(self, key_hash: u64, value: &ValueView<'_>) -> u64 {
        match *value {
            ValueView::Str(s) => self.value(key_hash, s.as_bytes()),
            ValueView::Int(i) => {
                let mut buf = [0u8; 20];
                self.value(key_hash, int_str(i, &mut buf).as_bytes())
            }
            ValueView::Bool(b) => self.value(key_hash, if b { b"true" } else { b"false" }),
            ref other => self.value(key_hash, other.to_search_string().as_bytes()),
        }
    }
}

/// The hash of tag `key=value` with [`TagHash::CURRENT`].
pub(crate) fn tag_hash(key: &str, value: &str) -> u64 {
    TagHash::CURRENT.of(key, value)
}

/// Calls `f` with every `key=value` pair that [`Span::matches_tag`](crate::model::Span::matches_tag) can match.
///
/// A span attribute equal to the one at the same position of the previous span (of the
/// same `keys`) is skipped: it was given then, and the caller collects a set. So is a kind or
/// status pair already given for an earlier span.
///
/// Must stay in step with `Span::matches_tag`: a pair missing here makes the search skip
/// blocks it should read (the model test catches that).
fn for_each_own_tag<'s>(
    batch: &BatchView<'s>,
    span: &SpanRef<'_, 's>,
    keys: &mut KeyHashes<'s>,
    f: &mut impl FnMut(u64),
) {
    for (i, kv) in span.attributes().iter().enumerate() {
        let Some(kh) = keys.get(i, kv.key, &kv.value) else {
            continue; // the previous span had the same pair here: already given
        };
        f(keys.hash.attribute(kh, &kv.value));
    }
    let hash = keys.hash;
    for e in span.events() {
        for_each_kv(batch.event_attributes(e), hash, f);
    }
    if let Some(kind) = span.kind.jaeger_name()
        && keys.first_time(span.kind as u16)
    {
        f(hash.of("span.kind", kind));
    }
    match span.status_code {
        StatusCode::Error if keys.first_time(GIVEN_ERROR) => {
            f(hash.of("error", "true"));
            f(hash.of("otel.status_code", "ERROR"));
        }
        StatusCode::Ok if keys.first_time(GIVEN_OK) => f(hash.of("otel.status_code", "OK")),
        _ => {}
    }
    if !span.status_message.is_empty() {
        f(hash.of("otel.status_description", span.status_message));
    }
}

/// The key hashes ([`TagHash::key`]) of span attribute keys, cached by position, with the
/// scalar value last seen there: neighbouring spans mostly have the same keys in the same
/// order, and often the same values (method, status, port, user agent), whose pair was given
/// already. Also the span kinds and statuses whose pairs were given (bits: the kind's number,
/// then [`GIVEN_ERROR`] and [`GIVEN_OK`]).
struct KeyHashes<'s> {
    hash: TagHash,
    slots: Vec<Option<KeySlot<'s>>>,
    given: u32,
}

/// Bits of [`KeyHashes::first_time`] for the statuses (above the span kinds' numbers).
const GIVEN_ERROR: u16 = 16;
const GIVEN_OK: u16 = 17;

struct KeySlot<'s> {
    key: &'s str,
    hash: u64,
    value: Option<Scalar<'s>>,
}

/// A value whose equality is cheap to check.
#[derive(Clone, Copy)]
enum Scalar<'s> {
    Str(&'s str),
    Int(i64),
    Bool(bool),
}

impl<'s> Scalar<'s> {
    fn of(v: &ValueView<'s>) -> Option<Self> {
        match *v {
            ValueView::Str(s) => Some(Self::Str(s)),
            ValueView::Int(i) => Some(Self::Int(i)),
            ValueView::Bool(b) => Some(Self::Bool(b)),
            _ => None,
        }
    }

    fn same(self, other: Self) -> bool {
        match (self, other) {
            (Self::Str(a), Self::Str(b)) => same_str(a, b),
            (Self::Int(a), Self::Int(b)) => a == b,
            (Self::Bool(a), Self::Bool(b)) => a == b,
            _ => false,
        }
    }
}

/// Positions cached (attributes beyond are hashed every time).
const KEY_SLOTS: usize = 64;

impl<'s> KeyHashes<'s> {
    fn new(hash: TagHash) -> Self {
        Self {
            hash,
            slots: Vec::new(),
            given: 0,
        }
    }

    /// Whether `bit` (a span kind's number, [`GIVEN_ERROR`] or [`GIVEN_OK`]) is seen for the
    /// first time; it is seen from now on.
    fn first_time(&mut self, bit: u16) -> bool {
        let mask = 1u32 << (bit % 32);
        let first = self.given & mask == 0;
        self.given |= mask;
        first
    }

    /// The key's hash, or `None` when the pair at `slot` is the one given there last.
    fn get(&mut self, slot: usize, key: &'s str, value: &ValueView<'s>) -> Option<u64> {
        let scalar = Scalar::of(value);
        if let Some(Some(cached)) = self.slots.get_mut(slot)
            && same_str(cached.key, key)
        {
            if let (Some(last), Some(now)) = (cached.value, scalar)
                && last.same(now)
            {
                return None;
            }
            cached.value = scalar;
            return Some(cached.hash);
        }
        let hash = self.hash.key(key.as_bytes());
        if slot < KEY_SLOTS {
            if self.slots.len() <= slot {
                self.slots.resize_with(slot + 1, || None);
            }
            self.slots[slot] = Some(KeySlot {
                key,
                hash,
                value: scalar,
            });
        }
        Some(hash)
    }
}

fn for_each_kv(list: &[KvView<'_>], hash: TagHash, f: &mut impl FnMut(u64)) {
    for kv in list {
        f(hash.attribute(hash.key(kv.key.as_bytes()), &kv.value));
    }
}

/// `i.to_string()` without allocating.
fn int_str(i: i64, buf: &mut [u8; 20]) -> &str {
    let mut n = i.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

fn scope_tags(scope: &ScopeView<'_>, hash: TagHash, f: &mut impl FnMut(u64)) {
    if !scope.name.is_empty() {
        f(hash.of("otel.scope.name", scope.name));
    }
    if !scope.version.is_empty() {
        f(hash.of("otel.scope.version", scope.version));
    }
}

/// The sorted, deduplicated hashes ([`TagHash::CURRENT`]) of every searchable tag of `batch`.
///
/// Computed by `write_batch` on the caller's thread, while the spans are still in its cache,
/// and merged per block.
pub(crate) fn tag_hashes(batch: &BatchView<'_>) -> Vec<u64> {
    TagHash::CURRENT.hashes(batch)
}

impl TagHash {
    /// [`tag_hashes`] with this function (tests write blocks of the earlier formats with
    /// [`TagHash::Mix`]).
    pub(crate) fn hashes(self, batch: &BatchView<'_>) -> Vec<u64> {
        // At most one hash per attribute and a few per span (name, kind, status), before dedup.
        let mut tags: Vec<u64> = Vec::with_capacity(batch.attribute_count() + batch.len() * 4);
        let mut keys = KeyHashes::new(self);
        let mut push = |h| tags.push(h);
        let mut resource_seen = vec![false; batch.resources().len()];
        let mut scope_seen = vec![false; batch.scopes().len()];
        for s in batch.spans() {
            for_each_own_tag(batch, &s, &mut keys, &mut push);
            if let Some(seen) = resource_seen.get_mut(s.resource_index() as usize)
                && !std::mem::replace(seen, true)
            {
                for_each_kv(batch.resource_attributes(s.resource()), self, &mut push);
            }
            if let Some(seen) = scope_seen.get_mut(s.scope_index() as usize)
                && !std::mem::replace(seen, true)
            {
                scope_tags(s.scope(), self, &mut push);
            }
        }
        sorted_distinct(tags)
    }
}

/// `hashes` sorted, without duplicates (what `sort_unstable` then `dedup` give).
///
/// The duplicates are dropped first, through a table indexed by the hashes' top bits (they
/// are well mixed already, so one probe mostly does), and only the distinct hashes are
/// sorted: a 100-span chunk of the load generator's gives ~680 tag hashes of which ~280 are
/// distinct (Callgrind: 59 k instructions sorting them all, 52 k with the table, whose
/// clearing Callgrind counts per byte). Not for a block's merged chunk lists: few of their
/// hashes repeat (mostly unique URLs and ids), so the table would only add.
fn sorted_distinct(mut hashes: Vec<u64>) -> Vec<u64> {
    /// Below this, sorting everything costs less than clearing a table.
    const SMALL: usize = 32;
    if hashes.len() < SMALL {
        hashes.sort_unstable();
        hashes.dedup();
        return hashes;
    }
    // At least twice as many slots as hashes: a quarter to a half of them in use.
    let bits = (hashes.len() * 2).next_power_of_two().trailing_zeros();
    let mask = (1usize << bits) - 1;
    // 0 marks a free slot; a hash that is 0 is remembered apart.
    let mut table = vec![0u64; 1 << bits];
    let mut zero_seen = false;
    // Hashes of crafted attributes could share their top bits and make the probes quadratic:
    // past this many, the rest is left to the sort.
    let mut probes_left = hashes.len() * 4;
    let mut kept = 0;
    let mut i = 0;
    while i < hashes.len() && probes_left > 0 {
        let h = hashes[i];
        let new = if h == 0 {
            !std::mem::replace(&mut zero_seen, true)
        } else {
            let mut slot = (h >> (64 - bits)) as usize;
            loop {
                probes_left = probes_left.saturating_sub(1);
                match table[slot] {
                    0 => {
                        table[slot] = h;
                        break true;
                    }
                    t if t == h => break false,
                    _ => slot = (slot + 1) & mask,
                }
            }
        };
        if new {
            hashes[kept] = h;
            kept += 1;
        }
        i += 1;
    }
    // The first `kept` are the distinct ones of the first `i`; the rest, not looked at if the
    // probes ran out, may repeat them.
    hashes.drain(kept..i);
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    const MIX_GET: u64 = 9677160220798344641;
    const RAPID_GET: u64 = 18216675436319164016;
    const MIX_URL: u64 = 10507503629774683923;
    const RAPID_URL: u64 = 10893561877872376535;

    /// Blocks on disk hold filters of these hashes: a dependency update or a refactoring that
    /// changed them would make searches skip blocks that hold the tag.
    #[test]
    fn tag_hashes_are_the_persisted_ones() {
        assert_eq!(TagHash::Mix.of("http.method", "GET"), MIX_GET);
        assert_eq!(TagHash::Rapid.of("http.method", "GET"), RAPID_GET);
        let url = "http://checkout.internal:8080/api/v1/orders/1234567890";
        assert_eq!(TagHash::Mix.of("http.url", url), MIX_URL);
        assert_eq!(TagHash::Rapid.of("http.url", url), RAPID_URL);
        assert_ne!(TagHash::Rapid.of("a", "bc"), TagHash::Rapid.of("ab", "c"));
    }

    proptest! {
        #[test]
        fn sorted_distinct_sorts_and_dedups(
            // Few distinct values (many repeats), zeros and the largest value included.
            small in proptest::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), 0u64..50], 0..300),
            spread in proptest::collection::vec(any::<u64>(), 0..3000),
            repeats in 1usize..4,
        ) {
            for input in [small, spread.iter().copied().cycle().take(spread.len() * repeats).collect()] {
                let mut want = input.clone();
                want.sort_unstable();
                want.dedup();
                prop_assert_eq!(sorted_distinct(input), want);
            }
        }
    }

    #[test]
    fn int_str_matches_to_string() {
        for i in [0i64, 7, -7, 500, i64::MIN, i64::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(int_str(i, &mut buf), i.to_string());
        }
    }

    #[test]
    fn tag_hashes_cover_every_attribute_pair_once_also_when_neighbours_repeat_them() {
        use crate::model::{
            AttrValue, KeyValue, Resource, Span, SpanId, SpanKind, Status, TraceId,
        };
        let kv = |k: &str, v: AttrValue| KeyValue {
            key: k.to_owned(),
            value: v,
        };
        // Neighbours repeat some pairs at the same position, change others, and change keys.
        let spans: Vec<Span> = (0..12u8)
            .map(|i| {
                let mut attributes = vec![
                    kv("http.method", AttrValue::String("GET".to_owned())),
                    kv("status", AttrValue::Int(if i % 4 == 0 { 500 } else { 200 })),
                    kv("ok", AttrValue::Bool(i % 3 == 0)),
                    kv("user", AttrValue::String(format!("u{}", i / 2))),
                    kv("ratio", AttrValue::Double(0.5)),
                ];
                if i % 2 == 0 {
                    attributes.swap(0, 3);
                }
                Span {
                    trace_id: TraceId::from_bytes([i + 1; 16]).unwrap(),
                    span_id: SpanId::from_bytes([i + 1; 8]).unwrap(),
                    parent_span_id: None,
                    trace_state: String::new(),
                    flags: 1,
                    name: "op".to_owned(),
                    // Kinds and statuses repeat too, not only at neighbours.
                    kind: [SpanKind::Internal, SpanKind::Server, SpanKind::Client]
                        [usize::from(i % 3)],
                    start_ns: 1,
                    end_ns: 2,
                    attributes,
                    events: vec![],
                    links: vec![],
                    status: Status {
                        code: match i % 5 {
                            0 => StatusCode::Error,
                            1 | 3 => StatusCode::Ok,
                            _ => StatusCode::Unset,
                        },
                        message: String::new(),
                    },
                    resource: Arc::new(Resource {
                        service_name: "svc".to_owned(),
                        attributes: vec![],
                    }),
                    scope: Arc::default(),
                }
            })
            .collect();
        let got = tag_hashes(&BatchView::from_spans(&spans));
        let mut want: Vec<u64> = spans
            .iter()
            .flat_map(|s| &s.attributes)
            .map(|kv| tag_hash(&kv.key, &kv.value.to_search_string()))
            .chain(
                spans
                    .iter()
                    .filter_map(|s| s.kind.jaeger_name().map(|k| tag_hash("span.kind", k))),
            )
            .chain(spans.iter().flat_map(|s| match s.status.code {
                StatusCode::Error => vec![
                    tag_hash("error", "true"),
                    tag_hash("otel.status_code", "ERROR"),
                ],
                StatusCode::Ok => vec![tag_hash("otel.status_code", "OK")],
                StatusCode::Unset => vec![],
            }))
            .collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(got, want);
    }
}
