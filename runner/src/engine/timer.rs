//! A sub-millisecond timer for the pacer. tokio's timer wheel has 1 ms resolution and rounds
//! deadlines up, which showed as ~0.9 ms of our own lateness in p50 latency-from-intended
//! against a 30 µs target (and startAt firing +0.8…1.2 ms late). A Linux timerfd in the
//! worker's epoll fires at the instant; one is armed per wake-up, not per request.

use std::time::Duration;

use timerfd::{ClockId, SetTimeFlags, TimerFd, TimerState};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

pub struct PreciseTimer {
    fd: Option<AsyncFd<TimerFd>>,
}

impl Default for PreciseTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl PreciseTimer {
    /// Falls back to tokio's timer when no timerfd can be had (then precision is 1 ms).
    pub fn new() -> PreciseTimer {
        let fd = TimerFd::new_custom(ClockId::Monotonic, true, true)
            .ok()
            .and_then(|t| register(t).ok());
        PreciseTimer { fd }
    }

    /// Completes at `at` (or at once if it has passed). Cancel-safe: re-arming resets the
    /// timer, and a stale wake-up is read as zero expirations and waited out.
    pub async fn sleep_until(&mut self, at: Instant) {
        let Some(fd) = self.fd.as_mut() else {
            return tokio::time::sleep_until(at).await;
        };
        let now = Instant::now();
        if at <= now {
            return;
        }
        // A zero duration would disarm the timer: wait at least a nanosecond.
        let d = (at - now).max(Duration::from_nanos(1));
        fd.get_mut()
            .set_state(TimerState::Oneshot(d), SetTimeFlags::Default);
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return tokio::time::sleep_until(at).await;
            };
            if guard.get_inner().read() > 0 {
                return;
            }
            guard.clear_ready();
        }
    }
}

// tokio 1.54 deprecates `AsyncFd::new` because a generic `T: AsRawFd` could close its fd while
// registered; its replacement is `unsafe`, which this workspace forbids. Here the `AsyncFd`
// owns the `TimerFd`, which owns its `OwnedFd`: nothing can close the fd while registered.
#[allow(deprecated)]
fn register(t: TimerFd) -> std::io::Result<AsyncFd<TimerFd>> {
    AsyncFd::new(t)
}
