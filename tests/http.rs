//! The HTTP example (examples/http), served in-process and driven by `ureq` (an independent
//! HTTP client) and by raw sockets for what a well-behaved client never sends: pipelining,
//! hand-made chunked bodies, malformed and oversized requests, smuggling attempts, slow and
//! idle clients. Graceful shutdown is tested in-process through the server's handle, and in
//! a child process through a real SIGTERM.
//!
//! Every client socket has a read timeout: a server bug fails a test instead of hanging it.
//! No test depends on timing: the short server timeouts some tests configure are what they
//! test, and each outcome is the same however slow the machine is.

// Unix only: the example's shutdown path (examples/common) and this test's SIGTERM use
// POSIX signals.
#![cfg(unix)]

#[allow(dead_code)]
#[path = "../examples/http/main.rs"]
mod http;
mod util;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::common::{self, Command as ParsedCommand, ServerOptions};
use http::server::{Config, Server, ServerHandle, ShutdownReport};

/// A guard against a hang, not a timing assertion: a broken server fails the test instead.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// A short server timeout for the tests of timeouts.
const SHORT: Duration = Duration::from_millis(200);

/// A server running on its own 2-worker runtime.
struct TestServer {
    addr: SocketAddr,
    handle: ServerHandle,
    serving: coronet::JoinHandle<io::Result<()>>,
    _runtime: coronet::Runtime,
}

impl TestServer {
    fn start(config: Config) -> TestServer {
        let runtime = coronet::runtime::Builder::new().workers(2).build().unwrap();
        let listener = coronet::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::new(config);
        let handle = server.handle();
        let serving = runtime.spawn(move || server.serve(listener));
        TestServer {
            addr,
            handle,
            serving,
            _runtime: runtime,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts the server down and checks it finished cleanly: every connection coroutine
    /// ended (the tests close their clients first, or the shutdown closes them as idle).
    fn finish(self) {
        self.handle.shutdown();
        self.serving.join().unwrap().unwrap();
    }
}

/// A raw client: a socket to write to and a buffered reader of the same socket.
struct Raw {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        stream.set_write_timeout(Some(HANG_GUARD)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Raw { stream, reader }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one response; `head_only` for the response to a HEAD request (no body).
    fn response(&mut self, head_only: bool) -> RawResponse {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let n = self.reader.read_until(b'\n', &mut head).unwrap();
            assert!(n > 0, "connection closed mid-response: {:?}", lossy(&head));
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        assert!(
            parsed.parse(&head).unwrap().is_complete(),
            "bad response head: {:?}",
            lossy(&head)
        );
        let response = RawResponse {
            status: parsed.code.unwrap(),
            headers: parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8(h.value.to_vec()).unwrap(),
                    )
                })
                .collect(),
            body: Vec::new(),
        };
        if head_only {
            return response;
        }
        let length: usize = response
            .header("content-length")
            .expect("every response has Content-Length")
            .parse()
            .unwrap();
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        RawResponse { body, ..response }
    }

    /// Reads until the server closes the connection; returns what came before. A reset
    /// counts as closed (the server may reset a connection it has finished with).
    fn until_closed(&mut self) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return got,
                Err(e) => panic!("waiting for the server to close: {e} (after {got:?})"),
            }
        }
    }

    /// Expects a response with `status`, `Connection: close`, then the close; and closes
    /// too (so the server need not linger for the client's close).
    fn expect_refusal(mut self, status: u16) {
        let response = self.response(false);
        assert_eq!(response.status, status, "{}", lossy(&response.body));
        assert_eq!(response.header("connection"), Some("close"));
        assert_eq!(self.until_closed(), b"", "bytes after the refusal");
    }
}

struct RawResponse {
    status: u16,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(HANG_GUARD).build()
}

/// A request on a raw connection, asserting a 200 with `body`: shows the connection is
/// still usable.
fn assert_hello(raw: &mut Raw) {
    raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = raw.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, http::server::HELLO_BODY);
}

#[test]
fn routes_answer_a_real_client() {
    let server = TestServer::start(Config::default());
    let agent = agent();

    let hello = agent.get(&server.url("/")).call().unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.content_type(), "text/plain");
    assert!(hello.header("date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(hello.into_string().unwrap(), "Hello, World!");

    let json = agent.get(&server.url("/json")).call().unwrap();
    assert_eq!(json.content_type(), "application/json");
    assert_eq!(
        json.into_string().unwrap(),
        r#"{"message":"Hello, World!"}"#
    );

    let echo = agent
        .post(&server.url("/echo?ignored=query"))
        .send_bytes(b"echo me")
        .unwrap();
    assert_eq!(echo.into_string().unwrap(), "echo me");

    let head = agent.head(&server.url("/json")).call().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.header("content-length"), Some("27"));
    assert_eq!(head.into_string().unwrap(), "");

    match agent.get(&server.url("/missing")).call() {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    match agent.post(&server.url("/")).send_bytes(b"x") {
        Err(ureq::Error::Status(405, response)) => {
            assert_eq!(response.header("allow"), Some("GET, HEAD"));
        }
        other => panic!("expected 405, got {other:?}"),
    }
    match agent.get(&server.url("/echo")).call() {
        Err(ureq::Error::Status(405, response)) => {
            assert_eq!(response.header("allow"), Some("POST"));
        }
        other => panic!("expected 405, got {other:?}"),
    }
    drop(agent);
    server.finish();
}

#[test]
fn large_bodies_echo_intact_with_content_length_and_chunked() {
    let server = TestServer::start(Config::default());
    let agent = agent();
    // Exactly the default limit: the largest body accepted.
    let body = util::pattern_at(7, 0, 1024 * 1024);

    let mut echoed = Vec::new();
    agent
        .post(&server.url("/echo"))
        .send_bytes(&body)
        .unwrap()
        .into_reader()
        .read_to_end(&mut echoed)
        .unwrap();
    assert!(echoed == body, "Content-Length body echoed differently");

    // `send` with a reader of unknown length makes ureq use chunked transfer coding.
    let mut echoed = Vec::new();
    agent
        .post(&server.url("/echo"))
        .send(&body[..])
        .unwrap()
        .into_reader()
        .read_to_end(&mut echoed)
        .unwrap();
    assert!(echoed == body, "chunked body echoed differently");
    drop(agent);
    server.finish();
}

#[test]
fn keep_alive_reuses_one_connection() {
    let server = TestServer::start(Config::default());
    let agent = agent();
    for i in 0..20 {
        let body = format!("request {i}");
        let echo = agent.post(&server.url("/echo")).send_string(&body).unwrap();
        assert_eq!(echo.into_string().unwrap(), body);
    }
    assert_eq!(server.handle.connections_accepted(), 1);
    drop(agent);
    server.finish();
}

#[test]
fn concurrent_clients_each_get_their_own_answers() {
    const CLIENTS: usize = 16;
    const REQUESTS: usize = 25;
    let server = TestServer::start(Config::default());
    let url = server.url("/echo");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent = agent();
                for i in 0..REQUESTS {
                    let body = util::pattern_at(client as u64, i as u64 * 1000, 1000 + i);
                    let mut echoed = Vec::new();
                    agent
                        .post(&url)
                        .send_bytes(&body)
                        .unwrap()
                        .into_reader()
                        .read_to_end(&mut echoed)
                        .unwrap();
                    assert!(echoed == body, "client {client} request {i}: wrong echo");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    server.finish();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    const REQUESTS: usize = 100;
    let server = TestServer::start(Config::default());
    let mut raw = Raw::connect(server.addr);
    let mut batch = Vec::new();
    for i in 0..REQUESTS {
        match i % 3 {
            0 => batch.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"),
            1 => batch.extend_from_slice(b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n"),
            _ => batch.extend_from_slice(
                format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n{i:04}")
                    .as_bytes(),
            ),
        }
    }
    raw.send(&batch);
    for i in 0..REQUESTS {
        let response = raw.response(false);
        assert_eq!(response.status, 200, "response {i}");
        let expected = match i % 3 {
            0 => http::server::HELLO_BODY.to_vec(),
            1 => http::server::JSON_BODY.to_vec(),
            _ => format!("{i:04}").into_bytes(),
        };
        assert_eq!(response.body, expected, "response {i}");
    }
    assert_hello(&mut raw);
    drop(raw);
    server.finish();
}

#[test]
fn a_request_sent_one_byte_at_a_time_is_served() {
    let server = TestServer::start(Config::default());
    let mut raw = Raw::connect(server.addr);
    raw.stream.set_nodelay(true).unwrap();
    let request = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3;name=value\r\nabc\r\n2\r\nde\r\n0\r\nX-Checksum: 1\r\n\r\n";
    for byte in request {
        raw.send(&[*byte]);
    }
    let response = raw.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"abcde");
    assert_hello(&mut raw);
    drop(raw);
    server.finish();
}

#[test]
fn chunked_bodies_with_extensions_and_trailers_are_decoded() {
    let server = TestServer::start(Config::default());
    let mut raw = Raw::connect(server.addr);
    raw.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n\
          4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: yes\r\n\r\n",
    );
    let response = raw.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(lossy(&response.body), "Wikipedia in\r\n\r\nchunks.");
    // An empty chunked body, no trailers.
    raw.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    let response = raw.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"");
    assert_hello(&mut raw);
    drop(raw);
    server.finish();
}

#[test]
fn malformed_chunked_bodies_get_400_and_a_close() {
    let server = TestServer::start(Config::default());
    let cases: [&[u8]; 8] = [
        b"zz\r\nWiki\r\n0\r\n\r\n",               // not hex
        b"4\r\nWikiXX0\r\n\r\n",                  // data not followed by CRLF
        b"4\nWiki\r\n0\r\n\r\n",                  // bare LF after the size
        b"\r\nWiki\r\n0\r\n\r\n",                 // empty size
        b"-4\r\nWiki\r\n0\r\n\r\n",               // sign
        b"fffffffffffffffff\r\n",                 // 17 hex digits: overflow
        b"4;ext\nmore\r\nWiki\r\n0\r\n\r\n",      // bare LF inside an extension
        b"4\r\nWiki\r\n0\r\nbad trailer\r\n\r\n", // trailer without a colon
    ];
    for (i, chunks) in cases.iter().enumerate() {
        let mut raw = Raw::connect(server.addr);
        let mut request =
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(chunks);
        raw.send(&request);
        let response = raw.response(false);
        assert_eq!(response.status, 400, "case {i}: {}", lossy(&response.body));
        assert_eq!(response.header("connection"), Some("close"), "case {i}");
        assert_eq!(raw.until_closed(), b"", "case {i}");
    }
    server.finish();
}

#[test]
fn connection_close_is_honoured() {
    let server = TestServer::start(Config::default());
    let mut raw = Raw::connect(server.addr);
    raw.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let response = raw.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.body, http::server::HELLO_BODY);
    assert_eq!(raw.until_closed(), b"");
    drop(raw);
    server.finish();
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked_for() {
    let server = TestServer::start(Config::default());
    let mut raw = Raw::connect(server.addr);
    raw.send(b"GET /json HTTP/1.0\r\n\r\n");
    let response = raw.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, http::server::JSON_BODY);
    assert_eq!(raw.until_closed(), b"");
    drop(raw);

    let mut raw = Raw::connect(server.addr);
    for _ in 0..2 {
        raw.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let response = raw.response(false);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("connection"), Some("keep-alive"));
        assert_eq!(response.body, http::server::HELLO_BODY);
    }
    drop(raw);
    server.finish();
}

#[test]
fn head_sends_the_get_headers_without_the_body() {
    let server = TestServer::start(Config::default());
    let mut raw = Raw::connect(server.addr);
    raw.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = raw.response(true);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("13"));
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // Had a body followed, this response would start with it.
    assert_hello(&mut raw);
    drop(raw);
    server.finish();
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_read() {
    let server = TestServer::start(Config::default());
    let mut raw = Raw::connect(server.addr);
    raw.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        assert!(raw.reader.read_until(b'\n', &mut interim).unwrap() > 0);
    }
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    raw.send(b"hello");
    let response = raw.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");

    // Too large: refused at once, without the 100.
    raw.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\n",
    );
    raw.expect_refusal(413);
    server.finish();
}

#[test]
fn malformed_requests_get_400_and_a_close() {
    let server = TestServer::start(Config::default());
    let cases: [&[u8]; 7] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",                       // no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", // two Hosts
        b"GET http//nopath HTTP/1.1\r\nHost: t\r\n\r\n", // not a path
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n", // NUL in a value
    ];
    for (i, request) in cases.iter().enumerate() {
        let mut raw = Raw::connect(server.addr);
        raw.send(request);
        let response = raw.response(false);
        assert_eq!(response.status, 400, "case {i}: {}", lossy(&response.body));
        assert_eq!(response.header("connection"), Some("close"), "case {i}");
        assert_eq!(raw.until_closed(), b"", "case {i}");
    }
    // The server still serves.
    let mut raw = Raw::connect(server.addr);
    assert_hello(&mut raw);
    drop(raw);
    server.finish();
}

#[test]
fn oversized_heads_get_431_and_a_close() {
    let server = TestServer::start(Config::default());
    // One huge header value: the head passes 8 KiB before it ends.
    let mut raw = Raw::connect(server.addr);
    let mut request = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat(b'a').take(9000));
    request.extend_from_slice(b"\r\n\r\n");
    raw.send(&request);
    raw.expect_refusal(431);

    // 101 small header fields (the limit is 100), well under 8 KiB.
    let mut raw = Raw::connect(server.addr);
    let mut request = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..100 {
        request.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    raw.send(&request);
    raw.expect_refusal(431);

    // A head that never ends (no blank line) is cut at the limit, not buffered forever.
    let mut raw = Raw::connect(server.addr);
    raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..1000 {
        if raw
            .stream
            .write_all(format!("X-{i}: v\r\n").as_bytes())
            .is_err()
        {
            break; // the server has refused and closed
        }
    }
    raw.expect_refusal(431);
    server.finish();
}

#[test]
fn oversized_bodies_get_413_and_a_close() {
    let server = TestServer::start(Config {
        limits: http::request::Limits {
            max_body_bytes: 1000,
            ..Config::default().limits
        },
        ..Config::default()
    });
    // Declared too large: refused before a byte of it is read.
    let mut raw = Raw::connect(server.addr);
    raw.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n");
    raw.expect_refusal(413);

    // Chunked: found too large while decoding.
    let mut raw = Raw::connect(server.addr);
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(b"190\r\n");
        request.extend(std::iter::repeat(b'x').take(0x190));
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    raw.send(&request);
    raw.expect_refusal(413);

    // At the limit: fine.
    let mut raw = Raw::connect(server.addr);
    let mut request = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n".to_vec();
    request.extend(std::iter::repeat(b'y').take(1000));
    raw.send(&request);
    let response = raw.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 1000);
    drop(raw);
    server.finish();
}

#[test]
fn ambiguous_framing_is_refused() {
    let server = TestServer::start(Config::default());
    let cases: [(&[u8], u16); 8] = [
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
            400,
        ),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4, 4\r\n\r\nabcd", 400),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd", 400),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            400,
        ),
        (
            b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
    ];
    for (i, (request, status)) in cases.iter().enumerate() {
        let mut raw = Raw::connect(server.addr);
        raw.send(request);
        let response = raw.response(false);
        assert_eq!(
            response.status,
            *status,
            "case {i}: {}",
            lossy(&response.body)
        );
        assert_eq!(response.header("connection"), Some("close"), "case {i}");
        assert_eq!(raw.until_closed(), b"", "case {i}");
    }
    // Repeated identical Content-Lengths are one length (as in Go).
    let mut raw = Raw::connect(server.addr);
    raw.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
    );
    let response = raw.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"abcd");
    drop(raw);
    server.finish();
}

#[test]
fn a_slowloris_client_is_dropped_at_the_read_deadline() {
    let server = TestServer::start(Config {
        read_timeout: SHORT,
        ..Config::default()
    });
    let mut raw = Raw::connect(server.addr);
    raw.stream.set_nodelay(true).unwrap();
    raw.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    // One byte every 20 ms: each far inside the deadline, so only a deadline on the whole
    // request (not a per-read timeout) can stop it. Bounded: 1500 bytes at most (30 s).
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let mut writer = raw.stream.try_clone().unwrap();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            for _ in 0..1500 {
                if stop.load(Ordering::Relaxed) || writer.write_all(b"a").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let response = raw.response(false);
    assert_eq!(response.status, 408);
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(raw.until_closed(), b"");
    stop.store(true, Ordering::Relaxed);
    trickler.join().unwrap();
    drop(raw);
    server.finish();
}

#[test]
fn a_body_that_stops_arriving_gets_408_at_the_read_deadline() {
    let server = TestServer::start(Config {
        read_timeout: SHORT,
        ..Config::default()
    });
    let mut raw = Raw::connect(server.addr);
    raw.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234");
    raw.expect_refusal(408);
    let mut raw = Raw::connect(server.addr);
    raw.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    raw.expect_refusal(408);
    server.finish();
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = TestServer::start(Config {
        read_timeout: SHORT,
        idle_timeout: SHORT,
        ..Config::default()
    });
    // Idle between requests: closed without a word.
    let mut raw = Raw::connect(server.addr);
    assert_hello(&mut raw);
    assert_eq!(raw.until_closed(), b"");
    // Connected but never sending: closed at the read deadline, also without a word (no
    // request has started, so there is nothing to answer).
    let mut silent = Raw::connect(server.addr);
    assert_eq!(silent.until_closed(), b"");
    drop((raw, silent));
    server.finish();
}

#[test]
fn shutdown_closes_idle_connections_and_finishes_requests_in_flight() {
    let server = TestServer::start(Config::default());
    let mut idle = Raw::connect(server.addr);
    assert_hello(&mut idle);
    let in_flight = start_request_in_flight(server.addr);

    let report = server.handle.shutdown();
    assert_eq!(
        report,
        ShutdownReport {
            idle_closed: 1,
            active: 1
        }
    );
    assert_eq!(idle.until_closed(), b"");
    finish_request_in_flight(in_flight);
    server.serving.join().unwrap().unwrap();
    let error = TcpStream::connect(server.addr).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
}

/// Sends the head and half the body of an echo request, and waits for the `100 Continue`
/// that shows the server is reading this request.
fn start_request_in_flight(addr: SocketAddr) -> Raw {
    let mut raw = Raw::connect(addr);
    raw.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
    );
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        assert!(raw.reader.read_until(b'\n', &mut interim).unwrap() > 0);
    }
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    raw.send(b"01234");
    raw
}

/// Sends the rest of the body, checks the full answer, with `Connection: close`, then the
/// server's close; and closes too (so the server need not linger).
fn finish_request_in_flight(mut raw: Raw) {
    raw.send(b"56789");
    let response = raw.response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.body, b"0123456789");
    assert_eq!(raw.until_closed(), b"");
}

const SIGTERM_CHILD: &str = "CORONET_TEST_HTTP_SIGTERM_CHILD";

/// The real `serve` of the example (signal handler included) in a child process: SIGTERM
/// closes the idle connection, refuses new ones, lets the request in flight finish, and
/// the process exits 0.
#[test]
fn sigterm_shuts_down_gracefully_and_exits_zero() {
    if util::is_child(SIGTERM_CHILD) {
        let runtime = coronet::runtime::Builder::new().workers(2).build().unwrap();
        let options = ServerOptions {
            addr: "127.0.0.1:0".to_owned(),
            workers: Some(2),
        };
        runtime
            .block_on(move || http::serve(options, Config::default()))
            .unwrap();
        return;
    }
    let _watchdog = util::watchdog("sigterm_shuts_down_gracefully", Duration::from_secs(120));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "sigterm_shuts_down_gracefully_and_exits_zero",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGTERM_CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // The log line names the address; the signal handler is installed before it.
    let mut output = String::new();
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "child ended before listening: {output}"
        );
        output.push_str(&line);
        // Not at the line's start: libtest's "test NAME ... " precedes it.
        if let Some((_, rest)) = line.split_once("http: listening on http://") {
            assert!(rest.trim_end().ends_with("with 2 worker(s)"), "{line}");
            break rest.split(' ').next().unwrap().parse().unwrap();
        }
    };

    let mut idle = Raw::connect(addr);
    assert_hello(&mut idle);
    let in_flight = start_request_in_flight(addr);
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: `kill` has no memory-safety preconditions; `pid` is our child, not yet
    // waited for, so the pid cannot have been reused.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);

    // The idle connection is closed once the listener is: from then on no new connection
    // gets an answer (it is refused, or reset if the kernel queued it in the moment the
    // listener was being released).
    assert_eq!(idle.until_closed(), b"");
    match TcpStream::connect(addr) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
        Ok(stream) => {
            stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
            let mut late = Raw {
                reader: BufReader::new(stream.try_clone().unwrap()),
                stream,
            };
            let _ = late.stream.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(
                late.until_closed(),
                b"",
                "a connection after SIGTERM was served"
            );
        }
    }
    finish_request_in_flight(in_flight);

    let status = child.wait().unwrap();
    stdout.read_to_string(&mut output).unwrap();
    let errors = stderr_reader.join().unwrap();
    assert!(status.success(), "child: {status}\n{output}\n{errors}");
    assert!(
        errors.contains(
            "shutting down: stopped accepting, closing 1 idle connection(s), finishing 1 in flight"
        ),
        "{errors}"
    );
    assert!(output.contains("http: shut down cleanly"), "{output}");
}

#[test]
fn a_taken_port_is_a_clean_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let options = ServerOptions {
        addr: addr.clone(),
        workers: Some(1),
    };
    let runtime = coronet::runtime::Builder::new().workers(1).build().unwrap();
    let error = runtime
        .block_on(move || http::serve(options, Config::default()))
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    assert!(
        error
            .to_string()
            .contains(&format!("cannot listen on {addr}")),
        "{error}"
    );
}

#[test]
fn options_are_parsed_and_bad_ones_reported() {
    let parse = |args: &[&str]| {
        common::parse_args(
            args.iter().map(|a| a.to_string()),
            "usage\n",
            "127.0.0.1:8080",
            Config::default(),
            http::parse_option,
        )
    };
    let Ok(ParsedCommand::Serve(options, config)) = parse(&[
        "--addr",
        "127.0.0.1:9",
        "--workers",
        "3",
        "--read-timeout",
        "0.25",
        "--idle-timeout",
        "5",
        "--write-timeout",
        "7",
        "--max-header-bytes",
        "1024",
        "--max-headers",
        "10",
        "--max-body-bytes",
        "99",
    ]) else {
        panic!("valid options refused");
    };
    assert_eq!(options.addr, "127.0.0.1:9");
    assert_eq!(options.workers, Some(3));
    assert_eq!(config.read_timeout, Duration::from_millis(250));
    assert_eq!(config.idle_timeout, Duration::from_secs(5));
    assert_eq!(config.write_timeout, Duration::from_secs(7));
    assert_eq!(config.limits.max_head_bytes, 1024);
    assert_eq!(config.limits.max_headers, 10);
    assert_eq!(config.limits.max_body_bytes, 99);

    for (args, needle) in [
        (&["--read-timeout", "0"][..], "--read-timeout"),
        (&["--idle-timeout", "-1"][..], "--idle-timeout"),
        (&["--write-timeout", "inf"][..], "--write-timeout"),
        (&["--max-body-bytes", "0"][..], "--max-body-bytes"),
        (&["--max-headers", "many"][..], "--max-headers"),
        (&["--max-header-bytes"][..], "needs a value"),
        (&["--bogus"][..], "unknown argument"),
    ] {
        match parse(args) {
            Err(message) => assert!(message.contains(needle), "{args:?}: {message}"),
            Ok(_) => panic!("{args:?} accepted"),
        }
    }
}

#[test]
fn dates_are_imf_fixdates() {
    assert_eq!(
        http::response::imf_fixdate(784_111_777),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert_eq!(
        http::response::imf_fixdate(0),
        "Thu, 01 Jan 1970 00:00:00 GMT"
    );
    // 2000-02-29, a leap day in a century leap year.
    assert_eq!(
        http::response::imf_fixdate(951_782_400),
        "Tue, 29 Feb 2000 00:00:00 GMT"
    );
}
