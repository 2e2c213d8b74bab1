//! Failed sign-ins, counted per client address: after `LIMIT` failures
//! within `WINDOW`, that address gets 429 for `WINDOW`, even with the right
//! password (so guessing cannot go on at full speed). The clock is passed
//! in, so the rule is tested without waiting.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const LIMIT: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);

/// Addresses kept before old entries are swept (bounds the memory a flood
/// of addresses could take).
const SWEEP_ABOVE: usize = 1024;

#[derive(Default)]
pub struct Throttle {
    failures: HashMap<IpAddr, VecDeque<Instant>>,
    blocked_until: HashMap<IpAddr, Instant>,
}

impl Throttle {
    /// Whether `addr` may try now; `Err` holds how long it must wait.
    pub fn check(&mut self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.blocked_until.get(&addr) {
            Some(until) if *until > now => Err(*until - now),
            Some(_) => {
                self.blocked_until.remove(&addr);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records a failure; true when it starts a block.
    pub fn fail(&mut self, addr: IpAddr, now: Instant) -> bool {
        if self.failures.len() > SWEEP_ABOVE {
            self.sweep(now);
        }
        let failures = self.failures.entry(addr).or_default();
        failures.push_back(now);
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            failures.pop_front();
        }
        if failures.len() >= LIMIT {
            failures.clear();
            self.blocked_until.insert(addr, now + WINDOW);
            true
        } else {
            false
        }
    }

    /// A successful sign-in forgets the address's failures.
    pub fn succeed(&mut self, addr: IpAddr) {
        self.failures.remove(&addr);
    }

    fn sweep(&mut self, now: Instant) {
        self.failures
            .retain(|_, f| f.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        self.blocked_until.retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn five_failures_within_a_minute_block_that_address_for_a_minute() {
        let mut throttle = Throttle::default();
        let t0 = Instant::now();
        for n in 0..LIMIT {
            assert_eq!(throttle.check(A, t0), Ok(()));
            let blocked = throttle.fail(A, t0 + Duration::from_secs(n as u64));
            assert_eq!(blocked, n == LIMIT - 1);
        }
        let t = t0 + Duration::from_secs(4);
        assert_eq!(throttle.check(A, t), Err(WINDOW));
        assert_eq!(
            throttle.check(B, t),
            Ok(()),
            "another address is not blocked"
        );
        assert!(
            throttle
                .check(A, t + WINDOW - Duration::from_millis(1))
                .is_err()
        );
        assert_eq!(throttle.check(A, t + WINDOW), Ok(()));
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_do_not_block() {
        let mut throttle = Throttle::default();
        let t0 = Instant::now();
        for n in 0..10u64 {
            assert!(!throttle.fail(A, t0 + Duration::from_secs(n * 20)));
            assert_eq!(throttle.check(A, t0 + Duration::from_secs(n * 20)), Ok(()));
        }
    }

    #[test]
    fn a_success_forgets_earlier_failures() {
        let mut throttle = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..LIMIT - 1 {
            throttle.fail(A, t0);
        }
        throttle.succeed(A);
        assert!(!throttle.fail(A, t0));
    }
}
