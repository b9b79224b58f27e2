//! Brightpearl ID sets: `8`, `1-5` (ascending only), `1,2,3`, mixes `1-5,7,20-30`, and `*`
//! where a path allows it.

/// A parsed ID set: ascending inclusive ranges, or everything (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSet {
    /// `*`.
    All,
    /// The listed ids, as inclusive ranges in the order given.
    Ranges(Vec<(i64, i64)>),
}

impl IdSet {
    /// Parses `text`; `star_ok` allows `*`.
    pub fn parse(text: &str, star_ok: bool) -> Result<Self, String> {
        let text = text.trim();
        if text == "*" {
            return if star_ok {
                Ok(Self::All)
            } else {
                Err("`*` is not accepted here: list the ids".into())
            };
        }
        if text.is_empty() {
            return Err("empty ID set".into());
        }
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (parse_id(lo, text)?, parse_id(hi, text)?),
                None => {
                    let id = parse_id(part, text)?;
                    (id, id)
                }
            };
            if lo > hi {
                return Err(format!(
                    "descending range `{part}` in ID set `{text}`: ranges must be ascending"
                ));
            }
            ranges.push((lo, hi));
        }
        Ok(Self::Ranges(ranges))
    }

    /// Number of ids named (ranges overlapping count twice, as they do in the URI); `None` for `*`.
    pub fn count(&self) -> Option<u64> {
        match self {
            Self::All => None,
            Self::Ranges(ranges) => Some(ranges.iter().map(|(lo, hi)| (hi - lo) as u64 + 1).sum()),
        }
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: i64) -> bool {
        match self {
            Self::All => true,
            Self::Ranges(ranges) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&id)),
        }
    }

    /// Every id named, ascending and deduplicated; `None` for `*` or when there are more than `cap`.
    pub fn expand(&self, cap: u64) -> Option<Vec<i64>> {
        if self.count()? > cap {
            return None;
        }
        let Self::Ranges(ranges) = self else {
            return None;
        };
        let mut ids: Vec<i64> = ranges.iter().flat_map(|(lo, hi)| *lo..=*hi).collect();
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }
}

fn parse_id(text: &str, whole: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(format!(
            "`{}` in ID set `{whole}` is not a positive integer id",
            text.trim()
        )),
    }
}

/// Parses a path ID set for an operation: a malformed or descending set, or more ids than the
/// operation's limit, is a `400` (sandbox code `CMNC-400`; the real code is not documented).
pub fn parse_path(
    text: &str,
    star_ok: bool,
    limit: Option<usize>,
) -> Result<IdSet, super::reply::Reply> {
    let set =
        IdSet::parse(text, star_ok).map_err(|e| super::reply::Reply::bad_request("CMNC-400", e))?;
    if let (Some(limit), Some(count)) = (limit, set.count())
        && count > limit as u64
    {
        return Err(super::reply::Reply::bad_request(
            "CMNC-400",
            format!("ID set names {count} ids; at most {limit} may be requested at once"),
        ));
    }
    Ok(set)
}

/// An optional path ID set (no `*`, no limit), shared by the list and `OPTIONS` handlers:
/// absent means every id.
pub fn parse_optional_path(text: Option<&str>) -> Result<IdSet, super::reply::Reply> {
    Ok(text
        .map(|text| parse_path(text, false, None))
        .transpose()?
        .unwrap_or(IdSet::All))
}

/// Compacts ascending ids into an ID set (`1-3,5,8-9`).
pub fn compact(ids: &[i64]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// `OPTIONS` URIs: the existing ids compacted and chunked to `limit` ids each.
pub fn get_uris(prefix: &str, existing: &[i64], limit: usize) -> Vec<String> {
    let mut sorted = existing.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
        .chunks(limit.max(1))
        .map(|chunk| format!("{prefix}/{}", compact(chunk)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_lists_and_mixes() {
        let set = IdSet::parse("1-5,7,20-22", false).unwrap();
        assert_eq!(set.count(), Some(9));
        assert!(set.contains(4) && set.contains(7) && !set.contains(6));
        assert_eq!(set.expand(100).unwrap(), vec![1, 2, 3, 4, 5, 7, 20, 21, 22]);
        assert!(
            IdSet::parse("5-1", false)
                .unwrap_err()
                .contains("descending")
        );
        assert!(IdSet::parse("a", false).is_err());
        assert!(IdSet::parse("0", false).is_err());
        assert!(IdSet::parse("*", false).is_err());
        assert_eq!(IdSet::parse("*", true).unwrap(), IdSet::All);
    }

    #[test]
    fn compacts_and_chunks() {
        assert_eq!(compact(&[5, 1, 2, 3, 8, 9]), "1-3,5,8-9");
        assert_eq!(
            get_uris("/product", &[1, 2, 3, 5], 2),
            vec!["/product/1-2", "/product/3,5"]
        );
    }
}
