//! The TLS block every TCP-based kind shares: a private CA in `ca`, and a client certificate
//! (`cert` + `key`) for a server that requires one, each as a file or as PEM text. Against a
//! mutual-TLS echo server on 127.0.0.1 that this test runs with certificates it makes.

use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use stampede_runner::Summary;
use stampede_tests::{run_yaml, serial};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A CA and a certificate it signed for `name`: (CA cert DER, leaf cert DER, leaf key DER).
struct Pki {
    ca: Vec<u8>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(cn: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap().der().to_vec();
        Pki {
            ca,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for `names` signed by this CA, and its PKCS#8 key.
    fn leaf(&self, names: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().to_vec(), key.serialize_der())
    }
}

/// A TLS echo server on 127.0.0.1 that requires a client certificate signed by `clients`.
async fn mtls_echo(server: &Pki, clients: &Pki) -> std::net::SocketAddr {
    let (cert, key) = server.leaf(&["localhost"]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(clients.ca.clone())).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn yaml(addr: std::net::SocketAddr, tls: &str) -> String {
    format!(
        "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: mtls }}\nspec:\n  connections: 2\n  duration: 700ms\n  scenario:\n    connection:\n      tcp:\n        address: \"{addr}\"\n        tls:\n{tls}\n    steps:\n      - name: line\n        send: {{ text: \"over mtls\\n\" }}\n        expect: {{ delimiter: \"\\n\" }}\n        check: {{ bodyContains: \"over mtls\" }}\n      - think: 20ms\n"
    )
}

/// `key: value` lines of the tls block, values as YAML block scalars when multi-line.
fn block(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            if v.contains('\n') {
                let body: String = v.lines().map(|l| format!("            {l}\n")).collect();
                format!("          {k}: |\n{}", body.trim_end())
            } else if *v == "true" || *v == "false" {
                format!("          {k}: {v}")
            } else {
                format!("          {k}: {v:?}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn reasons(s: &Summary) -> Vec<String> {
    s.totals
        .error_reasons
        .iter()
        .map(|r| format!("{}: {}", r.kind, r.reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_private_ca_and_a_client_certificate_open_a_mutual_tls_connection() {
    let _g = serial().await;
    let server_ca = Pki::new("server CA");
    let client_ca = Pki::new("client CA");
    let addr = mtls_echo(&server_ca, &client_ca).await;
    let dir = tempfile::tempdir().unwrap();
    // The CA and the key as files, the client certificate as PEM text.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, pem("CERTIFICATE", &server_ca.ca)).unwrap();
    let (cert, key) = client_ca.leaf(&["client"]);
    let key_file = dir.path().join("client.key");
    std::fs::write(&key_file, pem("PRIVATE KEY", &key)).unwrap();
    let cert_pem = pem("CERTIFICATE", &cert);
    let ca = ca_file.to_str().unwrap();
    let key = key_file.to_str().unwrap();

    let s = run_yaml(&yaml(
        addr,
        &block(&[
            ("serverName", "localhost"),
            ("ca", ca),
            ("cert", &cert_pem),
            ("key", key),
        ]),
    ))
    .await;
    let line = s.steps.iter().find(|x| x.name == "line").unwrap();
    assert!(line.requests > 5, "{:?}", s.totals);
    assert_eq!(line.errors, 0, "{:?} {:?}", line.outcomes, reasons(&s));
    assert_eq!(line.checks_failed, 0);

    // Without the client certificate the server refuses it with an alert. TLS 1.3 lets the
    // client send before that, so the alert ends the first request: `tls`, with its reason.
    let s = run_yaml(&yaml(
        addr,
        &block(&[("serverName", "localhost"), ("ca", ca)]),
    ))
    .await;
    assert_eq!(s.totals.requests, s.totals.errors, "{:?}", s.totals);
    assert!(
        s.totals.errors_by_kind.get("tls").copied().unwrap_or(0) > 0
            && reasons(&s)
                .iter()
                .any(|r| r.contains("CertificateRequired")),
        "{:?} {:?}",
        s.totals.errors_by_kind,
        reasons(&s)
    );

    // Trusting another CA than the server's: refused, and the reason says why.
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, pem("CERTIFICATE", &client_ca.ca)).unwrap();
    let s = run_yaml(&yaml(
        addr,
        &block(&[
            ("serverName", "localhost"),
            ("ca", other.to_str().unwrap()),
            ("cert", &cert_pem),
            ("key", key),
        ]),
    ))
    .await;
    assert_eq!(s.totals.connects, 0);
    assert!(
        reasons(&s)
            .iter()
            .any(|r| r.starts_with("tls: ") && r.contains("UnknownIssuer")),
        "{:?}",
        reasons(&s)
    );
}

#[test]
fn a_tls_file_that_is_missing_or_not_pem_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let prepare = |tls: &str| {
        let loaded = stampede_runner::load_str(&yaml(addr, tls), dir.path()).unwrap();
        stampede_runner::prepare(&loaded)
            .err()
            .map(|e| e.to_string())
    };
    let e = prepare(&block(&[("ca", "missing.pem")])).unwrap();
    assert!(
        e.contains("spec.scenario.connection.tcp.tls.ca") && e.contains("cannot read"),
        "{e}"
    );
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let e = prepare(&block(&[("ca", "junk.pem")])).unwrap();
    assert!(
        e.contains("tls.ca") && e.contains("no PEM certificate"),
        "{e}"
    );
    // cert without key, and ca with insecureSkipVerify, are caught by validation.
    let e = stampede_runner::load_str(&yaml(addr, &block(&[("cert", "c.pem")])), dir.path())
        .err()
        .map(|e| e.to_string())
        .unwrap();
    assert!(
        e.contains("spec.scenario.connection.tcp.tls.key: required with cert"),
        "{e}"
    );
    let e = stampede_runner::load_str(
        &yaml(
            addr,
            &block(&[("ca", "c.pem"), ("insecureSkipVerify", "true")]),
        ),
        dir.path(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap();
    assert!(
        e.contains("tls.ca: set either ca or insecureSkipVerify"),
        "{e}"
    );
}
