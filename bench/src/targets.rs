//! The figures that have a target (issue #21), and whether a run met it.

use crate::report::Spread;

/// Which way a figure must go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Bound {
    /// The figure must not exceed the value (latencies, overheads, memory).
    AtMost(f64),
    /// The figure must reach the value (rates, ratios).
    AtLeast(f64),
}

/// One target: the RESULT name it applies to and its bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    /// The RESULT name, or the stem of a family of names: `relay_limit_ratio` also applies to
    /// `relay_limit_ratio_1kib_tansu` (the stem followed by `_`).
    pub(crate) name: &'static str,
    pub(crate) bound: Bound,
    /// What the target is, for the reader.
    pub(crate) what: &'static str,
}

/// Every target; the medians of the run are judged against these.
pub(crate) const TARGETS: &[Target] = &[
    Target {
        name: "e2e_poll_p99_ms",
        bound: Bound::AtMost(25.0),
        what: "end-to-end p99 in ms, polling, at the e2e phase's rate",
    },
    Target {
        name: "e2e_p99_ms",
        bound: Bound::AtMost(25.0),
        what: "end-to-end p99 in ms, LISTEN/NOTIFY, at the e2e phase's rate",
    },
    Target {
        name: "wal_e2e_p99_ms",
        bound: Bound::AtMost(10.0),
        what: "end-to-end p99 in ms, WAL mode",
    },
    Target {
        name: "publish_overhead_ratio_update",
        bound: Bound::AtMost(1.10),
        what: "business transaction (UPDATE + publish) over the UPDATE alone, p50",
    },
    Target {
        name: "relay_limit_ratio",
        bound: Bound::AtLeast(0.9),
        what: "relay drain rate over the slower of its fair baselines",
    },
    Target {
        name: "relay_peak_rss_mb",
        bound: Bound::AtMost(50.0),
        what: "relay peak resident memory in MB, draining the backlog",
    },
    Target {
        name: "wal_drain_events_per_s",
        bound: Bound::AtLeast(100_000.0),
        what: "WAL mode drain rate in events/s",
    },
];

impl Target {
    /// Whether this target applies to the RESULT `name`.
    pub(crate) fn applies_to(&self, name: &str) -> bool {
        name.strip_prefix(self.name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
    }

    /// Whether `value` meets the target; a value that is not a number never does.
    pub(crate) fn met_by(&self, value: f64) -> bool {
        match self.bound {
            Bound::AtMost(limit) => value <= limit,
            Bound::AtLeast(limit) => value >= limit,
        }
    }

    /// The bound as the reader sees it (`≤ 25`, `≥ 0.9`).
    pub(crate) fn bound_text(&self) -> String {
        match self.bound {
            Bound::AtMost(limit) => format!("≤ {}", crate::markdown::number(limit)),
            Bound::AtLeast(limit) => format!("≥ {}", crate::markdown::number(limit)),
        }
    }
}

/// The target that applies to the RESULT `name`, if any: the most specific one (the longest
/// stem) when several do.
pub(crate) fn target_for(name: &str) -> Option<&'static Target> {
    TARGETS
        .iter()
        .filter(|t| t.applies_to(name))
        .max_by_key(|t| t.name.len())
}

/// The verdict on a figure's median: `met`, `missed`, or, for a quick run (small counts),
/// no verdict.
pub(crate) fn verdict(target: &Target, spread: &Spread, quick: bool) -> &'static str {
    if quick {
        "not judged (quick run)"
    } else if target.met_by(spread.median) {
        "met"
    } else {
        "missed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stem_applies_to_its_family_only() {
        let ratio = target_for("relay_limit_ratio_1kib_tansu").expect("a target");
        assert_eq!(ratio.name, "relay_limit_ratio");
        assert_eq!(
            target_for("relay_limit_ratio").map(|t| t.name),
            Some(ratio.name)
        );
        assert!(target_for("relay_limit_ratios").is_none());
        // `e2e_p99_ms` (NOTIFY) and `e2e_poll_p99_ms` are different figures.
        assert_eq!(target_for("e2e_p99_ms").map(|t| t.name), Some("e2e_p99_ms"));
        assert_eq!(
            target_for("e2e_poll_p99_ms").map(|t| t.name),
            Some("e2e_poll_p99_ms")
        );
        assert!(target_for("publish_overhead_ratio").is_none());
    }

    #[test]
    fn the_median_is_judged_and_nan_never_meets() {
        let rss = target_for("relay_peak_rss_mb").expect("a target");
        assert_eq!(verdict(rss, &Spread::of(&[49.0, 60.0, 20.0]), false), "met");
        assert_eq!(verdict(rss, &Spread::of(&[51.0]), false), "missed");
        assert_eq!(verdict(rss, &Spread::of(&[f64::NAN]), false), "missed");
        assert_eq!(
            verdict(rss, &Spread::of(&[51.0]), true),
            "not judged (quick run)"
        );
    }
}
