//! The echo load generator: N connections, each sends a message, waits for the whole echo,
//! checks every byte, and sends the next one.
//!
//! One thread drives all connections with an edge-triggered epoll loop (the harness pins it to
//! one core), so 1,000 connections cost no more client threads than one. The run has two
//! phases: a warm-up that lasts until every connection has completed a round trip (and at
//! least `warmup`), then the measured window, bracketed by readings of the server's CPU time.
//! Only round trips that complete inside the window count; their latencies give p50 and p99.
//!
//! Every message differs from the previous one on the same connection (its first 8 bytes
//! carry the round number, the rest a per-connection pattern), so an echo of stale or foreign
//! bytes is caught.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::util::{foreign_share, machine_busy, process_cpu, process_times, quantile, CpuTimes};

/// Bounds that hold whatever the server does.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_ROUND_TRIPS: u64 = 100_000_000;

/// What to run.
pub struct EchoLoad {
    pub addr: SocketAddr,
    pub conns: usize,
    pub size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// The server process, whose CPU time is read at both ends of the window.
    pub server_pid: u32,
}

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct EchoResult {
    pub round_trips: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// The server's CPU time over the window (user + system).
    pub server_cpu: Duration,
    /// The part of `server_cpu` spent in the kernel (system time): on loopback nearly all of
    /// it is TCP work that every server does alike (see docs/performance.md).
    pub server_system: Duration,
    /// Percent of the machine used by processes other than the server and the harness.
    pub foreign: f64,
}

impl EchoResult {
    pub fn per_sec(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64()
    }

    /// Server CPU time per round trip, in microseconds.
    pub fn cpu_us_per_op(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.round_trips.max(1) as f64
    }

    /// Server system (kernel) time per round trip, in microseconds.
    pub fn system_us_per_op(&self) -> f64 {
        self.server_system.as_secs_f64() * 1e6 / self.round_trips.max(1) as f64
    }
}

struct Conn {
    stream: TcpStream,
    msg: Vec<u8>,
    sent: usize,
    received: usize,
    round: u64,
    started: Instant,
}

impl Conn {
    fn next_message(&mut self) {
        self.round += 1;
        let head = self.round.to_le_bytes();
        let n = head.len().min(self.msg.len());
        self.msg[..n].copy_from_slice(&head[..n]);
        self.sent = 0;
        self.received = 0;
        self.started = Instant::now();
    }

    /// Writes what the socket takes of the current message.
    fn write_some(&mut self) -> io::Result<()> {
        while self.sent < self.msg.len() {
            match self.stream.write(&self.msg[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what has arrived of the echo and checks it; true when the echo is complete.
    fn read_some(&mut self, scratch: &mut [u8]) -> io::Result<bool> {
        while self.received < self.msg.len() {
            let want = (self.msg.len() - self.received).min(scratch.len());
            match self.stream.read(&mut scratch[..want]) {
                Ok(0) => return Err(io::Error::other("server closed the connection")),
                Ok(n) => {
                    if scratch[..n] != self.msg[self.received..self.received + n] {
                        return Err(io::Error::other("echo differs from the message sent"));
                    }
                    self.received += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

fn epoll_wait(
    ep: &OwnedFd,
    events: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> io::Result<usize> {
    // SAFETY: `events` is valid for writes of its length.
    let n = unsafe {
        libc::epoll_wait(
            ep.as_raw_fd(),
            events.as_mut_ptr(),
            events.len() as i32,
            timeout_ms,
        )
    };
    if n >= 0 {
        return Ok(n as usize);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::Interrupted {
        Ok(0)
    } else {
        Err(err)
    }
}

/// Runs the load; the calling thread does all the work.
pub fn run(load: &EchoLoad) -> io::Result<EchoResult> {
    // SAFETY: plain syscall; the result is checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ep` was just created and is owned by nobody else.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut conns = Vec::with_capacity(load.conns);
    for i in 0..load.conns {
        let stream = TcpStream::connect_timeout(&load.addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET) as u32,
            u64: i as u64,
        };
        // SAFETY: `ev` is a valid epoll_event; both descriptors are open.
        if unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                &mut ev,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        let msg = (0..load.size).map(|j| (i * 31 + j * 7) as u8).collect();
        conns.push(Conn {
            stream,
            msg,
            sent: 0,
            received: 0,
            round: 0,
            started: Instant::now(),
        });
    }
    for conn in &mut conns {
        conn.next_message();
        conn.write_some()?;
    }

    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut scratch = vec![0u8; 64 * 1024];
    let mut answered = vec![false; conns.len()];
    let mut unanswered = conns.len();
    let start = Instant::now();
    let mut latencies: Vec<u64> = Vec::with_capacity(1 << 20);
    // None during the warm-up; then the window's start, end and the CPU readings at start
    // (server, machine, this process).
    let mut window: Option<(Instant, Instant, CpuTimes, [Duration; 2])> = None;
    let readings = || -> io::Result<(CpuTimes, [Duration; 2])> {
        Ok((
            process_times(load.server_pid)?,
            [machine_busy()?, process_cpu(std::process::id())?],
        ))
    };
    let mut total: u64 = 0;
    loop {
        let now = Instant::now();
        match window {
            None => {
                if unanswered == 0 && now >= start + load.warmup {
                    let (server, others) = readings()?;
                    window = Some((now, now + load.duration, server, others));
                } else if now >= start + WARMUP_TIMEOUT {
                    return Err(io::Error::other(format!(
                        "warm-up timed out: {unanswered} of {} connections never answered",
                        conns.len()
                    )));
                }
            }
            Some((_, end, _, _)) if now >= end => break,
            Some(_) if total >= MAX_ROUND_TRIPS => break,
            Some(_) => {}
        }
        let n = epoll_wait(&ep, &mut events, 50)?;
        let measuring = window.is_some();
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            let conn = &mut conns[i];
            if conn.sent < conn.msg.len() {
                conn.write_some()?;
            }
            // The echo may complete several times per event only if the server answers
            // faster than we loop; each completion sends the next message.
            while conn.sent == conn.msg.len() && conn.read_some(&mut scratch)? {
                if measuring {
                    latencies.push(conn.started.elapsed().as_nanos() as u64);
                    total += 1;
                } else if !answered[i] {
                    answered[i] = true;
                    unanswered -= 1;
                }
                conn.next_message();
                conn.write_some()?;
            }
        }
    }
    let (t0, _, server0, [machine0, self0]) = window.expect("the loop leaves only after a window");
    let elapsed = t0.elapsed();
    let (server1, [machine1, self1]) = readings()?;
    let server = server1.since(server0);
    let server_cpu = server.total();
    let ours = server_cpu + self1.saturating_sub(self0);
    latencies.sort_unstable();
    Ok(EchoResult {
        round_trips: total,
        elapsed,
        p50: Duration::from_nanos(quantile(&latencies, 0.50)),
        p99: Duration::from_nanos(quantile(&latencies, 0.99)),
        server_cpu,
        server_system: server.system,
        foreign: foreign_share(machine1.saturating_sub(machine0), ours, elapsed),
    })
}
