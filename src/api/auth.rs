//! Who may call the API: a client certificate signed by the cluster CA (verified
//! in the TLS handshake), or the admin bearer token.

use sha2::{Digest, Sha256};
use tonic::{Request, Status};

use clusterd_raft::StoreReader;

use super::keys;

/// Refuse the call unless it carries a verified client certificate or the admin token.
pub fn authorize<T>(store: &StoreReader, req: &Request<T>) -> Result<(), Status> {
    if req.peer_certs().is_some_and(|c| !c.is_empty()) {
        return Ok(());
    }
    if let Some(h) = req.metadata().get("authorization") {
        let given = h.to_str().unwrap_or("").strip_prefix("Bearer ").unwrap_or("");
        if !given.is_empty() {
            if let Ok(Some(kv)) = store.get(keys::ADMIN_TOKEN) {
                let want = String::from_utf8_lossy(&kv.value).into_owned();
                if constant_time_eq(&hash_token(given), &want) {
                    return Ok(());
                }
            }
        }
        return Err(Status::unauthenticated("invalid bearer token"));
    }
    Err(Status::unauthenticated("a client certificate or bearer token is required"))
}

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compare without leaking where the strings differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
