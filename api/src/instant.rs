//! Instants as Stampede reads and sends them: RFC 3339 (`startAt`), with `Z` or a numeric
//! offset, and the runner protocol's Unix milliseconds. Pure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `t` as the runner protocol carries it: milliseconds since the Unix epoch (0 for a clock
/// set before it).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The instant a protocol field names; `None` for 0, which the protocol uses for "not set".
pub fn from_unix_ms(ms: i64) -> Option<SystemTime> {
    u64::try_from(ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

/// Parses `2026-11-11T12:00:00Z`, `2026-11-11T13:00:00.250+01:00` and the like.
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    let expected = || {
        format!(
            "expected an RFC 3339 instant with a time zone, such as 2026-11-11T12:00:00Z or \
             2026-11-11T13:00:00+01:00, found {s:?}"
        )
    };
    let t = s.trim();
    if let Some(local) = t.strip_suffix(['Z', 'z']) {
        return humantime::parse_rfc3339_weak(local).map_err(|_| expected());
    }
    // A numeric offset: the last six characters, `+HH:MM` or `-HH:MM`.
    let split = t
        .len()
        .checked_sub(6)
        .filter(|&i| t.is_char_boundary(i))
        .ok_or_else(expected)?;
    let (local, offset) = t.split_at(split);
    let sign = match offset.as_bytes()[0] {
        b'+' => 1i64,
        b'-' => -1i64,
        _ => return Err(expected()),
    };
    let (hh, mm) = offset[1..].split_once(':').ok_or_else(expected)?;
    let (hh, mm): (u64, u64) = (
        hh.parse().map_err(|_| expected())?,
        mm.parse().map_err(|_| expected())?,
    );
    if hh > 23 || mm > 59 {
        return Err(expected());
    }
    let as_utc = humantime::parse_rfc3339_weak(local).map_err(|_| expected())?;
    let off = Duration::from_secs(hh * 3600 + mm * 60);
    // Local time = UTC + offset, so UTC = local − offset.
    if sign > 0 {
        as_utc.checked_sub(off).ok_or_else(expected)
    } else {
        as_utc.checked_add(off).ok_or_else(expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_name_the_same_instant_as_utc() {
        let z = parse_rfc3339("2026-11-11T12:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-11T13:00:00+01:00").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-11-11T06:30:00-05:30").unwrap(), z);
        assert_eq!(
            parse_rfc3339("2026-11-11T12:00:00.250Z").unwrap(),
            z + Duration::from_millis(250)
        );
    }

    #[test]
    fn unix_milliseconds_round_trip_and_zero_is_not_set() {
        let t = parse_rfc3339("2026-11-11T12:00:00.250Z").unwrap();
        assert_eq!(unix_ms(t), 1_794_398_400_250);
        assert_eq!(from_unix_ms(unix_ms(t)), Some(t));
        assert_eq!(from_unix_ms(0), None);
        assert_eq!(from_unix_ms(-5), None);
    }

    #[test]
    fn a_missing_or_bad_zone_is_refused() {
        for bad in [
            "2026-11-11T12:00:00",
            "2026-11-11T12:00:00+1:00",
            "noon",
            "2026-11-11T12:00:00+25:00",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
