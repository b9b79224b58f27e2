//! VAT rates in the form each API family writes them.
//!
//! Norce writes the same 25 % three ways: Query 3.0 `vatRate` and Connect `VatRate` are percent
//! (`25`), Storm Services `VatRate` is a multiplier (`1.25`). A spec field says which form it
//! carries (`format: vat-percent` or `format: vat-multiplier`), the generator gives it one of the
//! types below, and [`VatRate::fraction`] is the only conversion: no code guesses the form from
//! the value.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decimal::DecimalNumber;

/// A VAT rate, whichever form it arrived in.
pub trait VatRate {
    /// The rate as a fraction: 0.25 for 25 %.
    fn fraction(&self) -> Decimal;
}

macro_rules! vat_form {
    ($(#[$doc:meta])* $name:ident, to_fraction: $to:expr, from_fraction: $from:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Decimal);

        impl $name {
            /// The rate in this form for a fraction (0.25 for 25 %).
            pub fn from_fraction(fraction: Decimal) -> Self {
                let from: fn(Decimal) -> Decimal = $from;
                Self(from(fraction).normalize())
            }
        }

        impl VatRate for $name {
            fn fraction(&self) -> Decimal {
                let to: fn(Decimal) -> Decimal = $to;
                to(self.0).normalize()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                DecimalNumber(self.0).serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                DecimalNumber::deserialize(deserializer).map(|n| Self(n.0))
            }
        }
    };
}

vat_form!(
    /// A VAT rate in percent, as Norce Query 3.0 (`vatRate`) and Connect (`VatRate`) write it:
    /// `25` is 25 %.
    VatPercent,
    to_fraction: |percent| percent / Decimal::ONE_HUNDRED,
    from_fraction: |fraction| fraction * Decimal::ONE_HUNDRED
);

vat_form!(
    /// A VAT rate as a price multiplier, as Storm Services 1.1 (`VatRate`) writes it: `1.25` is
    /// 25 %.
    VatMultiplier,
    to_fraction: |multiplier| multiplier - Decimal::ONE,
    from_fraction: |fraction| fraction + Decimal::ONE
);

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn percent_and_multiplier_give_the_same_fraction() {
        let percent: VatPercent = serde_json::from_str("25").unwrap();
        let multiplier: VatMultiplier = serde_json::from_str("1.25").unwrap();
        assert_eq!(percent.fraction(), dec("0.25"));
        assert_eq!(multiplier.fraction(), dec("0.25"));
        // No guessing from the value: a percent of 1 is 1 %, not 0 %.
        let one: VatPercent = serde_json::from_str("1").unwrap();
        assert_eq!(one.fraction(), dec("0.01"));
        let reduced: VatPercent = serde_json::from_str("12.5").unwrap();
        assert_eq!(reduced.fraction(), dec("0.125"));
    }

    #[test]
    fn written_back_in_their_own_form() {
        assert_eq!(
            serde_json::to_string(&VatPercent::from_fraction(dec("0.25"))).unwrap(),
            "25"
        );
        assert_eq!(
            serde_json::to_string(&VatMultiplier::from_fraction(dec("0.25"))).unwrap(),
            "1.25"
        );
        assert_eq!(
            serde_json::to_string(&VatPercent::from_fraction(dec("0.06"))).unwrap(),
            "6"
        );
    }
}
