//! A hand-written edge-triggered epoll loop on libc: the practical ceiling.
//!
//! One thread per worker, each with its own epoll instance and its own `SO_REUSEPORT`
//! listener on the same address (the kernel spreads connections over them), so the threads
//! share nothing. A connection is read until `EAGAIN`; what cannot be written at once waits
//! in its `pending` buffer for `EPOLLOUT`, and reading stops until it is flushed.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{HttpConn, BUF};

const LISTENER: u64 = u64::MAX;

pub fn serve(addr: &str, workers: usize, http: bool) -> io::Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let listener = reuseport_listener(addr)?;
            Ok(std::thread::spawn(move || event_loop(listener, http)))
        })
        .collect::<io::Result<_>>()?;
    for t in threads {
        t.join()
            .map_err(|_| io::Error::other("epoll thread panicked"))??;
    }
    Ok(())
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn reuseport_listener(addr: SocketAddr) -> io::Result<OwnedFd> {
    let SocketAddr::V4(v4) = addr else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "IPv4 only"));
    };
    // SAFETY: plain socket syscall; the result is checked before use.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: `one` is a valid c_int option value of the length passed.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in of the length passed.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    // SAFETY: listen on a bound socket we own.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 4096) })?;
    Ok(fd)
}

fn epoll_add(ep: RawFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a valid epoll_event; both descriptors are open.
    cvt(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
}

/// One connection: the socket, the HTTP state or nothing (echo), bytes waiting to be written.
struct Conn {
    fd: OwnedFd,
    http: Option<HttpConn>,
    pending: Vec<u8>,
}

enum Io {
    Done(usize),
    WouldBlock,
    Closed,
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> Io {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    match n {
        0 => Io::Closed,
        n if n > 0 => Io::Done(n as usize),
        _ if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => Io::WouldBlock,
        _ => Io::Closed,
    }
}

fn write_fd(fd: RawFd, buf: &[u8]) -> Io {
    // SAFETY: `buf` is valid for reads of its length; MSG_NOSIGNAL: a dead peer is an error.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    match n {
        n if n >= 0 => Io::Done(n as usize),
        _ if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => Io::WouldBlock,
        _ => Io::Closed,
    }
}

impl Conn {
    /// Writes `data` after anything pending; keeps what the socket does not take.
    /// Returns false when the connection is dead.
    fn send(&mut self, data: &[u8]) -> bool {
        let mut off = 0;
        if self.pending.is_empty() {
            while off < data.len() {
                match write_fd(self.fd.as_raw_fd(), &data[off..]) {
                    Io::Done(n) => off += n,
                    Io::WouldBlock => break,
                    Io::Closed => return false,
                }
            }
        }
        self.pending.extend_from_slice(&data[off..]);
        true
    }

    fn flush(&mut self) -> bool {
        while !self.pending.is_empty() {
            match write_fd(self.fd.as_raw_fd(), &self.pending) {
                Io::Done(n) => {
                    self.pending.drain(..n);
                }
                Io::WouldBlock => return true,
                Io::Closed => return false,
            }
        }
        true
    }

    /// Handles readiness; false when the connection is finished.
    fn ready(&mut self, scratch: &mut [u8]) -> bool {
        if !self.flush() {
            return false;
        }
        while self.pending.is_empty() {
            let fd = self.fd.as_raw_fd();
            let alive = match &mut self.http {
                None => match read_fd(fd, scratch) {
                    Io::Done(n) => {
                        let data = &scratch[..n];
                        let mut off = 0;
                        while off < data.len() {
                            match write_fd(fd, &data[off..]) {
                                Io::Done(w) => off += w,
                                Io::WouldBlock => break,
                                Io::Closed => return false,
                            }
                        }
                        self.pending.extend_from_slice(&data[off..]);
                        true
                    }
                    Io::WouldBlock => return true,
                    Io::Closed => false,
                },
                Some(http) => {
                    let Some(spare) = http.spare() else {
                        return false;
                    };
                    match read_fd(fd, spare) {
                        Io::Done(n) => {
                            let out = http.advance(n).to_vec();
                            self.send(&out)
                        }
                        Io::WouldBlock => return true,
                        Io::Closed => false,
                    }
                }
            };
            if !alive {
                return false;
            }
        }
        true
    }
}

fn event_loop(listener: OwnedFd, http: bool) -> io::Result<()> {
    // SAFETY: plain syscall; the result is checked.
    let ep = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: `ep` was just created and is owned by nobody else.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    epoll_add(
        ep.as_raw_fd(),
        listener.as_raw_fd(),
        libc::EPOLLIN as u32 | libc::EPOLLET as u32,
        LISTENER,
    )?;
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut next_token = 0u64;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut scratch = vec![0u8; BUF];
    loop {
        // SAFETY: `events` is valid for writes of its length.
        let n = unsafe {
            libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, -1)
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        for ev in &events[..n as usize] {
            let token = ev.u64;
            if token == LISTENER {
                loop {
                    // SAFETY: accept4 with null address pointers is allowed.
                    let fd = unsafe {
                        libc::accept4(
                            listener.as_raw_fd(),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        )
                    };
                    if fd < 0 {
                        break; // EAGAIN, or EMFILE: the next connection edge retries
                    }
                    // SAFETY: accept4 returned a new descriptor that nobody else owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    let one: libc::c_int = 1;
                    // SAFETY: `one` is a valid c_int option value of the length passed.
                    unsafe {
                        libc::setsockopt(
                            fd.as_raw_fd(),
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&one as *const libc::c_int).cast(),
                            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                        );
                    }
                    let token = next_token;
                    next_token += 1;
                    let flags =
                        (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
                    if epoll_add(ep.as_raw_fd(), fd.as_raw_fd(), flags, token).is_ok() {
                        let http = http.then(HttpConn::new);
                        conns.insert(
                            token,
                            Conn {
                                fd,
                                http,
                                pending: Vec::new(),
                            },
                        );
                    }
                }
                continue;
            }
            let alive = match conns.get_mut(&token) {
                Some(conn) => conn.ready(&mut scratch),
                None => continue,
            };
            if !alive {
                // Closing the descriptor removes it from the epoll set.
                conns.remove(&token);
            }
        }
    }
}
