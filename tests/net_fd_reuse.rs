//! Descriptor numbers and poll descriptors are reused quickly when sockets close; a stale
//! operation or a stale wake-up must never touch the new owner. Many coroutines open,
//! use and close connections in a tight loop (closing in every way: drop, `close`, `close`
//! under a blocked reader, `shutdown`), each connection carrying its own tag, and every
//! byte read is checked to carry the reader's tag.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coronet::net::{is_closed_error, TcpListener, TcpStream, UdpSocket};

fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(util::LOCAL).unwrap();
    let addr = listener.local_addr().unwrap();
    coronet::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            coronet::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Sends `words` copies of the 8-byte `tag` and checks that exactly those come back.
fn exchange(conn: &mut TcpStream, tag: u64, words: usize) {
    let sent: Vec<u8> = std::iter::repeat(tag.to_le_bytes())
        .take(words)
        .flatten()
        .collect();
    conn.write_all(&sent).unwrap();
    let mut got = vec![0u8; sent.len()];
    conn.read_exact(&mut got).unwrap();
    for word in got.chunks(8) {
        let seen = u64::from_le_bytes(word.try_into().unwrap());
        assert_eq!(seen, tag, "read another connection's bytes");
    }
}

#[test]
fn churning_connections_never_see_each_others_bytes() {
    const LOOPS: u64 = 8;
    const ITERATIONS: u64 = 400;
    let _watchdog = util::watchdog("fd_reuse_churn", Duration::from_secs(120));
    util::raise_fd_limit();
    let done = coronet::run(|| {
        let addr = echo_server();
        let start = Instant::now();
        let done = Arc::new(AtomicUsize::new(0));
        let loops: Vec<_> = (0..LOOPS)
            .map(|l| {
                let done = done.clone();
                coronet::spawn(move || {
                    for i in 0..ITERATIONS {
                        if start.elapsed() > util::LOAD_BUDGET {
                            break;
                        }
                        let tag = (l << 32) | i;
                        let mut conn = TcpStream::connect(addr).unwrap();
                        exchange(&mut conn, tag, 1 + (i as usize * 7) % 200);
                        match i % 4 {
                            0 => drop(conn),
                            1 => conn.close().unwrap(),
                            2 => {
                                // A reader blocked (or about to block) while we close.
                                let reader = conn.try_clone().unwrap();
                                let blocked = coronet::spawn(move || (&reader).read(&mut [0u8; 8]));
                                coronet::yield_now();
                                conn.close().unwrap();
                                match blocked.join().unwrap() {
                                    Err(e) => assert!(is_closed_error(&e), "{e:?}"),
                                    Ok(n) => panic!("read {n} unexpected bytes"),
                                }
                            }
                            _ => {
                                exchange(&mut conn, tag, 3);
                                conn.shutdown(Shutdown::Both).unwrap();
                                assert_eq!(conn.read(&mut [0u8; 8]).unwrap(), 0);
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for handle in loops {
            handle.join().unwrap();
        }
        done.load(Ordering::Relaxed)
    });
    assert!(done > 0);
}

#[test]
fn udp_sockets_reopened_in_a_loop_get_only_their_own_datagrams() {
    let _watchdog = util::watchdog("fd_reuse_udp", Duration::from_secs(120));
    coronet::run(|| {
        let start = Instant::now();
        let workers: Vec<_> = (0..4u64)
            .map(|w| {
                coronet::spawn(move || {
                    for i in 0..300u64 {
                        if start.elapsed() > util::LOAD_BUDGET {
                            break;
                        }
                        let tag = (w << 32) | i;
                        let a = UdpSocket::bind(util::LOCAL).unwrap();
                        let b = UdpSocket::bind(util::LOCAL).unwrap();
                        a.connect(b.local_addr().unwrap()).unwrap();
                        b.connect(a.local_addr().unwrap()).unwrap();
                        let receiver = {
                            let b = b.try_clone().unwrap();
                            coronet::spawn(move || {
                                let mut buf = [0u8; 8];
                                let n = b.recv(&mut buf).unwrap();
                                u64::from_le_bytes(buf[..n].try_into().unwrap())
                            })
                        };
                        if i % 2 == 0 {
                            coronet::yield_now();
                        }
                        a.send(&tag.to_le_bytes()).unwrap();
                        assert_eq!(receiver.join().unwrap(), tag);
                        if i % 3 == 0 {
                            b.close().unwrap();
                            let error = b.recv(&mut [0u8; 8]).unwrap_err();
                            assert_eq!(error.kind(), ErrorKind::NotConnected);
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
    });
}
