//! Socket addresses in their Winsock form (`SOCKADDR_STORAGE`), converted from and to std's.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use windows_sys::Win32::Networking::WinSock::{
    AF_INET, AF_INET6, IN6_ADDR, IN6_ADDR_0, IN_ADDR, IN_ADDR_0, SOCKADDR, SOCKADDR_IN,
    SOCKADDR_IN6, SOCKADDR_IN6_0, SOCKADDR_STORAGE,
};

/// A socket address in its Winsock form, large enough for any family.
#[derive(Clone, Copy)]
pub(crate) struct SockAddr {
    storage: SOCKADDR_STORAGE,
    /// The length of the address in `storage` (in: its capacity, for calls that fill it).
    pub(super) len: i32,
}

impl SockAddr {
    pub(super) fn empty() -> SockAddr {
        SockAddr {
            // SAFETY: `SOCKADDR_STORAGE` is a plain C struct for which all-zero bytes are a
            // valid (family `AF_UNSPEC`) value.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<SOCKADDR_STORAGE>() as i32,
        }
    }

    pub(super) fn as_ptr(&self) -> *const SOCKADDR {
        (&self.storage as *const SOCKADDR_STORAGE).cast()
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut SOCKADDR {
        (&mut self.storage as *mut SOCKADDR_STORAGE).cast()
    }

    /// The Winsock form of an IP socket address.
    pub(crate) fn inet(addr: &SocketAddr) -> SockAddr {
        let mut out = SockAddr::empty();
        match addr {
            SocketAddr::V4(v4) => {
                let sin = SOCKADDR_IN {
                    sin_family: AF_INET,
                    sin_port: v4.port().to_be(),
                    sin_addr: IN_ADDR {
                        S_un: IN_ADDR_0 {
                            S_addr: u32::from_ne_bytes(v4.ip().octets()),
                        },
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: `SOCKADDR_STORAGE` is larger than and aligned for every sockaddr
                // type, so writing a `SOCKADDR_IN` at its start stays in bounds.
                unsafe { out.as_mut_ptr().cast::<SOCKADDR_IN>().write(sin) };
                out.len = mem::size_of::<SOCKADDR_IN>() as i32;
            }
            SocketAddr::V6(v6) => {
                let sin6 = SOCKADDR_IN6 {
                    sin6_family: AF_INET6,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: IN6_ADDR {
                        u: IN6_ADDR_0 {
                            Byte: v6.ip().octets(),
                        },
                    },
                    Anonymous: SOCKADDR_IN6_0 {
                        sin6_scope_id: v6.scope_id(),
                    },
                };
                // SAFETY: as above, for `SOCKADDR_IN6`.
                unsafe { out.as_mut_ptr().cast::<SOCKADDR_IN6>().write(sin6) };
                out.len = mem::size_of::<SOCKADDR_IN6>() as i32;
            }
        }
        out
    }

    /// The IP address this Winsock address holds.
    pub(crate) fn inet_addr(&self) -> io::Result<SocketAddr> {
        match self.storage.ss_family {
            AF_INET => {
                // SAFETY: the family says the storage holds a `SOCKADDR_IN`; the storage is
                // aligned for it.
                let sin = unsafe { self.as_ptr().cast::<SOCKADDR_IN>().read() };
                // SAFETY: every variant of the union is plain bytes of the same size.
                let raw = unsafe { sin.sin_addr.S_un.S_addr };
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(raw.to_ne_bytes()),
                    u16::from_be(sin.sin_port),
                )))
            }
            AF_INET6 => {
                // SAFETY: as above, for `SOCKADDR_IN6`.
                let sin6 = unsafe { self.as_ptr().cast::<SOCKADDR_IN6>().read() };
                // SAFETY: as above: the unions hold plain bytes.
                let (octets, scope_id) =
                    unsafe { (sin6.sin6_addr.u.Byte, sin6.Anonymous.sin6_scope_id) };
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(octets),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    scope_id,
                )))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not an IPv4 or IPv6 socket address",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_addresses_round_trip() {
        for text in ["127.0.0.1:80", "[::1]:443", "[fe80::1%3]:8080"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(SockAddr::inet(&addr).inet_addr().unwrap(), addr, "{text}");
        }
    }
}
