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
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (v, _) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
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
