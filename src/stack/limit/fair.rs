//! The fair queue in front of each limit: when calls wait for the same limit (an index and an operation class), a
//! freed turn goes to the highest priority first (`interactive`, then `default`, then `batch`); among the callers
//! waiting at one priority, to the one with the smallest virtual finish tag (weighted fair queuing: while both wait,
//! a caller of weight 3 gets three turns for every one of a caller of weight 1); within one caller, first come, first
//! served. A call of a lower priority that has waited `max_starvation` goes before the higher ones, oldest first, at
//! most one such turn per `max_starvation` per key: lower priorities are slowed, never stopped, and a higher
//! priority's sustained load keeps every other turn.
//!
//! States per key: free (no entry), or held by one call that is taking its turn in the limiter (its reservation,
//! then its wait until the reserved instant), with zero or more calls queued behind it. The holder's [`Turn`] hands
//! the key on when dropped (its request was sent, refused, or the caller went away); a queued call that gives up
//! leaves the queue, or, if the turn had just been handed to it, hands it on. Only the call holding the turn has a
//! reservation in the limiter's windows, so each freed turn is decided here, by priority, not by arrival.
//!
//! Knobs: `limits.max_batch_starvation_ms`, `limits.max_queue_len` (calls queued per key); callers' priorities and
//! weights come with each call ([`crate::call::Caller`]).

use super::rates::OpClass;
use crate::call::{Caller, Priority};
use rustc_hash::FxHashMap as HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What calls queue for: one limit of one index (control-plane calls share the project's, under index "").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueueKey {
    pub index: String,
    pub class: OpClass,
}

/// Why a call got no turn.
#[derive(Debug, PartialEq, Eq)]
pub enum NoTurn {
    /// `max_queue_len` calls wait already, none of a lower priority.
    Full { waiting: usize },
    /// The queue was full and a call of a higher priority took this one's place.
    Displaced,
    /// It waited until `give_up_at` (its deadline, or the queue limit) behind this many calls.
    GaveUp { ahead: usize },
}

#[derive(Default)]
struct KeyQueue {
    waiting: Vec<Waiter>,
    /// Per priority (indexed by `Priority as usize`): the finish tag of the last call served, the virtual clock.
    clock: [f64; 3],
    /// Per caller and priority: the finish tag of its last queued call.
    last_finish: HashMap<(&'static str, Priority), f64>,
    /// When a starved call of a lower priority last went before higher ones: at most one such turn per
    /// `max_starvation`, so that under a higher priority's sustained load the lower ones progress and it keeps the
    /// rest.
    last_relief: Option<Instant>,
}

struct Waiter {
    seq: u64,
    priority: Priority,
    tag: f64,
    since: Instant,
    tx: oneshot::Sender<Answer>,
}

/// What a queued call is told.
#[derive(Debug, PartialEq)]
enum Answer {
    /// The turn is the call's; `pace_from` as in [`Turn::pace_from`].
    Turn { pace_from: Option<Instant> },
    /// A call of a higher priority took its place in a full queue.
    Displaced,
}

/// Every key's queue. Keys exist only while held, so memory follows the calls waiting.
pub struct FairQueues {
    keys: Mutex<HashMap<QueueKey, KeyQueue>>,
    next_seq: std::sync::atomic::AtomicU64,
}

impl Default for FairQueues {
    fn default() -> Self {
        FairQueues {
            keys: Mutex::new(HashMap::default()),
            next_seq: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// The right to take the key's next turn; dropping it hands the key to the next call.
pub struct Turn {
    /// Whether the call waited in the queue for it.
    pub queued: bool,
    /// When the previous holder, which had waited for the limit, was due to be sent: the limit layer paces this
    /// call's request one spacing of the limit after it, so that while the limit binds, turns come evenly rather than
    /// in the bursts in which a sliding window frees them (and a newly arrived higher priority never waits long for
    /// one). Counted from when it was due, not from when it woke, so that timer delays do not add up. None when the
    /// limit did not bind.
    pub pace_from: Option<Instant>,
    /// Set by [`Turn::bound`]: when this holder, which waited for the limit, was due to be sent.
    due: Option<Instant>,
    queues: Arc<FairQueues>,
    key: Option<QueueKey>,
    max_starvation: Duration,
}

impl Turn {
    /// Says that this holder had to wait for the limit (it binds), and when it was due: the next holder is paced.
    pub fn bound(&mut self, due: Instant) {
        self.due = Some(due);
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.queues.hand_on(key, self.max_starvation, self.due);
        }
    }
}

/// A queued call, until it has its turn: dropped early (the caller went away, or gave up), it leaves the queue, or
/// hands on the turn it was just given.
struct Queued<'a> {
    queues: &'a Arc<FairQueues>,
    key: &'a QueueKey,
    seq: u64,
    max_starvation: Duration,
    rx: oneshot::Receiver<Answer>,
    /// The call has read its answer (turn or displacement) and acted on it.
    answered: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let mut keys = self.queues.lock();
        let queued = keys.get_mut(self.key).and_then(|q| {
            let at = q.waiting.iter().position(|w| w.seq == self.seq)?;
            Some(q.waiting.remove(at))
        });
        drop(keys);
        // Not queued any more: its answer was sent under the lock just taken, so it is here to read. A turn handed
        // to this call as it gave up goes on to the next; a displacement needs nothing.
        if queued.is_none()
            && let Ok(Answer::Turn { pace_from }) = self.rx.try_recv()
        {
            // Not paced itself, the next holder is paced from when this one would have been due.
            self.queues
                .hand_on(self.key.clone(), self.max_starvation, pace_from);
        }
    }
}

impl FairQueues {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<QueueKey, KeyQueue>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the key's turn, in priority and fair-share order, until `give_up_at`.
    pub async fn turn(
        self: &Arc<Self>,
        key: QueueKey,
        caller: &Caller,
        give_up_at: Instant,
        max_queue_len: usize,
        max_starvation: Duration,
    ) -> Result<Turn, NoTurn> {
        let seq = self
            .next_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rx = {
            let mut keys = self.lock();
            let Some(q) = keys.get_mut(&key) else {
                keys.insert(key.clone(), KeyQueue::default());
                return Ok(Turn {
                    queued: false,
                    pace_from: None,
                    due: None,
                    queues: self.clone(),
                    key: Some(key),
                    max_starvation,
                });
            };
            if q.waiting.len() >= max_queue_len {
                // A full queue makes room for a higher priority: the newest call of the lowest priority below it
                // leaves (refused, as it would have been had it come last).
                let lower = q
                    .waiting
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| w.priority < caller.priority)
                    .min_by_key(|(_, w)| (w.priority, std::cmp::Reverse(w.seq)))
                    .map(|(i, _)| i);
                let Some(at) = lower else {
                    return Err(NoTurn::Full {
                        waiting: q.waiting.len(),
                    });
                };
                let _ = q.waiting.remove(at).tx.send(Answer::Displaced);
            }
            let level = caller.priority as usize;
            let last = q
                .last_finish
                .entry((caller.label, caller.priority))
                .or_insert(0.0);
            let tag = last.max(q.clock[level]) + 1.0 / f64::from(caller.weight.max(1));
            *last = tag;
            let (tx, rx) = oneshot::channel();
            q.waiting.push(Waiter {
                seq,
                priority: caller.priority,
                tag,
                since: Instant::now(),
                tx,
            });
            rx
        };
        let mut queued = Queued {
            queues: self,
            key: &key,
            seq,
            max_starvation,
            rx,
            answered: false,
        };
        match tokio::time::timeout_at(give_up_at, &mut queued.rx).await {
            Ok(Ok(Answer::Displaced)) => {
                queued.answered = true;
                Err(NoTurn::Displaced)
            }
            Ok(Ok(Answer::Turn { pace_from })) => {
                queued.answered = true;
                drop(queued);
                Ok(Turn {
                    queued: true,
                    pace_from,
                    due: None,
                    queues: self.clone(),
                    key: Some(key),
                    max_starvation,
                })
            }
            // The sender is only dropped with the queue, which is never dropped while this call waits in it.
            Ok(Err(_)) | Err(_) => {
                let ahead = self.lock().get(&key).map_or(0, |q| {
                    q.waiting
                        .iter()
                        .filter(|w| w.priority >= caller.priority && w.seq < seq)
                        .count()
                });
                drop(queued);
                Err(NoTurn::GaveUp { ahead })
            }
        }
    }

    /// Calls queued for `key` now.
    pub fn waiting(&self, key: &QueueKey) -> usize {
        self.lock().get(key).map_or(0, |q| q.waiting.len())
    }

    /// Gives the key's turn to the next call, or frees the key when none waits.
    fn hand_on(&self, key: QueueKey, max_starvation: Duration, due: Option<Instant>) {
        let mut keys = self.lock();
        let Some(q) = keys.get_mut(&key) else {
            return;
        };
        let now = Instant::now();
        let relief = q
            .last_relief
            .is_none_or(|t| now.saturating_duration_since(t) >= max_starvation);
        let Some((at, starved)) = next(&q.waiting, now, max_starvation, relief) else {
            keys.remove(&key);
            return;
        };
        if starved {
            q.last_relief = Some(now);
        }
        let w = q.waiting.remove(at);
        let level = w.priority as usize;
        q.clock[level] = q.clock[level].max(w.tag);
        if q.waiting.is_empty() {
            // Nobody waits: no caller keeps credit or debt for later.
            q.last_finish.clear();
        }
        // A receiver already gone belongs to a call being dropped right now: its `Queued` finds itself served
        // and hands the turn on.
        let _ = w.tx.send(Answer::Turn { pace_from: due });
    }
}

/// Which waiting call takes the turn, and whether it is a starved one: the highest priority's smallest tag, unless
/// `relief` allows a call of a lower priority that has waited `max_starvation` (then the oldest such call). Within
/// one priority the tags alone decide: a caller of small weight waits longer by design; the bound is about priorities.
fn next(
    waiting: &[Waiter],
    now: Instant,
    max_starvation: Duration,
    relief: bool,
) -> Option<(usize, bool)> {
    let (best, top) = waiting.iter().enumerate().max_by(|(_, a), (_, b)| {
        a.priority
            .cmp(&b.priority)
            .then(b.tag.total_cmp(&a.tag))
            .then(b.seq.cmp(&a.seq))
    })?;
    let starved = waiting
        .iter()
        .enumerate()
        .filter(|(_, w)| {
            relief
                && w.priority < top.priority
                && now.saturating_duration_since(w.since) >= max_starvation
        })
        .min_by_key(|(_, w)| (w.since, w.seq))
        .map(|(i, _)| (i, true));
    Some(starved.unwrap_or((best, false)))
}

#[cfg(test)]
mod tests;
