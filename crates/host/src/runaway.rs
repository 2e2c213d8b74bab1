//! Runaway wires: a wire that runs more than [`LOOPING_RATE`] times a second
//! for [`LOOPING_FOR`] seconds in a row is most likely feeding itself (an
//! action sends a message that comes back, from an echo server, and matches
//! the wire's trigger again). The host keeps it running, as a controller
//! would, but says so: the engine logs it once every [`WARN_EVERY`], and
//! `GET /io_modules` lists it in its instance's `looping_wires`.
//!
//! Each wire's runs are counted in one-second windows, kept by
//! [`RunRate`]; the clock is passed in, so the rule is tested in virtual
//! time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs a second above which a window counts as fast.
pub const LOOPING_RATE: u64 = 1000;
/// Fast windows (seconds) in a row that make a wire looping.
pub const LOOPING_FOR: u32 = 3;
/// How often, at most, a looping wire is logged.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

const WINDOW: Duration = Duration::from_secs(1);

/// One wire's runs, by one-second window. Locked once per run, by the
/// engine's thread, and on each `GET /io_modules`.
#[derive(Default)]
pub struct RunRate {
    windows: Mutex<Windows>,
}

#[derive(Default)]
struct Windows {
    /// The current window's start; None before the first run.
    start: Option<Instant>,
    /// Runs in the current window.
    runs: u64,
    /// Runs in the last complete window.
    last: u64,
    /// Complete fast windows in a row, up to the current one.
    fast: u32,
    warned_at: Option<Instant>,
}

impl Windows {
    /// Closes the windows that ended by `now`. A window with no run in it
    /// (the wire stopped) ends the streak like any slow one.
    fn roll(&mut self, now: Instant) {
        let Some(start) = self.start else {
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < WINDOW {
            return;
        }
        let ended = elapsed.as_nanos() / WINDOW.as_nanos();
        self.fast = if self.runs > LOOPING_RATE && ended == 1 {
            self.fast.saturating_add(1)
        } else {
            0
        };
        self.last = if ended == 1 { self.runs } else { 0 };
        self.runs = 0;
        self.start = Some(start + WINDOW * u32::try_from(ended).unwrap_or(u32::MAX));
    }

    fn looping(&self) -> bool {
        self.fast >= LOOPING_FOR
    }
}

impl RunRate {
    /// Counts a run at `now`. Returns the runs of the last complete second
    /// when the wire is looping and it is time to say so again.
    pub fn record(&self, now: Instant) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.start.is_none() {
            windows.start = Some(now);
        }
        windows.roll(now);
        windows.runs += 1;
        if windows.looping()
            && windows
                .warned_at
                .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY)
        {
            windows.warned_at = Some(now);
            return Some(windows.last);
        }
        None
    }

    /// Whether the wire has run faster than [`LOOPING_RATE`] for the last
    /// [`LOOPING_FOR`] complete seconds, up to `now`.
    pub fn looping(&self, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.roll(now);
        windows.looping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `per_second` times a second for `seconds`, evenly, from `from`;
    /// returns the warnings and the time after the last second.
    fn run(rate: &RunRate, from: Instant, per_second: u64, seconds: u64) -> (Vec<u64>, Instant) {
        let mut warnings = Vec::new();
        for second in 0..seconds {
            for n in 0..per_second {
                let at = from
                    + Duration::from_secs(second)
                    + Duration::from_nanos(n * 1_000_000_000 / per_second);
                warnings.extend(rate.record(at));
            }
        }
        (warnings, from + Duration::from_secs(seconds))
    }

    #[test]
    fn a_wire_over_the_rate_for_three_seconds_is_looping_and_warned_about_once_a_minute() {
        let rate = RunRate::default();
        let start = Instant::now();
        let (warnings, now) = run(&rate, start, 2000, 3);
        assert!(warnings.is_empty(), "only 2 complete seconds so far");
        assert!(rate.looping(now), "the third second is complete at {now:?}");
        let (warnings, now) = run(&rate, now, 2000, 59);
        assert_eq!(warnings, [2000], "once, with the last second's runs");
        assert!(rate.looping(now));
        let (warnings, now) = run(&rate, now, 2000, 2);
        assert_eq!(warnings, [2000], "a minute after the first");
        // One slow second ends it.
        let (warnings, now) = run(&rate, now, 500, 1);
        assert!(warnings.is_empty());
        assert!(!rate.looping(now));
    }

    #[test]
    fn a_wire_that_stops_leaves_the_list_a_second_later_and_a_steady_fast_one_never_joins_it() {
        let rate = RunRate::default();
        let start = Instant::now();
        let (_, now) = run(&rate, start, 1500, 4);
        assert!(rate.looping(now + Duration::from_millis(999)));
        assert!(
            !rate.looping(now + Duration::from_secs(1)),
            "a second with no run"
        );
        assert!(!rate.looping(now + Duration::from_secs(30)));

        let rate = RunRate::default();
        let (warnings, now) = run(&rate, start, LOOPING_RATE, 10);
        assert!(warnings.is_empty(), "exactly the rate is not over it");
        assert!(!rate.looping(now));
        assert!(!RunRate::default().looping(now), "never ran");
    }
}
