//! Many producers and consumers on several workers: every message arrives exactly once.
//!
//! Each message is a distinct number; consumers report the count, sum and sum of squares of
//! what they received, which would differ if a message were lost or delivered twice.

use coronet_runtime::chan::{self, Receiver, Sender};
use coronet_runtime::runtime::Builder;
use coronet_runtime::spawn;

#[derive(Default, Debug, PartialEq, Eq, Clone, Copy)]
struct Tally {
    count: u64,
    sum: u128,
    squares: u128,
}

impl Tally {
    fn add(&mut self, v: u64) {
        self.count += 1;
        self.sum += u128::from(v);
        self.squares += u128::from(v) * u128::from(v);
    }

    fn merge(mut self, other: Tally) -> Tally {
        self.count += other.count;
        self.sum += other.sum;
        self.squares += other.squares;
        self
    }

    fn of_range(n: u64) -> Tally {
        (0..n).fold(Tally::default(), |mut t, v| {
            t.add(v);
            t
        })
    }
}

/// Runs `producers` × `per_producer` distinct messages through the channel to `consumers`
/// consumer coroutines, on a runtime with `workers` workers.
fn exchange(
    workers: usize,
    (tx, rx): (Sender<u64>, Receiver<u64>),
    producers: u64,
    consumers: usize,
    per_producer: u64,
) {
    let rt = Builder::new().workers(workers).build().unwrap();
    let total = rt.block_on(move || {
        let producer_handles: Vec<_> = (0..producers)
            .map(|p| {
                let tx = tx.clone();
                spawn(move || {
                    for i in 0..per_producer {
                        tx.send(p * per_producer + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumer_handles: Vec<_> = (0..consumers)
            .map(|_| {
                let rx = rx.clone();
                spawn(move || {
                    let mut tally = Tally::default();
                    for v in &rx {
                        tally.add(v);
                    }
                    tally
                })
            })
            .collect();
        drop(rx);
        for h in producer_handles {
            h.join().unwrap();
        }
        consumer_handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold(Tally::default(), Tally::merge)
    });
    assert_eq!(total, Tally::of_range(producers * per_producer));
}

#[test]
fn a_million_messages_through_a_bounded_channel_on_four_workers() {
    exchange(4, chan::bounded(64), 8, 8, 125_000);
}

#[test]
fn unbounded_channel_on_two_workers_delivers_everything_once() {
    exchange(2, chan::unbounded(), 4, 4, 50_000);
}

#[test]
fn rendezvous_channel_on_four_workers_delivers_everything_once() {
    exchange(4, chan::bounded(0), 4, 4, 25_000);
}

#[test]
fn capacity_one_channel_with_more_consumers_than_producers() {
    exchange(2, chan::bounded(1), 2, 16, 25_000);
}
