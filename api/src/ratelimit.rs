//! Rate limiting in Redis: a fixed window per key, counted by one Lua script so concurrent
//! requests are counted exactly (INCR is atomic; the script also sets the expiry of a new
//! window and checks every key of a request in one round trip).

use redis::Script;
use redis::aio::ConnectionManager;

use crate::config::FailPolicy;

/// Increments every key and returns `{allowed, retry_after_ms}`: allowed is 1 when every
/// counter is within the limit.
const SCRIPT: &str = r"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local allowed = 1
local retry = 0
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, window) end
  if n > limit then
    allowed = 0
    local ttl = redis.call('PTTL', key)
    if ttl > retry then retry = ttl end
  end
end
return {allowed, retry}
";

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limits.
    Allowed,
    /// Over a limit: retry after this many seconds.
    Limited(u64),
}

/// Counts requests per user and per client IP.
#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    script: Script,
    prefix: String,
    limit: u64,
    window_ms: u64,
    fail: FailPolicy,
    timeout: std::time::Duration,
}

impl RateLimiter {
    /// A limiter of `limit` requests per `window_secs` for each key.
    pub fn new(
        redis: ConnectionManager,
        prefix: &str,
        limit: u64,
        window_secs: u64,
        fail: FailPolicy,
        timeout: std::time::Duration,
    ) -> Self {
        Self {
            redis,
            script: Script::new(SCRIPT),
            prefix: prefix.to_owned(),
            limit,
            window_ms: window_secs * 1000,
            fail,
            timeout,
        }
    }

    /// Counts one request of `ip` (and of `user` when signed in).
    pub async fn check(&self, ip: &str, user: Option<&str>) -> Verdict {
        let mut invocation = self.script.prepare_invoke();
        invocation.key(format!("{}rl:ip:{ip}", self.prefix));
        if let Some(user) = user {
            invocation.key(format!("{}rl:user:{user}", self.prefix));
        }
        invocation.arg(self.limit).arg(self.window_ms);
        let mut redis = self.redis.clone();
        let answer = tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<(i64, i64)>(&mut redis),
        )
        .await
        .unwrap_or_else(|_| Err(crate::cache::timed_out()));
        match answer {
            Ok((1, _)) => Verdict::Allowed,
            Ok((_, retry_ms)) => Verdict::Limited((retry_ms.max(1) as u64).div_ceil(1000)),
            Err(e) => {
                tracing::warn!(error = %e, policy = ?self.fail, "rate limiter unavailable");
                match self.fail {
                    FailPolicy::Open => Verdict::Allowed,
                    FailPolicy::Closed => Verdict::Limited(1),
                }
            }
        }
    }
}
