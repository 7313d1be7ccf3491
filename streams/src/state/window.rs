//! Windows on event time: tumbling (`size`) and hopping (`size`, `advance`), aligned to the
//! epoch, with a grace period.
//!
//! A window `[start, start + size)` takes the records whose event time falls in it. It is
//! *closed* once the task's stream time (the largest event time it has seen) reaches
//! `start + size + grace`; a record for a closed window is *late*: it changes nothing, is
//! counted in `pipeline_late_records_total` and, if the operator has a late topic, sent
//! there. Inside the grace period a record that arrives out of order still updates its
//! window.

use std::time::Duration;

/// How records are grouped in time (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Length of a window, ms.
    pub size: i64,
    /// Distance between two window starts, ms (`size` for tumbling windows).
    pub advance: i64,
    /// How long after its end a window still takes records, ms.
    pub grace: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl Windows {
    /// Tumbling windows of `size`, taking late records for `grace` after their end.
    pub fn tumbling(size: Duration, grace: Duration) -> Self {
        let size = ms(size);
        Windows {
            size,
            advance: size,
            grace: i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Hopping windows of `size` starting every `advance` (at most `size`).
    pub fn hopping(size: Duration, advance: Duration, grace: Duration) -> Self {
        let size = ms(size);
        Windows {
            size,
            advance: ms(advance).min(size),
            grace: i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The starts of the windows that contain event time `at`, earliest first.
    pub fn starts(&self, at: i64) -> Vec<i64> {
        let last = at.div_euclid(self.advance) * self.advance;
        let mut out = Vec::new();
        let mut start = last;
        while start > at - self.size {
            out.push(start);
            start -= self.advance;
        }
        out.reverse();
        out
    }

    /// The end (exclusive) of the window starting at `start`.
    pub fn end(&self, start: i64) -> i64 {
        start.saturating_add(self.size)
    }

    /// Whether the window starting at `start` is closed at stream time `now`.
    pub fn is_closed(&self, start: i64, now: i64) -> bool {
        now >= self.end(start).saturating_add(self.grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn a_tumbling_window_holds_each_time_once() {
        let w = Windows::tumbling(Duration::from_secs(3600), Duration::from_secs(300));
        assert_eq!(w.starts(0), [0]);
        assert_eq!(w.starts(H - 1), [0]);
        assert_eq!(w.starts(H), [H]);
        assert_eq!(w.starts(-1), [-H], "before the epoch too");
        assert!(!w.is_closed(0, H + 299_999), "inside the grace");
        assert!(w.is_closed(0, H + 300_000));
    }

    #[test]
    fn hopping_windows_overlap() {
        let w = Windows::hopping(
            Duration::from_secs(3600),
            Duration::from_secs(900),
            Duration::ZERO,
        );
        let quarter = H / 4;
        assert_eq!(w.starts(H), [quarter, 2 * quarter, 3 * quarter, H]);
        assert_eq!(w.end(quarter), quarter + H);
    }
}
