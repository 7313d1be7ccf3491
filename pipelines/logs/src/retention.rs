//! Retention: daily log indices and archive day folders older than a configured number
//! of days are deleted. The day is the one in the name (the records' own day), so a
//! replayed old record lands in an old index that the next sweep deletes again. A day is
//! kept while `day + days >= today` (UTC): with 30 days, on 2026-12-31 the 1st is the
//! oldest day kept. `--dry-run` lists what a sweep would delete and deletes nothing.

use std::path::PathBuf;

use anineplus_connectors::search::{self, CallError};
use chrono::NaiveDate;
use elasticsearch::Elasticsearch;
use elasticsearch::http::Method;

use crate::archive::Archive;

/// Something old enough to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expired {
    /// A daily index.
    Index {
        /// Its name.
        name: String,
        /// Its day.
        day: NaiveDate,
    },
    /// An archive folder of one service and day.
    Folder {
        /// Its path.
        path: PathBuf,
        /// Its day.
        day: NaiveDate,
    },
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expired::Index { name, day } => write!(f, "index {name} ({day})"),
            Expired::Folder { path, day } => write!(f, "archive {} ({day})", path.display()),
        }
    }
}

/// Whether `day` is past a retention of `days` days on `today`.
pub fn is_expired(day: NaiveDate, days: u32, today: NaiveDate) -> bool {
    day + chrono::Days::new(u64::from(days)) < today
}

/// The day of a daily index `<prefix>-<service>-YYYY.MM.DD`, if `name` is one.
pub fn index_day(prefix: &str, name: &str) -> Option<NaiveDate> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (service, date) = rest.rsplit_once('-')?;
    if service.is_empty() {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y.%m.%d").ok()
}

/// The daily indices under `prefix` past `days` on `today`.
pub async fn expired_indices(
    client: &Elasticsearch,
    prefix: &str,
    days: u32,
    today: NaiveDate,
) -> Result<Vec<Expired>, CallError> {
    let path = format!("/_cat/indices/{prefix}-*?format=json&h=index&expand_wildcards=all");
    let listed = search::call_json(client, Method::Get, &path, None).await?;
    let mut out: Vec<Expired> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["index"].as_str())
        .filter_map(|name| Some((name.to_owned(), index_day(prefix, name)?)))
        .filter(|(_, day)| is_expired(*day, days, today))
        .map(|(name, day)| Expired::Index { name, day })
        .collect();
    out.sort_by_key(ToString::to_string);
    Ok(out)
}

/// The archive folders past `days` on `today` (`<root>/<service>/<YYYY-MM-DD>`).
pub fn expired_folders(
    archive: &Archive,
    days: u32,
    today: NaiveDate,
) -> std::io::Result<Vec<Expired>> {
    let mut out = Vec::new();
    let services = match std::fs::read_dir(archive.root()) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for service in services {
        let service = service?;
        if !service.file_type()?.is_dir() {
            continue;
        }
        for folder in std::fs::read_dir(service.path())? {
            let folder = folder?;
            let name = folder.file_name();
            let Some(day) = name
                .to_str()
                .and_then(|n| NaiveDate::parse_from_str(n, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if folder.file_type()?.is_dir() && is_expired(day, days, today) {
                out.push(Expired::Folder {
                    path: folder.path(),
                    day,
                });
            }
        }
    }
    out.sort_by_key(ToString::to_string);
    Ok(out)
}

/// Deletes one expired index or folder (a missing one counts as deleted).
pub async fn delete(client: Option<&Elasticsearch>, expired: &Expired) -> Result<(), String> {
    match expired {
        Expired::Index { name, .. } => {
            let client = client.ok_or("no search engine configured")?;
            match search::call_json(client, Method::Delete, &format!("/{name}"), None).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        }
        Expired::Folder { path, .. } => match std::fs::remove_dir_all(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn a_day_goes_once_it_is_more_than_the_retention_old() {
        let today = d(2026, 12, 31);
        assert!(!is_expired(d(2026, 12, 1), 30, today));
        assert!(is_expired(d(2026, 11, 30), 30, today));
        assert!(!is_expired(today, 0, today), "0 days keeps today");
        assert!(is_expired(d(2026, 12, 30), 0, today));
    }

    #[test]
    fn index_days_come_from_names_under_the_prefix_only() {
        assert_eq!(
            index_day("logs", "logs-api-2026.12.03"),
            Some(d(2026, 12, 3))
        );
        assert_eq!(
            index_day("logs", "logs-my-service-2026.01.09"),
            Some(d(2026, 1, 9))
        );
        assert_eq!(index_day("logs", "logs-2026.12.03"), None, "no service");
        assert_eq!(index_day("logs", "logsx-api-2026.12.03"), None);
        assert_eq!(index_day("logs", "logs-api-v1"), None);
    }

    #[test]
    fn old_archive_folders_are_listed_and_others_kept() {
        let root = std::env::temp_dir().join(format!("anineplus-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let archive = Archive::new(&root);
        for (service, day) in [
            ("api", "2026-10-01"),
            ("api", "2026-12-02"),
            ("indexer", "2026-09-30"),
        ] {
            std::fs::create_dir_all(root.join(service).join(day)).unwrap();
        }
        std::fs::create_dir_all(root.join("api").join("not-a-day")).unwrap();
        let expired = expired_folders(&archive, 30, d(2026, 12, 3)).unwrap();
        let days: Vec<String> = expired
            .iter()
            .map(|e| match e {
                Expired::Folder { day, .. } => day.to_string(),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(days, ["2026-10-01", "2026-09-30"]);
        std::fs::remove_dir_all(&root).unwrap();
        assert!(
            expired_folders(&archive, 30, d(2026, 12, 3))
                .unwrap()
                .is_empty(),
            "no root: nothing"
        );
    }
}
