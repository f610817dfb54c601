//! Per-object back-off for failed writes, with client-go's defaults for
//! controllers: 5 ms, doubling on each failure up to 1,000 s, forgotten on
//! success.

use std::collections::HashMap;
use std::time::Duration;

/// The first delay.
pub const BASE: Duration = Duration::from_millis(5);
/// The longest delay.
pub const CAP: Duration = Duration::from_secs(1000);

/// The delay before retry number `failures` (1 for the first failure).
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    BASE.saturating_mul(1u32 << doublings).min(CAP)
}

/// The failure counts of the objects whose last write failed.
#[derive(Debug, Default)]
pub struct Backoffs {
    failures: HashMap<String, u32>,
}

impl Backoffs {
    /// One more failure for `key`: the delay before its next try.
    pub fn failed(&mut self, key: &str) -> Duration {
        let n = self.failures.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// `key`'s writes succeeded: its next failure starts over.
    pub fn succeeded(&mut self, key: &str) {
        self.failures.remove(key);
    }

    /// How many failures in a row `key` has had.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_5ms_to_a_1000s_cap() {
        let ms = Duration::from_millis;
        for (failures, want) in [
            (1, ms(5)),
            (2, ms(10)),
            (3, ms(20)),
            (8, ms(640)),
            (18, ms(655_360)),
            (19, CAP),
            (40, CAP),
            (u32::MAX, CAP),
        ] {
            assert_eq!(delay(failures), want, "after {failures} failures");
        }
    }

    #[test]
    fn success_resets_one_object_only() {
        let mut b = Backoffs::default();
        assert_eq!((b.failed("a"), b.failed("a"), b.failed("b")), (BASE, BASE * 2, BASE));
        b.succeeded("a");
        assert_eq!((b.failures("a"), b.failures("b")), (0, 1));
        assert_eq!(b.failed("a"), BASE);
    }
}
