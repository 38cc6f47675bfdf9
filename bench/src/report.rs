//! The figures of a run: the printed table, the RESULT lines and the data the pictures are
//! drawn from.

use std::time::Duration;

/// The figures, in order, for the table, the RESULT lines and the pictures.
#[derive(Default)]
pub(crate) struct Report {
    /// `(figure, outbox, baseline)`, as printed.
    pub(crate) rows: Vec<(String, String, String)>,
    /// Each figure's values in the order measured: one per run of its phase.
    pub(crate) results: Vec<(String, Vec<f64>)>,
    /// The pictures' data, drawn when the run writes its report.
    pub(crate) plots: Vec<Plot>,
}

/// One picture's data.
// Until the renderer draws every kind (the report work in progress): remove then.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub(crate) enum Plot {
    /// Latency distributions (drawn as percentile curves), one series per mode.
    Distribution {
        /// File stem of the SVG (`e2e-latency` → `e2e-latency.svg`).
        file: String,
        title: String,
        /// `(mode, latencies in ms)`; the samples need not be sorted.
        series: Vec<(String, Vec<f64>)>,
    },
    /// Lines over a common x axis (e.g. drain rate over the backlog drained).
    Lines {
        file: String,
        title: String,
        x_label: String,
        y_label: String,
        /// `(label, points (x, y))`.
        series: Vec<(String, Vec<(f64, f64)>)>,
    },
    /// Bars side by side (e.g. the relay beside its baselines).
    Bars {
        file: String,
        title: String,
        y_label: String,
        /// `(label, value)`.
        bars: Vec<(String, f64)>,
    },
}

impl Plot {
    /// The SVG's file stem.
    pub(crate) fn file(&self) -> &str {
        match self {
            Self::Distribution { file, .. }
            | Self::Lines { file, .. }
            | Self::Bars { file, .. } => file,
        }
    }

    /// The picture's title.
    pub(crate) fn title(&self) -> &str {
        match self {
            Self::Distribution { title, .. }
            | Self::Lines { title, .. }
            | Self::Bars { title, .. } => title,
        }
    }
}

impl Report {
    /// Prints a table row and keeps it for the written report.
    pub(crate) fn row(&mut self, what: &str, ours: String, baseline: String) {
        println!("  {what:<46} {ours:>22}   {baseline}");
        self.rows.push((what.to_owned(), ours, baseline));
    }

    /// Records one measured value of the figure `name`; a phase run several times records it
    /// once per run, and the RESULT line gives the median with the spread.
    pub(crate) fn result(&mut self, name: &str, value: f64) {
        match self.results.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => self.results.push((name.to_owned(), vec![value])),
        }
    }

    /// Keeps a picture's data; a picture of the same file from an earlier run of a phase is
    /// merged: its series or bars are extended.
    pub(crate) fn plot(&mut self, plot: Plot) {
        let existing = self.plots.iter_mut().find(|p| p.file() == plot.file());
        match (existing, plot) {
            (Some(Plot::Distribution { series, .. }), Plot::Distribution { series: more, .. }) => {
                series.extend(more);
            }
            (Some(Plot::Lines { series, .. }), Plot::Lines { series: more, .. }) => {
                series.extend(more);
            }
            (Some(Plot::Bars { bars, .. }), Plot::Bars { bars: more, .. }) => bars.extend(more),
            (_, plot) => self.plots.push(plot),
        }
    }

    /// The median of each figure, with its minimum and maximum when it was measured more
    /// than once.
    pub(crate) fn summary(&self) -> Vec<(String, Spread)> {
        self.results
            .iter()
            .map(|(name, values)| (name.clone(), Spread::of(values)))
            .collect()
    }
}

/// A figure over its runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) runs: usize,
}

impl Spread {
    pub(crate) fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Self {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            runs: n,
        }
    }
}

pub(crate) fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_over_runs() {
        let odd = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((odd.median, odd.min, odd.max, odd.runs), (2.0, 1.0, 3.0, 3));
        let even = Spread::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
        let none = Spread::of(&[]);
        assert!(none.median.is_nan() && none.runs == 0);
    }

    #[test]
    fn repeated_results_and_plots_are_gathered_under_one_name() {
        let mut report = Report::default();
        report.result("a", 1.0);
        report.result("b", 5.0);
        report.result("a", 3.0);
        let summary = report.summary();
        assert_eq!(summary.len(), 2);
        assert_eq!((summary[0].0.as_str(), summary[0].1.median), ("a", 2.0));
        let bars = |label: &str| Plot::Bars {
            file: "f".into(),
            title: "t".into(),
            y_label: "y".into(),
            bars: vec![(label.into(), 1.0)],
        };
        report.plot(bars("x"));
        report.plot(bars("y"));
        assert_eq!(report.plots.len(), 1);
        assert!(matches!(&report.plots[0], Plot::Bars { bars, .. } if bars.len() == 2));
    }
}
