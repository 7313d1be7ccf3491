//! `avro_decode_speedup`: ns per record of the generic `apache-avro` path
//! (`from_avro_datum` + `from_value`, schema parsed once) ÷ ns per record of our decoder,
//! both decoding the same framed `anime.updated` envelopes into `Envelope<AnimeData>`.
//!
//! The two arms alternate in 7 rounds and each figure is the median round, so a burst of
//! noise on the shared machine hits both arms alike. `BENCH_AVRO_RECORDS` sets the records
//! per round (default 50,000).
//! `BENCH_AVRO_ARM=ours|generic` runs one arm alone, for a profiler.
//! Context figure: `avro_encode_ns_per_record`, `encode_with_id` of the same envelopes (the
//! outbox relay's and `TopicSink`'s encode).

use std::hint::black_box;
use std::time::Instant;

use anineplus_schemas::codec::{encode_with_id, reader_schema};
use anineplus_schemas::events::{AnimeData, samples};
use anineplus_schemas::{Decoder, Envelope, Topic, wire};
use anineplus_testkit::bench;

fn main() {
    let n = bench::size("BENCH_AVRO_RECORDS", 50_000);
    let schema = reader_schema(Topic::Anime);
    let records: Vec<Vec<u8>> = (0..1024)
        .map(|i| encode_with_id(1, &samples::anime_updated(i)).unwrap())
        .collect();
    let decoder = Decoder::identity(schema).unwrap();

    let ours = || {
        let start = Instant::now();
        for i in 0..n {
            let (_, body) = wire::split(&records[i % records.len()]).unwrap();
            let value: Envelope<AnimeData> = decoder.decode(body).unwrap();
            black_box(value);
        }
        start.elapsed().as_nanos() as f64 / n as f64
    };
    let generic = || {
        let start = Instant::now();
        for i in 0..n {
            let (_, body) = wire::split(&records[i % records.len()]).unwrap();
            #[allow(deprecated)]
            let value = apache_avro::from_avro_datum(schema, &mut &body[..], None).unwrap();
            let value: Envelope<AnimeData> = apache_avro::from_value(&value).unwrap();
            black_box(value);
        }
        start.elapsed().as_nanos() as f64 / n as f64
    };

    // Same result from both arms before timing anything.
    let (_, body) = wire::split(&records[3]).unwrap();
    #[allow(deprecated)]
    let generic_value = apache_avro::from_avro_datum(schema, &mut &body[..], None).unwrap();
    let generic_value: Envelope<AnimeData> = apache_avro::from_value(&generic_value).unwrap();
    assert_eq!(
        decoder.decode::<Envelope<AnimeData>>(body).unwrap(),
        generic_value
    );

    // Profiling aid: `BENCH_AVRO_ARM=ours` (or `generic`) runs one arm only, records nothing.
    if let Ok(arm) = std::env::var("BENCH_AVRO_ARM") {
        let ns: f64 = (0..20)
            .map(|_| if arm == "ours" { ours() } else { generic() })
            .sum::<f64>()
            / 20.0;
        println!("{arm}: {ns:.1} ns/record");
        return;
    }
    // Context: what the outbox relay pays to frame one event (`encode_with_id`).
    let events: Vec<_> = (0..1024).map(samples::anime_updated).collect();
    let encode = || {
        let start = Instant::now();
        for i in 0..n {
            black_box(encode_with_id(1, &events[i % events.len()]).unwrap());
        }
        start.elapsed().as_nanos() as f64 / n as f64
    };
    ours();
    generic();
    let (mut ours_ns, mut generic_ns, mut encode_ns) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..7 {
        ours_ns.push(ours());
        generic_ns.push(generic());
        encode_ns.push(encode());
    }
    let (ours_ns, generic_ns) = (bench::median(ours_ns), bench::median(generic_ns));
    bench::record(&[
        ("avro_decode_ns_per_record_ours", ours_ns),
        ("avro_decode_ns_per_record_generic", generic_ns),
        ("avro_decode_speedup", generic_ns / ours_ns),
        ("avro_encode_ns_per_record", bench::median(encode_ns)),
    ])
    .expect("write bench results");
}
