//! Trace and span identifiers.

use std::fmt;

/// Why an identifier could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The byte slice has the wrong length.
    #[error("expected {expected} bytes, got {actual}")]
    Length {
        /// Required length in bytes.
        expected: usize,
        /// Length received.
        actual: usize,
    },
    /// Every byte is zero, which OTLP defines as invalid.
    #[error("identifier is all zeroes")]
    Zero,
    /// The text is not hexadecimal of an acceptable length.
    #[error("invalid hex identifier {0:?}")]
    Hex(String),
}

/// A 16-byte W3C trace id; never all zeroes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

/// An 8-byte span id; never all zeroes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

macro_rules! impl_id {
    ($ty:ident, $len:literal) => {
        impl $ty {
            /// Builds an id from raw bytes, rejecting a wrong length or all zeroes.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
                let arr: [u8; $len] = bytes.try_into().map_err(|_| IdError::Length {
                    expected: $len,
                    actual: bytes.len(),
                })?;
                Self::from_bytes(arr)
            }

            /// Builds an id from an array, rejecting all zeroes.
            pub fn from_bytes(bytes: [u8; $len]) -> Result<Self, IdError> {
                if bytes.iter().all(|b| *b == 0) {
                    Err(IdError::Zero)
                } else {
                    Ok(Self(bytes))
                }
            }

            /// Parses hex text (case-insensitive). Shorter input is left-padded with zeroes,
            /// as Jaeger does for 64-bit trace ids.
            pub fn from_hex(text: &str) -> Result<Self, IdError> {
                let bad = || IdError::Hex(text.to_owned());
                if text.is_empty() || text.len() > $len * 2 || !text.is_ascii() {
                    return Err(bad());
                }
                let mut padded = [b'0'; $len * 2];
                padded[$len * 2 - text.len()..].copy_from_slice(text.as_bytes());
                let mut out = [0u8; $len];
                for (i, pair) in padded.chunks_exact(2).enumerate() {
                    let hi = hex_value(pair[0]).ok_or_else(bad)?;
                    let lo = hex_value(pair[1]).ok_or_else(bad)?;
                    out[i] = (hi << 4) | lo;
                }
                Self::from_bytes(out)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex, full width.
            pub fn to_hex(&self) -> String {
                let mut s = String::with_capacity($len * 2);
                for b in self.0 {
                    s.push(HEX[usize::from(b >> 4)] as char);
                    s.push(HEX[usize::from(b & 0x0f)] as char);
                }
                s
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.to_hex())
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

impl_id!(TraceId, 16);
impl_id!(SpanId, 8);

impl TraceId {
    /// Smallest key value, for index range bounds only (not a valid id).
    pub(crate) const MIN: Self = Self([0; 16]);
    /// Largest key value, for index range bounds only.
    pub(crate) const MAX: Self = Self([0xff; 16]);

    /// Hex as Jaeger v1 prints it: 16 characters when the high 64 bits are zero.
    pub fn to_jaeger_hex(&self) -> String {
        let full = self.to_hex();
        if self.0[..8].iter().all(|b| *b == 0) {
            full[16..].to_owned()
        } else {
            full
        }
    }
}

impl SpanId {
    /// Smallest key value, for index range bounds only (not a valid id).
    pub(crate) const MIN: Self = Self([0; 8]);
    /// Largest key value, for index range bounds only.
    pub(crate) const MAX: Self = Self([0xff; 8]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_case() {
        let id = TraceId::from_hex("83A9EFD15C1C98A977E0711CC93EE28B").unwrap();
        assert_eq!(id.to_hex(), "83a9efd15c1c98a977e0711cc93ee28b");
        assert_eq!(id.to_jaeger_hex(), "83a9efd15c1c98a977e0711cc93ee28b");
    }

    #[test]
    fn short_trace_id_is_padded_and_printed_short() {
        let id = TraceId::from_hex("1f").unwrap();
        assert_eq!(id.to_hex(), "0000000000000000000000000000001f");
        assert_eq!(id.to_jaeger_hex(), "000000000000001f");
    }

    #[test]
    fn rejects_zero_bad_length_and_garbage() {
        assert_eq!(TraceId::from_slice(&[0; 16]), Err(IdError::Zero));
        assert!(matches!(
            SpanId::from_slice(&[1; 7]),
            Err(IdError::Length {
                expected: 8,
                actual: 7
            })
        ));
        assert!(TraceId::from_hex("xyz").is_err());
        assert!(TraceId::from_hex("").is_err());
        assert!(SpanId::from_hex("00000000000000001").is_err());
        assert!(SpanId::from_hex("é").is_err());
    }
}
