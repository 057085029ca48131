//! The IOCP backend (Windows): readiness through AFD poll requests, as wepoll and the
//! `polling` crate do it.
//!
//! IOCP reports *completed operations*, not readiness. The Winsock driver (AFD) has a poll
//! ioctl that completes when a socket becomes ready, so the backend opens `\Device\Afd`,
//! associates it with a completion port, and keeps one `IOCTL_AFD_POLL` request in flight
//! per socket:
//!
//! * `new`: `CreateIoCompletionPort`, `NtCreateFile(\Device\Afd\Coronet)` associated with
//!   the port (`FILE_SKIP_SET_EVENT_ON_HANDLE`).
//! * `register`: finds the base provider socket (`SIO_BASE_HANDLE`, then the BSP ioctls
//!   for sockets wrapped by a layered provider), boxes a `SockState` (the poll request's
//!   `IO_STATUS_BLOCK` and `AFD_POLL_INFO`, which the kernel writes while the request is
//!   pending, so they must not move) and issues the first request.
//! * `deregister`: cancels the request in flight (`NtCancelIoFileEx`); the state is freed
//!   when the cancelled request's completion arrives, never earlier.
//! * `select`: `GetQueuedCompletionStatusEx` (milliseconds, rounded up); each completion is
//!   translated and its socket re-armed with a new request.
//! * `wake`: `PostQueuedCompletionStatus` with the reserved completion key `WAKE_KEY`.
//!
//! Edge-triggering is emulated at the granularity of one poll: a completion is reported
//! once and the socket re-armed at once, so a socket that *stays* ready is reported again
//! by the next poll. No event is lost and spurious ones are allowed by the contract, but a
//! socket kept writable makes every poll return (see `docs/poller.md`).
//!
//! Locking: the socket table and every `SockState` field the program touches are guarded by
//! `Selector::inner`. While a request is pending the kernel owns the state's `iosb` and
//! `info`; the program reads them only after their completion was dequeued.

use std::collections::HashMap;
use std::ffi::c_void;
use std::io;
use std::mem::{self, size_of};
use std::os::windows::io::RawSocket;
use std::ptr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::{NtCancelIoFileEx, NtCreateFile, FILE_OPEN};
use windows_sys::Wdk::System::IO::NtDeviceIoControlFile;
use windows_sys::Win32::Foundation::{
    CloseHandle, RtlNtStatusToDosError, HANDLE, INVALID_HANDLE_VALUE, NTSTATUS, STATUS_CANCELLED,
    STATUS_PENDING, STATUS_SUCCESS, UNICODE_STRING, WAIT_TIMEOUT,
};
use windows_sys::Win32::Networking::WinSock::{
    WSAIoctl, INVALID_SOCKET, SIO_BASE_HANDLE, SIO_BSP_HANDLE_POLL, SIO_BSP_HANDLE_SELECT, SOCKET,
    SOCKET_ERROR,
};
use windows_sys::Win32::Storage::FileSystem::{
    SetFileCompletionNotificationModes, FILE_SHARE_READ, FILE_SHARE_WRITE, SYNCHRONIZE,
};
use windows_sys::Win32::System::Threading::INFINITE;
use windows_sys::Win32::System::WindowsProgramming::FILE_SKIP_SET_EVENT_ON_HANDLE;
use windows_sys::Win32::System::IO::{
    CreateIoCompletionPort, GetQueuedCompletionStatusEx, PostQueuedCompletionStatus,
    IO_STATUS_BLOCK, OVERLAPPED_ENTRY,
};

use crate::flags::afd::{event_from_afd, AFD_POLL_LOCAL_CLOSE, INTEREST};
use crate::{Event, Token};

/// A socket.
pub type RawSource = RawSocket;

/// The AFD poll set used here does not include out-of-band data.
pub(crate) const REPORTS_PRIORITY: bool = false;

/// The ioctl that polls sockets (`afd.h`).
const IOCTL_AFD_POLL: u32 = 0x0001_2024;
/// The completion key of AFD's completions.
const AFD_KEY: usize = 0;
/// The completion key of the packets `wake` posts.
const WAKE_KEY: usize = usize::MAX;
/// The device we open; the part after `\Device\Afd\` is free (a name for debuggers).
const AFD_NAME: &[u16] = &ascii_to_utf16(b"\\Device\\Afd\\Coronet");

/// The buffer `GetQueuedCompletionStatusEx` fills.
pub(crate) struct RawEvents {
    entries: Vec<OVERLAPPED_ENTRY>,
}

// SAFETY: completion entries are plain data; their pointers are only compared and
// dereferenced by `select`, under the selector's lock, so the buffer may change threads.
unsafe impl Send for RawEvents {}
// SAFETY: as for `Send`; shared references only read integers.
unsafe impl Sync for RawEvents {}

impl RawEvents {
    pub(crate) fn with_capacity(cap: usize) -> RawEvents {
        RawEvents {
            entries: Vec::with_capacity(cap),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.entries.capacity()
    }
}

/// `AFD_POLL_HANDLE_INFO`.
#[repr(C)]
struct AfdPollHandleInfo {
    handle: HANDLE,
    events: u32,
    status: NTSTATUS,
}

/// `AFD_POLL_INFO` with room for one handle.
#[repr(C)]
struct AfdPollInfo {
    timeout: i64,
    number_of_handles: u32,
    exclusive: u32,
    handles: [AfdPollHandleInfo; 1],
}

/// One registered socket. `iosb` comes first: the completion hands back its address (the
/// request's APC context), which is therefore the address of the whole state.
#[repr(C)]
struct SockState {
    iosb: IO_STATUS_BLOCK,
    info: AfdPollInfo,
    base: RawSocket,
    token: usize,
    /// A request is in flight: the kernel owns `iosb` and `info`, and one completion
    /// packet will arrive for it.
    pending: bool,
    /// Deregistered while pending: whoever dequeues the completion frees the state.
    deleted: bool,
}

/// The socket table, behind the selector's lock.
struct Inner {
    sockets: HashMap<RawSocket, *mut SockState>,
    /// Requests in flight (registered or deleted): completions still to come.
    pending: usize,
}

/// A completion port and the AFD device it serves.
pub(crate) struct Selector {
    port: HANDLE,
    afd: HANDLE,
    inner: Mutex<Inner>,
}

// SAFETY: the handles may be used from any thread, and the `SockState` pointers in the
// table are only dereferenced with `inner` locked (or in `drop`, with `&mut self`).
unsafe impl Send for Selector {}
// SAFETY: as for `Send`: every access to shared state goes through the mutex.
unsafe impl Sync for Selector {}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        // SAFETY: a new port: no file handle, no existing port, key 0, default threads.
        let port = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, ptr::null_mut(), 0, 0) };
        if port.is_null() {
            return Err(io::Error::last_os_error());
        }
        match open_afd(port) {
            Ok(afd) => Ok(Selector {
                port,
                afd,
                inner: Mutex::new(Inner {
                    sockets: HashMap::new(),
                    pending: 0,
                }),
            }),
            Err(error) => {
                // SAFETY: `port` is ours and used by nothing else.
                unsafe { CloseHandle(port) };
                Err(error)
            }
        }
    }

    pub(crate) fn register(&self, socket: RawSocket, token: Token) -> io::Result<()> {
        let base = base_socket(socket)?;
        let mut inner = self.lock();
        if let Some(&old) = inner.sockets.get(&socket) {
            // SAFETY: table entries are live states, and the lock is held.
            if unsafe { (*old).pending } {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the socket is already registered",
                ));
            }
            // A socket closed without deregistering (its request completed with
            // LOCAL_CLOSE) whose handle value was reused: forget the old state.
            inner.sockets.remove(&socket);
            // SAFETY: not pending, so the kernel no longer uses it, and it left the table.
            drop(unsafe { Box::from_raw(old) });
        }
        let state = Box::into_raw(Box::new(SockState {
            // SAFETY: IO_STATUS_BLOCK is an integer union and an integer: zero is valid.
            iosb: unsafe { mem::zeroed() },
            info: empty_poll_info(),
            base,
            token: token.0,
            pending: false,
            deleted: false,
        }));
        // SAFETY: `state` is a fresh, live, not pending state and the lock is held.
        if let Err(status) = unsafe { self.submit(state, &mut inner) } {
            // SAFETY: the request failed synchronously: no completion will name `state`.
            drop(unsafe { Box::from_raw(state) });
            return Err(nt_error(status));
        }
        inner.sockets.insert(socket, state);
        Ok(())
    }

    pub(crate) fn deregister(&self, socket: RawSocket) -> io::Result<()> {
        let mut inner = self.lock();
        let Some(state) = inner.sockets.remove(&socket) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the socket is not registered",
            ));
        };
        // SAFETY: the state was in the table, so it is live, and the lock is held.
        unsafe {
            if (*state).pending {
                (*state).deleted = true;
                self.cancel(state);
            } else {
                drop(Box::from_raw(state));
            }
        }
        Ok(())
    }

    /// Waits once; appends the caller's events to `out` and says whether the wake-up fired.
    pub(crate) fn select(
        &self,
        raw: &mut RawEvents,
        out: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        raw.entries.clear();
        let max = u32::try_from(raw.entries.capacity()).unwrap_or(u32::MAX);
        let mut n = 0u32;
        // SAFETY: the port writes at most `max` entries into the buffer, whose capacity is
        // at least `max`, and their count into the live local `n`.
        let ok = unsafe {
            GetQueuedCompletionStatusEx(
                self.port,
                raw.entries.as_mut_ptr(),
                max,
                &mut n,
                timeout_ms(timeout),
                0,
            )
        };
        if ok == 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(code) if code as u32 == WAIT_TIMEOUT => Ok(false),
                _ => Err(error),
            };
        }
        // SAFETY: the port initialised the first `n` entries, and `n <= max`.
        unsafe { raw.entries.set_len(n as usize) };

        let mut woken = false;
        let mut inner = self.lock();
        for entry in &raw.entries {
            if entry.lpCompletionKey == WAKE_KEY {
                woken = true;
            } else if entry.lpCompletionKey == AFD_KEY && !entry.lpOverlapped.is_null() {
                // SAFETY: AFD completions carry the APC context `submit` passed: a state
                // that stays allocated until this, its one completion, is processed; the
                // lock is held.
                unsafe { self.complete(entry.lpOverlapped.cast(), &mut inner, out) };
            }
        }
        Ok(woken)
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        // SAFETY: posts a packet with no OVERLAPPED; `select` recognises it by its key.
        if unsafe { PostQueuedCompletionStatus(self.port, 0, WAKE_KEY, ptr::null()) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Handles the completion of `state`'s request: frees a deleted state, reports the
    /// socket's readiness and issues the next request (the edge emulation).
    ///
    /// # Safety
    ///
    /// `state` is a live state whose request has just completed (its one completion packet
    /// was dequeued), and `inner` is the locked table.
    unsafe fn complete(&self, state: *mut SockState, inner: &mut Inner, out: &mut Vec<Event>) {
        // SAFETY: the caller guarantees `state` is live and no longer used by the kernel;
        // the lock it holds guards the fields.
        unsafe {
            (*state).pending = false;
            inner.pending -= 1;
            if (*state).deleted {
                drop(Box::from_raw(state));
                return;
            }
            let token = (*state).token;
            let status = (*state).iosb.Anonymous.Status;
            let info = &(*state).info;
            if status == STATUS_CANCELLED {
                // Not cancelled by us (we cancel only deleted states): re-arm silently.
            } else if status < 0 {
                // The request failed (the socket is gone, say): report it so the waiters
                // retry their calls and see the error; a new request would fail the same way.
                out.push(event_from_afd(status, 0, token));
                return;
            } else if info.number_of_handles > 0 {
                let events = info.handles[0].events;
                if events & AFD_POLL_LOCAL_CLOSE != 0 {
                    // Closed without deregistering: nothing to report, nothing to re-arm.
                    return;
                }
                let event = event_from_afd(status, events, token);
                if event != Event::new(Token(token), 0) {
                    out.push(event);
                }
            }
            if let Err(status) = self.submit(state, inner) {
                out.push(event_from_afd(status, 0, token));
            }
        }
    }

    /// Issues a poll request for `state`.
    ///
    /// # Safety
    ///
    /// `state` is live and not pending, and `inner` is the locked table.
    unsafe fn submit(&self, state: *mut SockState, inner: &mut Inner) -> Result<(), NTSTATUS> {
        // SAFETY: the caller guarantees `state` is live and not pending, so nothing else
        // touches `iosb` and `info` until the request is issued; from then on
        // only raw places are used, never a reference the kernel's writes could alias.
        unsafe {
            let info = ptr::addr_of_mut!((*state).info);
            info.write(empty_poll_info());
            (*info).handles[0].handle = (*state).base as usize as HANDLE;
            (*info).handles[0].events = INTEREST;
            (*state).iosb.Anonymous.Status = STATUS_PENDING;
            let status = NtDeviceIoControlFile(
                self.afd,
                ptr::null_mut(),
                None,
                state.cast::<c_void>(),
                ptr::addr_of_mut!((*state).iosb),
                IOCTL_AFD_POLL,
                info.cast::<c_void>(),
                size_of::<AfdPollInfo>() as u32,
                info.cast::<c_void>(),
                size_of::<AfdPollInfo>() as u32,
            );
            // NT_SUCCESS, STATUS_PENDING included: one completion packet will follow.
            if status >= 0 {
                (*state).pending = true;
                inner.pending += 1;
                Ok(())
            } else {
                Err(status)
            }
        }
    }

    /// Cancels `state`'s request; its completion (cancelled, or already queued) follows.
    ///
    /// # Safety
    ///
    /// `state` is live and pending.
    unsafe fn cancel(&self, state: *mut SockState) {
        // SAFETY: the kernel identifies the request by the address of its live IO_STATUS_BLOCK;
        // `done` is a live local. STATUS_NOT_FOUND (the request already completed) and
        // other failures leave the completion packet coming all the same.
        unsafe {
            let mut done: IO_STATUS_BLOCK = mem::zeroed();
            NtCancelIoFileEx(self.afd, ptr::addr_of_mut!((*state).iosb), &mut done);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The table stays consistent across a panic (no code between two writes panics).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Selector {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (_, state) in inner.sockets.drain() {
            // SAFETY: table states are live; `&mut self` excludes every other user.
            unsafe {
                if (*state).pending {
                    (*state).deleted = true;
                    NtCancelIoFileEx(
                        self.afd,
                        ptr::addr_of_mut!((*state).iosb),
                        &mut mem::zeroed(),
                    );
                } else {
                    drop(Box::from_raw(state));
                }
            }
        }
        // The kernel writes each pending state once more, when its request completes: wait
        // for every completion before freeing, or leak the rest if the port fails.
        let mut entries: Vec<OVERLAPPED_ENTRY> = Vec::with_capacity(64);
        while inner.pending > 0 {
            let mut n = 0u32;
            // SAFETY: as in `select`.
            let ok = unsafe {
                GetQueuedCompletionStatusEx(
                    self.port,
                    entries.as_mut_ptr(),
                    entries.capacity() as u32,
                    &mut n,
                    INFINITE,
                    0,
                )
            };
            if ok == 0 {
                break;
            }
            // SAFETY: the port initialised the first `n` entries.
            unsafe { entries.set_len(n as usize) };
            for entry in entries.drain(..) {
                if entry.lpCompletionKey == AFD_KEY && !entry.lpOverlapped.is_null() {
                    inner.pending -= 1;
                    // SAFETY: every remaining state is deleted; this is its one completion.
                    drop(unsafe { Box::from_raw(entry.lpOverlapped.cast::<SockState>()) });
                }
            }
        }
        // SAFETY: both handles are ours; no request is in flight any more (or its state is
        // leaked, so a late write lands in memory that stays allocated).
        unsafe {
            CloseHandle(self.afd);
            CloseHandle(self.port);
        }
    }
}

/// Opens `\Device\Afd\Coronet` and associates it with `port`.
fn open_afd(port: HANDLE) -> io::Result<HANDLE> {
    let name = UNICODE_STRING {
        Length: (AFD_NAME.len() * 2) as u16,
        MaximumLength: (AFD_NAME.len() * 2) as u16,
        Buffer: AFD_NAME.as_ptr() as *mut u16,
    };
    let attributes = OBJECT_ATTRIBUTES {
        Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: ptr::null_mut(),
        ObjectName: &name,
        Attributes: 0,
        SecurityDescriptor: ptr::null(),
        SecurityQualityOfService: ptr::null(),
    };
    let mut afd: HANDLE = ptr::null_mut();
    // SAFETY: IO_STATUS_BLOCK is an integer union and an integer: zero is valid.
    let mut iosb: IO_STATUS_BLOCK = unsafe { mem::zeroed() };
    // SAFETY: every pointer is to a live local (the name's buffer is static and only read).
    let status = unsafe {
        NtCreateFile(
            &mut afd,
            SYNCHRONIZE,
            &attributes,
            &mut iosb,
            ptr::null(),
            0,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            FILE_OPEN,
            0,
            ptr::null(),
            0,
        )
    };
    if status != STATUS_SUCCESS {
        return Err(nt_error(status));
    }
    // SAFETY: associates our fresh AFD handle with our port.
    let associated = !unsafe { CreateIoCompletionPort(afd, port, AFD_KEY, 0) }.is_null();
    let mode = FILE_SKIP_SET_EVENT_ON_HANDLE as u8;
    // SAFETY: sets a notification mode on our handle.
    let configured = associated && unsafe { SetFileCompletionNotificationModes(afd, mode) } != 0;
    if !configured {
        let error = io::Error::last_os_error();
        // SAFETY: `afd` is ours and used by nothing else.
        unsafe { CloseHandle(afd) };
        return Err(error);
    }
    Ok(afd)
}

/// The base provider socket AFD can poll: the socket itself unless a layered service
/// provider wraps it. `SIO_BASE_HANDLE` can fail under some LSPs; the BSP ioctls then help.
fn base_socket(socket: RawSocket) -> io::Result<RawSocket> {
    let mut error = io::Error::from(io::ErrorKind::InvalidInput);
    for ioctl in [SIO_BASE_HANDLE, SIO_BSP_HANDLE_SELECT, SIO_BSP_HANDLE_POLL] {
        let mut base: SOCKET = INVALID_SOCKET;
        let mut bytes = 0u32;
        // SAFETY: the output buffer is a live local of the size passed; no overlapped I/O.
        let result = unsafe {
            WSAIoctl(
                socket as SOCKET,
                ioctl,
                ptr::null(),
                0,
                ptr::addr_of_mut!(base).cast(),
                size_of::<SOCKET>() as u32,
                &mut bytes,
                ptr::null_mut(),
                None,
            )
        };
        if result != SOCKET_ERROR && base != INVALID_SOCKET {
            return Ok(base as RawSocket);
        }
        error = io::Error::last_os_error();
    }
    Err(error)
}

fn empty_poll_info() -> AfdPollInfo {
    AfdPollInfo {
        timeout: i64::MAX,
        number_of_handles: 1,
        exclusive: 0,
        handles: [AfdPollHandleInfo {
            handle: ptr::null_mut(),
            events: 0,
            status: 0,
        }],
    }
}

/// The wait in milliseconds: `INFINITE` for forever, else rounded up (so the wait never ends
/// before the caller's deadline) and kept below `INFINITE` (the caller resumes the rest).
fn timeout_ms(timeout: Option<Duration>) -> u32 {
    match timeout {
        None => INFINITE,
        Some(timeout) => {
            let ms = timeout.as_nanos().div_ceil(1_000_000);
            u32::try_from(ms).unwrap_or(INFINITE - 1).min(INFINITE - 1)
        }
    }
}

fn nt_error(status: NTSTATUS) -> io::Error {
    // SAFETY: a pure conversion of a status code.
    io::Error::from_raw_os_error(unsafe { RtlNtStatusToDosError(status) } as i32)
}

const fn ascii_to_utf16<const N: usize>(ascii: &[u8; N]) -> [u16; N] {
    let mut wide = [0u16; N];
    let mut i = 0;
    while i < N {
        wide[i] = ascii[i] as u16;
        i += 1;
    }
    wide
}
