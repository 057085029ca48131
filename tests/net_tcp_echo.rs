//! TCP data path: echo under load, large writes that hit EAGAIN mid-buffer, end of stream,
//! vectored I/O, peek, and one connection read and written by two coroutines at once.

mod util;

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use coronet::net::{TcpListener, TcpStream};
use coronet::runtime::WaitKind;

/// Starts an echo server (one coroutine per connection) and returns its address.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(util::LOCAL).unwrap();
    let addr = listener.local_addr().unwrap();
    coronet::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            coronet::spawn(move || {
                let mut buf = vec![0u8; 8192];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn echo_1000_concurrent_connections() {
    const CONNS: usize = 1000;
    const ROUNDS: u64 = 4;
    const CHUNK: usize = 1024;
    let _watchdog = util::watchdog("echo_1000_concurrent_connections", Duration::from_secs(120));
    util::raise_fd_limit();
    assert!(
        util::fd_limit() >= 2 * CONNS as u64 + 100,
        "RLIMIT_NOFILE too low for {CONNS} connections: {}",
        util::fd_limit()
    );
    let verified = coronet::run(|| {
        let addr = echo_server();
        // All connections open at the same time before any data flows.
        let conns: Vec<TcpStream> = (0..CONNS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let clients: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(id, mut conn)| {
                coronet::spawn(move || {
                    let mut echoed = vec![0u8; CHUNK];
                    for round in 0..ROUNDS {
                        let sent = util::pattern_at(id as u64, round * CHUNK as u64, CHUNK);
                        conn.write_all(&sent).unwrap();
                        conn.read_exact(&mut echoed).unwrap();
                        assert_eq!(echoed, sent, "connection {id} round {round}: wrong bytes");
                    }
                    conn.shutdown(Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    conn.read_to_end(&mut rest).unwrap();
                    assert!(rest.is_empty());
                    ROUNDS as usize * CHUNK
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(verified, CONNS * ROUNDS as usize * CHUNK);
}

#[test]
fn write_64_mib_to_a_slow_reader() {
    const LEN: usize = 64 << 20;
    let _watchdog = util::watchdog("write_64_mib_to_a_slow_reader", Duration::from_secs(120));
    let data: Arc<Vec<u8>> = Arc::new(util::pattern_at(7, 0, LEN));
    let expected = data.clone();
    let (written, read) = coronet::run(move || {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = coronet::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            // One call: the kernel buffer fills long before 64 MiB, so `send` returns
            // partial counts and EAGAIN, and the coroutine parks mid-buffer many times.
            conn.write_all(&data).unwrap();
            conn.shutdown(Shutdown::Write).unwrap();
            data.len()
        });
        let mut conn = TcpStream::connect(addr).unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let mut offset = 0;
        loop {
            // Slow: small reads, and other coroutines run between them.
            for _ in 0..4 {
                coronet::yield_now();
            }
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(offset + n <= LEN, "more bytes than written");
            assert!(
                buf[..n] == expected[offset..offset + n],
                "corrupt bytes at {offset}"
            );
            offset += n;
        }
        (writer.join().unwrap(), offset)
    });
    assert_eq!(written, LEN);
    assert_eq!(read, LEN);
}

#[test]
fn read_returns_zero_after_peer_shutdown() {
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let reader = coronet::spawn(move || {
            let mut got = Vec::new();
            // Blocks (probably) before the peer's data and FIN arrive; either way it must
            // see the bytes, then 0.
            server.read_to_end(&mut got).unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(server.read(&mut buf).unwrap(), 0, "0 again after EOF");
            got
        });
        util::parked_on(&reader, WaitKind::Readable);
        client.write_all(b"last words").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(reader.join().unwrap(), b"last words");
    });
}

#[test]
fn dropping_the_last_handle_closes_the_connection() {
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let clone = client.try_clone().unwrap();
        drop(client);
        // The clone keeps the socket open.
        (&clone).write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        server.read_exact(&mut one).unwrap();
        drop(clone);
        assert_eq!(server.read(&mut one).unwrap(), 0);
    });
}

#[test]
fn one_connection_read_and_written_by_two_coroutines() {
    const LEN: usize = 4 << 20;
    coronet::run(|| {
        let addr = echo_server();
        let conn = Arc::new(TcpStream::connect(addr).unwrap());
        let writer = {
            let conn = conn.clone();
            coronet::spawn(move || {
                let data = util::pattern_at(3, 0, LEN);
                for chunk in data.chunks(60_000) {
                    (&*conn).write_all(chunk).unwrap();
                }
                conn.shutdown(Shutdown::Write).unwrap();
            })
        };
        let mut got = Vec::with_capacity(LEN);
        (&*conn).read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got.len(), LEN);
        assert!(got == util::pattern_at(3, 0, LEN));
    });
}

#[test]
fn vectored_io_and_peek() {
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
        assert_eq!(client.peer_addr().unwrap(), listener.local_addr().unwrap());

        let n = client
            .write_vectored(&[IoSlice::new(b"hello, "), IoSlice::new(b"world")])
            .unwrap();
        assert_eq!(n, 12);
        let mut peeked = [0u8; 5];
        // Peek parks until data is there, and leaves it queued.
        assert_eq!(server.peek(&mut peeked).unwrap(), 5);
        assert_eq!(&peeked, b"hello");
        let (mut a, mut b) = ([0u8; 7], [0u8; 5]);
        let mut got = 0;
        while got < 12 {
            let mut bufs = [
                IoSliceMut::new(&mut a[got.min(7)..]),
                IoSliceMut::new(&mut b[got.saturating_sub(7)..]),
            ];
            got += server.read_vectored(&mut bufs).unwrap();
        }
        assert_eq!(&a, b"hello, ");
        assert_eq!(&b, b"world");
        client.flush().unwrap();
    });
}

#[test]
fn socket_options() {
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        listener.set_ttl(42).unwrap();
        assert_eq!(listener.ttl().unwrap(), 42);
        assert!(listener.take_error().unwrap().is_none());
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        client.set_nodelay(false).unwrap();
        assert!(!client.nodelay().unwrap());
        client.set_ttl(17).unwrap();
        assert_eq!(client.ttl().unwrap(), 17);
        assert!(client.take_error().unwrap().is_none());
        let text = format!("{client:?}");
        assert!(
            text.contains("TcpStream") && text.contains("peer"),
            "{text}"
        );
    });
}

#[test]
fn nonblocking_mode_returns_would_block() {
    coronet::run(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        listener.set_nonblocking(true).unwrap();
        assert_eq!(
            listener.accept().unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(
            client.read(&mut buf).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        client.set_nonblocking(false).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"ok").unwrap();
        client.read_exact(&mut buf[..2]).unwrap();
        assert_eq!(&buf[..2], b"ok");
    });
}

#[test]
fn ipv6_loopback_round_trip() {
    let Some(v6) = util::local_v6() else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    coronet::run(move || {
        let listener = TcpListener::bind(v6).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let mut client = TcpStream::connect(addr).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"v6").unwrap();
        let mut buf = [0u8; 2];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"v6");
    });
}
