//! Join tokens: `K10<ca-sha256>::<id>.<secret>`. The fingerprint lets the joiner
//! verify the server; the id and secret are checked against a bootstrap-token
//! Secret in `kube-system`, as kubeadm does, with its expiration.

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};

/// A parsed join token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the cluster CA certificate (hex).
    pub ca_fingerprint: String,
    /// The public id (6 characters).
    pub id: String,
    /// The secret (16 characters).
    pub secret: String,
}

/// The token is not of the expected shape.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed join token: expected K10<ca-sha256>::<id>.<secret>")]
pub struct MalformedToken;

/// The time-to-live asked for is past the last time a Secret can hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a token's time to live of {0} seconds ends after the year 9999")]
pub struct TtlTooLong(pub u64);

/// When a token made at `now` with time to live `ttl` expires, RFC 3339. A
/// ttl is the caller's number (`CreateTokenRequest.ttl_seconds`): adding one
/// past chrono's range panicked the handler.
pub fn expiration(now: chrono::DateTime<chrono::Utc>, ttl: std::time::Duration) -> Result<String, TtlTooLong> {
    let last = k8s_openapi::jiff::Timestamp::MAX.as_second();
    chrono::TimeDelta::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .filter(|t| t.timestamp() <= last)
        .map(crate::util::rfc3339)
        .ok_or(TtlTooLong(ttl.as_secs()))
}

fn random_string(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

impl JoinToken {
    /// A new random token for the CA with this fingerprint.
    pub fn generate(ca_fingerprint: &str) -> Self {
        JoinToken { ca_fingerprint: ca_fingerprint.to_string(), id: random_string(6), secret: random_string(16) }
    }

    /// Parse the text form.
    pub fn parse(s: &str) -> Result<Self, MalformedToken> {
        let rest = s.trim().strip_prefix("K10").ok_or(MalformedToken)?;
        let (fp, cred) = rest.split_once("::").ok_or(MalformedToken)?;
        let (id, secret) = cred.split_once('.').ok_or(MalformedToken)?;
        let hex_ok = fp.len() == 64 && fp.chars().all(|c| c.is_ascii_hexdigit());
        if !hex_ok || id.len() != 6 || secret.len() != 16 {
            return Err(MalformedToken);
        }
        Ok(JoinToken { ca_fingerprint: fp.to_lowercase(), id: id.into(), secret: secret.into() })
    }

    /// The Secret that records this token, expiring at `expiration` (RFC 3339).
    pub fn secret_object(&self, expiration: &str) -> Value {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("bootstrap-token-{}", self.id), "namespace": "kube-system"},
            "type": "bootstrap.kubernetes.io/token",
            "data": {
                "token-id": b64(&self.id),
                "token-secret": b64(&self.secret),
                "expiration": b64(expiration),
                "usage-bootstrap-authentication": b64("true"),
            }
        })
    }

    /// The name of the Secret holding this token.
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }

    /// Check the token against its stored Secret at time `now` (RFC 3339).
    pub fn check(&self, secret: &Secret, now: &str) -> Result<(), &'static str> {
        let field = |k: &str| {
            let value = secret.data.as_ref().and_then(|d| d.get(k));
            value.map(|b| String::from_utf8_lossy(&b.0).into_owned()).unwrap_or_default()
        };
        if !super::auth::constant_time_eq(&field("token-secret"), &self.secret) {
            return Err("invalid join token");
        }
        let exp = field("expiration");
        if !exp.is_empty() && exp.as_str() <= now {
            return Err("the join token has expired");
        }
        Ok(())
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "K10{}::{}.{}", self.ca_fingerprint, self.id, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: `ttl_seconds` of 10^13 (or any past the year
    /// 262143) panicked in `CreateToken` ("DateTime + TimeDelta overflowed").
    #[test]
    fn a_token_ttl_past_the_year_9999_is_refused() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        let secs = std::time::Duration::from_secs;
        assert_eq!(expiration(now, secs(3600)).as_deref(), Ok("2026-01-01T01:00:00Z"));
        for ttl in [10u64.pow(13), u64::MAX, 300_000_000_000] {
            assert_eq!(expiration(now, secs(ttl)), Err(TtlTooLong(ttl)));
        }
    }

    #[test]
    fn round_trip_and_check() {
        let t = JoinToken::generate(&"a".repeat(64));
        let parsed = JoinToken::parse(&t.to_string()).unwrap();
        assert_eq!(parsed, t);
        let secret: Secret = serde_json::from_value(t.secret_object("2030-01-01T00:00:00Z")).unwrap();
        assert!(t.check(&secret, "2026-01-01T00:00:00Z").is_ok());
        assert_eq!(t.check(&secret, "2031-01-01T00:00:00Z"), Err("the join token has expired"));
        let mut forged = t.clone();
        forged.secret = "x".repeat(16);
        assert_eq!(forged.check(&secret, "2026-01-01T00:00:00Z"), Err("invalid join token"));
        assert!(JoinToken::parse("K10abc::x.y").is_err());
    }
}
