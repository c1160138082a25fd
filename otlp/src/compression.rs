//! Request body decompression, bounded so a small bomb cannot exhaust memory.

use std::io::Read;

use flate2::read::{MultiGzDecoder, ZlibDecoder};

use super::CodecError;

/// A `Content-Encoding` we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No compression.
    Identity,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// HTTP "deflate", i.e. zlib (RFC 1950).
    Deflate,
    /// Zstandard (RFC 8878).
    Zstd,
}

impl Encoding {
    /// Parses a `Content-Encoding` header value; `None` (no header) means identity.
    pub fn from_header(value: Option<&str>) -> Result<Encoding, CodecError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Encoding::Identity),
            Some("gzip") | Some("x-gzip") => Ok(Encoding::Gzip),
            Some("deflate") => Ok(Encoding::Deflate),
            Some("zstd") => Ok(Encoding::Zstd),
            Some(other) => Err(CodecError::UnsupportedEncoding(other.to_string())),
        }
    }
}

/// Decompresses `body`, failing with `TooLarge` as soon as the output passes `limit` bytes.
pub fn decompress(encoding: Encoding, body: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    match encoding {
        Encoding::Identity => {
            if body.len() > limit {
                return Err(CodecError::TooLarge { limit });
            }
            Ok(body.to_vec())
        }
        Encoding::Gzip => read_bounded(MultiGzDecoder::new(body), "gzip", limit),
        Encoding::Deflate => read_bounded(ZlibDecoder::new(body), "deflate", limit),
        Encoding::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(body).map_err(|e| CodecError::Decompress {
                    encoding: "zstd",
                    reason: e.to_string(),
                })?;
            read_bounded(decoder, "zstd", limit)
        }
    }
}

/// As [`decompress`], taking the body: one without compression is returned as it came, not
/// copied.
pub fn decompress_owned(
    encoding: Encoding,
    body: Vec<u8>,
    limit: usize,
) -> Result<Vec<u8>, CodecError> {
    match encoding {
        Encoding::Identity if body.len() <= limit => Ok(body),
        _ => decompress(encoding, &body, limit),
    }
}

fn read_bounded(
    reader: impl Read,
    name: &'static str,
    limit: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    // Read one byte past the limit to tell "exactly the limit" from "more".
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Decompress {
            encoding: name,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(CodecError::TooLarge { limit });
    }
    Ok(out)
}

/// gzip-compresses `data` (used for responses and by tests).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips() {
        let data = b"hello otlp".repeat(100);
        let out = decompress(Encoding::Gzip, &gzip(&data), 1 << 20).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn zstd_and_deflate_round_trip() {
        use std::io::Write;
        let data = b"otlp over slim ".repeat(500);
        let z = zstd::stream::encode_all(data.as_slice(), 3).unwrap();
        assert_eq!(decompress(Encoding::Zstd, &z, 1 << 20).unwrap(), data);
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&data).unwrap();
        assert_eq!(
            decompress(Encoding::Deflate, &enc.finish().unwrap(), 1 << 20).unwrap(),
            data
        );
    }

    #[test]
    fn zstd_bomb_stops_at_the_limit() {
        let bomb = zstd::stream::encode_all(vec![0u8; 20 << 20].as_slice(), 19).unwrap();
        assert_eq!(
            decompress(Encoding::Zstd, &bomb, 1 << 20),
            Err(CodecError::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 100 << 10);
        assert_eq!(
            decompress(Encoding::Gzip, &bomb, 1 << 20),
            Err(CodecError::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn output_of_exactly_the_limit_is_accepted() {
        let data = vec![7u8; 1000];
        assert_eq!(
            decompress(Encoding::Gzip, &gzip(&data), 1000)
                .unwrap()
                .len(),
            1000
        );
        assert_eq!(
            decompress(Encoding::Identity, &data, 1000).unwrap().len(),
            1000
        );
        assert!(decompress(Encoding::Identity, &data, 999).is_err());
    }

    #[test]
    fn an_uncompressed_body_taken_whole_is_not_copied() {
        let body = b"not compressed".to_vec();
        let at = body.as_ptr();
        let out = decompress_owned(Encoding::Identity, body, 64).unwrap();
        assert_eq!((out.as_ptr(), out.as_slice()), (at, &b"not compressed"[..]));
        assert!(matches!(
            decompress_owned(Encoding::Identity, vec![0; 65], 64),
            Err(CodecError::TooLarge { limit: 64 })
        ));
        let zipped = gzip(b"zipped");
        assert_eq!(
            decompress_owned(Encoding::Gzip, zipped, 64).unwrap(),
            b"zipped"
        );
    }

    #[test]
    fn truncated_gzip_is_a_decompress_error() {
        let z = gzip(&b"abc".repeat(1000));
        let err = decompress(Encoding::Gzip, &z[..z.len() / 2], 1 << 20).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::Decompress {
                    encoding: "gzip",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_encoding_names_what_is_supported() {
        let err = Encoding::from_header(Some("br")).unwrap_err();
        assert!(err.to_string().contains("gzip, deflate, zstd or identity"));
    }

    #[test]
    fn header_values_are_case_insensitive() {
        assert_eq!(Encoding::from_header(Some("GZIP")).unwrap(), Encoding::Gzip);
        assert_eq!(Encoding::from_header(None).unwrap(), Encoding::Identity);
    }
}
