//! `Duration`: a span written as text in LoadTest files (`30s`, `1m30s`, `250ms`).
//! Pure: parsing and formatting only. The accepted units are exactly those the reference
//! documents (docs/loadtest-reference.md, "Durations"); `Display` writes text `FromStr` reads.

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

/// The units, largest first, with their length in nanoseconds. Anything else (`d`, `sec`,
/// `µs`, `ns`) is refused: a `1d` typo must not run for a day.
const UNITS: [(&str, u128); 5] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
];

/// What every refusal says is expected.
const EXPECTED: &str = "a duration such as 250ms, 30s, 5m or 1h30m (units: h, m, s, ms, us)";

/// Digits kept after a decimal point: nanoseconds of a second.
const MAX_DECIMALS: usize = 9;

/// `<number><unit>` parts, each unit at most once and larger units first (`1h30m`, `1s500ms`);
/// a number may have decimals (`1.5s`). No signs, no spaces inside.
fn parse(t: &str) -> Result<std::time::Duration, String> {
    let refuse = |why: &str| format!("expected {EXPECTED}, found {t:?}{why}");
    if t.is_empty() {
        return Err(format!("expected {EXPECTED}, found nothing"));
    }
    // A bare number is ambiguous (seconds? milliseconds?): k6 and Locust disagree, so we refuse it.
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') && t.contains(|c: char| c.is_ascii_digit())
    {
        return Err(format!(
            "expected a duration with a unit such as {t}s or {t}ms, found {t:?} (units: h, m, s, ms, us)"
        ));
    }
    if t.contains(char::is_whitespace) {
        return Err(refuse(" (no spaces inside a duration)"));
    }
    let mut rest = t;
    let mut total: u128 = 0;
    let mut previous: Option<usize> = None;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if int_len == 0 {
            return Err(refuse(" (each part is a number followed by a unit)"));
        }
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                if n == 0 {
                    return Err(refuse(
                        " (a decimal point needs digits after it, as in 1.5s)",
                    ));
                }
                a.split_at(n)
            }
            None => ("", after),
        };
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let Some(index) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(refuse(&unknown_unit(int, frac, unit)));
        };
        if previous.is_some_and(|p| index <= p) {
            return Err(refuse(
                " (write larger units first, each once, as in 1h30m)",
            ));
        }
        previous = Some(index);
        let part = part_nanos(int, frac, UNITS[index].1).ok_or_else(|| refuse(" (too long)"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| refuse(" (too long)"))?;
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| refuse(" (too long)"))?;
    Ok(std::time::Duration::new(
        secs,
        (total % 1_000_000_000) as u32,
    ))
}

/// Why `unit` (after `int[.frac]`) is not one: a hint for the likely intent.
fn unknown_unit(int: &str, frac: &str, unit: &str) -> String {
    let number = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    if unit.is_empty() {
        format!(" ({number} has no unit)")
    } else if unit == "µs" || unit == "μs" {
        format!(" (write {number}us)")
    } else if unit == "d" {
        " (days are not a unit: write hours, e.g. 24h)".into()
    } else {
        format!(" ({unit:?} is not a unit)")
    }
}

/// `int.frac` times `unit` nanoseconds, digits past the nanosecond dropped; `None` on overflow.
fn part_nanos(int: &str, frac: &str, unit: u128) -> Option<u128> {
    let whole = int.parse::<u128>().ok()?.checked_mul(unit)?;
    let frac = &frac[..frac.len().min(MAX_DECIMALS)];
    if frac.is_empty() {
        return Some(whole);
    }
    let scale = 10u128.pow(frac.len() as u32);
    let part = frac.parse::<u128>().ok()? * unit / scale;
    whole.checked_add(part)
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s.trim()).map(Duration)
    }
}

/// Compact text `FromStr` reads back: `1h30m`, `1s500ms`, `250us`, `0s`; a remainder below a
/// microsecond as decimals of `us` (`1.5us`). Hours do not roll over into days.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        for (unit, len) in UNITS {
            let n = nanos / len;
            nanos %= len;
            if unit == "us" && nanos > 0 {
                let decimals = format!("{nanos:03}");
                write!(f, "{n}.{}us", decimals.trim_end_matches('0'))?;
            } else if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
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
                f.write_str(EXPECTED)
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

    fn ok(s: &str) -> std::time::Duration {
        s.parse::<Duration>()
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .0
    }

    fn refused(s: &str) -> String {
        match s.parse::<Duration>() {
            Ok(d) => panic!("{s:?} was accepted as {:?}", d.0),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(ok("250ms").as_millis(), 250);
        assert_eq!(ok("1m30s").as_secs(), 90);
        assert_eq!(ok("2h").as_secs(), 7200);
        assert_eq!(ok("1h30m").as_secs(), 5400);
        assert_eq!(ok("5m").as_secs(), 300);
        assert_eq!(ok("30s").as_secs(), 30);
        assert_eq!(ok("100us").as_micros(), 100);
        assert_eq!(ok("1s500ms").as_millis(), 1500);
        assert_eq!(ok("1h1m1s1ms1us").as_micros(), 3_661_001_001);
        assert_eq!(ok("0s"), std::time::Duration::ZERO);
    }

    #[test]
    fn decimals_are_read_to_the_nanosecond() {
        assert_eq!(ok("1.5s").as_millis(), 1500);
        assert_eq!(ok("0.25ms").as_micros(), 250);
        assert_eq!(ok("1.5us").as_nanos(), 1500);
        assert_eq!(ok("0.5h").as_secs(), 1800);
        assert_eq!(ok("1.0000000019s").as_nanos(), 1_000_000_001);
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(ok(" 30s ").as_secs(), 30);
    }

    #[test]
    fn bare_numbers_are_refused_with_a_hint() {
        let e = refused("30");
        assert!(e.contains("30s"), "{e}");
        let e = refused("5");
        assert!(e.contains("with a unit such as 5s or 5ms"), "{e}");
        let e = refused("1.5");
        assert!(e.contains("1.5s"), "{e}");
    }

    #[test]
    fn units_outside_the_documented_set_are_refused_naming_the_units_and_the_text() {
        for (text, hint) in [
            ("3sec", "\"sec\" is not a unit"),
            ("1d", "write hours, e.g. 24h"),
            ("100µs", "write 100us"),
            ("10ns", "\"ns\" is not a unit"),
            ("2min", "\"min\" is not a unit"),
            ("1y", "\"y\" is not a unit"),
            ("5S", "\"S\" is not a unit"),
        ] {
            let e = refused(text);
            assert!(e.contains("units: h, m, s, ms, us"), "{text}: {e}");
            assert!(e.contains(&format!("found {text:?}")), "{text}: {e}");
            assert!(e.contains(hint), "{text}: {e}");
        }
    }

    #[test]
    fn spaces_inside_a_duration_are_refused() {
        for text in ["3 s", "1m 30s"] {
            let e = refused(text);
            assert!(e.contains("no spaces"), "{text}: {e}");
            assert!(e.contains(&format!("found {text:?}")), "{text}: {e}");
        }
    }

    #[test]
    fn an_empty_duration_is_refused_saying_what_is_expected() {
        let e = refused("");
        assert_eq!(
            e,
            "expected a duration such as 250ms, 30s, 5m or 1h30m (units: h, m, s, ms, us), found nothing"
        );
        assert!(refused("   ").contains("found nothing"));
    }

    #[test]
    fn malformed_numbers_signs_and_out_of_order_units_are_refused() {
        for (text, hint) in [
            ("-1s", "a number followed by a unit"),
            (".5s", "a number followed by a unit"),
            ("1.s", "digits after it"),
            ("s", "a number followed by a unit"),
            ("1m30", "30 has no unit"),
            ("30s1m", "larger units first"),
            ("1s1s", "larger units first"),
            ("400000000000000000000000000000h", "too long"),
            ("99999999999999999999999h", "too long"),
        ] {
            let e = refused(text);
            assert!(e.contains(hint), "{text}: {e}");
            assert!(e.contains("units: h, m, s, ms, us"), "{text}: {e}");
        }
    }

    #[test]
    fn display_writes_compact_text() {
        let d = |n: u64| Duration(std::time::Duration::from_nanos(n)).to_string();
        assert_eq!(d(0), "0s");
        assert_eq!(d(90_000_000_000), "1m30s");
        assert_eq!(d(1_500_000_000), "1s500ms");
        assert_eq!(d(250_000), "250us");
        assert_eq!(d(1_500), "1.5us");
        assert_eq!(d(1), "0.001us");
        assert_eq!(d(36 * 3_600_000_000_000), "36h");
    }

    #[test]
    fn every_displayed_duration_parses_back_to_itself() {
        let samples = [
            0,
            1,
            999,
            1_000,
            1_001,
            250_000_000,
            1_500_000_000,
            90_000_000_000,
            5_400_000_000_000,
            31 * 24 * 3_600_000_000_000,
            3_661_001_001_001,
            u64::MAX,
        ];
        for n in samples {
            let d = Duration(std::time::Duration::from_nanos(n));
            assert_eq!(ok(&d.to_string()), d.0, "{n} ns shown as {d}");
        }
        let longest = Duration(std::time::Duration::MAX);
        assert_eq!(ok(&longest.to_string()), longest.0, "{longest}");
    }

    proptest::proptest! {
        #[test]
        fn any_duration_parses_back_from_its_text(secs in 0u64..=u64::MAX, nanos in 0u32..1_000_000_000) {
            let d = Duration(std::time::Duration::new(secs, nanos));
            proptest::prop_assert_eq!(ok(&d.to_string()), d.0);
        }
    }

    #[test]
    fn a_duration_survives_a_yaml_and_json_round_trip() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Holder {
            d: Duration,
        }
        for text in ["1m30s", "250ms", "1.5s", "100us", "2h"] {
            let h = Holder {
                d: text.parse().unwrap(),
            };
            let yaml = serde_norway::to_string(&h).unwrap();
            assert_eq!(
                serde_norway::from_str::<Holder>(&yaml).unwrap(),
                h,
                "{yaml}"
            );
            let json = serde_json::to_string(&h).unwrap();
            assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h, "{json}");
        }
    }
}
