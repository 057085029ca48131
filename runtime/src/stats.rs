//! Runtime counters for tests, benchmarks and operators.

/// A snapshot of one runtime's counters ([`crate::runtime::stats`], [`crate::Runtime::stats`]).
///
/// Counters are cumulative since the runtime started unless said otherwise; each is read
/// without stopping the runtime, so a snapshot taken under load is approximate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Coroutines spawned and not yet finished.
    pub alive: u64,
    /// Coroutines spawned in total.
    pub spawned: u64,
    /// Coroutines that finished.
    pub completed: u64,
    /// Switches into a coroutine and back (one per resume).
    pub switches: u64,
    /// Successful steals from another worker.
    pub steals: u64,
    /// Parks committed (a coroutine left its worker to wait).
    pub parks: u64,
    /// Returns from `Poller::poll` (by idle workers, the monitor or the poll thread).
    pub polls: u64,
    /// Timers armed and pending now.
    pub timers: usize,
    /// Worker threads running now (configured plus spares).
    pub workers: usize,
    /// Workers asleep now.
    pub idle_workers: usize,
    /// Workers spinning (looking for work) now.
    pub spinning_workers: usize,
    /// Threads of the blocking pool now.
    pub blocking_threads: usize,
    /// Spare workers the monitor started because a worker was stuck in one coroutine.
    pub handoffs: u64,
    /// File descriptors registered with this runtime's poller now.
    pub registered_fds: usize,
    /// Monitor ticks (5 ms) during which a worker kept computing inside one coroutine
    /// without yielding, summed over workers: coroutines that should yield or use `blocking`.
    pub long_runner_ticks: u64,
    /// Coroutine stacks mapped by the process (all runtimes), pooled or in use.
    pub stacks_mapped: usize,
}
