//! The `http` connection kind (HTTP/1.1 with keep-alive): its options and their rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::scenario::kind::{KindOptions, Target};
use crate::scenario::step::Action;
use crate::scenario::tls::Tls;
use crate::validate::fields::{
    Errors, check_connect_timeout, check_headers, check_url, parse_url, url_host_port,
};

/// An HTTP connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConnection {
    /// Base URL, e.g. `http://shop:8080` or `https://shop`. Request paths are appended to it.
    pub url: String,
    /// Protocol version: `http1`. For HTTP/2 use the `http2` connection kind.
    #[serde(default)]
    pub version: HttpVersion,
    /// How long opening the connection (TCP, and TLS for `https://`) may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Headers sent with every request (a request's own headers override them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// TLS settings for an `https://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// HTTP protocol version.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum HttpVersion {
    #[default]
    Http1,
}

impl HttpConnection {
    /// The base URL: `http://` or `https://`, with a host, no query or fragment.
    pub fn parsed_url(&self) -> Result<url::Url, String> {
        parse_url(&self.url, &["http", "https"], false)
    }
}

impl KindOptions for HttpConnection {
    fn actions(&self) -> &'static [Action] {
        &[Action::Request]
    }

    fn validate(&self, kp: &str, errs: &mut Errors) {
        check_url(kp, self.parsed_url(), self.tls.as_ref(), errs);
        check_connect_timeout(kp, self.connect_timeout, errs);
        check_headers(kp, &self.headers, &[], errs);
    }

    fn target(&self) -> Target<'_> {
        Target::url(
            &self.url,
            &["https"],
            self.tls.as_ref(),
            &[b"http/1.1"],
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
