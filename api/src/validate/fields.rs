//! Field rules every part of the schema uses: the error list, and checks of URLs, addresses,
//! TLS blocks, headers, JSONPaths and regular expressions. The kinds' own modules call them;
//! they know nothing of kinds.

use std::collections::BTreeMap;

use crate::scenario::tls::Tls;
use crate::validate::FieldError;

/// The problems found so far.
#[derive(Default)]
pub struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// A zero `connectTimeout` is refused.
pub fn check_connect_timeout(kp: &str, t: Option<crate::Duration>, errs: &mut Errors) {
    if t.is_some_and(|t| t.as_std().is_zero()) {
        errs.push(format!("{kp}.connectTimeout"), "must be longer than 0s");
    }
}

pub fn check_url(
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

pub fn check_tls(p: &str, t: &Tls, errs: &mut Errors) {
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
pub fn rustls_name_invalid(n: &str) -> bool {
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
pub fn check_address(p: &str, a: &str, errs: &mut Errors) {
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

pub fn check_headers(
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

pub fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

pub fn check_json_path(p: &str, path: &str, errs: &mut Errors) {
    if let Err(e) = serde_json_path::JsonPath::parse(path) {
        errs.push(p, format!("not a JSONPath ({e}): {path:?}"));
    }
}

pub fn check_regex(p: &str, re: &str, errs: &mut Errors) {
    if let Err(e) = regex::Regex::new(re) {
        errs.push(p, format!("not a regular expression: {e}"));
    }
}

pub fn check_header(p: &str, name: &str, value: &str, errs: &mut Errors) {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        errs.push(p, format!("{name:?} is not a valid header name"));
    }
    if value.contains(['\r', '\n']) {
        errs.push(p, "header values cannot contain line breaks");
    }
}
