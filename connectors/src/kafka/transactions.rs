//! Hanging transactions: finding and completing them with the admin requests of Kafka's
//! protocol that librdkafka does not offer (DescribeTransactions, DescribeProducers,
//! WriteTxnMarkers), sent over a blocking TCP connection of their own.
//!
//! A transaction hangs when a partition holds it open while its coordinator holds it as
//! complete. Kafka's coordinator skips the marker of a partition its metadata does not
//! know ("likely deleted already"), and a restarted single broker can send a commit's
//! markers before it knows its own partitions (`docs/state.md`, "Limits"). Nothing a client
//! does then ends it: `read_committed` readers of the partition stop at its first record,
//! and the group's committed offsets stay unstable while it wrote them.
//!
//! [`mend`] completes the hanging transactions of one transactional id on a set of topics:
//!
//! 1. the coordinator's state of the id (DescribeTransactions, asked of each broker until
//!    the coordinator answers); while it is `Ongoing` or `Prepare…` the coordinator still
//!    owns its transaction and nothing is done;
//! 2. the partitions where that producer id holds a transaction open (DescribeProducers,
//!    to each partition's leader);
//! 3. a marker for each (WriteTxnMarkers, to the leader): **commit** when the coordinator
//!    holds that very epoch as `CompleteCommit` (the markers it skipped were commit
//!    markers, and the partitions that got theirs are committed), **abort** otherwise: the
//!    coordinator has moved on (a later epoch) and no longer says what that transaction
//!    became; abort is what Kafka's own `kafka-transactions.sh abort` writes.
//!
//! The protocol part (`Wire`, `Read`) encodes the few request and response versions these
//! need: the flexible versions Kafka 4 supports (request header v2, response header v1,
//! compact strings and arrays, tagged fields skipped).

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::metadata::Metadata;

/// How long one request may take (connect, send and answer each).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read (these answers hold a few entries per partition asked about).
const MAX_ANSWER: usize = 16 << 20;

/// Kafka's group offsets topic: a transaction that sent offsets wrote one of its partitions.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's transaction log topic, made by the cluster's first transaction.
const STATE_TOPIC: &str = "__transaction_state";

const DESCRIBE_TRANSACTIONS: i16 = 65;
const DESCRIBE_PRODUCERS: i16 = 61;
const WRITE_TXN_MARKERS: i16 = 27;

const LEADER_NOT_AVAILABLE: i16 = 5;
const NOT_COORDINATOR: i16 = 16;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// What went wrong while mending.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A broker could not be reached or did not answer in time.
    #[error("broker {broker}: {source}")]
    Io {
        /// The broker's address.
        broker: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The cluster's metadata could not be read.
    #[error("metadata: {0}")]
    Metadata(#[from] rdkafka::error::KafkaError),
    /// An answer that does not decode as the request's version says.
    #[error("malformed {api} response: {reason}")]
    Malformed {
        /// The request's name.
        api: &'static str,
        /// What does not decode.
        reason: String,
    },
    /// The coordinator is loading or moving: ask again shortly.
    #[error("the transaction coordinator is not available yet (error {0})")]
    CoordinatorBusy(i16),
    /// The broker refused the request (Kafka error code).
    #[error("{api} refused with error code {code}")]
    Refused {
        /// The request's name.
        api: &'static str,
        /// Kafka's error code.
        code: i16,
    },
}

impl Error {
    /// Whether the brokers could not be reached (or answered no metadata): asking again
    /// once they are back may succeed.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Io { .. } | Error::Metadata(_))
    }
}

type Result<T> = std::result::Result<T, Error>;

/// A transactional id as its coordinator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionState {
    /// `Empty`, `Ongoing`, `PrepareCommit`, `PrepareAbort`, `CompleteCommit`,
    /// `CompleteAbort`, `PrepareEpochFence` or `Dead`.
    pub state: String,
    /// The id's producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
}

impl TransactionState {
    /// Whether the coordinator is still driving a transaction of this id (one it will
    /// complete or abort itself).
    pub fn in_progress(&self) -> bool {
        self.state == "Ongoing" || self.state.starts_with("Prepare")
    }

    /// The marker that completes a transaction of this producer left open at `epoch` on a
    /// partition while the coordinator is in this state: `None` while the coordinator still
    /// drives one; commit when it holds that very epoch committed; abort otherwise.
    pub fn completion(&self, epoch: i32) -> Option<Marker> {
        if self.in_progress() {
            None
        } else if self.state == "CompleteCommit" && i32::from(self.producer_epoch) == epoch {
            Some(Marker::Commit)
        } else {
            Some(Marker::Abort)
        }
    }
}

/// A transaction marker's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The transaction's records become visible to `read_committed` readers.
    Commit,
    /// They are skipped.
    Abort,
}

/// A transaction a partition holds open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTransaction {
    /// The partition's topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The producer holding it open.
    pub producer_id: i64,
    /// That producer's epoch on this partition.
    pub producer_epoch: i32,
    /// The epoch of the coordinator that last wrote a marker for this producer here (-1:
    /// none).
    pub coordinator_epoch: i32,
    /// The offset of the transaction's first record in the partition.
    pub start_offset: i64,
}

/// What [`mend`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Mended {
    /// The transactions completed, each with the marker written.
    pub completed: Vec<(OpenTransaction, Marker)>,
    /// Partitions whose marker the leader refused (with its error code).
    pub refused: Vec<(String, i32, i16)>,
    /// The coordinator still drove a transaction of the id, so nothing was looked at:
    /// ask again once it is done.
    pub deferred: bool,
}

/// Completes the transactions of `transactional_id` that hang on any partition of `topics`
/// (see the module header); nothing when the id is unknown or its coordinator still drives
/// a transaction. `client` serves the cluster's metadata (any client of the cluster).
pub fn mend<C: ClientContext>(
    client: &Client<C>,
    transactional_id: &str,
    topics: &[String],
) -> Result<Mended> {
    let metadata = client.fetch_metadata(None, REQUEST_TIMEOUT)?;
    let cluster = Cluster::of(&metadata);
    if !cluster.partitions.iter().any(|(t, _, _)| t == STATE_TOPIC) {
        // No transaction was ever begun on this cluster (the first one creates the topic),
        // and no coordinator would answer.
        return Ok(Mended::default());
    }
    let Some(state) = cluster.describe_transaction(transactional_id)? else {
        return Ok(Mended::default());
    };
    if state.in_progress() {
        return Ok(Mended {
            deferred: true,
            ..Mended::default()
        });
    }
    let open = cluster.open_transactions(topics, Some(state.producer_id))?;
    let mut mended = Mended::default();
    for txn in open {
        let Some(marker) = state.completion(txn.producer_epoch) else {
            continue;
        };
        match cluster.write_marker(&txn, marker)? {
            0 => mended.completed.push((txn, marker)),
            code => mended.refused.push((txn.topic, txn.partition, code)),
        }
    }
    Ok(mended)
}

/// The transactions open on any partition of `topics` (of `producer_id` alone, when given).
pub fn open_transactions<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    producer_id: Option<i64>,
) -> Result<Vec<OpenTransaction>> {
    let metadata = client.fetch_metadata(None, REQUEST_TIMEOUT)?;
    Cluster::of(&metadata).open_transactions(topics, producer_id)
}

/// The coordinator's state of `transactional_id`; `None` when it knows no such id.
pub fn describe_transaction<C: ClientContext>(
    client: &Client<C>,
    transactional_id: &str,
) -> Result<Option<TransactionState>> {
    let metadata = client.fetch_metadata(None, REQUEST_TIMEOUT)?;
    Cluster::of(&metadata).describe_transaction(transactional_id)
}

/// Writes `marker` for `txn` on its partition (to its leader); the leader's error code (0:
/// written).
pub fn write_marker<C: ClientContext>(
    client: &Client<C>,
    txn: &OpenTransaction,
    marker: Marker,
) -> Result<i16> {
    let metadata = client.fetch_metadata(None, REQUEST_TIMEOUT)?;
    Cluster::of(&metadata).write_marker(txn, marker)
}

/// The brokers and partition leaders of one metadata answer.
struct Cluster {
    /// (broker id, "host:port")
    brokers: Vec<(i32, String)>,
    /// (topic, partition, leader id)
    partitions: Vec<(String, i32, i32)>,
}

impl Cluster {
    fn of(metadata: &Metadata) -> Cluster {
        Cluster {
            brokers: metadata
                .brokers()
                .iter()
                .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
                .collect(),
            partitions: metadata
                .topics()
                .iter()
                .flat_map(|t| {
                    t.partitions()
                        .iter()
                        .map(|p| (t.name().to_owned(), p.id(), p.leader()))
                })
                .collect(),
        }
    }

    fn address(&self, broker: i32) -> Option<&str> {
        self.brokers
            .iter()
            .find(|(id, _)| *id == broker)
            .map(|(_, a)| a.as_str())
    }

    fn describe_transaction(&self, transactional_id: &str) -> Result<Option<TransactionState>> {
        let mut body = Wire::default();
        body.array_len(1);
        body.string(transactional_id);
        body.tags();
        let mut busy = None;
        let mut away = None;
        for (_, address) in &self.brokers {
            let answer = match call(address, DESCRIBE_TRANSACTIONS, 0, &body.0) {
                Ok(answer) => answer,
                Err(e) => {
                    away = Some(e); // another broker may be the coordinator
                    continue;
                }
            };
            match read_describe_transactions(&answer)? {
                Ok(state) => return Ok(state),
                Err(NOT_COORDINATOR) => continue,
                Err(code @ (COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE)) => {
                    busy = Some(code)
                }
                Err(code) => {
                    return Err(Error::Refused {
                        api: "DescribeTransactions",
                        code,
                    });
                }
            }
        }
        match (busy, away) {
            (None, Some(e)) => Err(e),
            (busy, _) => Err(Error::CoordinatorBusy(busy.unwrap_or(NOT_COORDINATOR))),
        }
    }

    fn open_transactions(
        &self,
        topics: &[String],
        producer_id: Option<i64>,
    ) -> Result<Vec<OpenTransaction>> {
        let mut open = Vec::new();
        for (leader, address) in &self.brokers {
            // This broker's partitions of `topics`, by topic.
            let mut led: Vec<(&str, Vec<i32>)> = Vec::new();
            for (topic, partition, l) in &self.partitions {
                if l != leader || !topics.iter().any(|t| t == topic) {
                    continue;
                }
                match led.iter_mut().find(|(t, _)| t == topic) {
                    Some((_, ps)) => ps.push(*partition),
                    None => led.push((topic, vec![*partition])),
                }
            }
            if led.is_empty() {
                continue;
            }
            let mut body = Wire::default();
            body.array_len(led.len());
            for (topic, partitions) in &led {
                body.string(topic);
                body.array_len(partitions.len());
                for p in partitions {
                    body.i32(*p);
                }
                body.tags();
            }
            body.tags();
            let answer = call(address, DESCRIBE_PRODUCERS, 0, &body.0)?;
            for txn in read_describe_producers(&answer)? {
                if producer_id.is_none_or(|id| id == txn.producer_id) {
                    open.push(txn);
                }
            }
        }
        Ok(open)
    }

    fn write_marker(&self, txn: &OpenTransaction, marker: Marker) -> Result<i16> {
        let leader = self
            .partitions
            .iter()
            .find(|(t, p, _)| *t == txn.topic && *p == txn.partition)
            .map(|(_, _, l)| *l);
        let Some(address) = leader.and_then(|l| self.address(l)) else {
            return Ok(LEADER_NOT_AVAILABLE);
        };
        let mut body = Wire::default();
        body.array_len(1);
        body.i64(txn.producer_id);
        body.i16(i16::try_from(txn.producer_epoch).unwrap_or(i16::MAX));
        body.i8(i8::from(marker == Marker::Commit));
        body.array_len(1);
        body.string(&txn.topic);
        body.array_len(1);
        body.i32(txn.partition);
        body.tags();
        body.i32(txn.coordinator_epoch.max(0));
        body.tags();
        body.tags();
        let answer = call(address, WRITE_TXN_MARKERS, 1, &body.0)?;
        read_write_txn_markers(&answer)
    }
}

/// Sends one request to `address` and returns the response's body (after its header).
fn call(address: &str, api_key: i16, version: i16, body: &[u8]) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        broker: address.to_owned(),
        source,
    };
    let target = address
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| io(std::io::Error::other("no address")))?;
    let mut stream = TcpStream::connect_timeout(&target, REQUEST_TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
    stream
        .set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(io)?;
    const CORRELATION: i32 = 1;
    let mut request = Wire::default();
    request.i32(0); // the size, set below
    request.i16(api_key);
    request.i16(version);
    request.i32(CORRELATION);
    // Request header v2: the client id is a classic (non-compact) nullable string.
    let client_id = b"anineplus-transactions";
    request.i16(client_id.len() as i16);
    request.0.extend_from_slice(client_id);
    request.tags();
    request.0.extend_from_slice(body);
    let size = (request.0.len() - 4) as i32;
    request.0[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&request.0).map_err(io)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(io)?;
    let size = usize::try_from(i32::from_be_bytes(size)).unwrap_or(0);
    if size > MAX_ANSWER {
        return Err(io(std::io::Error::other(format!(
            "an answer of {size} bytes (at most {MAX_ANSWER} expected)"
        ))));
    }
    let mut answer = vec![0u8; size];
    stream.read_exact(&mut answer).map_err(io)?;
    // Response header v1: correlation id, tagged fields.
    let api = api_name(api_key);
    let mut read = Read::new(&answer, api);
    if read.i32()? != CORRELATION {
        return Err(read.malformed("another request's correlation id"));
    }
    read.skip_tags()?;
    let at = read.at;
    answer.drain(..at);
    Ok(answer)
}

fn api_name(api_key: i16) -> &'static str {
    match api_key {
        DESCRIBE_TRANSACTIONS => "DescribeTransactions",
        DESCRIBE_PRODUCERS => "DescribeProducers",
        WRITE_TXN_MARKERS => "WriteTxnMarkers",
        _ => "Kafka",
    }
}

/// DescribeTransactions v0 for one id: its state, `None` for an unknown id, or the error
/// code.
fn read_describe_transactions(
    body: &[u8],
) -> Result<std::result::Result<Option<TransactionState>, i16>> {
    let mut r = Read::new(body, "DescribeTransactions");
    r.i32()?; // throttle
    if r.array_len()? != 1 {
        return Err(r.malformed("not one transaction state"));
    }
    let code = r.i16()?;
    r.string()?; // the id
    let state = r.string()?;
    r.i32()?; // timeout
    r.i64()?; // start time
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    Ok(match code {
        0 => Ok(Some(TransactionState {
            state,
            producer_id,
            producer_epoch,
        })),
        TRANSACTIONAL_ID_NOT_FOUND => Ok(None),
        code => Err(code),
    })
}

/// DescribeProducers v0: the open transactions of every partition answered without error.
fn read_describe_producers(body: &[u8]) -> Result<Vec<OpenTransaction>> {
    let mut r = Read::new(body, "DescribeProducers");
    let mut open = Vec::new();
    r.i32()?; // throttle
    for _ in 0..r.array_len()? {
        let topic = r.string()?;
        for _ in 0..r.array_len()? {
            let partition = r.i32()?;
            let code = r.i16()?;
            let message = r.nullable_string()?;
            if code != 0 {
                tracing::warn!(%topic, partition, code, ?message, "describing a partition's producers");
            }
            for _ in 0..r.array_len()? {
                let producer_id = r.i64()?;
                let producer_epoch = r.i32()?;
                r.i32()?; // last sequence
                r.i64()?; // last timestamp
                let coordinator_epoch = r.i32()?;
                let start_offset = r.i64()?;
                r.skip_tags()?;
                if start_offset >= 0 {
                    open.push(OpenTransaction {
                        topic: topic.clone(),
                        partition,
                        producer_id,
                        producer_epoch,
                        coordinator_epoch,
                        start_offset,
                    });
                }
            }
            r.skip_tags()?;
        }
        r.skip_tags()?;
    }
    Ok(open)
}

/// WriteTxnMarkers v1 for one marker on one partition: its error code.
fn read_write_txn_markers(body: &[u8]) -> Result<i16> {
    let mut r = Read::new(body, "WriteTxnMarkers");
    let mut code = None;
    for _ in 0..r.array_len()? {
        r.i64()?;
        for _ in 0..r.array_len()? {
            r.string()?;
            for _ in 0..r.array_len()? {
                r.i32()?;
                code = Some(r.i16()?);
                r.skip_tags()?;
            }
            r.skip_tags()?;
        }
        r.skip_tags()?;
    }
    code.ok_or_else(|| r.malformed("no partition result"))
}

/// A request body being encoded (big-endian, flexible-version encodings).
#[derive(Default)]
struct Wire(Vec<u8>);

impl Wire {
    fn i8(&mut self, v: i8) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    /// A compact string: its length + 1, then its bytes.
    fn string(&mut self, s: &str) {
        self.uvarint(s.len() as u64 + 1);
        self.0.extend_from_slice(s.as_bytes());
    }
    /// A compact array's length (+ 1); its items follow.
    fn array_len(&mut self, n: usize) {
        self.uvarint(n as u64 + 1);
    }
    /// No tagged fields.
    fn tags(&mut self) {
        self.uvarint(0);
    }
}

/// A response body being decoded.
struct Read<'a> {
    body: &'a [u8],
    at: usize,
    api: &'static str,
}

impl<'a> Read<'a> {
    fn new(body: &'a [u8], api: &'static str) -> Self {
        Read { body, at: 0, api }
    }
    fn malformed(&self, reason: &str) -> Error {
        Error::Malformed {
            api: self.api,
            reason: format!("{reason} (at byte {} of {})", self.at, self.body.len()),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.body.len())
            .ok_or_else(|| self.malformed("too short"))?;
        let bytes = &self.body[self.at..end];
        self.at = end;
        Ok(bytes)
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn uvarint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.malformed("a varint longer than 64 bits"))
    }
    /// A compact array's length (a null array reads as empty).
    fn array_len(&mut self) -> Result<usize> {
        let n = self.uvarint()?;
        let n = usize::try_from(n.saturating_sub(1)).map_err(|_| self.malformed("huge array"))?;
        if n > self.body.len() {
            return Err(self.malformed("an array longer than the answer"));
        }
        Ok(n)
    }
    fn nullable_string(&mut self) -> Result<Option<String>> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let n = usize::try_from(n - 1).map_err(|_| self.malformed("huge string"))?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| self.malformed("a string that is not UTF-8"))
    }
    fn string(&mut self) -> Result<String> {
        self.nullable_string()?
            .ok_or_else(|| self.malformed("a null string"))
    }
    fn skip_tags(&mut self) -> Result<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?; // tag
            let size = self.uvarint()?;
            self.take(usize::try_from(size).map_err(|_| self.malformed("huge tag"))?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(state: &str, epoch: i16) -> TransactionState {
        TransactionState {
            state: state.to_owned(),
            producer_id: 7,
            producer_epoch: epoch,
        }
    }

    #[test]
    fn the_coordinator_committed_epoch_is_completed_with_a_commit_and_anything_else_aborted() {
        assert_eq!(
            state("CompleteCommit", 3).completion(3),
            Some(Marker::Commit)
        );
        // The coordinator moved on: what that epoch's transaction became is not known.
        assert_eq!(
            state("CompleteCommit", 4).completion(3),
            Some(Marker::Abort)
        );
        assert_eq!(state("CompleteAbort", 3).completion(3), Some(Marker::Abort));
        assert_eq!(state("Empty", 4).completion(3), Some(Marker::Abort));
        // The coordinator still drives a transaction: it writes the markers itself.
        for driving in [
            "Ongoing",
            "PrepareCommit",
            "PrepareAbort",
            "PrepareEpochFence",
        ] {
            assert_eq!(state(driving, 3).completion(3), None, "{driving}");
        }
    }

    #[test]
    fn varints_and_compact_strings_read_back() {
        let mut w = Wire::default();
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64] {
            w.uvarint(v);
        }
        w.string("anime-stats");
        w.0.push(0); // a null string
        let mut r = Read::new(&w.0, "test");
        for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64] {
            assert_eq!(r.uvarint().unwrap(), v);
        }
        assert_eq!(r.string().unwrap(), "anime-stats");
        assert_eq!(r.nullable_string().unwrap(), None);
        assert!(r.i16().is_err(), "nothing is left to read");
    }

    /// A DescribeProducers answer as a broker encodes it: one topic, two partitions, one of
    /// them with a producer holding a transaction open and one whose transaction is done.
    #[test]
    fn describe_producers_keeps_the_open_transactions_only() {
        let mut w = Wire::default();
        w.i32(0);
        w.array_len(1);
        w.string("stats");
        w.array_len(2);
        for (partition, start) in [(0, 42i64), (1, -1)] {
            w.i32(partition);
            w.i16(0);
            w.0.push(0); // no error message
            w.array_len(1);
            w.i64(7);
            w.i32(3);
            w.i32(10);
            w.i64(1_700_000_000_000);
            w.i32(-1);
            w.i64(start);
            // one tagged field, skipped
            w.uvarint(1);
            w.uvarint(0);
            w.uvarint(2);
            w.0.extend_from_slice(&[9, 9]);
            w.tags();
        }
        w.tags();
        w.tags();
        let open = read_describe_producers(&w.0).unwrap();
        assert_eq!(
            open,
            vec![OpenTransaction {
                topic: "stats".into(),
                partition: 0,
                producer_id: 7,
                producer_epoch: 3,
                coordinator_epoch: -1,
                start_offset: 42,
            }]
        );
    }

    #[test]
    fn a_truncated_answer_is_malformed_not_a_panic() {
        let mut w = Wire::default();
        w.i32(0);
        w.array_len(1000);
        for len in 0..w.0.len() {
            assert!(read_describe_producers(&w.0[..len]).is_err());
        }
        assert!(matches!(
            read_describe_producers(&w.0),
            Err(Error::Malformed { .. })
        ));
    }
}
