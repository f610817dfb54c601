//! Reading manifests: YAML (read as kubectl reads it, see [`super::yaml`]) or
//! JSON, several documents per file, `List` objects flattened; and the kind
//! of each object, refused by name when the server has no such kind.

use serde_json::Value;

use super::yaml;
use crate::objects::{meta_str, Kind};

/// A manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A document did not parse.
    #[error("{source_name}: document {index}: {reason}")]
    Parse {
        /// The file or `-`.
        source_name: String,
        /// The document's position, from 1.
        index: usize,
        /// Why.
        reason: String,
    },
    /// An object names no kind.
    #[error("unable to decode \"{source_name}\": Object 'Kind' is missing in '{object}'")]
    MissingKind {
        /// The file or `-`.
        source_name: String,
        /// The object, as JSON.
        object: String,
    },
    /// An object's kind is not one the server serves.
    #[error(
        "resource mapping not found for name: \"{name}\" namespace: \"{namespace}\" from \"{source_name}\": \
         no matches for kind \"{kind}\" in version \"{version}\"\nensure CRDs are installed first"
    )]
    NoMatch {
        /// The object's name.
        name: String,
        /// The object's namespace, as the manifest gives it.
        namespace: String,
        /// The file or `-`.
        source_name: String,
        /// The kind.
        kind: String,
        /// The apiVersion.
        version: String,
    },
}

/// The kind of a manifest's object, or kubectl's refusal naming the kind
/// and version the server does not have.
pub fn kind_of(obj: &Value, source_name: &str) -> Result<&'static Kind, ManifestError> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(ManifestError::MissingKind { source_name: source_name.into(), object: obj.to_string() });
    }
    Kind::of(obj).ok_or_else(|| ManifestError::NoMatch {
        name: meta_str(obj, "name").into(),
        namespace: meta_str(obj, "namespace").into(),
        source_name: source_name.into(),
        kind: kind.into(),
        version: obj.get("apiVersion").and_then(Value::as_str).unwrap_or("").into(),
    })
}

/// Print a per-object manifest error as kubectl does (the other objects go on).
pub fn report(e: &ManifestError) {
    eprintln!("error: {e}");
}

/// Parse every document of a manifest text.
pub fn parse(text: &str, source_name: &str) -> Result<Vec<Value>, ManifestError> {
    let trimmed = text.trim_start();
    let docs: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        stream
            .enumerate()
            .map(|(i, d)| {
                d.map_err(|e| ManifestError::Parse {
                    source_name: source_name.into(),
                    index: i + 1,
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?
    } else {
        yaml::documents(text).map_err(|(index, e)| ManifestError::Parse {
            source_name: source_name.into(),
            index,
            reason: e.to_string(),
        })?
    };
    let mut objects = Vec::new();
    for d in docs {
        match d {
            Value::Null => {}
            Value::Array(items) => objects.extend(items),
            obj if obj.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"))
                && obj.get("items").is_some() =>
            {
                objects.extend(obj["items"].as_array().cloned().unwrap_or_default())
            }
            obj => objects.push(obj),
        }
    }
    Ok(objects)
}

/// Read a manifest file, or standard input for `-`.
pub fn read(path: &str) -> Result<Vec<Value>, ManifestError> {
    let text = if path == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|source| ManifestError::Io { path: "-".into(), source })?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|source| ManifestError::Io { path: path.into(), source })?
    };
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n";
        let docs = parse(text, "f.yaml").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["metadata"]["name"], "b");
    }

    #[test]
    fn json_and_lists() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[{"kind":"ConfigMap"},{"kind":"Secret"}]}"#;
        assert_eq!(parse(text, "f.json").unwrap().len(), 2);
    }

    #[test]
    fn secret_and_configmap_volumes_take_octal_modes() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: busybox\n  volumes:\n  - name: s\n    secret:\n      secretName: s\n      defaultMode: 0755\n  - name: c\n    configMap:\n      name: c\n      defaultMode: 0644\n      items:\n      - key: k\n        path: k\n        mode: 0400\n";
        let docs = parse(text, "pod.yaml").unwrap();
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(docs[0].clone()).unwrap();
        let volumes = pod.spec.unwrap().volumes.unwrap();
        assert_eq!(volumes[0].secret.as_ref().unwrap().default_mode, Some(493));
        let cm = volumes[1].config_map.as_ref().unwrap();
        assert_eq!(cm.default_mode, Some(0o644));
        assert_eq!(cm.items.as_ref().unwrap()[0].mode, Some(0o400));
    }

    #[test]
    fn unknown_kinds_are_named() {
        let docs = parse("apiVersion: v1\nkind: Frobnicator\nmetadata:\n  name: x\n", "f.yaml").unwrap();
        assert_eq!(
            kind_of(&docs[0], "f.yaml").unwrap_err().to_string(),
            "resource mapping not found for name: \"x\" namespace: \"\" from \"f.yaml\": no matches for kind \"Frobnicator\" in version \"v1\"\nensure CRDs are installed first"
        );
        let wrong_version = serde_json::json!({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "team"}});
        let err = kind_of(&wrong_version, "-").unwrap_err().to_string();
        assert!(
            err.contains("namespace: \"team\" from \"-\": no matches for kind \"Deployment\" in version \"v1\""),
            "{err}"
        );
        let nameless = serde_json::json!({"apiVersion": "v1", "metadata": {"name": "d"}});
        assert!(kind_of(&nameless, "f.yaml").unwrap_err().to_string().contains("Object 'Kind' is missing"));
        assert_eq!(
            kind_of(&serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment"}), "f").unwrap().kind,
            "Deployment"
        );
    }

    #[test]
    fn bad_yaml_names_the_document() {
        let err = parse("a: 1\n---\nb: [\n", "x.yaml").unwrap_err();
        assert!(err.to_string().starts_with("x.yaml: document 2"), "{err}");
    }
}
