//! Request bodies for an upstream, built once per request on a blocking thread: the queued
//! payloads read back (concatenated), gzip-compressed at [`GZIP_LEVEL`] when the upstream
//! asks for gzip, and for gRPC framed as one length-prefixed message.
//!
//! The gRPC body is framed here rather than by tonic's codec because tonic compresses at a
//! fixed level 6; level 1 of the zlib-rs backend (`flate2`'s `zlib-rs` feature, set in the
//! workspace) costs several times less CPU per span for a slightly larger body (see
//! `benches/forward_gzip.rs` and `docs/forwarding.md`). The queue read writes after
//! [`BodyFormat::prefix`] bytes of room, so neither the plain nor the framed body copies the
//! payload again.

use std::io::{self, Write as _};

use bytes::Bytes;

/// The gzip level of forwarded bodies (1: fastest; see the module docs).
pub const GZIP_LEVEL: u32 = 1;
/// Bytes of a gRPC message prefix: compressed flag, big-endian u32 length.
pub const GRPC_PREFIX: usize = 5;

/// How an upstream's request bodies are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyFormat {
    /// gzip-compressed.
    pub gzip: bool,
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
        let mut body = if self.gzip {
            gzip(payload, prefix)?
        } else {
            raw
        };
        if self.grpc {
            frame_grpc(&mut body, self.gzip)?;
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
        for gzip in [false, true] {
            for grpc in [false, true] {
                let format = BodyFormat { gzip, grpc };
                let body = format.finish(with_room(format, &payload)).unwrap();
                let message = if grpc {
                    assert_eq!(body[0], u8::from(gzip), "{format:?}");
                    let len = u32::from_be_bytes(body[1..5].try_into().unwrap());
                    assert_eq!(len as usize, body.len() - GRPC_PREFIX, "{format:?}");
                    &body[GRPC_PREFIX..]
                } else {
                    &body[..]
                };
                let decoded = if gzip {
                    gunzip(message)
                } else {
                    message.to_vec()
                };
                assert_eq!(decoded, payload, "{format:?}");
            }
        }
    }

    #[test]
    fn a_body_without_its_prefix_is_refused() {
        let format = BodyFormat {
            gzip: false,
            grpc: true,
        };
        assert!(format.finish(vec![0; 3]).is_err());
    }
}
