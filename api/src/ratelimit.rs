//! Rate limiting in Redis: a fixed window per key, counted by one Lua script so concurrent
//! requests are counted exactly (INCR is atomic; the script also sets the expiry of a new
//! window and checks every key of a request in one round trip).
//!
//! Requests are counted per client (an IPv4 address, or the /64 of an IPv6 address: one
//! subscriber's allocation, see [`client_key`]) and per signed-in user, refused ones with a
//! bad token (401) included. Password checks are counted on their own, each one (aliases and
//! batches do not share a unit): per client in the same kind of window, and per account
//! with a backoff that doubles after a few consecutive failures ([`PasswordGate`]).

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use redis::Script;
use redis::aio::ConnectionManager;

use crate::config::FailPolicy;
use crate::{Error, Result};

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

/// Checks a password check in: refused while the account (`KEYS[2]`, when given) is in
/// backoff, else counted in the client's window (`KEYS[1]`). Returns `{allowed,
/// retry_after_ms}`.
const PASSWORD_ADMIT: &str = r"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
if KEYS[2] then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > 0 then return {0, ttl} end
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], window) end
if n > limit then return {0, redis.call('PTTL', KEYS[1])} end
return {1, 0}
";

/// Records a failed check of an account: its consecutive failures (`KEYS[1]`, forgotten
/// after `ARGV[4]` ms without one) and, from the `ARGV[1]`th on, a backoff (`KEYS[2]`) of
/// `ARGV[2]` ms doubling per further failure, at most `ARGV[3]` ms.
const PASSWORD_FAILED: &str = r"
local free = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
if n >= free then
  local wait = math.min(cap, base * 2 ^ (n - free))
  redis.call('SET', KEYS[2], 1, 'PX', math.floor(wait))
end
return n
";

/// The rate-limit key of a client address: an IPv4 address as is (also when mapped into
/// IPv6), an IPv6 address by its /64 prefix, since one subscriber usually holds a whole
/// /64 and could otherwise rotate through 2^64 addresses.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

/// How password checks are limited.
#[derive(Debug, Clone, Copy)]
pub struct PasswordLimits {
    /// Checks per client per rate-limit window.
    pub per_client: u64,
    /// Consecutive failures of one account before its backoff starts.
    pub free_failures: u64,
    /// First backoff, in milliseconds; it doubles with each further failure.
    pub backoff_ms: u64,
    /// Longest backoff, in milliseconds.
    pub max_backoff_ms: u64,
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limits.
    Allowed,
    /// Over a limit: retry after this many seconds.
    Limited(u64),
}

/// Counts requests per user and per client IP. Cheap to clone (each request's
/// [`PasswordGate`] holds one): the scripts and the key prefix are shared.
#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    script: Arc<Script>,
    prefix: Arc<str>,
    limit: u64,
    window_ms: u64,
    fail: FailPolicy,
    timeout: std::time::Duration,
    password: PasswordLimits,
    password_admit: Arc<Script>,
    password_failed: Arc<Script>,
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
            script: Arc::new(Script::new(SCRIPT)),
            prefix: prefix.into(),
            limit,
            window_ms: window_secs * 1000,
            fail,
            timeout,
            password: PasswordLimits {
                per_client: 10,
                free_failures: 5,
                backoff_ms: 1000,
                max_backoff_ms: 15 * 60 * 1000,
            },
            password_admit: Arc::new(Script::new(PASSWORD_ADMIT)),
            password_failed: Arc::new(Script::new(PASSWORD_FAILED)),
        }
    }

    /// The same limiter with `limits` for password checks.
    pub fn with_password_limits(mut self, limits: PasswordLimits) -> Self {
        self.password = limits;
        self
    }

    /// Runs `invocation`, turning a Redis failure or timeout into the fail policy's verdict.
    async fn verdict(&self, invocation: redis::ScriptInvocation<'_>) -> Verdict {
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

    fn account_keys(&self, account: &str) -> (String, String) {
        (
            format!("{}rl:pw:failures:{account}", self.prefix),
            format!("{}rl:pw:backoff:{account}", self.prefix),
        )
    }

    /// Counts one request of `ip` (and of `user` when signed in).
    pub async fn check(&self, ip: &str, user: Option<&str>) -> Verdict {
        let mut invocation = self.script.prepare_invoke();
        invocation.key(format!("{}rl:ip:{ip}", self.prefix));
        if let Some(user) = user {
            invocation.key(format!("{}rl:user:{user}", self.prefix));
        }
        invocation.arg(self.limit).arg(self.window_ms);
        self.verdict(invocation).await
    }

    /// Counts one password check of `client` (for `account`, when it names one): refused
    /// over the client's allowance or while the account is in backoff.
    pub async fn check_password(&self, client: &str, account: Option<&str>) -> Verdict {
        let mut invocation = self.password_admit.prepare_invoke();
        invocation.key(format!("{}rl:pw:client:{client}", self.prefix));
        if let Some(account) = account {
            invocation.key(self.account_keys(account).1);
        }
        invocation.arg(self.password.per_client).arg(self.window_ms);
        self.verdict(invocation).await
    }

    /// Records the outcome of a password check of `account`: a success forgets its
    /// failures, a failure counts towards (and lengthens) its backoff.
    pub async fn password_outcome(&self, account: &str, matched: bool) {
        let (failures, backoff) = self.account_keys(account);
        let mut redis = self.redis.clone();
        let call = async {
            if matched {
                redis::cmd("DEL")
                    .arg(&failures)
                    .arg(&backoff)
                    .query_async::<i64>(&mut redis)
                    .await
            } else {
                let p = self.password;
                self.password_failed
                    .key(&failures)
                    .key(&backoff)
                    .arg(p.free_failures.max(1))
                    .arg(p.backoff_ms)
                    .arg(p.max_backoff_ms)
                    .arg(p.max_backoff_ms.max(self.window_ms) * 2)
                    .invoke_async::<i64>(&mut redis)
                    .await
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "password backoff not recorded"),
            Err(_) => tracing::warn!("password backoff not recorded: redis timed out"),
        }
    }
}

/// The password checks of one request's client, put into each operation's data by the
/// HTTP edge and consulted by `login` and `signUp` before they run argon2.
#[derive(Clone)]
pub struct PasswordGate {
    limiter: RateLimiter,
    client: String,
}

impl PasswordGate {
    /// The gate of `client` (a [`client_key`]).
    pub fn new(limiter: RateLimiter, client: String) -> Self {
        Self { limiter, client }
    }

    async fn admit(&self, account: Option<&str>) -> Result<()> {
        match self.limiter.check_password(&self.client, account).await {
            Verdict::Allowed => Ok(()),
            Verdict::Limited(secs) => Err(Error::RateLimited(secs)),
        }
    }

    /// Runs `check` (a login of `email`) if the client and the account may check a
    /// password now, and records whether the password matched (`UNAUTHENTICATED` means it
    /// did not).
    pub async fn login<T>(
        gate: Option<&Self>,
        email: &str,
        check: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(gate) = gate else {
            return check.await;
        };
        let account = email.trim().to_lowercase();
        gate.admit(Some(&account)).await?;
        let result = check.await;
        match &result {
            Ok(_) => gate.limiter.password_outcome(&account, true).await,
            Err(Error::Unauthenticated) => gate.limiter.password_outcome(&account, false).await,
            Err(_) => {}
        }
        result
    }

    /// Runs `hashing` (a sign-up, which hashes a new password) if the client may run a
    /// password check now.
    pub async fn hashing<T>(
        gate: Option<&Self>,
        hashing: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if let Some(gate) = gate {
            gate.admit(None).await?;
        }
        hashing.await
    }
}

#[cfg(test)]
mod tests {
    use super::client_key;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let key = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::1"), "::/64");
    }
}
