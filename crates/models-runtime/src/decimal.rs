//! Exact decimals written as JSON numbers.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An exact decimal that the platform writes as a JSON number (`199.50`), where
/// [`Decimal`] itself (used for `type: string, format: decimal`) is written as a string.
///
/// Numbers are read through their shortest decimal text, so `9.0909` stays `9.0909`; they are
/// written as JSON numbers again.
///
/// ```
/// use models_runtime::DecimalNumber;
/// let price: DecimalNumber = serde_json::from_str("199.5").unwrap();
/// assert_eq!(price.to_string(), "199.5");
/// assert_eq!(serde_json::to_string(&price).unwrap(), "199.5");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DecimalNumber(pub Decimal);

impl Deref for DecimalNumber {
    type Target = Decimal;
    fn deref(&self) -> &Decimal {
        &self.0
    }
}

impl From<Decimal> for DecimalNumber {
    fn from(value: Decimal) -> Self {
        Self(value)
    }
}

impl From<DecimalNumber> for Decimal {
    fn from(value: DecimalNumber) -> Self {
        value.0
    }
}

impl fmt::Display for DecimalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for DecimalNumber {
    type Err = rust_decimal::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::from_str_exact(s).map(Self)
    }
}

impl Serialize for DecimalNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Integral values are written as integers so `5` round-trips as `5`, not `5.0`.
        if self.0.fract().is_zero()
            && let Ok(whole) = i64::try_from(self.0)
        {
            return serializer.serialize_i64(whole);
        }
        let as_float = f64::try_from(self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_f64(as_float)
    }
}

impl<'de> Deserialize<'de> for DecimalNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <Decimal as Deserialize>::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_numbers_exactly() {
        for text in ["9.0909", "199.5", "5", "0.1", "-12.25", "1234567.891"] {
            let value: DecimalNumber = serde_json::from_str(text).unwrap();
            assert_eq!(value.to_string(), text);
            assert_eq!(serde_json::to_string(&value).unwrap(), text);
        }
    }

    #[test]
    fn string_decimals_stay_strings() {
        let value: Decimal = serde_json::from_str("\"9.0909\"").unwrap();
        assert_eq!(value, Decimal::from_str_exact("9.0909").unwrap());
        assert_eq!(serde_json::to_string(&value).unwrap(), "\"9.0909\"");
    }
}
