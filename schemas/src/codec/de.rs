//! A serde `Deserializer` that reads Avro binary by walking a compiled [`Step`] tree.
//!
//! No intermediate `Value`, no schema lookups, no field-name allocations: strings and
//! bytes are handed to the visitor borrowed from the input, record fields are offered in
//! writer order with the reader's names, and skipped fields are consumed in place.

use serde::de::value::{BorrowedStrDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

use super::plan::{Branch, EnumPlan, FieldPlan, RecordPlan, Step};

/// Why bytes did not decode. Always permanent: the same bytes fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt Avro data at byte {offset}: {reason}")]
pub struct Corrupt {
    /// Offset into the Avro body (after the wire-format header).
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

impl de::Error for Corrupt {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Corrupt {
            offset: usize::MAX,
            reason: msg.to_string(),
        }
    }
}

/// The input cursor.
pub(crate) struct Input<'de> {
    bytes: &'de [u8],
    pos: usize,
}

impl<'de> Input<'de> {
    pub(crate) fn new(bytes: &'de [u8]) -> Self {
        Input { bytes, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, Corrupt> {
        Err(Corrupt {
            offset: self.pos,
            reason: reason.into(),
        })
    }

    #[inline(always)]
    fn long(&mut self) -> Result<i64, Corrupt> {
        // One-byte varints (lengths under 64, small numbers) are the common case.
        if let Some(&byte) = self.bytes.get(self.pos)
            && byte & 0x80 == 0
        {
            self.pos += 1;
            return Ok(i64::from(byte >> 1) ^ -i64::from(byte & 1));
        }
        self.long_slow()
    }

    #[inline(never)]
    fn long_slow(&mut self) -> Result<i64, Corrupt> {
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return self.fail("input ends inside a varint");
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
            shift += 7;
            if shift > 63 {
                return self.fail("varint longer than 10 bytes");
            }
        }
    }

    #[inline]
    fn int(&mut self) -> Result<i32, Corrupt> {
        let value = self.long()?;
        i32::try_from(value).or_else(|_| self.fail(format!("int out of range: {value}")))
    }

    #[inline]
    fn take(&mut self, len: usize) -> Result<&'de [u8], Corrupt> {
        if self.remaining() < len {
            return self.fail(format!("needs {len} bytes, {} left", self.remaining()));
        }
        let slice = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(slice)
    }

    #[inline(always)]
    fn bytes(&mut self) -> Result<&'de [u8], Corrupt> {
        let len = self.long()?;
        let len = usize::try_from(len).or_else(|_| self.fail(format!("negative length {len}")))?;
        self.take(len)
    }

    #[inline]
    fn str(&mut self) -> Result<&'de str, Corrupt> {
        let start = self.pos;
        let bytes = self.bytes()?;
        // simdutf8's validation is several times faster than std's on text of this size; on
        // failure std's error gives the position.
        match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(_) => Err(Corrupt {
                offset: start,
                reason: match std::str::from_utf8(bytes) {
                    Err(e) => format!("string is not UTF-8: {e}"),
                    Ok(_) => "string is not UTF-8".into(),
                },
            }),
        }
    }

    fn float(&mut self) -> Result<f32, Corrupt> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn double(&mut self) -> Result<f64, Corrupt> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn boolean(&mut self) -> Result<bool, Corrupt> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => self.fail(format!("boolean byte {b}")),
        }
    }

    /// Reads a block count of an array or map (a negative count is followed by a byte size).
    fn block_len(&mut self) -> Result<usize, Corrupt> {
        let count = self.long()?;
        if count < 0 {
            self.long()?;
        }
        let count = count.unsigned_abs() as usize;
        // Every item takes at least... zero bytes (null), so bound by a sane maximum instead.
        if count > 1 << 24 {
            return self.fail(format!("block of {count} items"));
        }
        Ok(count)
    }

    fn union_index(&mut self, branches: usize) -> Result<usize, Corrupt> {
        let index = self.long()?;
        match usize::try_from(index) {
            Ok(i) if i < branches => Ok(i),
            _ => self.fail(format!("union branch {index} of {branches}")),
        }
    }

    fn enum_symbol<'p>(&mut self, plan: &'p EnumPlan) -> Result<&'p str, Corrupt> {
        let index = self.long()?;
        match usize::try_from(index)
            .ok()
            .and_then(|i| plan.symbols.get(i))
        {
            Some(Ok(symbol)) => Ok(symbol),
            Some(Err(reason)) => self.fail(reason.to_string()),
            None => self.fail(format!("enum {} has no symbol {index}", plan.name)),
        }
    }

    /// Consumes one value of `step` without producing it.
    pub(crate) fn skip(&mut self, step: &Step) -> Result<(), Corrupt> {
        match step {
            Step::Null => {}
            Step::Boolean => {
                self.take(1)?;
            }
            Step::Int
            | Step::Long
            | Step::IntToLong
            | Step::IntToFloat
            | Step::IntToDouble
            | Step::LongToFloat
            | Step::LongToDouble => {
                self.long()?;
            }
            Step::Float | Step::FloatToDouble => {
                self.take(4)?;
            }
            Step::Double => {
                self.take(8)?;
            }
            Step::Bytes | Step::String | Step::BytesAsString | Step::StringAsBytes => {
                self.bytes()?;
            }
            Step::Fixed(n) => {
                self.take(*n)?;
            }
            Step::Enum(_) => {
                self.long()?;
            }
            Step::Array(items) => loop {
                let n = self.block_len()?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    self.skip(items)?;
                }
            },
            Step::Map(values) => loop {
                let n = self.block_len()?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    self.bytes()?;
                    self.skip(values)?;
                }
            },
            Step::Record(plan) => {
                for field in &plan.fields {
                    match field {
                        FieldPlan::Read { step, .. } | FieldPlan::Skip(step) => self.skip(step)?,
                    }
                }
            }
            Step::Union(branches) => {
                let i = self.union_index(branches.len())?;
                match &branches[i] {
                    Branch::Read { step, .. } | Branch::Plain(step) => self.skip(step)?,
                    Branch::Unmatched(reason) => return self.fail(reason.to_string()),
                }
            }
            Step::ToUnion(branch) => match branch.as_ref() {
                Branch::Read { step, .. } | Branch::Plain(step) => self.skip(step)?,
                Branch::Unmatched(reason) => return self.fail(reason.to_string()),
            },
        }
        Ok(())
    }
}

/// Deserializes one value of `step` from `input`.
pub(crate) struct ValueDeserializer<'a, 'de> {
    pub(crate) input: &'a mut Input<'de>,
    pub(crate) step: &'a Step,
}

impl<'a, 'de> ValueDeserializer<'a, 'de> {
    /// Selects the writer's union branch, failing on an unmatched one.
    fn branch(&mut self, branches: &'a [Branch]) -> Result<&'a Branch, Corrupt> {
        let i = self.input.union_index(branches.len())?;
        match &branches[i] {
            Branch::Unmatched(reason) => self.input.fail(reason.to_string()),
            branch => Ok(branch),
        }
    }
}

impl<'de> Deserializer<'de> for ValueDeserializer<'_, 'de> {
    type Error = Corrupt;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Corrupt> {
        let input = &mut *self.input;
        match self.step {
            Step::Null => visitor.visit_unit(),
            Step::Boolean => visitor.visit_bool(input.boolean()?),
            Step::Int => visitor.visit_i32(input.int()?),
            Step::Long => visitor.visit_i64(input.long()?),
            Step::IntToLong => visitor.visit_i64(i64::from(input.int()?)),
            Step::IntToFloat => visitor.visit_f32(input.int()? as f32),
            Step::IntToDouble => visitor.visit_f64(f64::from(input.int()?)),
            Step::LongToFloat => visitor.visit_f32(input.long()? as f32),
            Step::LongToDouble => visitor.visit_f64(input.long()? as f64),
            Step::Float => visitor.visit_f32(input.float()?),
            Step::FloatToDouble => visitor.visit_f64(f64::from(input.float()?)),
            Step::Double => visitor.visit_f64(input.double()?),
            Step::Bytes | Step::StringAsBytes => visitor.visit_borrowed_bytes(input.bytes()?),
            Step::String | Step::BytesAsString => visitor.visit_borrowed_str(input.str()?),
            Step::Fixed(n) => visitor.visit_borrowed_bytes(input.take(*n)?),
            Step::Enum(plan) => visitor.visit_str(input.enum_symbol(plan)?),
            Step::Array(items) => visitor.visit_seq(Blocks::new(input, items)),
            Step::Map(values) => visitor.visit_map(Blocks::new(input, values)),
            Step::Record(plan) => visitor.visit_map(Fields::new(input, plan)),
            Step::Union(branches) => match self.branch(branches)? {
                Branch::Read { null: true, .. } => visitor.visit_unit(),
                Branch::Read { step, .. } | Branch::Plain(step) => ValueDeserializer {
                    input: self.input,
                    step,
                }
                .deserialize_any(visitor),
                Branch::Unmatched(_) => unreachable!("branch() rejects unmatched branches"),
            },
            Step::ToUnion(branch) => match branch.as_ref() {
                Branch::Read { null: true, .. } => visitor.visit_unit(),
                Branch::Read { step, .. } | Branch::Plain(step) => {
                    ValueDeserializer { input, step }.deserialize_any(visitor)
                }
                Branch::Unmatched(reason) => input.fail(reason.to_string()),
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Corrupt> {
        match self.step {
            Step::Null => visitor.visit_none(),
            Step::Union(branches) => match self.branch(branches)? {
                Branch::Read { null: true, .. } => visitor.visit_none(),
                Branch::Read { step, .. } | Branch::Plain(step) => {
                    visitor.visit_some(ValueDeserializer {
                        input: self.input,
                        step,
                    })
                }
                Branch::Unmatched(_) => unreachable!("branch() rejects unmatched branches"),
            },
            Step::ToUnion(branch) => match branch.as_ref() {
                Branch::Read { null: true, .. } => visitor.visit_none(),
                Branch::Read { step, .. } | Branch::Plain(step) => {
                    visitor.visit_some(ValueDeserializer {
                        input: self.input,
                        step,
                    })
                }
                Branch::Unmatched(reason) => self.input.fail(reason.to_string()),
            },
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Corrupt> {
        match self.step {
            Step::Enum(plan) => {
                let symbol = self.input.enum_symbol(plan)?;
                visitor.visit_enum(symbol.into_deserializer())
            }
            Step::Union(branches) => match self.branch(branches)? {
                Branch::Read { name, step, .. } => visitor.visit_enum(Variant {
                    input: self.input,
                    name,
                    step,
                }),
                Branch::Plain(step) => ValueDeserializer {
                    input: self.input,
                    step,
                }
                .deserialize_enum(_name, _variants, visitor),
                Branch::Unmatched(_) => unreachable!("branch() rejects unmatched branches"),
            },
            Step::ToUnion(branch) => match branch.as_ref() {
                Branch::Read { name, step, .. } => visitor.visit_enum(Variant {
                    input: self.input,
                    name,
                    step,
                }),
                Branch::Plain(step) => ValueDeserializer {
                    input: self.input,
                    step,
                }
                .deserialize_enum(_name, _variants, visitor),
                Branch::Unmatched(reason) => self.input.fail(reason.to_string()),
            },
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Corrupt> {
        match self.step {
            Step::Record(plan) if plan.positional_for(fields) => visitor.visit_seq(Positional {
                input: self.input,
                plan,
                next: 0,
            }),
            _ => self.deserialize_any(visitor),
        }
    }

    // Typed entry points for the common cases: a direct, well-predicted branch per field
    // instead of `deserialize_any`'s jump table over every step kind.
    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Corrupt> {
        match self.step {
            Step::String => visitor.visit_borrowed_str(self.input.str()?),
            _ => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Corrupt> {
        self.deserialize_string(visitor)
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Corrupt> {
        match self.step {
            Step::Long => visitor.visit_i64(self.input.long()?),
            _ => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Corrupt> {
        match self.step {
            Step::Int => visitor.visit_i32(self.input.int()?),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Corrupt> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// The items of an array, or the entries of a map, block by block.
struct Blocks<'a, 'de> {
    input: &'a mut Input<'de>,
    step: &'a Step,
    left_in_block: usize,
    done: bool,
}

impl<'a, 'de> Blocks<'a, 'de> {
    fn new(input: &'a mut Input<'de>, step: &'a Step) -> Self {
        Blocks {
            input,
            step,
            left_in_block: 0,
            done: false,
        }
    }

    fn next(&mut self) -> Result<bool, Corrupt> {
        if self.done {
            return Ok(false);
        }
        if self.left_in_block == 0 {
            self.left_in_block = self.input.block_len()?;
            if self.left_in_block == 0 {
                self.done = true;
                return Ok(false);
            }
        }
        self.left_in_block -= 1;
        Ok(true)
    }
}

impl<'de> de::SeqAccess<'de> for Blocks<'_, 'de> {
    type Error = Corrupt;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Corrupt> {
        if !self.next()? {
            return Ok(None);
        }
        seed.deserialize(ValueDeserializer {
            input: self.input,
            step: self.step,
        })
        .map(Some)
    }
}

impl<'de> de::MapAccess<'de> for Blocks<'_, 'de> {
    type Error = Corrupt;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Corrupt> {
        if !self.next()? {
            return Ok(None);
        }
        let key = self.input.str()?;
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Corrupt> {
        seed.deserialize(ValueDeserializer {
            input: self.input,
            step: self.step,
        })
    }
}

/// The fields of a record: the writer's (skipping those the reader lacks), then defaults.
struct Fields<'a, 'de> {
    input: &'a mut Input<'de>,
    plan: &'a RecordPlan,
    next: usize,
    value: Option<&'a Step>,
}

impl<'a, 'de> Fields<'a, 'de> {
    fn new(input: &'a mut Input<'de>, plan: &'a RecordPlan) -> Self {
        Fields {
            input,
            plan,
            next: 0,
            value: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for Fields<'_, 'de> {
    type Error = Corrupt;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Corrupt> {
        let plan = self.plan;
        while let Some(field) = plan.fields.get(self.next) {
            self.next += 1;
            match field {
                FieldPlan::Skip(step) => self.input.skip(step)?,
                FieldPlan::Read { name, step } => {
                    self.value = Some(step);
                    return seed
                        .deserialize(StrDeserializer::<Corrupt>::new(name))
                        .map(Some);
                }
            }
        }
        let default = self.next - plan.fields.len();
        match plan.defaults.get(default) {
            Some((name, _)) => {
                self.next += 1;
                self.value = None;
                seed.deserialize(StrDeserializer::<Corrupt>::new(name))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Corrupt> {
        match self.value.take() {
            Some(step) => seed.deserialize(ValueDeserializer {
                input: self.input,
                step,
            }),
            None => {
                let (name, default) = &self.plan.defaults[self.next - self.plan.fields.len() - 1];
                seed.deserialize(default.clone()).map_err(|e| Corrupt {
                    offset: self.input.pos,
                    reason: format!("default of field {name} of {}: {e}", self.plan.name),
                })
            }
        }
    }
}

/// The fields of a record whose writer order is the Rust struct's: offered as a sequence.
struct Positional<'a, 'de> {
    input: &'a mut Input<'de>,
    plan: &'a RecordPlan,
    next: usize,
}

impl<'de> de::SeqAccess<'de> for Positional<'_, 'de> {
    type Error = Corrupt;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Corrupt> {
        match self.plan.fields.get(self.next) {
            Some(FieldPlan::Read { step, .. } | FieldPlan::Skip(step)) => {
                self.next += 1;
                seed.deserialize(ValueDeserializer {
                    input: self.input,
                    step,
                })
                .map(Some)
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.plan.fields.len() - self.next)
    }
}

/// A union branch offered as an enum variant named like the branch.
struct Variant<'a, 'de> {
    input: &'a mut Input<'de>,
    name: &'a str,
    step: &'a Step,
}

impl<'a, 'de> de::EnumAccess<'de> for Variant<'a, 'de> {
    type Error = Corrupt;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Corrupt> {
        let name: &str = self.name;
        let value = seed.deserialize(de::value::StrDeserializer::<Corrupt>::new(name))?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Corrupt;

    fn unit_variant(self) -> Result<(), Corrupt> {
        self.input.skip(self.step)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Corrupt> {
        seed.deserialize(ValueDeserializer {
            input: self.input,
            step: self.step,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Corrupt> {
        ValueDeserializer {
            input: self.input,
            step: self.step,
        }
        .deserialize_any(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Corrupt> {
        ValueDeserializer {
            input: self.input,
            step: self.step,
        }
        .deserialize_any(visitor)
    }
}
