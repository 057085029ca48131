//! UDP: [`UdpSocket`], std's API over a registered non-blocking socket (Go's `UDPConn`).

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::addr::{each_addr, ToSocketAddrs};
use crate::socket::Socket;
use crate::sys::{self, Kind, Opt, SockAddr};

/// A UDP socket: std's `UdpSocket`, where a receive (or a send to a full buffer) parks the
/// coroutine, or blocks the plain thread, until the socket is ready.
///
/// ```
/// use coronet_net::UdpSocket;
///
/// coronet_runtime::run(|| {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     a.send_to(b"ping", b.local_addr().unwrap()).unwrap();
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"ping");
///     assert_eq!(from, a.local_addr().unwrap());
/// });
/// ```
pub struct UdpSocket {
    pub(crate) socket: Arc<Socket>,
}

impl UdpSocket {
    /// Creates a socket bound to `addr` (each resolved address in turn, as std).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(&addr, |addr| {
            let socket = Socket::from_fd(sys::inet_socket(addr, Kind::Datagram)?)?;
            socket.with_fd(|fd| sys::bind(fd, &SockAddr::inet(addr)))?;
            Ok(UdpSocket {
                socket: Arc::new(socket),
            })
        })
    }

    /// Sets the default destination of [`send`](Self::send) and the only source
    /// [`recv`](Self::recv) accepts (each resolved address in turn, as std).
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(&addr, |addr| {
            self.socket
                .with_fd(|fd| sys::connect(fd, &SockAddr::inet(addr)))
        })
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(buf)
    }

    /// Receives from the connected peer, parking until a datagram arrives. A datagram larger
    /// than `buf` is truncated.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read(buf)
    }

    /// Like [`recv`](Self::recv) without removing the datagram from the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.peek(buf)
    }

    /// Sends to `addr` (its first resolved address, as std).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        match addr.to_addrs()?.next() {
            Some(addr) => self.socket.send_to(buf, &SockAddr::inet(&addr)),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no addresses to send data to",
            )),
        }
    }

    /// Receives a datagram and its source, parking until one arrives.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, addr) = self.socket.recv_from(buf, false)?;
        Ok((n, addr.inet_addr()?))
    }

    /// Like [`recv_from`](Self::recv_from) without removing the datagram from the queue.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, addr) = self.socket.recv_from(buf, true)?;
        Ok((n, addr.inet_addr()?))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_inet()
    }

    /// The connected peer's address (`NotConnected` if not connected).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_inet()
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        self.socket.set_opt(Opt::Broadcast, broadcast.into())
    }

    /// `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.socket.opt(Opt::Broadcast).map(|v| v != 0)
    }

    /// Sets `IP_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v4(&self, multicast_loop_v4: bool) -> io::Result<()> {
        self.socket
            .set_opt(Opt::MulticastLoopV4, multicast_loop_v4.into())
    }

    /// `IP_MULTICAST_LOOP`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.socket.opt(Opt::MulticastLoopV4).map(|v| v != 0)
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, multicast_ttl_v4: u32) -> io::Result<()> {
        self.socket.set_opt(Opt::MulticastTtlV4, multicast_ttl_v4)
    }

    /// `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.socket.opt(Opt::MulticastTtlV4)
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, multicast_loop_v6: bool) -> io::Result<()> {
        self.socket
            .set_opt(Opt::MulticastLoopV6, multicast_loop_v6.into())
    }

    /// `IPV6_MULTICAST_LOOP`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.socket.opt(Opt::MulticastLoopV6).map(|v| v != 0)
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the system's choice).
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.socket
            .with_fd(|fd| sys::multicast_v4(fd, multiaddr, interface, true))
    }

    /// Leaves an IPv4 multicast group (see [`join_multicast_v4`](Self::join_multicast_v4)).
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        self.socket
            .with_fd(|fd| sys::multicast_v4(fd, multiaddr, interface, false))
    }

    /// Joins the IPv6 multicast group `multiaddr` on interface number `interface` (0: the
    /// system's choice).
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket
            .with_fd(|fd| sys::multicast_v6(fd, multiaddr, interface, true))
    }

    /// Leaves an IPv6 multicast group (see [`join_multicast_v6`](Self::join_multicast_v6)).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket
            .with_fd(|fd| sys::multicast_v6(fd, multiaddr, interface, false))
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket.set_opt(Opt::Ttl, ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.socket.opt(Opt::Ttl)
    }

    handle_methods!(UdpSocket);
    timeout_methods!();
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UdpSocket");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.socket.raw()).finish()
    }
}
