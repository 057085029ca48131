//! Netpoll: turning OS readiness events and expired timers into runnable coroutines, and who
//! does it.
//!
//! One call, [`poll_once`], is Go's `netpoll(delay)` plus its timer check: block in
//! `Poller::poll` until the nearest timer (or not at all), hand each event to the PollDesc
//! registry (which wakes at most one reader and one writer per descriptor), fire due timers.
//!
//! **Who polls.** At most one thread at a time blocks in the poller: the holder of the *poll
//! token* (`Shared::poll_token`, Go's `sched.lastpoll == 0`). Two layouts:
//!
//! * **Idle workers poll** (the default, Go's design). A worker about to sleep takes the
//!   token if it is free and blocks in `poll` instead of on its parker; the coroutines its
//!   events wake go straight into its own deque and run on the same thread: no hand-off, no
//!   futex wake between the event and the coroutine. When every worker is busy, nobody holds
//!   the token and events wait until a worker runs dry; the monitor (Go's sysmon) polls
//!   without blocking if nobody has for a [`crate::monitor::TICK`], so timers and I/O of a
//!   runtime whose workers all compute are at most that late.
//! * **A dedicated poll thread** (`Builder::poll_thread(true)` or `CORONET_POLL_THREAD=1`):
//!   a g0-style thread holds the token for the runtime's life and hands every woken
//!   coroutine to the workers through the injector. It costs a thread switch per event
//!   batch (measured in docs/performance.md) but never lets I/O wait behind busy workers.
//!
//! **Waking the poller.** A worker blocked in `poll` is also on the idle sleeper list (it is
//! asleep, just somewhere else). `Shared::unpark_worker` sets its parker token and then, if
//! the worker is in the poller (`WorkerSlot::in_poll`), breaks the poll with
//! `Poller::wake`; the worker sets `in_poll`, fences, and checks its parker token before it
//! blocks. By the two SeqCst fences, either the waker sees `in_poll` (and breaks the poll) or
//! the worker sees the token (and does not block). `Idle` wakes the polling sleeper last, so
//! new work goes to a parked worker first and the poller keeps polling.
//!
//! **Timers.** The blocking poller sleeps until the nearest timer and records when it will
//! wake (`Shared::poll_timeout`); arming an earlier timer breaks the poll (`arm_timer`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use coronet_poller::Events;

use crate::runtime::Shared;
use crate::timer::TimerAction;

/// Reusable buffers of one polling thread.
pub(crate) struct PollBuffers {
    events: Events,
    due: Vec<TimerAction>,
}

impl PollBuffers {
    pub(crate) fn new() -> PollBuffers {
        PollBuffers {
            events: Events::new(),
            due: Vec::new(),
        }
    }
}

/// How long a poll may block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PollWait {
    /// Until an event, a wake or the nearest timer (only the token holder).
    UntilTimer,
    /// Not at all: collect what is ready.
    NoWait,
}

/// One netpoll: waits as `wait` says, dispatches the events and fires the due timers.
/// Returns the number of OS events handled. The caller holds the poll token.
pub(crate) fn poll_once(shared: &Shared, buffers: &mut PollBuffers, wait: PollWait) -> usize {
    let result = match wait {
        PollWait::UntilTimer => {
            let timeout = shared.poll_timeout();
            let result = shared.poller.poll(&mut buffers.events, timeout);
            shared.poll_awake();
            result
        }
        PollWait::NoWait => shared
            .poller
            .poll(&mut buffers.events, Some(Duration::ZERO)),
    };
    shared.polls.fetch_add(1, Ordering::Relaxed);
    shared.note_poll();
    if let Err(error) = result {
        // EINTR is retried inside the poller; anything else means the epoll/kqueue
        // descriptor itself is broken and nothing can make progress.
        eprintln!("coronet: fatal: the poller failed: {error}");
        std::process::abort();
    }
    let events = buffers.events.len();
    for event in buffers.events.iter() {
        shared.io.dispatch(&event);
    }
    shared.expire_timers(&mut buffers.due);
    for action in buffers.due.drain(..) {
        fire(shared, action);
    }
    events
}

/// Body of the dedicated poll thread (`Builder::poll_thread(true)`): holds the poll token
/// for the runtime's life. Woken coroutines go to the injector (we are not a worker), and
/// `notify_work` wakes a sleeping worker only when no worker is already spinning, so a burst
/// of events costs one futex wake, and busy workers are never interrupted.
pub(crate) fn poll_thread_main(shared: Arc<Shared>) {
    let mut buffers = PollBuffers::new();
    while !shared.is_shutdown() {
        poll_once(&shared, &mut buffers, PollWait::UntilTimer);
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
