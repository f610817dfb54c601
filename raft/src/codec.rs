//! Binary encoding of everything the store persists or sends: bincode 2 over serde.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid encoding of the expected type.
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

/// Encode a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(value, bincode::config::standard())?)
}

/// Decode a value.
///
/// Bytes come from peers (frames) as well as from the local store. A string or
/// byte buffer is allocated at the length its prefix claims before its bytes
/// are read, so without a limit a forged prefix of ten bytes asked for
/// exabytes: a capacity-overflow panic, or an allocation failure that aborts
/// the process. No valid encoding claims more bytes than it holds, so every
/// input is decoded under the smallest limit (of a few steps, the limit is a
/// type parameter) at or above its own length: a forged length is an error
/// before anything is allocated for it, and what a decode claims stays within
/// 64 KiB or 16 times its input.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    const KIB_64: usize = 1 << 16;
    const MIB: usize = 1 << 20;
    const MIB_16: usize = 1 << 24;
    const MIB_256: usize = 1 << 28;
    const GIB_4: usize = 1 << 32;
    // What a decode claims is counted at the decoded values' sizes in memory:
    // a list of many small items claims more than its encoding holds (1,000
    // puts of 1 KiB in one transaction were refused at a limit just above
    // their encoded length), so the limit is 16 times the input's length.
    match bytes.len().saturating_mul(16) {
        n if n <= KIB_64 => decode_within::<T, KIB_64>(bytes),
        n if n <= MIB => decode_within::<T, MIB>(bytes),
        n if n <= MIB_16 => decode_within::<T, MIB_16>(bytes),
        n if n <= MIB_256 => decode_within::<T, MIB_256>(bytes),
        n if n <= GIB_4 => decode_within::<T, GIB_4>(bytes),
        _ => decode_within::<T, { usize::MAX }>(bytes),
    }
}

fn decode_within<T: DeserializeOwned, const LIMIT: usize>(bytes: &[u8]) -> Result<T, CodecError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (v, _) = bincode::serde::decode_from_slice(bytes, config)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{KeyValue, Op};

    /// The layout values had before they were marked as byte strings: a
    /// sequence of `u8`s. Both encode to the same bytes, so stores and peers of
    /// either kind read each other.
    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct OldKeyValue {
        key: String,
        value: Vec<u8>,
        create_revision: u64,
        mod_revision: u64,
    }

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    enum OldOp {
        Put { key: String, value: Vec<u8> },
        Delete { key: String },
    }

    /// A length prefix (bincode's varint: 253, then a u64) claiming 2^62 bytes.
    const HUGE_LENGTH: [u8; 9] = [253, 0, 0, 0, 0, 0, 0, 0, 0x40];

    #[test]
    fn a_forged_string_length_is_an_error_not_a_panic() {
        // It panicked with "capacity overflow" (and a claim of a terabyte aborted the process).
        assert!(matches!(decode::<String>(&HUGE_LENGTH), Err(CodecError::Decode(_))));
        let tib = [253, 0, 0, 0, 0, 0, 1, 0, 0];
        assert!(matches!(decode::<String>(&tib), Err(CodecError::Decode(_))));
    }

    #[test]
    fn a_forged_byte_buffer_length_in_a_peer_request_is_an_error() {
        // Request::App(bytes): variant 9, then the buffer's length.
        let mut frame = vec![9];
        frame.extend_from_slice(&HUGE_LENGTH);
        assert!(decode::<crate::rpc::Request>(&frame).is_err());
        // A key of a forwarded write (Request::Write(Command::Txn ..)) likewise.
        let txn = crate::command::Command::Txn(crate::command::Txn::ops(vec![Op::Delete { key: "k".into() }]));
        let mut write = encode(&crate::rpc::Request::Write(txn)).unwrap();
        let at = write.iter().position(|&b| b == b'k').unwrap() - 1;
        write.truncate(at);
        write.extend_from_slice(&HUGE_LENGTH);
        assert!(decode::<crate::rpc::Request>(&write).is_err());
    }

    #[test]
    fn values_at_every_size_step_decode() {
        for len in [0, 1 << 16, (1 << 16) + 1, 1 << 20, (1 << 20) + 1, 3 << 20] {
            let v = vec![7u8; len];
            let bytes = encode(&serde_bytes::ByteBuf::from(v.clone())).unwrap();
            assert_eq!(decode::<serde_bytes::ByteBuf>(&bytes).unwrap().into_vec(), v, "{len}");
        }
    }

    #[test]
    fn a_transaction_of_many_puts_near_a_size_step_decodes() {
        use crate::command::{Command, Txn};
        for (puts, size) in [(1000, 1024), (1000, 1000), (60, 1000), (16_000, 1000)] {
            let ops = (0..puts).map(|i| Op::Put { key: format!("/k/{i}"), value: vec![1u8; size] }).collect();
            let cmd = Command::Txn(Txn::ops(ops));
            let bytes = encode(&cmd).unwrap();
            let back: Command = decode(&bytes).unwrap_or_else(|e| panic!("{puts} puts of {size} B: {e}"));
            assert_eq!(encode(&back).unwrap(), bytes);
        }
    }

    #[test]
    fn byte_strings_encode_as_the_sequences_they_replaced() {
        let value: Vec<u8> = (0..=255u8).chain(b"{\"kind\":\"ConfigMap\"}".iter().copied()).collect();
        let kv = KeyValue { key: "/registry/x".into(), value: value.clone(), create_revision: 3, mod_revision: 300 };
        let old = OldKeyValue { key: kv.key.clone(), value: value.clone(), create_revision: 3, mod_revision: 300 };
        assert_eq!(encode(&kv).unwrap(), encode(&old).unwrap());
        assert_eq!(decode::<KeyValue>(&encode(&old).unwrap()).unwrap(), kv);
        let op = Op::Put { key: "/k".into(), value: value.clone() };
        let old_op = OldOp::Put { key: "/k".into(), value };
        assert_eq!(encode(&op).unwrap(), encode(&old_op).unwrap());
        assert_eq!(decode::<Op>(&encode(&old_op).unwrap()).unwrap(), op);
    }
}
