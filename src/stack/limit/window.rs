//! A sliding-window bucket: at most `capacity` units in any window of `period`, bursts included.
//!
//! Units are granted by reservation: a caller asks for the earliest instant its cost fits, reserves that instant, and
//! sleeps until it. A new reservation never goes before the last one, so callers of one key are served first come,
//! first served, and a reservation taken in several windows at one instant holds in all of them (all or nothing).
//!
//! Pinecone counts a request when it *arrives*, which is some time after the gateway sent it. So a sent request is
//! *open* (counted as if it were now, whatever its reservation said) until its answer comes back, and is then stamped
//! with the instant of the answer, which is never earlier than its arrival. Every request Pinecone could count in one
//! of its windows is thus counted by the gateway in the window that ends when it sends the next one: the gateway
//! never exceeds the limit as Pinecone sees it, however the network delays requests. Because open requests can
//! outlast what a reservation assumed, a caller checks again when it wakes ([`Window::earliest_without`]) and waits
//! longer if it must.
//!
//! The emulator uses the same type with [`Window::try_take`] to enforce Pinecone's limits.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Entry {
    at: Instant,
    cost: u64,
    ticket: u64,
    /// Sent, answer not back yet: counted as now.
    open: bool,
    /// Sent (open or answered): it counts in the window that ends now, whatever its instant.
    sent: bool,
}

#[derive(Debug)]
pub struct Window {
    capacity: u64,
    period: Duration,
    /// In order of `at`.
    log: Vec<Entry>,
    /// Nothing is granted before this (a 429 from Pinecone slows the whole key).
    blocked_until: Option<Instant>,
}

impl Window {
    pub fn new(capacity: u64, period: Duration) -> Self {
        Window {
            capacity,
            period,
            log: Vec::new(),
            blocked_until: None,
        }
    }

    /// New capacity and period (a configuration reload); what is already reserved stays.
    pub fn set_limit(&mut self, capacity: u64, period: Duration) {
        self.capacity = capacity;
        self.period = period;
    }

    /// Forgets what slid out of the window at `now`.
    pub fn prune(&mut self, now: Instant) {
        let period = self.period;
        self.log.retain(|e| e.open || e.at + period > now);
        if self.blocked_until.is_some_and(|b| b <= now) {
            self.blocked_until = None;
        }
    }

    /// True when nothing is reserved, open or blocked: the bucket can be dropped.
    pub fn is_idle(&self) -> bool {
        self.log.is_empty() && self.blocked_until.is_none()
    }

    /// The earliest instant at or after `now`, and not before the last reservation, at which `cost` fits; `None`
    /// when it never can (more than the capacity).
    pub fn earliest(&self, now: Instant, cost: u64) -> Option<Instant> {
        self.earliest_without(now, cost, None)
    }

    /// [`Window::earliest`], leaving out the reservation `ticket` (a caller checking again when it wakes).
    pub fn earliest_without(
        &self,
        now: Instant,
        cost: u64,
        ticket: Option<u64>,
    ) -> Option<Instant> {
        if cost > self.capacity {
            return None;
        }
        let mut times: Vec<(Instant, u64, bool)> = self
            .log
            .iter()
            .filter(|e| Some(e.ticket) != ticket)
            .map(|e| {
                let t = if e.open { e.at.max(now) } else { e.at };
                (t, e.cost, e.sent)
            })
            .collect();
        times.sort_by_key(|&(t, _, _)| t);
        let mut start = now;
        if ticket.is_none()
            && let Some(&(last, _, _)) = times.last()
        {
            start = start.max(last);
        }
        if let Some(b) = self.blocked_until {
            start = start.max(b);
        }
        // Later reservations are not in this window: they check against this one when they wake.
        let inside: Vec<(Instant, u64)> = times
            .into_iter()
            .filter(|&(t, _, sent)| (sent || t <= start) && t + self.period > start)
            .map(|(t, c, _)| (t, c))
            .collect();
        let used: u64 = inside.iter().map(|&(_, c)| c).sum();
        if used + cost <= self.capacity {
            return Some(start);
        }
        // Slide forward until enough of the oldest entries have left the window. Open entries never leave: they
        // sort at `now` or later, so if only they remain the answer is a guess that the caller checks again.
        let mut excess = used + cost - self.capacity;
        for (t, c) in inside {
            excess = excess.saturating_sub(c);
            if excess == 0 {
                return Some((t + self.period).max(start));
            }
        }
        None
    }

    /// Reserves `cost` at `at` (from [`Window::earliest`]).
    pub fn reserve(&mut self, at: Instant, cost: u64, ticket: u64) {
        let pos = self.log.partition_point(|e| e.at <= at);
        self.log.insert(
            pos,
            Entry {
                at,
                cost,
                ticket,
                open: false,
                sent: false,
            },
        );
    }

    /// Moves a waiting reservation to a later instant.
    pub fn postpone(&mut self, ticket: u64, at: Instant) {
        if let Some(pos) = self.log.iter().position(|e| e.ticket == ticket) {
            let mut e = self.log.remove(pos);
            e.at = at;
            let pos = self.log.partition_point(|x| x.at <= at);
            self.log.insert(pos, e);
        }
    }

    /// The reservation's request is being sent now.
    pub fn open(&mut self, ticket: u64, now: Instant) {
        if let Some(e) = self.log.iter_mut().find(|e| e.ticket == ticket) {
            e.open = true;
            e.sent = true;
            e.at = now;
        }
    }

    /// The request's answer came back at `now`: it counts from here until it slides out.
    pub fn close(&mut self, ticket: u64, now: Instant) {
        if let Some(pos) = self.log.iter().position(|e| e.ticket == ticket) {
            let mut e = self.log.remove(pos);
            e.open = false;
            e.at = e.at.max(now);
            let pos = self.log.partition_point(|x| x.at <= e.at);
            self.log.insert(pos, e);
        }
    }

    /// Gives back a reservation that was not used.
    pub fn cancel(&mut self, ticket: u64) {
        self.log.retain(|e| e.ticket != ticket);
    }

    /// Units reserved for instants after `now` by reservations matching `owner`.
    pub fn queued_after(&self, now: Instant, owner: impl Fn(u64) -> bool) -> u64 {
        self.log
            .iter()
            .filter(|e| !e.open && e.at > now && owner(e.ticket))
            .map(|e| e.cost)
            .sum()
    }

    /// The first instant after `now` at which a reservation matching `owner` is due.
    pub fn next_release(&self, now: Instant, owner: impl Fn(u64) -> bool) -> Option<Instant> {
        self.log
            .iter()
            .find(|e| !e.open && e.at > now && owner(e.ticket))
            .map(|e| e.at)
    }

    /// How many reservations wait for a later instant.
    pub fn waiting(&self, now: Instant) -> usize {
        self.log.iter().filter(|e| !e.open && e.at > now).count()
    }

    /// Grants nothing before `until`.
    pub fn block_until(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Takes `cost` now if it fits now (the emulator's check: Pinecone counts arrivals).
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
    async fn an_open_request_counts_until_its_answer_then_from_the_answer() {
        let start = Instant::now();
        let mut w = Window::new(1, S);
        w.reserve(start, 1, 1);
        w.open(1, start);
        // Still open 1.5 s later (a slow upstream): it may arrive any moment, so there is no room yet.
        let later = start + Duration::from_millis(1500);
        assert!(w.earliest_without(later, 1, None).unwrap() >= later + S);
        // Its answer at 1.5 s: it counts until 2.5 s.
        w.close(1, later);
        w.prune(later);
        assert_eq!(w.earliest(later, 1), Some(later + S));
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
