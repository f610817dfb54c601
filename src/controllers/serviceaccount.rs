//! Service accounts and their tokens: every namespace gets a `default`
//! ServiceAccount; every ServiceAccount gets a token Secret
//! (`kubernetes.io/service-account-token`: `token`, `ca.crt`, `namespace`)
//! whose token is a JWT signed (HS256) with the cluster's signing key. The
//! kubelet mounts it into pods at the usual path.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use serde_json::{json, Value};

use super::framework::{Action, Cache, Outcome, Reconciler};
use crate::objects::conventions::token_secret_name;
use crate::objects::kinds::{self, Kind};
use crate::objects::typed::Object;
use crate::objects::{key_of, meta_str, resource_version};

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
pub fn token_secret(sa: &ServiceAccount, key: &[u8], ca_pem: &str) -> Secret {
    let meta = &sa.metadata;
    let (ns, name, uid) = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
        meta.uid.clone().unwrap_or_default(),
    );
    let secret_name = token_secret_name(&name);
    let claims = json!({
        "iss": "kubernetes/serviceaccount",
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/secret.name": secret_name,
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
    });
    let data = [
        ("token", sign_token(key, &claims).into_bytes()),
        ("ca.crt", ca_pem.as_bytes().to_vec()),
        ("namespace", ns.as_bytes().to_vec()),
    ];
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name),
            namespace: Some(ns.clone()),
            annotations: Some(BTreeMap::from([(SA_NAME.to_string(), name.clone()), (SA_UID.to_string(), uid.clone())])),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "ServiceAccount".into(),
                name,
                uid,
                ..Default::default()
            }]),
            ..Default::default()
        },
        type_: Some("kubernetes.io/service-account-token".into()),
        data: Some(data.into_iter().map(|(k, v)| (k.to_string(), ByteString(v))).collect()),
        ..Default::default()
    }
}

/// The annotation that names a token Secret's ServiceAccount.
const SA_NAME: &str = "kubernetes.io/service-account.name";
/// The annotation with the uid of a token Secret's ServiceAccount (a Secret
/// of an earlier ServiceAccount of the same name is replaced).
const SA_UID: &str = "kubernetes.io/service-account.uid";

fn to_json<T: serde::Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).expect("typed objects serialize")
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
        let ns = match Kind::of(obj) {
            Some(k) if *k == kinds::NAMESPACE => meta_str(obj, "name"),
            Some(k) if *k == kinds::SERVICE_ACCOUNT || *k == kinds::SECRET => meta_str(obj, "namespace"),
            _ => return vec![],
        };
        vec![kinds::NAMESPACE.key("", ns)]
    }

    fn reconcile(&self, key: &str, cache: &Cache, _now: chrono::DateTime<chrono::Utc>) -> Outcome {
        let Some(ns) = cache.object(&kinds::NAMESPACE, key).and_then(Object::namespace) else {
            return Outcome::default();
        };
        if ns.metadata.deletion_timestamp.is_some() {
            return Outcome::default();
        }
        let name = ns.metadata.name.as_deref().unwrap_or("");
        let mut out = Outcome::default();
        if cache.object(&kinds::SERVICE_ACCOUNT, &kinds::SERVICE_ACCOUNT.key(name, "default")).is_none() {
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("default".into()),
                    namespace: Some(name.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            out.actions.push(Action::Create(to_json(&sa)));
        }
        let Some((key, ca)) = self.key_and_ca() else {
            out.requeue_after = Some(std::time::Duration::from_secs(1));
            return out;
        };
        for sa in cache.objects_in(&kinds::SERVICE_ACCOUNT, name).filter_map(Object::service_account) {
            let sa_name = sa.metadata.name.as_deref().unwrap_or("");
            let secret_key = kinds::SECRET.key(name, &token_secret_name(sa_name));
            let current = cache.object(&kinds::SECRET, &secret_key);
            let sa_uid = sa.metadata.uid.as_deref().unwrap_or("");
            let uid_ok = current.and_then(Object::secret).is_some_and(|s| {
                s.metadata.annotations.as_ref().and_then(|a| a.get(SA_UID)).map(String::as_str) == Some(sa_uid)
            });
            if !uid_ok {
                if let Some(old) = current {
                    out.actions
                        .push(Action::Delete { key: key_of(old).unwrap_or_default(), rv: resource_version(old) });
                }
                out.actions.push(Action::Create(to_json(&token_secret(sa, &key, &ca))));
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
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": "default", "namespace": "team", "uid": "u1"}})).unwrap();
        let s = to_json(&token_secret(&sa, b"k3y", "CA"));
        assert_eq!(
            (&s["metadata"]["name"], &s["type"], &s["metadata"]["annotations"][SA_UID]),
            (&json!(token_secret_name("default")), &json!("kubernetes.io/service-account-token"), &json!("u1"))
        );
        assert_eq!(s["data"]["namespace"], json!(base64::engine::general_purpose::STANDARD.encode("team")));
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
