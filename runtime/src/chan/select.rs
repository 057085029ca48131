//! Waiting on several channel operations at once: the engine behind `select!` ([`wait`]) and
//! behind every blocking `send`/`recv` ([`wait_one`], the same protocol for one operation,
//! inlined into its caller).
//!
//! # Protocol (crossbeam's shape, Go's guarantees)
//!
//! 1. **Try pass.** Visit the operations in a random order (a fresh permutation per call,
//!    like Go's `pollorder`) and complete the first that can complete without waiting. This
//!    is what makes `select!` fair: among ready arms each is equally likely.
//! 2. **Register.** `Parking::prepare`, make a [`Selector`] with the park's waker, and link
//!    one node per operation into its channel's wait list, in the same random order. The
//!    first registration is *exclusive* (nothing is linked yet, nobody can complete the wait
//!    concurrently), so it may complete the operation on the spot: a blocking `recv` takes
//!    one lock when a message is there. A later registration that finds its operation ready
//!    links nothing and stops: the wait is aborted and we go back to step 1.
//! 3. **Park** (until the deadline, if any). A counterpart completes exactly one node: it
//!    wins the selector's token (waiters.rs), moves the message and wakes us.
//! 4. **Settle.** [`Selector::finish`] aborts the wait if nobody won it (a timeout), else
//!    names the winning arm. Every linked node is unlinked (or found done); the winner's
//!    result is collected. A timed-out or aborted wait retries from step 1 until the
//!    deadline.
//!
//! Step 4 always runs, also when the frame unwinds (a coroutine force-unwound at runtime
//! shutdown): `Waiting`'s drop settles the nodes, so no list keeps a pointer to a dead
//! frame.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use crate::chan::channel::{Chan, Registered};
use crate::chan::error::{RecvError, SendError};
use crate::chan::waiters::{Node, Selector};
use crate::chan::{Receiver, Sender};
use crate::dump::WaitReason;
use crate::task::Parking;

/// Permutations of up to this many operations live on the stack.
const INLINE_OPS: usize = 16;

mod sealed {
    pub trait Sealed {}
}

/// What [`Operation::register`] did.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Linked: a counterpart will complete it.
    Enqueued,
    /// Ready now: not linked; retry the try pass.
    Ready,
    /// Completed during an exclusive registration.
    Completed,
}

/// One arm of a `select!` (or the only operation of a blocking call). Implemented by
/// [`RecvOp`] and [`SendOp`] only.
#[doc(hidden)]
pub trait Operation: sealed::Sealed {
    /// Completes the operation now if it can (keeping the result); false if it would wait.
    fn try_complete(&self) -> bool;

    /// Links the operation's node for `selector`'s arm `arm` (see the module protocol).
    ///
    /// # Safety
    /// `self` and `selector` stay alive and in place until `unregister` has returned.
    unsafe fn register(&self, selector: &Selector, arm: usize, exclusive: bool) -> Registration;

    /// Unlinks the node if still linked; if `selected`, collects the result.
    fn unregister(&self, selected: bool);
}

/// How long `select` may wait.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Timeout {
    /// Until an operation completes.
    Never,
    /// Not at all (`default =>`).
    Now,
    /// At most this long (`default(timeout) =>`).
    After(Duration),
    /// Until this instant.
    At(Instant),
}

/// Runs a select over `ops`: returns the index of the operation that completed (its result
/// is in it), or `None` if the timeout passed first.
#[doc(hidden)]
pub fn select(ops: &[&dyn Operation], timeout: Timeout) -> Option<usize> {
    let mut inline = [0usize; INLINE_OPS];
    let mut heap = Vec::new();
    let order: &mut [usize] = if ops.len() <= INLINE_OPS {
        &mut inline[..ops.len()]
    } else {
        heap.resize(ops.len(), 0);
        &mut heap
    };
    shuffle(order);
    let deadline = match timeout {
        Timeout::Never => None,
        Timeout::Now => return try_pass(ops, order),
        // An unrepresentable deadline is "never".
        Timeout::After(duration) => Instant::now().checked_add(duration),
        Timeout::At(instant) => Some(instant),
    };
    wait(ops, order, deadline)
}

/// The try pass: the first operation, in `order`, that completes without waiting.
fn try_pass(ops: &[&dyn Operation], order: &[usize]) -> Option<usize> {
    order.iter().copied().find(|&i| ops[i].try_complete())
}

/// Steps 1 to 4 of the module protocol.
pub(crate) fn wait(
    ops: &[&dyn Operation],
    order: &[usize],
    deadline: Option<Instant>,
) -> Option<usize> {
    // With one operation the exclusive registration is the try pass.
    if ops.len() > 1 {
        if let Some(i) = try_pass(ops, order) {
            return Some(i);
        }
    }
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return try_pass(ops, order);
        }
        // One operation is a plain send or receive; several are a `select!`.
        let reason = if ops.len() == 1 {
            WaitReason::Channel
        } else {
            WaitReason::Select
        };
        let parking = Parking::prepare().reason(reason);
        let selector = Selector::new(parking.frame_waker());
        let mut waiting = Waiting::new(ops, order, &selector);
        let mut ready = false;
        for (k, &i) in order.iter().enumerate() {
            // SAFETY: `waiting` unregisters every linked operation before `selector`
            // and the borrow of `ops` end, also on unwind; the operations are borrowed
            // (cannot move) for the whole call.
            match unsafe { ops[i].register(&selector, i, k == 0) } {
                Registration::Enqueued => waiting.linked = k + 1,
                Registration::Completed => {
                    parking.cancel();
                    return Some(i);
                }
                Registration::Ready => {
                    ready = true;
                    break;
                }
            }
        }
        if ready {
            parking.cancel();
        } else {
            match deadline {
                Some(deadline) => {
                    parking.park_until(deadline);
                }
                None => parking.park(),
            }
        }
        if let Some(i) = waiting.settle() {
            return Some(i);
        }
        if let Some(i) = try_pass(ops, order) {
            return Some(i);
        }
    }
}

/// Steps 2 to 4 for one operation: a blocking `send` or `recv`. The same protocol as
/// [`wait`] with a single arm, whose exclusive registration is the try pass.
///
/// Generic over the operation and always inlined, with the stack switch inlined too
/// ([`Parking::park_in_caller`]), so that a blocking `recv`/`send`, itself always inlined,
/// parks in its caller's own frame. The reason is the CPU's return-address predictor, as for
/// `yield_now` (docs/performance.md, "Returns after a switch"): corosensei resumes a
/// coroutine with a `call` and switches back with a `ret`, so every frame that is live
/// across the switch returns mispredicted after the resume, and the next switch's own `ret`
/// is mispredicted too unless it comes from the frame the resume returned into. With the wait
/// in the caller's frame a channel round trip has neither (docs/performance.md, "A blocking
/// channel call parks in its caller's frame": ping-pong 135 -> 95 ns). Helpers that do not
/// switch (registering, settling, waking) may stay out of line: their calls and returns
/// pair up.
#[inline(always)]
pub(crate) fn wait_one<O: Operation>(op: &O, deadline: Option<Instant>) -> bool {
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return op.try_complete();
        }
        let parking = Parking::prepare().reason(WaitReason::Channel);
        let selector = Selector::new(parking.frame_waker());
        // SAFETY: `linked` below unregisters the operation before `selector` and the borrow
        // of `op` end, also on unwind; `op` is borrowed (cannot move) for the whole call.
        match unsafe { op.register(&selector, 0, true) } {
            Registration::Completed => {
                parking.cancel();
                return true;
            }
            // Nothing was linked: nobody can complete the wait, so there is nothing to settle.
            Registration::Ready => parking.cancel(),
            Registration::Enqueued => {
                let linked = LinkedOne {
                    op,
                    selector: &selector,
                };
                match deadline {
                    Some(deadline) => {
                        parking.park_until(deadline);
                    }
                    None => parking.park_in_caller(),
                }
                if linked.settle() {
                    return true;
                }
            }
        }
        if op.try_complete() {
            return true;
        }
    }
}

/// [`wait_one`]'s linked operation; unlinks it when dropped (module step 4), also on unwind.
struct LinkedOne<'a, O: Operation> {
    op: &'a O,
    selector: &'a Selector,
}

impl<O: Operation> LinkedOne<'_, O> {
    /// Ends the wait: whether a counterpart completed the operation.
    fn settle(self) -> bool {
        let selected = self.unlink();
        std::mem::forget(self);
        selected
    }

    /// Decides the selector (aborting it if nobody won it) and unlinks the node, collecting
    /// the result if the operation was completed.
    fn unlink(&self) -> bool {
        let selected = self.selector.finish().is_some();
        self.op.unregister(selected);
        selected
    }
}

impl<O: Operation> Drop for LinkedOne<'_, O> {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// The operations linked for one selector; settles them when dropped (module step 4).
struct Waiting<'a> {
    ops: &'a [&'a dyn Operation],
    order: &'a [usize],
    /// `order[..linked]` are linked.
    linked: usize,
    selector: &'a Selector,
}

impl<'a> Waiting<'a> {
    fn new(
        ops: &'a [&'a dyn Operation],
        order: &'a [usize],
        selector: &'a Selector,
    ) -> Waiting<'a> {
        Waiting {
            ops,
            order,
            linked: 0,
            selector,
        }
    }

    /// Ends the wait; returns the arm a counterpart completed, if any.
    fn settle(&mut self) -> Option<usize> {
        let selected = self.selector.finish();
        for &i in &self.order[..self.linked] {
            self.ops[i].unregister(selected == Some(i));
        }
        self.linked = 0;
        selected
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.linked > 0 {
            self.settle();
        }
    }
}

/// Fisher-Yates with a per-thread xorshift generator.
fn shuffle(order: &mut [usize]) {
    for (i, slot) in order.iter_mut().enumerate() {
        *slot = i;
    }
    for i in (1..order.len()).rev() {
        let j = (random() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

thread_local! {
    /// xorshift64 state; 0 until first use.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A random number from the calling thread's generator. Never parks, and is not inlined
/// into callers that do (DESIGN.md section 6): each call reads the slot of the thread that
/// runs it now.
#[inline(never)]
fn random() -> u64 {
    RNG.with(|rng| {
        let mut x = rng.get();
        if x == 0 {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_usize(&x as *const u64 as usize);
            x = hasher.finish() | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.set(x);
        x
    })
}

/// Defines the trait `$trait` for "anything `$syntax` accepts": an end of type `$end` or a
/// reference to one (any depth), reached through `$method`. `select!` takes its arms'
/// channels by value or by reference through these.
macro_rules! as_channel_end {
    ($trait:ident, $method:ident, $end:ident, $syntax:literal, $what:literal) => {
        #[doc = concat!("Anything `", $syntax, "` accepts: a [`", stringify!($end), "`] or a reference to one.")]
        #[doc(hidden)]
        pub trait $trait {
            /// The message type.
            type Item;
            #[doc = concat!("The ", $what, ".")]
            fn $method(&self) -> &$end<Self::Item>;
        }

        impl<T> $trait for $end<T> {
            type Item = T;
            fn $method(&self) -> &$end<T> {
                self
            }
        }

        impl<E: $trait + ?Sized> $trait for &E {
            type Item = E::Item;
            fn $method(&self) -> &$end<E::Item> {
                (**self).$method()
            }
        }
    };
}

as_channel_end!(AsReceiver, as_receiver, Receiver, "recv(r)", "receiver");
as_channel_end!(AsSender, as_sender, Sender, "send(s, v)", "sender");

/// What an operation's `register` reports to [`wait`], keeping in `result` the outcome of
/// an operation that completed during the registration.
fn registration<R>(registered: Registered<R>, result: &Cell<Option<R>>) -> Registration {
    match registered {
        Registered::Enqueued => Registration::Enqueued,
        Registered::Ready => Registration::Ready,
        Registered::Completed(outcome) => {
            result.set(Some(outcome));
            Registration::Completed
        }
    }
}

/// Keeps in `result` the outcome that unregistering a node collected, if any (see
/// [`Operation::unregister`]).
fn keep_unregistered<R>(collected: Option<R>, result: &Cell<Option<R>>) {
    if let Some(outcome) = collected {
        result.set(Some(outcome));
    }
}

/// A receive arm.
#[doc(hidden)]
pub struct RecvOp<'a, T> {
    chan: &'a Chan<T>,
    node: Node<T>,
    result: Cell<Option<Result<T, RecvError>>>,
}

impl<'a, T> RecvOp<'a, T> {
    /// A receive from `receiver`.
    pub fn new<R: AsReceiver<Item = T> + ?Sized>(receiver: &'a R) -> RecvOp<'a, T> {
        RecvOp {
            chan: receiver.as_receiver().chan(),
            node: Node::new(None),
            result: Cell::new(None),
        }
    }

    /// The result, if this arm completed.
    pub fn take(&self) -> Option<Result<T, RecvError>> {
        self.result.take()
    }
}

impl<T> sealed::Sealed for RecvOp<'_, T> {}

impl<T> Operation for RecvOp<'_, T> {
    fn try_complete(&self) -> bool {
        match self.chan.try_recv() {
            Ok(message) => self.result.set(Some(Ok(message))),
            Err(crate::chan::TryRecvError::Disconnected) => self.result.set(Some(Err(RecvError))),
            Err(crate::chan::TryRecvError::Empty) => return false,
        }
        true
    }

    unsafe fn register(&self, selector: &Selector, arm: usize, exclusive: bool) -> Registration {
        // SAFETY: forwarded from this function's contract (`self.node` lives in `self`).
        let registered = unsafe {
            self.chan
                .register_recv(&self.node, selector, arm, exclusive)
        };
        registration(registered, &self.result)
    }

    fn unregister(&self, selected: bool) {
        keep_unregistered(
            self.chan.unregister_recv(&self.node, selected),
            &self.result,
        );
    }
}

/// A send arm; holds the message until a receiver takes it.
#[doc(hidden)]
pub struct SendOp<'a, T> {
    chan: &'a Chan<T>,
    node: Node<T>,
    result: Cell<Option<Result<(), SendError<T>>>>,
}

impl<'a, T> SendOp<'a, T> {
    /// A send of `message` on `sender`.
    pub fn new<S: AsSender<Item = T> + ?Sized>(sender: &'a S, message: T) -> SendOp<'a, T> {
        SendOp {
            chan: sender.as_sender().chan(),
            node: Node::new(Some(message)),
            result: Cell::new(None),
        }
    }

    /// The result, if this arm completed.
    pub fn take(&self) -> Option<Result<(), SendError<T>>> {
        self.result.take()
    }

    /// The message, if it was not sent (after the select returned).
    pub(crate) fn into_message(self) -> Option<T> {
        // SAFETY: `self` is owned, so no select is running: the node is not linked.
        unsafe { self.node.slot() }.take()
    }
}

impl<T> sealed::Sealed for SendOp<'_, T> {}

impl<T> Operation for SendOp<'_, T> {
    fn try_complete(&self) -> bool {
        // SAFETY: outside a registration the node is not linked: its slot is ours.
        let slot = unsafe { self.node.slot() };
        let message = slot
            .take()
            .expect("coronet: send operation without a message");
        match self.chan.try_send(message) {
            Ok(()) => self.result.set(Some(Ok(()))),
            Err(crate::chan::TrySendError::Disconnected(message)) => {
                self.result.set(Some(Err(SendError(message))))
            }
            Err(crate::chan::TrySendError::Full(message)) => {
                *slot = Some(message);
                return false;
            }
        }
        true
    }

    unsafe fn register(&self, selector: &Selector, arm: usize, exclusive: bool) -> Registration {
        // SAFETY: forwarded from this function's contract (`self.node` lives in `self`).
        let registered = unsafe {
            self.chan
                .register_send(&self.node, selector, arm, exclusive)
        };
        registration(registered, &self.result)
    }

    fn unregister(&self, selected: bool) {
        keep_unregistered(
            self.chan.unregister_send(&self.node, selected),
            &self.result,
        );
    }
}
