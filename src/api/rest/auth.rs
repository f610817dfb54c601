//! Who is calling the REST API: the user and groups of a verified client
//! certificate (CN, O — checked against the cluster CA in the TLS handshake),
//! or of a bearer token (the admin token, a service account's token).
//! Nothing but what Kubernetes serves anonymously is served without one.

use axum::http::HeaderMap;
use rustls_pki_types::CertificateDer;

use crate::api::auth::{constant_time_eq, hash_token};
use crate::api::keys;
use crate::controllers::serviceaccount::{verify_token, SIGNING_KEY};
use crate::objects::conventions::token_secret_name;
use crate::objects::kinds;
use clusterd_raft::StoreReader;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// `admin`, `system:node:n1`, `system:serviceaccount:default:builder`.
    pub name: String,
    /// `system:masters`, …
    pub groups: Vec<String>,
}

/// Paths served to anyone (Kubernetes' anonymous defaults).
pub fn anonymous_path(path: &str) -> bool {
    matches!(path, "/version" | "/version/" | "/healthz" | "/readyz" | "/livez")
}

/// The user of a verified client certificate: CN is the name, each O a group.
pub fn from_certificate(cert: &CertificateDer<'_>) -> Option<User> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = x509.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Some(User { name, groups })
}

/// The user of a bearer token: the admin token, or a service account's token
/// still held by its Secret (a deleted or replaced Secret revokes it). `None`
/// when the token is no one's.
pub fn from_token(store: &StoreReader, token: &str) -> Option<User> {
    if let Ok(Some(kv)) = store.get(keys::ADMIN_TOKEN) {
        if constant_time_eq(&hash_token(token), &String::from_utf8_lossy(&kv.value)) {
            return Some(User { name: "admin".into(), groups: vec!["system:masters".into()] });
        }
    }
    let key = store.get(SIGNING_KEY).ok()??;
    let claims = verify_token(&key.value, token)?;
    let ns = claims.get("kubernetes.io/serviceaccount/namespace")?.as_str()?;
    let sa = claims.get("kubernetes.io/serviceaccount/service-account.name")?.as_str()?;
    let secret = store.get(&kinds::SECRET.key(ns, &token_secret_name(sa))).ok()??;
    let secret: serde_json::Value = serde_json::from_slice(&secret.value).ok()?;
    use base64::Engine;
    let held = base64::engine::general_purpose::STANDARD.decode(secret["data"]["token"].as_str()?).ok()?;
    if !constant_time_eq(&String::from_utf8_lossy(&held), token) {
        return None;
    }
    Some(User {
        name: format!("system:serviceaccount:{ns}:{sa}"),
        groups: vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")],
    })
}

/// The caller of a request: its certificate first, then its bearer token.
pub fn authenticate(
    store: &StoreReader,
    certs: Option<&[CertificateDer<'static>]>,
    headers: &HeaderMap,
) -> Option<User> {
    if let Some(user) = certs.and_then(|c| c.first()).and_then(from_certificate) {
        return Some(user);
    }
    let header = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = header.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty())?;
    from_token(store, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_name_the_user_and_groups() {
        let ca = clusterd_raft::pki::Ca::generate("test").unwrap();
        let id = ca.issue_client("jane", "developers", clusterd_raft::pki::CLIENT_VALIDITY).unwrap();
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(id.cert_pem.as_bytes()).unwrap();
        let user = from_certificate(&der).unwrap();
        assert_eq!(user, User { name: "jane".into(), groups: vec!["developers".into()] });
    }

    #[test]
    fn only_health_and_version_are_anonymous() {
        for (path, anon) in [("/version", true), ("/healthz", true), ("/api", false), ("/api/v1/pods", false)] {
            assert_eq!(anonymous_path(path), anon, "{path}");
        }
    }
}
