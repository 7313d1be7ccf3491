//! In-place retries, shared by the runtime's lanes and the DLQ's replay into a sink: the
//! backoff of a [`RetryPolicy`], preparing a decoder through a registry outage (a lane
//! waits for the registry as long as it takes, a replay gives up after the policy's
//! backoff), and rewriting the retryable items of a sink write.

use std::time::Duration;

use anineplus_connectors::Outcome;
use anineplus_schemas::{Codec, Topic};
use tokio_util::sync::CancellationToken;

use crate::dead_letter::RetryPolicy;
use crate::failure::Failure;
use crate::sink::Sink;

/// Prepares `codec`'s decoder of writer schema `id` for `schema`; a registry outage is
/// retried with the policy's backoff until it gives up or `stop` is cancelled.
pub(crate) async fn prepare_decoder(
    codec: &Codec,
    id: u32,
    schema: Topic,
    policy: &RetryPolicy,
    stop: &CancellationToken,
) -> Result<(), Failure> {
    let mut backoff = policy.in_place_backoff();
    loop {
        match codec.prepare(id, schema).await {
            Ok(()) => return Ok(()),
            Err(e) if !e.is_retryable() => return Err(Failure::decode(&e)),
            Err(e) => match backoff.next() {
                Some(delay) if !stop.is_cancelled() => {
                    tracing::warn!(error = %e, "registry unavailable, retrying");
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(Failure::decode(&e)),
            },
        }
    }
}

/// Prepares `codec`'s decoder of writer schema `id` for `schema`, waiting for an
/// unreachable registry as long as it takes: first the policy's in-place backoff, then
/// every 0.5 s doubling to 30 s, with a warning each time. `None` when `stop` is cancelled
/// first; `Some(Err)` only for a permanent failure (unknown id, incompatible schema).
pub(crate) async fn wait_for_decoder(
    codec: &Codec,
    id: u32,
    schema: Topic,
    policy: &RetryPolicy,
    stop: &CancellationToken,
) -> Option<Result<(), Failure>> {
    match prepare_decoder(codec, id, schema, policy, stop).await {
        Err(failure) if failure.class.is_retryable() => {}
        done => return Some(done),
    }
    let mut delay = Duration::from_millis(500);
    loop {
        tracing::warn!(
            schema_id = id,
            retry_in = ?delay,
            "registry unavailable; pausing consumption until it answers (nothing is routed)"
        );
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        match codec.prepare(id, schema).await {
            Ok(()) => {
                tracing::info!(schema_id = id, "registry answers again; resuming");
                return Some(Ok(()));
            }
            Err(e) if !e.is_retryable() => return Some(Err(Failure::decode(&e))),
            Err(_) => delay = (delay * 2).min(Duration::from_secs(30)),
        }
    }
}

/// After a write of `items` answered `outcomes`, writes the retryable items again, alone,
/// after each delay of the policy's backoff, until none is left, the backoff gives up or
/// `stop` is cancelled. `attempts[owners[i]]` counts the writes tried per record. Returns
/// how many item writes were retried.
pub(crate) async fn rewrite_retryable<S: Sink>(
    sink: &S,
    items: &[S::Item],
    owners: &[usize],
    attempts: &mut [u32],
    outcomes: &mut [Outcome],
    policy: &RetryPolicy,
    stop: &CancellationToken,
) -> u64 {
    let mut retried = 0;
    for delay in policy.in_place_backoff() {
        let retry: Vec<usize> = (0..items.len())
            .filter(|i| outcomes[*i].is_retryable())
            .collect();
        if retry.is_empty() {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
        tracing::warn!(
            items = retry.len(),
            reason = ?outcomes[retry[0]],
            "sink refused items for now; retrying"
        );
        retried += retry.len() as u64;
        let subset: Vec<S::Item> = retry.iter().map(|i| items[*i].clone()).collect();
        let again = sink.write(&subset).await;
        for (i, outcome) in retry.into_iter().zip(again) {
            attempts[owners[i]] += 1;
            outcomes[i] = outcome;
        }
    }
    retried
}
