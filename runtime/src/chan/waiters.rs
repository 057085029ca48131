//! A channel's waiters: the [`Node`] a blocked operation links into a channel's wait list
//! (Go's `sudog`) and the [`Selector`] shared by all nodes of one wait (Go's `selectDone`).
//!
//! # One wait, several queues
//!
//! A blocking `send`/`recv` is a wait with one node; `select!` links one node per arm, each
//! in its own channel's list, all pointing to one `Selector` on the waiting frame. The
//! selector's `token` decides, once, how the wait ends:
//!
//! | from      | to        | by                                         | when                  |
//! |-----------|-----------|--------------------------------------------|-----------------------|
//! | `WAITING` | `arm + 2` | a counterpart (under that arm's channel lock) | it completes the arm (hand-off, or disconnection) |
//! | `WAITING` | `ABORTED` | the owner                                  | timeout, or it saw an arm become ready while registering |
//!
//! Exactly one CAS wins, so exactly one arm commits and the waiter is woken at most once.
//! A counterpart that pops a node whose token is already decided (a stale node: another arm
//! won, or the wait timed out) unlinks it and tries the next one, so no message is lost.
//!
//! # Handing a node back
//!
//! The winner, still under the channel lock, moves the message (into or out of the node's
//! slot), unlinks the node, wakes the park through the selector's uncounted `FrameWaker`
//! (the park's state change: the frame is still there, so no reference count is needed) and
//! finally stores `done = true` (`Release`). After that store it never touches the node or
//! the selector again (the owner may return and free them); what is left of the wake-up
//! (queueing a coroutine that had parked, with its park's own reference) it does after
//! dropping the lock. The owner reads `done` with `Acquire`; if it is not
//! yet set, taking the channel lock waits out the winner. Every other node of the wait is
//! unlinked by the owner under its channel's lock. These are
//! list.rs's two rules, which make the raw pointers in the lists sound.

use std::cell::{Cell, UnsafeCell};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::sync::list::{Linked, Links, List};
use crate::task::{FrameWaker, Wakeup};

const WAITING: usize = 0;
const ABORTED: usize = 1;
const FIRST_ARM: usize = 2;

/// How one wait ends; shared by the nodes of the wait. Lives on the waiting frame.
#[doc(hidden)]
pub struct Selector {
    token: AtomicUsize,
    /// Uncounted: the selector lives on the waiting frame, and a counterpart reads it only
    /// while one of the wait's nodes is linked, under that node's channel lock.
    waker: FrameWaker,
}

impl Selector {
    /// A selector for the park that `waker` wakes.
    pub(crate) fn new(waker: FrameWaker) -> Selector {
        Selector {
            token: AtomicUsize::new(WAITING),
            waker,
        }
    }

    /// A counterpart tries to complete the wait through `arm`.
    fn try_select(&self, arm: usize) -> bool {
        // AcqRel: the winner sees the owner's registration; its later `done` store carries
        // what it wrote to the node.
        self.token
            .compare_exchange(
                WAITING,
                arm + FIRST_ARM,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Whether a counterpart could still complete the wait.
    fn is_open(&self) -> bool {
        self.token.load(Ordering::Acquire) == WAITING
    }

    /// The owner ends the wait: the arm a counterpart completed, or `None` if the owner
    /// aborted it first (nobody can select it afterwards).
    pub(crate) fn finish(&self) -> Option<usize> {
        // Decided already (the usual case after a wake-up): a token never changes once it
        // left WAITING, so a load is enough (Acquire pairs with the winner's CAS).
        match self.token.load(Ordering::Acquire) {
            WAITING => {}
            ABORTED => return None,
            token => return Some(token - FIRST_ARM),
        }
        match self
            .token
            .compare_exchange(WAITING, ABORTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => None,
            Err(ABORTED) => None,
            Err(token) => Some(token - FIRST_ARM),
        }
    }
}

/// One operation's entry in a channel's wait list. Lives on the waiting frame (inside the
/// operation) and never moves while linked.
pub(crate) struct Node<T> {
    links: Links<Node<T>>,
    /// The wait this node belongs to; set by the owner before linking.
    selector: Cell<*const Selector>,
    /// This node's arm in its wait.
    arm: Cell<usize>,
    /// A sender's message (taken by the receiver that completes it), or the place a
    /// receiver's message is put. Touched by the owner only while the node is unlinked and
    /// not reachable, and by others only under the channel lock while it is linked.
    slot: UnsafeCell<Option<T>>,
    /// Set by the counterpart that completed this node, as its last access.
    done: AtomicBool,
}

// SAFETY: `links` is a field of the node.
unsafe impl<T> Linked for Node<T> {
    fn links(&self) -> &Links<Node<T>> {
        &self.links
    }
}

impl<T> Node<T> {
    /// A node carrying `message` (`None` for a receiver).
    pub(crate) const fn new(message: Option<T>) -> Node<T> {
        Node {
            links: Links::new(),
            selector: Cell::new(ptr::null()),
            arm: Cell::new(0),
            slot: UnsafeCell::new(message),
            done: AtomicBool::new(false),
        }
    }

    /// Binds the node to a wait before it is linked (owner, under the channel lock).
    pub(crate) fn bind(&self, selector: &Selector, arm: usize) {
        self.selector.set(selector);
        self.arm.set(arm);
        self.done.store(false, Ordering::Relaxed);
    }

    /// Whether a counterpart completed this node and let go of it.
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// The message slot, for the owner.
    ///
    /// # Safety
    /// Nobody else can reach the node: it is not linked, and whoever completed it has set
    /// `done` (observed with `Acquire`) or released the channel lock that the caller then
    /// took.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slot(&self) -> &mut Option<T> {
        // SAFETY: exclusive access is the caller's promise.
        unsafe { &mut *self.slot.get() }
    }

    fn selector_ref(&self) -> &Selector {
        // SAFETY: a linked node's selector is alive: the owner unlinks every node of its
        // wait (under the lock the caller holds) before the selector goes away.
        unsafe { &*self.selector.get() }
    }
}

/// Under the channel lock: pops the first waiter of `list` whose wait is still open,
/// completes it with `transfer` (which moves the message in or out of its slot), wakes it
/// and returns the rest of the wake-up, to be delivered after the lock is released. Stale
/// waiters are unlinked and skipped.
pub(crate) fn claim<T>(
    list: &mut List<Node<T>>,
    transfer: impl FnOnce(&mut Option<T>),
) -> Option<Wakeup> {
    while let Some(ptr) = list.pop_front() {
        // SAFETY: the node was linked, so its owner keeps it alive until it sees `done` or
        // takes the lock we hold (module docs).
        let node = unsafe { ptr.as_ref() };
        let selector = node.selector_ref();
        if !selector.try_select(node.arm.get()) {
            continue; // stale: another arm won, or the owner gave up
        }
        // SAFETY: we hold the channel lock and won the node: nobody else touches the slot.
        transfer(unsafe { &mut *node.slot.get() });
        // SAFETY: the node was linked, we hold its channel lock and have not set `done`, so
        // its frame still waits (module docs: the owner unlinks or sees `done` before it
        // returns).
        let wakeup = unsafe { selector.waker.wake_locked() };
        // Release: publishes the slot; after this the node and selector may be freed.
        node.done.store(true, Ordering::Release);
        return Some(wakeup);
    }
    None
}

/// Under the channel lock: whether a waiter of `list` that does not belong to `me` could
/// still be completed (a counterpart is ready).
pub(crate) fn has_open<T>(list: &List<Node<T>>, me: &Selector) -> bool {
    list.iter()
        .any(|node| !ptr::eq(node.selector.get(), me) && node.selector_ref().is_open())
}
