//! The registry's rules, over the store: what registering, looking up, checking and deleting
//! mean, in Confluent's terms and with Confluent's error codes. HTTP handlers call these
//! methods and only translate to and from JSON.

use std::collections::HashSet;
use std::sync::Arc;

use crate::avro::AvroSchema;
use crate::canonical::canonical_value;
use crate::compat::{self, Compatibility};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::mode::Mode;
use crate::store::{NewSchema, SchemaReference, Session, Setting, Store, StoredSchema, VersionRow};

/// A schema as a client submits it (to register, look up or check).
#[derive(Debug, Clone, Default)]
pub struct Submission {
    /// The schema's JSON text.
    pub schema: String,
    /// `AVRO` or absent; anything else is refused.
    pub schema_type: Option<String>,
    /// Named types it takes from other subjects.
    pub references: Vec<SchemaReference>,
}

/// A version as the API names it: a number or `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// The newest version (`latest` or `-1`).
    Latest,
    /// A version number, from 1.
    Number(i32),
}

impl VersionSpec {
    /// Parses `latest`, `-1` or a number in 1..=2^31-1 (anything else: 42202).
    pub fn parse(text: &str) -> Result<Self> {
        if text.eq_ignore_ascii_case("latest") || text == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<i32>() {
            Ok(n) if n > 0 => Ok(VersionSpec::Number(n)),
            _ => Err(Error::InvalidVersion(text.to_owned())),
        }
    }
}

/// A subject version with its schema.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version.
    pub version: i32,
    /// The schema registered at that version.
    pub schema: Arc<StoredSchema>,
}

/// Explicit placement of a registration, allowed in IMPORT mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement {
    /// The schema id to use.
    pub id: Option<i32>,
    /// The version to use.
    pub version: Option<i32>,
}

/// A validated submission: canonical text, resolved references, parsed schema.
struct Prepared {
    canonical: String,
    references: Vec<SchemaReference>,
    identity: String,
    avro: AvroSchema,
}

impl Prepared {
    fn new_schema(&self) -> NewSchema<'_> {
        NewSchema {
            identity: &self.identity,
            schema: &self.canonical,
            references: &self.references,
        }
    }
}

/// The schema registry: its store, its default compatibility level and its limits.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Store,
    default_compatibility: Compatibility,
    limits: Limits,
}

impl Registry {
    /// A registry over `store`, using `default_compatibility` where none is configured,
    /// with the default [`Limits`].
    pub fn new(store: Store, default_compatibility: Compatibility) -> Self {
        Self {
            store,
            default_compatibility,
            limits: Limits::default(),
        }
    }

    /// The same registry with other bounds on submitted schemas.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The bounds on submitted schemas.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The store (to close its pool).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `GET /schemas/ids/{id}`: the schema, optionally only if registered under `subject`.
    pub async fn schema_by_id(&self, id: i32, subject: Option<&str>) -> Result<Arc<StoredSchema>> {
        let schema = self
            .store
            .schema(id)
            .await?
            .ok_or_else(|| Error::SchemaNotFound(format!("Schema {id} not found")))?;
        if let Some(subject) = subject {
            let mut session = self.store.begin().await?;
            if !session
                .usages(id)
                .await?
                .iter()
                .any(|u| u.subject == subject)
            {
                return Err(Error::SchemaNotFound(format!(
                    "Schema {id} not found under subject '{subject}'"
                )));
            }
        }
        Ok(schema)
    }

    /// `GET /schemas/ids/{id}/versions`: where the schema is registered.
    pub async fn usages_of(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>> {
        self.schema_by_id(id, None).await?;
        let mut session = self.store.begin().await?;
        Ok(session
            .usages(id)
            .await?
            .into_iter()
            .filter(|u| deleted || !u.deleted)
            .map(|u| (u.subject, u.version))
            .collect())
    }

    /// `GET /subjects`.
    pub async fn subjects(&self, deleted: bool, prefix: &str) -> Result<Vec<String>> {
        self.store.begin().await?.subjects(deleted, prefix).await
    }

    /// `GET /subjects/{s}/versions`.
    pub async fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>> {
        let mut session = self.store.begin().await?;
        let visible = visible(session.versions(subject).await?, deleted);
        if visible.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        Ok(visible.iter().map(|r| r.version).collect())
    }

    /// `GET /subjects/{s}/versions/{v}`.
    pub async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion> {
        let mut session = self.store.begin().await?;
        let row = find_version(&mut session, subject, spec, deleted).await?;
        self.subject_version(&mut session, subject, row).await
    }

    /// `POST /subjects/{s}`: the version of `subject` that registers this schema.
    pub async fn lookup(
        &self,
        subject: &str,
        submission: &Submission,
        deleted: bool,
    ) -> Result<SubjectVersion> {
        let mut session = self.store.begin().await?;
        let visible = visible(session.versions(subject).await?, deleted);
        if visible.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        let prepared = prepare(&mut session, submission, &self.limits).await?;
        let id = session.find_schema(&prepared.identity).await?;
        let row = visible
            .iter()
            .rev()
            .find(|r| Some(r.schema_id) == id)
            .copied()
            .ok_or_else(|| {
                Error::SchemaNotFound(format!("Schema not found under subject '{subject}'"))
            })?;
        self.subject_version(&mut session, subject, row).await
    }

    /// `POST /subjects/{s}/versions`: registers the schema, or returns its id when the
    /// subject already has it. Checked against the subject's compatibility level, except in
    /// IMPORT mode, where `placement` may fix the id and version.
    pub async fn register(
        &self,
        subject: &str,
        submission: &Submission,
        placement: Placement,
    ) -> Result<i32> {
        // The compatibility check is the long part: it runs first, outside any transaction
        // and off the async workers; the write transaction below only confirms that the
        // versions it checked against are still the ones to check (else it checks again).
        let precheck = self.precheck(subject, submission).await?;
        let mut session = self.store.begin().await?;
        let mut locked: Vec<&str> = vec![subject];
        locked.extend(submission.references.iter().map(|r| r.subject.as_str()));
        session.lock_subjects(&locked).await?;

        let mode = self.effective_mode(&mut session, subject).await?;
        if mode == Mode::ReadOnly {
            return Err(read_only(subject));
        }
        let prepared = prepare(&mut session, submission, &self.limits).await?;
        let rows = session.versions(subject).await?;
        let existing = session.find_schema(&prepared.identity).await?;
        if let Some(id) = existing
            && let Some(row) = rows.iter().find(|r| !r.deleted && r.schema_id == id)
        {
            check_placement(placement, id, row.version, subject)?;
            return Ok(id);
        }
        let next_version = rows.last().map_or(1, |r| r.version + 1);

        let (id, version) = if mode == Mode::Import {
            self.import(&mut session, subject, &prepared, existing, &rows, placement)
                .await?
        } else {
            if placement.id.is_some() {
                return Err(Error::OperationNotPermitted(format!(
                    "A schema id can be given only in IMPORT mode; subject '{subject}' is in {mode} mode"
                )));
            }
            if let Some(version) = placement.version.filter(|v| *v != next_version) {
                return Err(Error::OperationNotPermitted(format!(
                    "Version {version} is not the next version ({next_version}) of subject '{subject}'; \
                     other versions can be given only in IMPORT mode"
                )));
            }
            let level = self.effective_compatibility(&mut session, subject).await?;
            let against = targets(level, &rows, None);
            let problems = match precheck {
                Some(verdict) if verdict.confirms(level, &against, &prepared) => verdict.problems,
                _ => {
                    let schemas = load(&mut session, &against).await?;
                    run_check(level, prepared.avro.clone(), schemas).await?
                }
            };
            if !problems.is_empty() {
                return Err(Error::Incompatible {
                    subject: subject.to_owned(),
                    messages: problems,
                });
            }
            let id = session.insert_schema(&prepared.new_schema()).await?;
            (id, next_version)
        };
        session.insert_version(subject, version, id).await?;
        session.commit().await?;
        tracing::info!(subject, version, id, "registered schema");
        Ok(id)
    }

    async fn import(
        &self,
        session: &mut Session,
        subject: &str,
        prepared: &Prepared,
        existing: Option<i32>,
        rows: &[VersionRow],
        placement: Placement,
    ) -> Result<(i32, i32)> {
        let id = match (placement.id, existing) {
            (Some(requested), Some(existing)) if requested != existing => {
                return Err(Error::IdMismatch {
                    existing,
                    requested,
                });
            }
            (_, Some(existing)) => existing,
            (Some(requested), None) => {
                if session.schema(requested).await?.is_some() {
                    return Err(Error::OperationNotPermitted(format!(
                        "Overwrite new schema with id {requested} is not permitted: the id holds another schema"
                    )));
                }
                session
                    .insert_schema_with_id(requested, &prepared.new_schema())
                    .await?;
                requested
            }
            (None, None) => session.insert_schema(&prepared.new_schema()).await?,
        };
        let version = placement
            .version
            .unwrap_or_else(|| rows.last().map_or(1, |r| r.version + 1));
        if let Some(taken) = rows.iter().find(|r| r.version == version) {
            return Err(Error::OperationNotPermitted(format!(
                "Subject '{subject}' already has version {version} (schema id {})",
                taken.schema_id
            )));
        }
        Ok((id, version))
    }

    /// `POST /compatibility/subjects/{s}/versions[/{v}]`: the problems registering the
    /// schema would meet (empty: compatible). Without a version, checks the versions the
    /// subject's level names; with one, only that version.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        submission: &Submission,
    ) -> Result<Vec<String>> {
        let mut session = self.store.begin().await?;
        let rows = session.versions(subject).await?;
        let only = match spec {
            None => None,
            Some(spec) => Some(find_version(&mut session, subject, spec, false).await?),
        };
        let prepared = prepare(&mut session, submission, &self.limits).await?;
        let level = self.effective_compatibility(&mut session, subject).await?;
        let against = targets(level, &rows, only);
        let schemas = load(&mut session, &against).await?;
        drop(session);
        run_check(level, prepared.avro, schemas).await
    }

    /// The compatibility verdict a registration would get, computed in a read transaction
    /// that is closed before the check runs. `None` when no check is due (the schema is
    /// already registered, the subject is READONLY or IMPORT, or the level is NONE).
    async fn precheck(&self, subject: &str, submission: &Submission) -> Result<Option<Verdict>> {
        let mut session = self.store.begin().await?;
        if self.effective_mode(&mut session, subject).await? != Mode::ReadWrite {
            return Ok(None);
        }
        let prepared = prepare(&mut session, submission, &self.limits).await?;
        let rows = session.versions(subject).await?;
        if let Some(id) = session.find_schema(&prepared.identity).await?
            && rows.iter().any(|r| !r.deleted && r.schema_id == id)
        {
            return Ok(None);
        }
        let level = self.effective_compatibility(&mut session, subject).await?;
        let against = targets(level, &rows, None);
        if against.is_empty() {
            return Ok(None);
        }
        let schemas = load(&mut session, &against).await?;
        drop(session);
        let problems = run_check(level, prepared.avro, schemas).await?;
        Ok(Some(Verdict {
            level,
            against,
            identity: prepared.identity,
            problems,
        }))
    }

    /// `DELETE /subjects/{s}`: soft-deletes every version, or (`permanent`, after a soft
    /// delete) removes them. Returns the versions.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>> {
        let mut session = self.store.begin().await?;
        session.lock_subjects(&[subject]).await?;
        if self.effective_mode(&mut session, subject).await? == Mode::ReadOnly {
            return Err(read_only(subject));
        }
        let rows = session.versions(subject).await?;
        if rows.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        let live = visible(rows.clone(), false);
        let targets: Vec<i32> = match (permanent, live.is_empty()) {
            (false, true) => return Err(Error::SubjectSoftDeleted(subject.to_owned())),
            (false, false) => live.iter().map(|r| r.version).collect(),
            (true, false) => return Err(Error::SubjectNotSoftDeleted(subject.to_owned())),
            (true, true) => rows.iter().map(|r| r.version).collect(),
        };
        for version in &targets {
            refuse_if_referenced(&mut session, subject, *version, permanent).await?;
        }
        session
            .delete_versions(subject, &targets, permanent)
            .await?;
        if permanent {
            session
                .delete_setting(Setting::Compatibility, subject)
                .await?;
            session.delete_setting(Setting::Mode, subject).await?;
        }
        session.commit().await?;
        tracing::info!(subject, permanent, ?targets, "deleted subject");
        Ok(targets)
    }

    /// `DELETE /subjects/{s}/versions/{v}`: soft-deletes the version, or (`permanent`, after
    /// a soft delete) removes it. Returns the version.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32> {
        let mut session = self.store.begin().await?;
        session.lock_subjects(&[subject]).await?;
        if self.effective_mode(&mut session, subject).await? == Mode::ReadOnly {
            return Err(read_only(subject));
        }
        let rows = session.versions(subject).await?;
        if rows.is_empty() {
            return Err(Error::SubjectNotFound(subject.to_owned()));
        }
        // Soft deletes take `latest` as the newest live version; permanent ones as the newest.
        let row = match spec {
            VersionSpec::Number(n) => rows.iter().find(|r| r.version == n),
            VersionSpec::Latest if permanent => rows.last(),
            VersionSpec::Latest => rows.iter().rev().find(|r| !r.deleted).or(rows.last()),
        }
        .copied()
        .ok_or_else(|| version_not_found(subject, spec))?;
        match (permanent, row.deleted) {
            (false, true) => {
                return Err(Error::VersionSoftDeleted {
                    subject: subject.to_owned(),
                    version: row.version,
                });
            }
            (true, false) => {
                return Err(Error::VersionNotSoftDeleted {
                    subject: subject.to_owned(),
                    version: row.version,
                });
            }
            _ => {}
        }
        refuse_if_referenced(&mut session, subject, row.version, permanent).await?;
        session
            .delete_versions(subject, &[row.version], permanent)
            .await?;
        session.commit().await?;
        tracing::info!(subject, version = row.version, permanent, "deleted version");
        Ok(row.version)
    }

    /// `GET /subjects/{s}/versions/{v}/referencedby`: ids of the live schemas referencing it.
    pub async fn referenced_by(&self, subject: &str, spec: VersionSpec) -> Result<Vec<i32>> {
        let mut session = self.store.begin().await?;
        let row = find_version(&mut session, subject, spec, false).await?;
        Ok(session
            .referrers(subject, row.version)
            .await?
            .into_iter()
            .filter(|r| r.live)
            .map(|r| r.id)
            .collect())
    }

    /// `GET /config[/{s}]`: the subject's own level (or, with `default_to_global`, the
    /// effective one); without a subject, the global level.
    pub async fn compatibility(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Compatibility> {
        let mut session = self.store.begin().await?;
        match subject {
            None => self.effective_compatibility(&mut session, "").await,
            Some(subject) => match session.setting(Setting::Compatibility, subject).await? {
                Some(level) => level.parse(),
                None if default_to_global => self.effective_compatibility(&mut session, "").await,
                None => Err(Error::SubjectCompatibilityNotConfigured(subject.to_owned())),
            },
        }
    }

    /// `PUT /config[/{s}]`.
    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<()> {
        let mut session = self.store.begin().await?;
        session
            .set_setting(
                Setting::Compatibility,
                subject.unwrap_or(""),
                level.as_str(),
            )
            .await?;
        session.commit().await
    }

    /// `DELETE /config[/{s}]`: removes the setting; returns the level it had (the global
    /// default when there was none).
    pub async fn delete_compatibility(&self, subject: Option<&str>) -> Result<Compatibility> {
        let mut session = self.store.begin().await?;
        let scope = subject.unwrap_or("");
        let previous = session
            .delete_setting(Setting::Compatibility, scope)
            .await?;
        if previous.is_none() && !scope.is_empty() && session.versions(scope).await?.is_empty() {
            return Err(Error::SubjectNotFound(scope.to_owned()));
        }
        let level = match previous {
            Some(level) => level.parse()?,
            None => self.effective_compatibility(&mut session, "").await?,
        };
        session.commit().await?;
        Ok(level)
    }

    /// `GET /mode[/{s}]`, like [`Registry::compatibility`].
    pub async fn mode(&self, subject: Option<&str>, default_to_global: bool) -> Result<Mode> {
        let mut session = self.store.begin().await?;
        match subject {
            None => self.effective_mode(&mut session, "").await,
            Some(subject) => match session.setting(Setting::Mode, subject).await? {
                Some(mode) => mode.parse(),
                None if default_to_global => self.effective_mode(&mut session, "").await,
                None => Err(Error::SubjectModeNotConfigured(subject.to_owned())),
            },
        }
    }

    /// `PUT /mode[/{s}]`. Switching a registry (or subject) that holds schemas to IMPORT
    /// needs `force`, as in Confluent: imported ids could collide with existing ones.
    pub async fn set_mode(&self, subject: Option<&str>, mode: Mode, force: bool) -> Result<()> {
        let mut session = self.store.begin().await?;
        if mode == Mode::Import && !force {
            let occupied = match subject {
                None => !session.subjects(true, "").await?.is_empty(),
                Some(subject) => !session.versions(subject).await?.is_empty(),
            };
            if occupied {
                return Err(Error::OperationNotPermitted(
                    "Cannot import since found existing subjects; add ?force=true to switch to IMPORT anyway"
                        .to_owned(),
                ));
            }
        }
        session
            .set_setting(Setting::Mode, subject.unwrap_or(""), mode.as_str())
            .await?;
        session.commit().await
    }

    /// `DELETE /mode[/{s}]`: removes the setting; returns the mode it had.
    pub async fn delete_mode(&self, subject: Option<&str>) -> Result<Mode> {
        let mut session = self.store.begin().await?;
        let scope = subject.unwrap_or("");
        let previous = session.delete_setting(Setting::Mode, scope).await?;
        let mode = match previous {
            Some(mode) => mode.parse()?,
            None if scope.is_empty() => Mode::default(),
            None => return Err(Error::SubjectModeNotConfigured(scope.to_owned())),
        };
        session.commit().await?;
        Ok(mode)
    }

    async fn effective_compatibility(
        &self,
        session: &mut Session,
        subject: &str,
    ) -> Result<Compatibility> {
        for scope in [subject, ""] {
            if let Some(level) = session.setting(Setting::Compatibility, scope).await? {
                return level.parse();
            }
        }
        Ok(self.default_compatibility)
    }

    async fn effective_mode(&self, session: &mut Session, subject: &str) -> Result<Mode> {
        for scope in [subject, ""] {
            if let Some(mode) = session.setting(Setting::Mode, scope).await? {
                return mode.parse();
            }
        }
        Ok(Mode::default())
    }

    async fn subject_version(
        &self,
        session: &mut Session,
        subject: &str,
        row: VersionRow,
    ) -> Result<SubjectVersion> {
        Ok(SubjectVersion {
            subject: subject.to_owned(),
            version: row.version,
            schema: stored(session, row.schema_id).await?,
        })
    }
}

/// The rows a read shows: all, or only those not soft-deleted.
fn visible(rows: Vec<VersionRow>, deleted: bool) -> Vec<VersionRow> {
    rows.into_iter().filter(|r| deleted || !r.deleted).collect()
}

/// A compatibility verdict reached outside the write transaction, and what it rests on.
struct Verdict {
    level: Compatibility,
    against: Vec<VersionRow>,
    identity: String,
    problems: Vec<String>,
}

impl Verdict {
    /// Whether the verdict holds for checking `prepared` at `level` against `against`.
    fn confirms(&self, level: Compatibility, against: &[VersionRow], prepared: &Prepared) -> bool {
        self.level == level && self.against == against && self.identity == prepared.identity
    }
}

/// The versions a check at `level` compares with: `only`, or else the live versions among
/// `rows` the level names (the latest, or all when transitive); none at level NONE.
fn targets(level: Compatibility, rows: &[VersionRow], only: Option<VersionRow>) -> Vec<VersionRow> {
    if level == Compatibility::None {
        return Vec::new();
    }
    let live: Vec<VersionRow> = visible(rows.to_vec(), false);
    match only {
        Some(row) => vec![row],
        None if level.is_transitive() => live,
        None => live.last().copied().into_iter().collect(),
    }
}

/// The registered schemas of `against`, parsed, with their versions.
async fn load(session: &mut Session, against: &[VersionRow]) -> Result<Vec<(i32, AvroSchema)>> {
    let mut parsed = Vec::with_capacity(against.len());
    for row in against {
        let stored = stored(session, row.schema_id).await?;
        parsed.push((row.version, parse_stored(session, &stored).await?));
    }
    Ok(parsed)
}

/// Runs the checker on a blocking thread (it is CPU work, polynomial in the schemas' sizes,
/// which [`Limits`] bound), so it never stalls the server's async workers.
async fn run_check(
    level: Compatibility,
    new: AvroSchema,
    against: Vec<(i32, AvroSchema)>,
) -> Result<Vec<String>> {
    tokio::task::spawn_blocking(move || {
        let pairs: Vec<(i32, &AvroSchema)> = against.iter().map(|(v, s)| (*v, s)).collect();
        compat::check(level, &new, &pairs)
    })
    .await
    .map_err(|e| Error::Internal(format!("the compatibility check failed: {e}")))
}

/// Resolves a version for a read: 40401 when the subject shows no version, 40402 when it
/// lacks this one.
async fn find_version(
    session: &mut Session,
    subject: &str,
    spec: VersionSpec,
    deleted: bool,
) -> Result<VersionRow> {
    let rows = visible(session.versions(subject).await?, deleted);
    if rows.is_empty() {
        return Err(Error::SubjectNotFound(subject.to_owned()));
    }
    match spec {
        VersionSpec::Latest => rows.last().copied(),
        VersionSpec::Number(n) => rows.iter().find(|r| r.version == n).copied(),
    }
    .ok_or_else(|| version_not_found(subject, spec))
}

fn version_not_found(subject: &str, spec: VersionSpec) -> Error {
    Error::VersionNotFound {
        subject: subject.to_owned(),
        version: match spec {
            VersionSpec::Latest => "latest".to_owned(),
            VersionSpec::Number(n) => n.to_string(),
        },
    }
}

fn read_only(subject: &str) -> Error {
    Error::OperationNotPermitted(format!(
        "Subject '{subject}' is in read-only mode (READONLY): registrations and deletes are refused"
    ))
}

/// In IMPORT mode or READWRITE, an already registered schema answers with its id; an
/// explicit id or version that contradicts it is an error.
fn check_placement(placement: Placement, id: i32, version: i32, subject: &str) -> Result<()> {
    if let Some(requested) = placement.id.filter(|r| *r != id) {
        return Err(Error::IdMismatch {
            existing: id,
            requested,
        });
    }
    if let Some(requested) = placement.version.filter(|r| *r != version) {
        return Err(Error::OperationNotPermitted(format!(
            "The schema is already registered as version {version} of subject '{subject}', not {requested}"
        )));
    }
    Ok(())
}

/// A version that other schemas still need cannot go: live referrers block a soft delete,
/// any registered referrer blocks a permanent one (it could not be parsed any more).
async fn refuse_if_referenced(
    session: &mut Session,
    subject: &str,
    version: i32,
    permanent: bool,
) -> Result<()> {
    let ids: Vec<i32> = session
        .referrers(subject, version)
        .await?
        .into_iter()
        .filter(|r| permanent || r.live)
        .map(|r| r.id)
        .collect();
    if ids.is_empty() {
        Ok(())
    } else {
        Err(Error::ReferenceExists {
            subject: subject.to_owned(),
            version,
            ids,
        })
    }
}

async fn stored(session: &mut Session, id: i32) -> Result<Arc<StoredSchema>> {
    session.schema(id).await?.ok_or_else(|| {
        Error::Store(sqlx::Error::Protocol(format!(
            "subject version points at missing schema {id}"
        )))
    })
}

/// Validates a submission: AVRO only, valid JSON within the [`Limits`], references that
/// exist, a schema the Avro parser accepts with the referenced types.
async fn prepare(
    session: &mut Session,
    submission: &Submission,
    limits: &Limits,
) -> Result<Prepared> {
    if let Some(kind) = &submission.schema_type
        && !kind.eq_ignore_ascii_case("AVRO")
    {
        return Err(Error::InvalidSchema(format!(
            "schemaType '{kind}' is not supported: this registry supports only AVRO"
        )));
    }
    let canonical = canonical_value(&limits.parse(&submission.schema)?);
    let mut references = Vec::with_capacity(submission.references.len());
    for reference in &submission.references {
        references.push(resolve_reference(session, reference).await?);
    }
    let texts = referenced_texts(session, &references).await?;
    let avro = AvroSchema::parse(&canonical, &texts).map_err(Error::InvalidSchema)?;
    let identity = if references.is_empty() {
        canonical.clone()
    } else {
        let refs = serde_json::to_string(&references).unwrap_or_default();
        format!("{canonical}\u{1}references:{refs}")
    };
    Ok(Prepared {
        canonical,
        references,
        identity,
        avro,
    })
}

/// A reference's version made concrete (`-1`: the latest), checked to exist.
async fn resolve_reference(
    session: &mut Session,
    reference: &SchemaReference,
) -> Result<SchemaReference> {
    let rows = session.versions(&reference.subject).await?;
    let row = if reference.version == -1 {
        rows.iter().rev().find(|r| !r.deleted)
    } else {
        rows.iter().find(|r| r.version == reference.version)
    };
    match row {
        Some(row) => Ok(SchemaReference {
            version: row.version,
            ..reference.clone()
        }),
        None => Err(Error::InvalidSchema(format!(
            "reference '{}' points at version {} of subject '{}', which does not exist",
            reference.name, reference.version, reference.subject
        ))),
    }
}

/// The texts of every schema the references reach, transitively, each once.
async fn referenced_texts(
    session: &mut Session,
    references: &[SchemaReference],
) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    let mut seen = HashSet::new();
    let mut pending: Vec<SchemaReference> = references.to_vec();
    while let Some(reference) = pending.pop() {
        let rows = session.versions(&reference.subject).await?;
        let Some(row) = rows.iter().find(|r| r.version == reference.version) else {
            return Err(Error::InvalidSchema(format!(
                "reference '{}' points at version {} of subject '{}', which does not exist",
                reference.name, reference.version, reference.subject
            )));
        };
        if !seen.insert(row.schema_id) {
            continue;
        }
        let schema = stored(session, row.schema_id).await?;
        pending.extend(schema.references.iter().cloned());
        texts.push(schema.schema.clone());
    }
    Ok(texts)
}

/// Parses a registered schema with its references (to check a new one against it).
async fn parse_stored(session: &mut Session, schema: &StoredSchema) -> Result<AvroSchema> {
    let texts = referenced_texts(session, &schema.references).await?;
    AvroSchema::parse(&schema.schema, &texts).map_err(|e| {
        Error::InvalidSchema(format!(
            "registered schema {} no longer parses: {e}",
            schema.id
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_confluent() {
        assert_eq!(VersionSpec::parse("latest").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("-1").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("7").unwrap(), VersionSpec::Number(7));
        for bad in ["0", "-5", "abc", "", "2147483648", "1.5"] {
            let err = VersionSpec::parse(bad).unwrap_err();
            assert_eq!(err.code(), 42202, "{bad}");
            assert!(err.to_string().contains(&format!("'{bad}'")));
        }
    }
}
