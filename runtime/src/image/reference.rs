//! Image references: `[registry/]repository[:tag][@digest]`, normalized as
//! Kubernetes and Docker do (`busybox` → `docker.io/library/busybox:latest`).

use crate::error::RuntimeError;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `clusterd.local`.
    pub registry: String,
    /// `library/busybox`.
    pub repository: String,
    /// `latest` when neither tag nor digest is given.
    pub tag: Option<String>,
    /// `sha256:...`.
    pub digest: Option<String>,
}

fn valid_component(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
}

impl Reference {
    /// Parse and normalize.
    pub fn parse(s: &str) -> Result<Reference, RuntimeError> {
        let bad = || RuntimeError::InvalidImageName(s.to_string());
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(bad());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(bad)?;
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(bad());
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            let ok =
                !t.is_empty() && t.len() <= 128 && t.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                return Err(bad());
            }
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        let registry =
            if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
                parts.remove(0).to_string()
            } else {
                "docker.io".to_string()
            };
        if parts.iter().any(|p| !valid_component(p)) {
            return Err(bad());
        }
        let mut repository = parts.join("/");
        if registry == "docker.io" && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// The canonical text: `registry/repository:tag[@digest]`.
    pub fn canonical(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(Reference::parse("busybox").unwrap().canonical(), "docker.io/library/busybox:latest");
        assert_eq!(Reference::parse("clusterd.local/busybox:v1").unwrap().canonical(), "clusterd.local/busybox:v1");
        assert_eq!(Reference::parse("localhost:5000/a/b:1.0").unwrap().registry, "localhost:5000");
        assert!(Reference::parse("UPPER/case").is_err());
        assert!(Reference::parse("a b").is_err());
        assert!(Reference::parse("busybox@sha256:xyz").is_err());
        assert!(Reference::parse("busybox:").is_err());
    }
}
