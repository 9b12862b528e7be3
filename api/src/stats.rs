//! Measurements: per-step counters and HDR histograms, recorded by one worker thread with no
//! lock, shipped once a second as a delta and merged by the collector.
//! Hot path: `record_*` touch only owned memory; no allocation.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, 1 µs … 1 h, 3 significant digits.
pub const HIST_LOW_US: u64 = 1;
pub const HIST_HIGH_US: u64 = 3_600_000_000;
pub const HIST_SIGFIG: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, HIST_SIGFIG)
        .expect("static histogram bounds are valid")
}

/// How one request ended. A fixed set, so it can label metrics; never built from error text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Outcome {
    Ok = 0,
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed,
    Timeout,
    Reset,
    Closed,
    Protocol,
    /// The server answered with an error of its own (an HTTP status of 400 or above not
    /// listed in `check.status`, a Redis `-ERR` …): its code is counted apart (`Codes`).
    ServerError,
    ExtractFailed,
    CheckFailed,
    DataExhausted,
    /// The TLS handshake failed (certificate, protocol, name).
    Tls,
    /// A UDP reply that never came within its timeout.
    Lost,
    /// Still in flight when the test was cut off (the end-of-test drain ran out, or a second
    /// Ctrl-C): it has no latency, and counts as a failed request so the run cannot pass on
    /// requests that never finished.
    Interrupted,
}

impl Outcome {
    pub const COUNT: usize = 15;
    pub const ALL: [Outcome; Outcome::COUNT] = [
        Outcome::Ok,
        Outcome::ConnectRefused,
        Outcome::ConnectTimeout,
        Outcome::ConnectFailed,
        Outcome::Timeout,
        Outcome::Reset,
        Outcome::Closed,
        Outcome::Protocol,
        Outcome::ServerError,
        Outcome::ExtractFailed,
        Outcome::CheckFailed,
        Outcome::DataExhausted,
        Outcome::Tls,
        Outcome::Lost,
        Outcome::Interrupted,
    ];

    #[inline]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ConnectRefused => "connect_refused",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::ConnectFailed => "connect_failed",
            Outcome::Timeout => "timeout",
            Outcome::Reset => "reset",
            Outcome::Closed => "closed",
            Outcome::Protocol => "protocol",
            Outcome::ServerError => "server_error",
            Outcome::ExtractFailed => "extract_failed",
            Outcome::CheckFailed => "check_failed",
            Outcome::DataExhausted => "data_exhausted",
            Outcome::Tls => "tls",
            Outcome::Lost => "lost",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// The outcome a name (as `as_str` spells it) stands for. Runners before 0.2 sent
    /// `http_4xx` and `http_5xx`, which are `server_error` now.
    pub fn from_name(s: &str) -> Option<Outcome> {
        if matches!(s, "http_4xx" | "http_5xx") {
            return Some(Outcome::ServerError);
        }
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether the connection must be dropped after this outcome.
    #[inline]
    pub fn breaks_connection(self) -> bool {
        matches!(
            self,
            Outcome::ConnectRefused
                | Outcome::ConnectTimeout
                | Outcome::ConnectFailed
                | Outcome::Timeout
                | Outcome::Reset
                | Outcome::Closed
                | Outcome::Protocol
                | Outcome::Tls
        )
    }
}

/// Everything measured for one step.
#[derive(Clone, Debug)]
pub struct StepStats {
    pub outcomes: [u64; Outcome::COUNT],
    /// Of `server_error`, how many by the server's code.
    pub codes: Codes,
    pub checks_passed: u64,
    pub checks_failed: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// From the intended start (the scheduled instant in the open model): what a user waits.
    pub latency: Histogram<u64>,
    /// From the moment the request was written: what the server took.
    pub service: Histogram<u64>,
}

impl Default for StepStats {
    fn default() -> Self {
        StepStats {
            outcomes: [0; Outcome::COUNT],
            codes: Codes::default(),
            checks_passed: 0,
            checks_failed: 0,
            bytes_sent: 0,
            bytes_received: 0,
            latency: new_histogram(),
            service: new_histogram(),
        }
    }
}

impl StepStats {
    pub fn requests(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    pub fn errors(&self) -> u64 {
        self.requests() - self.outcomes[Outcome::Ok as usize]
    }

    pub fn add(&mut self, other: &StepStats) {
        for (a, b) in self.outcomes.iter_mut().zip(other.outcomes) {
            *a += b;
        }
        self.codes.add_all(&other.codes);
        self.checks_passed += other.checks_passed;
        self.checks_failed += other.checks_failed;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        // Same bounds on both sides, so `add` cannot fail.
        self.latency.add(&other.latency).expect("same bounds");
        self.service.add(&other.service).expect("same bounds");
    }

    pub fn is_empty(&self) -> bool {
        self.requests() == 0 && self.bytes_sent == 0 && self.bytes_received == 0
    }
}

/// What one worker measured in one interval (a delta: the collector sums them).
#[derive(Clone, Debug, Default)]
pub struct Delta {
    pub steps: Vec<StepStats>,
    pub iterations: u64,
    pub dropped: u64,
    pub connects: u64,
    /// Of `connects`, the connections that carried at least one request.
    pub connects_used: u64,
    pub connect_errors: [u64; Outcome::COUNT],
    /// Gauges at the end of the interval (not summed over time).
    pub active_connections: u64,
    pub target_rate: f64,
    pub target_connections: u64,
    /// Why some of the failures above failed, in the words of the layer that saw it.
    pub reasons: Reasons,
}

impl Delta {
    pub fn new(steps: usize) -> Self {
        Delta {
            steps: (0..steps).map(|_| StepStats::default()).collect(),
            ..Default::default()
        }
    }

    /// Adds the counters of `other`; gauges are summed too, since deltas of different
    /// workers for the same second describe disjoint users.
    pub fn add(&mut self, other: &Delta) {
        for (a, b) in self.steps.iter_mut().zip(&other.steps) {
            a.add(b);
        }
        self.iterations += other.iterations;
        self.dropped += other.dropped;
        self.connects += other.connects;
        self.connects_used += other.connects_used;
        for (a, b) in self.connect_errors.iter_mut().zip(other.connect_errors) {
            *a += b;
        }
        self.active_connections += other.active_connections;
        self.target_rate += other.target_rate;
        self.target_connections += other.target_connections;
        self.reasons.add(&other.reasons);
    }

    pub fn requests(&self) -> u64 {
        self.steps.iter().map(StepStats::requests).sum()
    }

    /// Failed requests and failed connects.
    pub fn errors(&self) -> u64 {
        self.steps.iter().map(StepStats::errors).sum::<u64>() + self.connect_failures()
    }

    /// Connection attempts that failed (refused, timed out, TLS …).
    pub fn connect_failures(&self) -> u64 {
        self.connect_errors.iter().sum()
    }

    /// What `errors` is a share of: every request, every connect that failed (a user that
    /// cannot connect sends nothing, so its failure must count somewhere), and every
    /// connection that carried no request (a hold test's only work). A connection that
    /// carried requests is part of them, not an attempt of its own: a request that timed out
    /// closes its connection, and counting the reconnect halved the ratio (every request
    /// timing out read as 50%).
    pub fn attempts(&self) -> u64 {
        self.requests() + self.connect_failures() + self.connects.saturating_sub(self.connects_used)
    }
}

/// Server errors by the server's own code: an HTTP status (`409`), a Redis error prefix
/// (`WRONGTYPE`), later a MySQL error number or a PostgreSQL SQLSTATE. Bounded, so the `code`
/// label of metrics stays bounded whatever a server sends: at most `MAX` codes of at most
/// `MAX_LEN` bytes each, later ones counted under `other`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Codes(Vec<(String, u64)>);

impl Codes {
    pub const MAX: usize = 32;
    pub const MAX_LEN: usize = 32;
    /// Where codes beyond `MAX` are counted.
    pub const OTHER: &'static str = "other";

    /// Counts `n` errors of `code`. Allocates only for a code not yet counted, at most
    /// `MAX + 1` times.
    pub fn add(&mut self, code: &str, n: u64) {
        let mut end = code.len().min(Self::MAX_LEN);
        while !code.is_char_boundary(end) {
            end -= 1;
        }
        let code = &code[..end];
        if let Some(e) = self.0.iter_mut().find(|(c, _)| c == code) {
            e.1 += n;
            return;
        }
        let code = if self.0.len() >= Self::MAX {
            Self::OTHER
        } else {
            code
        };
        match self.0.iter_mut().find(|(c, _)| c == code) {
            Some(e) => e.1 += n,
            None => self.0.push((code.to_string(), n)),
        }
    }

    pub fn add_all(&mut self, other: &Codes) {
        for (c, n) in other.iter() {
            self.add(c, n);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(c, n)| (c.as_str(), *n))
    }

    pub fn get(&self, code: &str) -> u64 {
        self.iter().find(|(c, _)| *c == code).map_or(0, |(_, n)| n)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A bounded sample of why failures failed: the first few distinct reasons of each kind, each
/// with how often it was seen. A `tls` count alone cannot tell an unknown issuer from a name
/// mismatch or an expired certificate; the sample can, without keeping every message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reasons {
    entries: Vec<Reason>,
}

/// One reason in a sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub outcome: Outcome,
    pub text: String,
    pub count: u64,
}

impl Reasons {
    /// Distinct reasons kept per kind; later ones are counted only in the kind's total.
    pub const PER_KIND: usize = 3;
    /// Characters kept of one reason.
    pub const MAX_CHARS: usize = 200;

    /// Notes one failure of kind `outcome` for `text`. Allocates only for a reason not yet in
    /// the sample, at most `PER_KIND` times per kind.
    pub fn note(&mut self, outcome: Outcome, text: &str) {
        self.note_n(outcome, text, 1);
    }

    /// Notes `count` failures of kind `outcome` for `text`.
    pub fn note_n(&mut self, outcome: Outcome, text: &str, count: u64) {
        let text = clip(text);
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.outcome == outcome && e.text == text)
        {
            e.count += count;
            return;
        }
        if self.entries.iter().filter(|e| e.outcome == outcome).count() < Self::PER_KIND {
            self.entries.push(Reason {
                outcome,
                text: text.to_string(),
                count,
            });
        }
    }

    /// Adds another sample into this one, within the same bounds.
    pub fn add(&mut self, other: &Reasons) {
        for e in &other.entries {
            self.note_n(e.outcome, &e.text, e.count);
        }
    }

    /// The reasons, by kind in `Outcome` order, then most frequent first.
    pub fn sorted(&self) -> Vec<&Reason> {
        let mut v: Vec<&Reason> = self.entries.iter().collect();
        v.sort_by(|a, b| {
            (a.outcome, std::cmp::Reverse(a.count), &a.text).cmp(&(
                b.outcome,
                std::cmp::Reverse(b.count),
                &b.text,
            ))
        });
        v
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `text` cut to `Reasons::MAX_CHARS` characters (a target's bytes may be in it, so it is
/// bounded before it is kept).
fn clip(text: &str) -> &str {
    match text.char_indices().nth(Reasons::MAX_CHARS) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_bounded_in_number_and_length_and_the_rest_is_other() {
        let mut c = Codes::default();
        c.add("409", 2);
        c.add("409", 1);
        assert_eq!(c.get("409"), 3);
        c.add(&"W".repeat(100), 1);
        assert_eq!(c.get(&"W".repeat(Codes::MAX_LEN)), 1);
        for i in 0..100 {
            c.add(&i.to_string(), 1);
        }
        assert_eq!(c.iter().count(), Codes::MAX + 1);
        assert_eq!(c.iter().map(|(_, n)| n).sum::<u64>(), 104);
        assert_eq!(c.get(Codes::OTHER), 100 - (Codes::MAX as u64 - 2));
        // A multi-byte character is never cut in half.
        c.add(&"é".repeat(40), 1);
    }

    #[test]
    fn outcome_names_round_trip_and_cover_all() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_name(o.as_str()), Some(o));
            assert_eq!(Outcome::ALL[o as usize], o);
        }
    }

    #[test]
    fn adding_step_stats_sums_counts_and_histograms() {
        let mut a = StepStats::default();
        let mut b = StepStats::default();
        a.outcomes[0] = 2;
        a.latency.record(100).unwrap();
        b.outcomes[Outcome::Timeout as usize] = 1;
        b.latency.record(300).unwrap();
        a.add(&b);
        assert_eq!(a.requests(), 3);
        assert_eq!(a.errors(), 1);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.latency.max(), b.latency.max());
    }

    #[test]
    fn a_timed_out_request_and_its_reconnect_count_as_one_failure_of_one() {
        let mut d = Delta::new(1);
        // Two requests timed out; each closed its connection and the user reconnected.
        d.steps[0].outcomes[Outcome::Timeout as usize] = 2;
        d.connects = 3;
        d.connects_used = 2;
        // The third connection is open and has carried nothing yet: an attempt of its own.
        assert_eq!((d.errors(), d.attempts()), (2, 3));
        d.connects_used = 3;
        assert_eq!((d.errors(), d.attempts()), (2, 2));
        // A connect that fails is a failed attempt of its own.
        d.connect_errors[Outcome::ConnectRefused as usize] = 2;
        assert_eq!((d.errors(), d.attempts(), d.connect_failures()), (4, 4, 2));
    }

    #[test]
    fn a_hold_test_that_lost_one_connect_of_a_thousand_reads_a_tenth_of_a_percent() {
        let mut d = Delta::new(1);
        d.connects = 999;
        d.connect_errors[Outcome::ConnectTimeout as usize] = 1;
        assert_eq!((d.errors(), d.attempts()), (1, 1000));
    }

    #[test]
    fn the_reason_sample_keeps_a_few_per_kind_and_counts_each() {
        let mut r = Reasons::default();
        for _ in 0..5 {
            r.note(Outcome::Tls, "invalid peer certificate: UnknownIssuer");
        }
        r.note(Outcome::Tls, "invalid peer certificate: Expired");
        for i in 0..10 {
            r.note(Outcome::Tls, &format!("other {i}"));
        }
        r.note(Outcome::ConnectFailed, &"x".repeat(1000));
        let mut merged = Reasons::default();
        merged.add(&r);
        merged.add(&r);
        let v = merged.sorted();
        let texts: Vec<(Outcome, &str, u64)> = v
            .iter()
            .map(|e| (e.outcome, &e.text[..e.text.len().min(40)], e.count))
            .collect();
        assert_eq!(
            texts,
            vec![
                (Outcome::ConnectFailed, "x".repeat(40).as_str(), 2),
                (Outcome::Tls, "invalid peer certificate: UnknownIssuer", 10),
                (Outcome::Tls, "invalid peer certificate: Expired", 2),
                (Outcome::Tls, "other 0", 2),
            ]
        );
        assert_eq!(v[0].text.chars().count(), Reasons::MAX_CHARS);
    }
}
