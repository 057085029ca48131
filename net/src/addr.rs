//! Address resolution that never blocks a worker on DNS.
//!
//! [`ToSocketAddrs`] mirrors `std::net::ToSocketAddrs` and is implemented for the same types,
//! so call sites read the same (`TcpStream::connect("localhost:8080")`,
//! `connect(("example.org", 80))`, `connect(addr)`, `connect(&addrs[..])`). The difference is
//! where a host name is looked up: an IP literal is parsed in place, a name is resolved by
//! `std`'s `getaddrinfo` on the runtime's blocking pool ([`coronet_runtime::blocking`]) while
//! the coroutine is parked, so no worker thread ever sleeps in the resolver.
//!
//! Rejected alternative: taking `std::net::ToSocketAddrs` and always resolving on the pool.
//! A `SocketAddr` argument would then pay a thread hand-off per call (every UDP `send_to`),
//! and the argument would need a `Send` bound std does not have.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

mod sealed {
    pub trait Sealed {}
}

/// Values that name one or more socket addresses: the types `std::net::ToSocketAddrs` is
/// implemented for. Host names are resolved on the blocking pool, not on the worker.
///
/// To use a type that implements only std's trait, resolve it first and pass the slice:
/// `TcpStream::connect(&addr.to_socket_addrs()?.collect::<Vec<_>>()[..])`.
///
/// ```
/// use coronet_net::TcpListener;
///
/// let a = TcpListener::bind("127.0.0.1:0").unwrap();
/// let b = TcpListener::bind(("127.0.0.1", 0)).unwrap();
/// let c = TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
/// # let _ = (a, b, c);
/// ```
pub trait ToSocketAddrs: sealed::Sealed {
    /// The addresses, resolving a host name on the blocking pool if there is one.
    fn to_addrs(&self) -> io::Result<Addrs>;
}

/// The addresses a [`ToSocketAddrs`] value stands for, in resolver order.
#[derive(Debug, Clone)]
pub struct Addrs(AddrsInner);

#[derive(Debug, Clone)]
enum AddrsInner {
    One(std::option::IntoIter<SocketAddr>),
    Many(std::vec::IntoIter<SocketAddr>),
}

impl Addrs {
    fn one(addr: SocketAddr) -> Addrs {
        Addrs(AddrsInner::One(Some(addr).into_iter()))
    }
}

impl Iterator for Addrs {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        match &mut self.0 {
            AddrsInner::One(it) => it.next(),
            AddrsInner::Many(it) => it.next(),
        }
    }
}

/// Resolves with std on the blocking pool (inline on a plain thread).
fn lookup<T: std::net::ToSocketAddrs + Sync + ?Sized>(target: &T) -> io::Result<Addrs> {
    let addrs: Vec<SocketAddr> =
        coronet_runtime::blocking(|| target.to_socket_addrs().map(Iterator::collect))?;
    Ok(Addrs(AddrsInner::Many(addrs.into_iter())))
}

macro_rules! direct {
    ($($ty:ty),*) => {$(
        impl sealed::Sealed for $ty {}
        impl ToSocketAddrs for $ty {
            fn to_addrs(&self) -> io::Result<Addrs> {
                Ok(Addrs::one(SocketAddr::from(*self)))
            }
        }
    )*};
}

direct!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl sealed::Sealed for str {}
impl ToSocketAddrs for str {
    fn to_addrs(&self) -> io::Result<Addrs> {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Ok(Addrs::one(addr)),
            Err(_) => lookup(self),
        }
    }
}

impl sealed::Sealed for String {}
impl ToSocketAddrs for String {
    fn to_addrs(&self) -> io::Result<Addrs> {
        self.as_str().to_addrs()
    }
}

impl sealed::Sealed for (&str, u16) {}
impl ToSocketAddrs for (&str, u16) {
    fn to_addrs(&self) -> io::Result<Addrs> {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Ok(Addrs::one(SocketAddr::new(ip, self.1))),
            Err(_) => lookup(self),
        }
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToSocketAddrs for (String, u16) {
    fn to_addrs(&self) -> io::Result<Addrs> {
        (self.0.as_str(), self.1).to_addrs()
    }
}

impl sealed::Sealed for &[SocketAddr] {}
impl ToSocketAddrs for &[SocketAddr] {
    fn to_addrs(&self) -> io::Result<Addrs> {
        let addrs: Vec<SocketAddr> = self.to_vec();
        Ok(Addrs(AddrsInner::Many(addrs.into_iter())))
    }
}

impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_addrs(&self) -> io::Result<Addrs> {
        (**self).to_addrs()
    }
}

/// Runs `f` on each address in turn until one succeeds, as std does; the last error
/// otherwise.
pub(crate) fn each_addr<A: ToSocketAddrs + ?Sized, T>(
    addr: &A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in addr.to_addrs()? {
        match f(&addr) {
            Ok(value) => return Ok(value),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}
