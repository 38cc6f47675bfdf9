//! How busy the machine's cores were over an interval, from `/proc/stat` (Linux): a drain
//! that keeps every core busy is bound by the machine, whatever the database or broker could
//! do alone.

/// Cumulative busy and total CPU time of all cores, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    /// Now; `None` where `/proc/stat` cannot be read (not Linux).
    pub(crate) fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .map(|t| t.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is within user).
        let total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        Some(Self {
            busy: total.saturating_sub(idle),
            total,
        })
    }

    /// The share of the machine's CPU time busy since `self` (0 to 1), or `None`.
    pub(crate) fn busy_since(self) -> Option<f64> {
        let now = Self::now()?;
        let total = now.total.checked_sub(self.total)?;
        (total > 0).then(|| now.busy.saturating_sub(self.busy) as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::CpuTimes;

    #[test]
    fn a_busy_loop_shows_as_busy_time() {
        let Some(start) = CpuTimes::now() else { return };
        let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = x.wrapping_add(1);
        }
        std::hint::black_box(x);
        let busy = start.busy_since().expect("busy share");
        // One core spun on a machine of any size: above zero, at most all of it.
        assert!(busy > 0.0 && busy <= 1.0, "{busy}");
    }
}
