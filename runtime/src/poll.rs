//! The poll thread (g0-style): turns OS readiness events and expired timers into runnable
//! coroutines.
//!
//! Loop: compute the time to the nearest timer (recording it so that arming an earlier timer
//! wakes us, see `Shared::arm_timer`); block in `Poller::poll`; hand each event to the
//! PollDesc registry, which wakes at most one reader and one writer per descriptor; fire due
//! timers. Woken coroutines go to the injector (we are not a worker), and `notify_work`
//! wakes a sleeping worker only when no worker is already spinning, so a burst of events
//! costs one futex wake, and busy workers are never interrupted.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use coronet_poller::Events;

use crate::runtime::Shared;
use crate::timer::TimerAction;

/// Body of the poll thread.
pub(crate) fn poll_main(shared: Arc<Shared>) {
    let mut events = Events::new();
    let mut due = Vec::new();
    while !shared.is_shutdown() {
        let timeout = shared.poll_timeout();
        let result = shared.poller.poll(&mut events, timeout);
        shared.poll_awake();
        shared.polls.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = result {
            // EINTR is retried inside the poller; anything else means the epoll/kqueue
            // descriptor itself is broken and nothing can make progress.
            eprintln!("coronet: fatal: the poller failed: {error}");
            std::process::abort();
        }
        for event in events.iter() {
            shared.io.dispatch(&event);
        }
        shared.expire_timers(&mut due);
        for action in due.drain(..) {
            fire(&shared, action);
        }
    }
}

/// Runs one due timer's action.
pub(crate) fn fire(shared: &Shared, action: TimerAction) {
    match action {
        TimerAction::Wake(waker) => waker.wake(),
        TimerAction::PollDeadline {
            index,
            generation,
            write,
            seq,
        } => shared.io.deadline_fired(index, generation, write, seq),
    }
}
