//! How long a node's own certificate is valid and when it is renewed: the
//! node's `--cert-validity` and `--cert-renew-before`, kept in its
//! `node.json`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use clusterd_raft::pki;

use super::ClusterError;
use crate::util::duration;

/// Renew a node certificate when less than this is left (as kubeadm advises).
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long the certificates a node obtains are valid, and how long before
/// their expiry it renews them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertPolicy {
    /// Validity of a new certificate, seconds.
    pub validity_seconds: u64,
    /// Renew when less than this many seconds are left.
    pub renew_before_seconds: u64,
}

impl Default for CertPolicy {
    fn default() -> Self {
        CertPolicy::new(pki::NODE_VALIDITY, DEFAULT_RENEW_BEFORE)
    }
}

impl CertPolicy {
    /// The policy of `--cert-validity` and `--cert-renew-before`.
    pub fn new(validity: Duration, renew_before: Duration) -> Self {
        CertPolicy { validity_seconds: validity.as_secs(), renew_before_seconds: renew_before.as_secs() }
    }

    /// Validity of a new certificate.
    pub fn validity(&self) -> Duration {
        Duration::from_secs(self.validity_seconds)
    }

    /// How long before expiry a certificate is renewed.
    pub fn renew_before(&self) -> Duration {
        Duration::from_secs(self.renew_before_seconds)
    }

    /// Refuse a policy under which a certificate would be renewed as soon as
    /// it is issued (or never be valid), naming the flags.
    pub fn check(&self) -> Result<(), ClusterError> {
        if self.validity_seconds == 0 {
            return Err(ClusterError::Config("--cert-validity must be longer than 0s".into()));
        }
        if self.renew_before_seconds >= self.validity_seconds {
            return Err(ClusterError::Config(format!(
                "--cert-renew-before ({}) must be shorter than --cert-validity ({}): a new certificate would be \
                 renewed at once",
                duration::format(self.renew_before()),
                duration::format(self.validity())
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_that_renews_at_once_is_refused_naming_its_flags() {
        let s = Duration::from_secs;
        let cases = [
            (s(20), s(14), None),
            (pki::NODE_VALIDITY, DEFAULT_RENEW_BEFORE, None),
            (s(0), s(0), Some("--cert-validity must be longer than 0s")),
            (s(20), s(20), Some("--cert-renew-before (20s) must be shorter than --cert-validity (20s)")),
            (s(20), DEFAULT_RENEW_BEFORE, Some("--cert-renew-before (30d) must be shorter than --cert-validity (20s)")),
        ];
        for (validity, before, want) in cases {
            let got = CertPolicy::new(validity, before).check().err().map(|e| e.to_string());
            match (got, want) {
                (None, None) => {}
                (Some(got), Some(want)) => assert!(got.starts_with(want), "{got}"),
                (got, want) => panic!("{validity:?}/{before:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
