//! PostgreSQL storage of schemas, subject versions, compatibility levels and modes.
//!
//! Every request works through one [`Session`]: a transaction on one pooled connection, so a
//! request never waits for a second connection while holding the first. Writes to a subject
//! take a transaction-scoped advisory lock on it ([`Session::lock_subjects`]), which
//! serialises the writers of that subject across every registry instance on the database:
//! no two writers compute the same next version, and a check (compatibility, delete order)
//! holds until the commit. Schema ids come from one sequence shared by all subjects, and a
//! unique fingerprint gives an equal schema the same id under any subject, even when two
//! instances insert it at the same moment.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use crate::cache::SchemaCache;
use crate::error::Result;

/// A reference from a schema to a named type registered under another subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    /// The referenced type's full name, as the referencing schema spells it.
    pub name: String,
    /// The subject holding the referenced schema.
    pub subject: String,
    /// Its version (`-1` in a request means the latest; stored resolved).
    pub version: i32,
}

/// A registered schema. Immutable: an id always means this schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    /// The global id.
    pub id: i32,
    /// `AVRO`.
    pub schema_type: String,
    /// The canonical text.
    pub schema: String,
    /// What it references, in the submitted order.
    pub references: Vec<SchemaReference>,
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRow {
    /// The version number, from 1.
    pub version: i32,
    /// The schema it registers.
    pub schema_id: i32,
    /// Soft-deleted (hidden unless asked for, removable permanently).
    pub deleted: bool,
}

/// Where a schema is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The subject.
    pub subject: String,
    /// The version.
    pub version: i32,
    /// Whether that version is soft-deleted.
    pub deleted: bool,
}

/// A schema that references a subject version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Referrer {
    /// The referencing schema's id.
    pub id: i32,
    /// Whether it is registered in at least one version that is not soft-deleted.
    pub live: bool,
}

/// The per-subject settings, each in its own table; the subject `""` holds the global value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The compatibility level.
    Compatibility,
    /// The mode (READWRITE, READONLY, IMPORT).
    Mode,
}

impl Setting {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Setting::Compatibility => ("compatibility_levels", "level"),
            Setting::Mode => ("modes", "mode"),
        }
    }
}

/// A new schema to insert.
#[derive(Debug, Clone)]
pub struct NewSchema<'a> {
    /// What makes two schemas equal (canonical text and references), hashed into the
    /// fingerprint.
    pub identity: &'a str,
    /// The canonical text.
    pub schema: &'a str,
    /// Its references, resolved to concrete versions.
    pub references: &'a [SchemaReference],
}

/// The registry's database: a pool and the schema cache.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    cache: Arc<SchemaCache>,
}

/// Advisory lock namespace of subject writers (the second key of `hashtextextended`).
const SUBJECT_LOCK_SEED: i64 = 8081;
/// Advisory lock of IMPORT-mode writes with explicit ids, which move the id sequence.
const IMPORT_LOCK: i64 = 0x5245_4749_4d50; // "REGIMP"

impl Store {
    /// Connects to `url` and applies the migrations (concurrent instances are safe: sqlx
    /// takes a lock while migrating).
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect(url)
            .await?;
        let store = Self::new(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// A store over an existing pool (migrations not applied: see [`Store::migrate`]).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cache: Arc::default(),
        }
    }

    /// Applies `registry/migrations/`.
    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// The pool (for closing it, or for tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A schema by id: from the cache, else one query outside any transaction.
    pub async fn schema(&self, id: i32) -> Result<Option<Arc<StoredSchema>>> {
        if let Some(hit) = self.cache.get(id) {
            return Ok(Some(hit));
        }
        let mut conn = self.pool.acquire().await?;
        fetch_schema(&mut conn, &self.cache, id).await
    }

    /// Starts a session (a transaction) for one request.
    pub async fn begin(&self) -> Result<Session> {
        Ok(Session {
            tx: self.pool.begin().await?,
            cache: Arc::clone(&self.cache),
        })
    }
}

async fn fetch_schema(
    conn: &mut PgConnection,
    cache: &SchemaCache,
    id: i32,
) -> Result<Option<Arc<StoredSchema>>> {
    if let Some(hit) = cache.get(id) {
        return Ok(Some(hit));
    }
    let row = sqlx::query("SELECT schema_type, schema, refs FROM schemas WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let refs: sqlx::types::Json<Vec<SchemaReference>> = row.try_get("refs")?;
    let schema = Arc::new(StoredSchema {
        id,
        schema_type: row.try_get("schema_type")?,
        schema: row.try_get("schema")?,
        references: refs.0,
    });
    cache.insert(Arc::clone(&schema));
    Ok(Some(schema))
}

/// One request's transaction. Dropping it without [`Session::commit`] rolls back.
#[derive(Debug)]
pub struct Session {
    tx: Transaction<'static, Postgres>,
    cache: Arc<SchemaCache>,
}

impl Session {
    /// Takes the write locks of `subjects` until the end of the transaction, in sorted order
    /// so that two sessions locking overlapping sets cannot deadlock.
    pub async fn lock_subjects(&mut self, subjects: &[&str]) -> Result<()> {
        let mut sorted: Vec<&str> = subjects.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for subject in sorted {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, $2))")
                .bind(subject)
                .bind(SUBJECT_LOCK_SEED)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Commits the session's writes.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// A schema by id (cached).
    pub async fn schema(&mut self, id: i32) -> Result<Option<Arc<StoredSchema>>> {
        fetch_schema(&mut self.tx, &self.cache, id).await
    }

    /// Every version of `subject`, soft-deleted ones included, in version order.
    pub async fn versions(&mut self, subject: &str) -> Result<Vec<VersionRow>> {
        let rows = sqlx::query(
            "SELECT version, schema_id, deleted FROM subject_versions \
             WHERE subject = $1 ORDER BY version",
        )
        .bind(subject)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(VersionRow {
                    version: row.try_get("version")?,
                    schema_id: row.try_get("schema_id")?,
                    deleted: row.try_get("deleted")?,
                })
            })
            .collect()
    }

    /// The subjects with at least one version (not soft-deleted, unless `include_deleted`),
    /// sorted, optionally only those starting with `prefix`.
    pub async fn subjects(&mut self, include_deleted: bool, prefix: &str) -> Result<Vec<String>> {
        let subjects = sqlx::query_scalar(
            "SELECT subject FROM subject_versions WHERE starts_with(subject, $2) \
             GROUP BY subject HAVING $1 OR bool_or(NOT deleted) ORDER BY subject",
        )
        .bind(include_deleted)
        .bind(prefix)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(subjects)
    }

    /// Where schema `id` is registered.
    pub async fn usages(&mut self, id: i32) -> Result<Vec<Usage>> {
        let rows = sqlx::query(
            "SELECT subject, version, deleted FROM subject_versions \
             WHERE schema_id = $1 ORDER BY subject, version",
        )
        .bind(id)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Usage {
                    subject: row.try_get("subject")?,
                    version: row.try_get("version")?,
                    deleted: row.try_get("deleted")?,
                })
            })
            .collect()
    }

    /// The registered schemas that reference `subject` version `version`.
    pub async fn referrers(&mut self, subject: &str, version: i32) -> Result<Vec<Referrer>> {
        let needle = serde_json::json!([{ "subject": subject, "version": version }]);
        let rows = sqlx::query(
            "SELECT s.id, bool_or(NOT sv.deleted) AS live \
             FROM schemas s JOIN subject_versions sv ON sv.schema_id = s.id \
             WHERE s.refs @> $1 GROUP BY s.id ORDER BY s.id",
        )
        .bind(sqlx::types::Json(needle))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Referrer {
                    id: row.try_get("id")?,
                    live: row.try_get("live")?,
                })
            })
            .collect()
    }

    /// The id of the schema with this identity, if registered.
    pub async fn find_schema(&mut self, identity: &str) -> Result<Option<i32>> {
        let id = sqlx::query_scalar(
            "SELECT id FROM schemas WHERE fingerprint = sha256(convert_to($1, 'UTF8'))",
        )
        .bind(identity)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(id)
    }

    /// Inserts a schema with the next global id, or returns the id it already has (also when
    /// another session inserted it concurrently: the unique fingerprint makes the second
    /// insert wait for the first and then find its row).
    pub async fn insert_schema(&mut self, new: &NewSchema<'_>) -> Result<i32> {
        if let Some(id) = self.find_schema(new.identity).await? {
            return Ok(id);
        }
        let inserted: Option<i32> = sqlx::query_scalar(
            "INSERT INTO schemas (id, fingerprint, schema_type, schema, refs) \
             VALUES (nextval('schema_ids'), sha256(convert_to($1, 'UTF8')), 'AVRO', $2, $3) \
             ON CONFLICT (fingerprint) DO NOTHING RETURNING id",
        )
        .bind(new.identity)
        .bind(new.schema)
        .bind(sqlx::types::Json(new.references))
        .fetch_optional(&mut *self.tx)
        .await?;
        match inserted {
            Some(id) => Ok(id),
            None => self.find_schema(new.identity).await?.ok_or_else(|| {
                sqlx::Error::Protocol("schema vanished after a fingerprint conflict".into()).into()
            }),
        }
    }

    /// IMPORT mode: inserts a schema under the given id and moves the id sequence past it,
    /// so later registrations never reuse it. The caller checked that neither the id nor the
    /// schema is taken.
    pub async fn insert_schema_with_id(&mut self, id: i32, new: &NewSchema<'_>) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(IMPORT_LOCK)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "INSERT INTO schemas (id, fingerprint, schema_type, schema, refs) \
             VALUES ($1, sha256(convert_to($2, 'UTF8')), 'AVRO', $3, $4)",
        )
        .bind(id)
        .bind(new.identity)
        .bind(new.schema)
        .bind(sqlx::types::Json(new.references))
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "SELECT setval('schema_ids', GREATEST($1, (SELECT last_value FROM schema_ids)))",
        )
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Adds `version` of `subject` pointing at schema `schema_id`.
    pub async fn insert_version(
        &mut self,
        subject: &str,
        version: i32,
        schema_id: i32,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO subject_versions (subject, version, schema_id) VALUES ($1, $2, $3)",
        )
        .bind(subject)
        .bind(version)
        .bind(schema_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Soft-deletes (`permanent == false`) or removes the given versions of `subject`.
    pub async fn delete_versions(
        &mut self,
        subject: &str,
        versions: &[i32],
        permanent: bool,
    ) -> Result<()> {
        let sql = if permanent {
            "DELETE FROM subject_versions WHERE subject = $1 AND version = ANY($2)"
        } else {
            "UPDATE subject_versions SET deleted = true WHERE subject = $1 AND version = ANY($2)"
        };
        sqlx::query(sql)
            .bind(subject)
            .bind(versions)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// A setting of `subject` (`""`: the global one), if set.
    pub async fn setting(&mut self, setting: Setting, subject: &str) -> Result<Option<String>> {
        let (table, column) = setting.table();
        let value = sqlx::query_scalar(&format!("SELECT {column} FROM {table} WHERE subject = $1"))
            .bind(subject)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(value)
    }

    /// Sets a setting of `subject` (`""`: the global one).
    pub async fn set_setting(
        &mut self,
        setting: Setting,
        subject: &str,
        value: &str,
    ) -> Result<()> {
        let (table, column) = setting.table();
        sqlx::query(&format!(
            "INSERT INTO {table} (subject, {column}) VALUES ($1, $2) \
             ON CONFLICT (subject) DO UPDATE SET {column} = EXCLUDED.{column}"
        ))
        .bind(subject)
        .bind(value)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Removes a setting of `subject`; returns the value it had.
    pub async fn delete_setting(
        &mut self,
        setting: Setting,
        subject: &str,
    ) -> Result<Option<String>> {
        let (table, column) = setting.table();
        let value = sqlx::query_scalar(&format!(
            "DELETE FROM {table} WHERE subject = $1 RETURNING {column}"
        ))
        .bind(subject)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(value)
    }
}
