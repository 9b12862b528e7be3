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
    Http4xx,
    Http5xx,
    ExtractFailed,
    CheckFailed,
    DataExhausted,
    /// The TLS handshake failed (certificate, protocol, name).
    Tls,
    /// A UDP reply that never came within its timeout.
    Lost,
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
        Outcome::Http4xx,
        Outcome::Http5xx,
        Outcome::ExtractFailed,
        Outcome::CheckFailed,
        Outcome::DataExhausted,
        Outcome::Tls,
        Outcome::Lost,
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
            Outcome::Http4xx => "http_4xx",
            Outcome::Http5xx => "http_5xx",
            Outcome::ExtractFailed => "extract_failed",
            Outcome::CheckFailed => "check_failed",
            Outcome::DataExhausted => "data_exhausted",
            Outcome::Tls => "tls",
            Outcome::Lost => "lost",
        }
    }

    pub fn from_name(s: &str) -> Option<Outcome> {
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
    pub connect_errors: [u64; Outcome::COUNT],
    /// Gauges at the end of the interval (not summed over time).
    pub active_connections: u64,
    pub target_rate: f64,
    pub target_connections: u64,
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
        for (a, b) in self.connect_errors.iter_mut().zip(other.connect_errors) {
            *a += b;
        }
        self.active_connections += other.active_connections;
        self.target_rate += other.target_rate;
        self.target_connections += other.target_connections;
    }

    pub fn requests(&self) -> u64 {
        self.steps.iter().map(StepStats::requests).sum()
    }

    /// Failed requests and failed connects.
    pub fn errors(&self) -> u64 {
        self.steps.iter().map(StepStats::errors).sum::<u64>()
            + self.connect_errors.iter().sum::<u64>()
    }

    /// What `errors` is a share of: every request and every connection attempt, failed or
    /// not, so a test of idle users that sends nothing still has an error ratio.
    pub fn attempts(&self) -> u64 {
        self.requests() + self.connect_errors.iter().sum::<u64>() + self.connects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
