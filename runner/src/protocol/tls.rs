//! TLS for every TCP-based connection kind (rustls with the ring provider): the client side
//! users connect with, certificates checked against the Mozilla roots unless the scenario
//! explicitly skips verification; and the server side of `stampede target`, with a
//! self-signed certificate made at start-up.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use stampede_api::scenario::Tls;
use stampede_api::scenario::tls::{Pem, PemField};

use crate::value_from::Values;

/// What a user needs to open TLS: the shared client configuration and the name to verify.
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a TLS setting could not be used: the field (`ca`, `caFrom`, `cert` …, or empty for
/// the block itself) and what was wrong.
pub type TlsError = (&'static str, String);

/// Where the PEM settings are read from: files relative to `base`, `…From` values in
/// `values` (read from the environment when the test loaded).
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub base: &'a Path,
    pub values: &'a Values,
}

/// The PEM bytes of `field` as `source` gives them.
fn pem(field: &'static str, source: Pem<'_>, from: Sources<'_>) -> Result<Vec<u8>, TlsError> {
    match source {
        Pem::Text(text) => Ok(text.as_bytes().to_vec()),
        Pem::File(file) => {
            let path = from.base.join(file);
            std::fs::read(&path)
                .map_err(|e| (field, format!("cannot read {}: {e}", path.display())))
        }
        Pem::From(v) => from
            .values
            .get(v)
            .map(|text| text.as_bytes().to_vec())
            // Loading reads every `…From` or refuses the test, so this is a caller's slip.
            .ok_or((field, "was not read when the test loaded".into())),
    }
}

fn certificates(
    field: &'static str,
    source: Pem<'_>,
    from: Sources<'_>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let bytes = pem(field, source, from)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (field, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err((
            field,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// The client side for `host` (or `tls.serverName`), offering `alpn` protocols; `ca`, `cert`
/// and `key` come from `from`.
pub fn client(
    tls: Option<&Tls>,
    host: &str,
    alpn: &[&[u8]],
    from: Sources<'_>,
) -> Result<TlsClient, TlsError> {
    let name = tls
        .and_then(|t| t.server_name.as_deref())
        .unwrap_or(host)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| ("serverName", format!("{name:?} is not a TLS server name")))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("", e.to_string()))?;
    let verifying = if tls.is_some_and(|t| t.insecure_skip_verify) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider())))
    } else if let Some((field, ca)) = tls.and_then(|t| t.pem(PemField::Ca)) {
        let mut roots = RootCertStore::empty();
        for cert in certificates(field, ca, from)? {
            roots
                .add(cert)
                .map_err(|e| (field, format!("not a usable CA certificate: {e}")))?;
        }
        builder.with_root_certificates(roots)
    } else {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots)
    };
    let client_auth = tls.and_then(|t| t.pem(PemField::Cert).zip(t.pem(PemField::Key)));
    let mut config = match client_auth {
        None => verifying.with_no_client_auth(),
        Some(((cert_field, cert), (key_field, key))) => {
            use rustls::pki_types::pem::PemObject;
            let chain = certificates(cert_field, cert, from)?;
            let key = PrivateKeyDer::from_pem_slice(&pem(key_field, key, from)?)
                .map_err(|e| (key_field, format!("not a PEM private key: {e}")))?;
            verifying
                .with_client_auth_cert(chain, key)
                .map_err(|e| (key_field, format!("does not go with {cert_field}: {e}")))?
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsClient {
        config: Arc::new(config),
        server_name,
    })
}

/// `insecureSkipVerify`: every certificate is taken as valid; signatures are still checked
/// so the handshake itself is real.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A server configuration with a fresh self-signed certificate for `localhost`, 127.0.0.1
/// and ::1, offering HTTP/2 and HTTP/1.1 by ALPN (clients without ALPN get raw TLS).
pub fn self_signed_server() -> Result<Arc<ServerConfig>, String> {
    let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let cert = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
