//! Numbers of the protobuf JSON mapping, read without detours: a JSON number, or a string holding one (64-bit
//! integers are strings in the mapping; floats may be `"NaN"`, `"Infinity"`, `"-Infinity"`).
//!
//! pbjson's own reader tries the string form first through serde's untagged-enum buffering and builds (and formats)
//! an error for every number that is not a string: for a fetched vector of 1,536 floats that is 1,536 formatted
//! errors. build.rs points the generated code at this reader instead.

use serde::de::{Deserializer, Error, Visitor};
use std::marker::PhantomData;

/// A number read from a JSON number or a numeric string.
pub struct Number<T>(pub T);

/// The numeric types of Pinecone's data-plane proto.
pub trait FromJson: Sized + std::str::FromStr {
    fn from_u64(n: u64) -> Option<Self>;
    fn from_i64(n: i64) -> Option<Self>;
    fn from_f64(n: f64) -> Option<Self>;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl FromJson for $t {
            fn from_u64(n: u64) -> Option<Self> {
                <$t>::try_from(n).ok()
            }
            fn from_i64(n: i64) -> Option<Self> {
                <$t>::try_from(n).ok()
            }
            /// The mapping accepts an integer written with a fraction or exponent, when it is whole.
            fn from_f64(n: f64) -> Option<Self> {
                (n.fract() == 0.0 && n >= <$t>::MIN as f64 && n <= <$t>::MAX as f64).then(|| n as $t)
            }
        }
    )*};
}
integer!(u32, i32, u64, i64);

macro_rules! float {
    ($($t:ty),*) => {$(
        impl FromJson for $t {
            fn from_u64(n: u64) -> Option<Self> {
                Some(n as $t)
            }
            fn from_i64(n: i64) -> Option<Self> {
                Some(n as $t)
            }
            fn from_f64(n: f64) -> Option<Self> {
                Some(n as $t)
            }
        }
    )*};
}
float!(f32, f64);

struct NumberVisitor<T>(PhantomData<T>);

impl<T: FromJson> Visitor<'_> for NumberVisitor<T> {
    type Value = Number<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number, or a string holding one")
    }

    fn visit_u64<E: Error>(self, n: u64) -> Result<Self::Value, E> {
        T::from_u64(n)
            .map(Number)
            .ok_or_else(|| E::custom(format!("{n} is out of range")))
    }

    fn visit_i64<E: Error>(self, n: i64) -> Result<Self::Value, E> {
        T::from_i64(n)
            .map(Number)
            .ok_or_else(|| E::custom(format!("{n} is out of range")))
    }

    fn visit_f64<E: Error>(self, n: f64) -> Result<Self::Value, E> {
        T::from_f64(n)
            .map(Number)
            .ok_or_else(|| E::custom(format!("{n} is not a whole number in range")))
    }

    fn visit_str<E: Error>(self, s: &str) -> Result<Self::Value, E> {
        s.trim()
            .parse()
            .map(Number)
            .map_err(|_| E::custom(format!("`{s}` is not a number")))
    }
}

impl<'de, T: FromJson> serde::Deserialize<'de> for Number<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor(PhantomData))
    }
}

/// A count that Pinecone's REST API sends as a 64-bit integer but its proto (and so the gateway's gRPC answer) holds
/// in 32 bits: `totalVectorCount`, `vectorCount`, `upsertedCount` (build.rs points those fields here). Above
/// 4,294,967,295 it is saturated at that value, and the first time that happens it is logged, rather than failing the
/// whole answer: the proto cannot say more, and the rest of the answer is still true.
pub struct Count(pub u32);

static SATURATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = Number::<u64>::deserialize(d)?.0;
        Ok(Count(u32::try_from(n).unwrap_or_else(|_| {
            if !SATURATED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    count = n,
                    "Pinecone answered with a count above 4,294,967,295, more than the proto's uint32 holds: \
                     passed on as 4,294,967,295 (logged once)"
                );
            }
            u32::MAX
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: FromJson>(json: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str::<Number<T>>(json).map(|n| n.0)
    }

    #[test]
    fn numbers_and_numeric_strings() {
        assert_eq!(read::<u64>("\"5000\"").unwrap(), 5000);
        assert_eq!(read::<u64>("5000").unwrap(), 5000);
        assert_eq!(read::<u32>("3.0").unwrap(), 3);
        assert_eq!(read::<i32>("-7").unwrap(), -7);
        assert_eq!(read::<f32>("0.5").unwrap(), 0.5);
        assert_eq!(read::<f32>("2").unwrap(), 2.0);
        assert_eq!(read::<f32>("\"0.25\"").unwrap(), 0.25);
        assert!(read::<f32>("\"NaN\"").unwrap().is_nan());
        assert_eq!(read::<f64>("\"-Infinity\"").unwrap(), f64::NEG_INFINITY);
        assert!(read::<u32>("4294967296").is_err());
        assert!(read::<u32>("-1").is_err());
        assert!(read::<u32>("1.5").is_err());
        assert!(read::<u32>("true").is_err());
    }

    #[test]
    fn counts_saturate_instead_of_failing() {
        let count = |json: &str| serde_json::from_str::<Count>(json).map(|c| c.0);
        assert_eq!(count("\"5000000000\"").unwrap(), u32::MAX);
        assert_eq!(count("4294967296").unwrap(), u32::MAX);
        assert_eq!(count("4294967295").unwrap(), u32::MAX);
        assert_eq!(count("\"12\"").unwrap(), 12);
        assert!(count("-1").is_err());
        assert!(count("\"many\"").is_err());
    }
}
