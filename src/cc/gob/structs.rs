//! Rust structs sent as Go structs. [`gob_structs!`] takes one declaration
//! per struct (its Go name; per field the Rust name and type, the Go name,
//! and, where the Rust type alone does not say it, the Go type) and writes
//! the struct, its gob type definition, `to_gob` and `from_gob`, so the
//! three cannot drift apart. Reading is as lenient as Go's: a field not
//! sent is zero, any integer kind fits an integer field, and fields we do
//! not know are skipped (they never reach the struct's value).

use super::{GobError, StructTy, Ty, Value};
use std::collections::BTreeMap;

/// A struct declared with [`gob_structs!`].
pub(crate) trait GobStruct: Sized {
    const STRUCT: &'static StructTy;
    /// Pointers to it are flattened on the wire: a `*T` field is a `T`.
    const TY: &'static Ty = &Ty::Struct(Self::STRUCT);
    fn to_gob(&self) -> Value;
    fn from_gob(v: &Value) -> Result<Self, GobError>;
}

/// How a field of Rust type `T` is carried.
pub(crate) trait Codec<T> {
    const TY: &'static Ty;
    /// `None` leaves the field out (zero values and nil pointers, as Go).
    fn to(v: &T) -> Option<Value>;
    /// `v` is `None` when the field was not sent.
    fn from(v: Option<&Value>, field: &'static str) -> Result<T, GobError>;
}

/// The Go type a Rust type stands for unless the declaration says `as`.
pub(crate) struct Auto;

/// A Go `string` kept as bytes: a command's output need not be UTF-8.
pub(crate) struct Text;

fn mismatch(field: &'static str, want: &'static str) -> GobError {
    GobError::Mismatch { field, want }
}

fn nonzero(v: Value) -> Option<Value> {
    (!v.is_zero()).then_some(v)
}

pub(crate) fn not_a_struct(name: &'static str) -> GobError {
    mismatch(name, "a struct")
}

fn int(v: Option<&Value>, field: &'static str) -> Result<i64, GobError> {
    match v {
        None => Ok(0),
        Some(Value::Int(i)) => Ok(*i),
        Some(Value::Uint(u)) => i64::try_from(*u).map_err(|_| GobError::IntOverflow),
        Some(_) => Err(mismatch(field, "an integer")),
    }
}

fn bytes(v: Option<&Value>, field: &'static str) -> Result<Vec<u8>, GobError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Str(b) | Value::Bytes(b)) => Ok(b.clone()),
        Some(_) => Err(mismatch(field, "a string")),
    }
}

fn text(v: &Value, field: &'static str) -> Result<String, GobError> {
    match v {
        Value::Str(b) | Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        _ => Err(mismatch(field, "a string")),
    }
}

fn str_value(s: &str) -> Value {
    Value::Str(s.as_bytes().to_vec())
}

impl Codec<i64> for Auto {
    const TY: &'static Ty = &Ty::Int;
    fn to(v: &i64) -> Option<Value> {
        nonzero(Value::Int(*v))
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<i64, GobError> {
        int(v, field)
    }
}

impl Codec<u64> for Auto {
    const TY: &'static Ty = &Ty::Uint;
    fn to(v: &u64) -> Option<Value> {
        nonzero(Value::Uint(*v))
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<u64, GobError> {
        match v {
            None => Ok(0),
            Some(Value::Uint(u)) => Ok(*u),
            Some(Value::Int(i)) => u64::try_from(*i).map_err(|_| GobError::IntOverflow),
            Some(_) => Err(mismatch(field, "an unsigned integer")),
        }
    }
}

impl Codec<bool> for Auto {
    const TY: &'static Ty = &Ty::Bool;
    fn to(v: &bool) -> Option<Value> {
        nonzero(Value::Bool(*v))
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<bool, GobError> {
        match v {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(mismatch(field, "a bool")),
        }
    }
}

impl Codec<String> for Auto {
    const TY: &'static Ty = &Ty::String;
    fn to(v: &String) -> Option<Value> {
        nonzero(str_value(v))
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<String, GobError> {
        Ok(String::from_utf8_lossy(&bytes(v, field)?).into_owned())
    }
}

/// `[]byte`.
impl Codec<Vec<u8>> for Auto {
    const TY: &'static Ty = &Ty::Bytes;
    fn to(v: &Vec<u8>) -> Option<Value> {
        nonzero(Value::Bytes(v.clone()))
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<Vec<u8>, GobError> {
        bytes(v, field)
    }
}

impl Codec<Vec<u8>> for Text {
    const TY: &'static Ty = &Ty::String;
    fn to(v: &Vec<u8>) -> Option<Value> {
        nonzero(Value::Str(v.clone()))
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<Vec<u8>, GobError> {
        bytes(v, field)
    }
}

impl Codec<Vec<String>> for Auto {
    const TY: &'static Ty = &Ty::Slice(&Ty::String);
    fn to(v: &Vec<String>) -> Option<Value> {
        nonzero(Value::Slice(v.iter().map(|s| str_value(s)).collect()))
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<Vec<String>, GobError> {
        match v {
            None => Ok(Vec::new()),
            Some(Value::Slice(items) | Value::Array(items)) => {
                items.iter().map(|i| text(i, field)).collect()
            }
            Some(_) => Err(mismatch(field, "a list of strings")),
        }
    }
}

impl Codec<BTreeMap<String, String>> for Auto {
    const TY: &'static Ty = &Ty::Map(&Ty::String, &Ty::String);
    fn to(v: &BTreeMap<String, String>) -> Option<Value> {
        nonzero(Value::Map(
            v.iter()
                .map(|(k, v)| (str_value(k), str_value(v)))
                .collect(),
        ))
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<BTreeMap<String, String>, GobError> {
        match v {
            None => Ok(BTreeMap::new()),
            Some(Value::Map(pairs)) => pairs
                .iter()
                .map(|(k, v)| Ok((text(k, field)?, text(v, field)?)))
                .collect(),
            Some(_) => Err(mismatch(field, "a map of strings")),
        }
    }
}

/// A pointer to an integer (minimega's `*Level`): Go sends neither a nil
/// one nor one pointing at 0, so both read as `None`.
impl Codec<Option<i64>> for Auto {
    const TY: &'static Ty = &Ty::Int;
    fn to(v: &Option<i64>) -> Option<Value> {
        v.map(Value::Int)
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<Option<i64>, GobError> {
        Ok(Some(int(v, field)?).filter(|l| *l != 0))
    }
}

/// `*S`: a struct, sent whenever the pointer is not nil.
impl<S: GobStruct> Codec<Option<S>> for Auto {
    const TY: &'static Ty = S::TY;
    fn to(v: &Option<S>) -> Option<Value> {
        v.as_ref().map(S::to_gob)
    }
    fn from(v: Option<&Value>, _: &'static str) -> Result<Option<S>, GobError> {
        v.map(S::from_gob).transpose()
    }
}

/// `[]*S`.
impl<S: GobStruct> Codec<Vec<S>> for Auto {
    const TY: &'static Ty = &Ty::Slice(S::TY);
    fn to(v: &Vec<S>) -> Option<Value> {
        nonzero(Value::Slice(v.iter().map(S::to_gob).collect()))
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<Vec<S>, GobError> {
        match v {
            None => Ok(Vec::new()),
            Some(Value::Slice(items)) => items.iter().map(S::from_gob).collect(),
            Some(_) => Err(mismatch(field, "a list")),
        }
    }
}

/// `map[int]*S`.
impl<S: GobStruct> Codec<BTreeMap<i64, S>> for Auto {
    const TY: &'static Ty = &Ty::Map(&Ty::Int, S::TY);
    fn to(v: &BTreeMap<i64, S>) -> Option<Value> {
        nonzero(Value::Map(
            v.iter()
                .map(|(k, s)| (Value::Int(*k), s.to_gob()))
                .collect(),
        ))
    }
    fn from(v: Option<&Value>, field: &'static str) -> Result<BTreeMap<i64, S>, GobError> {
        match v {
            None => Ok(BTreeMap::new()),
            Some(Value::Map(pairs)) => pairs
                .iter()
                .map(|(k, v)| {
                    let k = match k {
                        Value::Int(_) | Value::Uint(_) => int(Some(k), field)?,
                        _ => return Err(mismatch(field, "integer keys")),
                    };
                    Ok((k, S::from_gob(v)?))
                })
                .collect(),
            Some(_) => Err(mismatch(field, "a map")),
        }
    }
}

/// Declares structs as Go sends them:
///
/// ```ignore
/// gob_structs! {
///     #[derive(Debug, Default)]
///     pub struct Response => "Response" {
///         pub id: i64 => "ID",
///         pub stdout: Vec<u8> => "Stdout" as Text,
///     }
/// }
/// ```
///
/// Fields are in Go's order (gob numbers them by position). A field's Go
/// type follows from its Rust type ([`Auto`]) unless `as` names another
/// [`Codec`]. Each struct gets `STRUCT` (its gob type definition) and
/// inherent `to_gob`/`from_gob`.
macro_rules! gob_structs {
    (@codec) => { $crate::cc::gob::Auto };
    (@codec $codec:ty) => { $codec };
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident => $go:literal {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident: $ty:ty => $goname:literal $(as $codec:ty)?
            ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// The value Go would send for this struct.
            pub fn to_gob(&self) -> $crate::cc::gob::Value {
                let mut fields = Vec::new();
                $(
                    if let Some(v) = <$crate::cc::gob::gob_structs!(@codec $($codec)?)
                        as $crate::cc::gob::Codec<$ty>>::to(&self.$field)
                    {
                        fields.push(($goname.to_string(), v));
                    }
                )*
                $crate::cc::gob::Value::Struct(fields)
            }

            /// Reads a decoded value, matching fields by their Go names.
            pub fn from_gob(
                v: &$crate::cc::gob::Value,
            ) -> Result<Self, $crate::cc::gob::GobError> {
                if !matches!(v, $crate::cc::gob::Value::Struct(_)) {
                    return Err($crate::cc::gob::structs::not_a_struct($go));
                }
                Ok($name {$(
                    $field: <$crate::cc::gob::gob_structs!(@codec $($codec)?) as $crate::cc::gob::Codec<$ty>>::from(
                        v.field($goname),
                        $goname,
                    )?,
                )*})
            }
        }

        impl $crate::cc::gob::GobStruct for $name {
            const STRUCT: &'static $crate::cc::gob::StructTy = &$crate::cc::gob::StructTy {
                name: $go,
                fields: &[$((
                    $goname,
                    <$crate::cc::gob::gob_structs!(@codec $($codec)?) as $crate::cc::gob::Codec<$ty>>::TY,
                )),*],
            };
            fn to_gob(&self) -> $crate::cc::gob::Value {
                $name::to_gob(self)
            }
            fn from_gob(v: &$crate::cc::gob::Value) -> Result<Self, $crate::cc::gob::GobError> {
                $name::from_gob(v)
            }
        }
    )*};
}
pub(crate) use gob_structs;
