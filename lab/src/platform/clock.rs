//! A cheap clock for hot loops: the time-stamp counter, calibrated against the monotonic clock.
//!
//! In this dom0 `clock_gettime` may not be served by the vDSO (Xen's PV clock is used by the
//! vDSO only when Xen marks the TSC stable, which it may not under emulation), so each
//! `Instant::now()` can be a system call, and a PV guest's system calls go through Xen. A
//! benchmark that reads the clock several times per request would measure that. [`Tsc`] reads
//! the counter instead (`rdtsc`, not trapped for dom0 by default) and converts with a rate
//! measured once.

use std::time::{Duration, Instant};

/// Reads the time-stamp counter.
pub fn ticks() -> u64 {
    // SAFETY: `rdtsc` reads a counter and touches no memory; every x86_64 processor has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The counter's rate, measured against the monotonic clock.
#[derive(Clone, Copy, Debug)]
pub struct Tsc {
    per_second: f64,
}

impl Tsc {
    /// Measures the rate over about `over`; `None` if the counter does not advance.
    pub fn calibrate(over: Duration) -> Option<Self> {
        let (t0, c0) = (Instant::now(), ticks());
        std::thread::sleep(over);
        let (t1, c1) = (Instant::now(), ticks());
        let secs = (t1 - t0).as_secs_f64();
        let delta = c1.checked_sub(c0)?;
        (delta > 0 && secs > 0.0).then(|| Self {
            per_second: delta as f64 / secs,
        })
    }

    /// Counter ticks per second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// The counter ticks in `d`.
    pub fn ticks_in(&self, d: Duration) -> u64 {
        (d.as_secs_f64() * self.per_second) as u64
    }

    /// The duration of `ticks` counter ticks.
    pub fn duration(&self, ticks: u64) -> Duration {
        Duration::from_secs_f64(ticks as f64 / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_advances_and_converts() {
        let tsc = Tsc::calibrate(Duration::from_millis(20)).unwrap();
        assert!(tsc.per_second() > 1e6);
        let a = ticks();
        let b = ticks();
        assert!(b >= a);
        let d = tsc.duration(tsc.ticks_in(Duration::from_millis(5)));
        assert!((d.as_secs_f64() - 0.005).abs() < 1e-6);
    }
}
