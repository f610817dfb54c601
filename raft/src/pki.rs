//! The cluster's certificate authority and the TLS configurations built on it.
//!
//! `init` creates a CA; every node and the admin get a certificate signed by it.
//! Nodes talk to each other with mutual TLS. A joining node does not yet know the
//! CA: it pins the CA's SHA-256 fingerprint carried in the join token instead.
//!
//! Certificates are valid for a given time (the CA for [`CA_VALIDITY`], nodes
//! and clients for what their callers ask, by default [`NODE_VALIDITY`] and
//! [`CLIENT_VALIDITY`]), never past the CA's own expiry. A node's certificate
//! can be replaced while it serves: see [`LiveIdentity`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

pub use crate::live_identity::LiveIdentity;

/// The DNS name every node certificate carries; clients verify servers against it.
pub const NODE_SERVER_NAME: &str = "clusterd-node";

const DAY: u64 = 24 * 3600;

/// How long a new cluster CA is valid (as kubeadm's).
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * DAY);

/// How long a node certificate is valid unless the node asks otherwise.
pub const NODE_VALIDITY: Duration = Duration::from_secs(365 * DAY);

/// How long a client (admin) certificate is valid.
pub const CLIENT_VALIDITY: Duration = Duration::from_secs(365 * DAY);

/// A certificate is valid from this long before it is issued, so that a peer
/// whose clock is a little behind accepts it at once.
const BACKDATE: Duration = Duration::from_secs(300);

/// A certificate or TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen failed to generate or sign.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused a certificate, key or configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// A client-certificate verifier could not be built.
    #[error("tls verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    /// A PEM block did not parse.
    #[error("pem: {0}")]
    Pem(String),
    /// A certificate did not parse as X.509.
    #[error("x509: {0}")]
    X509(String),
}

/// Set the validity window of `params`: from a little before `now` for
/// `validity`, but not past `cap` (the issuing CA's expiry).
fn valid_for(params: &mut CertificateParams, now: SystemTime, validity: Duration, cap: Option<SystemTime>) {
    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut until = now + validity;
    if let Some(cap) = cap {
        until = until.min(cap);
    }
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch(now).saturating_sub(BACKDATE);
    params.not_after = epoch + since_epoch(until);
}

/// When the first certificate of a PEM text expires (its notAfter).
pub fn not_after(cert_pem: &str) -> Result<SystemTime, PkiError> {
    let der = first_cert(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| PkiError::X509(e.to_string()))?;
    let secs = cert.validity().not_after.timestamp();
    Ok(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64))
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

/// The cluster's certificate authority.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ca(pub Identity);

impl Ca {
    /// Create a new self-signed CA, valid for [`CA_VALIDITY`].
    pub fn generate(cluster: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("clusterd CA {cluster}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        valid_for(&mut params, SystemTime::now(), CA_VALIDITY, None);
        let cert = params.self_signed(&key)?;
        Ok(Ca(Identity { cert_pem: cert.pem(), key_pem: key.serialize_pem() }))
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.0.cert_pem
    }

    /// Issue a certificate for `common_name`, valid as TLS client and server
    /// for `validity`, with the given subject alternative names (DNS names or
    /// IP addresses) plus [`NODE_SERVER_NAME`] and `localhost`, for a new key.
    pub fn issue(&self, common_name: &str, sans: &[String], validity: Duration) -> Result<Identity, PkiError> {
        self.issue_node(common_name, sans, validity, KeyPair::generate()?)
    }

    /// [`Ca::issue`] for an existing key (PEM): a renewed certificate that
    /// goes with the key its holder already has.
    pub fn issue_for_key(
        &self,
        common_name: &str,
        sans: &[String],
        validity: Duration,
        key_pem: &str,
    ) -> Result<Identity, PkiError> {
        self.issue_node(common_name, sans, validity, KeyPair::from_pem(key_pem)?)
    }

    fn issue_node(
        &self,
        common_name: &str,
        sans: &[String],
        validity: Duration,
        key: KeyPair,
    ) -> Result<Identity, PkiError> {
        let ca_key = KeyPair::from_pem(&self.0.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.0.cert_pem, ca_key)?;
        let mut names = vec![NODE_SERVER_NAME.to_string(), "localhost".to_string()];
        names.extend(sans.iter().cloned());
        names.dedup();
        let mut params = CertificateParams::new(names)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        valid_for(&mut params, SystemTime::now(), validity, Some(not_after(&self.0.cert_pem)?));
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Identity { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Issue a client-only certificate for user `common_name` in `group` (its
    /// Organization, as Kubernetes reads a client certificate; rcgen keeps one
    /// value per name attribute, so one group), valid for `validity`.
    pub fn issue_client(&self, common_name: &str, group: &str, validity: Duration) -> Result<Identity, PkiError> {
        let ca_key = KeyPair::from_pem(&self.0.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.0.cert_pem, ca_key)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        if !group.is_empty() {
            dn.push(DnType::OrganizationName, group);
        }
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        valid_for(&mut params, SystemTime::now(), validity, Some(not_after(&self.0.cert_pem)?));
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Identity { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// The SHA-256 fingerprint of the CA certificate, lowercase hex.
    pub fn fingerprint(&self) -> Result<String, PkiError> {
        fingerprint_pem(&self.0.cert_pem)
    }
}

/// SHA-256 of a PEM certificate's DER bytes, lowercase hex.
pub fn fingerprint_pem(pem: &str) -> Result<String, PkiError> {
    let der = first_cert(pem)?;
    Ok(hex::encode(Sha256::digest(der.as_ref())))
}

fn first_cert(pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    certs(pem)?.into_iter().next().ok_or_else(|| PkiError::Pem("no certificate in PEM".into()))
}

/// Every certificate in a PEM text.
pub fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem(e.to_string()))
}

pub(crate) fn key(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem(e.to_string()))
}

/// The crypto provider clusterd uses everywhere (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Install ring as the process-wide default provider (harmless if already done).
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c)?;
    }
    Ok(Arc::new(roots))
}

/// A server configuration presenting the current certificate of `id` (with
/// the CA appended to its chain, so that joiners can pin it) and verifying
/// client certificates against the CA. With `optional_client_auth`, clients
/// without a certificate are let through the handshake and must authenticate
/// otherwise.
pub fn server_config(
    id: Arc<LiveIdentity>,
    optional_client_auth: bool,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, PkiError> {
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots(id.ca_pem())?, provider());
    if optional_client_auth {
        builder = builder.allow_unauthenticated();
    }
    let verifier = builder.build()?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(id);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// A client configuration of a node: trusting the CA, presenting the current
/// certificate of `id`.
pub fn node_client_config(id: Arc<LiveIdentity>, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, PkiError> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(id.ca_pem())?)
        .with_client_cert_resolver(id);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// A client configuration trusting the CA, presenting `id` if given.
pub fn client_config(ca_pem: &str, id: Option<&Identity>, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, PkiError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_pem)?);
    let mut cfg = match id {
        Some(id) => builder.with_client_auth_cert(certs(&id.cert_pem)?, key(&id.key_pem)?)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// A client configuration for a node that only knows the CA's fingerprint: the
/// server must present a chain that includes a CA with that fingerprint, and its
/// certificate must be signed by that CA.
pub fn pinned_client_config(fingerprint: &str, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, PkiError> {
    let verifier = Arc::new(PinnedCa { fingerprint: fingerprint.to_lowercase(), provider: provider() });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

#[derive(Debug)]
struct PinnedCa {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca =
            intermediates.iter().find(|c| hex::encode(Sha256::digest(c.as_ref())) == self.fingerprint).ok_or_else(
                || rustls::Error::General("the server's CA does not match the join token's fingerprint".into()),
            )?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether a DER certificate is a node's: every node certificate names
/// [`NODE_SERVER_NAME`] among its DNS names, which a user's client
/// certificate (the admin's, signed by the same CA) never does. The Raft port
/// serves nodes only: a request there skips the API's authentication.
pub fn is_node_certificate(der: &[u8]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return false };
    let Ok(Some(san)) = cert.subject_alternative_name() else { return false };
    san.value.general_names.iter().any(|n| matches!(n, GeneralName::DNSName(d) if *d == NODE_SERVER_NAME))
}

/// The common name of the first certificate in a DER chain (who a peer is).
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs_from_now(t: SystemTime) -> i64 {
        match t.duration_since(SystemTime::now()) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }

    #[test]
    fn certificates_are_valid_for_what_is_asked_and_never_past_the_ca() {
        let ca = Ca::generate("t").unwrap();
        let year = 365 * DAY as i64;
        let ca_left = secs_from_now(not_after(ca.cert_pem()).unwrap());
        assert!((ca_left - 10 * year).abs() <= 5, "CA: {ca_left}s");
        let cases: &[(Duration, i64)] = &[
            (Duration::from_secs(20), 20),
            (NODE_VALIDITY, year),
            // Longer than the CA lives: cut at the CA's expiry.
            (Duration::from_secs(20 * 365 * DAY), ca_left),
        ];
        for (validity, want) in cases {
            let node = ca.issue("n1", &["10.0.0.1".into()], *validity).unwrap();
            let got = secs_from_now(not_after(&node.cert_pem).unwrap());
            assert!((got - want).abs() <= 5, "node, {validity:?}: {got}s");
            let client = ca.issue_client("admin", "system:masters", *validity).unwrap();
            let got = secs_from_now(not_after(&client.cert_pem).unwrap());
            assert!((got - want).abs() <= 5, "client, {validity:?}: {got}s");
        }
    }

    #[test]
    fn a_certificate_issued_for_a_key_goes_with_that_key() {
        let ca = Ca::generate("t").unwrap();
        let first = ca.issue("n1", &[], NODE_VALIDITY).unwrap();
        let again = ca.issue_for_key("n1", &[], NODE_VALIDITY, &first.key_pem).unwrap();
        assert_eq!(again.key_pem, first.key_pem);
        assert_ne!(again.cert_pem, first.cert_pem);
        assert!(LiveIdentity::new(ca.cert_pem(), &again).is_ok(), "certificate and key match");
    }
}
