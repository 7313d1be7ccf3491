//! [`Producer`]: librdkafka's producer with a future per record, polled by a thread of its
//! own that does not spin.
//!
//! rust-rdkafka's `FutureProducer` polls on a thread with a 100 ms timeout; librdkafka may
//! end that wait a fraction of a millisecond early, and the remainder, rounded down to
//! 0 ms, is then polled without waiting until the deadline passes. That spin cost about 1 %
//! of a core per producer even when idle, and 8 % of the indexer's CPU under load. Here
//! the thread polls with a 1 s timeout (a delivery report still ends the wait at once), so
//! the spin, once per timeout, is a thousandth of the time. Dropping the last handle stops
//! the thread within that second; a producer purges what it still holds when dropped, so
//! callers await their deliveries first, as with any producer. Await the futures rather
//! than call `flush`: rust-rdkafka's `flush` polls the event queue this thread serves, so
//! it finds nothing there and sleeps 100 ms per round while records are in flight (the
//! stateful commits lost most of their rate to it, `docs/benchmarks.md`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Message, OwnedMessage, Timestamp, ToBytes};
use rdkafka::producer::future_producer::{Delivery, OwnedDeliveryResult};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, FutureRecord, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// How long one poll of the delivery thread waits when nothing happens.
const POLL: Duration = Duration::from_secs(1);

/// How long [`Producer::send`] waits before trying a full queue again.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);

/// The delivery of one record: its partition and offset, or the error and the record.
pub type Delivering = oneshot::Receiver<OwnedDeliveryResult>;

/// Completes each record's [`Delivering`] from librdkafka's delivery report.
pub struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<oneshot::Sender<OwnedDeliveryResult>>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivered: Self::DeliveryOpaque) {
        let owned = match result {
            Ok(message) => Ok(Delivery {
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp(),
            }),
            Err((error, message)) => Err((error.clone(), message.detach())),
        };
        // The sender's receiver may be gone (a caller that stopped waiting): nothing to do.
        let _ = delivered.send(owned);
    }
}

/// A producer whose records each resolve a future; cheap to clone (one client, one
/// delivery thread, shared).
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    base: Arc<BaseProducer<Deliveries>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Producer {
    /// A producer for `brokers` with the project's settings ([`super::producer_config`]).
    pub fn new(brokers: &str) -> KafkaResult<Producer> {
        Producer::create(&super::producer_config(brokers))
    }

    /// A producer of `config` (see [`super::producer_config`]) and its delivery thread.
    pub fn create(config: &ClientConfig) -> KafkaResult<Producer> {
        let base: Arc<BaseProducer<Deliveries>> = Arc::new(config.create_with_context(Deliveries)?);
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (base, stop) = (base.clone(), stop.clone());
            std::thread::Builder::new()
                .name("kafka-deliveries".to_owned())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        base.poll(POLL);
                    }
                })
                .map_err(|e| KafkaError::ClientCreation(format!("delivery thread: {e}")))?;
        }
        Ok(Producer {
            inner: Arc::new(Inner { base, stop }),
        })
    }

    /// The librdkafka producer underneath (metadata, flush, in-flight count).
    pub fn base(&self) -> &BaseProducer<Deliveries> {
        &self.inner.base
    }

    /// Enqueues `record` and waits for its delivery. A full local queue is tried again
    /// every 10 ms for up to `queue_timeout`, then fails with `QueueFull`; once enqueued,
    /// librdkafka's own timeouts (`message.timeout.ms`) apply.
    pub async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
    ) -> OwnedDeliveryResult
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let started = Instant::now();
        let (tx, rx) = oneshot::channel();
        let mut base = base_record(record, Box::new(tx));
        loop {
            match self.inner.base.send(base) {
                Ok(()) => {
                    // This handle keeps the producer, so the report always comes.
                    return rx
                        .await
                        .expect("a delivery report for every enqueued record");
                }
                Err((e, back))
                    if e == KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                        && started.elapsed() < queue_timeout =>
                {
                    base = back;
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((e, back)) => return Err((e, owned(back))),
            }
        }
    }

    /// Enqueues `record` without waiting: its delivery to await, or at once the error and
    /// the record (a full queue included).
    #[allow(clippy::result_large_err)]
    pub fn send_result<'a, K, P>(
        &self,
        record: FutureRecord<'a, K, P>,
    ) -> Result<Delivering, (KafkaError, FutureRecord<'a, K, P>)>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (tx, rx) = oneshot::channel();
        match self.inner.base.send(base_record(record, Box::new(tx))) {
            Ok(()) => Ok(rx),
            Err((e, back)) => Err((
                e,
                FutureRecord {
                    topic: back.topic,
                    partition: back.partition,
                    payload: back.payload,
                    key: back.key,
                    timestamp: back.timestamp,
                    headers: back.headers,
                },
            )),
        }
    }
}

type Opaque = Box<oneshot::Sender<OwnedDeliveryResult>>;

fn base_record<'a, K, P>(
    record: FutureRecord<'a, K, P>,
    opaque: Opaque,
) -> BaseRecord<'a, K, P, Opaque>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let mut base = BaseRecord::with_opaque_to(record.topic, opaque);
    base.partition = record.partition;
    base.payload = record.payload;
    base.key = record.key;
    base.timestamp = record.timestamp;
    base.headers = record.headers;
    base
}

/// The record that could not be enqueued, owned (what a failed delivery carries too).
fn owned<K, P>(record: BaseRecord<'_, K, P, Opaque>) -> OwnedMessage
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    OwnedMessage::new(
        record.payload.map(|p| p.to_bytes().to_vec()),
        record.key.map(|k| k.to_bytes().to_vec()),
        record.topic.to_owned(),
        record
            .timestamp
            .map_or(Timestamp::NotAvailable, Timestamp::CreateTime),
        record.partition.unwrap_or(-1),
        0,
        record.headers,
    )
}
