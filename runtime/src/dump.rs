//! Seeing inside the runtime: a dump of every coroutine (Go's SIGQUIT goroutine dump), with
//! what each waits on, for how long, where it was spawned, and on request its backtrace.
//!
//! Cost on the hot path: a park writes two words (the packed [`WaitReason`] and the coarse
//! time, a relaxed load of a clock the monitor advances every tick); a resume writes the
//! running coroutine's id where the worker already wrote its tick. Everything else happens
//! when a dump is asked for.
//!
//! Backtraces of parked coroutines: a parked coroutine sits inside the runtime's park
//! function. The dump takes its run right (`PARKED` → `CAPTURING`, see task.rs), resumes it
//! with a "capture your backtrace" request that it answers from `Task::capture_and_suspend`
//! (which `suspend` calls only for that request) before it suspends again, and gives the run
//! right back; a wake-up that arrived meanwhile is honoured then. The coroutine is never woken
//! for real. Running coroutines are reported without a backtrace.

use std::backtrace::Backtrace;
use std::fmt;
use std::net::SocketAddr;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::coroutine::{Coroutine, CoroutineId};
use crate::runtime::{current_shared, Shared};
use crate::task::{Task, TaskState};
use crate::task_ref::TaskRef;

/// What a parked coroutine waits on. Primitives say it with [`crate::Parking::reason`];
/// it is stored packed in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitReason {
    /// `park()`, or a primitive that did not say.
    Park,
    /// A timer: `sleep`, `park_timeout`, a timeout. `until_ms` is the deadline in
    /// milliseconds since the runtime started ([`CoroutineInfo::deadline`] converts it).
    Sleep {
        /// Milliseconds since the runtime's start.
        until_ms: u64,
    },
    /// `JoinHandle::join` on another coroutine.
    Join {
        /// The id of the joined coroutine.
        coroutine: u64,
    },
    /// A socket read, accept or receive.
    Readable {
        /// The file descriptor (socket handle on Windows, truncated).
        fd: i32,
    },
    /// A socket write, connect or send.
    Writable {
        /// The file descriptor.
        fd: i32,
    },
    /// A channel send or receive.
    Channel,
    /// `select!` over several channels.
    Select,
    /// A lock, semaphore, condition variable, barrier or wait group.
    Lock,
    /// The blocking pool (`blocking(f)`).
    Blocking,
}

/// [`WaitReason`] without its data, to ask [`wait_until_parked`] for a kind of wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitKind {
    /// Any wait at all.
    Any,
    /// [`WaitReason::Park`].
    Park,
    /// [`WaitReason::Sleep`].
    Sleep,
    /// [`WaitReason::Join`].
    Join,
    /// [`WaitReason::Readable`].
    Readable,
    /// [`WaitReason::Writable`].
    Writable,
    /// [`WaitReason::Channel`].
    Channel,
    /// [`WaitReason::Select`].
    Select,
    /// [`WaitReason::Lock`].
    Lock,
    /// [`WaitReason::Blocking`].
    Blocking,
}

impl WaitReason {
    /// Its kind.
    pub fn kind(&self) -> WaitKind {
        match self {
            WaitReason::Park => WaitKind::Park,
            WaitReason::Sleep { .. } => WaitKind::Sleep,
            WaitReason::Join { .. } => WaitKind::Join,
            WaitReason::Readable { .. } => WaitKind::Readable,
            WaitReason::Writable { .. } => WaitKind::Writable,
            WaitReason::Channel => WaitKind::Channel,
            WaitReason::Select => WaitKind::Select,
            WaitReason::Lock => WaitKind::Lock,
            WaitReason::Blocking => WaitKind::Blocking,
        }
    }

    /// One word: the kind in the low 8 bits, the data above.
    pub(crate) fn pack(self) -> u64 {
        let (kind, data): (u64, u64) = match self {
            WaitReason::Park => (1, 0),
            WaitReason::Sleep { until_ms } => (2, until_ms),
            WaitReason::Join { coroutine } => (3, coroutine),
            WaitReason::Readable { fd } => (4, u64::from(fd as u32)),
            WaitReason::Writable { fd } => (5, u64::from(fd as u32)),
            WaitReason::Channel => (6, 0),
            WaitReason::Select => (7, 0),
            WaitReason::Lock => (8, 0),
            WaitReason::Blocking => (9, 0),
        };
        kind | (data << 8)
    }

    pub(crate) fn unpack(word: u64) -> Option<WaitReason> {
        let data = word >> 8;
        Some(match word & 0xff {
            1 => WaitReason::Park,
            2 => WaitReason::Sleep { until_ms: data },
            3 => WaitReason::Join { coroutine: data },
            4 => WaitReason::Readable {
                fd: data as u32 as i32,
            },
            5 => WaitReason::Writable {
                fd: data as u32 as i32,
            },
            6 => WaitReason::Channel,
            7 => WaitReason::Select,
            8 => WaitReason::Lock,
            9 => WaitReason::Blocking,
            _ => return None,
        })
    }
}

/// Whether a coroutine runs, waits in a run queue, or is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoroutineState {
    /// On a worker thread right now.
    Running,
    /// In a run queue, waiting for a worker.
    Runnable,
    /// Waiting for an event (see [`CoroutineInfo::wait`]).
    Parked,
}

/// One coroutine in a [`dump`].
#[derive(Debug)]
#[non_exhaustive]
pub struct CoroutineInfo {
    /// Its id.
    pub id: CoroutineId,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// Running, runnable or parked.
    pub state: CoroutineState,
    /// What it waits on (parked coroutines only).
    pub wait: Option<WaitReason>,
    /// How long it has been parked (to the monitor's 5 ms tick).
    pub waiting_for: Option<Duration>,
    /// The deadline of a timer wait.
    pub deadline: Option<Instant>,
    /// For a socket wait, the peer's address where the socket is connected.
    pub peer: Option<SocketAddr>,
    /// Where it was spawned.
    pub spawned_at: &'static Location<'static>,
    /// Its stack, for parked coroutines in [`dump_with_backtraces`].
    pub backtrace: Option<Backtrace>,
}

impl fmt::Display for CoroutineInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "coroutine {}", self.id.as_u64())?;
        if let Some(name) = &self.name {
            write!(f, " \"{name}\"")?;
        }
        match self.state {
            CoroutineState::Running => f.write_str(" [running]")?,
            CoroutineState::Runnable => f.write_str(" [runnable]")?,
            CoroutineState::Parked => {
                f.write_str(" [")?;
                match self.wait {
                    Some(WaitReason::Park) | None => f.write_str("park")?,
                    Some(WaitReason::Sleep { .. }) => {
                        f.write_str("timer")?;
                        if let Some(deadline) = self.deadline {
                            let left = deadline.saturating_duration_since(Instant::now());
                            write!(f, ", fires in {left:?}")?;
                        }
                    }
                    Some(WaitReason::Join { coroutine }) => {
                        write!(f, "join coroutine {coroutine}")?
                    }
                    Some(WaitReason::Readable { fd }) => write!(f, "readable fd {fd}")?,
                    Some(WaitReason::Writable { fd }) => write!(f, "writable fd {fd}")?,
                    Some(WaitReason::Channel) => f.write_str("channel")?,
                    Some(WaitReason::Select) => f.write_str("select")?,
                    Some(WaitReason::Lock) => f.write_str("lock")?,
                    Some(WaitReason::Blocking) => f.write_str("blocking pool")?,
                }
                if let Some(peer) = self.peer {
                    write!(f, " ({peer})")?;
                }
                if let Some(waited) = self.waiting_for {
                    write!(f, ", {} ms", waited.as_millis())?;
                }
                f.write_str("]")?;
            }
        }
        writeln!(f, ":")?;
        writeln!(f, "    spawned at {}", self.spawned_at)?;
        if let Some(backtrace) = &self.backtrace {
            for line in backtrace.to_string().lines() {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

/// Formats a whole dump like Go's goroutine dump: one block per coroutine.
pub struct DumpDisplay<'a>(pub &'a [CoroutineInfo]);

impl fmt::Display for DumpDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for info in self.0 {
            writeln!(f, "{info}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DumpDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Every live coroutine of the calling coroutine's runtime (the default runtime on a plain
/// thread), without backtraces.
///
/// ```
/// let parked = coronet_runtime::spawn(|| coronet_runtime::sleep(std::time::Duration::from_millis(50)));
/// let dump = coronet_runtime::runtime::dump();
/// assert!(dump.iter().any(|c| c.id == parked.coroutine().id()));
/// print!("{}", coronet_runtime::runtime::DumpDisplay(&dump));
/// parked.join().unwrap();
/// ```
pub fn dump() -> Vec<CoroutineInfo> {
    collect(&current_shared(), false)
}

/// Like [`dump`], with the backtrace of every parked coroutine.
pub fn dump_with_backtraces() -> Vec<CoroutineInfo> {
    collect(&current_shared(), true)
}

pub(crate) fn collect(shared: &Arc<Shared>, backtraces: bool) -> Vec<CoroutineInfo> {
    if backtraces {
        // Capturing runs the parked coroutine's code on this thread: it needs an alternate
        // signal stack for the overflow handler like any thread that runs coroutines.
        crate::stack::ensure_altstack();
    }
    let now_ms = shared.coarse_now_ms();
    // Finished tasks whose last references are still held somewhere are not listed.
    let mut tasks = shared.live_tasks();
    tasks.retain(|task| !task.is_finished());
    tasks.sort_by_key(|task| task.id);
    tasks
        .iter()
        .map(|task| info(shared, task, now_ms, backtraces))
        .collect()
}

fn info(shared: &Shared, task: &TaskRef, now_ms: u64, backtraces: bool) -> CoroutineInfo {
    let running = shared.slots.iter().any(|slot| slot.running_id() == task.id);
    let state = match task.state() {
        TaskState::Parked => CoroutineState::Parked,
        TaskState::Active if running => CoroutineState::Running,
        TaskState::Active => CoroutineState::Runnable,
        TaskState::Parking => CoroutineState::Running,
    };
    let parked = state == CoroutineState::Parked;
    let wait = parked
        .then(|| WaitReason::unpack(task.wait.load(std::sync::atomic::Ordering::Relaxed)))
        .flatten();
    let waiting_for = parked.then(|| {
        let since = task.parked_at.load(std::sync::atomic::Ordering::Relaxed);
        Duration::from_millis(now_ms.saturating_sub(since))
    });
    let deadline = match wait {
        Some(WaitReason::Sleep { until_ms }) => {
            Some(shared.epoch + Duration::from_millis(until_ms))
        }
        _ => None,
    };
    let peer = match wait {
        Some(WaitReason::Readable { fd }) | Some(WaitReason::Writable { fd }) => {
            crate::sys::peer_addr(fd)
        }
        _ => None,
    };
    let backtrace = (backtraces && parked)
        .then(|| Task::capture_backtrace(task))
        .flatten();
    CoroutineInfo {
        id: Coroutine::from_task(task.clone()).id(),
        name: task.name.as_deref().map(str::to_owned),
        state,
        wait,
        waiting_for,
        deadline,
        peer,
        spawned_at: task.spawned_at,
        backtrace,
    }
}

/// Test helper: waits until `coroutine` is parked on a wait of `kind` ([`WaitKind::Any`]
/// for any). Returns false if that has not happened within `timeout` (or the coroutine
/// finished). Lets tests order events without sleeping ("make sure the reader is blocked
/// before closing the socket").
///
/// ```
/// use coronet_runtime::runtime::{wait_until_parked, WaitKind};
/// let sleeper = coronet_runtime::spawn(|| coronet_runtime::sleep(std::time::Duration::from_millis(100)));
/// assert!(wait_until_parked(sleeper.coroutine(), WaitKind::Sleep, std::time::Duration::from_secs(60)));
/// sleeper.join().unwrap();
/// ```
pub fn wait_until_parked(coroutine: &Coroutine, kind: WaitKind, timeout: Duration) -> bool {
    let task = coroutine.task();
    let give_up = Instant::now() + timeout;
    let mut spins = 0u32;
    loop {
        if task.state() == TaskState::Parked {
            let wait = WaitReason::unpack(task.wait.load(std::sync::atomic::Ordering::Acquire));
            if kind == WaitKind::Any || wait.map(|w| w.kind()) == Some(kind) {
                return true;
            }
        }
        if task.is_finished() || Instant::now() >= give_up {
            return false;
        }
        spins += 1;
        if spins < 100 {
            crate::coroutine::yield_now();
        } else {
            // Polling, not synchronising: the condition is re-checked every millisecond.
            crate::coroutine::sleep(Duration::from_millis(1));
        }
    }
}
