//! Idle workers poll the OS (runtime/src/poll.rs). When every worker is busy nobody polls,
//! and the monitor must: I/O readiness and timers still arrive while all workers compute.
//!
//! Both tests keep the only worker busy in a loop that ends when the I/O (or timer) has been
//! delivered, or after a minute: a missing fallback shows up as a failed assertion.

mod util;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use coronet::net::{TcpListener, TcpStream};
use coronet::runtime::WaitKind;

/// A one-worker runtime and a loopback connection whose both ends are registered with it
/// (created on one of its coroutines).
fn one_worker_runtime_with_a_connection() -> (coronet::Runtime, TcpStream, TcpStream) {
    let runtime = coronet::runtime::Builder::new().workers(1).build().unwrap();
    let (client, server) = runtime.block_on(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    });
    (runtime, client, server)
}

/// Spawns a coroutine that keeps `runtime`'s only worker busy until `done` is set (or a
/// minute has passed); returns once it runs. The result says whether `done` ended it.
fn occupy_the_worker(
    runtime: &coronet::Runtime,
    done: &Arc<AtomicBool>,
) -> coronet::JoinHandle<bool> {
    let (started_tx, started_rx) = mpsc::channel();
    let done = done.clone();
    let busy = runtime.spawn(move || {
        started_tx.send(()).unwrap();
        let limit = Instant::now() + Duration::from_secs(60);
        while !done.load(Ordering::Acquire) {
            if Instant::now() > limit {
                return false;
            }
            std::hint::spin_loop();
        }
        true
    });
    started_rx.recv().unwrap();
    busy
}

#[test]
fn readiness_is_delivered_while_every_worker_computes() {
    let (runtime, mut client, mut server) = one_worker_runtime_with_a_connection();
    let done = Arc::new(AtomicBool::new(false));
    let busy = occupy_the_worker(&runtime, &done);
    // The reader is a coroutine of a second runtime, so it can run while the first one's
    // only worker computes; its socket's readiness is the first runtime's to deliver, and
    // nobody but that runtime's monitor polls now.
    let other = coronet::runtime::Builder::new().workers(1).build().unwrap();
    let reader = other.spawn(move || {
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).map(|()| buf)
    });
    util::parked_on(&reader, WaitKind::Readable);
    client.write_all(b"hello").unwrap();
    let got = reader.join().unwrap().unwrap();
    done.store(true, Ordering::Release);
    assert_eq!(&got, b"hello");
    assert!(
        busy.join().unwrap(),
        "the read completed only after the busy coroutine gave up"
    );
}

#[test]
fn a_plain_thread_deadline_fires_while_every_worker_computes() {
    let (runtime, _client, server) = one_worker_runtime_with_a_connection();
    let done = Arc::new(AtomicBool::new(false));
    let busy = occupy_the_worker(&runtime, &done);
    // The deadline is a runtime timer; with the worker busy only the monitor fires it.
    server
        .set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))
        .unwrap();
    let error = (&server).read(&mut [0u8; 8]).unwrap_err();
    done.store(true, Ordering::Release);
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error:?}");
    assert!(
        busy.join().unwrap(),
        "the deadline fired only after the busy coroutine gave up"
    );
}
