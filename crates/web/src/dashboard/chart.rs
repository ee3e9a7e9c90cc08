//! The overview's stacked bar chart of deliveries per time bucket, drawn as SVG on the
//! server: no script, and it prints.

use chrono::{DateTime, Utc};
use switchyard_domain::store::stats::Bucket;

pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 160.0;
/// Room at the bottom for the time labels.
const AXIS: f64 = 18.0;

/// One rectangle of one bar.
pub struct Segment {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// `ok`, `bad`, `pending` or `held`: the CSS class that colours it.
    pub class: &'static str,
    /// What a pointer hovering it is told.
    pub title: String,
}

pub struct Label {
    pub x: f64,
    pub text: String,
    /// How the text stands on `x`: centred, or from it near the chart's edges so that
    /// no label is cut off.
    pub anchor: &'static str,
}

/// Room a label needs either side of its centre, in the chart's units (a label is at
/// most "Nov 30 18:00" at 10 px).
const LABEL_HALF: f64 = 34.0;

pub struct Chart {
    pub segments: Vec<Segment>,
    pub labels: Vec<Label>,
    pub max: i64,
    pub empty: bool,
}

fn when(start: DateTime<Utc>, hourly: bool) -> String {
    if hourly {
        start.format("%H:00").to_string()
    } else {
        start.format("%a %H:00").to_string()
    }
}

/// Lays the buckets out left to right, each bar stacked succeeded, failed, pending, held
/// from the bottom, scaled to the busiest bucket.
pub fn draw(buckets: &[Bucket], hourly: bool) -> Chart {
    let max = buckets
        .iter()
        .map(|b| b.succeeded + b.failed + b.pending + b.held)
        .max()
        .unwrap_or(0);
    let plot = HEIGHT - AXIS;
    let slot = WIDTH / buckets.len().max(1) as f64;
    let width = (slot * 0.8).max(1.0);
    let mut segments = Vec::new();
    let mut labels = Vec::new();
    let every = (buckets.len() / 6).max(1);
    for (i, bucket) in buckets.iter().enumerate() {
        let x = i as f64 * slot + (slot - width) / 2.0;
        let mut top = plot;
        let parts = [
            ("ok", "succeeded", bucket.succeeded),
            ("bad", "failed", bucket.failed),
            ("pending", "pending", bucket.pending),
            ("held", "held", bucket.held),
        ];
        for (class, name, count) in parts {
            if count == 0 || max == 0 {
                continue;
            }
            let height = count as f64 / max as f64 * plot;
            top -= height;
            segments.push(Segment {
                x,
                y: top,
                width,
                height,
                class,
                title: format!("{}: {count} {name}", when(bucket.start, hourly)),
            });
        }
        if i % every == 0 {
            let centre = x + width / 2.0;
            let (x, anchor) = if centre < LABEL_HALF {
                (0.0, "start")
            } else if centre > WIDTH - LABEL_HALF {
                (WIDTH, "end")
            } else {
                (centre, "middle")
            };
            labels.push(Label {
                x,
                text: when(bucket.start, hourly),
                anchor,
            });
        }
    }
    Chart {
        segments,
        labels,
        max,
        empty: max == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn bucket(hour: u32, succeeded: i64, failed: i64) -> Bucket {
        Bucket {
            start: Utc.with_ymd_and_hms(2026, 11, 27, hour, 0, 0).unwrap(),
            succeeded,
            failed,
            pending: 0,
            held: 0,
        }
    }

    #[test]
    fn labels_at_the_edges_stand_inside_the_chart() {
        let buckets: Vec<Bucket> = (0..24).map(|h| bucket(h, 1, 0)).collect();
        let chart = draw(&buckets, false);
        let first = &chart.labels[0];
        assert_eq!((first.x, first.anchor), (0.0, "start"));
        assert!(chart.labels[1..].iter().all(|l| l.anchor != "start"));
        assert!(chart.labels.iter().all(
            |l| l.anchor != "middle" || (l.x - LABEL_HALF >= 0.0 && l.x + LABEL_HALF <= WIDTH)
        ));
    }

    #[test]
    fn bars_stack_from_the_bottom_scaled_to_the_busiest_bucket() {
        let chart = draw(
            &[bucket(10, 3, 1), bucket(11, 0, 0), bucket(12, 2, 0)],
            true,
        );
        assert_eq!(chart.max, 4);
        let plot = HEIGHT - AXIS;
        let first: Vec<&Segment> = chart.segments.iter().filter(|s| s.x < 240.0).collect();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].class, "ok");
        assert!((first[0].height - plot * 0.75).abs() < 1e-9);
        assert!(
            (first[0].y + first[0].height - plot).abs() < 1e-9,
            "on the baseline"
        );
        assert!(
            (first[1].y + first[1].height - first[0].y).abs() < 1e-9,
            "stacked"
        );
        assert_eq!(first[1].title, "10:00: 1 failed");
        assert_eq!(chart.segments.len(), 3, "an empty bucket draws nothing");
        assert!(!chart.empty);
        assert!(draw(&[bucket(10, 0, 0)], true).empty);
    }
}
