//! Field rules every part of the schema uses: the error list, and the rules for URLs, addresses,
//! TLS blocks, methods, headers, base64, JSONPaths and regular expressions. Each `parse_…`
//! returns the value the runner compiles, or what is wrong with it; the `check_…` functions
//! push that error at the field's path. The kinds' own modules call them; they know nothing
//! of kinds.

use std::collections::BTreeMap;

use serde_json_path::JsonPath;

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

    /// The value, or `None` with its error pushed.
    pub fn ok<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }
}

/// A zero `connectTimeout` is refused.
pub fn check_connect_timeout(kp: &str, t: Option<crate::Duration>, errs: &mut Errors) {
    if t.is_some_and(|t| t.as_std().is_zero()) {
        errs.push(format!("{kp}.connectTimeout"), "must be longer than 0s");
    }
}

/// A URL of one of `schemes`, with a host, without a fragment, and without a query unless
/// `query_ok`.
pub fn parse_url(url: &str, schemes: &[&str], query_ok: bool) -> Result<url::Url, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL ({e}): {url:?}"))?;
    if !schemes.contains(&u.scheme()) {
        return Err(format!(
            "expected a URL starting with {}, found scheme {:?}",
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or "),
            u.scheme()
        ));
    }
    url_host(&u)?;
    if u.fragment().is_some() || (!query_ok && u.query().is_some()) {
        return Err(if query_ok {
            "the URL cannot carry a fragment".into()
        } else {
            "the base URL cannot carry a query or fragment; put them in request paths".into()
        });
    }
    Ok(u)
}

/// A URL's host, which it needs.
pub fn url_host(u: &url::Url) -> Result<&str, String> {
    u.host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "the URL needs a host".into())
}

/// The host and port users of a URL connect to: the port it names, else `default`, else
/// its scheme's well-known one.
pub fn url_host_port(u: &url::Url, default: Option<u16>) -> Result<(String, u16), String> {
    let host = url_host(u)?.to_string();
    let port = u
        .port()
        .or(default)
        .or_else(|| u.port_or_known_default())
        .ok_or_else(|| format!("no default port for {}://", u.scheme()))?;
    Ok((host, port))
}

/// Checks a kind's parsed `url` at `kp.url`, and its `tls` block against the scheme.
pub fn check_url(kp: &str, url: Result<url::Url, String>, tls: Option<&Tls>, errs: &mut Errors) {
    let u = match url {
        Err(m) => return errs.push(format!("{kp}.url"), m),
        Ok(u) => u,
    };
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

pub fn check_tls(p: &str, t: &Tls, errs: &mut Errors) {
    if let Some(n) = &t.server_name
        && rustls_name_invalid(n)
    {
        errs.push(
            format!("{p}.serverName"),
            format!("{n:?} is not a DNS name or IP address"),
        );
    }
    use crate::scenario::tls::PemField;
    match (t.pem(PemField::Cert), t.pem(PemField::Key)) {
        (Some((cert, _)), None) => errs.push(
            format!("{p}.key"),
            format!(
                "required with {cert}: mutual TLS needs the certificate's private key (key or keyFrom)"
            ),
        ),
        (None, Some((key, _))) => errs.push(
            format!("{p}.cert"),
            format!(
                "required with {key}: mutual TLS needs the certificate the key belongs to (cert or certFrom)"
            ),
        ),
        _ => {}
    }
    if let Some((ca, _)) = t.pem(PemField::Ca)
        && t.insecure_skip_verify
    {
        errs.push(
            format!("{p}.{ca}"),
            format!("set either {ca} or insecureSkipVerify: with insecureSkipVerify no certificate is checked, so {ca} would never be used"),
        );
    }
    for f in PemField::ALL {
        let (given, from) = t.sources(f);
        let (name, from_name) = (f.name(), f.from_name());
        if given.is_some_and(|v| v.trim().is_empty()) {
            errs.push(
                format!("{p}.{name}"),
                "expected PEM text or the name of a PEM file, found an empty string",
            );
        }
        if given.is_some() && from.is_some() {
            errs.push(
                format!("{p}.{from_name}"),
                format!("set either {name} or {from_name}, not both"),
            );
        }
        for (sub, message) in from.map(|v| v.problems()).unwrap_or_default() {
            let path = match sub {
                "" => format!("{p}.{from_name}"),
                sub => format!("{p}.{from_name}.{sub}"),
            };
            errs.push(path, message);
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

/// `host:port`, with the host a name or an IP address (IPv6 in brackets, kept): the host and
/// the port.
pub fn parse_address(a: &str) -> Result<(String, u16), String> {
    let parsed = a.rsplit_once(':').and_then(|(host, port)| {
        let host_ok = if let Some(inner) = host.strip_prefix('[') {
            inner
                .strip_suffix(']')
                .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
        } else {
            !host.is_empty() && !host.contains(':')
        };
        let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
        host_ok.then(|| (host.to_string(), port))
    });
    parsed.ok_or_else(|| {
        format!("expected host:port such as 10.0.0.5:7000 or [::1]:7000, found {a:?}")
    })
}

pub fn check_headers(
    kp: &str,
    headers: &BTreeMap<String, String>,
    reserved: &[&str],
    errs: &mut Errors,
) {
    for (k, v) in headers {
        let hp = format!("{kp}.headers.{k}");
        errs.ok(header(&hp, k, v));
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

/// A JSONPath, compiled.
pub fn parse_json_path(path: &str) -> Result<JsonPath, String> {
    JsonPath::parse(path).map_err(|e| format!("not a JSONPath ({e}): {path:?}"))
}

/// A `jsonPath` map (JSONPath → expected value) at `p` (its errors at `p.jsonPath.<path>`),
/// compiled.
pub fn json_path_map(
    p: &str,
    map: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<(JsonPath, serde_json::Value)>, FieldError> {
    map.iter()
        .map(|(k, v)| {
            parse_json_path(k)
                .map(|jp| (jp, v.clone()))
                .map_err(FieldError::at(format!("{p}.jsonPath.{k}")))
        })
        .collect()
}

/// A regular expression, compiled to match bytes (replies need not be UTF-8).
pub fn parse_regex(re: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(re).map_err(|e| format!("not a regular expression: {e}"))
}

/// Base64 (standard alphabet, padding optional), decoded.
pub fn parse_base64(b: &str) -> Result<Vec<u8>, String> {
    crate::base64_decode(b).ok_or_else(|| "not valid base64".into())
}

/// An HTTP method as written: upper-case letters.
pub fn parse_method(m: &str) -> Result<&str, String> {
    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "expected an upper-case HTTP method such as GET or POST, found {m:?}"
        ));
    }
    Ok(m)
}

/// A header at `p`: its name a token, its value (a template) without line breaks.
pub fn header(p: &str, name: &str, value: &str) -> Result<(), FieldError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(FieldError::new(
            p,
            format!("{name:?} is not a valid header name"),
        ));
    }
    if value.contains(['\r', '\n']) {
        return Err(FieldError::new(
            p,
            "header values cannot contain line breaks",
        ));
    }
    Ok(())
}
