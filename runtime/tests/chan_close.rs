//! Closing by ownership: the last sender's drop, the last receiver's drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use coronet_runtime::chan::{self, RecvError, SendError, TryRecvError, TrySendError};
use coronet_runtime::runtime::Builder;
use coronet_runtime::spawn;

#[test]
fn receivers_drain_the_buffer_then_see_disconnected() {
    let (tx, rx) = chan::bounded(4);
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    drop(tx);
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(rx.recv(), Err(RecvError));
}

#[test]
fn a_clone_keeps_the_channel_open() {
    let (tx, rx) = chan::unbounded::<u8>();
    let tx2 = tx.clone();
    drop(tx);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx2.send(9).unwrap();
    drop(tx2);
    assert_eq!(rx.iter().collect::<Vec<_>>(), [9]);
}

#[test]
fn dropping_the_last_sender_wakes_a_parked_receiver_with_disconnected() {
    // One worker: after the yields the receiver is parked in `recv` for sure.
    let rt = Builder::new().workers(1).build().unwrap();
    rt.block_on(|| {
        for cap in [0, 1, 8] {
            let (tx, rx) = chan::bounded::<u32>(cap);
            let receiver = spawn(move || rx.recv());
            for _ in 0..10 {
                coronet_runtime::yield_now();
            }
            drop(tx);
            assert_eq!(receiver.join().unwrap(), Err(RecvError));
        }
    });
}

#[test]
fn dropping_the_last_sender_wakes_every_parked_receiver_across_workers() {
    let rt = Builder::new().workers(2).build().unwrap();
    rt.block_on(|| {
        let (tx, rx) = chan::unbounded::<u32>();
        let receivers: Vec<_> = (0..100)
            .map(|_| {
                let rx = rx.clone();
                spawn(move || rx.recv())
            })
            .collect();
        for _ in 0..10 {
            coronet_runtime::yield_now();
        }
        drop(tx);
        for r in receivers {
            assert_eq!(r.join().unwrap(), Err(RecvError));
        }
    });
}

#[test]
fn a_thread_blocked_in_recv_is_woken_by_the_last_sender_drop() {
    let (tx, rx) = chan::bounded::<u32>(0);
    let (ready_tx, ready_rx) = chan::bounded::<()>(0);
    let thread = std::thread::spawn(move || {
        ready_tx.send(()).unwrap();
        rx.recv()
    });
    ready_rx.recv().unwrap();
    drop(tx);
    assert_eq!(thread.join().unwrap(), Err(RecvError));
}

#[test]
fn send_fails_and_returns_the_message_once_every_receiver_is_gone() {
    let (tx, rx) = chan::bounded::<String>(1);
    drop(rx);
    assert_eq!(tx.send("lost".into()), Err(SendError("lost".to_owned())));
    assert_eq!(
        tx.try_send("again".into()),
        Err(TrySendError::Disconnected("again".to_owned()))
    );
}

#[test]
fn dropping_the_last_receiver_wakes_a_parked_sender_with_its_message() {
    let rt = Builder::new().workers(1).build().unwrap();
    rt.block_on(|| {
        for cap in [0, 1] {
            let (tx, rx) = chan::bounded::<Vec<u8>>(cap);
            if cap == 1 {
                tx.send(vec![0]).unwrap(); // fill the buffer so the next send parks
            }
            let sender = spawn(move || tx.send(vec![1, 2, 3]));
            for _ in 0..10 {
                coronet_runtime::yield_now();
            }
            drop(rx);
            assert_eq!(sender.join().unwrap(), Err(SendError(vec![1, 2, 3])));
        }
    });
}

#[test]
fn dropping_the_last_receiver_drops_buffered_messages() {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = chan::bounded(8);
    for _ in 0..5 {
        tx.send(Counted(drops.clone())).unwrap();
    }
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 5);
    drop(tx);
}

#[test]
fn messages_left_in_a_dropped_channel_are_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    {
        let (tx, rx) = chan::unbounded();
        for _ in 0..3 {
            tx.send(Counted(drops.clone())).unwrap();
        }
        drop(tx);
        drop(rx.recv().unwrap());
    }
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

/// Coroutines blocked in `recv` and `send` on channels that outlive their runtime are unwound
/// at its shutdown, and each one's wait leaves its channel's wait list as it unwinds: the
/// channels afterwards have no waiter (a stale one would be a pointer into a dead stack, and
/// a `try_send`/`try_recv` would complete against it).
#[test]
fn coroutines_blocked_on_a_channel_that_outlives_the_runtime_leave_its_wait_lists() {
    use coronet_runtime::runtime::{wait_until_parked, WaitKind};
    const EACH: usize = 8;
    let (to_receivers, receivers_rx) = chan::bounded::<usize>(0);
    let (senders_tx, from_senders) = chan::bounded::<usize>(0);
    let rt = Builder::new().workers(2).build().unwrap();
    let mut blocked = Vec::new();
    for i in 0..EACH {
        let rx = receivers_rx.clone();
        blocked.push(rt.spawn(move || rx.recv().is_ok()));
        let tx = senders_tx.clone();
        blocked.push(rt.spawn(move || tx.send(i).is_ok()));
    }
    for handle in &blocked {
        assert!(wait_until_parked(
            handle.coroutine(),
            WaitKind::Channel,
            std::time::Duration::from_secs(120)
        ));
    }
    drop(rt);
    assert_eq!(to_receivers.try_send(7), Err(TrySendError::Full(7)));
    assert_eq!(from_senders.try_recv(), Err(TryRecvError::Empty));
    // The channels still work, between two threads now.
    let receiver = std::thread::spawn(move || receivers_rx.recv());
    to_receivers.send(9).unwrap();
    assert_eq!(receiver.join().unwrap(), Ok(9));
    let sender = std::thread::spawn(move || senders_tx.send(10));
    assert_eq!(from_senders.recv(), Ok(10));
    sender.join().unwrap().unwrap();
}
