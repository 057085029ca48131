//! The HTTP/1.1 server: a coroutine per connection serving keep-alive and pipelined
//! requests, the routes, and Go-style graceful shutdown.
//!
//! Connection life (each step in plain blocking style; a read or write that would block
//! parks the coroutine):
//!
//! ```text
//!  accept ─► idle: wait for a request's first byte   (deadline: read timeout for the first
//!              │                                       request, idle timeout afterwards)
//!              ▼
//!            active: read head + body, respond       (deadline: read timeout for the whole
//!              │                                       request; write timeout per flush)
//!              └─► keep-alive? back to idle : close
//! ```
//!
//! Graceful shutdown ([`ServerHandle::shutdown`], Go's `Server.Shutdown`): stop accepting
//! (close the listener), wake every idle connection so it closes, and let active ones finish
//! their request and answer it with `Connection: close`. [`Server::serve`] returns once
//! every connection coroutine has ended; the read and write timeouts bound how long that
//! takes.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use coronet::net::{TcpListener, TcpStream};
use coronet::sync::WaitGroup;

use super::common;
use super::conn::Conn;
use super::request::{self, Limits, ReadError, Request};
use super::response::{Connection, DateCache, Response, Status};

/// The body of `/json`, as in the TechEmpower benchmark.
pub const JSON_BODY: &[u8] = br#"{"message":"Hello, World!"}"#;
/// The body of `/`.
pub const HELLO_BODY: &[u8] = b"Hello, World!";

/// The server's limits and timeouts.
#[derive(Debug, Clone)]
pub struct Config {
    /// A request (head and body) must arrive within this from its first byte, and a new
    /// connection must start its first request within this from the accept. Drops slowloris
    /// clients. Like Go's `ReadTimeout`.
    pub read_timeout: Duration,
    /// A keep-alive connection waiting for its next request is closed after this. Like
    /// Go's `IdleTimeout`.
    pub idle_timeout: Duration,
    /// Each write of responses must complete within this. Like Go's `WriteTimeout`.
    pub write_timeout: Duration,
    /// Size limits of a request.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            limits: Limits {
                max_head_bytes: 8 * 1024,
                max_headers: 100,
                max_body_bytes: 1024 * 1024,
            },
        }
    }
}

/// An HTTP server: [`serve`](Self::serve) it on a listener, stop it with a
/// [`ServerHandle`].
pub struct Server {
    config: Arc<Config>,
    shared: Arc<Shared>,
}

/// Stops a [`Server`] gracefully, from any thread or coroutine.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

/// What [`ServerHandle::shutdown`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Idle connections woken to close.
    pub idle_closed: usize,
    /// Connections in the middle of a request, left to finish it.
    pub active: usize,
}

/// State shared by the server, its connections and its handles.
///
/// Locking protocol between a connection going idle and a shutdown (lock order: registry,
/// then a connection's own lock, then the socket's internal deadline lock): a connection
/// marks itself idle and sets its idle deadline under its own lock, after checking
/// `shutting_down` there; `shutdown` sets `shutting_down` first and then takes each
/// connection's lock to look at it. So either the connection sees the flag and closes, or
/// the shutdown sees it idle (with its deadline already set) and wakes it: none is missed
/// and none waits out its idle timeout. A request touches only its own connection's lock
/// and the flag, never the registry's lock.
struct Shared {
    /// Set once, under the registry lock, by the first `shutdown`.
    shutting_down: AtomicBool,
    registry: Mutex<Registry>,
    /// Connections accepted so far (they show that keep-alive reuses connections).
    accepted: AtomicU64,
}

/// The open connections. Std mutexes: every critical section is a few map operations or
/// deadline updates that never block, so holding one cannot park anyone for long, and
/// `shutdown` may take them from a plain (signal) thread.
#[derive(Default)]
struct Registry {
    /// The listener being served, to close at shutdown.
    listener: Option<TcpListener>,
    next_id: u64,
    connections: HashMap<u64, Arc<Tracked>>,
}

struct Tracked {
    /// A handle on the connection's socket, to wake it when it is idle at shutdown.
    stream: TcpStream,
    /// Waiting for a request's first byte: nothing to lose by closing it.
    idle: Mutex<bool>,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// Locks `mutex`; the data behind every mutex here is consistent at every unlock, so a
/// panic elsewhere does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// A server with `config`, not yet serving.
    pub fn new(config: Config) -> Server {
        Server {
            config: Arc::new(config),
            shared: Arc::new(Shared {
                shutting_down: AtomicBool::new(false),
                registry: Mutex::new(Registry::default()),
                accepted: AtomicU64::new(0),
            }),
        }
    }

    /// A handle to shut the server down.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves connections from `listener` until the server is shut down (or the listener
    /// closed, which counts as a shutdown), then waits until every connection has ended.
    /// Must run on a coroutine.
    pub fn serve(&self, listener: TcpListener) -> io::Result<()> {
        {
            let mut registry = self.shared.registry();
            if self.shared.is_shutting_down() {
                return Ok(());
            }
            registry.listener = Some(listener.try_clone()?);
        }
        // Every clone of `handler` holds a member of `connections`: the accept loop's, and
        // one per spawned connection coroutine until it ends. So once the accept loop has
        // returned, `wait` sees exactly the connections still running.
        let connections = WaitGroup::new();
        let handler = {
            let shared = Arc::clone(&self.shared);
            let config = Arc::clone(&self.config);
            let member = connections.clone();
            move |stream: TcpStream, _peer| {
                let _member = &member;
                serve_connection(stream, &shared, &config);
            }
        };
        common::accept_loop("http", &listener, handler);
        self.handle().shutdown();
        connections.wait();
        self.shared.registry().listener = None;
        Ok(())
    }
}

impl ServerHandle {
    /// Starts a graceful shutdown: closes the listener, wakes idle connections so they
    /// close, and marks the server so active connections close after their current
    /// response. Returns at once; [`Server::serve`] returns when the connections are done.
    /// Calling it again does nothing (and reports nothing).
    pub fn shutdown(&self) -> ShutdownReport {
        let registry = self.shared.registry();
        let mut report = ShutdownReport {
            idle_closed: 0,
            active: 0,
        };
        if self.shared.shutting_down.swap(true, Ordering::SeqCst) {
            return report;
        }
        if let Some(listener) = &registry.listener {
            // Already closed is fine: the accept loop ended because of it.
            let _ = listener.close();
        }
        let now = Instant::now();
        for tracked in registry.connections.values() {
            if *lock(&tracked.idle) {
                // A past deadline wakes the idle read with a timeout (Go closes the
                // connection; the deadline is gentler: a connection that received its
                // request's first byte a moment ago resets it and serves that request).
                let _ = tracked.stream.set_read_deadline(Some(now));
                report.idle_closed += 1;
            } else {
                report.active += 1;
            }
        }
        report
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

/// A connection's entry in the registry, removed when its coroutine ends, however it ends.
struct Registration<'a> {
    shared: &'a Shared,
    id: u64,
    tracked: Arc<Tracked>,
}

impl<'a> Registration<'a> {
    /// Registers `stream` as idle; `None` if the server is shutting down (the connection
    /// should just be closed).
    fn new(shared: &'a Shared, stream: &TcpStream) -> Option<Registration<'a>> {
        let mut registry = shared.registry();
        // Under the registry lock, which `shutdown` holds while it sets the flag and walks
        // the connections: a connection is either refused here or walked there.
        if shared.is_shutting_down() {
            return None;
        }
        let id = registry.next_id;
        registry.next_id += 1;
        let tracked = Arc::new(Tracked {
            stream: stream.try_clone().ok()?,
            idle: Mutex::new(true),
        });
        registry.connections.insert(id, Arc::clone(&tracked));
        Some(Registration {
            shared,
            id,
            tracked,
        })
    }

    /// Marks the connection idle with read deadline `deadline`; false if the server is
    /// shutting down (the connection should close). See [`Shared`] for why the flag is
    /// checked and the deadline set under the connection's lock.
    fn enter_idle(&self, deadline: Instant) -> bool {
        let mut idle = lock(&self.tracked.idle);
        if self.shared.is_shutting_down() {
            return false;
        }
        *idle = true;
        self.tracked
            .stream
            .set_read_deadline(Some(deadline))
            .is_ok()
    }

    /// Marks the connection active (a request is arriving): shutdown lets it finish.
    fn enter_active(&self) {
        *lock(&self.tracked.idle) = false;
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.registry().connections.remove(&self.id);
    }
}

/// Serves one connection until either side closes it.
fn serve_connection(stream: TcpStream, shared: &Shared, config: &Config) {
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let Some(registration) = Registration::new(shared, &stream) else {
        return;
    };
    let read_buffer_size = config.limits.max_head_bytes.max(4096);
    let mut conn = Conn::new(stream, read_buffer_size, config.write_timeout);
    let mut date = DateCache::default();
    let mut wait_for_request = config.read_timeout;
    loop {
        if conn.buffered().is_empty() {
            // Idle: wait for the next request (`fill` first flushes the responses so far;
            // the connection counts as idle already while they go out, so a shutdown does
            // not wait for it, and the read deadline does not affect the write). A
            // timeout, a shutdown's wake-up, a reset or the client's close all end the
            // connection without a response: no request has started.
            if !registration.enter_idle(Instant::now() + wait_for_request) {
                conn.close_gracefully();
                return;
            }
            match conn.fill() {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        registration.enter_active();
        wait_for_request = config.idle_timeout;
        let started = Instant::now();
        if conn
            .stream()
            .set_read_deadline(Some(started + config.read_timeout))
            .is_err()
        {
            return;
        }
        match request::read_request(&mut conn, &config.limits) {
            Ok(request) => {
                let close = !request.keep_alive || shared.is_shutting_down();
                let connection = if close {
                    Connection::Close
                } else if request.minor_version == 0 {
                    Connection::KeepAlive
                } else {
                    Connection::Default
                };
                let head_only = request.method == "HEAD";
                route(&request).write_to(conn.out(), &mut date, connection, head_only);
                if close {
                    conn.close_gracefully();
                    return;
                }
                if conn.flush_if_large().is_err() {
                    return;
                }
            }
            Err(ReadError::Reject(status, message)) => {
                refuse(conn, &mut date, status, &message);
                return;
            }
            Err(ReadError::TimedOut) => {
                refuse(
                    conn,
                    &mut date,
                    Status::REQUEST_TIMEOUT,
                    "request not received in time",
                );
                return;
            }
            Err(ReadError::Io(_)) => return,
        }
    }
}

/// Answers a request that cannot be served with `status` and closes the connection.
fn refuse(mut conn: Conn, date: &mut DateCache, status: Status, message: &str) {
    let body = format!("{} {}: {message}\n", status.code, status.reason);
    Response::text(status, body.as_bytes()).write_to(conn.out(), date, Connection::Close, false);
    conn.close_gracefully();
}

/// The routes: `/` and `/json` answer GET and HEAD, `/echo` answers POST with the body.
fn route(request: &Request) -> Response<'_> {
    let get = matches!(request.method.as_str(), "GET" | "HEAD");
    match request.path.as_str() {
        "/" if get => Response::text(Status::OK, HELLO_BODY),
        "/json" if get => Response {
            status: Status::OK,
            content_type: "application/json",
            body: JSON_BODY,
            allow: None,
        },
        "/" | "/json" => method_not_allowed("GET, HEAD"),
        "/echo" if request.method == "POST" => Response {
            status: Status::OK,
            content_type: "application/octet-stream",
            body: &request.body,
            allow: None,
        },
        "/echo" => method_not_allowed("POST"),
        _ => Response::text(Status::NOT_FOUND, b"404 page not found\n"),
    }
}

fn method_not_allowed(allow: &'static str) -> Response<'static> {
    Response {
        allow: Some(allow),
        ..Response::text(Status::METHOD_NOT_ALLOWED, b"405 method not allowed\n")
    }
}
