//! The `websocket` connection kind (RFC 6455): its options and their rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::scenario::kind::{KindOptions, Target};
use crate::scenario::step::{Action, Step};
use crate::scenario::tls::Tls;
use crate::validate::fields::{
    Errors, check_connect_timeout, check_headers, check_url, parse_url, url_host_port,
};

/// A WebSocket connection (RFC 6455).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebSocketConnection {
    /// `ws://host:port/path` or `wss://…` (TLS). The query string is kept.
    pub url: String,
    /// Headers sent with the opening handshake, e.g. a cookie or `Authorization`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How long opening the connection, handshake included, may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// A message (or ping) every user sends on a fixed interval while connected, as chat and
    /// live-room clients do to keep their connection alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
    /// TLS settings for a `wss://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// A WebSocket heartbeat: `text` or `ping`, every `every`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Heartbeat {
    /// The interval, e.g. `30s`.
    pub every: Duration,
    /// Send this text message, e.g. `"0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Send a WebSocket ping frame instead of a message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ping: bool,
}

impl WebSocketConnection {
    /// The URL: `ws://` or `wss://`, with a host and no fragment (the query is kept).
    pub fn parsed_url(&self) -> Result<url::Url, String> {
        parse_url(&self.url, &["ws", "wss"], true)
    }
}

impl KindOptions for WebSocketConnection {
    fn actions(&self) -> &'static [Action] {
        &[Action::Send, Action::Expect, Action::Listen]
    }

    fn validate(&self, kp: &str, errs: &mut Errors) {
        check_url(kp, self.parsed_url(), self.tls.as_ref(), errs);
        check_connect_timeout(kp, self.connect_timeout, errs);
        check_headers(
            kp,
            &self.headers,
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
        if let Some(h) = &self.heartbeat {
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

    fn validate_step(&self, p: &str, step: &Step, errs: &mut Errors) {
        let Some(e) = &step.expect else { return };
        // What chooses the message, as the runner's matcher compiles it.
        let ep = format!("{p}.expect");
        errs.ok(e.parsed_regex(&ep));
        errs.ok(e.parsed_json_paths(&ep));
        errs.ok(e.parsed_base64(&ep));
        for (f, set) in [
            ("delimiter", e.delimiter.is_some()),
            ("lengthPrefix", e.length_prefix.is_some()),
        ] {
            if set {
                errs.push(
                    format!("{p}.expect.{f}"),
                    "WebSocket frames its own messages; `delimiter` and `lengthPrefix` are for tcp",
                );
            }
        }
    }

    fn target(&self) -> Target<'_> {
        Target::url(
            &self.url,
            &["wss"],
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
}
