//! The cold archive: gzip NDJSON files on disk, one folder per service and day,
//! `<root>/<service>/<YYYY-MM-DD>/p<partition>-<first offset>-<last offset>.ndjson.gz`.
//!
//! The archive runs as a pipeline of its own (`logs-archive`, its own consumer group): a
//! full or failing disk pauses the archive, never the index. Each batch of the lane becomes
//! one file per (service, day, partition) it holds; batches are cut by count, bytes and
//! time only (`BatchConfig::cut_when_idle` off), which is the archive's rotation: a file
//! closes at the size limit or at the end of the interval. A file is written as a hidden
//! temporary file, synced, then renamed into place (and the folder synced), and only then
//! are the records done and their offsets stored.
//!
//! A replay never adds a second copy: before writing, the folder's finished files of the
//! partition are listed, and records whose offsets fall inside one's range are already
//! archived and skipped (so after a crash between a rename and the offset commit, the
//! re-read records land nowhere twice). The invariant: every record of a folder whose
//! offset lies in the range of a finished file of its partition is in exactly one
//! finished file. Temporary files of a crashed writer are removed after an hour.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anineplus_schemas::events::LogRecord;
use anineplus_streams::Located;
use anineplus_streams::sink::{Outcome, Sink};
use chrono::NaiveDate;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::documents::{self, LogDocument};

/// The suffix of a finished archive file.
pub const SUFFIX: &str = ".ndjson.gz";
/// How old a leftover temporary file must be before it is removed.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// One record as the archive takes it: its folder, its coordinates and its JSON line.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveLine {
    /// The service's folder name ([`documents::service_slug`]).
    pub service: String,
    /// The record's own day (UTC).
    pub day: NaiveDate,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The document as one line of JSON (no newline).
    pub line: Vec<u8>,
}

/// What the archive writes for one record, or why not.
pub type ArchiveEntry = Result<ArchiveLine, String>;

/// The archive line of `record`.
pub fn archive_entry(record: &Located<LogRecord>) -> ArchiveEntry {
    let Some(doc) = LogDocument::new(record) else {
        return Err(documents::refusal(record));
    };
    Ok(ArchiveLine {
        service: documents::service_slug(&record.value.service),
        day: documents::day_of(record.value.timestamp).expect("checked by LogDocument::new"),
        partition: record.partition,
        offset: record.offset,
        line: serde_json::to_vec(&doc).expect("a log document is JSON"),
    })
}

/// The name of the file holding `partition`'s records `first..=last`: offsets padded so
/// that names sort in offset order.
pub fn file_name(partition: i32, first: i64, last: i64) -> String {
    format!("p{partition:03}-{first:020}-{last:020}{SUFFIX}")
}

/// The partition and offset range of a finished file's name.
pub fn parse_file_name(name: &str) -> Option<(i32, i64, i64)> {
    let stem = name.strip_prefix('p')?.strip_suffix(SUFFIX)?;
    let mut parts = stem.split('-');
    let partition = parts.next()?.parse().ok()?;
    let first = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    (parts.next().is_none() && first <= last).then_some((partition, first, last))
}

/// The archive under one root folder.
#[derive(Debug, Clone)]
pub struct Archive {
    root: PathBuf,
    level: Compression,
}

impl Archive {
    /// The archive under `root` (created when missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Archive {
            root: root.into(),
            level: Compression::default(),
        }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of `service`'s records of `day`.
    pub fn folder(&self, service: &str, day: NaiveDate) -> PathBuf {
        self.root
            .join(service)
            .join(day.format("%Y-%m-%d").to_string())
    }

    /// Writes a batch: one file per (service, day, partition) with its records not yet
    /// archived; the outcome of `items[i]` is at `i`. A refused record is a permanent
    /// failure; a file that cannot be written makes its records `Unavailable` (the lane
    /// waits for the disk rather than dead-lettering).
    pub fn write_batch(&self, items: &[ArchiveEntry]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Done; items.len()];
        let mut groups: BTreeMap<(&str, NaiveDate, i32), Vec<usize>> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Ok(line) => groups
                    .entry((&line.service, line.day, line.partition))
                    .or_default()
                    .push(i),
                Err(reason) => outcomes[i] = Outcome::Permanent(reason.clone()),
            }
        }
        for ((service, day, partition), indices) in groups {
            let lines: Vec<&ArchiveLine> = indices
                .iter()
                .map(|&i| items[i].as_ref().expect("grouped lines are Ok"))
                .collect();
            if let Err(e) = self.write_group(service, day, partition, lines) {
                let reason = format!(
                    "archive {}: {e}",
                    self.folder(service, day)
                        .join(format!("p{partition:03}-…"))
                        .display()
                );
                for i in indices {
                    outcomes[i] = Outcome::Unavailable(reason.clone());
                }
            }
        }
        outcomes
    }

    /// Writes one file of `partition`'s `lines` into the folder of `service` and `day`,
    /// leaving out the records finished files already hold. Returns the file written, if
    /// any record was left.
    pub fn write_group(
        &self,
        service: &str,
        day: NaiveDate,
        partition: i32,
        mut lines: Vec<&ArchiveLine>,
    ) -> io::Result<Option<PathBuf>> {
        let folder = self.folder(service, day);
        fs::create_dir_all(&folder)?;
        let covered = finished_ranges(&folder, partition)?;
        lines.sort_by_key(|l| l.offset);
        lines.dedup_by_key(|l| l.offset);
        lines.retain(|l| !covered.iter().any(|r| r.contains(&l.offset)));
        let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
            return Ok(None);
        };
        let name = file_name(partition, first.offset, last.offset);
        let target = folder.join(&name);
        let tmp = folder.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut gz = GzEncoder::new(BufWriter::new(File::create(&tmp)?), self.level);
            for line in &lines {
                gz.write_all(&line.line)?;
                gz.write_all(b"\n")?;
            }
            let file = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            fs::rename(&tmp, &target)?;
            File::open(&folder)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| Some(target))
    }
}

/// The offset ranges of `partition`'s finished files in `folder`; removes temporary files
/// older than an hour on the way (a crashed writer's).
fn finished_ranges(
    folder: &Path,
    partition: i32,
) -> io::Result<Vec<std::ops::RangeInclusive<i64>>> {
    let mut ranges = Vec::new();
    for entry in fs::read_dir(folder)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') && name.ends_with(".tmp") {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() > STALE_TMP)
                .unwrap_or(false);
            if stale {
                let _ = fs::remove_file(entry.path());
            }
            continue;
        }
        if let Some((p, first, last)) = parse_file_name(name)
            && p == partition
        {
            ranges.push(first..=last);
        }
    }
    Ok(ranges)
}

/// The archive as a streams sink.
pub struct ArchiveSink {
    archive: Archive,
}

impl ArchiveSink {
    /// A sink writing into `archive`.
    pub fn new(archive: Archive) -> Self {
        ArchiveSink { archive }
    }
}

impl Sink for ArchiveSink {
    type Item = ArchiveEntry;

    async fn write(&self, items: &[ArchiveEntry]) -> Vec<Outcome> {
        // File I/O blocks: take this worker thread out of the scheduler meanwhile.
        tokio::task::block_in_place(|| self.archive.write_batch(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anineplus_schemas::events::LogLevel;
    use std::io::Read;
    use std::sync::Arc;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "anineplus-archive-{name}-{}-{:?}",
            std::process::id(),
            SystemTime::now()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn entry(service: &str, timestamp: i64, partition: i32, offset: i64) -> ArchiveEntry {
        archive_entry(&Located {
            topic: Arc::from("logs"),
            partition,
            offset,
            value: LogRecord {
                level: LogLevel::Info,
                timestamp,
                service: service.to_owned(),
                trace_id: None,
                correlation_id: None,
                message: format!("record {offset}"),
                context: BTreeMap::new(),
            },
        })
    }

    fn read_lines(path: &Path) -> Vec<serde_json::Value> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    const DAY: i64 = 1_796_342_400_000; // 2026-12-04T00:00:00Z

    #[test]
    fn names_carry_the_partition_and_range_and_read_back() {
        let name = file_name(2, 7, 1234);
        assert_eq!(
            name,
            "p002-00000000000000000007-00000000000000001234.ndjson.gz"
        );
        assert_eq!(parse_file_name(&name), Some((2, 7, 1234)));
        assert_eq!(parse_file_name("p2-9-3.ndjson.gz"), None, "first > last");
        assert_eq!(parse_file_name(&format!(".{name}.1.tmp")), None);
    }

    #[test]
    fn a_batch_becomes_one_file_per_service_day_and_partition() {
        let root = scratch("groups");
        let archive = Archive::new(&root);
        let items = vec![
            entry("api", DAY - 1, 0, 10),
            entry("api", DAY, 0, 11),
            entry("Indexer", DAY, 0, 12),
            entry("api", DAY + 5, 0, 13),
            entry("api", -1, 0, 14),
            entry("api", DAY, 1, 3),
        ];
        let outcomes = archive.write_batch(&items);
        assert!(matches!(outcomes[4], Outcome::Permanent(_)), "{outcomes:?}");
        assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Done).count(), 5);
        let d3 = archive.folder("api", NaiveDate::from_ymd_opt(2026, 12, 3).unwrap());
        let d4 = archive.folder("api", NaiveDate::from_ymd_opt(2026, 12, 4).unwrap());
        assert_eq!(files(&d3), [file_name(0, 10, 10)]);
        assert_eq!(files(&d4), [file_name(0, 11, 13), file_name(1, 3, 3)]);
        let lines = read_lines(&d4.join(file_name(0, 11, 13)));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], "record 11");
        assert_eq!(lines[1]["kafka"]["offset"], 13);
        let indexer = archive.folder("indexer", NaiveDate::from_ymd_opt(2026, 12, 4).unwrap());
        assert_eq!(files(&indexer), [file_name(0, 12, 12)]);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_replay_with_other_batch_bounds_adds_no_second_copy() {
        let root = scratch("replay");
        let archive = Archive::new(&root);
        let batch = |offsets: std::ops::RangeInclusive<i64>| -> Vec<ArchiveEntry> {
            offsets.map(|o| entry("api", DAY, 0, o)).collect()
        };
        assert!(
            archive
                .write_batch(&batch(100..=150))
                .iter()
                .all(|o| *o == Outcome::Done)
        );
        // After a crash before the commit the records are read again, cut differently.
        assert!(
            archive
                .write_batch(&batch(90..=200))
                .iter()
                .all(|o| *o == Outcome::Done)
        );
        assert!(
            archive
                .write_batch(&batch(120..=130))
                .iter()
                .all(|o| *o == Outcome::Done)
        );
        let folder = archive.folder("api", NaiveDate::from_ymd_opt(2026, 12, 4).unwrap());
        assert_eq!(
            files(&folder),
            [file_name(0, 90, 200), file_name(0, 100, 150)]
        );
        let mut offsets: Vec<i64> = files(&folder)
            .iter()
            .flat_map(|f| read_lines(&folder.join(f)))
            .map(|l| l["kafka"]["offset"].as_i64().unwrap())
            .collect();
        offsets.sort();
        assert_eq!(
            offsets,
            (90..=200).collect::<Vec<_>>(),
            "each record exactly once"
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_unwritable_folder_makes_its_records_wait_and_leaves_no_file() {
        let root = scratch("unwritable");
        // The root is a file: no folder can be made under it.
        fs::write(&root, b"not a folder").unwrap();
        let archive = Archive::new(&root);
        let outcomes = archive.write_batch(&[entry("api", DAY, 0, 1)]);
        assert!(
            matches!(&outcomes[0], Outcome::Unavailable(r) if r.contains("archive")),
            "{outcomes:?}"
        );
        fs::remove_file(root).unwrap();
    }
}
