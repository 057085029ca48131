//! An intrusive doubly-linked list of waiters (Go's `waitq` of `sudog`s).
//!
//! A waiting coroutine (or thread) keeps its queue entry *on its own stack* and links it into
//! the wait list of the channel or lock it waits on; the list only holds pointers. So a wait
//! costs no allocation, and removing an entry (a timeout, a `select!` arm that lost) is `O(1)`.
//!
//! # The two rules that make it sound
//!
//! 1. **One lock.** A list, and the links of every node in it, are only touched by a thread
//!    holding the lock of the structure that owns the list (a channel's `SpinLock`, a lock's
//!    `std::sync::Mutex`). That lock orders every access; the `Cell`s below are never
//!    touched by two threads without it.
//! 2. **The owner outlives the link.** A node is linked only while the frame that owns it is
//!    alive and does not move it. Before that frame ends (normally or by unwinding), the owner
//!    either unlinks the node under the lock, or observes that a notifier unlinked it (under
//!    the lock, then released the node with a `Release` store the owner reads with `Acquire`).
//!
//! The `unsafe` entry points ([`List::push_back`], [`List::push_front`], [`List::remove`])
//! carry these rules as their contract; walking and popping are then safe.
//!
//! Rejected alternatives: a `VecDeque` of pointers (`O(n)` removal of a timed-out waiter) and
//! an `Arc` per waiter (an allocation per wait, and a second reference-counted object whose
//! last owner is hard to see).

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The links a node embeds to be put in a [`List`].
pub(crate) struct Links<N> {
    prev: Cell<Option<NonNull<N>>>,
    next: Cell<Option<NonNull<N>>>,
    linked: Cell<bool>,
}

impl<N> Links<N> {
    /// Unlinked links.
    pub(crate) const fn new() -> Links<N> {
        Links {
            prev: Cell::new(None),
            next: Cell::new(None),
            linked: Cell::new(false),
        }
    }

    /// Whether the node is in a list. Only meaningful under the list's lock.
    pub(crate) fn is_linked(&self) -> bool {
        self.linked.get()
    }
}

/// A type that embeds [`Links`].
///
/// # Safety
/// `links` must always return the same `Links`, embedded in `self` (so its address is stable
/// as long as the node does not move).
pub(crate) unsafe trait Linked: Sized {
    /// The node's links.
    fn links(&self) -> &Links<Self>;
}

/// A FIFO of nodes linked through their [`Links`], protected by its owner's lock.
///
/// Not `Send`: the structure that owns the list asserts `Send` for itself, naming what its
/// nodes carry across threads.
pub(crate) struct List<N> {
    head: Option<NonNull<N>>,
    tail: Option<NonNull<N>>,
    len: usize,
}

impl<N: Linked> List<N> {
    /// An empty list.
    pub(crate) const fn new() -> List<N> {
        List {
            head: None,
            tail: None,
            len: 0,
        }
    }

    /// The number of linked nodes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no node is linked.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Links `node` at the back.
    ///
    /// # Safety
    /// `node` is not linked in any list; it stays alive and in place until it is unlinked
    /// (by [`List::pop_front`] or [`List::remove`]); this list and the node's links are only
    /// accessed under the owner's lock (module rules 1 and 2).
    pub(crate) unsafe fn push_back(&mut self, node: &N) {
        let links = node.links();
        debug_assert!(!links.is_linked(), "coronet: waiter linked twice");
        let ptr = NonNull::from(node);
        links.prev.set(self.tail);
        links.next.set(None);
        links.linked.set(true);
        match self.tail {
            // SAFETY: linked nodes are alive (this function's contract, made by whoever
            // linked `tail`), and we hold the list's lock.
            Some(tail) => unsafe { tail.as_ref() }.links().next.set(Some(ptr)),
            None => self.head = Some(ptr),
        }
        self.tail = Some(ptr);
        self.len += 1;
    }

    /// Links `node` at the front (a waiter that lost a race and keeps its place, Go's
    /// `lifo` semacquire).
    ///
    /// # Safety
    /// As for [`List::push_back`].
    pub(crate) unsafe fn push_front(&mut self, node: &N) {
        let links = node.links();
        debug_assert!(!links.is_linked(), "coronet: waiter linked twice");
        let ptr = NonNull::from(node);
        links.prev.set(None);
        links.next.set(self.head);
        links.linked.set(true);
        match self.head {
            // SAFETY: as in `push_back`.
            Some(head) => unsafe { head.as_ref() }.links().prev.set(Some(ptr)),
            None => self.tail = Some(ptr),
        }
        self.head = Some(ptr);
        self.len += 1;
    }

    /// Unlinks and returns the first node. The pointer stays valid until the caller hands
    /// the node back to its owner (see the module rules).
    pub(crate) fn pop_front(&mut self) -> Option<NonNull<N>> {
        let head = self.head?;
        // SAFETY: linked nodes are alive (the `push_*` contract) and we hold the lock.
        let node = unsafe { head.as_ref() };
        self.unlink(node);
        Some(head)
    }

    /// Unlinks `node` if it is linked; returns whether it was.
    ///
    /// # Safety
    /// If `node` is linked, it is linked in *this* list (not another one).
    pub(crate) unsafe fn remove(&mut self, node: &N) -> bool {
        if !node.links().is_linked() {
            return false;
        }
        self.unlink(node);
        true
    }

    /// Iterates over the linked nodes, front to back.
    pub(crate) fn iter(&self) -> Iter<'_, N> {
        Iter {
            next: self.head,
            _list: PhantomData,
        }
    }

    fn unlink(&mut self, node: &N) {
        let links = node.links();
        let prev = links.prev.get();
        let next = links.next.get();
        match prev {
            // SAFETY: neighbours of a linked node are linked, hence alive; we hold the lock.
            Some(prev) => unsafe { prev.as_ref() }.links().next.set(next),
            None => self.head = next,
        }
        match next {
            // SAFETY: as above.
            Some(next) => unsafe { next.as_ref() }.links().prev.set(prev),
            None => self.tail = prev,
        }
        links.prev.set(None);
        links.next.set(None);
        links.linked.set(false);
        self.len -= 1;
    }
}

/// Iterator over a [`List`]'s nodes (see [`List::iter`]).
pub(crate) struct Iter<'a, N> {
    next: Option<NonNull<N>>,
    _list: PhantomData<&'a List<N>>,
}

impl<'a, N: Linked> Iterator for Iter<'a, N> {
    type Item = &'a N;

    fn next(&mut self) -> Option<&'a N> {
        let ptr = self.next?;
        // SAFETY: the node is linked in the list borrowed for 'a, so it stays alive and
        // linked while the borrow (taken under the owner's lock) lasts.
        let node = unsafe { ptr.as_ref() };
        self.next = node.links().next.get();
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct N {
        links: Links<N>,
        value: u32,
    }

    // SAFETY: `links` is a field of the node.
    unsafe impl Linked for N {
        fn links(&self) -> &Links<N> {
            &self.links
        }
    }

    fn node(value: u32) -> N {
        N {
            links: Links::new(),
            value,
        }
    }

    fn values(list: &List<N>) -> Vec<u32> {
        list.iter().map(|n| n.value).collect()
    }

    #[test]
    fn push_pop_remove_keep_order() {
        let (a, b, c, d) = (node(1), node(2), node(3), node(4));
        let mut list = List::new();
        // SAFETY: the nodes outlive the list's use of them and are not moved.
        unsafe {
            list.push_back(&a);
            list.push_back(&b);
            list.push_back(&c);
            list.push_front(&d);
        }
        assert_eq!(values(&list), [4, 1, 2, 3]);
        // SAFETY: `b` is linked in `list`.
        assert!(unsafe { list.remove(&b) });
        // SAFETY: `b` is not linked anywhere.
        assert!(!unsafe { list.remove(&b) });
        assert_eq!(values(&list), [4, 1, 3]);
        assert_eq!(list.len(), 3);
        let first = list.pop_front().unwrap();
        // SAFETY: `first` points to `d`, alive on this frame.
        assert_eq!(unsafe { first.as_ref() }.value, 4);
        // SAFETY: `c` is linked in `list`.
        assert!(unsafe { list.remove(&c) });
        assert_eq!(values(&list), [1]);
        list.pop_front().unwrap();
        assert_eq!(list.len(), 0);
        assert!(list.pop_front().is_none());
    }
}
