//! Socket options: the one translation from [`Opt`] to Winsock, and `setsockopt`/`getsockopt`.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr};

use windows_sys::Win32::Networking::WinSock::{
    self as ws, IN6_ADDR, IN6_ADDR_0, IN_ADDR, IN_ADDR_0, IPV6_MREQ, IP_MREQ,
};

use super::{cvt, RawFd};

/// A socket option with an integer (or boolean) value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Opt {
    /// `IP_TTL`.
    Ttl,
    /// `TCP_NODELAY`.
    NoDelay,
    /// `SO_BROADCAST`.
    Broadcast,
    /// `SO_REUSEADDR`.
    ReuseAddr,
    /// `IP_MULTICAST_LOOP`.
    MulticastLoopV4,
    /// `IP_MULTICAST_TTL`.
    MulticastTtlV4,
    /// `IPV6_MULTICAST_LOOP`.
    MulticastLoopV6,
}

/// The one translation from [`Opt`] to (level, name). Every one of them is a `DWORD` (or a
/// `BOOL`, the same width) on Windows, as std reads and writes them.
fn opt_id(opt: Opt) -> (i32, i32) {
    match opt {
        Opt::Ttl => (ws::IPPROTO_IP, ws::IP_TTL),
        Opt::NoDelay => (ws::IPPROTO_TCP, ws::TCP_NODELAY),
        Opt::Broadcast => (ws::SOL_SOCKET, ws::SO_BROADCAST),
        Opt::ReuseAddr => (ws::SOL_SOCKET, ws::SO_REUSEADDR),
        Opt::MulticastLoopV4 => (ws::IPPROTO_IP, ws::IP_MULTICAST_LOOP),
        Opt::MulticastTtlV4 => (ws::IPPROTO_IP, ws::IP_MULTICAST_TTL),
        Opt::MulticastLoopV6 => (ws::IPPROTO_IPV6, ws::IPV6_MULTICAST_LOOP),
    }
}

/// Sets an integer option.
pub(crate) fn set_opt(fd: RawFd, opt: Opt, value: u32) -> io::Result<()> {
    let (level, name) = opt_id(opt);
    setsockopt(fd, level, name, value)
}

/// Reads an integer option.
pub(crate) fn get_opt(fd: RawFd, opt: Opt) -> io::Result<u32> {
    let (level, name) = opt_id(opt);
    getsockopt::<u32>(fd, level, name)
}

/// `SO_ERROR`: the pending error, cleared by reading it.
pub(crate) fn take_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let raw: i32 = getsockopt(fd, ws::SOL_SOCKET, ws::SO_ERROR)?;
    Ok((raw != 0).then(|| io::Error::from_raw_os_error(raw)))
}

/// Joins (`join`) or leaves an IPv4 multicast group on `interface`.
pub(crate) fn multicast_v4(
    fd: RawFd,
    group: &Ipv4Addr,
    interface: &Ipv4Addr,
    join: bool,
) -> io::Result<()> {
    let in_addr = |ip: &Ipv4Addr| IN_ADDR {
        S_un: IN_ADDR_0 {
            S_addr: u32::from_ne_bytes(ip.octets()),
        },
    };
    let mreq = IP_MREQ {
        imr_multiaddr: in_addr(group),
        imr_interface: in_addr(interface),
    };
    let name = if join {
        ws::IP_ADD_MEMBERSHIP
    } else {
        ws::IP_DROP_MEMBERSHIP
    };
    setsockopt(fd, ws::IPPROTO_IP, name, mreq)
}

/// Joins (`join`) or leaves an IPv6 multicast group on interface number `interface`.
pub(crate) fn multicast_v6(
    fd: RawFd,
    group: &Ipv6Addr,
    interface: u32,
    join: bool,
) -> io::Result<()> {
    let mreq = IPV6_MREQ {
        ipv6mr_multiaddr: IN6_ADDR {
            u: IN6_ADDR_0 {
                Byte: group.octets(),
            },
        },
        ipv6mr_interface: interface,
    };
    let name = if join {
        ws::IPV6_ADD_MEMBERSHIP
    } else {
        ws::IPV6_DROP_MEMBERSHIP
    };
    setsockopt(fd, ws::IPPROTO_IPV6, name, mreq)
}

fn setsockopt<T: Copy>(fd: RawFd, level: i32, name: i32, value: T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of `size_of::<T>()` bytes for the call.
    cvt(unsafe {
        ws::setsockopt(
            fd as ws::SOCKET,
            level,
            name,
            (&value as *const T).cast::<u8>(),
            mem::size_of::<T>() as i32,
        )
    })
    .map(drop)
}

fn getsockopt<T: Copy>(fd: RawFd, level: i32, name: i32) -> io::Result<T> {
    let mut value = mem::MaybeUninit::<T>::zeroed();
    let mut len = mem::size_of::<T>() as i32;
    // SAFETY: `value` is writable for `len` bytes.
    cvt(unsafe {
        ws::getsockopt(
            fd as ws::SOCKET,
            level,
            name,
            value.as_mut_ptr().cast::<u8>(),
            &mut len,
        )
    })?;
    // SAFETY: zero-initialised, and the `T`s used here (integers) are valid for any bytes;
    // Winsock overwrote at most `size_of::<T>()` of them (a BOOL option may write fewer).
    Ok(unsafe { value.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{close, inet_socket, Kind};

    #[test]
    fn options_translate_and_round_trip() {
        let fd = inet_socket(&"127.0.0.1:0".parse().unwrap(), Kind::Datagram).unwrap();
        for (opt, value) in [
            (Opt::Ttl, 5),
            (Opt::Broadcast, 1),
            (Opt::MulticastLoopV4, 0),
            (Opt::MulticastTtlV4, 4),
        ] {
            set_opt(fd, opt, value).unwrap();
            assert_eq!(get_opt(fd, opt).unwrap(), value, "{opt:?}");
        }
        assert!(take_error(fd).unwrap().is_none());
        close(fd);
    }
}
