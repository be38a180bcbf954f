//! TLS for the control plane. Each cluster makes its own key and
//! self-signed certificate when its scheduler starts; the certificate's
//! SHA-256 fingerprint goes into the scheduler file (mode 0600), and every
//! worker and client pins it. No certificate authority is involved: a
//! server that presents any other certificate (a process that took a dead
//! scheduler's port, say) is refused before a byte of the token is sent.
//!
//! The same certificate, written as PEM files beside the scheduler file,
//! secures a pool's Dask scheduler and workers with Dask's own TLS.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// The process's one crypto provider (ring), installed on first use so
/// that every rustls and reqwest configuration finds it.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let p = Arc::new(rustls::crypto::ring::default_provider());
            // Another part of the process may have installed one first; the
            // configurations below name theirs explicitly either way.
            let _ = CryptoProvider::install_default((*p).clone());
            p
        })
        .clone()
}

/// A certificate's SHA-256 fingerprint, written `sha256:` and 64 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        let d = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }

    fn matches(&self, der: &[u8]) -> bool {
        bool::from(Fingerprint::of(der).0.ct_eq(&self.0))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                format!("`{s}` is not a fingerprint (accepted: sha256: and 64 hex digits)")
            })?;
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Fingerprint(out))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A cluster's key and self-signed certificate.
pub struct ClusterCert {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

/// Making a certificate failed (only a broken crypto library does this).
#[derive(Debug, thiserror::Error)]
#[error("cannot make the cluster's TLS certificate: {0}")]
pub struct CertError(String);

impl ClusterCert {
    /// A fresh key (ECDSA P-256) and certificate for cluster `name`. It is
    /// its own authority (Dask's TLS checks a chain, and a self-signed
    /// certificate is one), good for servers and clients alike.
    pub fn generate(name: &str) -> Result<ClusterCert, CertError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
            KeyUsagePurpose,
        };
        let err = |e: rcgen::Error| CertError(e.to_string());
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(vec!["drover".to_string()]).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("drover cluster {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(ClusterCert {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            key: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The certificate and key saved by `cert_pem` and `key_pem`, read
    /// back (a scheduler restarting from its journal serves the same
    /// certificate, so that its workers' pins still hold).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCert, CertError> {
        use rustls::pki_types::pem::PemObject;
        let err = |e: rustls::pki_types::pem::Error| CertError(e.to_string());
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(err)?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(err)?;
        Ok(ClusterCert {
            cert,
            key: key.secret_pkcs8_der().to_vec(),
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        })
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PEM (PKCS#8): a secret.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Its fingerprint, which clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.cert)
    }

    /// Writes the certificate and key as PEM files in `dir`, mode 0600,
    /// created afresh (never through a link another user planted).
    pub fn write_pem(
        &self,
        dir: &std::path::Path,
    ) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        use std::io::Write;
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut f = crate::private_fs::create_secret(&path)?;
            f.write_all(text.as_bytes())?;
            Ok(path)
        };
        Ok((
            write("tls-cert.pem", &self.cert_pem)?,
            write("tls-key.pem", &self.key_pem)?,
        ))
    }

    /// A server configuration presenting this certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key)
            .expect("a key rcgen made fits its certificate");
        // Tickets let an agent that reconnects resume its session, which
        // skips the certificate and its signature.
        if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
            config.ticketer = ticketer;
        }
        Arc::new(config)
    }
}

/// Accepts exactly one certificate, by fingerprint, and checks that the
/// server holds its key (the handshake signature).
#[derive(Debug)]
struct Pinned {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin.matches(end_entity) {
            true => Ok(ServerCertVerified::assertion()),
            false => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that trusts only the certificate `pin` names.
pub fn pinned_client_config(pin: Fingerprint) -> rustls::ClientConfig {
    let provider = provider();
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { pin, provider }))
        .with_no_client_auth()
}

/// An HTTP client builder: pinned to `pin` when given, else for plain
/// `http://` only (no certificate is trusted at all).
pub fn http_client_builder(pin: Option<Fingerprint>) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder().no_proxy();
    let config = match pin {
        Some(pin) => pinned_client_config(pin),
        None => rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    builder.tls_backend_preconfigured(config)
}

/// An HTTP client for a server with a certificate from an authority
/// (slurmrestd behind a site's TLS), checked against the system's trust
/// store (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured).
pub fn ca_client_builder() -> Result<reqwest::ClientBuilder, String> {
    let verifier = rustls_platform_verifier::Verifier::new(provider())
        .map_err(|e| format!("cannot load the system's certificate authorities: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tls_backend_preconfigured(config))
}

/// Whether `error` (or what caused it) is a certificate that did not match
/// the pin: the server is not the cluster's, and retrying cannot help.
pub fn is_wrong_certificate(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(rustls::Error::InvalidCertificate(_)) = error.downcast_ref::<rustls::Error>() {
        return true;
    }
    // rustls errors reach reqwest wrapped in io::Errors (sometimes two),
    // whose source() skips the wrapped error itself: look inside.
    let inner = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|e| e as &(dyn std::error::Error + 'static));
    inner.is_some_and(is_wrong_certificate) || error.source().is_some_and(is_wrong_certificate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_and_refuse_other_text() {
        let c = ClusterCert::generate("t").unwrap();
        let f = c.fingerprint();
        let text = f.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 71, "{text}");
        assert_eq!(text.parse::<Fingerprint>().unwrap(), f);
        for bad in ["", "sha256:", "md5:00", &text[..70], &format!("{text}0")] {
            let e = bad.parse::<Fingerprint>().unwrap_err();
            assert!(e.contains("accepted: sha256:"), "{e}");
        }
        assert_ne!(ClusterCert::generate("t").unwrap().fingerprint(), f);
    }
}
