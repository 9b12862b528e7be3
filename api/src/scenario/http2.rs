//! The `http2` connection kind: its options and their rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::scenario::kind::{KindOptions, Target};
use crate::scenario::step::Action;
use crate::scenario::tls::Tls;
use crate::validate::fields::{
    Errors, check_connect_timeout, check_headers, check_url, parse_url, url_host_port,
};

/// An HTTP/2 connection: cleartext with prior knowledge for `http://`, TLS with ALPN `h2` for
/// `https://`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http2Connection {
    /// Base URL, e.g. `https://api:8443`. Request paths are appended to it.
    pub url: String,
    /// Concurrent streams per connection: each connection carries this many users, each with
    /// its own requests in flight. `connections` counts users, so a test opens
    /// about connections / streams connections (each worker thread of a runner rounds its own
    /// share up). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 1000)))]
    pub streams: Option<u32>,
    /// How long opening the connection may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Headers sent with every request (a request's own headers override them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// TLS settings for an `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

impl Http2Connection {
    /// The base URL: `http://` or `https://`, with a host, no query or fragment.
    pub fn parsed_url(&self) -> Result<url::Url, String> {
        parse_url(&self.url, &["http", "https"], false)
    }
}

impl KindOptions for Http2Connection {
    fn actions(&self) -> &'static [Action] {
        &[Action::Request]
    }

    fn validate(&self, kp: &str, errs: &mut Errors) {
        check_url(kp, self.parsed_url(), self.tls.as_ref(), errs);
        check_connect_timeout(kp, self.connect_timeout, errs);
        check_headers(kp, &self.headers, &[], errs);
        if let Some(n) = self.streams
            && !(1..=1000).contains(&n)
        {
            errs.push(
                format!("{kp}.streams"),
                format!("expected 1 to 1000, found {n}"),
            );
        }
    }

    fn target(&self) -> Target<'_> {
        Target::url(
            &self.url,
            &["https"],
            self.tls.as_ref(),
            &[b"h2"],
            self.connect_timeout,
        )
    }

    fn host_port(&self) -> Result<(String, u16), String> {
        url_host_port(&self.parsed_url()?, None)
    }

    fn headers(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.headers)
    }

    fn is_http(&self) -> bool {
        true
    }
}
