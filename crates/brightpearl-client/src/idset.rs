//! Brightpearl ID sets: ids compressed into ascending ranges (`1-5,7`) and chunked by a
//! resource's id limit and the URI length.

use std::fmt;

/// A set of positive ids as ascending, non-overlapping, non-adjacent inclusive ranges.
///
/// ```
/// use brightpearl_client::IdSet;
/// let set = IdSet::from_ids([7, 3, 1, 2, 4, 5, 5]);
/// assert_eq!(set.to_string(), "1-5,7");
/// assert_eq!(set.len(), 6);
/// let chunks = IdSet::from_ids(1..=450).chunks(200, 2000);
/// let text: Vec<String> = chunks.iter().map(|c| c.to_string()).collect();
/// assert_eq!(text, ["1-200", "201-400", "401-450"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet {
    ranges: Vec<(u64, u64)>,
}

impl IdSet {
    /// Sorts, deduplicates and compresses `ids`; zero is dropped (ids are positive).
    pub fn from_ids(ids: impl IntoIterator<Item = u64>) -> Self {
        Self::merged(ids.into_iter().filter(|id| *id > 0).map(|id| (id, id)))
    }

    /// `ranges` sorted, with overlapping and adjacent ones merged.
    fn merged(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut ranges: Vec<(u64, u64)> = ranges.into_iter().collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some((_, last)) if lo <= last.saturating_add(1) => *last = (*last).max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Self { ranges: merged }
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Number of ids (saturating at `u64::MAX`: text such as `1-18446744073709551615` parses).
    pub fn len(&self) -> u64 {
        let len = |(lo, hi): &(u64, u64)| (hi - lo).saturating_add(1);
        self.ranges
            .iter()
            .fold(0, |n, range| n.saturating_add(len(range)))
    }

    /// Whether there is no id.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Every id, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges.iter().flat_map(|(lo, hi)| *lo..=*hi)
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: u64) -> bool {
        self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&id))
    }

    /// Splits into sets of at most `max_ids` ids whose text is at most `max_chars` long (at
    /// least 41, the longest range).
    pub fn chunks(&self, max_ids: usize, max_chars: usize) -> Vec<IdSet> {
        let (max_ids, max_chars) = (max_ids.max(1) as u64, max_chars.max(41));
        let mut out = Vec::new();
        let (mut current, mut count, mut chars) = (Vec::new(), 0u64, 0usize);
        for &(mut lo, hi) in &self.ranges {
            while lo <= hi {
                let take = (hi - lo + 1).min(max_ids - count);
                let piece = (lo, lo + take - 1);
                let piece_len = range_len(piece) + usize::from(!current.is_empty());
                let full = !current.is_empty() && chars + piece_len > max_chars;
                if !full {
                    current.push(piece);
                    (chars, count, lo) = (chars + piece_len, count + take, piece.1 + 1);
                }
                if full || count == max_ids {
                    out.push(IdSet {
                        ranges: std::mem::take(&mut current),
                    });
                    (count, chars) = (0, 0);
                }
            }
        }
        if !current.is_empty() {
            out.push(IdSet { ranges: current });
        }
        out
    }
}

/// The length of a range's text (`lo` or `lo-hi`).
fn range_len((lo, hi): (u64, u64)) -> usize {
    let digits = |n: u64| n.checked_ilog10().map_or(1, |d| d as usize + 1);
    digits(lo) + if lo == hi { 0 } else { 1 + digits(hi) }
}

impl fmt::Display for IdSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            f.write_str(if i == 0 { "" } else { "," })?;
            match lo == hi {
                true => write!(f, "{lo}")?,
                false => write!(f, "{lo}-{hi}")?,
            }
        }
        Ok(())
    }
}

/// ID-set text that is not one, with the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Brightpearl ID set: {0}")]
pub struct IdSetError(pub(crate) String);

impl std::str::FromStr for IdSet {
    type Err = IdSetError;

    /// Parses ID-set text (`8`, `1-5`, `5,1-3`; blanks around parts ignored; empty text is
    /// the empty set) into the canonical form, never expanding a range (a huge one costs
    /// nothing). Zero, a non-number or a descending range is refused, naming the part.
    ///
    /// ```
    /// use brightpearl_client::IdSet;
    /// let set: IdSet = "7, 1-5,3".parse().unwrap();
    /// assert_eq!(set.to_string(), "1-5,7");
    /// assert!("abc; DROP TABLE".parse::<IdSet>().unwrap_err().to_string().contains("`abc; DROP TABLE`"));
    /// ```
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let id = |part: &str| match part.trim().parse::<u64>() {
            Ok(id) if id > 0 => Ok(id),
            _ => Err(IdSetError(format!(
                "`{}` is not a positive id",
                part.trim()
            ))),
        };
        let mut ranges = Vec::new();
        for part in text.trim().split(',') {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let (lo, hi) = (id(lo)?, id(hi)?);
            if lo > hi {
                return Err(IdSetError(format!(
                    "`{}` is a descending range",
                    part.trim()
                )));
            }
            ranges.push((lo, hi));
        }
        Ok(Self::merged(ranges))
    }
}

impl FromIterator<u64> for IdSet {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        Self::from_ids(iter)
    }
}
