//! Cache-aside in Redis for hot reads: anime by id and the episode list of an anime.
//!
//! Reads fill the cache on a miss; writes delete the entry after their transaction
//! committed, before answering, so a client reads its own write. Entries also expire after
//! a short TTL, which bounds the staleness a concurrent reader could re-insert between a
//! writer's commit and its delete. Redis failures are logged and read as misses: the cache
//! never fails a request.

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::domain::{Anime, Episode};

/// The error of a Redis call that took longer than `REDIS_TIMEOUT_MS`.
pub(crate) fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::IoError, "timed out"))
}

/// The read cache.
#[derive(Clone)]
pub struct ReadCache {
    redis: ConnectionManager,
    prefix: String,
    ttl_secs: u64,
    timeout: std::time::Duration,
}

impl ReadCache {
    /// A cache on `redis` whose keys start with `prefix`.
    /// Calls slower than `timeout` count as failed (a miss).
    pub fn new(
        redis: ConnectionManager,
        prefix: &str,
        ttl_secs: u64,
        timeout: std::time::Duration,
    ) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            ttl_secs,
            timeout,
        }
    }

    fn anime_key(&self, id: Uuid) -> String {
        format!("{}cache:anime:{id}", self.prefix)
    }

    fn episodes_key(&self, anime: Uuid) -> String {
        format!("{}cache:episodes:{anime}", self.prefix)
    }

    async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let mut redis = self.redis.clone();
        let answer = tokio::time::timeout(self.timeout, redis.get::<_, Option<String>>(key)).await;
        match answer.unwrap_or_else(|_| Err(timed_out())) {
            Ok(Some(text)) => serde_json::from_str(&text).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cache read failed");
                None
            }
        }
    }

    async fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) {
        let Ok(text) = serde_json::to_string(value) else {
            return;
        };
        let mut redis = self.redis.clone();
        let answer = tokio::time::timeout(
            self.timeout,
            redis.set_ex::<_, _, ()>(key, text, self.ttl_secs),
        )
        .await;
        if let Err(e) = answer.unwrap_or_else(|_| Err(timed_out())) {
            tracing::warn!(error = %e, "cache write failed");
        }
    }

    async fn forget(&self, key: &str) {
        let mut redis = self.redis.clone();
        let answer = tokio::time::timeout(self.timeout, redis.del::<_, ()>(key)).await;
        if let Err(e) = answer.unwrap_or_else(|_| Err(timed_out())) {
            tracing::warn!(error = %e, "cache invalidation failed");
        }
    }

    /// A cached anime.
    pub async fn anime(&self, id: Uuid) -> Option<Anime> {
        self.get(&self.anime_key(id)).await
    }

    /// Caches an anime.
    pub async fn remember_anime(&self, anime: &Anime) {
        self.put(&self.anime_key(anime.id), anime).await
    }

    /// Drops an anime (and its episode list) from the cache.
    pub async fn forget_anime(&self, id: Uuid) {
        self.forget(&self.anime_key(id)).await;
        self.forget(&self.episodes_key(id)).await;
    }

    /// A cached episode list.
    pub async fn episodes(&self, anime: Uuid) -> Option<Vec<Episode>> {
        self.get(&self.episodes_key(anime)).await
    }

    /// Caches an episode list.
    pub async fn remember_episodes(&self, anime: Uuid, list: &[Episode]) {
        self.put(&self.episodes_key(anime), list).await
    }

    /// Drops an episode list from the cache.
    pub async fn forget_episodes(&self, anime: Uuid) {
        self.forget(&self.episodes_key(anime)).await
    }
}
