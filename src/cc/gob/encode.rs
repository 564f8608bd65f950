//! Writing a gob stream: each of our types is defined once per stream,
//! before its first value, outer types first (as Go sends them).

use super::wire::{float_bits, put_bytes, put_int, put_uint};
use super::{ids, GobError, StructTy, Ty, Value, MAX_DEPTH};
use std::collections::HashMap;

/// One stream's encoder: it remembers which types the peer has been sent.
#[derive(Debug)]
pub struct Encoder {
    ids: HashMap<String, i64>,
    next: i64,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            ids: HashMap::new(),
            // Go 1.19's numbering; every Go decodes any id from 64 up.
            next: ids::FIRST_USER + 1,
        }
    }
}

fn mismatch(ty: &Ty, v: &Value) -> GobError {
    GobError::Encode(format!("{v:?} is not a {}", ty.key()))
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// The messages that send `v` as a `ty`: definitions of types not sent
    /// before, then the value, each with its length prefix.
    pub fn encode(&mut self, ty: &'static Ty, v: &Value) -> Result<Vec<u8>, GobError> {
        let mut fresh = Vec::new();
        let id = self.id_of(ty, &mut fresh);
        let mut out = Vec::new();
        for t in fresh {
            let tid = self.ids[&t.key()];
            let mut body = Vec::new();
            put_int(&mut body, -tid);
            self.definition(t, &mut body);
            frame(&mut out, &body);
        }
        let mut body = Vec::new();
        put_int(&mut body, id);
        if !matches!(ty, Ty::Struct(_)) {
            put_uint(&mut body, 0);
        }
        value(ty, v, &mut body, 0)?;
        frame(&mut out, &body);
        Ok(out)
    }

    /// The id of `ty`, assigning ids to it and the types it uses when new
    /// (collected in `fresh`, outer first).
    fn id_of(&mut self, ty: &'static Ty, fresh: &mut Vec<&'static Ty>) -> i64 {
        if let Some(id) = ty.builtin() {
            return id;
        }
        let key = ty.key();
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = self.next;
        self.next += 1;
        self.ids.insert(key, id);
        fresh.push(ty);
        match ty {
            Ty::Slice(e) => {
                self.id_of(e, fresh);
            }
            Ty::Map(k, e) => {
                self.id_of(k, fresh);
                self.id_of(e, fresh);
            }
            Ty::Struct(s) => {
                for (_, f) in s.fields {
                    self.id_of(f, fresh);
                }
            }
            _ => {}
        }
        id
    }

    fn id(&self, ty: &Ty) -> i64 {
        ty.builtin().unwrap_or_else(|| self.ids[&ty.key()])
    }

    /// A `wireType` naming `ty`'s kind: (delta, kind struct) ... 0.
    fn definition(&self, ty: &Ty, out: &mut Vec<u8>) {
        let id = self.id(ty);
        let common = |out: &mut Vec<u8>| {
            put_uint(out, 1); // CommonType
            put_uint(out, 1); // .Name
            put_bytes(out, ty.key().as_bytes());
            put_uint(out, 1); // .Id
            put_int(out, id);
            put_uint(out, 0);
        };
        match ty {
            Ty::Slice(e) => {
                put_uint(out, 2); // SliceT
                common(out);
                put_uint(out, 1); // Elem
                put_int(out, self.id(e));
            }
            Ty::Map(k, e) => {
                put_uint(out, 4); // MapT
                common(out);
                put_uint(out, 1); // Key
                put_int(out, self.id(k));
                put_uint(out, 1); // Elem
                put_int(out, self.id(e));
            }
            Ty::Struct(s) => {
                put_uint(out, 3); // StructT
                common(out);
                put_uint(out, 1); // Field
                put_uint(out, s.fields.len() as u64);
                for (name, f) in s.fields {
                    put_uint(out, 1);
                    put_bytes(out, name.as_bytes());
                    put_uint(out, 1);
                    put_int(out, self.id(f));
                    put_uint(out, 0);
                }
            }
            _ => unreachable!("basic types are predefined"),
        }
        put_uint(out, 0); // end of the kind's struct
        put_uint(out, 0); // end of wireType
    }
}

fn frame(out: &mut Vec<u8>, body: &[u8]) {
    put_uint(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn value(ty: &Ty, v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), GobError> {
    if depth > MAX_DEPTH {
        return Err(GobError::TooDeep);
    }
    match (ty, v) {
        (Ty::Bool, Value::Bool(b)) => put_uint(out, *b as u64),
        (Ty::Int, Value::Int(i)) => put_int(out, *i),
        (Ty::Int, Value::Uint(u)) => {
            put_int(out, i64::try_from(*u).map_err(|_| GobError::IntOverflow)?)
        }
        (Ty::Uint, Value::Uint(u)) => put_uint(out, *u),
        (Ty::Uint, Value::Int(i)) => {
            put_uint(out, u64::try_from(*i).map_err(|_| GobError::IntOverflow)?)
        }
        (Ty::Float, Value::Float(f)) => put_uint(out, float_bits(*f)),
        (Ty::Bytes, Value::Bytes(b) | Value::Str(b)) => put_bytes(out, b),
        (Ty::String, Value::Str(b) | Value::Bytes(b)) => put_bytes(out, b),
        (Ty::Slice(e), Value::Slice(items) | Value::Array(items)) => {
            put_uint(out, items.len() as u64);
            for item in items {
                value(e, item, out, depth + 1)?;
            }
        }
        (Ty::Map(k, e), Value::Map(pairs)) => {
            put_uint(out, pairs.len() as u64);
            for (key, item) in pairs {
                value(k, key, out, depth + 1)?;
                value(e, item, out, depth + 1)?;
            }
        }
        (Ty::Struct(s), Value::Struct(fields)) => strukt(s, fields, out, depth)?,
        _ => return Err(mismatch(ty, v)),
    }
    Ok(())
}

fn strukt(
    s: &StructTy,
    fields: &[(String, Value)],
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), GobError> {
    if let Some((name, _)) = fields
        .iter()
        .find(|(n, _)| !s.fields.iter().any(|(f, _)| f == n))
    {
        return Err(GobError::Encode(format!("{} has no field {name}", s.name)));
    }
    let mut last: i64 = -1;
    for (i, (name, fty)) in s.fields.iter().enumerate() {
        let Some((_, v)) = fields.iter().find(|(n, _)| n == name) else {
            continue;
        };
        if v.is_zero() {
            continue;
        }
        put_uint(out, (i as i64 - last) as u64);
        last = i as i64;
        value(fty, v, out, depth + 1)?;
    }
    put_uint(out, 0);
    Ok(())
}
