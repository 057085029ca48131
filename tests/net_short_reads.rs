//! A TCP read that returns fewer bytes than asked tells the runtime the socket is drained,
//! so the next read waits for an event instead of making a syscall that fails with `EAGAIN`
//! (`Registration::note_drained`). These tests cover the cases where a short read does *not*
//! drain the socket, or where no further event will come: end of stream and urgent data
//! must still be read, never waited for forever.
//!
//! Each test makes the runtime's one worker poll (a short sleep: it has nothing else to run)
//! after everything was sent, so the event for it is handled *before* the first read: that
//! is the order in which a wrong hint would hang (the watchdog fails the test). The outcome
//! does not depend on the sleep; other orders are covered by the rest of the suite.

mod util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use coronet::net::{TcpListener, TcpStream};

/// A one-worker runtime (so the sleep below makes that worker poll) running `f`.
fn on_one_worker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let rt = coronet::runtime::Builder::new().workers(1).build().unwrap();
    rt.block_on(f)
}

/// A coronet server end and a std client end, connected over loopback.
fn pair() -> (TcpStream, std::net::TcpStream) {
    let listener = TcpListener::bind(util::LOCAL).unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (server, client)
}

/// Lets the worker poll once: the pending events are handled before the caller goes on.
fn let_the_worker_poll() {
    coronet::sleep(Duration::from_millis(2));
}

#[test]
fn end_of_stream_after_a_short_read_is_seen() {
    let _watchdog = util::watchdog("end_of_stream_after_a_short_read", Duration::from_secs(60));
    on_one_worker(|| {
        let (mut server, mut client) = pair();
        client.write_all(b"abc").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let_the_worker_poll();
        let mut buf = [0u8; 1024];
        assert_eq!(server.read(&mut buf).unwrap(), 3, "a short read");
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(server.read(&mut buf).unwrap(), 0, "then the end of stream");
        assert_eq!(server.read(&mut buf).unwrap(), 0, "and it stays");
    });
}

#[test]
fn data_after_a_short_read_is_read() {
    let _watchdog = util::watchdog("data_after_a_short_read", Duration::from_secs(60));
    on_one_worker(|| {
        let (mut server, mut client) = pair();
        let mut buf = [0u8; 1024];
        for round in 0..100u8 {
            let message = [round; 7];
            client.write_all(&message).unwrap();
            if round % 2 == 0 {
                let_the_worker_poll();
            }
            let n = server.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], &message[..n]);
            if n < message.len() {
                server.read_exact(&mut buf[n..message.len()]).unwrap();
                assert_eq!(&buf[..message.len()], &message);
            }
        }
        drop(client);
        assert_eq!(server.read(&mut buf).unwrap(), 0);
    });
}

/// A read stops short at the urgent mark with data left behind it; the urgent (priority)
/// event turns the hint off, so the rest is read.
#[cfg(target_os = "linux")]
#[test]
fn data_behind_urgent_data_is_read() {
    use std::os::fd::AsRawFd;

    let _watchdog = util::watchdog("data_behind_urgent_data", Duration::from_secs(60));
    on_one_worker(|| {
        let (mut server, mut client) = pair();
        client.write_all(b"ab").unwrap();
        // SAFETY: sends one byte from a live buffer on an open socket.
        let sent =
            unsafe { libc::send(client.as_raw_fd(), b"U".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(sent, 1);
        client.write_all(b"de").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let_the_worker_poll();
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match server.read(&mut buf).unwrap() {
                0 => break,
                n => received.extend_from_slice(&buf[..n]),
            }
        }
        // The urgent byte is out of band (not inline): the stream is the rest.
        assert_eq!(received, b"abde");
    });
}

/// Many connections, each with a writer that sends chunks of varying size without waiting
/// and a reader that checks every byte, through an echo server reading into a buffer that
/// the chunks sometimes fill and sometimes do not: short and full reads, hints set and ended
/// by new data all the time, on two workers. Bounded: 64 connections x 256 KiB.
#[test]
fn mixed_chunk_sizes_through_an_echo_server_lose_nothing() {
    const CONNS: usize = 64;
    const TOTAL: usize = 256 * 1024;
    let _watchdog = util::watchdog("mixed_chunk_sizes", Duration::from_secs(120));
    let rt = coronet::runtime::Builder::new().workers(2).build().unwrap();
    let verified = rt.block_on(|| {
        let listener = TcpListener::bind(util::LOCAL).unwrap();
        let addr = listener.local_addr().unwrap();
        coronet::spawn(move || {
            for _ in 0..CONNS {
                let (mut conn, _) = listener.accept().unwrap();
                coronet::spawn(move || {
                    let mut buf = [0u8; 1000];
                    loop {
                        match conn.read(&mut buf).unwrap() {
                            0 => break,
                            n => conn.write_all(&buf[..n]).unwrap(),
                        }
                    }
                    conn.shutdown(Shutdown::Write).unwrap();
                });
            }
        });
        let clients: Vec<_> = (0..CONNS)
            .map(|id| {
                let mut writer = TcpStream::connect(addr).unwrap();
                let mut reader = writer.try_clone().unwrap();
                let seed = id as u64;
                let sent = coronet::spawn(move || {
                    let mut offset = 0;
                    let mut size_state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                    while offset < TOTAL {
                        size_state ^= size_state << 13;
                        size_state ^= size_state >> 7;
                        size_state ^= size_state << 17;
                        let len = (1 + size_state % 2500) as usize;
                        let len = len.min(TOTAL - offset);
                        writer
                            .write_all(&util::pattern_at(seed, offset as u64, len))
                            .unwrap();
                        offset += len;
                        if size_state % 7 == 0 {
                            coronet::yield_now();
                        }
                    }
                    writer.shutdown(Shutdown::Write).unwrap();
                });
                coronet::spawn(move || {
                    let mut received = Vec::with_capacity(TOTAL);
                    reader.read_to_end(&mut received).unwrap();
                    sent.join().unwrap();
                    assert_eq!(received.len(), TOTAL, "connection {id}: length");
                    assert!(
                        received == util::pattern_at(seed, 0, TOTAL),
                        "connection {id}: wrong bytes"
                    );
                    received.len()
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(verified, CONNS * TOTAL);
}
