//! `recv_timeout`, `send_timeout` and their deadline variants.

use std::time::{Duration, Instant};

use coronet_runtime::chan::{self, RecvTimeoutError, SendTimeoutError};
use coronet_runtime::spawn;

const SHORT: Duration = Duration::from_millis(20);

#[test]
fn recv_timeout_expires_on_an_empty_channel() {
    coronet_runtime::run(|| {
        let (_tx, rx) = chan::bounded::<u32>(1);
        let start = Instant::now();
        assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Timeout));
        assert!(start.elapsed() >= SHORT);
    });
}

#[test]
fn recv_timeout_on_a_plain_thread_expires() {
    let (_tx, rx) = chan::unbounded::<u32>();
    let start = Instant::now();
    assert_eq!(rx.recv_timeout(SHORT), Err(RecvTimeoutError::Timeout));
    assert!(start.elapsed() >= SHORT);
}

#[test]
fn recv_timeout_returns_a_message_that_arrives_in_time() {
    coronet_runtime::run(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let sender = spawn(move || tx.send(5));
        assert_eq!(rx.recv_timeout(Duration::from_secs(60)), Ok(5));
        sender.join().unwrap().unwrap();
    });
}

#[test]
fn recv_deadline_in_the_past_still_takes_a_ready_message() {
    let (tx, rx) = chan::bounded(1);
    tx.send(1).unwrap();
    let past = Instant::now() - Duration::from_millis(1);
    assert_eq!(rx.recv_deadline(past), Ok(1));
    assert_eq!(rx.recv_deadline(past), Err(RecvTimeoutError::Timeout));
    drop(tx);
    assert_eq!(rx.recv_deadline(past), Err(RecvTimeoutError::Disconnected));
}

#[test]
fn send_timeout_on_a_full_channel_gives_the_message_back() {
    coronet_runtime::run(|| {
        let (tx, _rx) = chan::bounded::<String>(1);
        tx.send("fills".into()).unwrap();
        let start = Instant::now();
        assert_eq!(
            tx.send_timeout("late".into(), SHORT),
            Err(SendTimeoutError::Timeout("late".to_owned()))
        );
        assert!(start.elapsed() >= SHORT);
    });
}

#[test]
fn send_timeout_on_a_rendezvous_channel_without_receiver_times_out() {
    let (tx, rx) = chan::bounded::<u8>(0);
    assert_eq!(tx.send_timeout(3, SHORT), Err(SendTimeoutError::Timeout(3)));
    drop(rx);
    assert_eq!(
        tx.send_timeout(4, SHORT),
        Err(SendTimeoutError::Disconnected(4))
    );
}

#[test]
fn timed_out_waiters_do_not_swallow_later_messages() {
    // Many receivers time out; their stale entries must not capture later messages.
    coronet_runtime::run(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let waiters: Vec<_> = (0..50)
            .map(|_| {
                let rx = rx.clone();
                spawn(move || rx.recv_timeout(Duration::from_millis(1)))
            })
            .collect();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Err(RecvTimeoutError::Timeout));
        }
        let receiver = spawn(move || rx.recv());
        tx.send(42).unwrap();
        assert_eq!(receiver.join().unwrap(), Ok(42));
    });
}

#[test]
fn racing_timeouts_and_sends_lose_nothing() {
    // Receivers with tiny timeouts race a sender: every message is received exactly once,
    // whichever side of a timeout it lands on.
    let rt = coronet_runtime::runtime::Builder::new()
        .workers(2)
        .build()
        .unwrap();
    let received = rt.block_on(|| {
        let (tx, rx) = chan::bounded::<u64>(0);
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                spawn(move || {
                    let mut sum = 0;
                    loop {
                        match rx.recv_timeout(Duration::from_micros(50)) {
                            Ok(v) => sum += v,
                            Err(RecvTimeoutError::Timeout) => {}
                            Err(RecvTimeoutError::Disconnected) => return sum,
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        for i in 1..=5_000 {
            tx.send(i).unwrap();
        }
        drop(tx);
        receivers
            .into_iter()
            .map(|r| r.join().unwrap())
            .sum::<u64>()
    });
    assert_eq!(received, 5_000 * 5_001 / 2);
}
