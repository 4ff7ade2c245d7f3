//! Limits on the work a body may cost to decode, whatever its size.
//!
//! Bounding memory by the bytes received (the codec's allocation limit) leaves two ways for a
//! small body to cost a lot:
//!
//! - **Nesting.** serde decodes one stack frame (or several) per level of a recursive type,
//!   and bincode's serde path has no depth limit: `Neg(Neg(…))` a million deep is a million
//!   bytes and overflows any thread's stack, which aborts the process. serde_json counts only
//!   brackets, so a recursion through a newtype and an `Option` (`struct C(Option<Box<C>>)`)
//!   recurses in JSON without consuming a byte.
//! - **Zero-sized elements.** A `Vec<()>`, `Vec<Empty>` or `HashSet<()>` element takes no bytes
//!   in bincode, so nine bytes can declare 2^60 of them and serde loops that many times.
//!
//! [`Limited`] wraps a format's `Deserializer` and passes everything through, counting on the
//! way (neither bincode nor a well-kept crate offers this; `serde_stacker` grows the stack
//! instead, which bounds nothing). Every nested value is a nested `Deserializer` call, so the
//! wrapper sees each level and each element. Levels are counted where a visitor is handed nested access (a sequence,
//! map, enum, `Some` or newtype); the elements of sequences and maps whose length comes from
//! the body are counted against a budget of one per byte received plus a constant. Every
//! element that is not zero-sized begins with a byte of its own (an element's first byte is
//! never another element's first byte: a nested sequence or map begins with its length), so
//! a legitimate body never has more elements than bytes, and only zero-sized ones draw on the
//! constant. Tuples, structs and enum variants have lengths fixed by the type and are not
//! counted.
//!
//! Bincode gives the length of a sequence before its first element, so its whole length is
//! charged at once and a hostile one is refused before any element is decoded; JSON does not
//! know it in advance, so its elements are charged as they come.

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// How deep values may nest in one body: each sequence, map, struct, tuple, enum, `Some` and
/// newtype struct is one level (a variant's fields are on its enum's level). A tree node
/// linked as `Option<Box<Node>>` takes two.
///
/// ```
/// use micro::codec::{ContentType, MAX_DEPTH};
///
/// #[derive(Debug, serde::Deserialize)]
/// enum Expr { Lit(i64), Neg(Box<Expr>) }
///
/// // `Neg(Neg(…Lit(0)…))` in bincode, one byte per `Neg`: one level too many.
/// let mut body = vec![1u8; MAX_DEPTH as usize];
/// body.extend([0, 0]);
/// let err = ContentType::Bincode.decode::<Expr>(&body).unwrap_err();
/// assert_eq!(err.to_string(), "nested too deep: more than 128 levels");
/// ```
pub const MAX_DEPTH: u32 = 128;

/// How many elements of sequences and maps a body may declare beyond one per byte it has:
/// the room for zero-sized elements such as `()`, which take no bytes.
///
/// ```
/// use micro::codec::{Bincode, Codec, SPARE_ELEMENTS};
///
/// let fine = Bincode::encode(&vec![(); 1000]).unwrap();
/// assert_eq!(Bincode::decode::<Vec<()>>(&fine).unwrap().len(), 1000);
/// let bomb = Bincode::encode(&vec![(); 2 * SPARE_ELEMENTS]).unwrap();
/// let err = Bincode::decode::<Vec<()>>(&bomb).unwrap_err();
/// assert!(err.to_string().starts_with("too many elements"));
/// ```
pub const SPARE_ELEMENTS: usize = 1 << 16;

/// A limit a decode ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// Values nested deeper than [`MAX_DEPTH`].
    Depth,
    /// More elements than the body's budget.
    Elements {
        /// The budget of the whole body.
        allowed: usize,
    },
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Depth => write!(f, "nested too deep: more than {MAX_DEPTH} levels"),
            Self::Elements { allowed } => write!(
                f,
                "too many elements: sequences and maps declare more than the {allowed} the body \
                 allows (one per byte, plus {SPARE_ELEMENTS})"
            ),
        }
    }
}

/// What one decode may still spend, shared by reference between its wrappers: every nested
/// wrapper is made and dropped inside its parent's call, on one thread.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Elements left.
    elements: Cell<usize>,
    allowed: usize,
    /// The first limit reached, kept because a visitor may replace or swallow our error
    /// (untagged enums, `#[serde(default)]`-style wrappers).
    exceeded: Cell<Option<Exceeded>>,
}

impl Budget {
    /// The budget of a body of `len` bytes.
    pub(crate) fn new(len: usize) -> Self {
        let allowed = len.saturating_add(SPARE_ELEMENTS);
        Self {
            elements: Cell::new(allowed),
            allowed,
            exceeded: Cell::new(None),
        }
    }

    /// The first limit this decode reached, if any.
    pub(crate) fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded.get()
    }

    #[cold]
    #[inline(never)]
    fn refuse<E: de::Error>(&self, why: Exceeded) -> E {
        if self.exceeded.get().is_none() {
            self.exceeded.set(Some(why));
        }
        E::custom(why)
    }

    /// The levels left one level below a value with `depth` left.
    #[inline(always)]
    fn enter<E: de::Error>(&self, depth: u32) -> Result<u32, E> {
        match depth.checked_sub(1) {
            Some(depth) => Ok(depth),
            None => Err(self.refuse(Exceeded::Depth)),
        }
    }

    /// Spends `n` elements.
    #[inline(always)]
    fn spend<E: de::Error>(&self, n: usize) -> Result<(), E> {
        match self.elements.get().checked_sub(n) {
            Some(left) => {
                self.elements.set(left);
                Ok(())
            }
            None => Err(self.refuse(Exceeded::Elements {
                allowed: self.allowed,
            })),
        }
    }
}

/// A `Deserializer` that decodes through `inner` within a [`Budget`].
///
/// `ANY` says whether the format may hand nested access to any visitor: a self-describing
/// format (JSON) may answer `deserialize_bytes` with a sequence, so every visitor is wrapped.
/// bincode is not self-describing: it answers a scalar hint with that scalar and hands nested
/// access only to the methods that ask for it (sequences, tuples, structs, maps, enums,
/// options, newtypes), so its scalars skip the wrapper and the cost of the limits stays on
/// the compound values.
pub(crate) struct Limited<'b, D, const ANY: bool> {
    inner: D,
    budget: &'b Budget,
    /// Levels left below this value's. Carried by value rather than kept in the budget, so
    /// nothing is left to undo when a nested call returns: every method ends in a tail call.
    depth: u32,
}

impl<'b, D, const ANY: bool> Limited<'b, D, ANY> {
    /// Decodes a whole body through `inner`.
    pub(crate) fn new(inner: D, budget: &'b Budget) -> Self {
        Self {
            inner,
            budget,
            depth: MAX_DEPTH,
        }
    }
}

/// Where the length of what a visitor is handed comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Length {
    /// Read from the body: sequences, maps, and whatever a self-describing format finds.
    FromBody,
    /// Fixed by the type: tuples, structs, and values with nothing nested.
    FromType,
    /// The fields of an enum variant: fixed by the type, and on the enum's level.
    Variant,
}

/// A visitor that wraps the nested access it is handed.
struct Wrap<'b, V, const ANY: bool> {
    inner: V,
    budget: &'b Budget,
    depth: u32,
    length: Length,
}

/// A sequence's elements, each decoded within the budget; `charge` says whether each element
/// is still to be paid for (its length was not known up front).
struct Seq<'b, A, const ANY: bool> {
    inner: A,
    budget: &'b Budget,
    depth: u32,
    charge: bool,
}

/// A map's entries, as [`Seq`].
struct Map<'b, A, const ANY: bool> {
    inner: A,
    budget: &'b Budget,
    depth: u32,
    charge: bool,
}

struct Enum<'b, A, const ANY: bool> {
    inner: A,
    budget: &'b Budget,
    depth: u32,
}

struct Variant<'b, A, const ANY: bool> {
    inner: A,
    budget: &'b Budget,
    depth: u32,
}

/// A seed whose value is decoded within the budget, `depth` levels left.
struct Seed<'b, S, const ANY: bool> {
    inner: S,
    budget: &'b Budget,
    depth: u32,
}

impl<'b, S, const ANY: bool> Seed<'b, S, ANY> {
    #[inline(always)]
    fn new(inner: S, budget: &'b Budget, depth: u32) -> Self {
        Self {
            inner,
            budget,
            depth,
        }
    }
}

impl<'de, S: DeserializeSeed<'de>, const ANY: bool> DeserializeSeed<'de> for Seed<'_, S, ANY> {
    type Value = S::Value;

    #[inline(always)]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Limited::<D, ANY> {
            inner: deserializer,
            budget: self.budget,
            depth: self.depth,
        })
    }
}

/// `deserialize_*` methods that pass the call on with the visitor wrapped.
macro_rules! wrapped {
    ($length:ident: $($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[inline(always)]
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Wrap::<V, ANY> {
                inner: visitor,
                budget: self.budget,
                depth: self.depth,
                length: Length::$length,
            })
        }
    )*};
}

/// `deserialize_*` methods for scalars: the visitor is wrapped only for a format that may
/// hand it nested access anyway.
macro_rules! scalars {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[inline(always)]
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            if ANY {
                self.inner.$method($($arg,)* Wrap::<V, ANY> {
                    inner: visitor,
                    budget: self.budget,
                    depth: self.depth,
                    length: Length::FromType,
                })
            } else {
                self.inner.$method($($arg,)* visitor)
            }
        }
    )*};
}

impl<'de, D: Deserializer<'de>, const ANY: bool> Deserializer<'de> for Limited<'_, D, ANY> {
    type Error = D::Error;

    wrapped! {FromBody:
        deserialize_any();
        deserialize_seq();
        deserialize_map();
    }

    wrapped! {FromType:
        deserialize_option();
        deserialize_newtype_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }

    scalars! {
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// `visit_*` methods for values with nothing nested: passed on as they are.
macro_rules! pass {
    ($($method:ident($ty:ty);)*) => {$(
        #[inline(always)]
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>, const ANY: bool> Visitor<'de> for Wrap<'_, V, ANY> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    pass! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    #[inline(always)]
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    #[inline(always)]
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    #[inline(always)]
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let depth = self.budget.enter(self.depth)?;
        self.inner.visit_some(Limited::<D, ANY> {
            inner: deserializer,
            budget: self.budget,
            depth,
        })
    }

    #[inline(always)]
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        let depth = self.budget.enter(self.depth)?;
        self.inner.visit_newtype_struct(Limited::<D, ANY> {
            inner: deserializer,
            budget: self.budget,
            depth,
        })
    }

    #[inline(always)]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let (depth, charge) = self.nested(seq.size_hint())?;
        self.inner.visit_seq(Seq::<A, ANY> {
            inner: seq,
            budget: self.budget,
            depth,
            charge,
        })
    }

    #[inline(always)]
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let (depth, charge) = self.nested(map.size_hint())?;
        self.inner.visit_map(Map::<A, ANY> {
            inner: map,
            budget: self.budget,
            depth,
            charge,
        })
    }

    #[inline(always)]
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let depth = self.budget.enter(self.depth)?;
        self.inner.visit_enum(Enum::<A, ANY> {
            inner: data,
            budget: self.budget,
            depth,
        })
    }
}

impl<V, const ANY: bool> Wrap<'_, V, ANY> {
    /// The levels left below a sequence or map of `len` elements (if known), and whether its
    /// elements are still to be paid for one by one; its whole length is paid for now if
    /// known.
    #[inline(always)]
    fn nested<E: de::Error>(&self, len: Option<usize>) -> Result<(u32, bool), E> {
        let charge = match (self.length, len) {
            (Length::FromBody, Some(len)) => {
                self.budget.spend(len)?;
                false
            }
            (Length::FromBody, None) => true,
            (Length::FromType | Length::Variant, _) => false,
        };
        let depth = match self.length {
            Length::Variant => self.depth,
            Length::FromBody | Length::FromType => self.budget.enter(self.depth)?,
        };
        Ok((depth, charge))
    }
}

impl<'de, A: SeqAccess<'de>, const ANY: bool> SeqAccess<'de> for Seq<'_, A, ANY> {
    type Error = A::Error;

    #[inline(always)]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let seed = Seed::<T, ANY>::new(seed, self.budget, self.depth);
        if !self.charge {
            return self.inner.next_element_seed(seed);
        }
        let element = self.inner.next_element_seed(seed)?;
        if element.is_some() {
            self.budget.spend(1)?;
        }
        Ok(element)
    }

    // serde's own `next_element` is not inlined once the wrappers are inlined into it, and a
    // struct's fields each go through it: a call per field.
    #[inline(always)]
    fn next_element<T: de::Deserialize<'de>>(&mut self) -> Result<Option<T>, A::Error> {
        self.next_element_seed(std::marker::PhantomData)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>, const ANY: bool> MapAccess<'de> for Map<'_, A, ANY> {
    type Error = A::Error;

    #[inline(always)]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = Seed::<K, ANY>::new(seed, self.budget, self.depth);
        if !self.charge {
            return self.inner.next_key_seed(seed);
        }
        let key = self.inner.next_key_seed(seed)?;
        if key.is_some() {
            self.budget.spend(1)?;
        }
        Ok(key)
    }

    #[inline(always)]
    fn next_key<K: de::Deserialize<'de>>(&mut self) -> Result<Option<K>, A::Error> {
        self.next_key_seed(std::marker::PhantomData)
    }

    #[inline(always)]
    fn next_value<T: de::Deserialize<'de>>(&mut self) -> Result<T, A::Error> {
        self.next_value_seed(std::marker::PhantomData)
    }

    #[inline(always)]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner
            .next_value_seed(Seed::<T, ANY>::new(seed, self.budget, self.depth))
    }

    #[inline(always)]
    fn next_entry_seed<K: DeserializeSeed<'de>, T: DeserializeSeed<'de>>(
        &mut self,
        key: K,
        value: T,
    ) -> Result<Option<(K::Value, T::Value)>, A::Error> {
        let key = Seed::<K, ANY>::new(key, self.budget, self.depth);
        let value = Seed::<T, ANY>::new(value, self.budget, self.depth);
        if !self.charge {
            return self.inner.next_entry_seed(key, value);
        }
        let entry = self.inner.next_entry_seed(key, value)?;
        if entry.is_some() {
            self.budget.spend(1)?;
        }
        Ok(entry)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'b, 'de, A: EnumAccess<'de>, const ANY: bool> EnumAccess<'de> for Enum<'b, A, ANY> {
    type Error = A::Error;
    type Variant = Variant<'b, A::Variant, ANY>;

    #[inline(always)]
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (budget, depth) = (self.budget, self.depth);
        let (tag, variant) = self
            .inner
            .variant_seed(Seed::<S, ANY>::new(seed, budget, depth))?;
        Ok((
            tag,
            Variant {
                inner: variant,
                budget,
                depth,
            },
        ))
    }
}

/// A variant's content is on the enum's level: its tuple or struct fields add none.
impl<'de, A: VariantAccess<'de>, const ANY: bool> VariantAccess<'de> for Variant<'_, A, ANY> {
    type Error = A::Error;

    #[inline(always)]
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    #[inline(always)]
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.inner
            .newtype_variant_seed(Seed::<S, ANY>::new(seed, self.budget, self.depth))
    }

    #[inline(always)]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(
            len,
            Wrap::<V, ANY> {
                inner: visitor,
                budget: self.budget,
                depth: self.depth,
                length: Length::Variant,
            },
        )
    }

    #[inline(always)]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(
            fields,
            Wrap::<V, ANY> {
                inner: visitor,
                budget: self.budget,
                depth: self.depth,
                length: Length::Variant,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::net::IpAddr;

    use serde::{Deserialize, Serialize};

    use super::{MAX_DEPTH, SPARE_ELEMENTS};
    use crate::codec::{Bincode, Codec, ContentType, Json};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Expr {
        Lit(i64),
        Neg(Box<Expr>),
        Add { lhs: Box<Expr>, rhs: Box<Expr> },
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Node {
        value: i64,
        child: Option<Box<Node>>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Chain(Option<Box<Chain>>);

    #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Braces {}

    /// `Neg(Neg(…Lit(1)…))` with `negations` levels, built and taken apart without recursion.
    fn negated(negations: usize) -> Expr {
        let mut e = Expr::Lit(1);
        for _ in 0..negations {
            e = Expr::Neg(Box::new(e));
        }
        e
    }

    fn unnest(mut e: Expr) -> usize {
        let mut n = 0;
        while let Expr::Neg(inner) = e {
            (e, n) = (*inner, n + 1);
        }
        n
    }

    fn nested_too_deep(e: crate::codec::CodecError) {
        assert_eq!(e.to_string(), "nested too deep: more than 128 levels");
    }

    fn too_many_elements(e: crate::codec::CodecError) {
        assert!(e.to_string().starts_with("too many elements:"), "{e}");
    }

    /// The varint length 2^60 and nothing else: a whole `Vec` of 2^60 zero-sized values.
    fn zero_sized_bomb() -> Vec<u8> {
        let mut body = vec![0xfd];
        body.extend_from_slice(&(1u64 << 60).to_le_bytes());
        body
    }

    /// Regression: these looped 2^60 times (a busy core, no memory) before the element limit.
    #[test]
    fn zero_sized_elements_declared_2_60_times_are_refused_before_any_is_decoded() {
        let body = zero_sized_bomb();
        too_many_elements(Bincode::decode::<Vec<()>>(&body).unwrap_err());
        too_many_elements(Bincode::decode::<Vec<Unit>>(&body).unwrap_err());
        too_many_elements(Bincode::decode::<Vec<Braces>>(&body).unwrap_err());
        too_many_elements(Bincode::decode::<Vec<[u8; 0]>>(&body).unwrap_err());
        too_many_elements(Bincode::decode::<Vec<((), Unit)>>(&body).unwrap_err());
        too_many_elements(Bincode::decode::<HashSet<()>>(&body).unwrap_err());
        too_many_elements(Bincode::decode::<BTreeMap<(), Unit>>(&body).unwrap_err());
        too_many_elements(Bincode::decode::<HashMap<Unit, ()>>(&body).unwrap_err());
        // Lengths of elements that do take bytes are refused as early.
        too_many_elements(Bincode::decode::<Vec<u64>>(&body).unwrap_err());
    }

    /// Many sequences of a reasonable number each: the budget is for the whole body.
    #[test]
    fn the_element_budget_is_for_the_whole_body() {
        let inner = vec![(); 1000];
        let body = Bincode::encode(&vec![inner.clone(); 10]).unwrap();
        assert_eq!(Bincode::decode::<Vec<Vec<()>>>(&body).unwrap().len(), 10);
        let body = Bincode::encode(&vec![inner; 1000]).unwrap();
        too_many_elements(Bincode::decode::<Vec<Vec<()>>>(&body).unwrap_err());
    }

    #[test]
    fn zero_sized_elements_up_to_the_spare_budget_decode() {
        let v = vec![(); SPARE_ELEMENTS];
        let body = Bincode::encode(&v).unwrap();
        assert_eq!(Bincode::decode::<Vec<()>>(&body).unwrap(), v);
        let body = Bincode::encode(&vec![(); SPARE_ELEMENTS + body.len() + 1]).unwrap();
        too_many_elements(Bincode::decode::<Vec<()>>(&body).unwrap_err());
        let v = vec![Unit; 1000];
        let body = Bincode::encode(&v).unwrap();
        assert_eq!(Bincode::decode::<Vec<Unit>>(&body).unwrap(), v);
    }

    /// Elements that take bytes never reach the budget, however they nest: each begins with a
    /// byte no other element begins with.
    #[test]
    fn bodies_of_elements_that_take_bytes_never_reach_the_element_limit() {
        fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
            v: T,
        ) {
            for ct in [ContentType::Bincode, ContentType::Json] {
                let body = ct.encode(&v).unwrap();
                assert_eq!(ct.decode::<T>(&body).unwrap(), v, "{ct}");
            }
        }
        round_trip(vec![7u8; 1 << 20]);
        round_trip(vec![vec![Vec::<u8>::new(); 300]; 300]);
        round_trip(vec![vec![vec![0u8]; 300]; 300]);
        round_trip(vec![Some(0u8); 1 << 17]);
        round_trip(vec![(0u8, (), Unit); 1 << 17]);
        round_trip(
            (0..1u32 << 16)
                .map(|i| (i, ()))
                .collect::<BTreeMap<u32, ()>>(),
        );
        round_trip(vec![
            Node {
                value: 0,
                child: None
            };
            1 << 16
        ]);
    }

    /// Regression: a million levels overflowed the decoding thread's stack and aborted.
    #[test]
    fn a_million_levels_are_refused_not_a_stack_overflow() {
        let mut body = vec![1u8; 1_000_000];
        body.extend_from_slice(&[0, 2]);
        nested_too_deep(Bincode::decode::<Expr>(&body).unwrap_err());
        nested_too_deep(Bincode::decode::<Chain>(&body[..1_000_000]).unwrap_err());
        let body = [0u8, 1].repeat(1_000_000);
        nested_too_deep(Bincode::decode::<Node>(&body).unwrap_err());
        let mut json = br#"{"Neg":"#.repeat(1_000_000);
        json.extend_from_slice(br#"{"Lit":1}"#);
        json.extend(std::iter::repeat_n(b'}', 1_000_000));
        // serde_json's own bracket limit (128) or ours: both refuse.
        assert!(Json::decode::<Expr>(&json).is_err());
    }

    /// serde_json counts brackets; a newtype around an `Option` recursed in JSON with none.
    #[test]
    fn json_recursion_without_brackets_is_refused() {
        nested_too_deep(Json::decode::<Chain>(b"1").unwrap_err());
        nested_too_deep(Json::decode::<Chain>(b"[]").unwrap_err());
        assert_eq!(Json::decode::<Chain>(b"null").unwrap(), Chain(None));
    }

    #[test]
    fn nesting_up_to_the_limit_decodes_one_level_more_does_not() {
        // Each `Neg` and the `Lit` are an enum level each.
        let levels = MAX_DEPTH as usize;
        let body = Bincode::encode(&negated(levels - 1)).unwrap();
        assert_eq!(unnest(Bincode::decode(&body).unwrap()), levels - 1);
        let body = Bincode::encode(&negated(levels)).unwrap();
        nested_too_deep(Bincode::decode::<Expr>(&body).unwrap_err());
        // JSON: serde_json also stops at 128 brackets.
        let body = Json::encode(&negated(100)).unwrap();
        assert_eq!(unnest(Json::decode(&body).unwrap()), 100);
        // A struct variant's fields are on its enum's level.
        let mut e = Expr::Lit(0);
        for _ in 0..levels - 1 {
            e = Expr::Add {
                lhs: Box::new(e),
                rhs: Box::new(Expr::Lit(1)),
            };
        }
        let body = Bincode::encode(&e).unwrap();
        let back: Expr = Bincode::decode(&body).unwrap();
        let mut n = 0;
        let mut e = back;
        while let Expr::Add { lhs, .. } = e {
            (e, n) = (*lhs, n + 1);
        }
        assert_eq!(n, levels - 1);
    }

    /// Human-readable formats and the others encode some types differently (an address is
    /// a string in JSON, bytes in bincode): the wrapper must say which it wraps.
    #[test]
    fn each_codec_is_still_what_it_says_it_is() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(&Json::encode(&ip).unwrap(), br#""10.1.2.3""#);
        for ct in [ContentType::Bincode, ContentType::Json] {
            assert_eq!(ct.decode::<IpAddr>(&ct.encode(&ip).unwrap()).unwrap(), ip);
        }
    }

    /// Types that need a self-describing format go through the wrapper's `deserialize_any`.
    #[test]
    fn json_values_untagged_enums_and_flatten_still_decode() {
        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u32),
            Words(Vec<String>),
        }
        #[derive(Debug, PartialEq, Deserialize)]
        struct Outer {
            id: u32,
            #[serde(flatten)]
            rest: HashMap<String, serde_json::Value>,
        }
        let v: serde_json::Value = Json::decode(br#"{"a":[1,{"b":null}],"c":"d"}"#).unwrap();
        assert_eq!(v["a"][1]["b"], serde_json::Value::Null);
        let e: Vec<Either> = Json::decode(br#"[1,["x"]]"#).unwrap();
        assert_eq!(e, [Either::Number(1), Either::Words(vec!["x".into()])]);
        let o: Outer = Json::decode(br#"{"id":1,"x":true}"#).unwrap();
        assert_eq!((o.id, &o.rest["x"]), (1, &serde_json::Value::Bool(true)));
    }

    /// A visitor may swallow the limit's error; the decode still fails, naming the limit.
    #[test]
    fn a_limit_reached_fails_the_decode_even_if_a_visitor_swallows_the_error() {
        #[derive(Debug)]
        struct Forgiving;
        impl<'de> Deserialize<'de> for Forgiving {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let _ = Chain::deserialize(d);
                Ok(Self)
            }
        }
        nested_too_deep(Json::decode::<Forgiving>(b"1").unwrap_err());
        nested_too_deep(Bincode::decode::<Forgiving>(&[1; 200]).unwrap_err());
    }

    #[test]
    fn trailing_bytes_are_still_refused() {
        let mut body = Bincode::encode(&(1u8, "x")).unwrap();
        body.push(0);
        let e = Bincode::decode::<(u8, String)>(&body).unwrap_err();
        assert_eq!(e.to_string(), "1 trailing bytes after the value");
        assert!(Json::decode::<u8>(b"1 2").is_err());
    }

    /// The deepest body allowed decodes within a small fraction of a tokio worker's 2 MiB
    /// stack, in debug builds too: the limit bounds the stack, with room to spare.
    #[test]
    fn the_deepest_body_allowed_fits_a_small_stack() {
        let depth = MAX_DEPTH as usize;
        let mut expr = Bincode::encode(&negated(depth - 1)).unwrap();
        let mut node = Node {
            value: 0,
            child: None,
        };
        for _ in 0..depth / 2 - 1 {
            node = Node {
                value: 0,
                child: Some(Box::new(node)),
            };
        }
        let node = Bincode::encode(&node).unwrap();
        let json = Json::encode(&negated(120)).unwrap();
        let decoded = std::thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || {
                let e = Bincode::decode::<Expr>(&expr).map(unnest);
                let n = Bincode::decode::<Node>(&node).map(|_| ());
                let j = Json::decode::<Expr>(&json).map(unnest);
                expr.clear();
                (e, n, j)
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(decoded.0.unwrap(), depth - 1);
        decoded.1.unwrap();
        assert_eq!(decoded.2.unwrap(), 120);
    }

    const STACK: usize = 256 << 10;
}
