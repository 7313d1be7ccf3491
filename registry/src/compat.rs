//! Compatibility levels and the checker that enforces them, following Avro's schema
//! resolution rules.
//!
//! The checker asks one question, "can a reader with schema R decode data written with
//! schema W?", by walking both schemas side by side with a path (`anineplus.Anime.tags[]`:
//! `.field`, `[]` for array items, `{}` for map values), and reports every rule that breaks,
//! naming the field and why. The levels combine that question:
//!
//! | level | new schema reads old data | old schema reads new data | against |
//! |---|---|---|---|
//! | `BACKWARD` | yes | | the latest version |
//! | `FORWARD` | | yes | the latest version |
//! | `FULL` | yes | yes | the latest version |
//! | `*_TRANSITIVE` | as above | as above | every version |
//! | `NONE` | | | nothing |
//!
//! Resolution rules checked: same primitive type or a promotion (`int` to `long`, `float` or
//! `double`; `long` to `float` or `double`; `float` to `double`; `string` and `bytes` either
//! way); records match by unqualified name or a reader alias, reader fields by name or a
//! reader field alias, a reader field missing from the writer needs a default, writer fields
//! missing from the reader are skipped; enums need every writer symbol in the reader unless
//! the reader has an enum `default`; fixed types need the same name and size; arrays and maps
//! recurse into items and values; every branch of a writer union must be readable by the
//! reader, and a non-union writer must fit some branch of a reader union. Logical types are
//! checked as their underlying types, as Avro's Java checker does. Recursive types are
//! assumed compatible where the walk meets a pair it is already checking.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema::{
    Aliases, EnumSchema, FixedSchema, InnerDecimalSchema, Name, RecordField, RecordSchema,
    UuidSchema,
};

use crate::avro::AvroSchema;
use crate::error::Error;

/// A compatibility level, global or per subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compatibility {
    /// No check.
    None,
    /// The new schema reads data written with the latest version (the default).
    #[default]
    Backward,
    /// The new schema reads data written with every version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    /// Every version reads data written with the new schema.
    ForwardTransitive,
    /// Both `BACKWARD` and `FORWARD`.
    Full,
    /// Both `BACKWARD_TRANSITIVE` and `FORWARD_TRANSITIVE`.
    FullTransitive,
}

impl Compatibility {
    /// Every level, in Confluent's order.
    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ];

    /// The level's name as Confluent spells it (`BACKWARD_TRANSITIVE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the new schema is checked against every version rather than the latest.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    fn new_reads_old(self) -> bool {
        matches!(
            self,
            Compatibility::Backward
                | Compatibility::BackwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }

    fn old_reads_new(self) -> bool {
        matches!(
            self,
            Compatibility::Forward
                | Compatibility::ForwardTransitive
                | Compatibility::Full
                | Compatibility::FullTransitive
        )
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compatibility {
    type Err = Error;

    /// Case-insensitive, as Confluent accepts `backward` too.
    fn from_str(s: &str) -> Result<Self, Error> {
        let upper = s.trim().to_ascii_uppercase();
        Compatibility::ALL
            .into_iter()
            .find(|level| level.as_str() == upper)
            .ok_or_else(|| Error::InvalidCompatibilityLevel(s.to_owned()))
    }
}

/// Checks `new` against the given earlier versions (`(version, schema)`, any order) in the
/// directions `level` asks for. Which versions to pass (the latest, or all for a transitive
/// level) is the caller's choice: see [`Compatibility::is_transitive`]. Returns one message
/// per problem, each ending with `(LEVEL against version N)`; empty means compatible.
pub fn check(
    level: Compatibility,
    new: &AvroSchema,
    against: &[(i32, &AvroSchema)],
) -> Vec<String> {
    let mut messages = Vec::new();
    for (version, old) in against {
        let suffix = format!(" ({level} against version {version})");
        if level.new_reads_old() {
            messages.extend(
                can_read(new, old)
                    .into_iter()
                    .map(|m| m + &suffix + ": the new schema cannot read its data"),
            );
        }
        if level.old_reads_new() {
            messages.extend(
                can_read(old, new)
                    .into_iter()
                    .map(|m| m + &suffix + ": it cannot read data of the new schema"),
            );
        }
    }
    messages
}

/// Every reason a reader with schema `reader` cannot decode data written with `writer`.
pub fn can_read(reader: &AvroSchema, writer: &AvroSchema) -> Vec<String> {
    let mut walk = Walk::new(reader, writer);
    let root = reader.resolve(reader.root());
    let path = match kind(root) {
        Kind::Record(r) => r.name.fullname(None),
        Kind::Enum(e) => e.name.fullname(None),
        Kind::Fixed(f) => f.name.fullname(None),
        _ => "(root)".to_owned(),
    };
    let mut problems = Vec::new();
    walk.report(reader.root(), writer.root(), &path, &mut problems);
    problems
}

/// A schema seen through its encoding: logical types as their underlying type.
enum Kind<'s> {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(&'s Schema),
    Map(&'s Schema),
    Union(&'s [Schema]),
    Record(&'s RecordSchema),
    Enum(&'s EnumSchema),
    Fixed(&'s FixedSchema),
    Unresolved(&'s Name),
}

fn kind(schema: &Schema) -> Kind<'_> {
    match schema {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Kind::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Kind::Long,
        Schema::Float => Kind::Float,
        Schema::Double => Kind::Double,
        Schema::Bytes | Schema::BigDecimal | Schema::Uuid(UuidSchema::Bytes) => Kind::Bytes,
        Schema::String | Schema::Uuid(UuidSchema::String) => Kind::String,
        Schema::Uuid(UuidSchema::Fixed(f)) | Schema::Fixed(f) | Schema::Duration(f) => {
            Kind::Fixed(f)
        }
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Bytes => Kind::Bytes,
            InnerDecimalSchema::Fixed(f) => Kind::Fixed(f),
        },
        Schema::Array(a) => Kind::Array(&a.items),
        Schema::Map(m) => Kind::Map(&m.types),
        Schema::Union(u) => Kind::Union(u.variants()),
        Schema::Record(r) => Kind::Record(r),
        Schema::Enum(e) => Kind::Enum(e),
        Schema::Ref { name } => Kind::Unresolved(name),
    }
}

impl Kind<'_> {
    /// How messages name the type: `'long'`, `record 'anineplus.Studio'`.
    fn describe(&self) -> String {
        match self {
            Kind::Record(r) => format!("record '{}'", r.name.fullname(None)),
            Kind::Enum(e) => format!("enum '{}'", e.name.fullname(None)),
            Kind::Fixed(f) => format!("fixed '{}'", f.name.fullname(None)),
            Kind::Unresolved(n) => format!("unknown type '{}'", n.fullname(None)),
            other => format!("'{}'", other.key()),
        }
    }

    /// Identifies the branch of a union: the primitive's name, `array`, `map`, or the fullname.
    fn key(&self) -> String {
        match self {
            Kind::Null => "null".into(),
            Kind::Boolean => "boolean".into(),
            Kind::Int => "int".into(),
            Kind::Long => "long".into(),
            Kind::Float => "float".into(),
            Kind::Double => "double".into(),
            Kind::Bytes => "bytes".into(),
            Kind::String => "string".into(),
            Kind::Array(_) => "array".into(),
            Kind::Map(_) => "map".into(),
            Kind::Union(_) => "union".into(),
            Kind::Record(r) => r.name.fullname(None),
            Kind::Enum(e) => e.name.fullname(None),
            Kind::Fixed(f) => f.name.fullname(None),
            Kind::Unresolved(n) => n.fullname(None),
        }
    }
}

/// Whether data of `writer`'s primitive can be read as `reader`'s (same type or promotion).
fn promotes(writer: &Kind, reader: &Kind) -> bool {
    use Kind::*;
    matches!(
        (writer, reader),
        (Null, Null)
            | (Boolean, Boolean)
            | (Int, Int | Long | Float | Double)
            | (Long, Long | Float | Double)
            | (Float, Float | Double)
            | (Double, Double)
            | (String, String | Bytes)
            | (Bytes, Bytes | String)
    )
}

/// Avro's name rule: the same unqualified name, or a reader alias naming the writer.
fn names_match(reader: &Name, reader_aliases: &Aliases, writer: &Name) -> bool {
    reader.name() == writer.name()
        || reader_aliases
            .iter()
            .flatten()
            .any(|alias| alias.fullname(None) == writer.fullname(None))
}

/// A (reader node, writer node) pair, by the nodes' addresses. Named types are reached
/// through their one definition ([`AvroSchema::resolve`]), so a type has one address.
type Pair = (usize, usize);

fn address(schema: &Schema) -> usize {
    std::ptr::from_ref(schema) as usize
}

/// One reader/writer walk. Two passes share it: [`Walk::decide`] answers "compatible?" for a
/// pair and remembers the answer, so every pair is decided once (the old walk re-tried each
/// union branch and then walked it again to explain it, which doubled the work per nested
/// union: a schema 20 levels deep took seconds, and 30 levels hours); [`Walk::report`]
/// explains an incompatible pair, descending only into the pairs `decide` refused, and
/// explains each pair once (a type referenced from many places is explained where first met).
struct Walk<'a> {
    reader: &'a AvroSchema,
    writer: &'a AvroSchema,
    /// Pairs already decided.
    verdicts: HashMap<Pair, bool>,
    /// Pairs being decided further up the walk: recursive types are assumed compatible where
    /// the walk meets them again (unless proven otherwise, as Avro's checker does).
    deciding: HashSet<Pair>,
    /// The compatible verdicts, in the order they were reached: those reached while a pair
    /// was being decided may rest on assuming it compatible, and are forgotten if it is not.
    compatible_log: Vec<Pair>,
    /// Pairs being explained further up (the guard of a recursive explanation).
    reporting: HashSet<Pair>,
    /// Where each pair was explained first.
    reported: HashMap<Pair, String>,
}

impl<'a> Walk<'a> {
    fn new(reader: &'a AvroSchema, writer: &'a AvroSchema) -> Self {
        Self {
            reader,
            writer,
            verdicts: HashMap::new(),
            deciding: HashSet::new(),
            compatible_log: Vec::new(),
            reporting: HashSet::new(),
            reported: HashMap::new(),
        }
    }

    fn pair(&self, reader: &'a Schema, writer: &'a Schema) -> (&'a Schema, &'a Schema, Pair) {
        let (r, w) = (self.reader.resolve(reader), self.writer.resolve(writer));
        (r, w, (address(r), address(w)))
    }

    /// Whether data written with `writer` can be read with `reader`.
    fn decide(&mut self, reader: &'a Schema, writer: &'a Schema) -> bool {
        let (reader, writer, pair) = self.pair(reader, writer);
        if let Some(verdict) = self.verdicts.get(&pair) {
            return *verdict;
        }
        if !self.deciding.insert(pair) {
            return true;
        }
        let mark = self.compatible_log.len();
        let compatible = self.decide_now(reader, writer);
        self.deciding.remove(&pair);
        if compatible {
            self.compatible_log.push(pair);
        } else {
            for assumed in self.compatible_log.drain(mark..) {
                self.verdicts.remove(&assumed);
            }
        }
        self.verdicts.insert(pair, compatible);
        compatible
    }

    /// The resolution rules, as one answer (see [`Walk::report`] for the reasons).
    fn decide_now(&mut self, reader: &'a Schema, writer: &'a Schema) -> bool {
        let (r, w) = (kind(reader), kind(writer));
        match (&r, &w) {
            (Kind::Union(readers), Kind::Union(writers)) => writers
                .iter()
                .all(|branch| readers.iter().any(|rb| self.decide(rb, branch))),
            (Kind::Union(readers), _) => readers.iter().any(|rb| self.decide(rb, writer)),
            (_, Kind::Union(writers)) => writers.iter().all(|wb| self.decide(reader, wb)),
            (Kind::Array(ri), Kind::Array(wi)) => self.decide(ri, wi),
            (Kind::Map(rv), Kind::Map(wv)) => self.decide(rv, wv),
            (Kind::Record(rr), Kind::Record(wr)) => {
                names_match(&rr.name, &rr.aliases, &wr.name)
                    && rr
                        .fields
                        .iter()
                        .all(|field| match written_field(field, wr) {
                            Some(w) => self.decide(&field.schema, &w.schema),
                            None => field.default.is_some(),
                        })
            }
            (Kind::Enum(re), Kind::Enum(we)) => {
                names_match(&re.name, &re.aliases, &we.name)
                    && (re.default.is_some() || we.symbols.iter().all(|s| re.symbols.contains(s)))
            }
            (Kind::Fixed(rf), Kind::Fixed(wf)) => {
                names_match(&rf.name, &rf.aliases, &wf.name) && rf.size == wf.size
            }
            _ => promotes(&w, &r),
        }
    }

    /// Explains why `writer` cannot be read as `reader` (nothing when it can), at `path`.
    fn report(
        &mut self,
        reader: &'a Schema,
        writer: &'a Schema,
        path: &str,
        out: &mut Vec<String>,
    ) {
        if self.decide(reader, writer) {
            return;
        }
        let (reader, writer, pair) = self.pair(reader, writer);
        let (r, w) = (kind(reader), kind(writer));
        if let Some(first) = self.reported.get(&pair) {
            out.push(format!(
                "at '{path}': the writer's type {} cannot be read as the reader's type {}, for the reasons given at '{first}'",
                w.describe(),
                r.describe()
            ));
            return;
        }
        if !self.reporting.insert(pair) {
            return;
        }
        self.reported.insert(pair, path.to_owned());
        match (&r, &w) {
            (Kind::Union(readers), Kind::Union(writers)) => {
                for branch in *writers {
                    self.writer_branch_in_union(readers, r.describe(), branch, path, out);
                }
            }
            (Kind::Union(readers), _) => {
                self.writer_branch_in_union(readers, r.describe(), writer, path, out)
            }
            (_, Kind::Union(writers)) => {
                for branch in *writers {
                    if self.decide(reader, branch) {
                        continue;
                    }
                    let b = kind(self.writer.resolve(branch));
                    if b.key() == r.key() {
                        self.report(reader, branch, path, out);
                    } else {
                        out.push(format!(
                            "at '{path}': the writer's union branch {} cannot be read as the reader's {} (a union was narrowed to a single type)",
                            b.describe(),
                            r.describe()
                        ));
                    }
                }
            }
            (Kind::Array(ri), Kind::Array(wi)) => self.report(ri, wi, &format!("{path}[]"), out),
            (Kind::Map(rv), Kind::Map(wv)) => self.report(rv, wv, &format!("{path}{{}}"), out),
            (Kind::Record(rr), Kind::Record(wr)) => self.record(rr, wr, path, out),
            (Kind::Enum(re), Kind::Enum(we)) => {
                if !names_match(&re.name, &re.aliases, &we.name) {
                    out.push(name_mismatch(path, &r, &w));
                } else {
                    let missing: Vec<&str> = we
                        .symbols
                        .iter()
                        .filter(|s| !re.symbols.contains(s))
                        .map(String::as_str)
                        .collect();
                    out.push(format!(
                        "at '{path}': the writer's enum '{}' has symbols {missing:?} that the reader's enum lacks, and the reader's enum has no default",
                        we.name.fullname(None)
                    ));
                }
            }
            (Kind::Fixed(rf), Kind::Fixed(wf)) => {
                if !names_match(&rf.name, &rf.aliases, &wf.name) {
                    out.push(name_mismatch(path, &r, &w));
                } else {
                    out.push(format!(
                        "at '{path}': fixed '{}' has size {} in the writer but {} in the reader",
                        rf.name.fullname(None),
                        wf.size,
                        rf.size
                    ));
                }
            }
            _ => out.push(format!(
                "at '{path}': the writer's type {} cannot be read as the reader's type {}",
                w.describe(),
                r.describe()
            )),
        }
        self.reporting.remove(&pair);
    }

    /// One writer type must be readable by some branch of the reader's union (the same type,
    /// a promotion, a renamed record). When none fits, the branch of the same type, if there
    /// is one, gives the precise reason.
    fn writer_branch_in_union(
        &mut self,
        readers: &'a [Schema],
        union: String,
        writer: &'a Schema,
        path: &str,
        out: &mut Vec<String>,
    ) {
        if readers.iter().any(|branch| self.decide(branch, writer)) {
            return;
        }
        let w = kind(self.writer.resolve(writer));
        let same = readers
            .iter()
            .find(|branch| kind(self.reader.resolve(branch)).key() == w.key());
        match same {
            Some(branch) => self.report(branch, writer, path, out),
            None => out.push(format!(
                "at '{path}': the writer's type {} is not a branch of the reader's {union} [{}]",
                w.describe(),
                readers
                    .iter()
                    .map(|b| kind(self.reader.resolve(b)).key())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn record(
        &mut self,
        reader: &'a RecordSchema,
        writer: &'a RecordSchema,
        path: &str,
        out: &mut Vec<String>,
    ) {
        if !names_match(&reader.name, &reader.aliases, &writer.name) {
            out.push(name_mismatch(
                path,
                &Kind::Record(reader),
                &Kind::Record(writer),
            ));
            return;
        }
        let record_name = reader.name.fullname(None);
        let location = if path == record_name {
            String::new()
        } else {
            format!(" (at '{path}')")
        };
        for field in &reader.fields {
            match written_field(field, writer) {
                Some(w) => {
                    self.report(&field.schema, &w.schema, &format!("{path}.{}", field.name), out)
                }
                None if field.default.is_some() => {}
                None => out.push(format!(
                    "reader field '{}' of record '{record_name}'{location} has no default and is missing from the writer schema",
                    field.name
                )),
            }
        }
    }
}

/// The writer's field a reader field reads: the same name, else one of the field's aliases.
fn written_field<'w>(field: &RecordField, writer: &'w RecordSchema) -> Option<&'w RecordField> {
    writer
        .fields
        .iter()
        .find(|w| w.name == field.name)
        .or_else(|| {
            writer
                .fields
                .iter()
                .find(|w| field.aliases.contains(&w.name))
        })
}

fn name_mismatch(path: &str, reader: &Kind, writer: &Kind) -> String {
    format!(
        "at '{path}': the reader's {} does not match the writer's {} (different name and no reader alias for it)",
        reader.describe(),
        writer.describe()
    )
}

#[cfg(test)]
mod tests;
