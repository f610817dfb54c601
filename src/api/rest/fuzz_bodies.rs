//! Fuzzing request bodies as the REST door takes them: JSON, YAML and
//! Kubernetes' protobuf envelope, as a whole manifest's text or as arbitrary
//! and damaged bytes, decoded and then admitted as a create. Decoding never
//! panics and answers 400, 413 or 415 when it refuses; a decoded manifest of a
//! kind the API serves goes through admission with the same checks as the
//! objects' fuzz tests. `PROPTEST_CASES` scales the runs.

use proptest::prelude::*;

use super::body::decode;
use crate::objects::fuzz_config::config;
use crate::objects::fuzz_manifests::{admit_checked, manifest};

const CONTENT_TYPES: [&str; 6] = [
    "application/json",
    "application/yaml",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "application/cbor",
    "",
];

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(n: u64, b: &[u8], out: &mut Vec<u8>) {
    varint(n << 3 | 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// A ConfigMap in the `k8s\0` envelope, as kubectl's typed client sends one.
fn protobuf_config_map(name: &str, data: &[(String, String)]) -> Vec<u8> {
    let mut meta = Vec::new();
    field(1, name.as_bytes(), &mut meta);
    let mut cm = Vec::new();
    field(1, &meta, &mut cm);
    for (k, v) in data {
        let mut entry = Vec::new();
        field(1, k.as_bytes(), &mut entry);
        field(2, v.as_bytes(), &mut entry);
        field(2, &entry, &mut cm);
    }
    let mut type_meta = Vec::new();
    field(1, b"v1", &mut type_meta);
    field(2, b"ConfigMap", &mut type_meta);
    let mut unknown = b"k8s\0".to_vec();
    field(1, &type_meta, &mut unknown);
    field(2, &cm, &mut unknown);
    unknown
}

/// Bytes changed here and there.
fn damaged(bytes: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6).prop_map(move |edits| {
        let mut b = bytes.clone();
        for (at, byte, how) in edits {
            let i = if b.is_empty() { 0 } else { at % b.len() };
            match how {
                0 if !b.is_empty() => b[i] = byte,
                1 => b.insert(i.min(b.len()), byte),
                _ => b.truncate(i),
            }
        }
        b
    })
}

fn decoded_checked(content_type: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    match decode(content_type, bytes) {
        Ok(v) => {
            if v.is_object() {
                admit_checked(v)?;
            }
        }
        Err(f) => prop_assert!(matches!(f.code, 400 | 413 | 415), "{content_type}: {} {}", f.code, f.message),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn fuzz_arbitrary_bodies_decode_or_are_refused(
        ct in 0..CONTENT_TYPES.len(),
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| [b"k8s\0".as_slice(), &b].concat()),
        ],
    ) {
        decoded_checked(CONTENT_TYPES[ct], &bytes)?;
    }

    #[test]
    fn fuzz_manifests_as_json_and_yaml_text(obj in manifest(), yaml in any::<bool>()) {
        let (ct, text) = if yaml {
            ("application/yaml", serde_yaml_ng::to_string(&obj).unwrap())
        } else {
            ("application/json", obj.to_string())
        };
        decoded_checked(ct, text.as_bytes())?;
    }

    #[test]
    fn fuzz_damaged_manifest_text(
        damaged in manifest().prop_flat_map(|obj| {
            let json = obj.to_string().into_bytes();
            let yaml = serde_yaml_ng::to_string(&obj).unwrap().into_bytes();
            (damaged(json), damaged(yaml))
        }),
    ) {
        decoded_checked("application/json", &damaged.0)?;
        decoded_checked("application/yaml", &damaged.1)?;
    }

    #[test]
    fn fuzz_damaged_protobuf_envelopes(
        body in ("[a-z0-9.-]{0,70}", prop::collection::vec(("[a-zA-Z0-9._-]{0,20}", ".{0,20}"), 0..4))
            .prop_flat_map(|(name, data)| damaged(protobuf_config_map(&name, &data))),
    ) {
        decoded_checked("application/vnd.kubernetes.protobuf", &body)?;
    }
}

#[test]
fn a_valid_protobuf_config_map_decodes() {
    let body = protobuf_config_map("conf", &[("k".into(), "v".into())]);
    let v = decode("application/vnd.kubernetes.protobuf", &body).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["metadata"]["name"].as_str(), v["data"]["k"].as_str()),
        (Some("ConfigMap"), Some("conf"), Some("v"))
    );
}
