//! What every connection kind's options say about themselves: where users connect, the
//! steps the kind takes, and the rules its options and steps follow. Each kind's module
//! implements `KindOptions`; `validate` and the runner's endpoint go through it and never name
//! a kind.

use std::collections::BTreeMap;

use crate::duration::Duration;
use crate::scenario::step::{Action, Step};
use crate::scenario::tls::Tls;
use crate::validate::fields::Errors;

pub trait KindOptions {
    /// The actions its steps take besides `think`.
    fn actions(&self) -> &'static [Action];

    /// Checks the options at `kp` (`spec.scenario.connection.<kind>`).
    fn validate(&self, kp: &str, errs: &mut Errors);

    /// Rules of its own for step `step` at `p`, after the shared ones (what an `expect`
    /// means on this kind, say).
    fn validate_step(&self, p: &str, step: &Step, errs: &mut Errors) {
        let _ = (p, step, errs);
    }

    /// Where and how users connect.
    fn target(&self) -> Target<'_>;

    /// The host and port users connect to, or what is wrong with the `url` or `address` that
    /// names them (the error `validate` reports there).
    fn host_port(&self) -> Result<(String, u16), String>;

    /// Headers sent with every request or handshake, which may hold templates.
    fn headers(&self) -> Option<&BTreeMap<String, String>> {
        None
    }

    /// The types its replies have, for `check.replyType`; none for untyped replies.
    fn reply_types(&self) -> &'static [&'static str] {
        &[]
    }

    /// Replies have HTTP status codes and headers (`check.status`, `extract.header`).
    fn is_http(&self) -> bool {
        false
    }
}

/// Where and how a kind's users connect.
pub struct Target<'a> {
    /// A URL or `host:port` (`KindOptions::host_port` reads it).
    pub address: &'a str,
    pub is_url: bool,
    /// TLS is on (`https://`, `wss://`, a `tls` block on tcp), with these settings.
    pub tls: Option<Tls>,
    /// The TLS block as written, if any (what a cluster may not name files in).
    pub tls_block: Option<&'a Tls>,
    /// ALPN protocols offered in the TLS handshake.
    pub alpn: &'static [&'static [u8]],
    pub connect_timeout: Option<Duration>,
}

impl<'a> Target<'a> {
    /// A URL kind: TLS on for the `secure` schemes, with `tls` or the defaults.
    pub fn url(
        url: &'a str,
        secure: &[&str],
        tls: Option<&'a Tls>,
        alpn: &'static [&'static [u8]],
        connect_timeout: Option<Duration>,
    ) -> Target<'a> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
        Target {
            address: url,
            is_url: true,
            tls: secure
                .contains(&scheme)
                .then(|| tls.cloned().unwrap_or_default()),
            tls_block: tls,
            alpn,
            connect_timeout,
        }
    }

    /// A `host:port` kind: TLS on when its `tls` block is present.
    pub fn host_port(
        address: &'a str,
        tls: Option<&'a Tls>,
        connect_timeout: Option<Duration>,
    ) -> Target<'a> {
        Target {
            address,
            is_url: false,
            tls: tls.cloned(),
            tls_block: tls,
            alpn: &[],
            connect_timeout,
        }
    }

    /// The field `address` comes from: `url` or `address`.
    pub fn field(&self) -> &'static str {
        if self.is_url { "url" } else { "address" }
    }
}
