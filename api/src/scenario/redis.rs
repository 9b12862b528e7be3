//! The `redis` connection kind: its options and their rules. Each user owns one RESP
//! connection (AUTH, SELECT and CLIENT SETNAME on connect, TLS for `rediss://`); steps are
//! `command`s, optionally pipelined.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::scenario::kind::{KindOptions, Target};
use crate::scenario::step::{Action, Step};
use crate::scenario::tls::Tls;
use crate::validate::fields::{Errors, check_connect_timeout, check_tls, parse_url, url_host_port};

/// The port of `redis://` and `rediss://` URLs that name none.
pub const DEFAULT_PORT: u16 = 6379;
/// The most copies one `pipeline` step writes at once.
pub const MAX_PIPELINE: u32 = 10_000;

/// A Redis connection (RESP2).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisConnection {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS. The password
    /// (and user, for an ACL user) is sent with AUTH, the database number with SELECT.
    /// `?cluster=true`: a Redis Cluster, reached through this node.
    pub url: String,
    /// Users name their connection `<clientName>-<vu.id>` with CLIENT SETNAME, so the
    /// server's CLIENT LIST tells them apart. Default `stampede-<run.id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// How long opening the connection (TCP, TLS, AUTH, SELECT) may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// TLS settings for a `rediss://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// Pub/sub: each connection subscribes on connect (and again after a reconnect), and
    /// the users' steps are `listen` and `think`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<RedisSubscribe>,
}

/// What a subscribed connection receives.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisSubscribe {
    /// Channels (SUBSCRIBE), each a template, e.g. `"room:{{ vu.id }}"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Glob patterns (PSUBSCRIBE), e.g. `"orders.*"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
}

/// What a `redis://` URL says, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisUrl {
    /// Where users connect: the URL's host, and its port or `DEFAULT_PORT`.
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: u32,
    /// `?cluster=true`.
    pub cluster: bool,
}

impl RedisConnection {
    /// The URL's host and port, credentials and database, or what is wrong with it.
    pub fn parse_url(&self) -> Result<RedisUrl, String> {
        let u = parse_url(&self.url, &["redis", "rediss"], true)?;
        let (host, port) = url_host_port(&u, Some(DEFAULT_PORT))?;
        let cluster = match u.query() {
            None | Some("cluster=false") => false,
            Some("cluster=true") => true,
            Some(q) => {
                return Err(format!(
                    "the URL's only query is `?cluster=true` (a Redis Cluster), found {q:?}"
                ));
            }
        };
        let db = match u.path().trim_start_matches('/') {
            "" => 0,
            n => n
                .parse()
                .map_err(|_| format!("the path is the database number, found {n:?}"))?,
        };
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| format!("{s:?} is not valid percent-encoded UTF-8"))
        };
        let user = match u.username() {
            "" => None,
            name => Some(decode(name)?),
        };
        let password = u.password().map(decode).transpose()?;
        if user.is_some() && password.is_none() {
            return Err("a user needs a password: redis://user:password@host".into());
        }
        if cluster && db != 0 {
            return Err(format!("a Redis Cluster has only database 0, found /{db}"));
        }
        Ok(RedisUrl {
            host,
            port,
            user,
            password,
            db,
            cluster,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl KindOptions for RedisConnection {
    fn actions(&self) -> &'static [Action] {
        &[Action::Command, Action::Listen]
    }

    fn validate(&self, kp: &str, errs: &mut Errors) {
        match self.parse_url() {
            Err(m) => errs.push(format!("{kp}.url"), m),
            Ok(_) => {
                if let Some(t) = &self.tls {
                    if !self.url.starts_with("rediss:") {
                        errs.push(
                            format!("{kp}.tls"),
                            "the URL is redis://, which does not use TLS; use rediss://",
                        );
                    }
                    check_tls(&format!("{kp}.tls"), t, errs);
                }
            }
        }
        if let Some(n) = &self.client_name
            && (n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_graphic()))
        {
            errs.push(
                format!("{kp}.clientName"),
                "1 to 64 printable characters without spaces (CLIENT SETNAME refuses spaces)",
            );
        }
        check_connect_timeout(kp, self.connect_timeout, errs);
        if let Some(s) = &self.subscribe {
            if s.channels.is_empty() && s.patterns.is_empty() {
                errs.push(
                    format!("{kp}.subscribe"),
                    "name at least one channel or pattern",
                );
            }
            for (f, list) in [("channels", &s.channels), ("patterns", &s.patterns)] {
                for (i, c) in list.iter().enumerate() {
                    if c.is_empty() {
                        errs.push(format!("{kp}.subscribe.{f}[{i}]"), "must not be empty");
                    }
                }
            }
        }
    }

    fn validate_step(&self, p: &str, step: &Step, errs: &mut Errors) {
        // A subscribed RESP2 connection takes no other command: it only listens.
        match (&self.subscribe, step.command.is_some(), step.listen.is_some()) {
            (Some(_), true, _) => errs.push(
                format!("{p}.command"),
                "a connection with `subscribe` only listens: its steps are `listen` and `think`",
            ),
            (None, _, true) => errs.push(
                format!("{p}.listen"),
                "a redis listen records what is published to the connection's `subscribe` channels: add them",
            ),
            _ => {}
        }
        if let Some(c) = &step.command
            && c.first().is_none_or(|name| name.trim().is_empty())
        {
            errs.push(
                format!("{p}.command"),
                "a command is its name and arguments, e.g. [GET, \"user:{{ vu.id }}\"]",
            );
        }
        if let Some(n) = step.pipeline
            && !(1..=MAX_PIPELINE).contains(&n)
        {
            errs.push(
                format!("{p}.pipeline"),
                format!("expected 1 to {MAX_PIPELINE} copies, found {n}"),
            );
        }
        if step.timeout.is_some_and(|t| t.as_std().is_zero()) {
            errs.push(format!("{p}.timeout"), "must be longer than 0s");
        }
    }

    fn reply_types(&self) -> &'static [&'static str] {
        &["status", "error", "integer", "string", "nil", "array"]
    }

    fn target(&self) -> Target<'_> {
        Target::url(
            &self.url,
            &["rediss"],
            self.tls.as_ref(),
            &[],
            self.connect_timeout,
        )
    }

    fn host_port(&self) -> Result<(String, u16), String> {
        self.parse_url().map(|u| (u.host, u.port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(url: &str) -> RedisConnection {
        RedisConnection {
            url: url.into(),
            client_name: None,
            connect_timeout: None,
            tls: None,
            subscribe: None,
        }
    }

    #[test]
    fn urls_give_credentials_and_database() {
        assert_eq!(
            conn("redis://:s%40cret@127.0.0.1:6380/3").parse_url(),
            Ok(RedisUrl {
                host: "127.0.0.1".into(),
                port: 6380,
                user: None,
                password: Some("s@cret".into()),
                db: 3,
                cluster: false,
            })
        );
        assert_eq!(
            conn("rediss://app:pw@cache").parse_url().map(|u| u.user),
            Ok(Some("app".into()))
        );
        for bad in [
            "http://127.0.0.1",
            "redis://127.0.0.1/x",
            "redis://127.0.0.1?cluster=yes",
            "redis://127.0.0.1/2?cluster=true",
            "redis://app@127.0.0.1",
            "redis:///0",
        ] {
            assert!(conn(bad).parse_url().is_err(), "{bad}");
        }
    }
}
