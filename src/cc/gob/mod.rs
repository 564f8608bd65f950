//! Go's `encoding/gob`, the subset the miniccc protocol uses, so the daemon
//! speaks to the stock Go agent unchanged (and our own agent speaks to a
//! stock minimega). Pure: bytes in, values out, and back.
//!
//! A gob stream is a sequence of messages, each `uint(length) body`. A body
//! is `int(id)` then either a type definition (negative id: a `wireType`
//! describing type `-id`) or a value of type `id`. Type ids from 64 up are
//! the sender's own, so the [`Decoder`] keeps the definitions it has seen and
//! the [`Encoder`] sends each of its types once, before first use. Structs
//! are sent as (field delta, value) pairs ending in 0, zero-valued fields
//! left out; pointers are flattened; a top-level non-struct value is
//! preceded by a 0 delta.
//!
//! What is implemented: bool, int, uint, float, complex, string, []byte,
//! slices, arrays, maps, structs (any nesting, recursive types included),
//! values of GobEncoder/BinaryMarshaler/TextMarshaler types (kept opaque),
//! and nil interface values. A non-nil interface value is refused with
//! [`GobError::Unsupported`]: no message of the protocol carries one.
//!
//! Everything a peer sends is bounded: a frame's length ([`MAX_FRAME`]),
//! the number of types per stream, fields per struct, nesting depth, and
//! the number of values one message may decode to (so a frame of a million
//! one-byte elements cannot become a gigabyte of values). Every error is a
//! [`GobError`]; nothing here panics on input.

mod decode;
mod encode;
pub(crate) mod structs;
#[cfg(test)]
mod tests;
mod wire;

pub use decode::Decoder;
pub use encode::Encoder;
pub(crate) use structs::{gob_structs, Auto, Codec, GobStruct, Text};

use thiserror::Error;

/// The largest message body accepted (a response carrying a command's
/// whole output comes in one heartbeat).
pub const MAX_FRAME: usize = 32 << 20;
/// Types one stream may define.
pub const MAX_TYPES: usize = 1024;
/// Fields of one struct type.
pub const MAX_FIELDS: usize = 1024;
/// Nesting of values (structs in maps in slices ...).
pub const MAX_DEPTH: usize = 64;
/// Values one message may decode to.
pub const MAX_VALUES: usize = 1 << 20;

/// Go's predefined type ids.
pub(crate) mod ids {
    pub const BOOL: i64 = 1;
    pub const INT: i64 = 2;
    pub const UINT: i64 = 3;
    pub const FLOAT: i64 = 4;
    pub const BYTES: i64 = 5;
    pub const STRING: i64 = 6;
    pub const COMPLEX: i64 = 7;
    pub const INTERFACE: i64 = 8;
    /// Go's firstUserId: ids below it are Go's own (a definition of one
    /// is refused, as Go's decoder refuses it); any id from it up may be a
    /// sender's. Go hands ids out process-wide and its versions count
    /// differently (Go 1.19's first type is 65, Go 1.23's is 64), so no
    /// id above this one may be assumed.
    pub const FIRST_USER: i64 = 64;
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GobError {
    #[error("message truncated")]
    Truncated,
    #[error("integer out of range")]
    IntOverflow,
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooBig { len: u64, max: usize },
    #[error("empty message")]
    Empty,
    #[error("type {0} was never defined")]
    UnknownType(i64),
    #[error("type {0} defined twice or reserved")]
    DuplicateType(i64),
    #[error("malformed type definition: {0}")]
    BadDefinition(&'static str),
    #[error("more than {MAX_TYPES} types")]
    TooManyTypes,
    #[error("field number {field} out of range for a struct of {fields} fields")]
    FieldOutOfRange { field: u64, fields: usize },
    #[error("nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("more than {MAX_VALUES} values in one message")]
    TooManyValues,
    #[error("length {0} exceeds the message")]
    Length(u64),
    #[error("array of length {got}, expected {want}")]
    ArrayLength { got: u64, want: u64 },
    #[error("non-zero delta for a singleton value")]
    Singleton,
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A decoded value does not fit the field it was meant for.
    #[error("field {field}: expected {want}")]
    Mismatch {
        field: &'static str,
        want: &'static str,
    },
    /// Our own value does not fit our own type: a bug, reported not panicked.
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// A decoded (or to-be-encoded) gob value. Strings are bytes: Go strings
/// need not be UTF-8 (a command's output is sent as one).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Complex(f64, f64),
    Str(Vec<u8>),
    Bytes(Vec<u8>),
    Slice(Vec<Value>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// Fields by name, in wire order; absent fields were zero.
    Struct(Vec<(String, Value)>),
    /// The payload of a type that encodes itself (GobEncoder and friends).
    Opaque(Vec<u8>),
    /// A nil interface value.
    Nil,
}

impl Value {
    /// A struct's field, if it was sent.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Zero values are left out of a struct on the wire, as Go does.
    /// Structs themselves are always sent.
    pub(crate) fn is_zero(&self) -> bool {
        match self {
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Uint(u) => *u == 0,
            Value::Float(f) => *f == 0.0,
            Value::Complex(r, i) => *r == 0.0 && *i == 0.0,
            Value::Str(b) | Value::Bytes(b) | Value::Opaque(b) => b.is_empty(),
            Value::Slice(v) => v.is_empty(),
            Value::Map(m) => m.is_empty(),
            Value::Array(_) | Value::Struct(_) | Value::Nil => false,
        }
    }

    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into().into_bytes())
    }
}

/// The types our side sends, described once as constants (see
/// `structs` and `cc::ron`).
#[derive(Debug)]
pub enum Ty {
    Bool,
    Int,
    Uint,
    Float,
    Bytes,
    String,
    Slice(&'static Ty),
    Map(&'static Ty, &'static Ty),
    Struct(&'static StructTy),
}

#[derive(Debug)]
pub struct StructTy {
    /// The Go type's name, as Go would send it.
    pub name: &'static str,
    pub fields: &'static [(&'static str, &'static Ty)],
}

impl Ty {
    /// A name that identifies the type within one stream (Go's spelling).
    pub(crate) fn key(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Uint => "uint".into(),
            Ty::Float => "float64".into(),
            Ty::Bytes => "[]uint8".into(),
            Ty::String => "string".into(),
            Ty::Slice(e) => format!("[]{}", e.elem_key()),
            Ty::Map(k, v) => format!("map[{}]{}", k.key(), v.elem_key()),
            Ty::Struct(s) => s.name.into(),
        }
    }

    /// Go writes pointer elements (`[]*Response`) with a star.
    fn elem_key(&self) -> String {
        match self {
            Ty::Struct(s) => format!("*{}", s.name),
            t => t.key(),
        }
    }

    /// Go's predefined id of a basic type.
    pub(crate) fn builtin(&self) -> Option<i64> {
        Some(match self {
            Ty::Bool => ids::BOOL,
            Ty::Int => ids::INT,
            Ty::Uint => ids::UINT,
            Ty::Float => ids::FLOAT,
            Ty::Bytes => ids::BYTES,
            Ty::String => ids::STRING,
            _ => return None,
        })
    }
}

/// Where the next message of a stream ends: `Ok(Some((header, body)))`
/// once `buf` holds the whole length prefix, `Ok(None)` before. The body
/// may not all be there yet.
pub fn frame_len(buf: &[u8]) -> Result<Option<(usize, usize)>, GobError> {
    let mut r = wire::Reader::new(buf);
    match r.uint() {
        Ok(n) if n > MAX_FRAME as u64 => Err(GobError::FrameTooBig {
            len: n,
            max: MAX_FRAME,
        }),
        Ok(0) => Err(GobError::Empty),
        Ok(n) => Ok(Some((r.pos(), n as usize))),
        Err(GobError::Truncated) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Decodes arbitrary bytes as a gob stream of miniccc messages, for the
/// fuzzer (`fuzz/`): it must return, never panic, on any input.
pub fn fuzz_decode(data: &[u8]) {
    let mut dec = Decoder::new();
    let mut rest = data;
    while let Ok(Some((head, len))) = frame_len(rest) {
        let Some(body) = rest.get(head..head + len) else {
            return;
        };
        if let Ok(Some((_, v))) = dec.message(body) {
            let _ = super::ron::Message::from_gob(&v);
        }
        rest = &rest[head + len..];
    }
}
