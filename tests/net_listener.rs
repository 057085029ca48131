//! Listener behaviour beyond accept: Go's accept deadline (past, future, extended and
//! shortened while an accept waits) on TCP and Unix listeners, and the listen backlog (a
//! burst of connects larger than std's 128 is queued, not dropped).
//!
//! Only lower time bounds are asserted.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

#[cfg(unix)]
use coronet::net::unix::{UnixListener, UnixStream};
use coronet::net::{TcpListener, TcpStream};
use coronet::runtime::WaitKind;

#[test]
fn past_accept_deadline_fails_at_once_even_with_a_connection_queued() {
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let past = Instant::now() - Duration::from_millis(1);
        listener.set_deadline(Some(past)).unwrap();
        assert_eq!(listener.deadline(), Some(past));
        let error = listener.accept().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::TimedOut, "{error:?}");
        // Clearing the deadline makes the queued connection acceptable again.
        listener.set_deadline(None).unwrap();
        assert_eq!(listener.deadline(), None);
        listener.accept().unwrap();
    });
}

#[test]
fn future_accept_deadline_wakes_a_blocked_accept() {
    let _watchdog = util::watchdog("future_accept_deadline", Duration::from_secs(60));
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let wait = Duration::from_millis(50);
        let start = Instant::now();
        listener.set_deadline(Some(start + wait)).unwrap();
        let error = listener.accept().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::TimedOut, "{error:?}");
        assert!(start.elapsed() >= wait);
    });
}

#[test]
fn extending_the_deadline_while_accept_waits_keeps_it_waiting() {
    let _watchdog = util::watchdog("extend_accept_deadline", Duration::from_secs(60));
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let soon = Instant::now() + Duration::from_millis(200);
        listener.set_deadline(Some(soon)).unwrap();
        let acceptor = {
            let listener = listener.try_clone().unwrap();
            coronet::spawn(move || listener.accept().map(|(conn, _)| conn))
        };
        util::parked_on(&acceptor, WaitKind::Readable);
        // Extended far past the first deadline: the waiting accept must not fail at `soon`.
        listener
            .set_deadline(Some(Instant::now() + Duration::from_secs(3600)))
            .unwrap();
        // Connect only after the first deadline has certainly passed.
        while Instant::now() < soon + Duration::from_millis(20) {
            coronet::sleep(Duration::from_millis(20));
        }
        let mut client = TcpStream::connect(addr).unwrap();
        let mut server = acceptor
            .join()
            .unwrap()
            .expect("accept after the extension");
        client.write_all(b"ok").unwrap();
        let mut buf = [0u8; 2];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok");
    });
}

#[test]
fn a_past_deadline_wakes_an_accept_waiting_without_one() {
    let _watchdog = util::watchdog("past_deadline_wakes_accept", Duration::from_secs(60));
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let acceptor = {
            let listener = listener.try_clone().unwrap();
            coronet::spawn(move || listener.accept().map(drop))
        };
        util::parked_on(&acceptor, WaitKind::Readable);
        listener.set_deadline(Some(Instant::now())).unwrap();
        let error = acceptor.join().unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::TimedOut, "{error:?}");
    });
}

#[cfg(unix)] // Unix domain sockets
#[test]
fn unix_listener_accept_deadline() {
    let dir = util::TempDir::new("unix-accept-deadline");
    let path = dir.join("sock");
    coronet::run(move || {
        let listener = UnixListener::bind(&path).unwrap();
        listener
            .set_deadline(Some(Instant::now() + Duration::from_millis(20)))
            .unwrap();
        let error = listener.accept().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::TimedOut, "{error:?}");
        listener.set_deadline(None).unwrap();
        let _client = UnixStream::connect(&path).unwrap();
        listener.accept().unwrap();
    });
}

#[test]
fn accept_deadline_on_a_plain_thread() {
    let listener = TcpListener::bind(util::LOCAL).unwrap();
    listener
        .set_deadline(Some(Instant::now() + Duration::from_millis(20)))
        .unwrap();
    let error = listener.accept().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TimedOut, "{error:?}");
}

/// The system's listen backlog maximum, as the listener uses it.
fn somaxconn() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(128)
}

/// With std's backlog of 128 the kernel drops the SYNs past the queue and those connects
/// hang in retransmits (1 s, 3 s, 7 s, ...) until the test's 30 s connect timeout fails
/// them; with the system's maximum, every connect of the burst completes before a single
/// accept.
#[test]
fn a_burst_of_connects_beyond_128_is_queued_before_any_accept() {
    util::raise_fd_limit();
    let burst = somaxconn().min(1000);
    if burst <= 200 || util::fd_limit() < 2 * burst as u64 + 64 {
        eprintln!("skipped: somaxconn or the fd limit is too small for a burst test");
        return;
    }
    let _watchdog = util::watchdog("connect_burst", Duration::from_secs(120));
    coronet::run(move || {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..burst)
            .map(|_| {
                coronet::spawn(move || TcpStream::connect_timeout(&addr, Duration::from_secs(30)))
            })
            .collect();
        let mut connected = Vec::with_capacity(burst);
        for client in clients {
            connected.push(client.join().unwrap().expect("connect within the backlog"));
        }
        for (i, conn) in connected.iter_mut().enumerate() {
            conn.write_all(&(i as u32).to_le_bytes()).unwrap();
        }
        // Every queued connection is accepted and carries its own bytes.
        let mut seen = vec![false; burst];
        for _ in 0..burst {
            let (mut conn, _) = listener.accept().unwrap();
            let mut id = [0u8; 4];
            conn.read_exact(&mut id).unwrap();
            let id = u32::from_le_bytes(id) as usize;
            assert!(
                !std::mem::replace(&mut seen[id], true),
                "{id} accepted twice"
            );
        }
    });
}
