//! A non-blocking connect reports writable when it completes (Go's `netpollopen` then
//! `pollDesc.waitWrite` in `netFD.connect`), and an error when it is refused.
#![cfg(unix)]

mod util;

use std::io;
use std::mem;
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use coronet_poller::{Event, Events, Poller, Token};
use util::{expect_event, listener};

/// Starts a non-blocking connect to `addr`; returns the socket and whether it is pending.
fn start_connect(addr: SocketAddrV4) -> (OwnedFd, io::Result<()>) {
    // SAFETY: plain socket creation; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: `fd` is a fresh socket nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl on our socket with integer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    let set = unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) };
    assert_eq!(set, 0, "fcntl: {}", io::Error::last_os_error());

    // SAFETY: sockaddr_in is plain integers: all-zero is valid.
    let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = addr.port().to_be();
    sin.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
    // SAFETY: `sin` is a live sockaddr_in and its exact size is passed.
    let result = unsafe {
        libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let result = if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    };
    (socket, result)
}

fn socket_error(fd: &OwnedFd) -> i32 {
    let mut error: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `error` and `len` are live locals of the sizes the kernel expects.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut error as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "getsockopt: {}", io::Error::last_os_error());
    error
}

fn v4(addr: std::net::SocketAddr) -> SocketAddrV4 {
    match addr {
        std::net::SocketAddr::V4(addr) => addr,
        std::net::SocketAddr::V6(_) => unreachable!("bound to 127.0.0.1"),
    }
}

#[test]
fn connect_reports_writable_when_established() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    let (listener, addr) = listener();
    let (socket, started) = start_connect(v4(addr));
    if let Err(e) = &started {
        assert_eq!(e.raw_os_error(), Some(libc::EINPROGRESS), "connect: {e}");
    }
    poller.register(socket.as_raw_fd(), Token(10)).unwrap();

    let event = expect_event(&poller, &mut events, Token(10), Event::is_writable);
    assert!(!event.is_error(), "{event:?}");
    assert_eq!(socket_error(&socket), 0);
    let (_server, peer) = listener.accept().unwrap();
    let stream = TcpStream::from(socket);
    assert_eq!(stream.local_addr().unwrap(), peer);
}

#[test]
fn refused_connect_reports_an_error() {
    let poller = Poller::new().unwrap();
    let mut events = Events::new();
    // A port that was just free: nobody listens there any more.
    let addr = {
        let (listener, addr) = listener();
        drop(listener);
        addr
    };
    let (socket, started) = start_connect(v4(addr));
    match started {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        // Loopback may refuse at once; then there is nothing for the poller to report.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return,
        other => panic!("connect to a closed port: {other:?}"),
    }
    poller.register(socket.as_raw_fd(), Token(11)).unwrap();

    let event = expect_event(&poller, &mut events, Token(11), Event::is_writable);
    assert!(event.is_readable(), "an error wakes both sides: {event:?}");
    assert!(event.is_error() || event.is_write_closed(), "{event:?}");
    assert_eq!(socket_error(&socket), libc::ECONNREFUSED);
}
