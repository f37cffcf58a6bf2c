//! Request size limits and capped decompression.
//!
//! The limit applies to the body as received **and** after decompression; decoders read at
//! most `limit + 1` bytes, so a compression bomb costs at most `limit` bytes of memory.

use std::io::Read;

use bytes::Bytes;

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

/// Decompresses `body`, failing with [`BodyError::TooLarge`] past `limit` bytes of output.
pub fn decompress(
    encoding: ContentEncoding,
    body: Bytes,
    limit: usize,
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
        ContentEncoding::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(&body[..])
                .map_err(|e| corrupt(std::io::Error::other(e.to_string())))?,
        ),
    };
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    reader.take(cap).read_to_end(&mut out).map_err(corrupt)?;
    if out.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
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
}
