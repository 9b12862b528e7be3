//! Identifiers that must not repeat or be guessed: runner tokens and runner session ids.
//! They come from the operating system's random source, never from a time-seeded generator:
//! fastrand seeds from the clock, so two runner processes started in the same clock tick drew
//! the same session id, and one runner's results silently replaced the other's.

/// `bytes` random bytes from the operating system, as lowercase hex.
///
/// # Panics
/// When the operating system has no random source at all (no `getrandom(2)` and no
/// `/dev/urandom`): nothing secure can run there, and a predictable token would be worse.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source is available");
    let mut out = String::with_capacity(bytes * 2);
    for b in buf {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A new run's id, `{{ run.id }}`: the UTC start to the second, then 6 random hex digits,
/// e.g. `20261208-015224-a1b2c3`. It sorts by time, so rows a run wrote are easy to find
/// and to tell from another run's, and fits a Kubernetes label value.
pub fn run_id(at: std::time::SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(at).to_string();
    // `2026-12-08T01:52:24Z` → `20261208-015224`
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    let (date, time) = digits.split_at(8.min(digits.len()));
    format!("{date}-{time}-{}", random_hex(3))
}

/// Compares two secrets in time that depends only on their lengths, so a runner probing
/// tokens learns nothing from how fast it is refused.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_carry_their_utc_second_and_differ_within_it() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_694_744);
        let a = run_id(at);
        assert_eq!(a.len(), "20261208-015224-a1b2c3".len(), "{a}");
        assert!(a.starts_with("20261208-015224-"), "{a}");
        assert_ne!(a, run_id(at));
    }

    #[test]
    fn ids_are_hex_of_the_asked_length_and_do_not_repeat() {
        let ids: std::collections::BTreeSet<String> = (0..1000).map(|_| random_hex(16)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|i| {
            i.len() == 32
                && i.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }));
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(same_secret("", ""));
    }
}
