//! A node's certificate that can be replaced while the node serves.
//!
//! Certificates expire, and a node renews its own before they do. The TLS
//! servers (the API, the transport) and the transport's client keep running
//! across a renewal: their configurations ask this holder for the certificate
//! at each handshake, so new connections present the renewed one and open
//! connections carry on.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use crate::pki::{certs, key, not_after, provider, Identity, PkiError};

/// A node identity (certificate and key) shared by the TLS configurations
/// that present it; [`LiveIdentity::replace`] swaps it for new handshakes.
pub struct LiveIdentity {
    ca_pem: String,
    current: RwLock<Current>,
}

struct Current {
    identity: Identity,
    certified: Arc<CertifiedKey>,
    not_after: SystemTime,
}

impl Current {
    /// Parse `id` into what handshakes present: its certificate with the CA
    /// appended (joiners pin the CA from the chain), and its key, which must
    /// match the certificate.
    fn new(ca_pem: &str, id: &Identity) -> Result<Current, PkiError> {
        let mut chain = certs(&id.cert_pem)?;
        if chain.is_empty() {
            return Err(PkiError::Pem("no certificate in PEM".into()));
        }
        chain.extend(certs(ca_pem)?);
        let certified = CertifiedKey::from_der(chain, key(&id.key_pem)?, &provider())?;
        Ok(Current { identity: id.clone(), certified: Arc::new(certified), not_after: not_after(&id.cert_pem)? })
    }
}

impl LiveIdentity {
    /// Hold `id`, a certificate signed by the CA `ca_pem`.
    pub fn new(ca_pem: &str, id: &Identity) -> Result<Arc<LiveIdentity>, PkiError> {
        let current = Current::new(ca_pem, id)?;
        Ok(Arc::new(LiveIdentity { ca_pem: ca_pem.to_string(), current: RwLock::new(current) }))
    }

    /// Present `id` from the next handshake on. A certificate that does not
    /// parse or does not go with its key is refused and the old one kept.
    pub fn replace(&self, id: &Identity) -> Result<(), PkiError> {
        let next = Current::new(&self.ca_pem, id)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    /// The certificate and key presented now.
    pub fn identity(&self) -> Identity {
        self.read(|c| c.identity.clone())
    }

    /// When the certificate presented now expires.
    pub fn not_after(&self) -> SystemTime {
        self.read(|c| c.not_after)
    }

    /// The CA certificate (PEM) the identity is signed by.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn certified(&self) -> Arc<CertifiedKey> {
        self.read(|c| c.certified.clone())
    }

    fn read<T>(&self, f: impl FnOnce(&Current) -> T) -> T {
        f(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }
}

impl std::fmt::Debug for LiveIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveIdentity").field("not_after", &self.not_after()).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for LiveIdentity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified())
    }
}

impl ResolvesClientCert for LiveIdentity {
    fn resolve(&self, _root_hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.certified())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pki::Ca;

    #[test]
    fn a_replaced_identity_is_presented_and_a_mismatched_one_refused() {
        let ca = Ca::generate("t").unwrap();
        let first = ca.issue("n1", &[], Duration::from_secs(60)).unwrap();
        let live = LiveIdentity::new(ca.cert_pem(), &first).unwrap();
        let renewed = ca.issue_for_key("n1", &[], Duration::from_secs(3600), &first.key_pem).unwrap();
        live.replace(&renewed).unwrap();
        assert_eq!(live.identity(), renewed);
        assert!(live.not_after() > SystemTime::now() + Duration::from_secs(3000));
        let presented = live.certified();
        assert_eq!(presented.cert.len(), 2, "the certificate and the CA");
        assert_eq!(presented.cert[0], certs(&renewed.cert_pem).unwrap()[0]);
        let other = ca.issue("n1", &[], Duration::from_secs(60)).unwrap();
        let mismatched = Identity { cert_pem: other.cert_pem, key_pem: first.key_pem.clone() };
        assert!(live.replace(&mismatched).is_err());
        assert_eq!(live.identity(), renewed, "the old identity is kept");
    }
}
