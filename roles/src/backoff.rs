//! Capped exponential backoff with jitter, for every retry: the roles' own, the `otlp`
//! sink's exports and `slim-node replay`'s.

use std::time::Duration;

/// Doubles from `base` up to `max`, each delay jittered by up to ±20%.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            next: base,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        jitter(delay)
    }

    /// Start again from `base` after a success.
    pub fn reset(&mut self) {
        self.next = self.base;
    }
}

fn jitter(d: Duration) -> Duration {
    // A cheap pseudo-random factor is enough to keep restarted nodes from retrying in step.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.8 + f64::from(nanos % 1000) / 2500.0; // 0.8 ..= 1.2
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let delays: Vec<_> = (0..4).map(|_| b.next_delay()).collect();
        let within = |d: Duration, nominal: f64| {
            d.as_secs_f64() >= nominal * 0.8 && d.as_secs_f64() <= nominal * 1.2
        };
        assert!(within(delays[0], 1.0));
        assert!(within(delays[1], 2.0));
        assert!(within(delays[2], 4.0));
        assert!(within(delays[3], 4.0));
        b.reset();
        assert!(within(b.next_delay(), 1.0));
    }
}
