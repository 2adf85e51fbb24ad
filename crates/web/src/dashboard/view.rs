//! What pages show, computed in Rust so templates stay plain: timestamps, durations, statuses
//! with their glyphs, sparklines and charts drawn as SVG, bodies pretty-printed.

use std::fmt::{self, Write as _};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use cronhook_core::ExecutionStatus;
use cronhook_store::ExecutionPoint;

/// An instant as a `<time>` element: UTC in the text and the `title`, rewritten to the viewer's
/// local time by `app.js` (the UTC stays on hover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp(pub DateTime<Utc>);

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let iso = self.0.to_rfc3339_opts(SecondsFormat::Millis, true);
        let text = self.0.format("%Y-%m-%d %H:%M:%S UTC");
        // Only digits, dashes, colons and letters: nothing to escape.
        write!(
            f,
            "<time datetime=\"{iso}\" title=\"{text}\" data-local>{text}</time>"
        )
    }
}

/// A stamp, or a dash.
pub(crate) fn stamp(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "—".to_owned(), |at| Stamp(at).to_string())
}

/// A duration in milliseconds, in words a person reads at a glance.
pub(crate) fn duration_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1_000.0),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1_000),
        _ => format!("{} h {} min", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

/// An optional duration, or a dash.
pub(crate) fn optional_duration(ms: Option<u64>) -> String {
    ms.map_or_else(|| "—".to_owned(), duration_ms)
}

/// How a status is shown: its word, a glyph that does not rely on colour, and a CSS class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusView {
    pub word: &'static str,
    pub glyph: &'static str,
    pub class: &'static str,
}

pub(crate) fn status(status: ExecutionStatus) -> StatusView {
    let (word, glyph, class) = match status {
        ExecutionStatus::Queued => ("queued", "…", "pending"),
        ExecutionStatus::Running => ("running", "▶", "pending"),
        ExecutionStatus::Retrying => ("retrying", "↻", "warn"),
        ExecutionStatus::Succeeded => ("succeeded", "✓", "ok"),
        ExecutionStatus::Failed => ("failed", "✗", "bad"),
        ExecutionStatus::Skipped => ("skipped", "–", "muted"),
        ExecutionStatus::Cancelled => ("cancelled", "⊘", "muted"),
    };
    StatusView { word, glyph, class }
}

/// The status as a badge: glyph and word (screen readers read the word).
pub(crate) fn status_badge(value: ExecutionStatus) -> String {
    let view = status(value);
    format!(
        "<span class=\"badge {}\"><span aria-hidden=\"true\">{}</span> {}</span>",
        view.class, view.glyph, view.word
    )
}

/// Escapes text for HTML (for the few fragments built in Rust).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query parameter value.
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A response body as shown: pretty-printed when it is JSON, as is otherwise.
pub(crate) fn pretty_body(body: &str, content_type: Option<&str>) -> (String, bool) {
    let looks_json = content_type.is_some_and(|t| t.to_ascii_lowercase().contains("json"))
        || matches!(body.trim_start().as_bytes().first(), Some(b'{' | b'['));
    if looks_json && let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
        return (
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| body.to_owned()),
            true,
        );
    }
    (body.to_owned(), false)
}

/// The last (up to) 30 executions of a job as an inline SVG, oldest on the left: a tall green
/// bar with a tick for a success, a short red cross for a failure, a small grey dot for the
/// rest, so the states differ in shape as well as colour.
pub(crate) fn sparkline(points: &[ExecutionPoint]) -> String {
    const CELL: usize = 7;
    let width = CELL * 30;
    let mut svg = String::new();
    let ok = points
        .iter()
        .filter(|p| p.status == ExecutionStatus::Succeeded)
        .count();
    let failed = points
        .iter()
        .filter(|p| p.status == ExecutionStatus::Failed)
        .count();
    let label = if points.is_empty() {
        "No runs yet".to_owned()
    } else {
        format!(
            "Last {} runs: {ok} succeeded, {failed} failed, {} other",
            points.len(),
            points.len() - ok - failed
        )
    };
    let _ = write!(
        svg,
        "<svg class=\"spark\" viewBox=\"0 0 {width} 20\" width=\"{width}\" height=\"20\" \
         role=\"img\" aria-label=\"{label}\"><title>{label}</title>"
    );
    // Newest first from the store; drawn oldest first, right-aligned.
    let offset = 30_usize.saturating_sub(points.len());
    for (index, point) in points.iter().rev().enumerate() {
        let x = (offset + index) * CELL;
        let cx = x + CELL / 2;
        match point.status {
            ExecutionStatus::Succeeded => {
                let _ = write!(
                    svg,
                    "<rect class=\"s-ok\" x=\"{}\" y=\"2\" width=\"{}\" height=\"16\" rx=\"1\"/>",
                    x + 1,
                    CELL - 2
                );
            }
            ExecutionStatus::Failed => {
                let _ = write!(
                    svg,
                    "<path class=\"s-bad\" d=\"M{} 7 L{} 17 M{} 7 L{} 17\"/>",
                    x + 1,
                    x + CELL - 1,
                    x + CELL - 1,
                    x + 1
                );
            }
            ExecutionStatus::Queued | ExecutionStatus::Running | ExecutionStatus::Retrying => {
                let _ = write!(
                    svg,
                    "<circle class=\"s-pending\" cx=\"{cx}\" cy=\"12\" r=\"3\"/>"
                );
            }
            ExecutionStatus::Skipped | ExecutionStatus::Cancelled => {
                let _ = write!(
                    svg,
                    "<circle class=\"s-muted\" cx=\"{cx}\" cy=\"14\" r=\"1.5\"/>"
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The charts of a job over a window ending `now`: duration of each finished execution
/// (successes as dots, failures as crosses) and the success rate per bucket (bars).
pub(crate) struct Charts {
    pub duration: String,
    pub success: String,
    pub finished: usize,
    pub succeeded: usize,
}

const CHART_W: f64 = 600.0;
const CHART_H: f64 = 140.0;
const PAD_L: f64 = 56.0;
const PAD_B: f64 = 22.0;
const PAD_T: f64 = 8.0;
const PAD_R: f64 = 8.0;

pub(crate) fn charts(
    points: &[ExecutionPoint],
    now: DateTime<Utc>,
    window: Duration,
    buckets: usize,
) -> Charts {
    let start = now - window;
    let finished: Vec<&ExecutionPoint> = points
        .iter()
        .filter(|p| {
            matches!(
                p.status,
                ExecutionStatus::Succeeded | ExecutionStatus::Failed
            ) && p.scheduled_for >= start
        })
        .collect();
    let succeeded = finished
        .iter()
        .filter(|p| p.status == ExecutionStatus::Succeeded)
        .count();
    let span_ms = window.num_milliseconds().max(1) as f64;
    let plot_w = CHART_W - PAD_L - PAD_R;
    let plot_h = CHART_H - PAD_T - PAD_B;
    let x_of = |at: DateTime<Utc>| {
        PAD_L + ((at - start).num_milliseconds() as f64 / span_ms).clamp(0.0, 1.0) * plot_w
    };
    let axis_labels = |svg: &mut String| {
        let (left, right) = if window <= Duration::hours(24) {
            ("24 h ago", "now")
        } else {
            ("7 days ago", "now")
        };
        let _ = write!(
            svg,
            "<text class=\"axis\" x=\"{PAD_L}\" y=\"{}\">{left}</text>\
             <text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{right}</text>",
            CHART_H - 6.0,
            CHART_W - PAD_R,
            CHART_H - 6.0
        );
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{PAD_L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
            PAD_T + plot_h,
            CHART_W - PAD_R,
            PAD_T + plot_h
        );
    };

    // Duration.
    let max_ms = finished
        .iter()
        .filter_map(|p| p.duration_ms)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut duration = String::new();
    let label = format!(
        "Duration of the {} finished runs; longest {}",
        finished.len(),
        duration_ms(max_ms)
    );
    let _ = write!(
        duration,
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" \
         aria-label=\"{label}\"><title>{label}</title>"
    );
    let _ = write!(
        duration,
        "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        PAD_L - 4.0,
        PAD_T + 10.0,
        escape(&duration_ms(max_ms)),
        PAD_L - 4.0,
        PAD_T + plot_h
    );
    axis_labels(&mut duration);
    for point in &finished {
        let Some(ms) = point.duration_ms else {
            continue;
        };
        let x = x_of(point.scheduled_for);
        let y = PAD_T + plot_h - (ms as f64 / max_ms as f64) * plot_h;
        if point.status == ExecutionStatus::Succeeded {
            let _ = write!(
                duration,
                "<circle class=\"s-ok\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\"/>"
            );
        } else {
            let _ = write!(
                duration,
                "<path class=\"s-bad\" d=\"M{:.1} {:.1} L{:.1} {:.1} M{:.1} {:.1} L{:.1} {:.1}\"/>",
                x - 3.0,
                y - 3.0,
                x + 3.0,
                y + 3.0,
                x + 3.0,
                y - 3.0,
                x - 3.0,
                y + 3.0
            );
        }
    }
    duration.push_str("</svg>");

    // Success rate per bucket.
    let buckets = buckets.max(1);
    let mut counts = vec![(0_usize, 0_usize); buckets];
    for point in &finished {
        let offset = (point.scheduled_for - start).num_milliseconds() as f64 / span_ms;
        let index = ((offset * buckets as f64) as usize).min(buckets - 1);
        counts[index].1 += 1;
        if point.status == ExecutionStatus::Succeeded {
            counts[index].0 += 1;
        }
    }
    let rate = if finished.is_empty() {
        "no finished runs".to_owned()
    } else {
        format!(
            "{:.0}% succeeded",
            succeeded as f64 * 100.0 / finished.len() as f64
        )
    };
    let mut success = String::new();
    let label = format!("Success rate: {rate}");
    let _ = write!(
        success,
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" \
         aria-label=\"{label}\"><title>{label}</title>"
    );
    let _ = write!(
        success,
        "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">100%</text>\
         <text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">0%</text>",
        PAD_L - 4.0,
        PAD_T + 10.0,
        PAD_L - 4.0,
        PAD_T + plot_h
    );
    axis_labels(&mut success);
    let bar_w = plot_w / buckets as f64;
    for (index, (ok, total)) in counts.iter().enumerate() {
        if *total == 0 {
            continue;
        }
        let share = *ok as f64 / *total as f64;
        let height = (share * plot_h).max(1.0);
        let x = PAD_L + index as f64 * bar_w + 1.0;
        let class = if share >= 0.999 {
            "s-ok"
        } else if share > 0.0 {
            "s-warn"
        } else {
            "s-bad"
        };
        let _ = write!(
            success,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\">\
             <title>{ok} of {total} succeeded</title></rect>",
            PAD_T + plot_h - height,
            (bar_w - 2.0).max(1.0)
        );
        if share < 0.999 {
            // A failed share is also marked with a cross above the bar: not colour alone.
            let cx = x + (bar_w - 2.0) / 2.0;
            let cy = PAD_T + plot_h - height - 6.0;
            let _ = write!(
                success,
                "<path class=\"s-bad\" d=\"M{:.1} {:.1} L{:.1} {:.1} M{:.1} {:.1} L{:.1} {:.1}\"/>",
                cx - 2.5,
                cy - 2.5,
                cx + 2.5,
                cy + 2.5,
                cx + 2.5,
                cy - 2.5,
                cx - 2.5,
                cy + 2.5
            );
        }
    }
    success.push_str("</svg>");
    Charts {
        duration,
        success,
        finished: finished.len(),
        succeeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cronhook_core::Trigger;

    fn point(status: ExecutionStatus, minutes_ago: i64, ms: u64) -> ExecutionPoint {
        let at = Utc::now() - Duration::minutes(minutes_ago);
        ExecutionPoint {
            id: format!("exe_{minutes_ago}"),
            job_id: "job_x".into(),
            scheduled_for: at,
            trigger: Trigger::Schedule,
            status,
            started_at: Some(at),
            finished_at: Some(at),
            duration_ms: Some(ms),
        }
    }

    #[test]
    fn stamps_carry_utc_for_the_local_time_script() {
        let at = DateTime::parse_from_rfc3339("2026-11-27T02:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(
            Stamp(at).to_string(),
            "<time datetime=\"2026-11-27T02:00:00.000Z\" title=\"2026-11-27 02:00:00 UTC\" \
             data-local>2026-11-27 02:00:00 UTC</time>"
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration_ms(184), "184 ms");
        assert_eq!(duration_ms(1_500), "1.5 s");
        assert_eq!(duration_ms(125_000), "2 min 5 s");
        assert_eq!(duration_ms(3_660_000), "1 h 1 min");
    }

    #[test]
    fn sparklines_differ_in_shape_not_only_colour() {
        let svg = sparkline(&[
            point(ExecutionStatus::Failed, 1, 10),
            point(ExecutionStatus::Succeeded, 2, 10),
        ]);
        assert!(svg.contains("<rect class=\"s-ok\""));
        assert!(svg.contains("<path class=\"s-bad\""));
        assert!(svg.contains("Last 2 runs: 1 succeeded, 1 failed"));
        assert!(sparkline(&[]).contains("No runs yet"));
    }

    #[test]
    fn charts_count_finished_runs_in_the_window() {
        let points = [
            point(ExecutionStatus::Succeeded, 10, 100),
            point(ExecutionStatus::Failed, 20, 300),
            point(ExecutionStatus::Running, 1, 0),
            point(ExecutionStatus::Succeeded, 60 * 30, 50),
        ];
        let charts = charts(&points, Utc::now(), Duration::hours(24), 24);
        assert_eq!(charts.finished, 2);
        assert_eq!(charts.succeeded, 1);
        assert!(charts.success.contains("50% succeeded"));
        assert!(charts.duration.contains("longest 300 ms"));
    }

    #[test]
    fn json_bodies_are_pretty_printed() {
        let (body, json) = pretty_body("{\"ok\":true}", Some("application/json"));
        assert!(json);
        assert_eq!(body, "{\n  \"ok\": true\n}");
        let (body, json) = pretty_body("plain {", Some("text/plain"));
        assert!(!json);
        assert_eq!(body, "plain {");
    }

    #[test]
    fn escaping_covers_markup_and_queries() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(query_escape("/jobs/a b?x=1"), "/jobs/a%20b%3Fx%3D1");
    }
}
