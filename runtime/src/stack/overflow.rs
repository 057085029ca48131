//! Stack-overflow diagnosis: who owns each stack slot, and the message that names the
//! coroutine whose guard page was hit.
//!
//! Protocol:
//!
//! 1. At runtime start, [`install_overflow_handler`] installs the platform's fault handler
//!    once per process: a SIGSEGV/SIGBUS handler on Unix (`overflow/unix.rs`), a vectored
//!    exception handler on Windows (`overflow/windows.rs`). Faults that are not a coroutine's
//!    overflow go on to whatever handled them before, which keeps std's
//!    "thread 'main' has overflowed its stack".
//! 2. Each worker thread calls [`ensure_altstack`], so the handler has a stack to run on when
//!    the faulting one is exhausted (Unix: an alternate signal stack; Windows: nothing to do,
//!    the kernel leaves the stack's guarantee for the handler).
//! 3. At the coroutine's first run, [`set_owner_name`] records the coroutine's id and name in
//!    the slot's [`Owner`] (atomics only: the handler reads them without locks).
//! 4. On a fault, the handler looks the address up in the append-only chunk list
//!    ([`super::find_guard`]). A guard hit: [`report_overflow`] writes
//!    `coroutine '<name>' (id N) has overflowed its stack (stack size S bytes)`, mirroring
//!    Rust's message for threads, and aborts.
//!
//! The message is built without allocating or locking, numbers formatted by hand into a
//! stack buffer, so it can run in a signal handler.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{sys, Chunk, PooledStack};

// The one platform switch of the overflow handler.
#[cfg_attr(unix, path = "overflow/unix.rs")]
#[cfg_attr(windows, path = "overflow/windows.rs")]
mod imp;

pub(crate) use imp::{ensure_altstack, install_overflow_handler};

/// Bytes of a coroutine name kept for the overflow message (longer names are truncated).
const NAME_BYTES: usize = 48;
const NAME_WORDS: usize = NAME_BYTES / 8;

/// The owner of one stack slot, readable from the signal handler.
///
/// Written by [`set_owner_name`] while the stack is not running (at the coroutine's first
/// run, before its first resume), read by the handler when it overflows. Fields are atomics
/// so a concurrent read is never UB; a name torn by a racing rewrite of the slot would only
/// garble the message.
pub(super) struct Owner {
    /// The coroutine id. Stored last with Release; the handler's Acquire load pairs with it.
    id: AtomicU64,
    /// 0: never set; 1: no name; `n + 2`: a name of `n` bytes in `name`.
    name_len: AtomicU64,
    /// The name's bytes, eight per word in native order.
    name: [AtomicU64; NAME_WORDS],
}

impl Owner {
    pub(super) fn new() -> Owner {
        Owner {
            id: AtomicU64::new(0),
            name_len: AtomicU64::new(0),
            name: Default::default(),
        }
    }

    pub(super) fn set(&self, id: u64, name: Option<&str>) {
        let bytes = name.map(|name| {
            let mut end = name.len().min(NAME_BYTES);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            &name.as_bytes()[..end]
        });
        if let Some(bytes) = bytes {
            for (word, chunk) in self.name.iter().zip(bytes.chunks(8)) {
                let mut buf = [0u8; 8];
                buf[..chunk.len()].copy_from_slice(chunk);
                // Relaxed: published by the Release store of `id` below.
                word.store(u64::from_ne_bytes(buf), Ordering::Relaxed);
            }
        }
        let len = bytes.map_or(1, |b| b.len() as u64 + 2);
        self.name_len.store(len, Ordering::Relaxed);
        self.id.store(id, Ordering::Release);
    }

    /// Reads the owner: `None` if never set, else the id and the name's length in `name`
    /// (`None` for an unnamed coroutine). Signal-safe.
    pub(super) fn get(&self, name: &mut [u8; NAME_BYTES]) -> Option<(u64, Option<usize>)> {
        // Acquire: pairs with the Release store in `set`, so the name words are those written
        // before this id (unless a later `set` is racing, which only tears the name).
        let id = self.id.load(Ordering::Acquire);
        let len = self.name_len.load(Ordering::Relaxed);
        if len == 0 {
            return None;
        }
        for (word, chunk) in self.name.iter().zip(name.chunks_mut(8)) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        let len = (len as usize).checked_sub(2).map(|n| n.min(NAME_BYTES));
        Some((id, len))
    }
}

/// Records which coroutine runs on `stack`, for the overflow message: its `id` and its `name`
/// (truncated to 48 bytes at a character boundary). Lock-free; call before the coroutine runs.
pub(crate) fn set_owner_name(stack: &PooledStack, id: u64, name: Option<&str>) {
    stack.owner().set(id, name);
}

/// Writes the overflow message for `slot` of `chunk` to stderr and aborts. Signal-safe.
pub(super) fn report_overflow(chunk: &Chunk, slot: usize) -> ! {
    let mut name = [0u8; NAME_BYTES];
    let owner = chunk.owners[slot].get(&mut name);
    let mut msg = Message::new();
    msg.push(b"\ncoroutine '");
    match owner {
        Some((_, Some(len))) => msg.push(&name[..len]),
        Some((_, None)) => msg.push(b"<unnamed>"),
        None => msg.push(b"<unknown>"),
    }
    msg.push(b"'");
    if let Some((id, _)) = owner {
        msg.push(b" (id ");
        msg.push_decimal(id);
        msg.push(b")");
    }
    msg.push(b" has overflowed its stack (stack size ");
    msg.push_decimal(chunk.stack_size() as u64);
    msg.push(b" bytes)\nfatal runtime error: stack overflow, aborting\n");
    sys::write_stderr_raw(&msg.buf[..msg.len]);
    // std's abort is libc's abort(3) on Unix (async-signal-safe) and a fail-fast on Windows.
    std::process::abort()
}

/// A fixed-size message buffer (no allocation in a signal handler). Overlong text is cut.
struct Message {
    buf: [u8; 256],
    len: usize,
}

impl Message {
    fn new() -> Message {
        Message {
            buf: [0; 256],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn push_decimal(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.push(&digits[start..]);
    }
}
