//! The Confluent wire format: `0x00`, the writer schema id as 4 big-endian bytes, then the
//! Avro binary body.

/// The magic byte that opens every framed record.
pub const MAGIC: u8 = 0;
/// Length of the frame header (magic byte + schema id).
pub const HEADER_LEN: usize = 5;

/// Why bytes are not a framed record. Always permanent: the same bytes never decode later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the 5-byte header.
    #[error("record of {0} bytes is shorter than the 5-byte wire-format header")]
    TooShort(usize),
    /// The first byte is not `0x00`.
    #[error("record starts with byte {0:#04x}, not the wire-format magic byte 0x00")]
    BadMagic(u8),
}

/// Splits a framed record into its schema id and Avro body.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if bytes.len() < HEADER_LEN {
        return Err(WireError::TooShort(bytes.len()));
    }
    if bytes[0] != MAGIC {
        return Err(WireError::BadMagic(bytes[0]));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

/// Writes the header for `schema_id` into `out`; the caller appends the Avro body.
pub fn write_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_schema_id() {
        let mut framed = Vec::new();
        write_header(0x0102_0304, &mut framed);
        framed.extend_from_slice(b"avro");
        assert_eq!(framed[..5], [0, 1, 2, 3, 4]);
        assert_eq!(split(&framed), Ok((0x0102_0304, &b"avro"[..])));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert_eq!(split(b"{}"), Err(WireError::TooShort(2)));
        assert_eq!(split(b"{\"a\":1}"), Err(WireError::BadMagic(b'{')));
        assert_eq!(
            split(b"\x7fabcdef").unwrap_err().to_string(),
            "record starts with byte 0x7f, not the wire-format magic byte 0x00"
        );
    }
}
