//! Scenario types: the connection each virtual user opens and the steps it runs. Pure data:
//! no I/O. `///` comments are user documentation.
//!
//! One module per connection kind holds its options and their rules side by side (`http`,
//! `http2`, `websocket`, `tcp`, `udp`); `step` holds the steps' kind-neutral shapes, `tls` the
//! TLS block every TCP-based kind shares, `value_from` the `…From` a secret is read through,
//! `kind` what a kind says about itself. The registry below is the one place that lists the
//! kinds.

pub mod http;
pub mod http2;
pub mod kind;
pub mod redis;
pub mod step;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod value_from;
pub mod websocket;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use http::{HttpConnection, HttpVersion};
pub use http2::Http2Connection;
pub use kind::{KindOptions, Target};
pub use redis::{RedisConnection, RedisSubscribe};
pub use step::*;
pub use tcp::TcpConnection;
pub use tls::Tls;
pub use udp::UdpConnection;
pub use value_from::{SecretKeyRef, ValueFrom};
pub use websocket::{Heartbeat, WebSocketConnection};

/// What each virtual user does: open a connection, run `onStart` once, loop over `steps`,
/// run `onStop` when it is retired.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// The connection every user owns. Exactly one kind.
    pub connection: Connection,
    /// Constant values usable in templates as `{{ name }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Data sets usable in templates as `{{ set.column }}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataSource>,
    /// Steps run once per user after it connects (log in, subscribe).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_start: Vec<Step>,
    /// One iteration.
    pub steps: Vec<Step>,
    /// Steps run once when the user is retired or the test ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_stop: Vec<Step>,
}

/// A data set whose rows feed templates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataSource {
    /// The name templates use: `{{ name.column }}`.
    pub name: String,
    /// Rows written inline: each row maps column names to values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<BTreeMap<String, String>>>,
    /// Rows read from a CSV file whose first line names the columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvSource>,
    /// How rows are picked: `sequential` (each iteration takes the next row, wrapping),
    /// `random` (each iteration takes any row), `unique` (each user keeps one row of its own).
    #[serde(default)]
    pub pick: Pick,
}

/// Where CSV rows come from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CsvSource {
    /// Path of the CSV file, relative to the LoadTest file.
    pub file: String,
}

/// How rows of a data set are handed out.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    #[default]
    Sequential,
    Random,
    Unique,
}

/// The registry: one entry per kind — its documentation, its field in
/// `spec.scenario.connection`, its `ConnectionKind` variant and its options type. The
/// `Connection` struct, `ConnectionKind` and the lookups over them are generated from it.
macro_rules! kinds {
    ($($(#[doc = $doc:literal])* $field:ident: $Kind:ident($Type:ty),)*) => {
        /// The kind of connection each user opens. Set exactly one field.
        #[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
        #[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct Connection {
            $(
                $(#[doc = $doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$Type>,
            )*
        }

        /// Which kind a `Connection` names, for messages.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ConnectionKind {
            $($Kind,)*
        }

        impl ConnectionKind {
            /// Every kind, in field order.
            pub const ALL: &[ConnectionKind] = &[$(ConnectionKind::$Kind,)*];

            /// The field name in `spec.scenario.connection`.
            pub fn field(self) -> &'static str {
                match self {
                    $(ConnectionKind::$Kind => stringify!($field),)*
                }
            }
        }

        impl Connection {
            /// The kinds set, with their options, in field order (valid when exactly one).
            pub fn set(&self) -> Vec<(ConnectionKind, &dyn KindOptions)> {
                let mut set: Vec<(ConnectionKind, &dyn KindOptions)> = Vec::new();
                $(
                    if let Some(o) = &self.$field {
                        set.push((ConnectionKind::$Kind, o));
                    }
                )*
                set
            }
        }
    };
}

kinds! {
    /// HTTP/1.1 with keep-alive: one TCP connection per user, reused for every request.
    /// Steps are `request` and `think`.
    http: Http(HttpConnection),
    /// HTTP/2: one connection per user; with `streams` above 1, that many users share each
    /// connection as concurrent streams. Steps are `request` and `think`.
    http2: Http2(Http2Connection),
    /// WebSocket: one connection per user, held for the whole test, with an optional
    /// heartbeat. Steps are `send`, `expect`, `listen` and `think`.
    websocket: WebSocket(WebSocketConnection),
    /// Plain TCP (or TLS over TCP): one connection per user. Steps are `send`, `expect` and
    /// `think`.
    tcp: Tcp(TcpConnection),
    /// UDP: one socket per user. Steps are `send`, `expect` (a reply datagram) and `think`.
    udp: Udp(UdpConnection),
    /// Redis (RESP2): one connection per user, held for the whole test and named with
    /// CLIENT SETNAME. Steps are `command` (optionally pipelined) and `think`; with
    /// `subscribe`, `listen` and `think`.
    redis: Redis(RedisConnection),
}

impl Connection {
    /// The kinds set (valid when exactly one).
    pub fn kinds(&self) -> Vec<ConnectionKind> {
        self.set().into_iter().map(|(k, _)| k).collect()
    }

    /// The one kind set, with its options, or why there is not exactly one (the error at
    /// `spec.scenario.connection`).
    pub fn exactly_one(&self) -> Result<(ConnectionKind, &dyn KindOptions), String> {
        match self.set().as_slice() {
            [one] => Ok(*one),
            [] => {
                let all: Vec<&str> = ConnectionKind::ALL.iter().map(|k| k.field()).collect();
                Err(format!(
                    "set exactly one connection kind; available: {}",
                    all.join(", ")
                ))
            }
            many => {
                let names: Vec<&str> = many.iter().map(|(k, _)| k.field()).collect();
                Err(format!(
                    "set exactly one connection kind, found {}",
                    names.join(" and ")
                ))
            }
        }
    }

    /// The one kind set, with its options, if exactly one is.
    pub fn one(&self) -> Option<(ConnectionKind, &dyn KindOptions)> {
        match self.set().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The one kind set, if exactly one is.
    pub fn kind(&self) -> Option<ConnectionKind> {
        self.one().map(|(k, _)| k)
    }

    /// Headers sent with every request or handshake (http, http2, websocket).
    pub fn headers(&self) -> Option<&BTreeMap<String, String>> {
        self.one().and_then(|(_, o)| o.headers())
    }

    /// The TLS block of the kind that is set, with the kind's field name (`http` …).
    pub fn tls(&self) -> Option<(&'static str, &Tls)> {
        let (kind, o) = self.one()?;
        o.target().tls_block.map(|t| (kind.field(), t))
    }

    /// Every `…From` of the kind that is set, with its path under `connection`
    /// (`tcp.tls.caFrom`): what the operator hands runner pods as variables and what a
    /// runner reads when it loads the test. A field that takes a `…From` adds itself here.
    pub fn value_froms(&self) -> Vec<(String, &ValueFrom)> {
        let Some((kind, tls)) = self.tls() else {
            return Vec::new();
        };
        tls.value_froms()
            .into_iter()
            .map(|(field, v)| (format!("{kind}.tls.{field}"), v))
            .collect()
    }
}
