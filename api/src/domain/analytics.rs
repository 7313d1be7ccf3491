//! Statistics of the analytics pipeline ([`crate::stats::StatsStore`]): the anime most
//! commented on in a window of hours (public), and active subscriptions per plan (admins).

use chrono::{DateTime, Utc};

use super::{Anime, Domain, Role, live_anime_in_order};
use crate::stats::{PlanCount, StatsStore};
use crate::{Error, Result};

/// One hour in milliseconds: the length of the pipeline's tumbling comment windows, which
/// start on the full hours (UTC).
pub const HOUR_MS: i64 = 3_600_000;

/// The most anime buckets asked of the engine while making up for trending anime that no
/// longer exist (each retry doubles the previous size).
pub const MAX_TRENDING_BUCKETS: usize = 1_000;

/// Which of the pipeline's one-hour comment windows `trendingAnime` sums. "The current
/// hour" is the window containing now: its start is now floored to the full hour, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, async_graphql::Enum)]
pub enum TrendingWindow {
    /// The current hour's window only (start = now floored to the hour, UTC); still
    /// filling, so its counts grow until the hour ends.
    #[default]
    CurrentHour,
    /// The previous, complete hour's window only (start = one hour before the current
    /// hour's start).
    LastHour,
    /// The 24 windows ending with the current one, summed: starts from 23 hours before
    /// the current hour's start to the current hour's start, both included (so up to 24
    /// hours, the current one still filling).
    #[graphql(name = "LAST_24_HOURS")]
    Last24Hours,
}

impl TrendingWindow {
    /// The window starts (epoch ms) this window sums at time `now_ms` (epoch ms), as
    /// `[from, to)`.
    pub fn window_starts(self, now_ms: i64) -> (i64, i64) {
        let current = now_ms.div_euclid(HOUR_MS) * HOUR_MS;
        match self {
            TrendingWindow::CurrentHour => (current, current + HOUR_MS),
            TrendingWindow::LastHour => (current - HOUR_MS, current),
            TrendingWindow::Last24Hours => (current - 23 * HOUR_MS, current + HOUR_MS),
        }
    }
}

/// An anime and its comments in a trending window.
#[derive(Debug, Clone)]
pub struct Trending {
    /// The live anime.
    pub anime: Anime,
    /// Its comments in the window (positive).
    pub comments: i64,
}

impl Domain {
    /// Serves `trendingAnime` and `subscriptionCounts` from `store`.
    pub fn with_stats(mut self, store: StatsStore) -> Self {
        self.stats = Some(store);
        self
    }

    fn stats(&self) -> Result<&StatsStore> {
        self.stats
            .as_ref()
            .ok_or_else(|| Error::Internal("no analytics store configured".into()))
    }

    /// At most `first` live anime with the most comments in `window` at `now`, most first,
    /// then by id. Anime without comments in the window and anime no longer live are left
    /// out; when the engine's top `first` hold such anime, larger tops are asked (doubling,
    /// up to [`MAX_TRENDING_BUCKETS`]) until `first` live ones are found or none are left.
    pub async fn trending_anime(
        &self,
        window: TrendingWindow,
        first: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Trending>> {
        let store = self.stats()?;
        let (from, to) = window.window_starts(now.timestamp_millis());
        let first = first.max(1);
        let mut size = first;
        loop {
            let counts = store.comment_counts(from, to, size).await?;
            let ids: Vec<_> = counts.iter().map(|c| c.anime_id).collect();
            let rows = live_anime_in_order(&self.pool, &ids).await?;
            let exhausted = counts.len() < size || size >= MAX_TRENDING_BUCKETS;
            if rows.len() >= first || exhausted {
                let mut counts = counts.into_iter();
                return Ok(rows
                    .into_iter()
                    .take(first)
                    .filter_map(|anime| {
                        // Both lists follow the engine's order; rows only skip ids.
                        let count = counts.find(|c| c.anime_id == anime.id)?;
                        Some(Trending {
                            anime,
                            comments: count.comments,
                        })
                    })
                    .collect());
            }
            size = (size * 2).min(MAX_TRENDING_BUCKETS);
        }
    }

    /// The active subscriptions per plan, by plan (admins only).
    pub async fn subscription_counts(
        &self,
        viewer: &crate::auth::Viewer,
    ) -> Result<Vec<PlanCount>> {
        viewer.require_role(Role::Admin, "only admins read subscription counts")?;
        self.stats()?.plan_counts().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-01T10:00:00Z in epoch ms.
    const TEN: i64 = 1_772_359_200_000;

    #[test]
    fn the_current_hour_is_now_floored_to_the_hour() {
        for now in [TEN, TEN + 1, TEN + 59 * 60_000, TEN + HOUR_MS - 1] {
            assert_eq!(
                TrendingWindow::CurrentHour.window_starts(now),
                (TEN, TEN + HOUR_MS),
                "{now}"
            );
        }
        assert_eq!(
            TrendingWindow::CurrentHour.window_starts(TEN + HOUR_MS),
            (TEN + HOUR_MS, TEN + 2 * HOUR_MS)
        );
    }

    #[test]
    fn the_last_hour_is_the_complete_one_before() {
        assert_eq!(
            TrendingWindow::LastHour.window_starts(TEN + 30 * 60_000),
            (TEN - HOUR_MS, TEN)
        );
        assert_eq!(
            TrendingWindow::LastHour.window_starts(TEN),
            (TEN - HOUR_MS, TEN)
        );
    }

    #[test]
    fn the_last_24_hours_are_24_windows_ending_with_the_current_one() {
        let (from, to) = TrendingWindow::Last24Hours.window_starts(TEN + 5);
        assert_eq!((from, to), (TEN - 23 * HOUR_MS, TEN + HOUR_MS));
        assert_eq!((to - from) / HOUR_MS, 24);
        // The window of 30 hours ago is out, the one 23 hours before the current is in.
        assert!(TEN - 30 * HOUR_MS < from);
        assert!((from..to).contains(&(TEN - 23 * HOUR_MS)));
        assert!(!(from..to).contains(&(TEN - 24 * HOUR_MS)));
    }

    #[test]
    fn times_before_the_epoch_floor_downwards() {
        assert_eq!(TrendingWindow::CurrentHour.window_starts(-1), (-HOUR_MS, 0));
    }
}
