//! [`ErrorLog`]: which of a client's repeated errors to log. While the brokers are away a
//! consumer reports the same error on every poll (`AllBrokersDown`, `BrokerTransportFailure`):
//! before this, one 12 s broker restart made each lane log about 70 identical lines, and
//! every service ships its lines to the log pipeline, which reads the same brokers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often one error is logged again while it repeats, by default.
pub const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// Logs each distinct error the first time it is seen, then at most once per period, with
/// how many times it was seen in between.
#[derive(Debug)]
pub struct ErrorLog {
    every: Duration,
    /// Per error text: when it was last logged and how often it came since.
    seen: HashMap<String, (Instant, u64)>,
}

impl Default for ErrorLog {
    fn default() -> Self {
        ErrorLog::new(ERROR_LOG_EVERY)
    }
}

impl ErrorLog {
    /// Logs the same error at most once per `every`.
    pub fn new(every: Duration) -> Self {
        ErrorLog {
            every,
            seen: HashMap::new(),
        }
    }

    /// `Some(n)` when `error`, seen at `now`, is to be logged, `n` being how many times it
    /// was held back since its last line; `None` when it is held back.
    pub fn admit(&mut self, error: &str, now: Instant) -> Option<u64> {
        // Errors not seen for a period are forgotten: the map holds what is repeating now.
        let every = self.every;
        self.seen
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < every * 2);
        match self.seen.get_mut(error) {
            Some((at, held)) if now.saturating_duration_since(*at) < every => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = *held;
                *at = now;
                *held = 0;
                Some(n)
            }
            None => {
                self.seen.insert(error.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_logged_once_per_period_with_the_count_held_back() {
        let mut log = ErrorLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        assert_eq!(log.admit("down", at(0)), Some(0));
        assert_eq!(log.admit("down", at(200)), None);
        assert_eq!(log.admit("down", at(9_999)), None);
        assert_eq!(log.admit("down", at(10_000)), Some(2));
        assert_eq!(log.admit("down", at(10_200)), None);
        assert_eq!(log.admit("down", at(20_000)), Some(1));
    }

    #[test]
    fn distinct_errors_are_counted_apart_and_a_quiet_one_is_forgotten() {
        let mut log = ErrorLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(log.admit("down", at(0)), Some(0));
        assert_eq!(log.admit("transport", at(1)), Some(0));
        assert_eq!(log.admit("down", at(2)), None);
        assert_eq!(log.admit("transport", at(3)), None);
        // Back after a quiet spell of two periods: a new episode, logged at once.
        assert_eq!(log.admit("down", at(40)), Some(0));
        assert_eq!(log.seen.len(), 1, "the quiet error was forgotten");
    }
}
