//! HTTPS for the fake: a server certificate and key, and optionally a CA whose client
//! certificates it requires (mutual TLS), so the consumer's TLS settings are tested end to end.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server side of TLS, from PEM text.
#[derive(Clone)]
pub struct FakeTls {
    /// The server's certificate chain (PEM).
    pub cert_pem: Vec<u8>,
    /// The server certificate's private key (PEM).
    pub key_pem: Vec<u8>,
    /// When set, a client must present a certificate issued by one of these CAs (PEM).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for FakeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of every log line.
        f.debug_struct("FakeTls")
            .field("client_ca", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

fn certs(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the {what} is not PEM: {e:?}"))?;
    if certs.is_empty() {
        return Err(format!("the {what} holds no PEM certificate"));
    }
    Ok(certs)
}

impl FakeTls {
    /// The acceptor for these settings; fails naming what cannot be read.
    pub(crate) fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs("client CA", pem)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("the client CA cannot be a root: {e}"))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("the client CA: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| format!("the server key is not a PEM private key: {e:?}"))?;
        let config = builder
            .with_single_cert(certs("server certificate", &self.cert_pem)?, key)
            .map_err(|e| format!("the server key does not fit its certificate: {e}"))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}
