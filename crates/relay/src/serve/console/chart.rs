//! The overview's chart: orders shipped and items failed per hour over the last 48 hours, as
//! an SVG drawn on the server from numbers only.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};

use crate::state::{HourlyOutcome, Outcome, hour_of};

/// Hours the chart covers.
pub(super) const HOURS: usize = 48;

/// Per hour, oldest first: (hour start, shipped, failed).
pub(super) fn buckets(
    outcomes: &[HourlyOutcome],
    now: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, u64, u64)> {
    let last = DateTime::parse_from_rfc3339(&hour_of(now))
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    (0..HOURS)
        .map(|i| {
            let hour = last - TimeDelta::hours((HOURS - 1 - i) as i64);
            let key = hour_of(hour);
            let count = |pred: &dyn Fn(&HourlyOutcome) -> bool| -> u64 {
                outcomes
                    .iter()
                    .filter(|o| o.hour == key && pred(o))
                    .map(|o| o.count)
                    .sum()
            };
            let shipped = count(&|o| o.flow == "shipping" && o.outcome == Outcome::Done);
            let failed = count(&|o| o.outcome == Outcome::Failed);
            (hour, shipped, failed)
        })
        .collect()
}

/// The smallest "round" number (1, 2, 5 × 10ⁿ) at least `max`.
fn nice_ceiling(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= max.max(1) {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// The SVG (`svg#chart`).
pub(super) fn svg(buckets: &[(DateTime<Utc>, u64, u64)]) -> String {
    const WIDTH: f64 = 960.0;
    const HEIGHT: f64 = 240.0;
    const LEFT: f64 = 48.0;
    const BOTTOM: f64 = 28.0;
    const TOP: f64 = 24.0;
    let max = buckets
        .iter()
        .map(|(_, s, f)| (*s).max(*f))
        .max()
        .unwrap_or(0);
    let top = nice_ceiling(max) as f64;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT - 8.0) / buckets.len().max(1) as f64;
    let bar = (slot / 2.0 - 1.0).max(1.0);
    let y = |v: u64| TOP + plot_h - (v as f64 / top) * plot_h;
    let shipped: u64 = buckets.iter().map(|b| b.1).sum();
    let failed: u64 = buckets.iter().map(|b| b.2).sum();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title"><title id="chart-title">Orders shipped ({shipped}) and items failed ({failed}) per hour, last 48 hours</title>"#
    );
    // Axis and the top value.
    let _ = write!(
        out,
        r#"<line class="chart-axis" x1="{LEFT}" y1="{b}" x2="{WIDTH}" y2="{b}"/><line class="chart-axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}"/><text class="chart-label" x="{lx}" y="{ty}" text-anchor="end">{top}</text><text class="chart-label" x="{lx}" y="{b}" text-anchor="end">0</text>"#,
        b = TOP + plot_h,
        lx = LEFT - 6.0,
        ty = TOP + 4.0,
    );
    for (i, (hour, s, f)) in buckets.iter().enumerate() {
        let x = LEFT + 4.0 + i as f64 * slot;
        let label = hour.format("%d %H:00");
        for (class, value, dx) in [("chart-shipped", *s, 0.0), ("chart-failed", *f, bar + 1.0)] {
            if value > 0 {
                let _ = write!(
                    out,
                    r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}"><title>{label}: {value}</title></rect>"#,
                    x + dx,
                    y(value),
                    (TOP + plot_h) - y(value),
                );
            }
        }
        if i % 6 == 0 {
            let _ = write!(
                out,
                r#"<text class="chart-label" x="{x:.1}" y="{}">{}</text>"#,
                HEIGHT - 8.0,
                hour.format("%a %H:00")
            );
        }
    }
    // Legend.
    let _ = write!(
        out,
        r#"<rect class="chart-shipped" x="{a}" y="6" width="10" height="10"/><text class="chart-label" x="{at}" y="15">orders shipped: {shipped}</text><rect class="chart-failed" x="{b}" y="6" width="10" height="10"/><text class="chart-label" x="{bt}" y="15">items failed (dead letters): {failed}</text></svg>"#,
        a = LEFT,
        at = LEFT + 14.0,
        b = LEFT + 190.0,
        bt = LEFT + 204.0,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(hour: &str, flow: &str, outcome: Outcome, count: u64) -> HourlyOutcome {
        HourlyOutcome {
            hour: hour.to_owned(),
            flow: flow.to_owned(),
            outcome,
            count,
        }
    }

    #[test]
    fn buckets_cover_48_hours_and_count_shipped_and_failed() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T14:25:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let outcomes = [
            outcome("2026-12-03T14:00:00Z", "shipping", Outcome::Done, 7),
            outcome("2026-12-03T14:00:00Z", "orders", Outcome::Done, 3),
            outcome("2026-12-03T13:00:00Z", "orders", Outcome::Failed, 2),
            outcome("2026-12-03T13:00:00Z", "shipping", Outcome::Failed, 1),
            outcome("2026-12-01T14:00:00Z", "shipping", Outcome::Done, 99),
        ];
        let b = buckets(&outcomes, now);
        assert_eq!(b.len(), HOURS);
        assert_eq!(b[HOURS - 1].1, 7, "only shipping counts as shipped");
        assert_eq!(b[HOURS - 2].2, 3, "failures of every flow");
        assert_eq!(
            b.iter().map(|x| x.1).sum::<u64>(),
            7,
            "older than 48 h left out"
        );
        let svg = svg(&b);
        assert!(svg.starts_with("<svg id=\"chart\""));
        assert!(
            svg.contains("orders shipped: 7") && svg.contains("items failed (dead letters): 3")
        );
        assert_eq!(
            svg.matches("<rect class=\"chart-shipped\"").count(),
            2,
            "one bar and the legend"
        );
    }

    #[test]
    fn the_scale_is_round() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(12), 20);
        assert_eq!(nice_ceiling(49), 50);
    }
}
