//! One channel shared by plain threads and coroutines on several workers.

use std::thread;

use coronet_runtime::chan;
use coronet_runtime::runtime::Builder;

#[test]
fn threads_and_coroutines_produce_and_consume_on_one_channel() {
    const PER_PRODUCER: u64 = 20_000;
    let rt = Builder::new().workers(2).build().unwrap();
    for cap in [0, 16] {
        let (tx, rx) = chan::bounded::<u64>(cap);
        let (sum_tx, sum_rx) = chan::unbounded::<u64>();
        // Two producer threads, two producer coroutines; two consumer threads, two consumer
        // coroutines. Producer k sends k*PER_PRODUCER .. (k+1)*PER_PRODUCER.
        let mut threads = Vec::new();
        let mut coroutines = Vec::new();
        for k in 0..4u64 {
            let tx = tx.clone();
            let produce = move || {
                for i in k * PER_PRODUCER..(k + 1) * PER_PRODUCER {
                    tx.send(i).unwrap();
                }
            };
            if k % 2 == 0 {
                threads.push(thread::spawn(produce));
            } else {
                coroutines.push(rt.spawn(produce));
            }
        }
        for k in 0..4 {
            let (rx, sum_tx) = (rx.clone(), sum_tx.clone());
            let consume = move || sum_tx.send(rx.iter().sum::<u64>()).unwrap();
            if k % 2 == 0 {
                threads.push(thread::spawn(consume));
            } else {
                coroutines.push(rt.spawn(consume));
            }
        }
        drop((tx, rx, sum_tx));
        let total: u64 = sum_rx.iter().sum();
        for t in threads {
            t.join().unwrap();
        }
        for c in coroutines {
            c.join().unwrap();
        }
        assert_eq!(total, (0..4 * PER_PRODUCER).sum::<u64>(), "capacity {cap}");
    }
}

#[test]
fn a_thread_and_a_coroutine_ping_pong_through_rendezvous_channels() {
    let (ping_tx, ping_rx) = chan::bounded::<u32>(0);
    let (pong_tx, pong_rx) = chan::bounded::<u32>(0);
    let echo = coronet_runtime::spawn(move || {
        for v in ping_rx {
            pong_tx.send(v * 2).unwrap();
        }
    });
    for i in 0..2_000 {
        ping_tx.send(i).unwrap();
        assert_eq!(pong_rx.recv().unwrap(), i * 2);
    }
    drop(ping_tx);
    echo.join().unwrap();
}

#[test]
fn senders_and_receivers_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<chan::Sender<String>>();
    check::<chan::Receiver<String>>();
}
