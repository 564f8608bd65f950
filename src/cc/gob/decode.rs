//! Reading a gob stream: type definitions as they arrive, values driven by
//! them. Field names come from the sender's definitions, so a value is
//! matched to our types by name, as Go does.

use super::wire::{bits_float, Reader};
use super::{ids, GobError, Value, MAX_DEPTH, MAX_FIELDS, MAX_TYPES, MAX_VALUES};
use std::collections::HashMap;

/// A type the peer defined.
#[derive(Debug, Clone, PartialEq)]
enum Wire {
    Array {
        elem: i64,
        len: u64,
    },
    Slice {
        elem: i64,
    },
    Struct {
        fields: Vec<(String, i64)>,
    },
    Map {
        key: i64,
        elem: i64,
    },
    /// A type that encodes itself: its value is a byte string.
    Opaque,
}

/// One stream's decoder: it remembers the peer's type definitions.
#[derive(Debug, Default)]
pub struct Decoder {
    types: HashMap<i64, Wire>,
}

/// What one message's value may still cost.
struct Budget {
    values: usize,
}

impl Budget {
    fn spend(&mut self, n: usize) -> Result<(), GobError> {
        self.values = self.values.checked_sub(n).ok_or(GobError::TooManyValues)?;
        Ok(())
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// One message body (without its length prefix): `None` for a type
    /// definition, else the value and its type id.
    pub fn message(&mut self, body: &[u8]) -> Result<Option<(i64, Value)>, GobError> {
        let mut r = Reader::new(body);
        let id = r.int()?;
        if id < 0 {
            let id = id.checked_neg().ok_or(GobError::IntOverflow)?;
            self.define(id, &mut r)?;
            return Ok(None);
        }
        let mut budget = Budget { values: MAX_VALUES };
        let v = match self.types.get(&id) {
            Some(Wire::Struct { .. }) => self.value(id, &mut r, 0, &mut budget)?,
            _ => {
                if r.uint()? != 0 {
                    return Err(GobError::Singleton);
                }
                self.value(id, &mut r, 0, &mut budget)?
            }
        };
        Ok(Some((id, v)))
    }

    fn define(&mut self, id: i64, r: &mut Reader) -> Result<(), GobError> {
        if id < ids::FIRST_USER || self.types.contains_key(&id) {
            return Err(GobError::DuplicateType(id));
        }
        if self.types.len() >= MAX_TYPES {
            return Err(GobError::TooManyTypes);
        }
        let mut wire = None;
        struct_fields(r, |field, r| {
            if wire.is_some() {
                return Err(GobError::BadDefinition("more than one kind"));
            }
            wire = Some(match field {
                0 => array_type(r)?,
                1 => slice_type(r)?,
                2 => struct_type(r)?,
                3 => map_type(r)?,
                // GobEncoderT, BinaryMarshalerT, TextMarshalerT
                4..=6 => {
                    struct_fields(r, |f, r| match f {
                        0 => common_type(r).map(|_| ()),
                        _ => Err(GobError::BadDefinition("unknown field")),
                    })?;
                    Wire::Opaque
                }
                _ => return Err(GobError::BadDefinition("unknown kind")),
            });
            Ok(())
        })?;
        let wire = wire.ok_or(GobError::BadDefinition("no kind"))?;
        self.types.insert(id, wire);
        Ok(())
    }

    fn value(
        &self,
        id: i64,
        r: &mut Reader,
        depth: usize,
        budget: &mut Budget,
    ) -> Result<Value, GobError> {
        if depth > MAX_DEPTH {
            return Err(GobError::TooDeep);
        }
        budget.spend(1)?;
        Ok(match id {
            ids::BOOL => Value::Bool(r.uint()? != 0),
            ids::INT => Value::Int(r.int()?),
            ids::UINT => Value::Uint(r.uint()?),
            ids::FLOAT => Value::Float(bits_float(r.uint()?)),
            ids::COMPLEX => Value::Complex(bits_float(r.uint()?), bits_float(r.uint()?)),
            ids::BYTES => Value::Bytes(r.bytes()?.to_vec()),
            ids::STRING => Value::Str(r.bytes()?.to_vec()),
            ids::INTERFACE => {
                if !r.bytes()?.is_empty() {
                    return Err(GobError::Unsupported("non-nil interface values"));
                }
                Value::Nil
            }
            _ => match self.types.get(&id).ok_or(GobError::UnknownType(id))? {
                Wire::Array { elem, len } => {
                    let n = r.uint()?;
                    if n != *len {
                        return Err(GobError::ArrayLength { got: n, want: *len });
                    }
                    if n > r.remaining() as u64 {
                        return Err(GobError::Length(n));
                    }
                    Value::Array(self.items(*elem, n as usize, r, depth, budget)?)
                }
                Wire::Slice { elem } => {
                    let n = r.len(1)?;
                    Value::Slice(self.items(*elem, n, r, depth, budget)?)
                }
                Wire::Map { key, elem } => {
                    let n = r.len(2)?;
                    budget.spend(n)?;
                    let mut out = Vec::with_capacity(n);
                    for _ in 0..n {
                        let k = self.value(*key, r, depth + 1, budget)?;
                        let v = self.value(*elem, r, depth + 1, budget)?;
                        out.push((k, v));
                    }
                    Value::Map(out)
                }
                Wire::Struct { fields } => {
                    let mut out = Vec::new();
                    struct_fields_of(r, fields.len(), |i, r| {
                        let (name, ty) = &fields[i];
                        out.push((name.clone(), self.value(*ty, r, depth + 1, budget)?));
                        Ok(())
                    })?;
                    Value::Struct(out)
                }
                Wire::Opaque => Value::Opaque(r.bytes()?.to_vec()),
            },
        })
    }

    fn items(
        &self,
        elem: i64,
        n: usize,
        r: &mut Reader,
        depth: usize,
        budget: &mut Budget,
    ) -> Result<Vec<Value>, GobError> {
        budget.spend(n)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.value(elem, r, depth + 1, budget)?);
        }
        Ok(out)
    }
}

/// Reads a struct's (delta, field) pairs up to the 0 that ends it,
/// calling `f` with each field's index; `f` reads the field.
fn struct_fields(
    r: &mut Reader,
    f: impl FnMut(usize, &mut Reader) -> Result<(), GobError>,
) -> Result<(), GobError> {
    struct_fields_of(r, usize::MAX, f)
}

fn struct_fields_of(
    r: &mut Reader,
    count: usize,
    mut f: impl FnMut(usize, &mut Reader) -> Result<(), GobError>,
) -> Result<(), GobError> {
    // Go starts at -1, so the first field (index 0) has delta 1.
    let mut at: i128 = -1;
    loop {
        let delta = r.uint()?;
        if delta == 0 {
            return Ok(());
        }
        at += delta as i128;
        if at >= count as i128 || at > MAX_FIELDS as i128 * 8 {
            return Err(GobError::FieldOutOfRange {
                field: at as u64,
                fields: count.min(MAX_FIELDS),
            });
        }
        f(at as usize, r)?;
    }
}

fn string(r: &mut Reader) -> Result<String, GobError> {
    Ok(String::from_utf8_lossy(r.bytes()?).into_owned())
}

/// `CommonType{Name string; Id typeId}`: the name, which nothing checks.
fn common_type(r: &mut Reader) -> Result<String, GobError> {
    let mut name = String::new();
    struct_fields(r, |f, r| {
        match f {
            0 => name = string(r)?,
            1 => {
                r.int()?;
            }
            _ => return Err(GobError::BadDefinition("unknown CommonType field")),
        }
        Ok(())
    })?;
    Ok(name)
}

fn type_id(r: &mut Reader) -> Result<i64, GobError> {
    let id = r.int()?;
    if id <= 0 {
        return Err(GobError::BadDefinition("type id not positive"));
    }
    Ok(id)
}

fn array_type(r: &mut Reader) -> Result<Wire, GobError> {
    let (mut elem, mut len) = (0, 0i64);
    struct_fields(r, |f, r| {
        match f {
            0 => drop(common_type(r)?),
            1 => elem = type_id(r)?,
            2 => len = r.int()?,
            _ => return Err(GobError::BadDefinition("unknown arrayType field")),
        }
        Ok(())
    })?;
    if elem == 0 || len < 0 {
        return Err(GobError::BadDefinition("array without element or length"));
    }
    Ok(Wire::Array {
        elem,
        len: len as u64,
    })
}

fn slice_type(r: &mut Reader) -> Result<Wire, GobError> {
    let mut elem = 0;
    struct_fields(r, |f, r| {
        match f {
            0 => drop(common_type(r)?),
            1 => elem = type_id(r)?,
            _ => return Err(GobError::BadDefinition("unknown sliceType field")),
        }
        Ok(())
    })?;
    if elem == 0 {
        return Err(GobError::BadDefinition("slice without element"));
    }
    Ok(Wire::Slice { elem })
}

fn map_type(r: &mut Reader) -> Result<Wire, GobError> {
    let (mut key, mut elem) = (0, 0);
    struct_fields(r, |f, r| {
        match f {
            0 => drop(common_type(r)?),
            1 => key = type_id(r)?,
            2 => elem = type_id(r)?,
            _ => return Err(GobError::BadDefinition("unknown mapType field")),
        }
        Ok(())
    })?;
    if key == 0 || elem == 0 {
        return Err(GobError::BadDefinition("map without key or element"));
    }
    Ok(Wire::Map { key, elem })
}

fn struct_type(r: &mut Reader) -> Result<Wire, GobError> {
    let mut fields = Vec::new();
    struct_fields(r, |f, r| {
        match f {
            0 => drop(common_type(r)?),
            1 => {
                let n = r.len(1)?;
                if n > MAX_FIELDS {
                    return Err(GobError::BadDefinition("too many fields"));
                }
                for _ in 0..n {
                    let (mut name, mut id) = (String::new(), 0);
                    struct_fields(r, |f, r| {
                        match f {
                            0 => name = string(r)?,
                            1 => id = type_id(r)?,
                            _ => return Err(GobError::BadDefinition("unknown fieldType field")),
                        }
                        Ok(())
                    })?;
                    if id == 0 {
                        return Err(GobError::BadDefinition("field without type"));
                    }
                    fields.push((name, id));
                }
            }
            _ => return Err(GobError::BadDefinition("unknown structType field")),
        }
        Ok(())
    })?;
    Ok(Wire::Struct { fields })
}
