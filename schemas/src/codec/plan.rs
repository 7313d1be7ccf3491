//! Compiling a (writer schema, reader schema) pair into a decode [`Step`] tree.
//!
//! Avro's schema resolution is decided once per writer schema id, here, instead of once per
//! record: which writer fields to skip, which reader fields take their defaults, how union
//! branches and enum symbols map, which numbers are promoted. Decoding then walks the tree
//! without looking at a schema again (see `de.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use apache_avro::Schema;
use apache_avro::schema::{Name, RecordSchema, UuidSchema};

/// Why a writer schema cannot be read as the reader schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("writer schema cannot be read as the reader schema at {path}: {reason}")]
pub struct Incompatible {
    /// Where in the schema, e.g. `AnimeEvent.data.AnimeCreated.title`.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// One decode instruction; the tree mirrors the writer schema.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    IntToLong,
    IntToFloat,
    IntToDouble,
    LongToFloat,
    LongToDouble,
    FloatToDouble,
    Bytes,
    String,
    BytesAsString,
    StringAsBytes,
    Fixed(usize),
    Array(Box<Step>),
    Map(Box<Step>),
    Record(Arc<RecordPlan>),
    Enum(Arc<EnumPlan>),
    /// The writer wrote a union: one entry per writer branch.
    Union(Arc<[Branch]>),
    /// The writer wrote a plain value that the reader reads as one branch of its union.
    ToUnion(Arc<Branch>),
}

/// How one union branch is read.
#[derive(Debug, Clone)]
pub(crate) enum Branch {
    /// Read as the reader union's branch `name` (a record/enum/fixed short name, or the
    /// primitive's name); `null` branches map to `None` of an `Option`.
    Read {
        name: Arc<str>,
        null: bool,
        step: Step,
    },
    /// The reader is not a union: the branch value is read as the reader type itself.
    Plain(Step),
    /// No reader type matches this writer branch; decoding it fails with the reason.
    Unmatched(Arc<str>),
}

/// A record: the writer's fields in order, then the reader fields the writer lacks.
#[derive(Debug)]
pub(crate) struct RecordPlan {
    pub(crate) name: String,
    pub(crate) fields: Vec<FieldPlan>,
    pub(crate) defaults: Vec<(Arc<str>, serde_json::Value)>,
    /// The address of the last Rust field list found to match the writer's fields one to
    /// one, in order (see [`RecordPlan::positional_for`]); 0 when none did yet.
    positional: AtomicUsize,
}

impl RecordPlan {
    /// Whether a Rust struct with these serde `fields` can be filled positionally: the
    /// writer wrote exactly those fields in that order, nothing skipped, no defaults. Then
    /// the decoder offers the record as a sequence and serde skips all key matching. The
    /// answer is cached by the address of the (static) field list.
    pub(crate) fn positional_for(&self, fields: &'static [&'static str]) -> bool {
        let key = fields.as_ptr() as usize;
        if self.positional.load(Ordering::Relaxed) == key {
            return true;
        }
        let matches = self.defaults.is_empty()
            && self.fields.len() == fields.len()
            && self.fields.iter().zip(fields).all(
                |(plan, name)| matches!(plan, FieldPlan::Read { name: n, .. } if **n == **name),
            );
        if matches {
            self.positional.store(key, Ordering::Relaxed);
        }
        matches
    }
}

/// A writer field: read into the reader field `name`, or skipped.
#[derive(Debug)]
pub(crate) enum FieldPlan {
    Read { name: Arc<str>, step: Step },
    Skip(Step),
}

/// An enum: reader symbol for each writer symbol index.
#[derive(Debug)]
pub(crate) struct EnumPlan {
    pub(crate) name: String,
    pub(crate) symbols: Vec<Result<Arc<str>, Arc<str>>>,
}

/// Compiles `writer` (as written) against `reader` (what the Rust types expect).
pub(crate) fn compile(writer: &Schema, reader: &Schema) -> Result<Step, Incompatible> {
    let mut compiler = Compiler {
        writer_names: named_types(writer),
        reader_names: named_types(reader),
        depth: 0,
    };
    compiler.step(writer, reader, &mut Vec::new())
}

/// Compiles `schema` against itself: the plan used to skip values of that schema.
pub(crate) fn compile_identity(schema: &Schema) -> Result<Step, Incompatible> {
    compile(schema, schema)
}

fn named_types(schema: &Schema) -> HashMap<String, Schema> {
    fn walk(schema: &Schema, out: &mut HashMap<String, Schema>) {
        match schema {
            Schema::Record(r) => {
                out.insert(r.name.fullname(None), schema.clone());
                r.fields.iter().for_each(|f| walk(&f.schema, out));
            }
            Schema::Enum(e) => {
                out.insert(e.name.fullname(None), schema.clone());
            }
            Schema::Fixed(f) => {
                out.insert(f.name.fullname(None), schema.clone());
            }
            Schema::Array(a) => walk(&a.items, out),
            Schema::Map(m) => walk(&m.types, out),
            Schema::Union(u) => u.variants().iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = HashMap::new();
    walk(schema, &mut out);
    out
}

/// The shape of a schema once logical types are set aside: what resolution compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed,
    Array,
    Map,
    Record,
    Enum,
    Union,
}

fn kind(schema: &Schema) -> Kind {
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
        Schema::Bytes | Schema::BigDecimal => Kind::Bytes,
        Schema::Decimal(d) => match d.inner {
            apache_avro::schema::InnerDecimalSchema::Bytes => Kind::Bytes,
            apache_avro::schema::InnerDecimalSchema::Fixed(_) => Kind::Fixed,
        },
        Schema::String => Kind::String,
        Schema::Uuid(UuidSchema::String) => Kind::String,
        Schema::Uuid(UuidSchema::Bytes) => Kind::Bytes,
        Schema::Uuid(UuidSchema::Fixed(_)) | Schema::Fixed(_) | Schema::Duration(_) => Kind::Fixed,
        Schema::Array(_) => Kind::Array,
        Schema::Map(_) => Kind::Map,
        Schema::Record(_) => Kind::Record,
        Schema::Enum(_) => Kind::Enum,
        Schema::Union(_) => Kind::Union,
        Schema::Ref { .. } => unreachable!("refs are resolved before kind()"),
    }
}

/// The name a union branch goes by: short name of a named type, else the type's name.
fn branch_name(schema: &Schema) -> Arc<str> {
    let name: String = match schema {
        Schema::Record(r) => r.name.name().to_owned(),
        Schema::Enum(e) => e.name.name().to_owned(),
        Schema::Fixed(f) => f.name.name().to_owned(),
        other => format!("{:?}", kind(other)).to_lowercase(),
    };
    name.into()
}

fn fixed_size(schema: &Schema) -> usize {
    match schema {
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => f.size,
        Schema::Decimal(d) => match &d.inner {
            apache_avro::schema::InnerDecimalSchema::Fixed(f) => f.size,
            apache_avro::schema::InnerDecimalSchema::Bytes => 0,
        },
        _ => 0,
    }
}

/// Whether a named writer type may be read as the named reader type (same short or full
/// name, or the reader lists the writer's name among its aliases).
fn names_match(
    writer: &Name,
    reader: &Name,
    reader_aliases: Option<&Vec<apache_avro::schema::Alias>>,
) -> bool {
    if writer.name() == reader.name() || writer.fullname(None) == reader.fullname(None) {
        return true;
    }
    reader_aliases.is_some_and(|aliases| {
        aliases.iter().any(|a| {
            let alias = a.fullname(reader.namespace());
            alias == writer.fullname(None) || a.name() == writer.name()
        })
    })
}

struct Compiler {
    writer_names: HashMap<String, Schema>,
    reader_names: HashMap<String, Schema>,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Compiler {
    fn deref<'a>(names: &'a HashMap<String, Schema>, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => names.get(&name.fullname(None)).unwrap_or(schema),
            other => other,
        }
    }

    fn step(
        &mut self,
        writer: &Schema,
        reader: &Schema,
        path: &mut Vec<String>,
    ) -> Result<Step, Incompatible> {
        self.depth += 1;
        let result = self.step_inner(writer, reader, path);
        self.depth -= 1;
        result
    }

    fn fail(path: &[String], reason: impl Into<String>) -> Incompatible {
        Incompatible {
            path: if path.is_empty() {
                "<root>".into()
            } else {
                path.join(".")
            },
            reason: reason.into(),
        }
    }

    fn step_inner(
        &mut self,
        writer: &Schema,
        reader: &Schema,
        path: &mut Vec<String>,
    ) -> Result<Step, Incompatible> {
        if self.depth > MAX_DEPTH {
            return Err(Self::fail(
                path,
                "schema nests deeper than 64 levels (recursive types are not supported)",
            ));
        }
        let writer_names = std::mem::take(&mut self.writer_names);
        let reader_names = std::mem::take(&mut self.reader_names);
        let w = Self::deref(&writer_names, writer).clone();
        let r = Self::deref(&reader_names, reader).clone();
        self.writer_names = writer_names;
        self.reader_names = reader_names;
        if matches!(w, Schema::Ref { .. }) || matches!(r, Schema::Ref { .. }) {
            return Err(Self::fail(path, "reference to an unknown named type"));
        }
        let (wk, rk) = (kind(&w), kind(&r));

        if wk == Kind::Union {
            let Schema::Union(union) = &w else {
                unreachable!()
            };
            let branches = union
                .variants()
                .iter()
                .map(|variant| {
                    let variant = Self::deref(&self.writer_names, variant).clone();
                    path.push(branch_name(&variant).to_string());
                    let branch = match self.resolve_into(&variant, &r, path) {
                        Ok(branch) => branch,
                        Err(e) => Branch::Unmatched(e.to_string().into()),
                    };
                    path.pop();
                    branch
                })
                .collect::<Vec<_>>();
            if branches.iter().all(|b| matches!(b, Branch::Unmatched(_))) {
                return Err(Self::fail(
                    path,
                    "no branch of the writer's union can be read by the reader",
                ));
            }
            return Ok(Step::Union(branches.into()));
        }
        if rk == Kind::Union {
            return match self.resolve_into(&w, &r, path)? {
                Branch::Plain(step) => Ok(step),
                branch => Ok(Step::ToUnion(Arc::new(branch))),
            };
        }

        use Kind as K;
        Ok(match (wk, rk) {
            (K::Null, K::Null) => Step::Null,
            (K::Boolean, K::Boolean) => Step::Boolean,
            (K::Int, K::Int) => Step::Int,
            (K::Int, K::Long) => Step::IntToLong,
            (K::Int, K::Float) => Step::IntToFloat,
            (K::Int, K::Double) => Step::IntToDouble,
            (K::Long, K::Long) => Step::Long,
            (K::Long, K::Float) => Step::LongToFloat,
            (K::Long, K::Double) => Step::LongToDouble,
            (K::Float, K::Float) => Step::Float,
            (K::Float, K::Double) => Step::FloatToDouble,
            (K::Double, K::Double) => Step::Double,
            (K::Bytes, K::Bytes) => Step::Bytes,
            (K::String, K::String) => Step::String,
            (K::Bytes, K::String) => Step::BytesAsString,
            (K::String, K::Bytes) => Step::StringAsBytes,
            (K::Fixed, K::Fixed) => {
                let (ws, rs) = (fixed_size(&w), fixed_size(&r));
                if ws != rs {
                    return Err(Self::fail(
                        path,
                        format!("fixed size {ws} cannot be read as size {rs}"),
                    ));
                }
                Step::Fixed(ws)
            }
            (K::Array, K::Array) => {
                let (Schema::Array(wa), Schema::Array(ra)) = (&w, &r) else {
                    unreachable!()
                };
                path.push("[]".into());
                let items = self.step(&wa.items, &ra.items, path)?;
                path.pop();
                Step::Array(Box::new(items))
            }
            (K::Map, K::Map) => {
                let (Schema::Map(wm), Schema::Map(rm)) = (&w, &r) else {
                    unreachable!()
                };
                path.push("{}".into());
                let values = self.step(&wm.types, &rm.types, path)?;
                path.pop();
                Step::Map(Box::new(values))
            }
            (K::Record, K::Record) => {
                let (Schema::Record(wr), Schema::Record(rr)) = (&w, &r) else {
                    unreachable!()
                };
                if !names_match(&wr.name, &rr.name, rr.aliases.as_ref()) {
                    return Err(Self::fail(
                        path,
                        format!(
                            "record {} cannot be read as record {}",
                            wr.name.fullname(None),
                            rr.name.fullname(None)
                        ),
                    ));
                }
                Step::Record(Arc::new(self.record(wr, rr, path)?))
            }
            (K::Enum, K::Enum) => {
                let (Schema::Enum(we), Schema::Enum(re)) = (&w, &r) else {
                    unreachable!()
                };
                if !names_match(&we.name, &re.name, re.aliases.as_ref()) {
                    return Err(Self::fail(
                        path,
                        format!(
                            "enum {} cannot be read as enum {}",
                            we.name.fullname(None),
                            re.name.fullname(None)
                        ),
                    ));
                }
                let symbols = we
                    .symbols
                    .iter()
                    .map(|symbol| {
                        if re.symbols.contains(symbol) {
                            Ok(Arc::from(symbol.as_str()))
                        } else if let Some(default) = &re.default {
                            Ok(Arc::from(default.as_str()))
                        } else {
                            Err(Arc::from(format!(
                                "symbol {symbol} of enum {} is unknown to the reader, which has no default",
                                re.name.fullname(None)
                            )))
                        }
                    })
                    .collect();
                Step::Enum(Arc::new(EnumPlan {
                    name: re.name.fullname(None),
                    symbols,
                }))
            }
            (wk, rk) => {
                return Err(Self::fail(
                    path,
                    format!("{wk:?} cannot be read as {rk:?}").to_lowercase(),
                ));
            }
        })
    }

    /// Resolves a non-union writer type into the reader type, which may be a union.
    fn resolve_into(
        &mut self,
        writer: &Schema,
        reader: &Schema,
        path: &mut Vec<String>,
    ) -> Result<Branch, Incompatible> {
        let Schema::Union(union) = reader else {
            return Ok(Branch::Plain(self.step(writer, reader, path)?));
        };
        let variants: Vec<Schema> = union
            .variants()
            .iter()
            .map(|v| Self::deref(&self.reader_names, v).clone())
            .collect();
        let writer = Self::deref(&self.writer_names, writer).clone();
        let wk = kind(&writer);
        let named = |s: &Schema| match (s, &writer) {
            (Schema::Record(r), Schema::Record(w)) => {
                names_match(&w.name, &r.name, r.aliases.as_ref())
            }
            (Schema::Enum(r), Schema::Enum(w)) => names_match(&w.name, &r.name, r.aliases.as_ref()),
            (Schema::Fixed(r), Schema::Fixed(w)) => {
                names_match(&w.name, &r.name, r.aliases.as_ref())
            }
            _ => true,
        };
        // Avro: the first branch of the same type wins, then the first one it promotes to.
        let exact = variants.iter().position(|v| kind(v) == wk && named(v));
        let candidate = exact.or_else(|| {
            variants.iter().position(|v| {
                let mut probe = Compiler {
                    writer_names: self.writer_names.clone(),
                    reader_names: self.reader_names.clone(),
                    depth: self.depth,
                };
                kind(v) != Kind::Union && probe.step(&writer, v, &mut Vec::new()).is_ok()
            })
        });
        let Some(index) = candidate else {
            return Err(Self::fail(
                path,
                format!("{wk:?} matches no branch of the reader's union").to_lowercase(),
            ));
        };
        let target = &variants[index];
        let step = self.step(&writer, target, path)?;
        Ok(Branch::Read {
            name: branch_name(target),
            null: kind(target) == Kind::Null,
            step,
        })
    }

    fn record(
        &mut self,
        writer: &RecordSchema,
        reader: &RecordSchema,
        path: &mut Vec<String>,
    ) -> Result<RecordPlan, Incompatible> {
        path.push(reader.name.name().to_owned());
        let reader_field_for = |name: &str| {
            reader.fields.iter().find(|f| f.name == name).or_else(|| {
                reader
                    .fields
                    .iter()
                    .find(|f| f.aliases.iter().any(|a| a == name))
            })
        };
        let mut fields = Vec::with_capacity(writer.fields.len());
        let mut seen = Vec::new();
        for wf in &writer.fields {
            match reader_field_for(&wf.name) {
                Some(rf) => {
                    path.push(rf.name.clone());
                    let step = self.step(&wf.schema, &rf.schema, path)?;
                    path.pop();
                    seen.push(rf.name.as_str());
                    fields.push(FieldPlan::Read {
                        name: rf.name.as_str().into(),
                        step,
                    });
                }
                None => {
                    path.push(wf.name.clone());
                    let step = self.step(&wf.schema, &wf.schema, path)?;
                    path.pop();
                    fields.push(FieldPlan::Skip(step));
                }
            }
        }
        let mut defaults = Vec::new();
        for rf in reader
            .fields
            .iter()
            .filter(|f| !seen.contains(&f.name.as_str()))
        {
            match &rf.default {
                Some(default) => defaults.push((Arc::from(rf.name.as_str()), default.clone())),
                None => {
                    path.push(rf.name.clone());
                    let err = Self::fail(
                        path,
                        "the reader's field is missing from the writer and has no default",
                    );
                    path.pop();
                    return Err(err);
                }
            }
        }
        path.pop();
        Ok(RecordPlan {
            name: reader.name.fullname(None),
            fields,
            defaults,
            positional: AtomicUsize::new(0),
        })
    }
}
