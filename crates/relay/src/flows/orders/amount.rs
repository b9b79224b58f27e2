//! Exact decimal amounts for order rows.
//!
//! Money never goes through `f64`. relay has no decimal crate of its own (the models' decimal
//! type lives in `models-runtime`, which relay does not depend on), so amounts are fixed-point
//! millionths here and cross into the models as decimal *text*, which the models parse exactly.

use std::fmt;

/// Millionths per unit: Norce keeps 4 decimals, so 6 is exact for every input we see.
const SCALE: i128 = 1_000_000;

/// An exact decimal with six fractional digits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Amount(i128);

/// Divides with rounding half away from zero (the commercial rounding Brightpearl applies).
fn div_round(value: i128, divisor: i128) -> i128 {
    let quotient = value / divisor;
    let remainder = value % divisor;
    if remainder.abs() * 2 >= divisor {
        quotient + value.signum()
    } else {
        quotient
    }
}

impl Amount {
    /// Zero.
    pub(crate) const ZERO: Amount = Amount(0);
    /// One.
    pub(crate) const ONE: Amount = Amount(SCALE);

    /// A whole number.
    pub(crate) fn from_int(value: i64) -> Self {
        Amount(i128::from(value) * SCALE)
    }

    /// Parses plain decimal text (`-12.3456`, `3`, `0.25`); more than six decimals are rounded.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        if !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        // Pad or cut the fraction to 12 digits, then round once to 6.
        let mut twelve: String = fraction.chars().take(12).collect();
        while twelve.len() < 12 {
            twelve.push('0');
        }
        let fraction12: i128 = twelve.parse().ok()?;
        let micros = whole
            .checked_mul(SCALE)?
            .checked_add(div_round(fraction12, SCALE))?;
        Some(Amount(if negative { -micros } else { micros }))
    }

    /// `self × other`, rounded once to two decimals (row totals).
    pub(crate) fn mul_round2(self, other: Amount) -> Option<Amount> {
        let product = self.0.checked_mul(other.0)?;
        // product has 12 decimals; cents are 10^10 of them.
        let cents = div_round(product, SCALE * SCALE / 100);
        Some(Amount(cents.checked_mul(SCALE / 100)?))
    }

    /// Rounded to two decimals.
    pub(crate) fn round2(self) -> Amount {
        Amount(div_round(self.0, SCALE / 100) * (SCALE / 100))
    }

    /// `self + other`; `None` when out of range.
    pub(crate) fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`; `None` when out of range.
    pub(crate) fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// `self / divisor` rounded half away from zero to six decimals; `None` for a divisor of
    /// zero.
    pub(crate) fn div_int(self, divisor: i64) -> Option<Amount> {
        (divisor != 0).then(|| Amount(div_round(self.0, i128::from(divisor))))
    }

    /// The whole number it is, if it is one.
    pub(crate) fn to_int(self) -> Option<i64> {
        self.is_whole()
            .then(|| i64::try_from(self.0 / SCALE).ok())
            .flatten()
    }

    /// Whether it is above zero.
    pub(crate) fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Whether it has no fractional part.
    pub(crate) fn is_whole(self) -> bool {
        self.0 % SCALE == 0
    }
}

impl fmt::Display for Amount {
    /// Shortest exact text: `199.5`, `3`, `-0.25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = SCALE.unsigned_abs();
        let whole = abs / scale;
        let fraction = abs % scale;
        if fraction == 0 {
            return write!(f, "{sign}{whole}");
        }
        let digits = format!("{fraction:06}");
        write!(f, "{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Amount::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a decimal number")))
    }
}

/// Converts an amount into a model's decimal (or any type that deserializes from a JSON
/// string): the exact way into `DecimalNumber` fields without naming the type.
pub(crate) fn model_decimal<T: serde::de::DeserializeOwned>(amount: Amount) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(amount.to_string()))
        .map_err(|e| format!("amount {amount}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(text: &str) -> Amount {
        Amount::parse(text).unwrap()
    }

    #[test]
    fn parses_and_prints_exactly() {
        assert_eq!(a("159.2").to_string(), "159.2");
        assert_eq!(a("-0.25").to_string(), "-0.25");
        assert_eq!(a("3").to_string(), "3");
        assert_eq!(a("3.000").to_string(), "3");
        assert_eq!(a(".5").to_string(), "0.5");
        assert_eq!(a("1.23456789").to_string(), "1.234568");
        for bad in ["", "-", ".", "1,5", "1e3", "abc", "1.2.3"] {
            assert!(Amount::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn row_totals_round_once_half_away_from_zero() {
        // 79.9920 × 3 = 239.976 → 239.98
        assert_eq!(
            a("79.992").mul_round2(a("3")).unwrap().to_string(),
            "239.98"
        );
        // 0.125 → 0.13, -0.125 → -0.13
        assert_eq!(a("0.125").round2().to_string(), "0.13");
        assert_eq!(a("-0.125").round2().to_string(), "-0.13");
        // 239.98 × 0.25 = 59.995 → 60
        assert_eq!(a("239.98").mul_round2(a("0.25")).unwrap().to_string(), "60");
        // No double rounding: 0.004999 × 1 stays 0.00.
        assert_eq!(a("0.004999").mul_round2(Amount::ONE).unwrap(), Amount::ZERO);
    }

    #[test]
    fn sums_differences_and_unit_values() {
        assert_eq!(a("1.5").checked_add(a("2.25")).unwrap(), a("3.75"));
        assert_eq!(a("1").checked_sub(a("2.5")).unwrap(), a("-1.5"));
        assert_eq!(a("100").div_int(3).unwrap().to_string(), "33.333333");
        assert_eq!(a("-0.000005").div_int(1).unwrap(), a("-0.000005"));
        assert!(a("1").div_int(0).is_none());
        assert_eq!((a("3").to_int(), a("3.5").to_int()), (Some(3), None));
    }

    #[test]
    fn whole_numbers() {
        assert!(a("2").is_whole() && !a("2.5").is_whole());
        assert_eq!(Amount::from_int(7), a("7"));
        assert!(a("0.01").is_positive() && !Amount::ZERO.is_positive());
    }

    #[test]
    fn model_decimals_are_exact() {
        let value: serde_json::Value = model_decimal(a("199.5")).unwrap();
        assert_eq!(value, serde_json::json!("199.5"));
    }
}
