//! `select!`: readiness, fairness, default and timeout arms, send arms, disconnection.

use std::time::{Duration, Instant};

use coronet_runtime::chan::{self, RecvError, SendError};
use coronet_runtime::runtime::Builder;
use coronet_runtime::{select, spawn};

#[test]
fn two_always_ready_arms_are_chosen_about_equally() {
    const ROUNDS: usize = 10_000;
    let (tx_a, rx_a) = chan::unbounded::<u8>();
    let (tx_b, rx_b) = chan::unbounded::<u8>();
    for _ in 0..ROUNDS {
        tx_a.send(0).unwrap();
        tx_b.send(1).unwrap();
    }
    let mut chosen = [0usize; 2];
    for _ in 0..ROUNDS {
        select! {
            recv(rx_a) -> v => chosen[usize::from(v.unwrap())] += 1,
            recv(rx_b) -> v => chosen[usize::from(v.unwrap())] += 1,
        }
    }
    for count in chosen {
        assert!(
            (ROUNDS * 40 / 100..=ROUNDS * 60 / 100).contains(&count),
            "unfair choice: {chosen:?}"
        );
    }
}

#[test]
fn three_ready_arms_with_send_and_recv_are_each_chosen() {
    coronet_runtime::run(|| {
        let (tx_a, rx_a) = chan::unbounded::<u8>();
        let (tx_b, rx_b) = chan::unbounded::<u8>();
        let (out_tx, out_rx) = chan::unbounded::<u8>();
        let mut chosen = [0usize; 3];
        for _ in 0..3_000 {
            tx_a.send(0).unwrap();
            tx_b.send(1).unwrap();
            select! {
                recv(rx_a) -> _ => chosen[0] += 1,
                recv(rx_b) -> _ => chosen[1] += 1,
                send(out_tx, 2) -> res => {
                    res.unwrap();
                    chosen[2] += 1;
                }
            }
            // Keep each arm ready: drain whatever was not chosen.
            while rx_a.try_recv().is_ok() {}
            while rx_b.try_recv().is_ok() {}
        }
        assert_eq!(out_rx.try_iter().count(), chosen[2]);
        for count in chosen {
            assert!(count > 600, "an arm starves: {chosen:?}");
        }
    });
}

#[test]
fn select_waits_for_the_first_arm_that_becomes_ready() {
    coronet_runtime::run(|| {
        let (_tx_a, rx_a) = chan::bounded::<&str>(0);
        let (tx_b, rx_b) = chan::bounded::<&str>(0);
        let sender = spawn(move || tx_b.send("b"));
        let got = select! {
            recv(rx_a) -> v => v.unwrap(),
            recv(rx_b) -> v => v.unwrap(),
        };
        assert_eq!(got, "b");
        sender.join().unwrap().unwrap();
    });
}

#[test]
fn default_runs_when_nothing_is_ready() {
    let (tx, rx) = chan::bounded::<u8>(0);
    let ran_default = select! {
        recv(rx) -> _ => false,
        send(tx, 1) -> _ => false,
        default => true,
    };
    assert!(ran_default);
}

#[test]
fn default_is_skipped_when_an_arm_is_ready() {
    let (tx, rx) = chan::bounded::<u8>(1);
    tx.send(3).unwrap();
    let got = select! {
        recv(rx) -> v => v.unwrap(),
        default => 0,
    };
    assert_eq!(got, 3);
}

#[test]
fn default_with_timeout_expires_on_coroutines_and_threads() {
    let check = || {
        let (_tx, rx) = chan::bounded::<u8>(0);
        let start = Instant::now();
        let timed_out = select! {
            recv(rx) -> _ => false,
            default(Duration::from_millis(20)) => true,
        };
        assert!(timed_out);
        assert!(start.elapsed() >= Duration::from_millis(20));
    };
    check();
    coronet_runtime::run(check);
}

#[test]
fn default_with_timeout_takes_a_message_that_arrives_in_time() {
    coronet_runtime::run(|| {
        let (tx, rx) = chan::bounded::<u8>(0);
        let sender = spawn(move || tx.send(8));
        let got = select! {
            recv(rx) -> v => v.ok(),
            default(Duration::from_secs(60)) => None,
        };
        assert_eq!(got, Some(8));
        sender.join().unwrap().unwrap();
    });
}

#[test]
fn a_send_arm_completes_when_a_receiver_arrives() {
    coronet_runtime::run(|| {
        let (tx, rx) = chan::bounded::<u32>(0);
        let (_idle_tx, idle_rx) = chan::bounded::<u32>(0);
        let receiver = spawn(move || rx.recv());
        let which = select! {
            send(tx, 11) -> res => { res.unwrap(); "sent" }
            recv(idle_rx) -> _ => "received",
        };
        assert_eq!(which, "sent");
        assert_eq!(receiver.join().unwrap(), Ok(11));
    });
}

#[test]
fn disconnected_arms_are_ready() {
    let (tx, rx) = chan::bounded::<u8>(0);
    drop(tx);
    select! {
        recv(rx) -> v => assert_eq!(v, Err(RecvError)),
    }
    let (tx, rx) = chan::bounded::<u8>(0);
    drop(rx);
    select! {
        send(tx, 5) -> res => assert_eq!(res, Err(SendError(5))),
    }
}

#[test]
fn a_parked_select_is_woken_by_disconnection() {
    let rt = Builder::new().workers(1).build().unwrap();
    rt.block_on(|| {
        let (tx_a, rx_a) = chan::bounded::<u8>(0);
        let (tx_b, rx_b) = chan::bounded::<u8>(0);
        let waiter = spawn(move || {
            select! {
                recv(rx_a) -> v => ("a", v),
                recv(rx_b) -> v => ("b", v),
            }
        });
        for _ in 0..10 {
            coronet_runtime::yield_now();
        }
        drop(tx_b);
        assert_eq!(waiter.join().unwrap(), ("b", Err(RecvError)));
        drop(tx_a);
    });
}

#[test]
fn select_on_send_and_recv_of_the_same_channel_does_not_match_itself() {
    coronet_runtime::run(|| {
        let (tx, rx) = chan::bounded::<u8>(0);
        let timed_out = select! {
            send(tx, 1) -> _ => false,
            recv(rx) -> _ => false,
            default(Duration::from_millis(10)) => true,
        };
        assert!(timed_out);
    });
}

#[test]
fn competing_selects_deliver_each_message_once() {
    // Consumers select over two channels while producers feed both; a message must go to
    // exactly one select, never to a stale arm of one that already completed.
    let rt = Builder::new().workers(4).build().unwrap();
    let total = rt.block_on(|| {
        let (tx_a, rx_a) = chan::bounded::<u64>(0);
        let (tx_b, rx_b) = chan::bounded::<u64>(2);
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let (rx_a, rx_b) = (rx_a.clone(), rx_b.clone());
                spawn(move || {
                    let mut sum = 0u64;
                    loop {
                        select! {
                            recv(rx_a) -> v => match v {
                                Ok(v) => sum += v,
                                // A disconnected arm stays ready: finish on the other alone.
                                Err(_) => break sum + rx_b.iter().sum::<u64>(),
                            },
                            recv(rx_b) -> v => match v {
                                Ok(v) => sum += v,
                                Err(_) => break sum + rx_a.iter().sum::<u64>(),
                            },
                        }
                    }
                })
            })
            .collect();
        drop((rx_a, rx_b));
        let producers: Vec<_> = [tx_a, tx_b]
            .into_iter()
            .enumerate()
            .map(|(k, tx)| {
                spawn(move || {
                    for i in 0..20_000u64 {
                        tx.send(i * 2 + k as u64).unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        consumers
            .into_iter()
            .map(|c| c.join().unwrap())
            .sum::<u64>()
    });
    assert_eq!(total, (0..40_000u64).sum::<u64>());
}

#[test]
fn select_sends_and_receives_with_blocks_and_trailing_commas() {
    let (tx, rx) = chan::unbounded::<i32>();
    let v = select! {
        send(tx, 1) -> res => { res.unwrap(); 1 },
    };
    assert_eq!(v, 1);
    let v = select! {
        recv(rx) -> msg => { msg.unwrap() }
        default => { -1 }
    };
    assert_eq!(v, 1);
    // A temporary channel expression and a reference to a receiver both work.
    let rx_ref = &rx;
    let got = select! {
        recv(rx_ref) -> _ => 0,
        recv(chan::bounded::<i32>(0).1) -> _ => 1,
        default => 2,
    };
    assert_eq!(got, 2);
}

#[test]
fn an_empty_select_with_a_timeout_just_waits() {
    let start = Instant::now();
    select! {
        default(Duration::from_millis(5)) => {}
    }
    assert!(start.elapsed() >= Duration::from_millis(5));
}

#[test]
fn select_arms_accept_the_usual_expression_forms() {
    fn first_ready(a: &chan::Receiver<u8>, b: &chan::Receiver<u8>) -> Option<u8> {
        // `default` first, a `return` in a body, an `if` body, a nested `select!`.
        let v = select! {
            default => return None,
            recv(a) -> v => if v == Ok(1) { 1 } else { 99 },
            recv(b) -> v => select! {
                recv(a) -> w => w.unwrap() + 100,
                default => v.unwrap(),
            },
        };
        Some(v)
    }
    let (tx_a, rx_a) = chan::bounded(1);
    let (tx_b, rx_b) = chan::bounded(1);
    assert_eq!(first_ready(&rx_a, &rx_b), None);
    tx_b.send(2).unwrap();
    assert_eq!(first_ready(&rx_a, &rx_b), Some(2));
    tx_a.send(1).unwrap();
    assert_eq!(first_ready(&rx_a, &rx_b), Some(1));
    // A message expression with commas and a channel expression that is a call.
    let (pair_tx, pair_rx) = chan::unbounded::<(u8, u8)>();
    let sender = || pair_tx.clone();
    select! {
        send(sender(), (1, 2)) -> res => res.unwrap(),
    }
    assert_eq!(pair_rx.try_recv(), Ok((1, 2)));
}
