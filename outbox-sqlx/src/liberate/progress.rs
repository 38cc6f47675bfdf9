//! How far a liberation got: rows done of the estimated total, rate, time left, and the
//! queries it cost the source database.

use std::fmt;
use std::time::Duration;

/// A liberation's progress, reported after every chunk and returned at the end.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Progress {
    /// Rows written to the outbox by this liberation, earlier runs (before a crash) included.
    pub rows_done: u64,
    /// Rows written by this run.
    pub rows_this_run: u64,
    /// The table's row count when the run started (an estimate: rows come and go).
    pub total_estimate: u64,
    /// Chunks (transactions) this run committed.
    pub chunks: u64,
    /// Statements and queries this run sent to the database.
    pub queries: u64,
    /// Time since the run started.
    pub elapsed: Duration,
}

impl Progress {
    /// Rows per second of this run.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rows_this_run as f64 / secs
        } else {
            0.0
        }
    }

    /// Time left at this run's rate, while the estimate is not reached.
    pub fn time_left(&self) -> Option<Duration> {
        let rate = self.rate();
        let left = self.total_estimate.saturating_sub(self.rows_done);
        (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate))
    }
}

impl fmt::Display for Progress {
    /// `12000/100000 rows (12.0%), 5400 rows/s, 16s left, 48 queries`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = if self.total_estimate > 0 {
            100.0 * self.rows_done as f64 / self.total_estimate as f64
        } else {
            100.0
        };
        write!(
            f,
            "{}/{} rows ({percent:.1}%), {:.0} rows/s",
            self.rows_done,
            self.total_estimate,
            self.rate()
        )?;
        if let Some(left) = self.time_left() {
            write!(f, ", {}s left", left.as_secs())?;
        }
        write!(f, ", {} queries", self.queries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_time_left() {
        let p = Progress {
            rows_done: 3000,
            rows_this_run: 2000,
            total_estimate: 10_000,
            chunks: 2,
            queries: 10,
            elapsed: Duration::from_secs(2),
        };
        assert!((p.rate() - 1000.0).abs() < f64::EPSILON);
        assert_eq!(p.time_left(), Some(Duration::from_secs(7)));
        assert_eq!(
            p.to_string(),
            "3000/10000 rows (30.0%), 1000 rows/s, 7s left, 10 queries"
        );
        assert_eq!(Progress::default().time_left(), None);
    }
}
