//! Service accounts and their tokens: every namespace gets a `default`
//! ServiceAccount; every ServiceAccount gets a token Secret
//! (`kubernetes.io/service-account-token`: `token`, `ca.crt`, `namespace`)
//! whose token is a JWT signed (HS256) with the cluster's signing key. The
//! kubelet mounts it into pods at the usual path.

use base64::Engine;
use serde_json::{json, Value};

use super::framework::{Action, Cache, Outcome, Reconciler};
use crate::objects::conventions::token_secret_name;
use crate::objects::kinds::{self, Kind};
use crate::objects::{key_of, meta_str};

/// Where the cluster's token signing key lives in the store.
pub const SIGNING_KEY: &str = "/clusterd/sa-signing-key";

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = if key.len() > 64 { Sha256::digest(key).to_vec() } else { key.to_vec() };
    k.resize(64, 0);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let ih = Sha256::new().chain_update(&inner).chain_update(msg).finalize();
    Sha256::new().chain_update(&outer).chain_update(ih).finalize().to_vec()
}

/// A signed service-account JWT (HS256).
pub fn sign_token(key: &[u8], claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let body = b64.encode(claims.to_string());
    let signing_input = format!("{head}.{body}");
    let sig = b64.encode(hmac_sha256(key, signing_input.as_bytes()));
    format!("{signing_input}.{sig}")
}

/// Check a token's signature and return its claims.
pub fn verify_token(key: &[u8], token: &str) -> Option<Value> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (input, sig) = token.rsplit_once('.')?;
    if b64.decode(sig).ok()? != hmac_sha256(key, input.as_bytes()) {
        return None;
    }
    serde_json::from_slice(&b64.decode(input.split_once('.')?.1).ok()?).ok()
}

/// The token Secret of a ServiceAccount.
pub fn token_secret(sa: &Value, key: &[u8], ca_pem: &str) -> Value {
    let (ns, name) = (meta_str(sa, "namespace"), meta_str(sa, "name"));
    let secret_name = token_secret_name(name);
    let claims = json!({
        "iss": "kubernetes/serviceaccount",
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/secret.name": secret_name,
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": meta_str(sa, "uid"),
    });
    let b64 = base64::engine::general_purpose::STANDARD;
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": secret_name,
            "namespace": ns,
            "annotations": {
                "kubernetes.io/service-account.name": name,
                "kubernetes.io/service-account.uid": meta_str(sa, "uid"),
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "ServiceAccount", "name": name, "uid": meta_str(sa, "uid")}],
        },
        "data": {
            "token": b64.encode(sign_token(key, &claims)),
            "ca.crt": b64.encode(ca_pem),
            "namespace": b64.encode(ns),
        },
    })
}

/// The ServiceAccount and token controller.
pub struct ServiceAccounts {
    /// Reads the signing key and CA from the local replica when first needed.
    pub reader: clusterd_raft::StoreReader,
}

impl ServiceAccounts {
    fn key_and_ca(&self) -> Option<(Vec<u8>, String)> {
        let key = self.reader.get(SIGNING_KEY).ok()??.value;
        let ca: clusterd_raft::pki::Ca =
            serde_json::from_slice(&self.reader.get(crate::objects::conventions::keys::CA).ok()??.value).ok()?;
        Some((key, ca.cert_pem().to_string()))
    }
}

impl Reconciler for ServiceAccounts {
    const NAME: &'static str = "serviceaccount";
    const PRIMARY: &'static Kind = &kinds::NAMESPACE;

    fn watches(&self) -> Vec<&'static Kind> {
        vec![&kinds::NAMESPACE, &kinds::SERVICE_ACCOUNT, &kinds::SECRET]
    }

    fn affected(&self, obj: &Value, _cache: &Cache) -> Vec<String> {
        let ns = match obj["kind"].as_str() {
            Some("Namespace") => meta_str(obj, "name"),
            Some("ServiceAccount" | "Secret") => meta_str(obj, "namespace"),
            _ => return vec![],
        };
        vec![crate::objects::kinds::NAMESPACE.key("", ns)]
    }

    fn reconcile(&self, key: &str, cache: &Cache, _now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(ns) = cache.get(&kinds::NAMESPACE, key) else { return Outcome::default() };
        if crate::objects::being_deleted(ns) {
            return Outcome::default();
        }
        let name = meta_str(ns, "name");
        let mut out = Outcome::default();
        let sa_kind = &crate::objects::kinds::SERVICE_ACCOUNT;
        if cache.get(&kinds::SERVICE_ACCOUNT, &sa_kind.key(name, "default")).is_none() {
            out.actions.push(Action::Create(json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": name},
            })));
        }
        let secret_kind = &crate::objects::kinds::SECRET;
        let Some((key, ca)) = self.key_and_ca() else {
            out.requeue_after = Some(std::time::Duration::from_secs(1));
            return out;
        };
        for sa in cache.in_namespace(&kinds::SERVICE_ACCOUNT, name) {
            let secret_key = secret_kind.key(name, &token_secret_name(meta_str(sa, "name")));
            let current = cache.get(&kinds::SECRET, &secret_key);
            let uid_ok = current.is_some_and(|s| {
                s.pointer("/metadata/annotations/kubernetes.io~1service-account.uid").and_then(Value::as_str)
                    == Some(meta_str(sa, "uid"))
            });
            if !uid_ok {
                if let Some(old) = current {
                    out.actions.push(Action::Delete {
                        key: key_of(old).unwrap_or_default(),
                        rv: crate::objects::resource_version(old),
                    });
                }
                out.actions.push(Action::Create(token_secret(sa, &key, &ca)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_with_the_key_and_not_without() {
        let sa = json!({"metadata": {"name": "default", "namespace": "team", "uid": "u1"}});
        let s = token_secret(&sa, b"k3y", "CA");
        let token = String::from_utf8(
            base64::engine::general_purpose::STANDARD.decode(s["data"]["token"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        let claims = verify_token(b"k3y", &token).unwrap();
        assert_eq!(claims["sub"], "system:serviceaccount:team:default");
        assert!(verify_token(b"other", &token).is_none());
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
