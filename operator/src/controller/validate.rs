//! The checks a LoadTest must pass before anything is created for it: the api crate's
//! semantic checks plus the rules that hold only in a cluster (no files next to the
//! LoadTest). Pure: no client.

use stampede_api::crd::LoadTest;

use super::spec_file::as_file;

/// Semantic checks the API server's schema cannot make, with cluster-only rules.
pub(super) fn validate(lt: &LoadTest) -> Vec<stampede_api::FieldError> {
    let mut errs = stampede_api::validate(&as_file(lt), &Default::default());
    for (i, d) in lt.spec.scenario.data.iter().enumerate() {
        if d.csv.is_some() {
            errs.push(stampede_api::FieldError {
                path: format!("spec.scenario.data[{i}].csv"),
                message: "runner pods cannot read files next to the LoadTest; use `rows`".into(),
            });
        }
    }
    if let Some((kind, tls)) = lt.spec.scenario.connection.tls() {
        for (field, _) in tls.files() {
            errs.push(stampede_api::FieldError {
                path: format!("spec.scenario.connection.{kind}.tls.{field}"),
                message: "runner pods cannot read files next to the LoadTest; put the PEM text itself here (-----BEGIN …)".into(),
            });
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::controller::spec_file::tcp_tls_load_test as load_test;

    #[test]
    fn tls_files_are_refused_in_a_cluster_and_pem_text_is_not() {
        let errs = validate(&load_test("{ ca: ca.pem, cert: c.pem, key: c.key }"));
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.scenario.connection.tcp.tls.ca",
                "spec.scenario.connection.tcp.tls.cert",
                "spec.scenario.connection.tcp.tls.key"
            ],
            "{errs:?}"
        );
        assert!(errs[0].message.contains("put the PEM text itself here"));
        let inline =
            "{ ca: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\" }";
        assert!(validate(&load_test(inline)).is_empty());
    }

    #[test]
    fn tls_from_a_secret_or_a_variable_is_valid_in_a_cluster() {
        let from = "{ caFrom: { secretKeyRef: { name: ledger-tls, key: ca.crt } }, certFrom: { secretKeyRef: { name: ledger-tls, key: tls.crt } }, keyFrom: { env: LEDGER_KEY } }";
        let errs = validate(&load_test(from));
        assert!(errs.is_empty(), "{errs:?}");
        // The files rule still holds beside a `…From`.
        let errs = validate(&load_test(
            "{ caFrom: { env: CA }, cert: c.pem, key: c.key }",
        ));
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.scenario.connection.tcp.tls.cert",
                "spec.scenario.connection.tcp.tls.key"
            ]
        );
    }
}
