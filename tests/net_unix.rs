//! Unix domain sockets: stream and datagram round trips over paths in a temporary directory,
//! pairs, addresses, shutdown and close.

// Unix only: Unix domain sockets (`coronet::net::unix`) are not built on Windows.
#![cfg(unix)]

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use coronet::net::is_closed_error;
use coronet::net::unix::{UnixDatagram, UnixListener, UnixStream};
use coronet::runtime::WaitKind;

#[test]
fn unix_stream_round_trip() {
    let dir = util::TempDir::new("unix-stream");
    let path = dir.join("echo.sock");
    coronet::run(move || {
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        let server = coronet::spawn(move || {
            let mut served = 0;
            for conn in listener.incoming().take(20) {
                let mut conn = conn.unwrap();
                coronet::spawn(move || {
                    let mut buf = [0u8; 4096];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => conn.write_all(&buf[..n]).unwrap(),
                        }
                    }
                });
                served += 1;
            }
            served
        });
        let clients: Vec<_> = (0..20u64)
            .map(|id| {
                let path = path.clone();
                coronet::spawn(move || {
                    let mut conn = UnixStream::connect(&path).unwrap();
                    assert_eq!(
                        conn.peer_addr().unwrap().as_pathname(),
                        Some(path.as_path())
                    );
                    assert!(conn.local_addr().unwrap().is_unnamed());
                    let sent = util::pattern_at(id, 0, 100_000);
                    let writer = {
                        let conn = conn.try_clone().unwrap();
                        let sent = sent.clone();
                        coronet::spawn(move || {
                            (&conn).write_all(&sent).unwrap();
                            conn.shutdown(Shutdown::Write).unwrap();
                        })
                    };
                    let mut echoed = Vec::new();
                    conn.read_to_end(&mut echoed).unwrap();
                    writer.join().unwrap();
                    assert!(echoed == sent, "connection {id}: wrong bytes");
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        assert_eq!(server.join().unwrap(), 20);
    });
}

#[test]
fn unix_accept_reports_the_peer_address() {
    let dir = util::TempDir::new("unix-accept");
    let path = dir.join("l.sock");
    coronet::run(move || {
        let listener = UnixListener::bind(&path).unwrap();
        let _client = UnixStream::connect(&path).unwrap();
        let (conn, addr) = listener.accept().unwrap();
        assert!(addr.is_unnamed());
        assert_eq!(
            conn.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        // Binding the same path again fails, as std.
        assert_eq!(
            UnixListener::bind(&path).unwrap_err().kind(),
            ErrorKind::AddrInUse
        );
    });
}

#[test]
fn unix_pair_shutdown_and_timeouts() {
    coronet::run(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(
            b.read(&mut [0u8; 4]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        b.set_read_timeout(None).unwrap();
        let reader = coronet::spawn(move || {
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            got
        });
        util::parked_on(&reader, WaitKind::Readable);
        a.write_all(b"pair").unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reader.join().unwrap(), b"pair");
    });
}

#[test]
fn unix_close_unblocks_accept_and_read() {
    let _watchdog = util::watchdog("unix_close", Duration::from_secs(60));
    let dir = util::TempDir::new("unix-close");
    let path = dir.join("c.sock");
    coronet::run(move || {
        let listener = UnixListener::bind(&path).unwrap();
        let acceptor = listener.try_clone().unwrap();
        let accepting = coronet::spawn(move || acceptor.accept().map(drop));
        let (a, _b) = UnixStream::pair().unwrap();
        let reader_handle = a.try_clone().unwrap();
        let reading = coronet::spawn(move || (&reader_handle).read(&mut [0u8; 4]));
        util::parked_on(&accepting, WaitKind::Readable);
        util::parked_on(&reading, WaitKind::Readable);
        listener.close().unwrap();
        a.close().unwrap();
        assert!(is_closed_error(&accepting.join().unwrap().unwrap_err()));
        assert!(is_closed_error(&reading.join().unwrap().unwrap_err()));
    });
}

#[test]
fn unix_datagram_round_trip() {
    let dir = util::TempDir::new("unix-dgram");
    let server_path = dir.join("server.sock");
    let client_path = dir.join("client.sock");
    coronet::run(move || {
        let server = UnixDatagram::bind(&server_path).unwrap();
        let echo = coronet::spawn(move || {
            let mut buf = [0u8; 2048];
            for _ in 0..50 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                let from = from.as_pathname().expect("bound client").to_owned();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        let client = UnixDatagram::bind(&client_path).unwrap();
        assert_eq!(
            client.local_addr().unwrap().as_pathname(),
            Some(client_path.as_path())
        );
        let mut buf = [0u8; 2048];
        for i in 0..50u64 {
            let sent = util::pattern_at(i, 0, 1 + i as usize * 20);
            client.send_to(&sent, &server_path).unwrap();
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(from.as_pathname(), Some(server_path.as_path()));
            assert_eq!(&buf[..n], &sent[..]);
        }
        echo.join().unwrap();
    });
}

#[test]
fn unix_datagram_pair_connect_and_unbound() {
    let dir = util::TempDir::new("unix-dgram2");
    let path = dir.join("target.sock");
    coronet::run(move || {
        let (a, b) = UnixDatagram::pair().unwrap();
        let receiver = coronet::spawn(move || {
            let mut buf = [0u8; 16];
            let n = b.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        util::parked_on(&receiver, WaitKind::Readable);
        a.send(b"paired").unwrap();
        assert_eq!(receiver.join().unwrap(), b"paired");

        let target = UnixDatagram::bind(&path).unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        sender.connect(&path).unwrap();
        assert_eq!(
            sender.peer_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        sender.send(b"connected").unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = target.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"connected");
        assert!(from.is_unnamed());
        target
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        assert_eq!(
            target.recv(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        sender.shutdown(Shutdown::Both).unwrap();
    });
}

#[test]
fn unix_connect_to_a_missing_path_fails() {
    let dir = util::TempDir::new("unix-missing");
    let error = UnixStream::connect(dir.join("nobody.sock")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
}
