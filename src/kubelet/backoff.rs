//! Restart back-off as Kubernetes does it: the first restart at once, then
//! 10 s, doubling up to 5 minutes; forgotten once a container ran 10 minutes.

use std::time::Duration;

/// First delay.
pub const INITIAL: Duration = Duration::from_secs(10);
/// Largest delay.
pub const MAX: Duration = Duration::from_secs(300);
/// Running this long resets the back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// The back-off of one container (or one image pull).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the next attempt after this one; zero before any failure.
    pub next: Duration,
}

impl Backoff {
    /// After a failure that followed `ran` of running: how long to wait before
    /// trying again.
    pub fn failed(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER {
            self.next = Duration::ZERO;
        }
        let wait = self.next;
        self.next = if wait.is_zero() { INITIAL } else { (wait * 2).min(MAX) };
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_five_minutes_and_resets_after_ten_running() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..7).map(|_| b.failed(short).as_secs()).collect();
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300]);
        assert_eq!(b.failed(short).as_secs(), 300);
        assert_eq!(b.failed(Duration::from_secs(601)).as_secs(), 0);
        assert_eq!(b.failed(short).as_secs(), 10);
    }
}
