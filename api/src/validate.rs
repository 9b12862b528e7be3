//! Semantic validation: everything serde cannot say, reported with the path of the field
//! (`spec.scenario.steps[2].request.path`). Pure: the caller supplies the shape of CSV data it read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::scenario::{
    Check, Connection, ConnectionKind, Expect, Extract, Payload, Request, Scenario, Step, Tls,
};
use crate::spec::{API_VERSION, KIND, LoadTestFile, LoadTestSpec};
use crate::template::{BUILTIN_NAMES, Part, Template};
use crate::threshold::Threshold;

/// One problem, at one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// The name results of a step are reported under: its `name`, else `METHOD path` for a
/// request and the action (`send`, `expect`, `listen`) otherwise; `None` for a think.
pub fn step_name(step: &Step) -> Option<String> {
    if let Some(n) = &step.name {
        return Some(n.clone());
    }
    if let Some(r) = &step.request {
        return Some(format!("{} {}", r.method, r.path));
    }
    if step.send.is_some() {
        Some("send".into())
    } else if step.expect.is_some() {
        Some("expect".into())
    } else if step.listen.is_some() {
        Some("listen".into())
    } else {
        None
    }
}

/// Largest number of connections the test reaches, over `connections` and every stage.
pub fn peak_connections(spec: &LoadTestSpec) -> u32 {
    spec.stages
        .iter()
        .filter_map(|s| s.connections)
        .fold(spec.connections, u32::max)
}

/// The longest test: a month. Longer spans are typos (`400000000000y`) that would overflow the
/// clocks the plan is scheduled on.
pub const MAX_TEST_LENGTH: std::time::Duration = std::time::Duration::from_secs(31 * 24 * 3600);

/// The most runners one test may ask for: each is a pod, and a typo must not create thousands.
pub const MAX_RUNNERS: u32 = 1000;

/// Names templates reserve for built-ins; no variable, data set or extracted value may take them.
pub const RESERVED_NAMES: &[&str] = &["vu", "iteration", "run"];

/// What the caller found in a CSV data set: its columns and how many rows follow the header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataShape {
    pub columns: Vec<String>,
    pub rows: usize,
}

/// Checks a parsed file. `csv` holds the shape of data sets read from CSV files, by set name
/// (inline rows carry their own). Returns every problem found, not just the first.
pub fn validate(file: &LoadTestFile, csv: &BTreeMap<String, DataShape>) -> Vec<FieldError> {
    let mut errs = Errors::default();
    if file.api_version != API_VERSION {
        errs.push(
            "apiVersion",
            format!("expected {API_VERSION:?}, found {:?}", file.api_version),
        );
    }
    if file.kind != KIND {
        errs.push("kind", format!("expected {KIND:?}, found {:?}", file.kind));
    }
    let name = &file.metadata.name;
    if name.is_empty() {
        errs.push(
            "metadata.name",
            "required: a DNS-1123 name such as `checkout-peak`",
        );
    } else if !is_dns1123(name) {
        errs.push(
            "metadata.name",
            format!("{name:?} is not a DNS-1123 name: lower-case letters, digits and '-', at most 63 characters"),
        );
    }
    validate_spec(&file.spec, csv, &mut errs);
    errs.0
}

fn is_dns1123(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn validate_spec(spec: &LoadTestSpec, csv: &BTreeMap<String, DataShape>, errs: &mut Errors) {
    let staged = !spec.stages.is_empty();
    if spec.connections == 0 && !staged {
        errs.push("spec.connections", "must be at least 1");
    }
    if staged && peak_connections(spec) == 0 {
        errs.push(
            "spec.connections",
            "no user ever runs: set connections, or a stage with connections above 0",
        );
    }
    if let Some(r) = spec.rate {
        if !r.is_finite() || r < 0.0 || (r == 0.0 && !staged) {
            let expected = if staged {
                "a number of iterations per second ≥ 0 (the rate the first stage ramps from)"
            } else {
                "a positive number of iterations per second"
            };
            errs.push("spec.rate", format!("expected {expected}, found {r}"));
        } else if staged && r == 0.0 && spec.stages.iter().all(|s| s.rate.unwrap_or(0.0) == 0.0) {
            errs.push(
                "spec.stages",
                "the rate never rises above 0: give a stage a `rate`",
            );
        }
    }
    match (&spec.duration, staged) {
        (None, false) => errs.push(
            "spec.duration",
            "required when spec.stages is absent, e.g. `30s`",
        ),
        (Some(_), true) => errs.push("spec.duration", "set either duration or stages, not both"),
        (Some(d), false) if d.as_std().is_zero() => {
            errs.push("spec.duration", "must be longer than 0s")
        }
        (Some(d), false) if d.as_std() > MAX_TEST_LENGTH => errs.push(
            "spec.duration",
            format!("expected at most 744h (31 days), found {d}"),
        ),
        _ => {}
    }
    let staged_length = spec
        .stages
        .iter()
        .map(|s| s.duration.as_std())
        .try_fold(std::time::Duration::ZERO, |a, d| a.checked_add(d));
    if staged_length.is_none_or(|l| l > MAX_TEST_LENGTH) {
        errs.push(
            "spec.stages",
            "the stages' durations add up to more than 744h (31 days), the longest test",
        );
    }
    for (i, st) in spec.stages.iter().enumerate() {
        let p = format!("spec.stages[{i}]");
        if st.duration.as_std().is_zero() {
            errs.push(format!("{p}.duration"), "must be longer than 0s");
        }
        if let Some(r) = st.rate {
            if spec.rate.is_none() {
                errs.push(
                    format!("{p}.rate"),
                    "a stage rate needs spec.rate (the open model); without spec.rate users loop closed",
                );
            } else if !(r.is_finite() && r >= 0.0) {
                errs.push(
                    format!("{p}.rate"),
                    format!("must be a number ≥ 0, found {r}"),
                );
            }
        }
        if st.rate.is_none() && st.connections.is_none() {
            errs.push(p, "a stage needs a target `rate`, `connections` or both");
        }
    }
    if let Some(at) = &spec.start_at
        && let Err(e) = crate::instant::parse_rfc3339(at)
    {
        errs.push("spec.startAt", e);
    }
    if let Some(r) = spec.connect_rate
        && !(r.is_finite() && r >= 1.0)
    {
        errs.push(
            "spec.connectRate",
            format!("expected at least 1 new connection per second, found {r}"),
        );
    }
    validate_runners(spec, errs);
    let step_names = validate_scenario(&spec.scenario, spec, csv, errs);
    for (i, t) in spec.thresholds.iter().enumerate() {
        let p = format!("spec.thresholds[{i}]");
        match Threshold::parse(t) {
            Err(e) => errs.push(p, e),
            Ok(th) => {
                if let Some(step) = &th.step
                    && !step_names.contains(step)
                {
                    errs.push(
                        p,
                        format!("no step is named {step:?}; steps: {}", quoted(&step_names)),
                    );
                }
            }
        }
    }
}

/// `runners` and `runner`: what the operator needs to place and size runner pods.
fn validate_runners(spec: &LoadTestSpec, errs: &mut Errors) {
    let peak = peak_connections(spec);
    let max = spec.max_connections_per_runner();
    if let Some(n) = spec.runners {
        if n == 0 {
            errs.push("spec.runners", "must be at least 1");
        } else if n > MAX_RUNNERS {
            errs.push(
                "spec.runners",
                format!("expected at most {MAX_RUNNERS}, found {n}"),
            );
        } else if n > peak && peak > 0 {
            errs.push(
                "spec.runners",
                format!("{n} runners for at most {peak} connections leaves a runner with no user; use at most {peak}"),
            );
        }
        if let Some(m) = max.filter(|m| *m > 0)
            && u64::from(n) * u64::from(m) < u64::from(peak)
        {
            errs.push(
                "spec.runners",
                format!("{n} runners × runner.maxConnections {m} cannot hold {peak} connections; raise either, or omit runners to derive it"),
            );
        }
    }
    let Some(runner) = &spec.runner else { return };
    if let Err((i, m)) = crate::runner_pod::expand_source_addresses(&runner.source_addresses) {
        errs.push(format!("spec.runner.sourceAddresses[{i}]"), m);
    }
    if max == Some(0) {
        errs.push("spec.runner.maxConnections", "must be at least 1");
    }
    if runner.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        errs.push(
            "spec.runner.image",
            "must not be empty; omit it for the operator's default",
        );
    }
    for (i, e) in runner.env.iter().enumerate() {
        let p = format!("spec.runner.env[{i}].name");
        let ident = !e.name.is_empty()
            && !e.name.starts_with(|c: char| c.is_ascii_digit())
            && e.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            errs.push(p, format!("{:?} is not an environment variable name (letters, digits and '_', not starting with a digit)", e.name));
        } else if e.name.starts_with("STAMPEDE_") {
            errs.push(
                p,
                format!(
                    "{:?}: names starting with STAMPEDE_ are set by the operator",
                    e.name
                ),
            );
        }
    }
    for (i, t) in runner.tolerations.iter().enumerate() {
        let p = format!("spec.runner.tolerations[{i}]");
        match t.operator.as_deref() {
            None | Some("Equal") => {}
            Some("Exists") if t.value.is_some() => {
                errs.push(format!("{p}.value"), "must be empty with operator Exists");
            }
            Some("Exists") => {}
            Some(o) => errs.push(
                format!("{p}.operator"),
                format!("expected Equal or Exists, found {o:?}"),
            ),
        }
        if let Some(e) = t.effect.as_deref()
            && !matches!(e, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            errs.push(
                format!("{p}.effect"),
                format!("expected NoSchedule, PreferNoSchedule or NoExecute, found {e:?}"),
            );
        }
    }
    if let Some(r) = &runner.resources {
        for (kind, m) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (k, v) in m {
                if !is_quantity(v) {
                    errs.push(
                        format!("spec.runner.resources.{kind}.{k}"),
                        format!("{v:?} is not a quantity such as 500m, 2 or 1Gi"),
                    );
                }
            }
        }
    }
}

/// A Kubernetes resource quantity: a decimal number with an optional binary (`Ki` … `Ei`),
/// decimal (`n`, `u`, `m`, `k`, `M` … `E`) or exponent (`e3`) suffix.
fn is_quantity(v: &str) -> bool {
    let body = v.strip_prefix(['+', '-']).unwrap_or(v);
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let number_ok = !number.is_empty() && number != "." && number.matches('.').count() <= 1;
    let exponent = |s: &str| {
        let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(exponent);
    number_ok && suffix_ok
}

fn quoted(names: &BTreeSet<String>) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What templates may refer to.
struct Scope<'a> {
    variables: BTreeSet<&'a str>,
    extracted: BTreeSet<&'a str>,
    /// Data set name → columns, when known.
    data: BTreeMap<&'a str, Option<Vec<String>>>,
}

fn validate_scenario(
    sc: &Scenario,
    spec: &LoadTestSpec,
    csv: &BTreeMap<String, DataShape>,
    errs: &mut Errors,
) -> BTreeSet<String> {
    let base = "spec.scenario";
    let kind = validate_connection(&sc.connection, errs);

    let mut scope = Scope {
        variables: BTreeSet::new(),
        extracted: BTreeSet::new(),
        data: BTreeMap::new(),
    };
    for k in sc.variables.keys() {
        if !is_name(k) {
            errs.push(
                format!("{base}.variables.{k}"),
                "variable names are letters, digits, '_' or '-'",
            );
        }
        if RESERVED_NAMES.contains(&k.as_str()) {
            errs.push(
                format!("{base}.variables.{k}"),
                format!(
                    "{k:?} is reserved for built-ins ({})",
                    RESERVED_NAMES.join(", ")
                ),
            );
        }
        scope.variables.insert(k);
    }
    for (i, d) in sc.data.iter().enumerate() {
        let p = format!("{base}.data[{i}]");
        if !is_name(&d.name) {
            errs.push(
                format!("{p}.name"),
                format!("{:?} is not a name: letters, digits, '_' or '-'", d.name),
            );
        }
        if RESERVED_NAMES.contains(&d.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                format!(
                    "{:?} is reserved for built-ins ({})",
                    d.name,
                    RESERVED_NAMES.join(", ")
                ),
            );
        }
        if scope.data.contains_key(d.name.as_str()) || scope.variables.contains(d.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                format!("{:?} is defined twice", d.name),
            );
        }
        let (cols, row_count) = match (&d.rows, &d.csv) {
            (Some(rows), None) => {
                if rows.is_empty() {
                    errs.push(format!("{p}.rows"), "needs at least one row");
                }
                let first: Vec<String> = rows
                    .first()
                    .map(|r| r.keys().cloned().collect())
                    .unwrap_or_default();
                for (j, r) in rows.iter().enumerate() {
                    if r.keys().ne(first.iter()) {
                        errs.push(
                            format!("{p}.rows[{j}]"),
                            "every row needs the same columns as the first",
                        );
                    }
                }
                (Some(first), Some(rows.len()))
            }
            (None, Some(_)) => match csv.get(&d.name) {
                Some(shape) => {
                    if shape.rows == 0 {
                        errs.push(
                            format!("{p}.csv.file"),
                            "the file has a header line but no rows",
                        );
                    }
                    (Some(shape.columns.clone()), Some(shape.rows))
                }
                None => (None, None),
            },
            _ => {
                errs.push(p.clone(), "set exactly one of `rows` or `csv`");
                (None, None)
            }
        };
        if d.pick == crate::scenario::Pick::Unique
            && let Some(rows) = row_count
            && (rows as u64) < u64::from(peak_connections(spec))
        {
            errs.push(
                format!("{p}.pick"),
                format!(
                    "`unique` gives every user a row of its own: {} rows for up to {} users",
                    rows,
                    peak_connections(spec)
                ),
            );
        }
        scope.data.insert(&d.name, cols);
    }
    let all_steps = sc.on_start.iter().chain(&sc.steps).chain(&sc.on_stop);
    for step in all_steps {
        for k in step.extract.keys() {
            scope.extracted.insert(k);
        }
    }

    if let (Some(kind), Some(headers)) = (kind, sc.connection.headers()) {
        for (k, v) in headers {
            check_template(
                &format!("{base}.connection.{}.headers.{k}", kind.field()),
                v,
                &scope,
                errs,
            );
        }
    }
    if sc.steps.is_empty() {
        errs.push(format!("{base}.steps"), "needs at least one step");
    }
    let mut names = BTreeSet::new();
    for (list, key) in [
        (&sc.on_start, "onStart"),
        (&sc.steps, "steps"),
        (&sc.on_stop, "onStop"),
    ] {
        for (i, step) in list.iter().enumerate() {
            let p = format!("{base}.{key}[{i}]");
            validate_step(&p, step, kind, &scope, errs);
            if let Some(n) = step_name(step) {
                names.insert(n);
            }
        }
    }
    names
}

const KINDS: &str = "http, http2, websocket, tcp, udp";

/// Checks the one connection kind and its options; returns it when exactly one is set.
fn validate_connection(c: &Connection, errs: &mut Errors) -> Option<ConnectionKind> {
    let p = "spec.scenario.connection";
    let kinds = c.kinds();
    let kind = match kinds.as_slice() {
        [] => {
            errs.push(
                p,
                format!("set exactly one connection kind; available: {KINDS}"),
            );
            return None;
        }
        [k] => *k,
        many => {
            let names: Vec<&str> = many.iter().map(|k| k.field()).collect();
            errs.push(
                p,
                format!(
                    "set exactly one connection kind, found {}",
                    names.join(" and ")
                ),
            );
            return None;
        }
    };
    let kp = format!("{p}.{}", kind.field());
    let timeout = |t: Option<crate::Duration>, errs: &mut Errors| {
        if t.is_some_and(|t| t.as_std().is_zero()) {
            errs.push(format!("{kp}.connectTimeout"), "must be longer than 0s");
        }
    };
    match kind {
        ConnectionKind::Http => {
            let h = c.http.as_ref().expect("kind says set");
            check_url(&kp, &h.url, &["http", "https"], false, h.tls.as_ref(), errs);
            timeout(h.connect_timeout, errs);
            check_headers(&kp, &h.headers, &[], errs);
        }
        ConnectionKind::Http2 => {
            let h = c.http2.as_ref().expect("kind says set");
            check_url(&kp, &h.url, &["http", "https"], false, h.tls.as_ref(), errs);
            timeout(h.connect_timeout, errs);
            check_headers(&kp, &h.headers, &[], errs);
            if let Some(n) = h.streams
                && !(1..=1000).contains(&n)
            {
                errs.push(
                    format!("{kp}.streams"),
                    format!("expected 1 to 1000, found {n}"),
                );
            }
        }
        ConnectionKind::WebSocket => {
            let w = c.websocket.as_ref().expect("kind says set");
            check_url(&kp, &w.url, &["ws", "wss"], true, w.tls.as_ref(), errs);
            timeout(w.connect_timeout, errs);
            check_headers(
                &kp,
                &w.headers,
                &[
                    "host",
                    "upgrade",
                    "connection",
                    "sec-websocket-key",
                    "sec-websocket-version",
                    "sec-websocket-extensions",
                ],
                errs,
            );
            if let Some(h) = &w.heartbeat {
                let hp = format!("{kp}.heartbeat");
                if h.every.as_std().is_zero() {
                    errs.push(format!("{hp}.every"), "must be longer than 0s");
                }
                match (&h.text, h.ping) {
                    (Some(t), false) if t.len() > 125 => errs.push(
                        format!("{hp}.text"),
                        format!(
                            "at most 125 bytes, found {}: a heartbeat is a small frame",
                            t.len()
                        ),
                    ),
                    (Some(_), false) | (None, true) => {}
                    _ => errs.push(hp, "set exactly one of `text` or `ping: true`"),
                }
            }
        }
        ConnectionKind::Tcp => {
            let t = c.tcp.as_ref().expect("kind says set");
            check_address(&format!("{kp}.address"), &t.address, errs);
            timeout(t.connect_timeout, errs);
            if let Some(tls) = &t.tls {
                check_tls(&format!("{kp}.tls"), tls, errs);
            }
        }
        ConnectionKind::Udp => {
            let u = c.udp.as_ref().expect("kind says set");
            check_address(&format!("{kp}.address"), &u.address, errs);
        }
    }
    Some(kind)
}

fn check_url(
    kp: &str,
    url: &str,
    schemes: &[&str],
    query_ok: bool,
    tls: Option<&Tls>,
    errs: &mut Errors,
) {
    let p = format!("{kp}.url");
    match url::Url::parse(url) {
        Err(e) => errs.push(p, format!("not a URL ({e}): {url:?}")),
        Ok(u) if !schemes.contains(&u.scheme()) => errs.push(
            p,
            format!(
                "expected a URL starting with {}, found scheme {:?}",
                schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                u.scheme()
            ),
        ),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => errs.push(p, "the URL needs a host"),
        Ok(u) if u.fragment().is_some() || (!query_ok && u.query().is_some()) => errs.push(
            p,
            if query_ok {
                "the URL cannot carry a fragment"
            } else {
                "the base URL cannot carry a query or fragment; put them in request paths"
            },
        ),
        Ok(u) => {
            let secure = matches!(u.scheme(), "https" | "wss");
            if let Some(t) = tls {
                if !secure {
                    errs.push(
                        format!("{kp}.tls"),
                        format!(
                            "the URL is {}://, which does not use TLS; use {}://",
                            u.scheme(),
                            if u.scheme() == "ws" { "wss" } else { "https" }
                        ),
                    );
                }
                check_tls(&format!("{kp}.tls"), t, errs);
            }
        }
    }
}

fn check_tls(p: &str, t: &Tls, errs: &mut Errors) {
    if let Some(n) = &t.server_name
        && rustls_name_invalid(n)
    {
        errs.push(
            format!("{p}.serverName"),
            format!("{n:?} is not a DNS name or IP address"),
        );
    }
    match (&t.cert, &t.key) {
        (Some(_), None) => errs.push(
            format!("{p}.key"),
            "required with cert: mutual TLS needs the certificate's private key",
        ),
        (None, Some(_)) => errs.push(
            format!("{p}.cert"),
            "required with key: mutual TLS needs the certificate the key belongs to",
        ),
        _ => {}
    }
    if t.ca.is_some() && t.insecure_skip_verify {
        errs.push(
            format!("{p}.ca"),
            "set either ca or insecureSkipVerify: with insecureSkipVerify no certificate is checked, so ca would never be used",
        );
    }
    for (field, v) in [("ca", &t.ca), ("cert", &t.cert), ("key", &t.key)] {
        if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
            errs.push(
                format!("{p}.{field}"),
                "expected PEM text or the name of a PEM file, found an empty string",
            );
        }
    }
}

/// Whether `n` cannot be a TLS server name (a DNS name or an IP address).
fn rustls_name_invalid(n: &str) -> bool {
    if n.parse::<std::net::IpAddr>().is_ok() {
        return false;
    }
    n.is_empty()
        || n.len() > 253
        || n.split('.').any(|label| {
            label.is_empty()
                || label.len() > 63
                || !label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `host:port`, with the host a name or an IP address (IPv6 in brackets).
fn check_address(p: &str, a: &str, errs: &mut Errors) {
    let ok = match a.rsplit_once(':') {
        Some((host, port)) => {
            let host_ok = if let Some(inner) = host.strip_prefix('[') {
                inner
                    .strip_suffix(']')
                    .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
            } else {
                !host.is_empty() && !host.contains(':')
            };
            host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    };
    if !ok {
        errs.push(
            p,
            format!("expected host:port such as 10.0.0.5:7000 or [::1]:7000, found {a:?}"),
        );
    }
}

fn check_headers(
    kp: &str,
    headers: &BTreeMap<String, String>,
    reserved: &[&str],
    errs: &mut Errors,
) {
    for (k, v) in headers {
        let hp = format!("{kp}.headers.{k}");
        check_header(&hp, k, v, errs);
        if reserved.contains(&k.to_ascii_lowercase().as_str()) {
            errs.push(hp, format!("{k:?} is set by the handshake itself"));
        }
    }
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

fn validate_step(
    p: &str,
    step: &Step,
    kind: Option<ConnectionKind>,
    scope: &Scope,
    errs: &mut Errors,
) {
    if let Some(n) = &step.name
        && (n.is_empty() || n.len() > 128 || n.chars().any(char::is_control))
    {
        errs.push(
            format!("{p}.name"),
            "a step name is 1 to 128 printable characters",
        );
    }
    use ConnectionKind::*;
    let http = matches!(kind, Some(Http | Http2));
    let actions = [
        step.request.is_some(),
        step.send.is_some() || step.expect.is_some(),
        step.listen.is_some(),
        step.think.is_some(),
    ];
    if actions.iter().filter(|a| **a).count() != 1 {
        errs.push(
            p,
            "a step is exactly one of `request`, `send` (optionally with `expect`), `expect`, `listen` or `think`",
        );
        return;
    }
    // What the kind supports, named in the error.
    let supported = match kind {
        Some(Http | Http2) => "`request` and `think`",
        Some(WebSocket) => "`send`, `expect`, `listen` and `think`",
        Some(Tcp | Udp) => "`send`, `expect` and `think`",
        None => "",
    };
    let refuse = |field: &str, errs: &mut Errors| {
        if let Some(k) = kind {
            errs.push(
                format!("{p}.{field}"),
                format!("{} connections take {supported} steps", k.field()),
            );
        }
    };
    if let Some(r) = &step.request {
        if kind.is_some() && !http {
            refuse("request", errs);
        }
        validate_request(&format!("{p}.request"), r, scope, errs);
    }
    if let Some(m) = &step.send {
        if http {
            refuse("send", errs);
        }
        validate_payload(&format!("{p}.send"), m, scope, errs);
    }
    if let Some(e) = &step.expect {
        if http {
            refuse("expect", errs);
        }
        validate_expect(&format!("{p}.expect"), e, kind, errs);
    }
    if let Some(l) = &step.listen {
        if kind.is_some() && kind != Some(WebSocket) {
            refuse("listen", errs);
        }
        if l.duration.as_std().is_zero() {
            errs.push(format!("{p}.listen.duration"), "must be longer than 0s");
        }
        if let Some(tp) = &l.timestamp_path {
            check_json_path(&format!("{p}.listen.timestampPath"), tp, errs);
        }
        if !step.extract.is_empty() || step.check.is_some() {
            errs.push(
                p,
                "a listen step records what is pushed; it takes no `extract` or `check`",
            );
        }
    }
    if let Some(t) = &step.think {
        if step.name.is_some() || !step.extract.is_empty() || step.check.is_some() {
            errs.push(p, "a think step takes no name, extract or check");
        }
        if t.as_std().is_zero() {
            errs.push(format!("{p}.think"), "must be longer than 0s");
        }
    }
    // Only what arrives can be extracted from or checked.
    let receives = step.request.is_some() || step.expect.is_some() || step.listen.is_some();
    if !receives && step.send.is_some() && (step.check.is_some() || !step.extract.is_empty()) {
        errs.push(
            p,
            "`check` and `extract` judge what arrives: add an `expect` to this send",
        );
    }
    if !http && step.check.as_ref().is_some_and(|c| c.status.is_some()) {
        errs.push(format!("{p}.check.status"), "only HTTP has status codes");
    }
    if !http {
        for (k, rule) in &step.extract {
            if let Extract::Rule(r) = rule
                && r.header.is_some()
            {
                errs.push(
                    format!("{p}.extract.{k}.header"),
                    "only HTTP responses have headers; use `jsonPath` or `regex`",
                );
            }
        }
    }
    for (k, rule) in &step.extract {
        let ep = format!("{p}.extract.{k}");
        if !is_name(k) {
            errs.push(&ep, "extracted names are letters, digits, '_' or '-'");
        }
        if scope.variables.contains(k.as_str())
            || scope.data.contains_key(k.as_str())
            || RESERVED_NAMES.contains(&k.as_str())
        {
            errs.push(
                &ep,
                format!("{k:?} already names a variable, data set or built-in"),
            );
        }
        match rule {
            Extract::JsonPath(path) => check_json_path(&ep, path, errs),
            Extract::Rule(r) => match (&r.json_path, &r.header, &r.regex) {
                (Some(jp), None, None) => check_json_path(&format!("{ep}.jsonPath"), jp, errs),
                (None, _, Some(re)) => check_regex(&format!("{ep}.regex"), re, errs),
                (None, Some(_), None) => {}
                _ => errs.push(
                    &ep,
                    "set `jsonPath`, or `regex`, or `header` (optionally with `regex`)",
                ),
            },
        }
    }
    if let Some(c) = &step.check {
        validate_check(&format!("{p}.check"), c, errs);
    }
}

fn validate_payload(p: &str, m: &Payload, scope: &Scope, errs: &mut Errors) {
    match (&m.text, &m.json, &m.base64) {
        (Some(t), None, None) => check_template(&format!("{p}.text"), t, scope, errs),
        (None, Some(j), None) => check_json_templates(&format!("{p}.json"), j, scope, errs),
        (None, None, Some(b)) => {
            if crate::base64_decode(b).is_none() {
                errs.push(format!("{p}.base64"), "not valid base64");
            }
        }
        _ => errs.push(p, "set exactly one of `text`, `json` or `base64`"),
    }
}

fn validate_expect(p: &str, e: &Expect, kind: Option<ConnectionKind>, errs: &mut Errors) {
    use ConnectionKind::*;
    if let Some(t) = e.timeout
        && t.as_std().is_zero()
    {
        errs.push(format!("{p}.timeout"), "must be longer than 0s");
    }
    if let Some(re) = &e.regex {
        check_regex(&format!("{p}.regex"), re, errs);
    }
    for k in e.json_path.keys() {
        check_json_path(&format!("{p}.jsonPath.{k}"), k, errs);
    }
    if let Some(b) = &e.base64
        && crate::base64_decode(b).is_none()
    {
        errs.push(format!("{p}.base64"), "not valid base64");
    }
    if let Some(n) = e.length_prefix
        && !matches!(n, 1 | 2 | 4 | 8)
    {
        errs.push(
            format!("{p}.lengthPrefix"),
            format!("expected 1, 2, 4 or 8 bytes, found {n}"),
        );
    }
    if e.delimiter.as_deref() == Some("") {
        errs.push(format!("{p}.delimiter"), "must not be empty");
    }
    let matching = [
        ("text", e.text.is_some()),
        ("contains", e.contains.is_some()),
        ("jsonPath", !e.json_path.is_empty()),
        ("base64", e.base64.is_some()),
    ];
    let framing = [
        ("delimiter", e.delimiter.is_some()),
        ("lengthPrefix", e.length_prefix.is_some()),
    ];
    match kind {
        Some(WebSocket) => {
            for (f, set) in framing {
                if set {
                    errs.push(
                        format!("{p}.{f}"),
                        "WebSocket frames its own messages; `delimiter` and `lengthPrefix` are for tcp",
                    );
                }
            }
        }
        Some(Tcp) => {
            for (f, set) in matching {
                if set {
                    errs.push(
                        format!("{p}.{f}"),
                        "on tcp, `expect` says where the reply ends; judge it with `check` (bodyContains, jsonPath)",
                    );
                }
            }
            let ends = framing.iter().filter(|(_, s)| *s).count() + usize::from(e.regex.is_some());
            if ends != 1 {
                errs.push(
                    p,
                    "a tcp reply needs exactly one of `delimiter`, `lengthPrefix` or `regex` to say where it ends",
                );
            }
        }
        Some(Udp) => {
            for (f, set) in matching
                .into_iter()
                .chain(framing)
                .chain([("regex", e.regex.is_some())])
            {
                if set {
                    errs.push(
                        format!("{p}.{f}"),
                        "on udp the next datagram is the reply; judge it with `check`",
                    );
                }
            }
        }
        _ => {}
    }
}

fn check_json_path(p: &str, path: &str, errs: &mut Errors) {
    if let Err(e) = serde_json_path::JsonPath::parse(path) {
        errs.push(p, format!("not a JSONPath ({e}): {path:?}"));
    }
}

fn check_regex(p: &str, re: &str, errs: &mut Errors) {
    if let Err(e) = regex::Regex::new(re) {
        errs.push(p, format!("not a regular expression: {e}"));
    }
}

fn check_header(p: &str, name: &str, value: &str, errs: &mut Errors) {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        errs.push(p, format!("{name:?} is not a valid header name"));
    }
    if value.contains(['\r', '\n']) {
        errs.push(p, "header values cannot contain line breaks");
    }
}

fn validate_request(p: &str, r: &Request, scope: &Scope, errs: &mut Errors) {
    if r.method.is_empty() || !r.method.bytes().all(|b| b.is_ascii_uppercase()) {
        errs.push(
            format!("{p}.method"),
            format!(
                "expected an upper-case HTTP method such as GET or POST, found {:?}",
                r.method
            ),
        );
    }
    if !(r.path.starts_with('/') || r.path.starts_with("{{")) {
        errs.push(
            format!("{p}.path"),
            format!("must start with '/', found {:?}", r.path),
        );
    }
    let literal_has_space = Template::parse(&r.path).is_ok_and(|t| {
        t.parts
            .iter()
            .any(|part| matches!(part, Part::Text(s) if s.contains([' ', '\r', '\n'])))
    });
    if literal_has_space {
        errs.push(
            format!("{p}.path"),
            "cannot contain spaces or line breaks; encode them as %20",
        );
    }
    check_template(&format!("{p}.path"), &r.path, scope, errs);
    for (k, v) in &r.query {
        check_template(&format!("{p}.query.{k}"), v, scope, errs);
    }
    for (k, v) in &r.headers {
        check_header(&format!("{p}.headers.{k}"), k, v, errs);
        check_template(&format!("{p}.headers.{k}"), v, scope, errs);
    }
    match (&r.body, &r.json) {
        (Some(_), Some(_)) => errs.push(p, "set `body` or `json`, not both"),
        (Some(b), None) => check_template(&format!("{p}.body"), b, scope, errs),
        (None, Some(j)) => check_json_templates(&format!("{p}.json"), j, scope, errs),
        (None, None) => {}
    }
    if let Some(t) = r.timeout
        && t.as_std().is_zero()
    {
        errs.push(format!("{p}.timeout"), "must be longer than 0s");
    }
}

fn check_json_templates(p: &str, v: &serde_json::Value, scope: &Scope, errs: &mut Errors) {
    match v {
        serde_json::Value::String(s) => check_template(p, s, scope, errs),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                check_json_templates(&format!("{p}[{i}]"), x, scope, errs);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                check_json_templates(&format!("{p}.{k}"), x, scope, errs);
            }
        }
        _ => {}
    }
}

fn check_template(p: &str, src: &str, scope: &Scope, errs: &mut Errors) {
    let t = match Template::parse(src) {
        Ok(t) => t,
        Err(e) => return errs.push(p, e.0),
    };
    for part in &t.parts {
        let Part::Expr(crate::template::Expr::Name(segs)) = part else {
            continue;
        };
        if let Err(msg) = resolve(segs, scope) {
            errs.push(p, msg);
        }
    }
}

fn resolve(segs: &[String], scope: &Scope) -> Result<(), String> {
    let joined = segs.join(".");
    if BUILTIN_NAMES.contains(&joined.as_str()) {
        return Ok(());
    }
    match segs {
        [one]
            if scope.variables.contains(one.as_str()) || scope.extracted.contains(one.as_str()) =>
        {
            Ok(())
        }
        [set] if scope.data.contains_key(set.as_str()) => Err(format!(
            "`{set}` is a data set: name a column, as in `{set}.column`"
        )),
        [set, col] if scope.data.contains_key(set.as_str()) => match &scope.data[set.as_str()] {
            Some(cols) if !cols.contains(col) => Err(format!(
                "data set `{set}` has no column `{col}`; columns: {}",
                cols.join(", ")
            )),
            _ => Ok(()),
        },
        _ => {
            let mut known: Vec<String> = BUILTIN_NAMES.iter().map(|s| s.to_string()).collect();
            known.extend(scope.variables.iter().map(|s| s.to_string()));
            known.extend(scope.extracted.iter().map(|s| s.to_string()));
            known.extend(scope.data.keys().map(|s| format!("{s}.<column>")));
            Err(format!(
                "unknown name `{joined}` in template; known names: {}",
                known.join(", ")
            ))
        }
    }
}

fn validate_check(p: &str, c: &Check, errs: &mut Errors) {
    if let Some(s) = &c.status {
        if s.codes().is_empty() {
            errs.push(format!("{p}.status"), "list at least one status code");
        }
        for code in s.codes() {
            if !(100..=599).contains(code) {
                errs.push(
                    format!("{p}.status"),
                    format!("{code} is not an HTTP status (100–599)"),
                );
            }
        }
    }
    for k in c.json_path.keys() {
        check_json_path(&format!("{p}.jsonPath.{k}"), k, errs);
    }
    if let Some(m) = c.max_latency
        && m.as_std().is_zero()
    {
        errs.push(format!("{p}.maxLatency"), "must be longer than 0s");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_checked_as_kubernetes_reads_them() {
        for ok in [
            "2",
            "500m",
            "1Gi",
            "0.5",
            "1.5G",
            "1e3",
            "128974848",
            "+1k",
            "100Mi",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["lots", "", "Gi", "1GB", "1.2.3", "1e", "1 Gi", "-", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
