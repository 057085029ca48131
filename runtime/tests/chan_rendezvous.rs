//! Zero-capacity channels: a send completes only when a receiver takes the message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use coronet_runtime::chan::{self, TryRecvError, TrySendError};
use coronet_runtime::spawn;

#[test]
fn send_returns_only_after_the_receiver_took_the_message() {
    // One worker: after the main coroutine yields, the sender has run up to its park.
    let rt = coronet_runtime::runtime::Builder::new()
        .workers(1)
        .build()
        .unwrap();
    rt.block_on(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let sent = Arc::new(AtomicBool::new(false));
        let sender = {
            let sent = sent.clone();
            spawn(move || {
                tx.send(7).unwrap();
                sent.store(true, Ordering::SeqCst);
            })
        };
        for _ in 0..10 {
            coronet_runtime::yield_now();
        }
        assert!(
            !sent.load(Ordering::SeqCst),
            "send completed without a receiver"
        );
        assert_eq!(rx.recv().unwrap(), 7);
        sender.join().unwrap();
        assert!(sent.load(Ordering::SeqCst));
    });
}

#[test]
fn try_send_fails_without_a_waiting_receiver_and_succeeds_with_one() {
    coronet_runtime::run(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert!(tx.is_full());
        assert_eq!(tx.capacity(), Some(0));
        let receiver = spawn(move || rx.recv().unwrap());
        // The receiver parks eventually; until then `try_send` reports Full.
        let mut value = 2;
        loop {
            match tx.try_send(value) {
                Ok(()) => break,
                Err(TrySendError::Full(v)) => {
                    value = v;
                    coronet_runtime::yield_now();
                }
                Err(TrySendError::Disconnected(_)) => panic!("receiver gone"),
            }
        }
        assert_eq!(receiver.join().unwrap(), 2);
    });
}

#[test]
fn a_waiting_sender_is_matched_by_a_later_receiver() {
    coronet_runtime::run(|| {
        let (tx, rx) = chan::bounded::<String>(0);
        let sender = spawn(move || tx.send("parked first".to_owned()));
        // Let the sender park (if it has not yet, recv parks instead; both orders must work).
        coronet_runtime::yield_now();
        assert_eq!(rx.recv().unwrap(), "parked first");
        sender.join().unwrap().unwrap();
    });
}

#[test]
fn rendezvous_ping_pong_across_workers_keeps_order() {
    let rt = coronet_runtime::runtime::Builder::new()
        .workers(2)
        .build()
        .unwrap();
    rt.block_on(|| {
        let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
        let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
        let echo = spawn(move || {
            for v in ping_rx.iter() {
                pong_tx.send(v + 1).unwrap();
            }
        });
        for i in 0..20_000 {
            ping_tx.send(i).unwrap();
            assert_eq!(pong_rx.recv().unwrap(), i + 1);
        }
        drop(ping_tx);
        echo.join().unwrap();
    });
}
