//! A timestamp that accepts every form the three platforms send and writes it back unchanged.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time as a platform wrote it.
///
/// Accepted forms:
/// - RFC 3339: `2015-06-03T13:18:30.904Z`, `2015-06-03T13:18:30+02:00`;
/// - nShift's offset without a colon: `2015-06-03T13:18:30.904+0000`;
/// - no offset at all (Norce's .NET dates): `2019-06-19T10:24:58.187`, read as UTC
///   ([`Timestamp::has_offset`] is then `false`);
/// - WCF JSON dates (Norce Services 1.1): `/Date(1726099200000+0200)/`, milliseconds since the
///   epoch with an optional offset for display;
/// - a date without time (Brightpearl's "ISO 8601 date" fields, e.g. a sales order's `taxDate`):
///   `2023-09-01`, read as midnight UTC ([`Timestamp::has_offset`] is then `false` and
///   [`Timestamp::is_date_only`] `true`).
///
/// The original text is kept, so a payload that is read and written again is byte-identical:
/// the platforms compare some of these values as strings.
///
/// ```
/// use models_runtime::Timestamp;
/// let t: Timestamp = "2015-06-03T13:18:30.904+0000".parse().unwrap();
/// assert_eq!(t.to_rfc3339(), "2015-06-03T13:18:30.904+00:00");
/// assert_eq!(t.as_str(), "2015-06-03T13:18:30.904+0000");
///
/// let d: Timestamp = "2023-09-01".parse().unwrap();
/// assert_eq!(d.to_rfc3339(), "2023-09-01T00:00:00+00:00");
/// assert_eq!(serde_json::to_string(&d).unwrap(), "\"2023-09-01\"");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Timestamp {
    instant: DateTime<FixedOffset>,
    has_offset: bool,
    text: Box<str>,
}

/// A string that is not a timestamp in any accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a timestamp: expected RFC 3339 (2015-06-03T13:18:30Z), an offset without colon (2015-06-03T13:18:30.904+0000), a local time (2015-06-03T13:18:30), a WCF date (/Date(1433337510904)/) or a date (2015-06-03)"
)]
pub struct TimestampError {
    input: String,
}

impl Timestamp {
    /// Parses any accepted form, keeping the text as given.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let trimmed = text.trim();
        if let Some(inner) = trimmed
            .strip_prefix("/Date(")
            .and_then(|t| t.strip_suffix(")/"))
        {
            return Self::parse_wcf(inner)
                .ok_or_else(|| TimestampError {
                    input: text.to_owned(),
                })
                .map(|(instant, has_offset)| Self {
                    instant,
                    has_offset,
                    text: text.into(),
                });
        }
        let with_offset = DateTime::parse_from_rfc3339(trimmed)
            .or_else(|_| DateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .or_else(|_| DateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f%z"));
        if let Ok(instant) = with_offset {
            return Ok(Self {
                instant,
                has_offset: true,
                text: text.into(),
            });
        }
        let naive = NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f"))
            .or_else(|_| {
                Self::parse_date(trimmed)
                    .map(|date| date.and_time(chrono::NaiveTime::MIN))
                    .ok_or(())
            })
            .map_err(|_| TimestampError {
                input: text.to_owned(),
            })?;
        Ok(Self {
            instant: naive.and_utc().fixed_offset(),
            has_offset: false,
            text: text.into(),
        })
    }

    /// `2023-09-01` → the date: exactly `YYYY-MM-DD` (chrono alone would also take `2023-9-1`).
    fn parse_date(text: &str) -> Option<NaiveDate> {
        let b = text.as_bytes();
        let shaped = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shaped {
            return None;
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
    }

    /// `1726099200000+0200` → the instant (shown at that offset) and whether an offset was given.
    fn parse_wcf(inner: &str) -> Option<(DateTime<FixedOffset>, bool)> {
        // The sign of the millisecond count may be '-', so look for the offset sign after it.
        let split = inner
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map(|(i, _)| i);
        let (millis, offset) = match split {
            Some(i) => (&inner[..i], Some(&inner[i..])),
            None => (inner, None),
        };
        let utc = DateTime::<Utc>::from_timestamp_millis(millis.parse().ok()?)?;
        match offset {
            None => Some((utc.fixed_offset(), false)),
            // ASCII only: byte slicing below must not split a character (found by fuzzing).
            Some(offset) if offset.len() == 5 && offset.is_ascii() => {
                let sign = if offset.starts_with('-') { -1 } else { 1 };
                let hours: i32 = offset.get(1..3)?.parse().ok()?;
                let minutes: i32 = offset.get(3..5)?.parse().ok()?;
                let zone = FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))?;
                Some((utc.with_timezone(&zone), true))
            }
            Some(_) => None,
        }
    }

    /// A timestamp written as RFC 3339 with milliseconds (`2015-06-03T13:18:30.904Z` for UTC).
    pub fn from_datetime<Tz: chrono::TimeZone>(instant: DateTime<Tz>) -> Self {
        let instant = instant.fixed_offset();
        let text = instant.to_rfc3339_opts(SecondsFormat::Millis, true);
        Self {
            instant,
            has_offset: true,
            text: text.into(),
        }
    }

    /// A timestamp written in nShift's form, offset without a colon
    /// (`2015-06-03T13:18:30.904+0000`).
    pub fn from_datetime_nshift<Tz: chrono::TimeZone>(instant: DateTime<Tz>) -> Self {
        let instant = instant.fixed_offset();
        let text = instant.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
        Self {
            instant,
            has_offset: true,
            text: text.into(),
        }
    }

    /// The instant, with the offset it was written with (UTC when none was written).
    pub fn as_datetime(&self) -> DateTime<FixedOffset> {
        self.instant
    }

    /// The instant in UTC.
    pub fn to_utc(&self) -> DateTime<Utc> {
        self.instant.with_timezone(&Utc)
    }

    /// Whether the text carried an offset; `false` means it was read as UTC.
    pub fn has_offset(&self) -> bool {
        self.has_offset
    }

    /// Whether the text was a date without time (`2023-09-01`, read as midnight UTC).
    pub fn is_date_only(&self) -> bool {
        Self::parse_date(self.text.trim()).is_some()
    }

    /// The text exactly as it arrived (or as it was formatted on construction).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The instant as canonical RFC 3339 (`+00:00`, milliseconds when present).
    pub fn to_rfc3339(&self) -> String {
        self.instant.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.text)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    /// Orders by instant; equal instants written differently are ordered by text.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.instant
            .cmp(&other.instant)
            .then_with(|| self.text.cmp(&other.text))
    }
}

impl<Tz: chrono::TimeZone> From<DateTime<Tz>> for Timestamp {
    fn from(instant: DateTime<Tz>) -> Self {
        Self::from_datetime(instant)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wcf_offset_with_non_ascii_bytes_is_refused_not_a_panic() {
        // Found by `cargo fuzz run timestamps`: the offset is 5 bytes but not 5 characters.
        for text in [
            "/Date(2818-+\u{6bb}3)/",
            "/Date(0+\u{e9}12)/",
            "/Date(0-00\u{e9})/",
        ] {
            assert!(Timestamp::parse(text).is_err(), "{text}");
        }
        assert!(Timestamp::parse("/Date(1433337510904+0200)/").is_ok());
    }

    #[test]
    fn parses_every_platform_form_and_keeps_the_text() {
        for (text, rfc, offset) in [
            (
                "2015-06-03T13:18:30.904+0000",
                "2015-06-03T13:18:30.904+00:00",
                true,
            ),
            (
                "2015-06-03T15:18:30.904+0200",
                "2015-06-03T15:18:30.904+02:00",
                true,
            ),
            ("2015-06-03T13:18:30Z", "2015-06-03T13:18:30+00:00", true),
            (
                "2015-06-03T13:18:30.904+02:00",
                "2015-06-03T13:18:30.904+02:00",
                true,
            ),
            (
                "2019-06-19T10:24:58.187",
                "2019-06-19T10:24:58.187+00:00",
                false,
            ),
            ("2019-06-19T10:24:58", "2019-06-19T10:24:58+00:00", false),
            ("/Date(1726099200000)/", "2024-09-12T00:00:00+00:00", false),
            (
                "/Date(1726099200000+0200)/",
                "2024-09-12T02:00:00+02:00",
                true,
            ),
            ("/Date(-86400000-0130)/", "1969-12-30T22:30:00-01:30", true),
            ("2023-09-01", "2023-09-01T00:00:00+00:00", false),
            ("2024-02-29", "2024-02-29T00:00:00+00:00", false),
        ] {
            let t = Timestamp::parse(text).unwrap();
            assert_eq!(t.to_rfc3339(), rfc, "{text}");
            assert_eq!(t.has_offset(), offset, "{text}");
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            let back: Timestamp = serde_json::from_str(&json).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn same_instant_in_two_forms_orders_by_instant() {
        let a = Timestamp::parse("2015-06-03T13:18:30.904+0000").unwrap();
        let b = Timestamp::parse("2015-06-03T15:18:31+02:00").unwrap();
        assert!(a < b);
        assert_eq!(
            a.to_utc(),
            "2015-06-03T13:18:30.904Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn rejects_garbage_with_a_message_naming_the_input() {
        assert!(Timestamp::parse("/Date(abc)/").is_err());
        assert!(Timestamp::parse("/Date(1+02)/").is_err());
        let err = Timestamp::parse("yesterday").unwrap_err();
        assert!(err.to_string().contains("`yesterday`"));
        let err = serde_json::from_str::<Timestamp>("\"2015-13-03T00:00:00Z\"").unwrap_err();
        assert!(err.to_string().contains("2015-13-03"));
    }

    #[test]
    fn a_date_without_time_is_midnight_utc_and_written_back_as_a_date() {
        let d = Timestamp::parse("2023-09-01").unwrap();
        assert!(d.is_date_only());
        assert!(!d.has_offset());
        assert_eq!(
            d.to_utc(),
            "2023-09-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(d.as_str(), "2023-09-01");
        assert_eq!(d.to_string(), "2023-09-01");
        // Inside a body: read and written again unchanged.
        let body = r#"{"taxDate":"2023-09-01"}"#;
        let value: std::collections::BTreeMap<String, Timestamp> =
            serde_json::from_str(body).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), body);
        // The same instant written with a time is a different text, ordered after the date.
        let midnight = Timestamp::parse("2023-09-01T00:00:00Z").unwrap();
        assert!(!midnight.is_date_only());
        assert_eq!(midnight.to_utc(), d.to_utc());
        assert_ne!(midnight, d);
        assert!(d < midnight);
        assert!(d < Timestamp::parse("2023-09-01T00:00:01Z").unwrap());
        assert!(d > Timestamp::parse("2023-08-31T23:59:59Z").unwrap());
    }

    #[test]
    fn rejects_malformed_dates() {
        for text in [
            "2023-9-1",
            "2023-09-1",
            "2023-02-30",
            "2023-13-01",
            "20230901",
            "2023/09/01",
            "2023-09-01T",
            "+2023-09-01",
        ] {
            let err = Timestamp::parse(text).unwrap_err();
            assert!(err.to_string().contains(text), "{text}");
        }
    }

    #[test]
    fn formats_for_nshift_and_rfc3339() {
        let instant = "2015-06-03T13:18:30.904Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            Timestamp::from_datetime_nshift(instant).as_str(),
            "2015-06-03T13:18:30.904+0000"
        );
        assert_eq!(
            Timestamp::from_datetime(instant).as_str(),
            "2015-06-03T13:18:30.904Z"
        );
    }
}
