//! Request bodies for an upstream, built once per request on a blocking thread: the queued
//! payloads read back (concatenated), compressed as the upstream is configured (gzip at
//! [`GZIP_LEVEL`], zstd at [`ZSTD_LEVEL`]), and for gRPC framed as one length-prefixed
//! message.
//!
//! The gRPC body is framed here rather than by tonic's codec because tonic compresses at a
//! fixed level 6; level 1 of the zlib-rs backend (`flate2`'s `zlib-rs` feature, set in the
//! workspace) costs several times less CPU per span for a slightly larger body (see
//! `benches/forward_gzip.rs` and `docs/forwarding.md`). The queue read writes after
//! [`BodyFormat::prefix`] bytes of room, so neither the plain nor the framed body copies the
//! payload again. zstd reuses one compression context per thread (a context is ~1 MiB to set
//! up).

use std::cell::RefCell;
use std::io::{self, Write as _};

use bytes::Bytes;

use super::config::Compression;

/// The gzip level of forwarded bodies (1: fastest; see the module docs).
pub const GZIP_LEVEL: u32 = 1;
/// The zstd level of forwarded bodies: a "fast" (negative) level. On the load generator's
/// spans it compresses as much as gzip level 1 for about half the CPU (`benches/forward_gzip.rs`).
pub const ZSTD_LEVEL: i32 = -4;
/// Bytes of a gRPC message prefix: compressed flag, big-endian u32 length.
pub const GRPC_PREFIX: usize = 5;

/// How an upstream's request bodies are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyFormat {
    /// The compression of the body.
    pub compression: Compression,
    /// Framed as one gRPC message (`flag | len | message`).
    pub grpc: bool,
}

impl BodyFormat {
    /// Bytes of room to leave before the payload.
    pub fn prefix(self) -> usize {
        if self.grpc { GRPC_PREFIX } else { 0 }
    }

    /// Finishes a body from `raw`: [`prefix`](Self::prefix) bytes of room (any content), then
    /// the encoded `ExportTraceServiceRequest`.
    pub fn finish(self, raw: Vec<u8>) -> io::Result<Bytes> {
        let prefix = self.prefix();
        let payload = raw.get(prefix..).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "body shorter than its prefix")
        })?;
        let mut body = match self.compression {
            Compression::Gzip => gzip(payload, prefix)?,
            Compression::Zstd => zstd(payload, prefix)?,
            Compression::None => raw,
        };
        if self.grpc {
            frame_grpc(&mut body, self.compression != Compression::None)?;
        }
        Ok(Bytes::from(body))
    }
}

/// gzip-compresses `data` at [`GZIP_LEVEL`] into a new buffer that starts with `room` zero
/// bytes.
pub fn gzip(data: &[u8], room: usize) -> io::Result<Vec<u8>> {
    // Level 1 typically shrinks OTLP spans 4–6×; a smaller first guess would regrow.
    let mut out = Vec::with_capacity(room + data.len() / 3 + 64);
    out.resize(room, 0);
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
    encoder.write_all(data)?;
    encoder.finish()
}

/// zstd-compresses `data` at [`ZSTD_LEVEL`] into a new buffer that starts with `room` zero
/// bytes.
pub fn zstd(data: &[u8], room: usize) -> io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    }
    let mut out = vec![0; room + zstd::zstd_safe::compress_bound(data.len())];
    let written = CONTEXT.with_borrow_mut(|context| {
        let compressor = match context {
            Some(c) => c,
            None => context.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        compressor.compress_to_buffer(data, &mut out[room..])
    })?;
    out.truncate(room + written);
    Ok(out)
}

/// Writes the gRPC message prefix over the first [`GRPC_PREFIX`] bytes of `body`.
fn frame_grpc(body: &mut [u8], compressed: bool) -> io::Result<()> {
    let len = body
        .len()
        .checked_sub(GRPC_PREFIX)
        .and_then(|l| u32::try_from(l).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "gRPC message too large"))?;
    body[0] = u8::from(compressed);
    body[1..GRPC_PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

    use std::io::Read as _;

    use super::*;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn with_room(format: BodyFormat, payload: &[u8]) -> Vec<u8> {
        let mut raw = vec![0xAA; format.prefix()];
        raw.extend_from_slice(payload);
        raw
    }

    #[test]
    fn every_format_round_trips() {
        let payload: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            for grpc in [false, true] {
                let format = BodyFormat { compression, grpc };
                let body = format.finish(with_room(format, &payload)).unwrap();
                let compressed = compression != Compression::None;
                if compressed {
                    assert!(body.len() < payload.len() / 2, "{format:?}: {}", body.len());
                }
                let message = if grpc {
                    assert_eq!(body[0], u8::from(compressed), "{format:?}");
                    let len = u32::from_be_bytes(body[1..5].try_into().unwrap());
                    assert_eq!(len as usize, body.len() - GRPC_PREFIX, "{format:?}");
                    &body[GRPC_PREFIX..]
                } else {
                    &body[..]
                };
                let decoded = match compression {
                    Compression::Gzip => gunzip(message),
                    Compression::Zstd => zstd::decode_all(message).unwrap(),
                    Compression::None => message.to_vec(),
                };
                assert_eq!(decoded, payload, "{format:?}");
            }
        }
    }

    #[test]
    fn a_body_without_its_prefix_is_refused() {
        let format = BodyFormat {
            compression: Compression::None,
            grpc: true,
        };
        assert!(format.finish(vec![0; 3]).is_err());
    }
}
