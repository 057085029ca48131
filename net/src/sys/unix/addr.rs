//! Socket addresses in their C form (`sockaddr_storage`), converted from and to std's.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libc::{c_int, socklen_t};

/// A socket address in its C form, large enough for any family.
#[derive(Clone, Copy)]
pub(crate) struct SockAddr {
    storage: libc::sockaddr_storage,
    /// The length of the address in `storage` (in: its capacity, for calls that fill it).
    pub(super) len: socklen_t,
}

impl SockAddr {
    pub(super) fn empty() -> SockAddr {
        SockAddr {
            // SAFETY: `sockaddr_storage` is a plain C struct for which all-zero bytes are a
            // valid (family `AF_UNSPEC`) value.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as socklen_t,
        }
    }

    pub(super) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.storage as *mut libc::sockaddr_storage).cast()
    }

    /// The C form of an IP socket address.
    pub(crate) fn inet(addr: &SocketAddr) -> SockAddr {
        let mut out = SockAddr::empty();
        match addr {
            SocketAddr::V4(v4) => {
                // SAFETY: all-zero bytes are a valid `sockaddr_in`.
                let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = v4.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
                set_sin_len(&mut sin);
                // SAFETY: `sockaddr_storage` is larger than and aligned for every sockaddr
                // type, so writing a `sockaddr_in` at its start stays in bounds.
                unsafe { out.as_mut_ptr().cast::<libc::sockaddr_in>().write(sin) };
                out.len = mem::size_of::<libc::sockaddr_in>() as socklen_t;
            }
            SocketAddr::V6(v6) => {
                // SAFETY: all-zero bytes are a valid `sockaddr_in6`.
                let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = v6.port().to_be();
                sin6.sin6_addr.s6_addr = v6.ip().octets();
                sin6.sin6_flowinfo = v6.flowinfo();
                sin6.sin6_scope_id = v6.scope_id();
                set_sin6_len(&mut sin6);
                // SAFETY: as above, for `sockaddr_in6`.
                unsafe { out.as_mut_ptr().cast::<libc::sockaddr_in6>().write(sin6) };
                out.len = mem::size_of::<libc::sockaddr_in6>() as socklen_t;
            }
        }
        out
    }

    /// The C form of a Unix socket path, with std's checks and messages.
    pub(crate) fn unix_path(path: &Path) -> io::Result<SockAddr> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "paths must not contain interior null bytes",
            ));
        }
        let len = if bytes.is_empty() { 0 } else { bytes.len() + 1 };
        SockAddr::unix_raw(bytes, len)
    }

    /// `sun_path` = `bytes` (NUL padded), address length covering `path_len` bytes of it.
    fn unix_raw(bytes: &[u8], path_len: usize) -> io::Result<SockAddr> {
        let mut out = SockAddr::empty();
        // SAFETY: all-zero bytes are a valid `sockaddr_un`.
        let mut sun: libc::sockaddr_un = unsafe { mem::zeroed() };
        if path_len > sun.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path must be shorter than SUN_LEN",
            ));
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, src) in sun.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let offset = mem::offset_of!(libc::sockaddr_un, sun_path);
        // SAFETY: as in `inet`, for `sockaddr_un`.
        unsafe { out.as_mut_ptr().cast::<libc::sockaddr_un>().write(sun) };
        out.len = (offset + path_len) as socklen_t;
        Ok(out)
    }

    /// The C form of a std Unix socket address (a path, or an abstract name on Linux).
    pub(crate) fn unix_std(addr: &std::os::unix::net::SocketAddr) -> io::Result<SockAddr> {
        if let Some(path) = addr.as_pathname() {
            return SockAddr::unix_path(path);
        }
        if let Some(name) = abstract_name(addr) {
            let mut bytes = Vec::with_capacity(name.len() + 1);
            bytes.push(0);
            bytes.extend_from_slice(name);
            return SockAddr::unix_raw(&bytes, bytes.len());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot use an unnamed Unix socket address",
        ))
    }

    /// The IP address this C address holds.
    pub(crate) fn inet_addr(&self) -> io::Result<SocketAddr> {
        match c_int::from(self.storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a `sockaddr_in`; the storage is
                // aligned for it (`read` needs no more than that).
                let sin = unsafe { self.as_ptr().cast::<libc::sockaddr_in>().read() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for `sockaddr_in6`.
                let sin6 = unsafe { self.as_ptr().cast::<libc::sockaddr_in6>().read() };
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not an IPv4 or IPv6 socket address",
            )),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_name(addr: &std::os::unix::net::SocketAddr) -> Option<&[u8]> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    addr.as_abstract_name()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_name(_addr: &std::os::unix::net::SocketAddr) -> Option<&[u8]> {
    None
}

/// The BSDs and Apple store each address's length in its first byte; elsewhere there is no
/// such field.
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
))]
mod sin_len {
    use std::mem;

    pub(super) fn set_sin_len(sin: &mut libc::sockaddr_in) {
        sin.sin_len = mem::size_of::<libc::sockaddr_in>() as u8;
    }

    pub(super) fn set_sin6_len(sin6: &mut libc::sockaddr_in6) {
        sin6.sin6_len = mem::size_of::<libc::sockaddr_in6>() as u8;
    }
}

#[cfg(not(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
mod sin_len {
    pub(super) fn set_sin_len(_sin: &mut libc::sockaddr_in) {}

    pub(super) fn set_sin6_len(_sin6: &mut libc::sockaddr_in6) {}
}

use sin_len::{set_sin6_len, set_sin_len};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_addresses_round_trip() {
        for text in ["127.0.0.1:8080", "[::1]:443", "[fe80::1%7]:1", "0.0.0.0:0"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(SockAddr::inet(&addr).inet_addr().unwrap(), addr);
        }
        let v6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0x12345, 3));
        assert_eq!(SockAddr::inet(&v6).inet_addr().unwrap(), v6);
    }

    #[test]
    fn unix_paths_are_checked_like_std() {
        let error = SockAddr::unix_path(Path::new("a\0b")).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let long = "x".repeat(200);
        let error = SockAddr::unix_path(Path::new(&long)).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let addr = SockAddr::unix_path(Path::new("/tmp/s")).unwrap();
        assert!(addr.inet_addr().is_err());
    }
}
