//! UDP: round trips, connected sockets, peeking, options, blocking receive woken by a send.

mod util;

use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::time::Duration;

use coronet::net::UdpSocket;
use coronet::runtime::WaitKind;

#[test]
fn udp_round_trip() {
    coronet::run(|| {
        let server = UdpSocket::bind(util::LOCAL).unwrap();
        let server_addr = server.local_addr().unwrap();
        let echo = coronet::spawn(move || {
            let mut buf = [0u8; 1500];
            for _ in 0..100 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        let client = UdpSocket::bind(util::LOCAL).unwrap();
        let mut buf = [0u8; 1500];
        for i in 0..100u64 {
            let sent = util::pattern_at(i, 0, 100 + i as usize);
            client.send_to(&sent, server_addr).unwrap();
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(from, server_addr);
            assert_eq!(&buf[..n], &sent[..]);
        }
        echo.join().unwrap();
    });
}

#[test]
fn connected_udp_send_recv_and_peek() {
    coronet::run(|| {
        let a = UdpSocket::bind(util::LOCAL).unwrap();
        let b = UdpSocket::bind(util::LOCAL).unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        // The receive parks first (probably); the send wakes it.
        let receiver = coronet::spawn(move || {
            let mut buf = [0u8; 64];
            let n = b.peek(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"datagram");
            let (n, from) = b.peek_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"datagram");
            let n2 = b.recv(&mut buf).unwrap();
            assert_eq!(n2, n);
            from
        });
        util::parked_on(&receiver, WaitKind::Readable);
        assert_eq!(a.send(b"datagram").unwrap(), 8);
        assert_eq!(receiver.join().unwrap(), a.local_addr().unwrap());
    });
}

#[test]
fn unconnected_peer_addr_is_an_error() {
    let socket = UdpSocket::bind(util::LOCAL).unwrap();
    assert_eq!(
        socket.peer_addr().unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    let nowhere: &[std::net::SocketAddr] = &[];
    assert_eq!(
        socket.send_to(b"x", nowhere).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn udp_options() {
    let socket = UdpSocket::bind(util::LOCAL).unwrap();
    socket.set_broadcast(true).unwrap();
    assert!(socket.broadcast().unwrap());
    socket.set_broadcast(false).unwrap();
    assert!(!socket.broadcast().unwrap());
    socket.set_multicast_loop_v4(false).unwrap();
    assert!(!socket.multicast_loop_v4().unwrap());
    socket.set_multicast_loop_v4(true).unwrap();
    assert!(socket.multicast_loop_v4().unwrap());
    socket.set_multicast_ttl_v4(3).unwrap();
    assert_eq!(socket.multicast_ttl_v4().unwrap(), 3);
    socket.set_ttl(33).unwrap();
    assert_eq!(socket.ttl().unwrap(), 33);
    assert!(socket.take_error().unwrap().is_none());
    // Joining a group on the loopback interface only (no traffic leaves the host).
    let group = Ipv4Addr::new(239, 255, 77, 77);
    if socket
        .join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
        .is_ok()
    {
        socket
            .leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
            .unwrap();
    }
    if let Some(v6) = util::local_v6() {
        let socket = UdpSocket::bind(v6).unwrap();
        socket.set_multicast_loop_v6(false).unwrap();
        assert!(!socket.multicast_loop_v6().unwrap());
    }
}

#[test]
fn udp_ipv6_loopback_round_trip() {
    let Some(v6) = util::local_v6() else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    coronet::run(move || {
        let a = UdpSocket::bind(v6).unwrap();
        let b = UdpSocket::bind(v6).unwrap();
        a.send_to(b"six", b.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"six");
        assert_eq!(from, a.local_addr().unwrap());
    });
}

#[test]
fn many_coroutines_share_one_socket() {
    let _watchdog = util::watchdog("udp_shared_socket", Duration::from_secs(60));
    coronet::run(|| {
        let server = UdpSocket::bind(util::LOCAL).unwrap();
        let addr = server.local_addr().unwrap();
        // Four receivers on clones of one socket: every datagram is received exactly once.
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let socket = server.try_clone().unwrap();
                coronet::spawn(move || {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 8];
                    loop {
                        let n = socket.recv(&mut buf).unwrap();
                        let value = u64::from_le_bytes(buf[..n].try_into().unwrap());
                        if value == u64::MAX {
                            return seen;
                        }
                        seen.push(value);
                    }
                })
            })
            .collect();
        let client = UdpSocket::bind(util::LOCAL).unwrap();
        const N: u64 = 200;
        for i in 0..N {
            client.send_to(&i.to_le_bytes(), addr).unwrap();
            if i % 4 == 0 {
                coronet::yield_now(); // keep the receive queue short: no drops on loopback
            }
        }
        for _ in 0..4 {
            client.send_to(&u64::MAX.to_le_bytes(), addr).unwrap();
        }
        let mut all: Vec<u64> = receivers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..N).collect::<Vec<_>>());
    });
}
