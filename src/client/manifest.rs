//! Reading manifests: YAML or JSON, several documents per file, `List` objects
//! flattened, as kubectl reads them.

use serde_json::Value;

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
        let mut out = Vec::new();
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| ManifestError::Parse {
                source_name: source_name.into(),
                index: i + 1,
                reason: e.to_string(),
            })?;
            out.push(v);
        }
        out
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
    fn bad_yaml_names_the_document() {
        let err = parse("a: 1\n---\nb: [\n", "x.yaml").unwrap_err();
        assert!(err.to_string().starts_with("x.yaml: document 2"), "{err}");
    }
}
