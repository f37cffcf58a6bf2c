//! Request size limits, capped decompression and the decode budget.
//!
//! The limit applies to the body as received **and** after decompression; decoders read at
//! most `limit + 1` bytes, so a compression bomb costs at most `limit` bytes of memory.
//!
//! The [`DecodeBudget`] bounds the bytes of all requests in flight together: a request holds a
//! [`DecodePermit`] from the moment its length is known (a gRPC message's prefix, an HTTP
//! `Content-Length`, or each chunk of a body without one) until it is answered, and the permit
//! grows with the decompressed output before that output is allocated. So many concurrent
//! large (or highly compressed) requests are refused with a retry delay instead of being
//! buffered first.

use std::io::Read;
use std::pin::Pin;

use bytes::{Buf as _, Bytes};
use http_body_util::BodyExt as _;

/// Default maximum request size (before and after decompression): 64 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// A `Content-Encoding` the HTTP receiver can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No encoding.
    Identity,
    /// `gzip`.
    Gzip,
    /// `deflate` (zlib format, as HTTP defines it).
    Deflate,
    /// `zstd`.
    Zstd,
}

/// Why a body could not be turned into bytes to decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// Bigger than the limit, before or after decompression.
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A `Content-Encoding` other than identity, gzip, deflate or zstd.
    #[error("unsupported content encoding {0:?}; supported: gzip, deflate, zstd, identity")]
    UnsupportedEncoding(String),
    /// The compressed stream is corrupt.
    #[error("cannot decompress {encoding} body: {source}")]
    Corrupt {
        /// The encoding name.
        encoding: &'static str,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// The body could not be read from the connection.
    #[error("cannot read request body: {0}")]
    Read(String),
    /// The requests in flight already hold the decode budget; retry later.
    #[error("too many large requests in flight, retry later")]
    OverBudget,
}

impl ContentEncoding {
    /// Parses a `Content-Encoding` header value (absent = identity).
    pub fn from_header(value: Option<&str>) -> Result<Self, BodyError> {
        let Some(value) = value else {
            return Ok(Self::Identity);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Self::Identity),
            "gzip" | "x-gzip" => Ok(Self::Gzip),
            "deflate" => Ok(Self::Deflate),
            "zstd" => Ok(Self::Zstd),
            _ => Err(BodyError::UnsupportedEncoding(value.to_owned())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Zstd => "zstd",
        }
    }
}

/// The smallest step by which a decompression's output buffer (and its permit) grows.
const DECOMPRESS_STEP: usize = 64 << 10;

/// Decompresses `body`, failing with [`BodyError::TooLarge`] past `limit` bytes of output.
///
/// `permit` covers `body` on entry. It grows with the output's buffer before each step of the
/// buffer is allocated ([`BodyError::OverBudget`] when the budget has no room for it): first
/// four times the body, then doubling. On return it covers the output's length alone (the
/// buffer's capacity is at most twice that).
pub fn decompress(
    encoding: ContentEncoding,
    body: Bytes,
    limit: usize,
    permit: &mut DecodePermit,
) -> Result<Bytes, BodyError> {
    let corrupt = |source| BodyError::Corrupt {
        encoding: encoding.name(),
        source,
    };
    let reader: Box<dyn Read + '_> = match encoding {
        ContentEncoding::Identity => {
            return if body.len() > limit {
                Err(BodyError::TooLarge { limit })
            } else {
                Ok(body)
            };
        }
        ContentEncoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        ContentEncoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        ContentEncoding::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(&body[..]).map_err(corrupt)?)
        }
    };
    // At most `limit + 1` bytes are read: one more than the limit tells that it is exceeded.
    let mut reader = reader.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1));
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.len() == out.capacity() {
            // Doubling, and never past what the limit could still need.
            let room = out
                .capacity()
                .max(body.len().saturating_mul(4))
                .max(DECOMPRESS_STEP)
                .min(limit.saturating_add(1).saturating_sub(out.len()));
            if !permit.try_resize(body.len().saturating_add(out.len() + room)) {
                return Err(BodyError::OverBudget);
            }
            out.reserve_exact(room);
        }
        let at = out.len();
        let room = out.capacity() - at;
        // Reads into the reserved room only (`read_to_end` would grow the buffer itself).
        let read = (&mut reader)
            .take(u64::try_from(room).unwrap_or(u64::MAX))
            .read_to_end(&mut out)
            .map_err(corrupt)?;
        if read == 0 {
            break;
        }
    }
    if out.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    // The compressed body is dropped with this call.
    permit.try_resize(out.len());
    Ok(Bytes::from(out))
}

/// Default of `receiver.max_in_flight_bytes`: request bytes that may be read, decompressed,
/// decoded and ingested at once, across connections and protocols. Decoded objects take
/// several times their encoding, so this bounds the receivers' memory under many concurrent
/// large requests; past it, requests get 503 / `UNAVAILABLE` with a retry delay. A request
/// larger than the whole budget is admitted when nothing else is in flight, so it is never
/// refused forever.
pub const DECODE_BUDGET_BYTES: usize = 32 << 20;

/// Bodies at least this large are read (and encoded for the store) on a blocking thread, not
/// on the async runtime.
pub const BLOCKING_DECODE_BYTES: usize = 1 << 20;

/// The in-flight byte budget of decodes (see [`DECODE_BUDGET_BYTES`]).
#[derive(Debug)]
pub struct DecodeBudget {
    in_flight: std::sync::atomic::AtomicUsize,
    max: usize,
}

/// Bytes admitted by [`DecodeBudget::try_acquire`]; returned on drop.
#[derive(Debug)]
pub struct DecodePermit {
    budget: std::sync::Arc<DecodeBudget>,
    bytes: usize,
}

impl DecodeBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            max,
        })
    }

    /// Admits `bytes`, or `None` when that would exceed the budget.
    pub fn try_acquire(self: &std::sync::Arc<Self>, bytes: usize) -> Option<DecodePermit> {
        use std::sync::atomic::Ordering;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n == 0 || n.saturating_add(bytes) <= self.max).then_some(n + bytes)
            })
            .ok()
            .map(|_| DecodePermit {
                budget: std::sync::Arc::clone(self),
                bytes,
            })
    }

    /// Bytes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl DecodePermit {
    /// Makes this permit cover `bytes` instead: a permit shrinks at once; it grows when the
    /// budget has room for the difference, or when it is the only permit with bytes in flight
    /// (as [`DecodeBudget::try_acquire`] admits a request larger than the whole budget when
    /// nothing else is in flight). Returns whether the permit now covers `bytes`.
    pub fn try_resize(&mut self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering;
        let (held, max) = (self.bytes, self.budget.max);
        let resized = self
            .budget
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                let others = n - held;
                let total = others.saturating_add(bytes);
                (bytes <= held || others == 0 || total <= max).then_some(total)
            })
            .is_ok();
        if resized {
            self.bytes = bytes;
        }
        resized
    }

    /// The bytes this permit covers.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for DecodePermit {
    fn drop(&mut self) {
        self.budget
            .in_flight
            .fetch_sub(self.bytes, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Reads the rest of the body until its end (trailers included), giving up on a body error or
/// after `max` more bytes (a client streaming data after its one message, or an upload refused
/// for want of budget), so that the answer is not an early one; nothing of it is kept.
pub(crate) async fn drain<B>(mut body: Pin<&mut B>, max: usize)
where
    B: hyper::body::Body,
{
    let mut left = max;
    while !body.is_end_stream() {
        match body.as_mut().frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    match left.checked_sub(data.remaining()) {
                        Some(l) => left = l,
                        None => return,
                    }
                }
            }
            None | Some(Err(_)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        Bytes::from(enc.finish().unwrap())
    }

    /// Decompresses with a permit of an ample budget of its own.
    fn decompress(
        encoding: ContentEncoding,
        body: Bytes,
        limit: usize,
    ) -> Result<Bytes, BodyError> {
        let mut permit = DecodeBudget::new(usize::MAX / 2)
            .try_acquire(body.len())
            .unwrap();
        super::decompress(encoding, body, limit, &mut permit)
    }

    #[test]
    fn parses_encodings() {
        assert_eq!(
            ContentEncoding::from_header(None).unwrap(),
            ContentEncoding::Identity
        );
        assert_eq!(
            ContentEncoding::from_header(Some("GZIP")).unwrap(),
            ContentEncoding::Gzip
        );
        assert!(matches!(
            ContentEncoding::from_header(Some("br")),
            Err(BodyError::UnsupportedEncoding(_))
        ));
    }

    #[test]
    fn gzip_round_trip_within_limit() {
        let out = decompress(ContentEncoding::Gzip, gzip(b"hello"), 5).unwrap();
        assert_eq!(&out[..], b"hello");
    }

    #[test]
    fn gzip_bomb_is_capped() {
        let body = gzip(&vec![0u8; 1_000_000]);
        assert!(body.len() < 10_000);
        assert!(matches!(
            decompress(ContentEncoding::Gzip, body, 1000),
            Err(BodyError::TooLarge { limit: 1000 })
        ));
    }

    #[test]
    fn identity_over_limit_and_corrupt_gzip() {
        assert!(matches!(
            decompress(ContentEncoding::Identity, Bytes::from_static(b"123456"), 5),
            Err(BodyError::TooLarge { .. })
        ));
        assert!(matches!(
            decompress(ContentEncoding::Gzip, Bytes::from_static(b"not gzip"), 100),
            Err(BodyError::Corrupt { .. })
        ));
        assert!(matches!(
            decompress(ContentEncoding::Zstd, Bytes::from_static(b"not zstd"), 100),
            Err(BodyError::Corrupt { .. })
        ));
    }

    #[test]
    fn zstd_frame_decodes() {
        // `printf hello | zstd -c` (reference CLI).
        let frame: &[u8] = &[
            0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x29, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o',
            0xa3, 0x6d, 0x9f, 0x88,
        ];
        let out = decompress(ContentEncoding::Zstd, Bytes::from_static(frame), 100);
        assert_eq!(&out.unwrap()[..], b"hello");
    }

    #[test]
    fn decode_budget_admits_up_to_its_size_and_one_oversized_request_alone() {
        let budget = DecodeBudget::new(100);
        let a = budget.try_acquire(60).unwrap();
        assert!(budget.try_acquire(50).is_none());
        let b = budget.try_acquire(40).unwrap();
        assert_eq!(budget.in_flight(), 100);
        drop((a, b));
        assert_eq!(budget.in_flight(), 0);
        let big = budget.try_acquire(1000).unwrap();
        assert!(budget.try_acquire(1).is_none());
        drop(big);
        assert!(budget.try_acquire(1).is_some());
    }

    #[test]
    fn a_permit_shrinks_at_once_and_grows_within_the_budget_or_alone() {
        let budget = DecodeBudget::new(100);
        let mut a = budget.try_acquire(30).unwrap();
        let b = budget.try_acquire(50).unwrap();
        assert!(a.try_resize(50), "30 + 20 more fits");
        assert_eq!((a.bytes(), budget.in_flight()), (50, 100));
        assert!(!a.try_resize(51), "no room left");
        assert_eq!((a.bytes(), budget.in_flight()), (50, 100));
        assert!(a.try_resize(10), "shrinking always works");
        assert_eq!(budget.in_flight(), 60);
        drop(b);
        assert!(a.try_resize(1000), "alone, a permit may outgrow the budget");
        assert_eq!(budget.in_flight(), 1000);
        assert!(budget.try_acquire(1).is_none());
        drop(a);
        assert_eq!(budget.in_flight(), 0);
    }

    #[test]
    fn decompression_grows_its_permit_before_its_output_and_stops_at_the_budget() {
        let plain = vec![7u8; 3 << 20];
        let body = gzip(&plain);
        let budget = DecodeBudget::new(2 << 20);
        // Alone, the request may decompress past the budget; its permit then covers the output.
        let mut alone = budget.try_acquire(body.len()).unwrap();
        let out = super::decompress(ContentEncoding::Gzip, body.clone(), 8 << 20, &mut alone);
        assert_eq!(out.unwrap().len(), plain.len());
        assert_eq!(
            (alone.bytes(), budget.in_flight()),
            (plain.len(), plain.len())
        );
        drop(alone);
        // With another request holding half the budget, the output cannot grow past the rest.
        let other = budget.try_acquire(1 << 20).unwrap();
        let mut permit = budget.try_acquire(body.len()).unwrap();
        assert!(matches!(
            super::decompress(ContentEncoding::Gzip, body, 8 << 20, &mut permit),
            Err(BodyError::OverBudget)
        ));
        assert!(
            budget.in_flight() <= 2 << 20,
            "never granted past the budget"
        );
        drop((other, permit));
        assert_eq!(budget.in_flight(), 0);
    }
}
