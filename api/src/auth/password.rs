//! Password hashes: argon2id with the crate's default parameters (about 19 MiB and tens of
//! milliseconds of CPU each, on purpose), computed off the async runtime on blocking
//! threads, at most [`concurrency`] at once: further checks wait their turn as cheap async
//! tasks instead of each taking a thread and its memory. (How many checks a client or an
//! account may ask for is the rate limiter's: `crate::ratelimit::PasswordGate`.)

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

use crate::{Error, Result};

/// How many hashes run at once: half the machine's cores, at least one, so hashing never
/// takes every core from request handling.
pub fn concurrency() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().div_ceil(2))
        .max(1)
}

static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(concurrency()));
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static RUN: AtomicUsize = AtomicUsize::new(0);

/// The most hashes that ran at once in this process so far.
pub fn peak_running() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// How many hashes and verifications ran in this process so far.
pub fn checks_run() -> usize {
    RUN.load(Ordering::Relaxed)
}

/// Runs `work` on a blocking thread once a hashing slot is free.
async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let _slot = SLOTS
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        RUN.fetch_add(1, Ordering::Relaxed);
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        let result = work();
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        result
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

/// Hashes `password` (PHC string, argon2id).
pub async fn hash(password: String) -> Result<String> {
    hashing(move || {
        let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
            .map_err(|e| Error::Internal(format!("salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("hashing: {e}")))
    })
    .await
}

/// Whether `password` matches the PHC string `hash`.
pub async fn verify(password: String, hash: String) -> Result<bool> {
    hashing(move || {
        let parsed =
            PasswordHash::new(&hash).map_err(|e| Error::Internal(format!("stored hash: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_are_argon2id() {
        let h = super::hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            super::verify("correct horse".into(), h.clone())
                .await
                .unwrap()
        );
        assert!(!super::verify("wrong".into(), h).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_wait_for_a_slot() {
        let h = super::hash("correct horse".into()).await.unwrap();
        let checks: Vec<_> = (0..12)
            .map(|_| tokio::spawn(super::verify("wrong".into(), h.clone())))
            .collect();
        for check in checks {
            assert!(!check.await.unwrap().unwrap());
        }
        assert!(
            super::peak_running() <= super::concurrency(),
            "{} hashes ran at once, more than {}",
            super::peak_running(),
            super::concurrency()
        );
    }
}
