//! Channels: Go's `chan` for coroutines and threads, with crossbeam-channel's API.
//!
//! | Go                               | coronet                                             |
//! |----------------------------------|-----------------------------------------------------|
//! | `make(chan T)` (unbuffered)      | [`bounded(0)`](bounded): a send waits for a receiver |
//! | `make(chan T, n)`                | [`bounded(n)`](bounded)                             |
//! | —                                | [`unbounded()`](unbounded): sends never wait        |
//! | `ch <- v`                        | [`Sender::send`]                                    |
//! | `v, ok := <-ch`                  | [`Receiver::recv`] (`Err` is Go's `ok == false`)    |
//! | `close(ch)`                      | drop every [`Sender`]                               |
//! | `for v := range ch`              | `for v in &rx` / [`Receiver::iter`]                 |
//! | `select { case ...: }`           | [`select!`](crate::select)                          |
//! | `select` with `default`          | `select! { ..., default => ... }`, or `try_send`/`try_recv` |
//! | `time.After(d)` in a `select`    | `select! { ..., default(d) => ... }`, or `*_timeout` |
//!
//! Both ends are `Clone` (many producers, many consumers) and `Send + Sync` when `T: Send`.
//! A blocked operation parks the calling coroutine (its worker runs other coroutines) or
//! blocks the calling thread, so one channel can connect coroutines and plain threads.
//!
//! Closing is by ownership, as in crossbeam: when the last `Sender` is dropped, receivers
//! get the buffered messages and then [`RecvError`]; when the last `Receiver` is dropped,
//! buffered messages are dropped and every send fails with [`SendError`], which gives the
//! message back. A receiver parked on an empty channel is woken by the last sender's drop.
//!
//! ```
//! use coronet_runtime::chan;
//!
//! let total = coronet_runtime::run(|| {
//!     let (tx, rx) = chan::bounded(16);
//!     for worker in 0..4u64 {
//!         let tx = tx.clone();
//!         coronet_runtime::spawn(move || {
//!             for i in 0..100 {
//!                 tx.send(worker * 1000 + i).unwrap();
//!             }
//!         });
//!     }
//!     drop(tx); // the channel closes when the workers' senders are gone too
//!     rx.iter().count()
//! });
//! assert_eq!(total, 400);
//! ```
//!
//! The implementation is Go's `hchan`: one lock per channel, a buffer and two lists of
//! waiters whose entries live on the waiters' stacks (channel.rs, waiters.rs); `select!`
//! links one entry per arm, and an atomic token makes exactly one arm win (select.rs).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod channel;
mod error;
mod select;
mod select_macro;
mod waiters;

use channel::Chan;
pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use select::{RecvOp, SendOp};

/// Items used by the expansion of [`select!`](crate::select); not a public API.
#[doc(hidden)]
pub mod __private {
    pub use super::select::{
        select, AsReceiver, AsSender, Operation, RecvOp, Registration, SendOp, Timeout,
    };
    pub use super::waiters::Selector;
}

/// Creates a channel that buffers at most `cap` messages. With `cap == 0` it is a
/// rendezvous channel (Go's unbuffered `chan`): a send completes only when a receiver takes
/// the message.
///
/// ```
/// use coronet_runtime::chan;
///
/// let (tx, rx) = chan::bounded(0);
/// let receiver = coronet_runtime::spawn(move || rx.recv().unwrap());
/// tx.send("hand-off").unwrap(); // returns once the receiver has the message
/// assert_eq!(receiver.join().unwrap(), "hand-off");
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    pair(Chan::new(Some(cap)))
}

/// Creates a channel whose sends never wait (the buffer grows as needed).
///
/// ```
/// let (tx, rx) = coronet_runtime::chan::unbounded();
/// for i in 0..1000 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx.iter().sum::<i32>(), 499_500);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    pair(Chan::new(None))
}

fn pair<T>(chan: Chan<T>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(chan);
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending end of a channel. Clone it for more producers; the channel closes for
/// receivers when the last clone is dropped.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving end of a channel. Clone it for more consumers (each message goes to one of
/// them); sends fail once the last clone is dropped.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `message`, waiting while the channel is full (for capacity 0: until a receiver
    /// takes it). Fails, returning the message, if every receiver is gone.
    // Always inlined, as the wait inside it: a blocking call parks in its caller's frame, and
    // the coroutine it resumes has no mispredicted return to make (`select::wait_one`).
    #[inline(always)]
    pub fn send(&self, message: T) -> Result<(), SendError<T>> {
        match self.chan.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(message)) => Err(SendError(message)),
            Err(TrySendError::Full(message)) => {
                let op = SendOp::new(self, message);
                select::wait_one(&op, None);
                op.take()
                    .expect("coronet: a send without deadline completes")
            }
        }
    }

    /// Sends `message` if that needs no waiting.
    pub fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(message)
    }

    /// Sends `message`, waiting at most `timeout`.
    pub fn send_timeout(&self, message: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.send_deadline(message, deadline),
            None => self.send(message).map_err(SendTimeoutError::from),
        }
    }

    /// Sends `message`, waiting at most until `deadline`.
    pub fn send_deadline(&self, message: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        match self.chan.try_send(message) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(message)) => {
                Err(SendTimeoutError::Disconnected(message))
            }
            Err(TrySendError::Full(message)) => {
                let op = SendOp::new(self, message);
                select::wait_one(&op, Some(deadline));
                match op.take() {
                    Some(Ok(())) => Ok(()),
                    Some(Err(SendError(message))) => Err(SendTimeoutError::Disconnected(message)),
                    None => Err(SendTimeoutError::Timeout(
                        op.into_message()
                            .expect("coronet: an unsent message stays in its operation"),
                    )),
                }
            }
        }
    }
}

impl<T> Receiver<T> {
    /// Receives a message, waiting while the channel is empty. Fails once the channel is
    /// empty and every sender is gone.
    // Always inlined, as the wait inside it: a blocking call parks in its caller's frame, and
    // the coroutine it resumes has no mispredicted return to make (`select::wait_one`).
    #[inline(always)]
    pub fn recv(&self) -> Result<T, RecvError> {
        // Try first only if the channel's unlocked hint says it could work: a receive that
        // will wait goes straight to its wait, whose first (exclusive) registration takes a
        // message that arrived meanwhile, one lock round trip instead of two.
        if self.chan.recv_may_complete() {
            match self.chan.try_recv() {
                Ok(message) => return Ok(message),
                Err(TryRecvError::Disconnected) => return Err(RecvError),
                Err(TryRecvError::Empty) => {}
            }
        }
        let op = RecvOp::new(self);
        select::wait_one(&op, None);
        op.take()
            .expect("coronet: a receive without deadline completes")
    }

    /// Receives a message if one is there now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// Receives a message, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            None => self.recv().map_err(RecvTimeoutError::from),
        }
    }

    /// Receives a message, waiting at most until `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        match self.chan.try_recv() {
            Ok(message) => Ok(message),
            Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {
                let op = RecvOp::new(self);
                select::wait_one(&op, Some(deadline));
                match op.take() {
                    Some(result) => result.map_err(RecvTimeoutError::from),
                    None => Err(RecvTimeoutError::Timeout),
                }
            }
        }
    }

    /// A blocking iterator: yields messages until the channel is empty and disconnected.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { receiver: self }
    }

    /// A non-blocking iterator: yields the messages available now.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { receiver: self }
    }
}

/// What both ends of a channel have in the same form: the buffer queries, `same_channel`,
/// `Clone` and `Drop` (a count of live ends of this kind; the last one to go disconnects
/// that side), and `Debug`.
macro_rules! channel_end {
    ($end:ident, $count:ident, $disconnect:ident, $direction:literal) => {
        impl<T> $end<T> {
            /// Messages in the buffer.
            pub fn len(&self) -> usize {
                self.chan.len()
            }

            /// Whether the buffer is empty.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// Whether the buffer is full (a zero-capacity channel is always full).
            pub fn is_full(&self) -> bool {
                self.chan.is_full()
            }

            /// The buffer capacity; `None` for an unbounded channel.
            pub fn capacity(&self) -> Option<usize> {
                self.chan.capacity()
            }

            #[doc = concat!("Whether `self` and `other` ", $direction, " the same channel.")]
            pub fn same_channel(&self, other: &$end<T>) -> bool {
                Arc::ptr_eq(&self.chan, &other.chan)
            }

            pub(crate) fn chan(&self) -> &Chan<T> {
                &self.chan
            }
        }

        impl<T> Clone for $end<T> {
            fn clone(&self) -> $end<T> {
                // Relaxed: cloning from a live end, the count cannot be zero (as `Arc`).
                self.chan.$count.fetch_add(1, Ordering::Relaxed);
                $end {
                    chan: self.chan.clone(),
                }
            }
        }

        impl<T> Drop for $end<T> {
            fn drop(&mut self) {
                // AcqRel: the last end of this kind sees every other one's drop before it
                // disconnects.
                if self.chan.$count.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.chan.$disconnect();
                }
            }
        }

        impl<T> fmt::Debug for $end<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($end))
                    .field("capacity", &self.capacity())
                    .finish_non_exhaustive()
            }
        }
    };
}

channel_end!(Sender, senders, disconnect_senders, "send to");
channel_end!(Receiver, receivers, disconnect_receivers, "receive from");

/// Blocking iterator over a [`Receiver`]'s messages (see [`Receiver::iter`]).
#[derive(Debug)]
pub struct Iter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    // Always inlined, as `recv` (see there).
    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

/// Non-blocking iterator over a [`Receiver`]'s available messages (see
/// [`Receiver::try_iter`]).
#[derive(Debug)]
pub struct TryIter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.try_recv().ok()
    }
}

/// Owning blocking iterator over a [`Receiver`]'s messages.
#[derive(Debug)]
pub struct IntoIter<T> {
    receiver: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    // Always inlined, as `recv` (see there).
    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter { receiver: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_share_queries_counts_and_debug() {
        let (tx, rx) = bounded::<u8>(2);
        assert_eq!(format!("{tx:?}"), "Sender { capacity: Some(2), .. }");
        assert_eq!(format!("{rx:?}"), "Receiver { capacity: Some(2), .. }");
        tx.try_send(1).unwrap();
        assert_eq!(
            (tx.len(), rx.len(), tx.is_empty(), rx.is_full()),
            (1, 1, false, false)
        );
        tx.try_send(2).unwrap();
        assert!(tx.is_full() && rx.is_full());
        let (other_tx, other_rx) = unbounded::<u8>();
        assert_eq!(other_rx.capacity(), None);
        assert!(tx.same_channel(&tx.clone()) && !tx.same_channel(&other_tx));
        assert!(rx.same_channel(&rx.clone()) && !rx.same_channel(&other_rx));
        // The clones above are gone: one sender left, and dropping it disconnects.
        drop(tx);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        // A receiver clone keeps the channel open for senders; the last one closes it.
        let (tx, rx) = bounded::<u8>(1);
        let rx2 = rx.clone();
        drop(rx);
        assert_eq!(tx.try_send(3), Ok(()));
        drop(rx2);
        assert_eq!(tx.try_send(4), Err(TrySendError::Disconnected(4)));
    }
}
