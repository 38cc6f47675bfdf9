//! The figures of a run: the printed table and the RESULT lines.

use std::time::Duration;

/// The figures, in order, for the table and the RESULT lines.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) rows: Vec<(String, String, String)>,
    pub(crate) results: Vec<(String, f64)>,
}

impl Report {
    pub(crate) fn row(&mut self, what: &str, ours: String, baseline: String) {
        println!("  {what:<46} {ours:>22}   {baseline}");
        self.rows.push((what.to_owned(), ours, baseline));
    }

    pub(crate) fn result(&mut self, name: &str, value: f64) {
        self.results.push((name.to_owned(), value));
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
