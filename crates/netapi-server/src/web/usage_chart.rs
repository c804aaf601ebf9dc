//! The portal's usage chart of one API key: an SVG drawn here, so the page loads no script
//! and nothing from elsewhere. One stacked bar per bucket: accepted checks below, refused ones
//! above them.

use std::fmt::Write as _;

use netapi_core::clock::format_rfc3339;
use netapi_core::usage::{Granularity, UsageBucket, UsageOutcome};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const AXIS: f64 = 18.0;

/// The chart of `buckets` as an inline `<svg>` element. Every text in it is a number or a
/// date written here, so nothing needs escaping.
pub fn render(buckets: &[UsageBucket], granularity: Granularity) -> String {
    let valid = |b: &UsageBucket| b.counts[0];
    let refused = |b: &UsageBucket| b.counts[1..].iter().sum::<u64>();
    let highest = buckets
        .iter()
        .map(|b| valid(b) + refused(b))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot = HEIGHT - AXIS;
    let slot = WIDTH / buckets.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let mut svg = format!(
        r#"<svg class="usage-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Checks per {}, highest {highest}">"#,
        granularity.as_str()
    );
    for (i, bucket) in buckets.iter().enumerate() {
        let x = i as f64 * slot;
        let ok = valid(bucket) as f64 / highest as f64 * plot;
        let bad = refused(bucket) as f64 / highest as f64 * plot;
        let mut title = format_rfc3339(bucket.start);
        for (outcome, count) in UsageOutcome::ALL.iter().zip(bucket.counts) {
            if count > 0 {
                let _ = write!(title, ", {}: {count}", outcome.as_str());
            }
        }
        let _ = write!(
            svg,
            r#"<g><title>{title}</title><rect class="valid" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{ok:.1}"/><rect class="refused" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{bad:.1}"/></g>"#,
            plot - ok,
            plot - ok - bad,
        );
    }
    if let (Some(first), Some(last)) = (buckets.first(), buckets.last()) {
        let _ = write!(
            svg,
            r#"<text x="0" y="{HEIGHT}">{}</text><text x="{WIDTH}" y="{HEIGHT}" text-anchor="end">{}</text>"#,
            format_rfc3339(first.start),
            format_rfc3339(last.start),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(start: i64, valid: u64, rate_limited: u64) -> UsageBucket {
        UsageBucket {
            start,
            counts: [valid, rate_limited, 0, 0, 0, 0],
        }
    }

    #[test]
    fn the_highest_bucket_fills_the_plot_and_titles_name_the_outcomes() {
        let svg = render(
            &[bucket(0, 4, 0), bucket(3600, 2, 2), bucket(7200, 0, 0)],
            Granularity::Hour,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<g>").count(), 3);
        // 4 checks is the highest: a full-height accepted bar, then two halves.
        assert!(svg.contains(r#"class="valid" x="0.0" y="0.0" width="192.0" height="142.0""#));
        assert!(svg.contains(r#"class="valid" x="240.0" y="71.0" width="192.0" height="71.0""#));
        assert!(svg.contains(r#"class="refused" x="240.0" y="0.0" width="192.0" height="71.0""#));
        assert!(svg.contains("<title>1970-01-01T01:00:00Z, valid: 2, rate_limited: 2</title>"));
        assert!(svg.contains("highest 4"));
    }

    #[test]
    fn no_buckets_draw_an_empty_chart() {
        let svg = render(&[], Granularity::Day);
        assert!(!svg.contains("<rect"));
        assert!(svg.contains("Checks per day"));
    }
}
