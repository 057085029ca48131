//! Waiting on a registered fd: several coroutines in one direction, close, deadlines.
// Unix only: drives registrations with Unix socket pairs and datagrams; the same waits over
// TCP run on Windows through coronet-net's tests.
#![cfg(unix)]

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use coronet_runtime::io::{Interest, Registration, WaitError};
use coronet_runtime::runtime::Builder;

/// Receives one datagram the way coronet-net does: snapshot, syscall, wait on WouldBlock.
fn recv_one(socket: &UnixDatagram, registration: &Registration) -> io::Result<u8> {
    let mut buf = [0u8; 1];
    loop {
        let since = registration.readiness(Interest::Read);
        match socket.recv(&mut buf) {
            Ok(_) => return Ok(buf[0]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => registration
                .wait_since(Interest::Read, since)
                .map_err(|e| io::Error::other(e.to_string()))?,
            Err(e) => return Err(e),
        }
    }
}

/// One edge-triggered event can stand for data enough for several waiters: every waiter
/// whose snapshot predates it must retry, or some would wait for an edge that never comes.
#[test]
fn one_event_wakes_every_waiter_of_a_direction() {
    let rt = Builder::new().workers(2).build().unwrap();
    for round in 0..200 {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let a = Arc::new(a);
        let registration = Arc::new(rt.block_on({
            let fd = a.as_raw_fd();
            move || Registration::new(fd).unwrap()
        }));
        let (started_tx, started_rx) = mpsc::channel();
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let (a, registration, started_tx) =
                    (a.clone(), registration.clone(), started_tx.clone());
                rt.spawn(move || {
                    started_tx.send(()).unwrap();
                    recv_one(&a, &registration).unwrap()
                })
            })
            .collect();
        for _ in 0..4 {
            started_rx.recv().unwrap();
        }
        for i in 0..4u8 {
            b.send(&[i]).unwrap();
        }
        let mut got: Vec<u8> = receivers.into_iter().map(|r| r.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3], "round {round}");
    }
}

#[test]
fn close_wakes_a_waiter_with_closed() {
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let registration = Arc::new(Registration::new(a.as_raw_fd()).unwrap());
    let (started_tx, started_rx) = mpsc::channel();
    let waiter = {
        let registration = registration.clone();
        coronet_runtime::spawn(move || {
            started_tx.send(()).unwrap();
            let since = registration.readiness(Interest::Read);
            let mut buf = [0u8; 8];
            match (&a).read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => panic!("unexpected {other:?}"),
            }
            registration.wait_since(Interest::Read, since)
        })
    };
    started_rx.recv().unwrap();
    registration.close();
    // Whether the waiter had parked or not, it sees the close.
    assert_eq!(waiter.join().unwrap(), Err(WaitError::Closed));
}

#[test]
fn a_deadline_extended_while_waiting_takes_effect() {
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let registration = Arc::new(Registration::new(a.as_raw_fd()).unwrap());
    let first = Instant::now() + Duration::from_secs(1);
    registration.set_deadline(Interest::Read, Some(first));
    let waiter = {
        let registration = registration.clone();
        coronet_runtime::spawn(move || {
            let since = registration.readiness(Interest::Read);
            registration.wait_since(Interest::Read, since)
        })
    };
    // Extend far away (whether or not the waiter has parked yet), then let the first
    // deadline pass: it must not fire any more.
    registration.set_deadline(
        Interest::Read,
        Some(Instant::now() + Duration::from_secs(3600)),
    );
    std::thread::sleep(first.saturating_duration_since(Instant::now()) + Duration::from_millis(50));
    assert!(!waiter.is_finished(), "the old deadline fired");
    b.write_all(b"x").unwrap();
    assert_eq!(waiter.join().unwrap(), Ok(()));
    // A past deadline fails at once.
    registration.set_deadline(
        Interest::Read,
        Some(Instant::now() - Duration::from_millis(1)),
    );
    let since = registration.readiness(Interest::Read);
    assert_eq!(
        registration.wait_since(Interest::Read, since),
        Err(WaitError::TimedOut)
    );
}
