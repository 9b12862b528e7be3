//! RFC 3339 instants (`startAt`), with `Z` or a numeric offset. Pure.

use std::time::{Duration, SystemTime};

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
