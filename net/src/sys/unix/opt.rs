//! Socket options: the one translation from [`Opt`] to C, and `setsockopt`/`getsockopt`.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr};

use libc::{c_int, c_void, socklen_t};

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

/// How wide the option's C value is.
#[derive(Clone, Copy)]
enum Width {
    Int,
    /// `IP_MULTICAST_*` are a `u_char` on some BSDs (std does the same).
    #[allow(dead_code)]
    Byte,
}

#[cfg(any(
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos"
))]
const MULTICAST_V4_WIDTH: Width = Width::Byte;
#[cfg(not(any(
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos"
)))]
const MULTICAST_V4_WIDTH: Width = Width::Int;

/// The one translation from [`Opt`] to (level, name, width).
fn opt_id(opt: Opt) -> (c_int, c_int, Width) {
    match opt {
        Opt::Ttl => (libc::IPPROTO_IP, libc::IP_TTL, Width::Int),
        Opt::NoDelay => (libc::IPPROTO_TCP, libc::TCP_NODELAY, Width::Int),
        Opt::Broadcast => (libc::SOL_SOCKET, libc::SO_BROADCAST, Width::Int),
        Opt::ReuseAddr => (libc::SOL_SOCKET, libc::SO_REUSEADDR, Width::Int),
        Opt::MulticastLoopV4 => (
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_LOOP,
            MULTICAST_V4_WIDTH,
        ),
        Opt::MulticastTtlV4 => (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, MULTICAST_V4_WIDTH),
        Opt::MulticastLoopV6 => (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, Width::Int),
    }
}

/// Sets an integer option.
pub(crate) fn set_opt(fd: RawFd, opt: Opt, value: u32) -> io::Result<()> {
    let (level, name, width) = opt_id(opt);
    match width {
        Width::Int => setsockopt(fd, level, name, value as c_int),
        Width::Byte => setsockopt(fd, level, name, value as u8),
    }
}

/// Reads an integer option.
pub(crate) fn get_opt(fd: RawFd, opt: Opt) -> io::Result<u32> {
    let (level, name, width) = opt_id(opt);
    match width {
        Width::Int => getsockopt::<c_int>(fd, level, name).map(|v| v as u32),
        Width::Byte => getsockopt::<u8>(fd, level, name).map(u32::from),
    }
}

/// `SO_ERROR`: the pending error, cleared by reading it.
pub(crate) fn take_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let raw: c_int = getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((raw != 0).then(|| io::Error::from_raw_os_error(raw)))
}

/// Joins (`join`) or leaves an IPv4 multicast group on `interface`.
pub(crate) fn multicast_v4(
    fd: RawFd,
    group: &Ipv4Addr,
    interface: &Ipv4Addr,
    join: bool,
) -> io::Result<()> {
    let mreq = libc::ip_mreq {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from_ne_bytes(group.octets()),
        },
        imr_interface: libc::in_addr {
            s_addr: u32::from_ne_bytes(interface.octets()),
        },
    };
    let name = if join {
        libc::IP_ADD_MEMBERSHIP
    } else {
        libc::IP_DROP_MEMBERSHIP
    };
    setsockopt(fd, libc::IPPROTO_IP, name, mreq)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const IPV6_JOIN: (c_int, c_int) = (libc::IPV6_ADD_MEMBERSHIP, libc::IPV6_DROP_MEMBERSHIP);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const IPV6_JOIN: (c_int, c_int) = (libc::IPV6_JOIN_GROUP, libc::IPV6_LEAVE_GROUP);

/// Joins (`join`) or leaves an IPv6 multicast group on interface number `interface`.
pub(crate) fn multicast_v6(
    fd: RawFd,
    group: &Ipv6Addr,
    interface: u32,
    join: bool,
) -> io::Result<()> {
    let mreq = libc::ipv6_mreq {
        ipv6mr_multiaddr: libc::in6_addr {
            s6_addr: group.octets(),
        },
        ipv6mr_interface: interface as _,
    };
    let name = if join { IPV6_JOIN.0 } else { IPV6_JOIN.1 };
    setsockopt(fd, libc::IPPROTO_IPV6, name, mreq)
}

pub(super) fn setsockopt<T: Copy>(
    fd: RawFd,
    level: c_int,
    name: c_int,
    value: T,
) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of `size_of::<T>()` bytes for the call.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const T).cast::<c_void>(),
            mem::size_of::<T>() as socklen_t,
        )
    })
    .map(drop)
}

fn getsockopt<T: Copy>(fd: RawFd, level: c_int, name: c_int) -> io::Result<T> {
    let mut value = mem::MaybeUninit::<T>::zeroed();
    let mut len = mem::size_of::<T>() as socklen_t;
    // SAFETY: `value` is writable for `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            value.as_mut_ptr().cast::<c_void>(),
            &mut len,
        )
    })?;
    // SAFETY: zero-initialised and the `T`s used here (integers, C structs) are valid for any
    // bytes; the kernel overwrote at most `size_of::<T>()` of them.
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
            (Opt::ReuseAddr, 1),
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
