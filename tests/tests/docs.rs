//! docs/protocols.md has one section per connection kind, and its field table lists exactly
//! the fields the kind's options have in the CRD schema (generated from the code): the two
//! cannot drift apart.

use std::collections::BTreeSet;
use std::path::Path;

use stampede_api::scenario::ConnectionKind;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The fields of the object at `path` under `spec` (a kind's options, say), from the committed
/// CRD (itself checked against the code).
fn schema_fields(path: &[&str]) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("crds/loadtests.stampede.dev.yaml")).unwrap();
    let crd: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let mut at = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    for p in path {
        at = &at["properties"][p];
    }
    at["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("the CRD has no fields at spec.{}", path.join(".")))
        .keys()
        .cloned()
        .collect()
}

/// The fields listed in the first table of the section headed `heading` (its first column,
/// top-level names).
fn documented_fields(doc: &str, heading: &str) -> Option<BTreeSet<String>> {
    let start = doc.split("\n## ").map(|s| format!("## {s}")).find(|s| {
        s.lines()
            .next()
            .is_some_and(|h| h == heading || h.starts_with(&format!("{heading} ")))
    })?;
    let mut fields = BTreeSet::new();
    let mut in_table = false;
    for line in start.lines().skip(1) {
        if let Some(row) = line.strip_prefix("| `") {
            in_table = true;
            // `heartbeat.every` documents a part of `heartbeat`.
            if let Some((name, _)) = row.split_once('`') {
                fields.insert(name.split('.').next().unwrap_or(name).to_string());
            }
        } else if in_table && !line.starts_with('|') {
            break;
        }
    }
    Some(fields)
}

#[test]
fn every_kind_has_a_section_listing_exactly_its_fields() {
    let doc = std::fs::read_to_string(root().join("docs/protocols.md")).unwrap();
    for kind in ConnectionKind::ALL {
        let name = kind.field();
        let documented = documented_fields(&doc, &format!("## `{name}`"))
            .unwrap_or_else(|| panic!("docs/protocols.md has no section ## `{name}`"));
        assert_eq!(
            documented,
            schema_fields(&["scenario", "connection", name]),
            "docs/protocols.md ## `{name}`: the field table (left) and the schema (right) differ"
        );
    }
}

#[test]
fn the_tls_section_lists_exactly_the_fields_of_the_tls_block() {
    let doc = std::fs::read_to_string(root().join("docs/protocols.md")).unwrap();
    let documented =
        documented_fields(&doc, "## TLS").expect("docs/protocols.md has no section ## TLS");
    assert_eq!(
        documented,
        schema_fields(&["scenario", "connection", "tcp", "tls"]),
        "docs/protocols.md ## TLS: the field table (left) and the schema (right) differ"
    );
}
