//! The runtime's platform code, in one place (stacks have their own in `stack/sys/`).
//!
//! The one platform switch: `unix.rs` or `windows.rs`, which export the same items:
//!
//! * `CpuClock`: per-thread CPU clocks, for the monitor to tell a worker *blocked* in a
//!   syscall (its CPU time stands still: start a spare worker) from one *busy* in a long
//!   computation (its CPU time advances: a spare thread would only oversubscribe the cores).
//!   Where a platform has none, the monitor treats a stuck worker as blocked, the
//!   conservative choice.
//! * `peer_addr(fd)`: the peer address of a socket, for the dump.
//! * `install_dump_signal()`: the trigger of the opt-in dump (SIGQUIT on Unix, Ctrl-Break on
//!   Windows). It only sets [`DUMP_REQUESTED`]; the monitor prints the dump.
//! * `prefault(start, len)`: backs a fresh allocation with memory in one call instead of one
//!   page fault per page (Linux: `MADV_POPULATE_WRITE`); a hint, a no-op elsewhere. The
//!   control-block pool uses it for each new chunk, which it carves from start to end.

use std::sync::atomic::AtomicBool;

#[cfg_attr(unix, path = "unix.rs")]
#[cfg_attr(windows, path = "windows.rs")]
mod imp;

pub(crate) use imp::{install_dump_signal, peer_addr, prefault, CpuClock};

/// Set by the dump trigger (signal or console handler); consumed by the monitor thread, which
/// prints the dump.
pub(crate) static DUMP_REQUESTED: AtomicBool = AtomicBool::new(false);
