//! Timers: a binary heap of deadlines over a slab of pending actions.
//!
//! Arming is `O(log n)` and allocation-free in steady state (slab slots are reused); cancelling
//! is `O(1)`: the slot is freed and its heap entry becomes stale (its generation no longer
//! matches). Stale entries are skipped when they reach the top, and the heap is rebuilt when
//! they outnumber live ones, so a program that arms and cancels at a high rate (every
//! `recv_timeout`) keeps the heap at most twice the number of pending timers. A million
//! pending timers cost about 40 MB and `log2(1e6) = 20` comparisons per operation.
//!
//! Rejected alternative: a hierarchical timing wheel (tokio) has O(1) arming but a fixed
//! resolution and a cascading cost; the heap is exact, simple and measured fast enough here
//! (docs/runtime.md). The timers live behind one mutex owned by the runtime; the poller
//! sleeps until the earliest deadline, and arming an earlier one wakes it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::task::Waker;

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    /// Wake a parked coroutine or thread (sleep, park_timeout, recv_timeout).
    Wake(Waker),
    /// A socket deadline: `(poll descriptor index, generation, direction, sequence)`.
    PollDeadline {
        index: u32,
        generation: u32,
        write: bool,
        seq: u64,
    },
}

/// Names one armed timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    slot: u32,
    generation: u32,
}

struct Slot {
    generation: u32,
    action: Option<TimerAction>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    deadline: Instant,
    slot: u32,
    generation: u32,
}

/// The timer set. Not synchronised: the runtime keeps it behind a mutex.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    pending: usize,
}

impl Timers {
    /// Arms a timer; returns its key.
    pub(crate) fn insert(&mut self, deadline: Instant, action: TimerAction) -> TimerKey {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    action: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.action = Some(action);
        let generation = entry.generation;
        self.heap.push(Reverse(Entry {
            deadline,
            slot,
            generation,
        }));
        self.pending += 1;
        TimerKey { slot, generation }
    }

    /// Cancels a timer. Returns true if it was still pending (it will never fire).
    pub(crate) fn cancel(&mut self, key: TimerKey) -> bool {
        let Some(slot) = self.slots.get_mut(key.slot as usize) else {
            return false;
        };
        if slot.generation != key.generation || slot.action.is_none() {
            return false;
        }
        self.release(key.slot);
        if self.heap.len() > 64 && self.heap.len() > 2 * self.pending {
            self.compact();
        }
        true
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_live(top) {
                return Some(top.deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Moves the actions of every timer due at `now` into `out`.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<TimerAction>) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.deadline > now {
                if self.is_live(top) {
                    break;
                }
                self.heap.pop();
                continue;
            }
            let Reverse(entry) = self.heap.pop().expect("peeked");
            if self.is_live(&entry) {
                let action = self.slots[entry.slot as usize].action.take();
                self.release(entry.slot);
                out.extend(action);
            }
        }
    }

    /// Number of armed timers.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Drops every pending action (runtime shutdown).
    pub(crate) fn clear(&mut self) -> Vec<TimerAction> {
        self.heap.clear();
        self.free.clear();
        self.pending = 0;
        self.slots
            .drain(..)
            .filter_map(|slot| slot.action)
            .collect()
    }

    fn is_live(&self, entry: &Entry) -> bool {
        let slot = &self.slots[entry.slot as usize];
        slot.generation == entry.generation && slot.action.is_some()
    }

    fn release(&mut self, slot: u32) {
        let entry = &mut self.slots[slot as usize];
        entry.action = None;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        self.pending -= 1;
    }

    fn compact(&mut self) {
        let heap = std::mem::take(&mut self.heap);
        let live: Vec<_> = heap
            .into_vec()
            .into_iter()
            .filter(|Reverse(entry)| self.is_live(entry))
            .collect();
        self.heap = BinaryHeap::from(live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn deadline_action(seq: u64) -> TimerAction {
        TimerAction::PollDeadline {
            index: 0,
            generation: 0,
            write: false,
            seq,
        }
    }

    fn seq_of(action: &TimerAction) -> u64 {
        match action {
            TimerAction::PollDeadline { seq, .. } => *seq,
            TimerAction::Wake(_) => unreachable!(),
        }
    }

    #[test]
    fn fires_in_deadline_order_and_skips_cancelled() {
        let base = Instant::now();
        let mut timers = Timers::default();
        let late = timers.insert(base + Duration::from_millis(30), deadline_action(3));
        timers.insert(base + Duration::from_millis(10), deadline_action(1));
        let cancelled = timers.insert(base + Duration::from_millis(20), deadline_action(2));
        assert!(timers.cancel(cancelled));
        assert!(!timers.cancel(cancelled), "a second cancel finds nothing");
        assert_eq!(timers.pending(), 2);
        assert_eq!(
            timers.next_deadline(),
            Some(base + Duration::from_millis(10))
        );
        let mut out = Vec::new();
        timers.expire(base + Duration::from_millis(25), &mut out);
        assert_eq!(out.iter().map(seq_of).collect::<Vec<_>>(), vec![1]);
        out.clear();
        timers.expire(base + Duration::from_millis(30), &mut out);
        assert_eq!(out.iter().map(seq_of).collect::<Vec<_>>(), vec![3]);
        assert!(!timers.cancel(late), "fired timers cannot be cancelled");
        assert_eq!(timers.pending(), 0);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn churn_keeps_the_heap_bounded() {
        let base = Instant::now();
        let mut timers = Timers::default();
        for i in 0..100_000u64 {
            let key = timers.insert(base + Duration::from_secs(60), deadline_action(i));
            assert!(timers.cancel(key));
        }
        assert!(
            timers.heap.len() <= 130,
            "heap grew to {}",
            timers.heap.len()
        );
        assert!(timers.slots.len() <= 2);
    }

    #[test]
    fn a_million_pending_timers() {
        let base = Instant::now();
        let mut timers = Timers::default();
        for i in 0..1_000_000u64 {
            timers.insert(base + Duration::from_micros(i % 9973), deadline_action(i));
        }
        assert_eq!(timers.pending(), 1_000_000);
        let mut out = Vec::new();
        timers.expire(base + Duration::from_secs(1), &mut out);
        assert_eq!(out.len(), 1_000_000);
        let mut last = 0;
        for action in &out {
            let micros = seq_of(action) % 9973;
            assert!(micros >= last);
            last = micros;
        }
    }
}
