//! The channel itself: Go's `hchan` (`runtime/chan.go`) for every capacity.
//!
//! One lock protects the buffer and the two wait lists: a [`SpinLock`], held only for a
//! bounded amount of the runtime's own work (never across a park, never running a message's
//! destructor or other user code; see `sync/spin.rs` for why that makes spinning sound).
//! The invariants between them, as in Go:
//!
//! * receivers wait only while the buffer is empty and no sender waits;
//! * senders wait only while the buffer is full (always, for capacity 0) and no receiver
//!   waits;
//! * so a sender finding a waiting receiver hands the message over directly (no buffer
//!   round trip), and a receiver taking from a full buffer refills it from the first waiting
//!   sender, which keeps FIFO order.
//!
//! A capacity of 0 is Go's unbuffered channel: a send completes only when a receiver takes
//! the message from the sender's node. "Unbounded" is a capacity no send can reach.
//! (crossbeam splits these into three flavours for lock-free fast paths; one locked
//! algorithm keeps the hand-off and `select!` logic in one place, and an uncontended
//! spin lock costs one atomic instruction: its unlock is a plain store.)
//!
//! Disconnection: when the last `Sender` goes, every waiting receiver is completed with "no
//! message" and later receives drain the buffer, then fail. When the last `Receiver` goes,
//! the buffered messages are dropped and every waiting sender is completed with its message
//! still in its node, which `send` returns in the error.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::chan::error::{RecvError, SendError, TryRecvError, TrySendError};
use crate::chan::waiters::{claim, has_open, Node, Selector};
use crate::sync::list::List;
use crate::sync::spin::{SpinGuard, SpinLock};
use crate::task::Wakeup;

/// What registering a waiting operation found (see `select.rs`).
pub(crate) enum Registered<R> {
    /// The node is linked; a counterpart will complete it.
    Enqueued,
    /// The operation could complete now: the node was not linked.
    Ready,
    /// The operation completed during registration (only for an exclusive registration).
    Completed(R),
}

/// The shared state of one channel.
pub(crate) struct Chan<T> {
    state: SpinLock<State<T>>,
    /// Buffer capacity; `usize::MAX` for an unbounded channel.
    cap: usize,
    bounded: bool,
    /// Live `Sender`s and `Receiver`s; the last one of either side disconnects it.
    pub(crate) senders: AtomicUsize,
    pub(crate) receivers: AtomicUsize,
    /// A hint, rewritten at every unlock: a receive could complete without waiting (a
    /// message is buffered, a sender waits, or every sender is gone). Read without the lock
    /// by [`Chan::recv_may_complete`] to skip a try that would fail; a stale hint costs
    /// time, never correctness (the locked paths decide).
    recv_ready: AtomicBool,
}

struct State<T> {
    buf: VecDeque<T>,
    /// Waiting senders; their nodes hold their messages.
    senders: List<Node<T>>,
    /// Waiting receivers.
    receivers: List<Node<T>>,
    /// Every `Sender` is gone.
    tx_gone: bool,
    /// Every `Receiver` is gone.
    rx_gone: bool,
}

// SAFETY: the lists point to nodes on other threads' stacks, touched only under the channel
// lock (list.rs rule 1); nodes carry messages between threads, hence `T: Send`.
unsafe impl<T: Send> Send for State<T> {}

impl<T> Chan<T> {
    /// A channel with buffer capacity `cap` (`None`: unbounded).
    pub(crate) fn new(cap: Option<usize>) -> Chan<T> {
        Chan {
            state: SpinLock::new(State {
                buf: VecDeque::with_capacity(cap.unwrap_or(0).min(1024)),
                senders: List::new(),
                receivers: List::new(),
                tx_gone: false,
                rx_gone: false,
            }),
            cap: cap.unwrap_or(usize::MAX),
            bounded: cap.is_some(),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            recv_ready: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> Locked<'_, T> {
        Locked {
            guard: self.state.lock(),
            recv_ready: &self.recv_ready,
        }
    }

    /// Whether a receive may complete without waiting (the unlocked hint above). A blocking
    /// receive that finds it false goes straight to its wait, whose first (exclusive)
    /// registration takes a message that came meanwhile under the same lock round trip.
    pub(crate) fn recv_may_complete(&self) -> bool {
        self.recv_ready.load(Ordering::Relaxed)
    }

    /// The capacity (`None` if unbounded).
    pub(crate) fn capacity(&self) -> Option<usize> {
        self.bounded.then_some(self.cap)
    }

    /// Messages in the buffer.
    pub(crate) fn len(&self) -> usize {
        self.lock().buf.len()
    }

    /// Whether the buffer is full (always true with capacity 0).
    pub(crate) fn is_full(&self) -> bool {
        self.lock().buf.len() >= self.cap
    }

    /// Sends without waiting.
    pub(crate) fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
        let result = self.lock().send_now(message, self.cap);
        result.map(wake)
    }

    /// Receives without waiting.
    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let result = self.lock().recv_now();
        match result {
            Some((message, wakeup)) => {
                wake(wakeup);
                message.map_err(|RecvError| TryRecvError::Disconnected)
            }
            None => Err(TryRecvError::Empty),
        }
    }

    /// Links `node` (a receiver) for `selector`'s arm `arm`, unless the receive can complete
    /// now. `exclusive`: the selector is not linked anywhere yet, so a ready receive is
    /// completed here (one lock round trip for a blocking `recv`).
    ///
    /// # Safety
    /// `node` and `selector` stay alive and in place until [`Chan::unregister_recv`] has
    /// returned for this node (if it was linked).
    pub(crate) unsafe fn register_recv(
        &self,
        node: &Node<T>,
        selector: &Selector,
        arm: usize,
        exclusive: bool,
    ) -> Registered<Result<T, RecvError>> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if exclusive {
            if let Some((message, wakeup)) = state.recv_now() {
                drop(guard);
                wake(wakeup);
                return Registered::Completed(message);
            }
        } else if !state.buf.is_empty() || state.tx_gone || has_open(&state.senders, selector) {
            return Registered::Ready;
        }
        node.bind(selector, arm);
        // SAFETY: we hold the channel lock; the node is not linked (every registration is
        // settled before the next one), and the caller keeps it alive and in place until it
        // is unregistered.
        unsafe { state.receivers.push_back(node) };
        Registered::Enqueued
    }

    /// Links `node` (a sender holding its message) like [`Chan::register_recv`].
    ///
    /// # Safety
    /// As for [`Chan::register_recv`]; the node is not linked and nobody else can reach it.
    pub(crate) unsafe fn register_send(
        &self,
        node: &Node<T>,
        selector: &Selector,
        arm: usize,
        exclusive: bool,
    ) -> Registered<Result<(), SendError<T>>> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if exclusive {
            // SAFETY: the node is not linked (caller's promise): the slot is ours.
            let slot = unsafe { node.slot() };
            let message = slot
                .take()
                .expect("coronet: send operation without a message");
            match state.send_now(message, self.cap) {
                Ok(wakeup) => {
                    drop(guard);
                    wake(wakeup);
                    return Registered::Completed(Ok(()));
                }
                Err(TrySendError::Disconnected(message)) => {
                    return Registered::Completed(Err(SendError(message)));
                }
                Err(TrySendError::Full(message)) => *slot = Some(message),
            }
        } else if state.rx_gone
            || state.buf.len() < self.cap
            || has_open(&state.receivers, selector)
        {
            return Registered::Ready;
        }
        node.bind(selector, arm);
        // SAFETY: we hold the channel lock; the node is not linked (every registration is
        // settled before the next one), and the caller keeps it alive and in place until it
        // is unregistered.
        unsafe { state.senders.push_back(node) };
        Registered::Enqueued
    }

    /// Unlinks a receiver's node if it is still linked. If `selected` (a counterpart
    /// completed it), returns what it left: a message, or disconnection.
    pub(crate) fn unregister_recv(
        &self,
        node: &Node<T>,
        selected: bool,
    ) -> Option<Result<T, RecvError>> {
        self.settle(node, selected, |state| &mut state.receivers);
        // SAFETY: `settle` made sure nobody else can reach the node.
        selected.then(|| unsafe { node.slot() }.take().ok_or(RecvError))
    }

    /// Unlinks a sender's node if it is still linked. If `selected`, returns how it ended:
    /// delivered (the slot is empty), or disconnected (the message is still there).
    pub(crate) fn unregister_send(
        &self,
        node: &Node<T>,
        selected: bool,
    ) -> Option<Result<(), SendError<T>>> {
        self.settle(node, selected, |state| &mut state.senders);
        // SAFETY: `settle` made sure nobody else can reach the node.
        selected.then(|| match unsafe { node.slot() }.take() {
            None => Ok(()),
            Some(message) => Err(SendError(message)),
        })
    }

    /// Makes sure no other thread can reach `node` any more (waiters.rs, "handing a node
    /// back"): a selected node whose `done` is set needs no lock; otherwise the lock waits
    /// out a counterpart that may be completing it, and unlinks it if still linked.
    fn settle(
        &self,
        node: &Node<T>,
        selected: bool,
        list: impl FnOnce(&mut State<T>) -> &mut List<Node<T>>,
    ) {
        if selected && node.is_done() {
            return;
        }
        let mut state = self.lock();
        // SAFETY: a node of this channel's receive (send) side is only ever linked in its
        // receivers (senders) list.
        let was_linked = unsafe { list(&mut state).remove(node) };
        if selected && (was_linked || !node.is_done()) {
            // Go's throw: a selected node is unlinked and done under the lock.
            abort("a selected channel waiter was not completed");
        }
    }

    /// The last `Sender` is gone: wake every waiting receiver with "disconnected".
    pub(crate) fn disconnect_senders(&self) {
        let wakeups = {
            let mut state = self.lock();
            state.tx_gone = true;
            let mut wakeups = Vec::new();
            while let Some(wakeup) = claim(&mut state.receivers, |_| {}) {
                wakeups.push(wakeup);
            }
            wakeups
        };
        for wakeup in wakeups {
            wakeup.deliver();
        }
    }

    /// The last `Receiver` is gone: drop the buffer, give waiting senders their messages
    /// back.
    pub(crate) fn disconnect_receivers(&self) {
        let (buffered, wakeups) = {
            let mut state = self.lock();
            state.rx_gone = true;
            let buffered = std::mem::take(&mut state.buf);
            let mut wakeups = Vec::new();
            while let Some(wakeup) = claim(&mut state.senders, |_| {}) {
                wakeups.push(wakeup);
            }
            (buffered, wakeups)
        };
        for wakeup in wakeups {
            wakeup.deliver();
        }
        // Messages' destructors run outside the lock.
        drop(buffered);
    }
}

/// The channel lock; rewrites the receive hint as it unlocks.
struct Locked<'a, T> {
    guard: SpinGuard<'a, State<T>>,
    recv_ready: &'a AtomicBool,
}

impl<T> Deref for Locked<'_, T> {
    type Target = State<T>;
    fn deref(&self) -> &State<T> {
        &self.guard
    }
}

impl<T> DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.guard
    }
}

impl<T> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        // Runs before the guard field unlocks. A waiting sender may be stale (its select
        // went another way): then the hint errs on "ready", which only costs a failed try.
        let state = &*self.guard;
        let ready = !state.buf.is_empty() || !state.senders.is_empty() || state.tx_gone;
        self.recv_ready.store(ready, Ordering::Relaxed);
    }
}

impl<T> State<T> {
    /// A send that does not wait: to a waiting receiver, else into the buffer. Returns the
    /// receiver's wake-up to deliver.
    fn send_now(&mut self, message: T, cap: usize) -> Result<Option<Wakeup>, TrySendError<T>> {
        if self.rx_gone {
            return Err(TrySendError::Disconnected(message));
        }
        let mut message = Some(message);
        if let Some(wakeup) = claim(&mut self.receivers, |slot| *slot = message.take()) {
            return Ok(Some(wakeup));
        }
        let message = message
            .take()
            .expect("message still here when no receiver took it");
        if self.buf.len() < cap {
            self.buf.push_back(message);
            Ok(None)
        } else {
            Err(TrySendError::Full(message))
        }
    }

    /// A receive that does not wait: from the buffer (refilled from a waiting sender), else
    /// from a waiting sender directly, else disconnection. `None`: it would have to wait.
    #[allow(clippy::type_complexity)]
    fn recv_now(&mut self) -> Option<(Result<T, RecvError>, Option<Wakeup>)> {
        if let Some(message) = self.buf.pop_front() {
            let buf = &mut self.buf;
            let wakeup = claim(&mut self.senders, |slot| {
                buf.push_back(slot.take().expect("a waiting sender holds its message"));
            });
            return Some((Ok(message), wakeup));
        }
        let mut message = None;
        if let Some(wakeup) = claim(&mut self.senders, |slot| message = slot.take()) {
            let message = message.expect("a waiting sender holds its message");
            return Some((Ok(message), Some(wakeup)));
        }
        self.tx_gone.then_some((Err(RecvError), None))
    }
}

fn wake(wakeup: Option<Wakeup>) {
    if let Some(wakeup) = wakeup {
        wakeup.deliver();
    }
}

#[cold]
fn abort(what: &str) -> ! {
    eprintln!("coronet: fatal: {what}");
    std::process::abort()
}
