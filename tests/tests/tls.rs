//! The TLS block every TCP-based kind shares: a private CA in `ca`, and a client certificate
//! (`cert` + `key`) for a server that requires one, each as a file, as PEM text, or from an
//! environment variable (`caFrom`, `certFrom`, `keyFrom`). Against a mutual-TLS echo server on
//! 127.0.0.1 that this test runs with certificates it makes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use stampede_runner::Summary;
use stampede_tests::{run_yaml, serial, stampede_bin};
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

/// `stampede run FILE --out summary.json --quiet` with `env` added to its environment and
/// `unset` taken out: its exit code, its stderr, and the summary when it wrote one. Killed
/// if it outlives a minute.
fn run_binary(
    yaml: &str,
    env: &[(&str, &str)],
    unset: &[&str],
) -> (Option<i32>, String, Option<Summary>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mtls.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = dir.path().join("summary.json");
    let mut cmd = Command::new(stampede_bin());
    cmd.arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().expect("stampede starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("stampede run did not end within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let summary = std::fs::read(&out)
        .ok()
        .map(|bytes| serde_json::from_slice(&bytes).expect("the summary is JSON"));
    (status.code(), stderr, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_ca_and_a_client_certificate_from_environment_variables_open_a_mutual_tls_connection() {
    let _g = serial().await;
    let server_ca = Pki::new("server CA");
    let client_ca = Pki::new("client CA");
    let addr = mtls_echo(&server_ca, &client_ca).await;
    let (cert, key) = client_ca.leaf(&["client"]);
    let (ca, cert, key) = (
        pem("CERTIFICATE", &server_ca.ca),
        pem("CERTIFICATE", &cert),
        pem("PRIVATE KEY", &key),
    );
    let tls = "          serverName: localhost\n          caFrom: { env: LEDGER_CA }\n          certFrom: { env: LEDGER_CERT }\n          keyFrom: { env: LEDGER_KEY }";
    let file = yaml(addr, tls);

    let ran = tokio::task::spawn_blocking(move || {
        run_binary(
            &file,
            &[
                ("LEDGER_CA", &ca),
                ("LEDGER_CERT", &cert),
                ("LEDGER_KEY", &key),
            ],
            &[],
        )
    })
    .await
    .unwrap();
    let (code, stderr, summary) = ran;
    assert_eq!(code, Some(0), "stampede run: {stderr}");
    let s = summary.expect("stampede run wrote its summary");
    let line = s.steps.iter().find(|x| x.name == "line").unwrap();
    assert!(line.requests > 5, "{:?}", s.totals);
    assert_eq!(line.errors, 0, "{:?} {:?}", line.outcomes, reasons(&s));
    assert_eq!(line.checks_failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_tls_variable_that_is_not_set_stops_the_run_naming_the_field_and_the_variable() {
    let _g = serial().await;
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let file = yaml(
        addr,
        "          caFrom: { env: LEDGER_CA_THAT_NOBODY_SETS }\n          certFrom: { env: LEDGER_CERT }\n          key: client.key",
    );
    let ran = tokio::task::spawn_blocking(move || {
        run_binary(
            &file,
            &[("LEDGER_CERT", "-----BEGIN CERTIFICATE-----\n")],
            &["LEDGER_CA_THAT_NOBODY_SETS"],
        )
    })
    .await
    .unwrap();
    let (code, stderr, summary) = ran;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(summary.is_none());
    assert!(
        stderr.contains("spec.scenario.connection.tcp.tls.caFrom.env: the variable LEDGER_CA_THAT_NOBODY_SETS is not set"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_secret_key_ref_outside_a_cluster_is_refused_at_load_with_what_to_use_instead() {
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let e = stampede_runner::load_str(
        &yaml(
            addr,
            "          caFrom: { secretKeyRef: { name: ledger-tls, key: ca.crt } }",
        ),
        Path::new("."),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap();
    assert!(
        e.starts_with("spec.scenario.connection.tcp.tls.caFrom.secretKeyRef: needs a cluster")
            && e.contains("STAMPEDE_SECRET_LEDGER_TLS_CA_CRT_")
            && e.ends_with("use caFrom.env or ca (PEM text or a file) here"),
        "{e}"
    );
    // Both a setting and its `…From`: refused, naming both.
    let e = stampede_runner::load_str(
        &yaml(
            addr,
            "          ca: ca.pem\n          caFrom: { env: LEDGER_CA }",
        ),
        Path::new("."),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap();
    assert!(
        e.contains("spec.scenario.connection.tcp.tls.caFrom: set either ca or caFrom, not both"),
        "{e}"
    );
}
