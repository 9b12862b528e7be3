//! `Duration`: a span written as text in LoadTest files (`30s`, `1m30s`, `250ms`).
//! Pure: parsing and formatting only.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A span of time written as text: `100ms`, `30s`, `5m`, `1h30m`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn from_std(d: std::time::Duration) -> Self {
        Self(d)
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(
                "expected a duration such as 250ms, 30s or 5m, found an empty string".into(),
            );
        }
        // A bare number is ambiguous (seconds? milliseconds?): k6 and Locust disagree, so we refuse it.
        if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(format!(
                "expected a duration with a unit such as {t}s or {t}ms, found {t:?}"
            ));
        }
        humantime::parse_duration(t)
            .map(Duration)
            .map_err(|e| format!("expected a duration such as 250ms, 30s or 5m, found {t:?} ({e})"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 250ms, 30s or 5m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "expected a duration with a unit such as {v}s or {v}ms, found the bare number {v}"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                self.visit_u64(v.unsigned_abs())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "expected a duration with a unit such as {v}s, found the bare number {v}"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!("250ms".parse::<Duration>().unwrap().0.as_millis(), 250);
        assert_eq!("1m30s".parse::<Duration>().unwrap().0.as_secs(), 90);
        assert_eq!("2h".parse::<Duration>().unwrap().0.as_secs(), 7200);
    }

    #[test]
    fn bare_numbers_are_refused_with_a_hint() {
        let e = "30".parse::<Duration>().unwrap_err();
        assert!(e.contains("30s"), "{e}");
    }
}
