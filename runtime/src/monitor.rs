//! The monitor thread (Go's sysmon): keeps ready coroutines running when a worker is stuck.
//!
//! Rust cannot preempt a coroutine safely, so a coroutine that blocks its thread (a blocking
//! syscall, `std::thread::sleep`, a long loop) holds its worker. Every [`TICK`] the monitor
//! looks at each worker's tick counter; a worker inside the same coroutine for two ticks in a
//! row is *stuck*. If work is waiting, the monitor first wakes a sleeping worker (it will
//! steal the stuck worker's queue); if none sleeps and a stuck worker is *blocked* (its
//! thread's CPU clock stood still during the tick and, where the OS tells, the thread is
//! asleep in the kernel rather than waiting for a CPU: a blocking syscall, `thread::sleep`), it
//! starts a spare worker thread in a free slot (a *hand-off*, counted in stats). A stuck
//! worker that is *busy* computing gets no spare: every core is already working, and another
//! thread would only oversubscribe them (Go would preempt it; Rust cannot). Such long runners
//! are counted in stats. Spares retire when no worker is stuck and they find no work. The
//! stuck worker itself continues when its coroutine returns control.
//!
//! The monitor is also the netpoll of last resort (Go's sysmon "poll network if not polled
//! for more than 10 ms"): when idle workers poll (poll.rs) and all of them are busy, nobody
//! holds the poll token; if no poll returned during the last tick, the monitor polls once
//! without blocking and fires due timers, and the coroutines this wakes go to the injector.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::poll::{poll_once, PollBuffers, PollWait};
use crate::runtime::Shared;
use crate::worker::{worker_main, WorkerSlot};

/// How often the monitor looks.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// Idle stacks the monitor decommits per tick at most.
const TRIM_PER_TICK: usize = 16_384;

/// Body of the monitor thread.
pub(crate) fn monitor_main(shared: Arc<Shared>) {
    let mut last_ticks: Vec<u64> = vec![0; shared.slots.len()];
    let mut last_cpu: Vec<Option<u64>> = vec![None; shared.slots.len()];
    let mut spares: Vec<thread::JoinHandle<()>> = Vec::new();
    let mut next_trace = shared.config.schedtrace.map(|every| Instant::now() + every);
    let mut poll_buffers = PollBuffers::new();
    while !shared.is_shutdown() {
        thread::sleep(TICK);
        shared.tick_coarse_clock();
        if shared.workers_poll()
            && shared.ms_since_last_poll() >= TICK.as_millis() as u64
            && shared.try_take_poll_token()
        {
            poll_once(&shared, &mut poll_buffers, PollWait::NoWait);
            shared.release_poll_token();
            // A worker that went to sleep while we held the token slept on its parker, and
            // then nobody blocks in the poller: wake one, it will take the token when it
            // finds nothing to do.
            if shared.idle.sleeping() > 0 {
                shared.notify_work();
            }
        }
        // Give stacks that stayed idle beyond the warm reserve back to the kernel, a bounded
        // batch at a time (about 1 us each).
        crate::stack::trim(TRIM_PER_TICK);
        spares.retain(|handle| !handle.is_finished());
        report(&shared, &mut next_trace);
        let (mut stuck, mut blocked) = (0, 0);
        for (index, slot) in shared.slots.iter().enumerate() {
            let ticks = slot.ticks.load(Ordering::Relaxed);
            let same = ticks == last_ticks[index];
            last_ticks[index] = ticks;
            let cpu = cpu_nanos(slot);
            let ran = match (last_cpu[index], cpu) {
                (Some(before), Some(now)) => {
                    now.saturating_sub(before) >= TICK.as_nanos() as u64 / 2
                }
                _ => false,
            };
            last_cpu[index] = cpu;
            let is_stuck = same && slot.active.load(Ordering::Acquire) && slot.running_id() != 0;
            slot.replaced.store(is_stuck, Ordering::Relaxed);
            stuck += usize::from(is_stuck);
            // A thread that did not get the CPU because others had it (state R) is not blocked
            // either: on an oversubscribed machine a spare would only add to the queue.
            blocked += usize::from(is_stuck && !ran && thread_runnable(slot) != Some(true));
        }
        shared.stuck_workers.store(stuck, Ordering::Relaxed);
        shared
            .long_runners
            .fetch_add((stuck - blocked) as u64, Ordering::Relaxed);
        if stuck == 0 || !work_waiting(&shared) {
            continue;
        }
        if shared.idle.sleeping() > 0 {
            shared.notify_work();
            continue;
        }
        if blocked > 0 {
            if let Some(handle) = start_spare(&shared) {
                spares.push(handle);
            }
        }
    }
    for handle in spares {
        let _ = handle.join();
    }
}

/// The opt-in reports: the SIGQUIT dump and schedtrace lines, printed from this thread (the
/// signal handler only set a flag).
fn report(shared: &Arc<Shared>, next_trace: &mut Option<Instant>) {
    if shared.config.dump_signal && crate::sys::DUMP_REQUESTED.swap(false, Ordering::SeqCst) {
        let dump = crate::dump::collect(shared, true);
        let mut text = format!(
            "coronet {}: dump of {} coroutine(s) (SIGQUIT)\n\n",
            shared.config.name,
            dump.len()
        );
        text.push_str(&crate::dump::DumpDisplay(&dump).to_string());
        eprint!("{text}");
    }
    if let (Some(at), Some(every)) = (*next_trace, shared.config.schedtrace) {
        if Instant::now() >= at {
            eprintln!("{}", shared.schedtrace_line());
            *next_trace = Some(at + every);
        }
    }
}

/// The CPU time of the thread running `slot`, if known.
fn cpu_nanos(slot: &WorkerSlot) -> Option<u64> {
    // The worker clears its clock under this lock before its thread exits.
    let clock = slot.cpu_clock.lock().unwrap_or_else(|e| e.into_inner());
    clock.as_ref().and_then(|clock| clock.nanos())
}

/// Whether the thread running `slot` is on a CPU or waiting for one, if known.
fn thread_runnable(slot: &WorkerSlot) -> Option<bool> {
    let clock = slot.cpu_clock.lock().unwrap_or_else(|e| e.into_inner());
    clock.as_ref().and_then(|clock| clock.is_runnable())
}

fn work_waiting(shared: &Shared) -> bool {
    !shared.injector.is_empty() || shared.started_slots().iter().any(|slot| slot.has_work())
}

/// Starts a spare worker in a free slot; counts the hand-off.
fn start_spare(shared: &Arc<Shared>) -> Option<thread::JoinHandle<()>> {
    let index = (shared.config.workers..shared.slots.len()).find(|&index| {
        shared.slots[index]
            .active
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    })?;
    shared.note_slot_started(index);
    shared.spare_running.fetch_add(1, Ordering::Relaxed);
    shared.handoffs.fetch_add(1, Ordering::Relaxed);
    let spare_shared = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("{}-spare-{index}", shared.config.name))
        .spawn(move || {
            worker_main(spare_shared.clone(), index);
            spare_shared.spare_running.fetch_sub(1, Ordering::Relaxed);
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(_) => {
            shared.slots[index].active.store(false, Ordering::Release);
            shared.spare_running.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}
