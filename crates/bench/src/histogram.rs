//! Prometheus histograms read back from `GET /metrics`, so a run can report what the scheduler
//! measured about itself over the measured window (the difference of two scrapes).

/// One histogram as `/metrics` renders it: cumulative counts by bucket bound, sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `(upper bound, observations ≤ bound)`, ascending; the last bound is `+Inf`.
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// The histogram `name` (without labels) from a Prometheus text exposition; `None` when the
    /// text does not have it (nothing recorded yet).
    pub fn parse(text: &str, name: &str) -> Option<Histogram> {
        let bucket_prefix = format!("{name}_bucket{{le=\"");
        let mut histogram = Histogram::default();
        let mut seen = false;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(&bucket_prefix) {
                let (bound, value) = rest.split_once("\"}")?;
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().ok()?
                };
                histogram.buckets.push((bound, value.trim().parse().ok()?));
                seen = true;
            } else if let Some(value) = sample(line, name, "_sum") {
                histogram.sum = value;
            } else if let Some(value) = sample(line, name, "_count") {
                histogram.count = value;
            }
        }
        histogram.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        seen.then_some(histogram)
    }

    /// What was observed after `earlier` (a scrape of the same histogram taken before).
    pub fn since(&self, earlier: Option<&Histogram>) -> Histogram {
        let Some(earlier) = earlier else {
            return self.clone();
        };
        let before = |bound: f64| {
            earlier
                .buckets
                .iter()
                .find(|(other, _)| *other == bound)
                .map_or(0.0, |(_, count)| *count)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|&(bound, count)| (bound, count - before(bound)))
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// The mean observation, `None` without observations.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The upper bound of the bucket that holds the `q` quantile: the quantile is at most this
    /// (infinite when it lies beyond the last finite bound). `None` without observations.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, count)| *count >= rank)
            .map(|(bound, _)| *bound)
    }
}

/// The unlabelled counter `name` from a Prometheus text exposition; zero when the text does not
/// have it (a counter appears once something incremented it).
pub fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| sample(line, name, ""))
        .unwrap_or(0.0)
}

/// The value of the unlabelled sample `name` + `suffix` on `line`.
fn sample(line: &str, name: &str, suffix: &str) -> Option<f64> {
    let rest = line.strip_prefix(name)?.strip_prefix(suffix)?;
    rest.strip_prefix(' ')?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP lag_seconds How late.
# TYPE lag_seconds histogram
lag_seconds_bucket{le=\"0.01\"} 5
lag_seconds_bucket{le=\"0.1\"} 8
lag_seconds_bucket{le=\"1\"} 10
lag_seconds_bucket{le=\"+Inf\"} 10
lag_seconds_sum 2.5
lag_seconds_count 10
lag_seconds_other_sum 99
";

    #[test]
    fn a_histogram_is_read_from_the_text_format() {
        let histogram = Histogram::parse(TEXT, "lag_seconds").expect("present");
        assert_eq!(
            histogram.buckets,
            vec![(0.01, 5.0), (0.1, 8.0), (1.0, 10.0), (f64::INFINITY, 10.0)]
        );
        assert_eq!((histogram.sum, histogram.count), (2.5, 10.0));
        assert_eq!(histogram.mean(), Some(0.25));
        assert_eq!(histogram.quantile_bound(0.5), Some(0.01));
        assert_eq!(histogram.quantile_bound(0.8), Some(0.1));
        assert_eq!(histogram.quantile_bound(0.99), Some(1.0));
        assert_eq!(Histogram::parse(TEXT, "absent_seconds"), None);
    }

    #[test]
    fn a_counter_is_read_and_absent_is_zero() {
        let text = "# TYPE dropped_total counter\ndropped_total 42\ndropped_total_other 7\n";
        assert_eq!(counter(text, "dropped_total"), 42.0);
        assert_eq!(counter(text, "absent_total"), 0.0);
        assert_eq!(
            counter(TEXT, "lag_seconds"),
            0.0,
            "a histogram's samples are not it"
        );
    }

    #[test]
    fn the_difference_of_two_scrapes_is_what_the_window_observed() {
        let before = Histogram::parse(TEXT, "lag_seconds").expect("present");
        let after = Histogram::parse(
            &TEXT
                .replace("} 5", "} 6")
                .replace("} 8", "} 9")
                .replace("} 10", "} 14")
                .replace("_sum 2.5", "_sum 12.5")
                .replace("_count 10", "_count 14"),
            "lag_seconds",
        )
        .expect("present");
        let window = after.since(Some(&before));
        assert_eq!(
            window.buckets,
            vec![(0.01, 1.0), (0.1, 1.0), (1.0, 4.0), (f64::INFINITY, 4.0)]
        );
        assert_eq!(window.mean(), Some(2.5));
        assert_eq!(window.quantile_bound(0.99), Some(1.0));
        assert_eq!(after.since(None), after);
        assert_eq!(before.since(Some(&before)).quantile_bound(0.99), None);
    }
}
