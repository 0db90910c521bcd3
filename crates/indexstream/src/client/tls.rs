//! TLS to the cluster: which certificates are trusted (the system's roots, a private CA, a pinned
//! CA fingerprint, or none at all), the client certificate of mutual TLS, and what a failed
//! handshake is called when it is reported.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::error::ClientError;

/// Which roots a server certificate may chain to besides the `ca-cert` file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Roots {
    /// The system's trusted roots (or, where the system has none, the Mozilla roots built in),
    /// plus the `ca-cert` file's certificates (the default).
    #[default]
    SystemAndGiven,
    /// Only the `ca-cert` file's certificates.
    OnlyGiven,
}

/// Whether the server's certificate is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verification {
    /// The certificate must chain to a trusted root (or match the pinned fingerprint) and name
    /// the host (the default).
    #[default]
    Verify,
    /// Any certificate is accepted: the connection is encrypted but anyone between the consumer
    /// and the cluster can read and change it. For a first test against a self-signed cluster.
    Insecure,
}

/// The SHA-256 fingerprint of a certificate, as Elasticsearch 8 prints its HTTP CA's at setup
/// (hex, with or without colons, any case).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Parses `AB:CD:...` or `abcd...` (64 hex digits).
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex: String = s.trim().chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "{s:?} is not a SHA-256 fingerprint: expected 64 hex digits (colons allowed), got {}",
                hex.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|e| format!("{s:?} is not a SHA-256 fingerprint: {e}"))?;
        }
        Ok(Fingerprint(out))
    }

    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Fingerprint::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// TLS settings of a client; the default trusts the system's roots and checks every certificate.
/// In a config file: `ca-cert`, `roots`, `client-cert`, `client-key`, `ca-fingerprint`,
/// `verification`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct TlsConfig {
    /// A PEM file of CA certificates to trust (a private CA, Elasticsearch 8's `http_ca.crt`).
    pub ca_cert: Option<PathBuf>,
    /// Whether the system's roots are trusted too.
    pub roots: Roots,
    /// A PEM file with the client certificate (and its chain) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// A PEM file with the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
    /// Trust a server whose presented chain holds a certificate with this SHA-256 fingerprint,
    /// in place of checking the chain against roots.
    pub ca_fingerprint: Option<Fingerprint>,
    /// Whether the server's certificate is checked at all.
    pub verification: Verification,
}

impl TlsConfig {
    /// Whether these are the defaults, so the HTTP client's own TLS setup serves.
    fn is_default(&self) -> bool {
        *self == TlsConfig::default()
    }

    /// Checks the settings and loads their files into a rustls configuration; `None` for the
    /// defaults. Fails naming the setting and the file when one cannot be used.
    pub(super) fn build(&self) -> Result<Option<rustls::ClientConfig>, ClientError> {
        if self.is_default() {
            return Ok(None);
        }
        let setup =
            |setting: &'static str, reason: String| ClientError::Setting { setting, reason };
        if self.verification == Verification::Insecure
            && (self.ca_cert.is_some() || self.ca_fingerprint.is_some())
        {
            return Err(setup(
                "verification",
                "insecure turns certificate checks off, so ca-cert and ca-fingerprint would do nothing; give one or the other".into(),
            ));
        }
        if self.ca_fingerprint.is_some() && self.ca_cert.is_some() {
            return Err(setup(
                "ca-fingerprint",
                "a pinned fingerprint takes the place of checking the chain against a CA, so ca-cert would do nothing; give one or the other".into(),
            ));
        }
        if self.roots == Roots::OnlyGiven && self.ca_cert.is_none() {
            return Err(setup(
                "roots",
                "only the ca-cert file's roots are to be trusted, but no ca-cert file is given"
                    .into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup("tls", e.to_string()))?;
        let builder = match (self.verification, self.ca_fingerprint) {
            (Verification::Insecure, _) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked { provider })),
            (Verification::Verify, Some(pin)) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned { pin, provider })),
            (Verification::Verify, None) => builder.with_root_certificates(self.roots()?),
        };
        let config = match (&self.client_cert, &self.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs("client-cert", cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    setup(
                        "client-key",
                        format!(
                            "cannot read a private key from {}: {}",
                            key.display(),
                            pem_error(&e)
                        ),
                    )
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    setup(
                        "client-key",
                        format!("the key does not fit the client certificate: {e}"),
                    )
                })?
            }
            (Some(_), None) => {
                return Err(setup(
                    "client-cert",
                    "a client certificate needs its private key (client-key)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(setup(
                    "client-key",
                    "a client key needs its certificate (client-cert)".into(),
                ))
            }
        };
        Ok(Some(config))
    }

    fn roots(&self) -> Result<rustls::RootCertStore, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        if self.roots == Roots::SystemAndGiven {
            let system = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(system.certs);
            if added == 0 {
                tracing::debug!(
                    "the system has no trusted roots; using the Mozilla roots built in"
                );
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
        if let Some(path) = &self.ca_cert {
            for cert in read_certs("ca-cert", path)? {
                roots.add(cert).map_err(|e| ClientError::Setting {
                    setting: "ca-cert",
                    reason: format!(
                        "{} holds a certificate that cannot be a root: {e}",
                        path.display()
                    ),
                })?;
            }
        }
        Ok(roots)
    }
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM section of that kind in it".into(),
        other => format!("{other:?}"),
    }
}

fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let fail = |reason: String| ClientError::Setting { setting, reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(format!("cannot read {}: {}", path.display(), pem_error(&e))))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            fail(format!(
                "{} is not a PEM certificate file: {}",
                path.display(),
                pem_error(&e)
            ))
        })?;
    if certs.is_empty() {
        return Err(fail(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// Handshake signatures are checked with the provider's algorithms by both custom verifiers:
/// they decide only which certificates are trusted.
macro_rules! signatures_by_provider {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// Trusts a chain that holds a certificate with the pinned fingerprint (as Elasticsearch's own
/// clients do with `ca_fingerprint`: the server sends its CA in the chain).
#[derive(Debug)]
struct Pinned {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

/// The message of a chain that holds no certificate with the pinned fingerprint.
const PIN_MISMATCH: &str = "no certificate the server presented has the pinned ca-fingerprint";

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = std::iter::once(end_entity).chain(intermediates);
        if chain.any(|c| Fingerprint::of(c) == self.pin) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatch)),
            )))
        }
    }

    signatures_by_provider!();
}

#[derive(Debug)]
struct PinMismatch;

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PIN_MISMATCH)
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts every certificate (`verification = insecure`).
#[derive(Debug)]
struct Unchecked {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    signatures_by_provider!();
}

/// Why a TLS connection to a node failed, in the words a user acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsProblem {
    /// The server's certificate chains to no trusted root.
    UnknownIssuer,
    /// The server's certificate does not name the host connected to.
    HostNameMismatch {
        /// The names the certificate holds (empty when the TLS library did not say).
        presented: Vec<String>,
    },
    /// The server's certificate has expired.
    Expired,
    /// The server's certificate is not valid yet.
    NotYetValid,
    /// No certificate in the server's chain has the pinned fingerprint.
    FingerprintMismatch,
    /// The server requires a client certificate and none was sent, or it refused the one sent.
    ClientCertificateRequired,
    /// The server refused the handshake (a TLS alert), for another reason.
    HandshakeRefused(String),
    /// Another certificate or protocol problem.
    Other(String),
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsProblem::UnknownIssuer => f.write_str("the server's certificate is signed by an unknown issuer (a CA that is not trusted): trust its CA with ca-cert, or pin it with ca-fingerprint"),
            TlsProblem::HostNameMismatch { presented } if presented.is_empty() => f.write_str("host name mismatch: the server's certificate does not name this host"),
            TlsProblem::HostNameMismatch { presented } => write!(f, "host name mismatch: the server's certificate names {} and not this host", presented.join(", ")),
            TlsProblem::Expired => f.write_str("the server's certificate has expired"),
            TlsProblem::NotYetValid => f.write_str("the server's certificate is not valid yet (check this machine's clock)"),
            TlsProblem::FingerprintMismatch => write!(f, "{PIN_MISMATCH}"),
            TlsProblem::ClientCertificateRequired => f.write_str("the server requires a client certificate (mutual TLS) and refused the handshake: give client-cert and client-key, one its CA trusts"),
            TlsProblem::HandshakeRefused(alert) => write!(f, "the server refused the TLS handshake ({alert})"),
            TlsProblem::Other(reason) => f.write_str(reason),
        }
    }
}

/// The TLS problem behind a transport error, if there is one. rustls' error sits inside an
/// `io::Error`, whose `source()` skips it, so each `io::Error` on the way is opened too.
pub(super) fn problem(e: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = as_rustls(err) {
            return Some(classify(found));
        }
        next = err.source();
    }
    None
}

fn as_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    as_rustls(inner)
}

fn classify(e: &rustls::Error) -> TlsProblem {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsProblem::UnknownIssuer,
            CertificateError::NotValidForName => {
                TlsProblem::HostNameMismatch { presented: vec![] }
            }
            CertificateError::NotValidForNameContext { presented, .. } => {
                TlsProblem::HostNameMismatch {
                    presented: presented.clone(),
                }
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsProblem::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsProblem::NotYetValid
            }
            CertificateError::Other(o) if o.to_string() == PIN_MISMATCH => {
                TlsProblem::FingerprintMismatch
            }
            CertificateError::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
                TlsProblem::Other("the server presents a CA certificate (basicConstraints CA:TRUE, as a quick self-signed one often is) as its own, which TLS verification refuses even when it is trusted: give the server a certificate issued by that CA, pin it with ca-fingerprint, or use insecure for a first test".into())
            }
            other => TlsProblem::Other(format!("the server's certificate is not accepted: {other:?}")),
        },
        rustls::Error::AlertReceived(A::CertificateRequired | A::BadCertificate | A::UnknownCA) => {
            TlsProblem::ClientCertificateRequired
        }
        rustls::Error::AlertReceived(alert) => TlsProblem::HandshakeRefused(format!("{alert:?}")),
        other => TlsProblem::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons_and_print_as_elasticsearch_does() {
        let hex = "9F:3D:00:AA:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C";
        let with = Fingerprint::parse(hex).unwrap();
        let without = Fingerprint::parse(&hex.replace(':', "").to_lowercase()).unwrap();
        assert_eq!(with, without);
        assert_eq!(with.to_string(), hex);
        let short = Fingerprint::parse("9F:3D").unwrap_err();
        assert!(short.contains("64 hex digits"), "{short}");
        assert!(Fingerprint::parse(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn contradicting_settings_are_refused_naming_the_setting() {
        let both = TlsConfig {
            ca_cert: Some("ca.pem".into()),
            ca_fingerprint: Some(Fingerprint([0; 32])),
            ..TlsConfig::default()
        };
        let e = both.build().unwrap_err().to_string();
        assert!(e.contains("ca-fingerprint"), "{e}");
        let insecure = TlsConfig {
            ca_cert: Some("ca.pem".into()),
            verification: Verification::Insecure,
            ..TlsConfig::default()
        };
        assert!(insecure
            .build()
            .unwrap_err()
            .to_string()
            .contains("insecure"));
        let only = TlsConfig {
            roots: Roots::OnlyGiven,
            ..TlsConfig::default()
        };
        assert!(only.build().unwrap_err().to_string().contains("no ca-cert"));
        let half = TlsConfig {
            client_cert: Some("c.pem".into()),
            ..TlsConfig::default()
        };
        assert!(half.build().unwrap_err().to_string().contains("client-key"));
    }

    #[test]
    fn a_missing_or_empty_file_is_named() {
        let missing = TlsConfig {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..TlsConfig::default()
        };
        let e = missing.build().unwrap_err().to_string();
        assert!(
            e.contains("ca-cert") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("indexstream-tls-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let empty = TlsConfig {
            ca_cert: Some(dir.clone()),
            ..TlsConfig::default()
        };
        let e = empty.build().unwrap_err().to_string();
        let _ = std::fs::remove_file(&dir);
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn rustls_errors_inside_io_errors_are_found_and_named() {
        let inner = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        assert_eq!(problem(&io), Some(TlsProblem::UnknownIssuer));
        let alert = std::io::Error::other(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        ));
        assert_eq!(problem(&alert), Some(TlsProblem::ClientCertificateRequired));
        let plain = std::io::Error::other("connection reset");
        assert_eq!(problem(&plain), None);
    }
}
