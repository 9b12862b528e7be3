//! Why failures failed: a bounded sample (`stampede_api::stats::Reasons`) noted by the wire
//! code where the reason is known, and taken into the worker's delta with its counters.
//!
//! Wire code returns a `Copy` `Outcome` through many `?`s (connect, TLS, handshakes); the
//! reason rides beside it in this thread's sample instead of widening every error type.
//! Each worker is one thread with one current-thread runtime, so the sample belongs to one
//! worker and is as free of locks as its counters.

use std::cell::RefCell;
use std::fmt::{Display, Write};

use stampede_api::stats::{Outcome, Reasons};

thread_local! {
    static SAMPLE: RefCell<(Reasons, String)> = RefCell::new((Reasons::default(), String::new()));
}

/// Notes one failure of kind `outcome` because of `reason`. The text is formatted into a
/// buffer kept by the thread: a reason already in the sample costs no allocation.
pub fn note(outcome: Outcome, reason: impl Display) {
    SAMPLE.with(|s| {
        let (sample, buf) = &mut *s.borrow_mut();
        buf.clear();
        let _ = write!(buf, "{reason}");
        sample.note(outcome, buf);
    });
}

/// The sample noted on this thread since the last call.
pub fn take() -> Reasons {
    SAMPLE.with(|s| std::mem::take(&mut s.borrow_mut().0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noted_reasons_are_taken_once() {
        note(Outcome::Tls, "invalid peer certificate: UnknownIssuer");
        note(Outcome::Tls, "invalid peer certificate: UnknownIssuer");
        let r = take();
        let v = r.sorted();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].count, 2);
        assert!(take().is_empty());
    }
}
