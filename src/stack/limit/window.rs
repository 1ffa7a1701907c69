//! A sliding-window bucket: at most `capacity` units in any window of `period`, bursts included.
//!
//! Units are granted by reservation: a caller asks for the earliest instant its cost fits, reserves that instant, and
//! sleeps until it. Reservations in one window are kept in time order and a new one never goes before the last, so
//! callers of one key are served first come, first served, and a reservation taken in several windows at one
//! instant holds in all of them (all or nothing). A reservation can be cancelled before its instant; after it, it
//! counts until it slides out of the window. The emulator uses the same type, without reservations, to enforce
//! Pinecone's limits.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Window {
    capacity: u64,
    period: Duration,
    /// (instant, cost, ticket) in time order.
    log: VecDeque<(Instant, u64, u64)>,
    /// Nothing is granted before this (a 429 from Pinecone slows the whole key).
    blocked_until: Option<Instant>,
}

impl Window {
    pub fn new(capacity: u64, period: Duration) -> Self {
        Window {
            capacity,
            period,
            log: VecDeque::new(),
            blocked_until: None,
        }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Forgets what slid out of the window at `now`.
    pub fn prune(&mut self, now: Instant) {
        while let Some(&(t, _, _)) = self.log.front() {
            if t + self.period <= now {
                self.log.pop_front();
            } else {
                break;
            }
        }
        if self.blocked_until.is_some_and(|b| b <= now) {
            self.blocked_until = None;
        }
    }

    /// True when nothing is reserved or blocked: the bucket can be dropped.
    pub fn is_idle(&self) -> bool {
        self.log.is_empty() && self.blocked_until.is_none()
    }

    /// The earliest instant at or after `now`, and not before the last reservation, at which `cost` fits; `None`
    /// when it never can (more than the capacity).
    pub fn earliest(&self, now: Instant, cost: u64) -> Option<Instant> {
        if cost > self.capacity {
            return None;
        }
        let mut start = self.log.back().map_or(now, |&(t, _, _)| t.max(now));
        if let Some(b) = self.blocked_until {
            start = start.max(b);
        }
        // Entries inside the window that ends at `start`, oldest first.
        let inside = self
            .log
            .iter()
            .filter(|&&(t, _, _)| t + self.period > start);
        let used: u64 = inside.clone().map(|&(_, c, _)| c).sum();
        if used + cost <= self.capacity {
            return Some(start);
        }
        // Slide forward until enough of the oldest entries have left the window.
        let mut excess = used + cost - self.capacity;
        for &(t, c, _) in inside {
            excess = excess.saturating_sub(c);
            if excess == 0 {
                return Some(t + self.period);
            }
        }
        None
    }

    /// Reserves `cost` at `at`, which must come from [`Window::earliest`] (or later).
    pub fn reserve(&mut self, at: Instant, cost: u64, ticket: u64) {
        debug_assert!(self.log.back().is_none_or(|&(t, _, _)| t <= at));
        self.log.push_back((at, cost, ticket));
    }

    /// Gives back a reservation that was not used.
    pub fn cancel(&mut self, ticket: u64) {
        if let Some(pos) = self.log.iter().position(|&(_, _, k)| k == ticket) {
            self.log.remove(pos);
        }
    }

    /// Units reserved for instants after `now` by reservations matching `owner`.
    pub fn queued_after(&self, now: Instant, owner: impl Fn(u64) -> bool) -> u64 {
        self.log
            .iter()
            .filter(|&&(t, _, k)| t > now && owner(k))
            .map(|&(_, c, _)| c)
            .sum()
    }

    /// The first instant after `now` at which a reservation matching `owner` is released.
    pub fn next_release(&self, now: Instant, owner: impl Fn(u64) -> bool) -> Option<Instant> {
        self.log
            .iter()
            .find(|&&(t, _, k)| t > now && owner(k))
            .map(|&(t, _, _)| t)
    }

    /// How many reservations wait for a later instant.
    pub fn waiting(&self, now: Instant) -> usize {
        self.log
            .iter()
            .rev()
            .take_while(|&&(t, _, _)| t > now)
            .count()
    }

    /// Grants nothing before `until`.
    pub fn block_until(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Takes `cost` now if it fits now (the emulator's check).
    pub fn try_take(&mut self, now: Instant, cost: u64) -> bool {
        self.prune(now);
        match self.earliest(now, cost) {
            Some(at) if at <= now => {
                self.reserve(now, cost, 0);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn grants_capacity_per_window_then_slides() {
        let now = Instant::now();
        let mut w = Window::new(3, S);
        let mut grants = vec![];
        for k in 0..7 {
            let at = w.earliest(now, 1).unwrap();
            w.reserve(at, 1, k);
            grants.push(at - now);
        }
        let ms: Vec<u128> = grants.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [0, 0, 0, 1000, 1000, 1000, 2000]);
    }

    #[tokio::test(start_paused = true)]
    async fn weighted_costs_wait_for_enough_room() {
        let now = Instant::now();
        let mut w = Window::new(10, S);
        w.reserve(now, 4, 1);
        w.reserve(now + Duration::from_millis(200), 4, 2);
        // 8 used: a cost of 5 needs the first entry gone (at 1000 ms), and 4+5 <= 10 then.
        assert_eq!(
            w.earliest(now + Duration::from_millis(300), 5),
            Some(now + S)
        );
        // A cost of 7 needs both gone.
        assert_eq!(w.earliest(now, 7), Some(now + Duration::from_millis(1200)));
        assert_eq!(w.earliest(now, 11), None);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_frees_the_slot() {
        let now = Instant::now();
        let mut w = Window::new(1, S);
        w.reserve(now, 1, 1);
        let at = w.earliest(now, 1).unwrap();
        w.reserve(at, 1, 2);
        w.cancel(2);
        assert_eq!(w.earliest(now, 1), Some(at));
        w.cancel(1);
        assert_eq!(w.earliest(now, 1), Some(now));
    }

    #[tokio::test(start_paused = true)]
    async fn try_take_never_exceeds_any_window() {
        let start = Instant::now();
        let mut w = Window::new(5, S);
        let mut taken = vec![];
        for step in 0..300u64 {
            let now = start + Duration::from_millis(step * 10);
            if w.try_take(now, 1) {
                taken.push(now);
            }
        }
        for (i, t) in taken.iter().enumerate() {
            let inside = taken[i..].iter().take_while(|u| **u < *t + S).count();
            assert!(
                inside <= 5,
                "{inside} in the window starting at {:?}",
                *t - start
            );
        }
        assert_eq!(taken.len(), 15);
    }

    #[tokio::test(start_paused = true)]
    async fn blocking_delays_everything() {
        let now = Instant::now();
        let mut w = Window::new(5, S);
        w.block_until(now + Duration::from_millis(700));
        assert_eq!(w.earliest(now, 1), Some(now + Duration::from_millis(700)));
    }
}
