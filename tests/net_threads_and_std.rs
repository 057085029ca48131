//! The same types from plain threads (they block the thread), mixed with coroutines, and
//! std sockets and raw descriptors converted in and out.

// Unix only: converts through `*Fd` traits and uses Unix sockets; Windows has the
// `*Socket` conversions (covered by the doc tests of coronet-net under Wine).
#![cfg(unix)]

mod util;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd};
use std::time::Duration;

use coronet::net::unix::{UnixDatagram, UnixListener, UnixStream};
use coronet::net::{TcpListener, TcpStream, UdpSocket};

#[test]
fn echo_between_plain_threads() {
    let _watchdog = util::watchdog("echo_plain_threads", Duration::from_secs(60));
    assert!(!coronet::in_coroutine());
    let listener = TcpListener::bind(util::LOCAL).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..4 {
            let (mut conn, _) = listener.accept().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => conn.write_all(&buf[..n]).unwrap(),
                    }
                }
            });
        }
    });
    let clients: Vec<_> = (0..4u64)
        .map(|id| {
            std::thread::spawn(move || {
                let mut conn = TcpStream::connect(addr).unwrap();
                let sent = util::pattern_at(id, 0, 300_000);
                let writer = {
                    let conn = conn.try_clone().unwrap();
                    let sent = sent.clone();
                    std::thread::spawn(move || {
                        (&conn).write_all(&sent).unwrap();
                        conn.shutdown(std::net::Shutdown::Write).unwrap();
                    })
                };
                let mut got = Vec::new();
                conn.read_to_end(&mut got).unwrap();
                writer.join().unwrap();
                assert!(got == sent);
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    server.join().unwrap();
}

#[test]
fn coroutine_server_plain_thread_client() {
    let listener = TcpListener::bind(util::LOCAL).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = coronet::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(&buf).unwrap();
    });
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(b"mixed").unwrap();
    let mut buf = [0u8; 5];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"mixed");
    server.join().unwrap();
}

#[test]
fn std_sockets_converted_in() {
    coronet::run(|| {
        let std_listener = std::net::TcpListener::bind(util::LOCAL).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = TcpListener::from(std_listener);
        let std_client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut client = TcpStream::from_std(std_client).unwrap();
        let mut server = server;
        client.write_all(b"std").unwrap();
        let mut buf = [0u8; 3];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"std");

        let std_udp = std::net::UdpSocket::bind(util::LOCAL).unwrap();
        let udp = UdpSocket::from(std_udp);
        udp.send_to(b"u", udp.local_addr().unwrap()).unwrap();
        assert_eq!(udp.recv(&mut buf).unwrap(), 1);

        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (UnixStream::from(a), UnixStream::from(b));
        a.write_all(b"unx").unwrap();
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"unx");

        let (c, d) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let (c, d) = (UnixDatagram::from(c), UnixDatagram::from(d));
        c.send(b"dg").unwrap();
        assert_eq!(d.recv(&mut buf).unwrap(), 2);

        let dir = util::TempDir::new("std-unix");
        let std_listener = std::os::unix::net::UnixListener::bind(dir.join("l.sock")).unwrap();
        let listener = UnixListener::from(std_listener);
        let _client = UnixStream::connect(dir.join("l.sock")).unwrap();
        listener.accept().unwrap();
    });
}

#[test]
fn raw_descriptors_in_and_out() {
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(client.as_fd().as_raw_fd(), client.as_raw_fd());

        // Out: the descriptor survives (deregistered) and works as a std stream.
        let fd = client.into_raw_fd();
        // SAFETY: `fd` was just given up by `into_raw_fd`; we own it now.
        let mut std_client = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        std_client.set_nonblocking(false).unwrap();
        std_client.write_all(b"raw").unwrap();
        let mut buf = [0u8; 3];
        (&server).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"raw");

        // In again.
        // SAFETY: `into_raw_fd` hands over ownership of an open TCP socket.
        let mut client = unsafe { TcpStream::from_raw_fd(std_client.into_raw_fd()) };
        (&server).write_all(b"back").unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"back");

        // A shared socket gives out a duplicate and keeps working.
        let clone = client.try_clone().unwrap();
        let dup = client.into_raw_fd();
        (&clone).write_all(b"still").unwrap();
        let mut buf = [0u8; 5];
        (&server).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"still");
        // SAFETY: `dup` is an owned duplicate.
        drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(dup) });
    });
}

#[test]
fn sockets_move_between_a_plain_thread_and_coroutines() {
    // Created on a plain thread (default runtime), used in a coroutine of another runtime,
    // then back on the thread.
    let listener = TcpListener::bind(util::LOCAL).unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let runtime = coronet::runtime::Builder::new().workers(2).build().unwrap();
    let echo = runtime.spawn(move || {
        let mut server = server;
        for _ in 0..10 {
            let mut buf = [0u8; 4];
            server.read_exact(&mut buf).unwrap();
            server.write_all(&buf).unwrap();
        }
        server
    });
    for i in 0..10u32 {
        client.write_all(&i.to_le_bytes()).unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(u32::from_le_bytes(buf), i);
    }
    let mut server = echo.join().unwrap();
    drop(runtime);
    // Back on this thread, after its coroutine's runtime is gone.
    client.write_all(b"home").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"home");
}
