//! Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl's
//! typed-client generators send that way (`kubectl create namespace`,
//! `create configmap`, `create secret`): the `k8s\0` envelope
//! (`runtime.Unknown`: type meta and the raw message), decoded by a small
//! table of each message's field numbers into the JSON the rest of the door
//! takes. Other kinds are 415, naming what to use instead.

use base64::Engine;
use serde_json::{json, Map, Value};

/// The magic bytes before a protobuf-encoded Kubernetes object.
const MAGIC: &[u8] = b"k8s\0";

/// How one field is encoded.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    /// Bytes, as JSON base64.
    Bytes,
    Int,
    Bool,
    /// `meta.v1.Time`: seconds and nanos, as RFC 3339.
    Time,
    Msg(&'static [Field]),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>`, values as base64.
    MapBytes,
}

/// One field of a message: its number, JSON name, type, and whether it repeats.
type Field = (u64, &'static str, Ty, bool);

const OBJECT_META: &[Field] = &[
    (1, "name", Ty::Str, false),
    (2, "generateName", Ty::Str, false),
    (3, "namespace", Ty::Str, false),
    (5, "uid", Ty::Str, false),
    (6, "resourceVersion", Ty::Str, false),
    (7, "generation", Ty::Int, false),
    (8, "creationTimestamp", Ty::Time, false),
    (11, "labels", Ty::MapStr, false),
    (12, "annotations", Ty::MapStr, false),
    (14, "finalizers", Ty::Str, true),
];
const NAMESPACE_SPEC: &[Field] = &[(1, "finalizers", Ty::Str, true)];
const NAMESPACE: &[Field] =
    &[(1, "metadata", Ty::Msg(OBJECT_META), false), (2, "spec", Ty::Msg(NAMESPACE_SPEC), false)];
const CONFIG_MAP: &[Field] = &[
    (1, "metadata", Ty::Msg(OBJECT_META), false),
    (2, "data", Ty::MapStr, false),
    (3, "binaryData", Ty::MapBytes, false),
    (4, "immutable", Ty::Bool, false),
];
const SECRET: &[Field] = &[
    (1, "metadata", Ty::Msg(OBJECT_META), false),
    (2, "data", Ty::MapBytes, false),
    (3, "type", Ty::Str, false),
    (4, "stringData", Ty::MapStr, false),
    (5, "immutable", Ty::Bool, false),
];
const TYPE_META: &[Field] = &[(1, "apiVersion", Ty::Str, false), (2, "kind", Ty::Str, false)];
const UNKNOWN: &[Field] = &[(1, "typeMeta", Ty::Msg(TYPE_META), false), (2, "raw", Ty::Bytes, false)];

/// Why a protobuf body was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtobufError {
    /// Not a Kubernetes protobuf object, or cut short.
    #[error("the protobuf body is malformed: {0}")]
    Malformed(&'static str),
    /// A kind this door does not decode from protobuf.
    #[error("{0} is not accepted as protobuf here: send application/json (kubectl create -f, apply)")]
    Unsupported(String),
}

/// Decode a protobuf-encoded object into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::Malformed("no k8s envelope"))?;
    let unknown = message(rest, UNKNOWN)?;
    let api_version = unknown["typeMeta"]["apiVersion"].as_str().unwrap_or("").to_string();
    let kind = unknown["typeMeta"]["kind"].as_str().unwrap_or("").to_string();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(unknown["raw"].as_str().unwrap_or(""))
        .map_err(|_| ProtobufError::Malformed("raw"))?;
    let fields = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        _ => return Err(ProtobufError::Unsupported(format!("{api_version}, Kind={kind}"))),
    };
    let mut obj = message(&raw, fields)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

fn varint(buf: &mut &[u8]) -> Result<u64, ProtobufError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or(ProtobufError::Malformed("truncated varint"))?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ProtobufError::Malformed("varint too long"))
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], ProtobufError> {
    if buf.len() < n {
        return Err(ProtobufError::Malformed("truncated field"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// One field's raw value: a varint, or length-delimited bytes.
enum Raw<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn next_field<'a>(buf: &mut &'a [u8]) -> Result<(u64, Raw<'a>), ProtobufError> {
    let key = varint(buf)?;
    let raw = match key & 7 {
        0 => Raw::Varint(varint(buf)?),
        2 => {
            let n = varint(buf)? as usize;
            Raw::Bytes(take(buf, n)?)
        }
        1 => Raw::Bytes(take(buf, 8)?),
        5 => Raw::Bytes(take(buf, 4)?),
        _ => return Err(ProtobufError::Malformed("unsupported wire type")),
    };
    Ok((key >> 3, raw))
}

fn string(b: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtobufError::Malformed("invalid UTF-8"))
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ProtobufError> {
    let mut buf = b;
    let (mut k, mut v) = (String::new(), json!(""));
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            (1, Raw::Bytes(b)) => k = string(b)?,
            (2, Raw::Bytes(b)) if bytes_value => v = json!(base64::engine::general_purpose::STANDARD.encode(b)),
            (2, Raw::Bytes(b)) => v = json!(string(b)?),
            _ => return Err(ProtobufError::Malformed("map entry")),
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Result<Value, ProtobufError> {
    let mut buf = b;
    let mut secs = 0i64;
    while !buf.is_empty() {
        if let (1, Raw::Varint(v)) = next_field(&mut buf)? {
            secs = v as i64;
        }
    }
    let t = chrono::DateTime::from_timestamp(secs, 0).ok_or(ProtobufError::Malformed("time"))?;
    Ok(json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

fn value(ty: Ty, raw: Raw<'_>) -> Result<Value, ProtobufError> {
    Ok(match (ty, raw) {
        (Ty::Str, Raw::Bytes(b)) => json!(string(b)?),
        (Ty::Bytes, Raw::Bytes(b)) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        (Ty::Int, Raw::Varint(v)) => json!(v as i64),
        (Ty::Bool, Raw::Varint(v)) => json!(v != 0),
        (Ty::Time, Raw::Bytes(b)) => time(b)?,
        (Ty::Msg(fields), Raw::Bytes(b)) => message(b, fields)?,
        _ => return Err(ProtobufError::Malformed("a field of an unexpected wire type")),
    })
}

/// Decode a message by its field table; fields not in the table are skipped.
fn message(b: &[u8], fields: &[Field]) -> Result<Value, ProtobufError> {
    let mut out = Map::new();
    let mut buf = b;
    while !buf.is_empty() {
        let (number, raw) = next_field(&mut buf)?;
        let Some(&(_, name, ty, repeated)) = fields.iter().find(|f| f.0 == number) else { continue };
        match (ty, raw) {
            (Ty::MapStr | Ty::MapBytes, Raw::Bytes(b)) => {
                let (k, v) = map_entry(b, matches!(ty, Ty::MapBytes))?;
                out.entry(name).or_insert_with(|| json!({}))[&k] = v;
            }
            (_, raw) if repeated => {
                let v = value(ty, raw)?;
                if let Some(list) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    list.push(v);
                }
            }
            (_, raw) => {
                out.insert(name.to_string(), value(ty, raw)?);
            }
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64, wire: u64, out: &mut Vec<u8>) {
        put_varint((n << 3) | wire, out);
    }

    fn put_varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes(n: u64, b: &[u8], out: &mut Vec<u8>) {
        key(n, 2, out);
        put_varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        bytes(1, k.as_bytes(), &mut e);
        bytes(2, v, &mut e);
        e
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        bytes(1, api_version.as_bytes(), &mut tm);
        bytes(2, kind.as_bytes(), &mut tm);
        let mut u = Vec::new();
        bytes(1, &tm, &mut u);
        bytes(2, raw, &mut u);
        [MAGIC, &u].concat()
    }

    #[test]
    fn configmaps_secrets_and_namespaces_decode_to_their_json() {
        let mut meta = Vec::new();
        bytes(1, b"web", &mut meta);
        bytes(3, b"default", &mut meta);
        bytes(11, &entry("app", b"web"), &mut meta);
        let mut cm = Vec::new();
        bytes(1, &meta, &mut cm);
        bytes(2, &entry("a", b"1"), &mut cm);
        bytes(2, &entry("b", b"2"), &mut cm);
        key(4, 0, &mut cm);
        put_varint(1, &mut cm);
        let got = decode(&envelope("v1", "ConfigMap", &cm)).unwrap();
        assert_eq!(
            got,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                   "data": {"a": "1", "b": "2"}, "immutable": true})
        );
        let mut secret = Vec::new();
        bytes(1, &meta, &mut secret);
        bytes(2, &entry("pw", b"\x00hi"), &mut secret);
        bytes(3, b"Opaque", &mut secret);
        let got = decode(&envelope("v1", "Secret", &secret)).unwrap();
        assert_eq!(got["data"]["pw"], "AGhp");
        assert_eq!(got["type"], "Opaque");
        let mut ns_meta = Vec::new();
        bytes(1, b"team-a", &mut ns_meta);
        let mut ns = Vec::new();
        bytes(1, &ns_meta, &mut ns);
        assert_eq!(
            decode(&envelope("v1", "Namespace", &ns)).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        );
    }

    #[test]
    fn other_kinds_and_broken_bodies_are_refused() {
        assert!(matches!(decode(&envelope("apps/v1", "Deployment", b"")), Err(ProtobufError::Unsupported(_))));
        assert_eq!(decode(b"{}"), Err(ProtobufError::Malformed("no k8s envelope")));
        let mut cut = envelope("v1", "ConfigMap", &[]);
        cut.extend_from_slice(&[0x12, 0x05, b'a']);
        assert!(matches!(decode(&cut), Err(ProtobufError::Malformed(_))));
    }
}
