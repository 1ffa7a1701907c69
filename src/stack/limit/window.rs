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
//! Cost: every call asks [`Window::earliest`], so it must not walk the whole window (at 10,000 calls per second a
//! window holds 10,000 entries). The log is kept in order of instant with a running total; answers are pruned from
//! the front, reservations still waiting sit at the back, and open requests are kept apart. A call walks only the
//! entries that slid out since the last prune and the reservations still waiting, which are few unless the limit
//! binds (and then the queue's own bound, `max_queue_len`, bounds the walk).

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Entry {
    at: Instant,
    cost: u64,
    ticket: u64,
    /// Sent and answered: it counts in the window that ends now, whatever its instant.
    answered: bool,
}

#[derive(Clone, Copy, Debug)]
struct Open {
    ticket: u64,
    cost: u64,
    since: Instant,
}

#[derive(Debug)]
pub struct Window {
    capacity: u64,
    period: Duration,
    /// Reservations and answered requests, in order of `at`.
    log: VecDeque<Entry>,
    /// The sum of `cost` over `log`.
    logged: u64,
    /// Sent, answer not back yet: counted as now. As many as the calls in flight on this key.
    open: Vec<Open>,
    /// The sum of `cost` over `open`.
    open_cost: u64,
    /// Nothing is granted before this (a 429 from Pinecone slows the whole key).
    blocked_until: Option<Instant>,
}

impl Window {
    pub fn new(capacity: u64, period: Duration) -> Self {
        Window {
            capacity,
            period,
            log: VecDeque::new(),
            logged: 0,
            open: Vec::new(),
            open_cost: 0,
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
        while let Some(e) = self.log.front() {
            if e.at + self.period > now {
                break;
            }
            self.logged -= e.cost;
            self.log.pop_front();
        }
        if self.blocked_until.is_some_and(|b| b <= now) {
            self.blocked_until = None;
        }
    }

    /// True when nothing is reserved, open or blocked: the bucket can be dropped.
    pub fn is_idle(&self) -> bool {
        self.log.is_empty() && self.open.is_empty() && self.blocked_until.is_none()
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
        let mut start = now;
        if ticket.is_none()
            && let Some(last) = self.log.back()
        {
            start = start.max(last.at);
        }
        if let Some(b) = self.blocked_until {
            start = start.max(b);
        }
        // The window ending at `start` holds log[first..end] (less the reservations after `start`, which check
        // against this one when they wake) and the open requests, which sort at `now`.
        let first = self.log.partition_point(|e| e.at + self.period <= start);
        let end = self.log.partition_point(|e| e.at <= start);
        let mut used = self.logged;
        used -= self.log.range(..first).map(|e| e.cost).sum::<u64>();
        // Answered requests always count, even stamped an instant after a `now` read before their answer.
        used -= self
            .log
            .range(end..)
            .filter(|e| !e.answered)
            .map(|e| e.cost)
            .sum::<u64>();
        let opens_inside = now + self.period > start;
        if opens_inside {
            used += self.open_cost;
        }
        let own_logged = ticket
            .and_then(|t| {
                self.log
                    .range(first..end)
                    .rev()
                    .find(|e| e.ticket == t && !e.answered)
            })
            .map_or(0, |e| e.cost);
        let own_open = match ticket {
            Some(t) if opens_inside => self
                .open
                .iter()
                .find(|o| o.ticket == t)
                .map_or(0, |o| o.cost),
            _ => 0,
        };
        used -= own_logged + own_open;
        if used + cost <= self.capacity {
            return Some(start);
        }
        // Slide forward until enough of the oldest entries have left the window. Open entries never leave: they
        // sort at `now` or later, so if only they remain the answer is a guess that the caller checks again.
        let mut excess = used + cost - self.capacity;
        let mut opens_left = if opens_inside {
            self.open_cost - own_open
        } else {
            0
        };
        let answered_late = self.log.range(end..).filter(|e| e.answered);
        for e in self.log.range(first..end).chain(answered_late) {
            if opens_left > 0 && e.at > now {
                excess = excess.saturating_sub(std::mem::take(&mut opens_left));
                if excess == 0 {
                    return Some((now + self.period).max(start));
                }
            }
            if Some(e.ticket) == ticket && !e.answered {
                continue;
            }
            excess = excess.saturating_sub(e.cost);
            if excess == 0 {
                return Some((e.at + self.period).max(start));
            }
        }
        if opens_left > 0 && excess <= opens_left {
            return Some((now + self.period).max(start));
        }
        None
    }

    /// A request sent at `at` and decided elsewhere (by Redis, before this window decides alone): it counts until it
    /// slides out.
    pub fn record_sent(&mut self, at: Instant, cost: u64) {
        self.insert(Entry {
            at,
            cost,
            ticket: u64::MAX,
            answered: true,
        });
    }

    /// Reserves `cost` at `at` (from [`Window::earliest`]).
    pub fn reserve(&mut self, at: Instant, cost: u64, ticket: u64) {
        self.insert(Entry {
            at,
            cost,
            ticket,
            answered: false,
        });
    }

    fn insert(&mut self, e: Entry) {
        // Nearly always at the back: search from there.
        let mut pos = self.log.len();
        while pos > 0 && self.log[pos - 1].at > e.at {
            pos -= 1;
        }
        self.logged += e.cost;
        self.log.insert(pos, e);
    }

    /// Takes the reservation `ticket` out of the log. Reservations due now sit near the back.
    fn take(&mut self, ticket: u64) -> Option<Entry> {
        let pos = self
            .log
            .iter()
            .rposition(|e| e.ticket == ticket && !e.answered)?;
        let e = self.log.remove(pos)?;
        self.logged -= e.cost;
        Some(e)
    }

    /// Moves a waiting reservation to a later instant.
    pub fn postpone(&mut self, ticket: u64, at: Instant) {
        if let Some(mut e) = self.take(ticket) {
            e.at = at;
            self.insert(e);
        }
    }

    /// The reservation's request is being sent now.
    pub fn open(&mut self, ticket: u64, now: Instant) {
        if let Some(e) = self.take(ticket) {
            self.open_cost += e.cost;
            self.open.push(Open {
                ticket,
                cost: e.cost,
                since: now,
            });
        }
    }

    /// The request's answer came back at `now`: it counts from here until it slides out.
    pub fn close(&mut self, ticket: u64, now: Instant) {
        self.close_costing(ticket, now, None);
    }

    /// [`Window::close`], counting the request at the cost its answer reported when that differs from the estimate
    /// it was sent with (a query's read units).
    pub fn close_costing(&mut self, ticket: u64, now: Instant, cost: Option<u64>) {
        if let Some(pos) = self.open.iter().position(|o| o.ticket == ticket) {
            let o = self.open.swap_remove(pos);
            self.open_cost -= o.cost;
            self.insert(Entry {
                at: o.since.max(now),
                cost: cost.unwrap_or(o.cost),
                ticket,
                answered: true,
            });
        }
    }

    /// Gives back a reservation that was not used.
    pub fn cancel(&mut self, ticket: u64) {
        if let Some(pos) = self.open.iter().position(|o| o.ticket == ticket) {
            let o = self.open.swap_remove(pos);
            self.open_cost -= o.cost;
        } else {
            self.take(ticket);
        }
    }

    /// The reservations still waiting at `now`, latest first.
    fn queued(&self, now: Instant) -> impl Iterator<Item = &Entry> {
        self.log
            .iter()
            .rev()
            .take_while(move |e| e.at > now)
            .filter(|e| !e.answered)
    }

    /// Units reserved for instants after `now` by reservations matching `owner`.
    pub fn queued_after(&self, now: Instant, owner: impl Fn(u64) -> bool) -> u64 {
        self.queued(now)
            .filter(|e| owner(e.ticket))
            .map(|e| e.cost)
            .sum()
    }

    /// The first instant after `now` at which a reservation matching `owner` is due.
    pub fn next_release(&self, now: Instant, owner: impl Fn(u64) -> bool) -> Option<Instant> {
        self.queued(now)
            .filter(|e| owner(e.ticket))
            .last()
            .map(|e| e.at)
    }

    /// How many reservations wait for a later instant.
    pub fn waiting(&self, now: Instant) -> usize {
        self.queued(now).count()
    }

    /// Grants nothing before `until`.
    pub fn block_until(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
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
    async fn an_answer_counts_at_its_reported_cost() {
        let start = Instant::now();
        let mut w = Window::new(100, S);
        // Sent as 1 (an estimate); the answer says 60: 40 are left in the window until it slides out.
        w.reserve(start, 1, 1);
        w.open(1, start);
        w.close_costing(1, start, Some(60));
        assert_eq!(w.earliest(start, 40), Some(start));
        assert_eq!(w.earliest(start, 41), Some(start + S));
    }

    /// Grants the earliest turn for one unit at each step (as the limiter does) and checks every window.
    #[tokio::test(start_paused = true)]
    async fn granted_turns_never_exceed_any_window() {
        let start = Instant::now();
        let mut w = Window::new(5, S);
        let mut taken = vec![];
        for step in 0..300u64 {
            let now = start + Duration::from_millis(step * 10);
            w.prune(now);
            if w.earliest(now, 1) == Some(now) {
                w.reserve(now, 1, step);
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

    /// The straightforward window (every entry collected and sorted on each question): the referee for the one
    /// above, which answers without walking the window.
    struct Naive {
        capacity: u64,
        period: Duration,
        // (at, cost, ticket, open, sent)
        log: Vec<(Instant, u64, u64, bool, bool)>,
        blocked_until: Option<Instant>,
    }

    impl Naive {
        fn prune(&mut self, now: Instant) {
            let period = self.period;
            self.log.retain(|e| e.3 || e.0 + period > now);
            if self.blocked_until.is_some_and(|b| b <= now) {
                self.blocked_until = None;
            }
        }
        fn earliest_without(
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
                .filter(|e| Some(e.2) != ticket)
                .map(|e| (if e.3 { e.0.max(now) } else { e.0 }, e.1, e.4))
                .collect();
            times.sort_by_key(|t| t.0);
            let mut start = now;
            if ticket.is_none()
                && let Some(&(last, _, _)) = times.last()
            {
                start = start.max(last);
            }
            if let Some(b) = self.blocked_until {
                start = start.max(b);
            }
            let inside: Vec<(Instant, u64)> = times
                .into_iter()
                .filter(|&(t, _, sent)| (sent || t <= start) && t + self.period > start)
                .map(|(t, c, _)| (t, c))
                .collect();
            let used: u64 = inside.iter().map(|&(_, c)| c).sum();
            if used + cost <= self.capacity {
                return Some(start);
            }
            let mut excess = used + cost - self.capacity;
            for (t, c) in inside {
                excess = excess.saturating_sub(c);
                if excess == 0 {
                    return Some((t + self.period).max(start));
                }
            }
            None
        }
        fn reserve(&mut self, at: Instant, cost: u64, ticket: u64) {
            let pos = self.log.partition_point(|e| e.0 <= at);
            self.log.insert(pos, (at, cost, ticket, false, false));
        }
        fn find(&self, ticket: u64) -> Option<usize> {
            self.log.iter().position(|e| e.2 == ticket)
        }
        fn postpone(&mut self, ticket: u64, at: Instant) {
            if let Some(pos) = self.find(ticket) {
                let mut e = self.log.remove(pos);
                e.0 = at;
                let pos = self.log.partition_point(|x| x.0 <= at);
                self.log.insert(pos, e);
            }
        }
        fn open(&mut self, ticket: u64, now: Instant) {
            if let Some(pos) = self.find(ticket) {
                let e = &mut self.log[pos];
                (e.3, e.4, e.0) = (true, true, now);
            }
        }
        fn close(&mut self, ticket: u64, now: Instant) {
            if let Some(pos) = self.find(ticket) {
                let mut e = self.log.remove(pos);
                e.3 = false;
                e.0 = e.0.max(now);
                let pos = self.log.partition_point(|x| x.0 <= e.0);
                self.log.insert(pos, e);
            }
        }
    }

    /// Random traffic on one key (reservations at their earliest turn, sends, answers, cancellations, postponements,
    /// 429 pauses, time passing): after every step both windows give the same answers.
    #[test]
    fn agrees_with_the_straightforward_window() {
        use proptest::prelude::*;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let step = (0u8..8, 0u64..400, 1u64..4);
        proptest!(ProptestConfig::with_cases(300), |(steps in proptest::collection::vec(step, 1..200), capacity in 1u64..12)| {
            let base = Instant::now();
            let period = Duration::from_millis(1000);
            let mut fast = Window::new(capacity, period);
            let mut naive = Naive { capacity, period, log: vec![], blocked_until: None };
            let mut now = base;
            let mut next_ticket = 0u64;
            // Tickets by state, as the limiter holds them.
            let (mut reserved, mut opened): (Vec<u64>, Vec<u64>) = (vec![], vec![]);
            for (kind, n, cost) in steps {
                match kind {
                    0 => now += Duration::from_millis(n),
                    1 | 2 => {
                        fast.prune(now);
                        naive.prune(now);
                        let got = fast.earliest(now, cost);
                        prop_assert_eq!(got, naive.earliest_without(now, cost, None));
                        if let Some(at) = got {
                            fast.reserve(at, cost, next_ticket);
                            naive.reserve(at, cost, next_ticket);
                            reserved.push(next_ticket);
                            next_ticket += 1;
                        }
                    }
                    3 if !reserved.is_empty() => {
                        let t = reserved.remove(n as usize % reserved.len());
                        prop_assert_eq!(fast.earliest_without(now, 1, Some(t)), naive.earliest_without(now, 1, Some(t)));
                        fast.open(t, now);
                        naive.open(t, now);
                        opened.push(t);
                    }
                    4 if !opened.is_empty() => {
                        let t = opened.remove(n as usize % opened.len());
                        fast.close(t, now);
                        naive.close(t, now);
                    }
                    5 if !reserved.is_empty() => {
                        let t = reserved.remove(n as usize % reserved.len());
                        fast.cancel(t);
                        naive.log.retain(|e| e.2 != t);
                    }
                    6 if !reserved.is_empty() => {
                        let t = reserved[n as usize % reserved.len()];
                        let at = now + Duration::from_millis(n * 3);
                        fast.postpone(t, at);
                        naive.postpone(t, at);
                    }
                    7 => {
                        let until = now + Duration::from_millis(n);
                        fast.block_until(until);
                        naive.blocked_until = Some(naive.blocked_until.map_or(until, |b| b.max(until)));
                    }
                    _ => {}
                }
                for c in 1..=capacity + 1 {
                    prop_assert_eq!(fast.earliest(now, c), naive.earliest_without(now, c, None), "cost {}", c);
                }
                for &t in &reserved {
                    prop_assert_eq!(fast.earliest_without(now, 1, Some(t)), naive.earliest_without(now, 1, Some(t)));
                }
                let fast_waiting = fast.waiting(now);
                let naive_waiting = naive.log.iter().filter(|e| !e.3 && e.0 > now).count();
                prop_assert_eq!(fast_waiting, naive_waiting);
            }
        });
    }

    #[tokio::test(start_paused = true)]
    async fn blocking_delays_everything() {
        let now = Instant::now();
        let mut w = Window::new(5, S);
        w.block_until(now + Duration::from_millis(700));
        assert_eq!(w.earliest(now, 1), Some(now + Duration::from_millis(700)));
    }
}
