//! The WebSocket echo example, served in-process and driven by tungstenite's client (on plain
//! threads over `std::net`, and on coroutines over coronet's `TcpStream`), plus raw TCP
//! clients that break the protocol on purpose.

#[allow(dead_code)]
#[path = "../examples/websocket.rs"]
mod websocket;

mod util;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Error, Message, WebSocket};

/// A guard against a hang, not a timing assertion: a broken server fails the test instead.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// The example's server on its own 2-worker runtime.
type Server = util::ExampleServer;

fn start_server(limits: websocket::Limits) -> Server {
    util::ExampleServer::start(move |listener| websocket::serve(listener, limits))
}

fn url(server: &Server) -> String {
    format!("ws://{}/", server.addr)
}

/// A tungstenite client over a std socket with hang guards.
fn connect_std(addr: SocketAddr) -> WebSocket<std::net::TcpStream> {
    let tcp = util::std_client(addr, HANG_GUARD);
    let (ws, response) = tungstenite::client::client(format!("ws://{addr}/"), tcp).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// A tungstenite client over a coronet socket (call on a coroutine).
fn connect_coronet(addr: SocketAddr) -> WebSocket<coronet::net::TcpStream> {
    let tcp = util::coronet_client(addr, HANG_GUARD);
    let (ws, response) = tungstenite::client::client(format!("ws://{addr}/"), tcp).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// Sends `message` and expects it back, unchanged and of the same kind.
fn echo<S: Read + Write>(ws: &mut WebSocket<S>, message: Message) {
    ws.send(message.clone()).unwrap();
    let reply = ws.read().unwrap();
    assert!(
        reply == message,
        "sent {} bytes, got back {reply:?}",
        message.len()
    );
}

/// Starts the close handshake and expects the server to answer with the same code, then to
/// close the connection (tungstenite's `ConnectionClosed` on the client side).
fn close_handshake<S: Read + Write>(mut ws: WebSocket<S>, code: CloseCode, reason: &str) {
    ws.close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
    .unwrap();
    let mut got_close = false;
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => {
                let frame = frame.expect("the server's close frame has a code");
                assert_eq!(frame.code, code);
                got_close = true;
            }
            Ok(other) => panic!("message after close: {other:?}"),
            Err(Error::ConnectionClosed) => break,
            Err(e) => panic!("the close handshake failed: {e}"),
        }
    }
    assert!(got_close, "the server never answered the close frame");
}

/// Deterministic test bytes of `len`.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    util::pattern_at(seed, 0, len)
}

/// Text with multi-byte characters, `len` characters long.
fn text(seed: u64, len: usize) -> String {
    const ALPHABET: [char; 6] = ['a', 'Z', '0', 'é', '€', '𝄞'];
    (0..len)
        .map(|i| ALPHABET[(util::pattern_byte(seed, i as u64) % 6) as usize])
        .collect()
}

/// Every kind of message a client sends, up to the size limit.
fn conversation<S: Read + Write>(ws: &mut WebSocket<S>, seed: u64) {
    echo(ws, Message::text("hello"));
    echo(ws, Message::text(""));
    echo(ws, Message::text(text(seed, 100_000)));
    echo(ws, Message::binary(Vec::new()));
    echo(ws, Message::binary(payload(seed, 1)));
    echo(ws, Message::binary(payload(seed + 1, 70_000)));
    echo(
        ws,
        Message::binary(payload(seed + 2, websocket::MAX_MESSAGE)),
    );
    // A ping is answered with a pong carrying the same payload.
    ws.send(Message::Ping(b"are you there".to_vec())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Pong(b"are you there".to_vec()));
}

#[test]
fn text_binary_and_ping_round_trip_from_a_thread_and_a_coroutine() {
    let _watchdog = util::watchdog("websocket round trips", Duration::from_secs(120));
    let server = start_server(websocket::Limits::default());
    let addr = server.addr;
    let on_coroutine = server.runtime.spawn(move || {
        let mut ws = connect_coronet(addr);
        conversation(&mut ws, 10);
        close_handshake(ws, CloseCode::Normal, "bye");
    });
    let on_thread = std::thread::spawn(move || {
        let mut ws = connect_std(addr);
        conversation(&mut ws, 20);
        close_handshake(ws, CloseCode::Normal, "bye");
    });
    on_coroutine.join().unwrap();
    on_thread.join().unwrap();
    server.stop();
}

#[test]
fn tungstenite_connect_and_the_close_handshake() {
    let _watchdog = util::watchdog("websocket connect", Duration::from_secs(120));
    let server = start_server(websocket::Limits::default());
    let (mut ws, response) = tungstenite::connect(url(&server)).unwrap();
    assert_eq!(response.status(), 101);
    if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_read_timeout(Some(HANG_GUARD)).unwrap();
    }
    echo(&mut ws, Message::text("over tungstenite::connect"));
    // The server echoes the client's close code (here not the usual 1000).
    close_handshake(ws, CloseCode::Away, "going away");
    server.stop();
}

#[test]
fn fifty_concurrent_clients_each_get_their_own_messages_back_in_order() {
    const CLIENTS: u64 = 50;
    const MESSAGES: u64 = 20;
    let _watchdog = util::watchdog("websocket 50 clients", Duration::from_secs(120));
    let server = start_server(websocket::Limits::default());
    let addr = server.addr;
    let talk = |seed: u64| {
        move |ws: &mut dyn FnMut(Message) -> Message| {
            for i in 0..MESSAGES {
                let sent = if i % 2 == 0 {
                    Message::text(format!("client {seed} message {i}: {}", text(seed, 50)))
                } else {
                    Message::binary(util::pattern_at(seed, i * 10_000, 1000 + i as usize))
                };
                assert_eq!(ws(sent.clone()), sent, "client {seed} message {i}");
            }
        }
    };
    // Half the clients on coroutines of the server's runtime, half on threads. The thread
    // clients wait at a barrier until all of them have upgraded, so at least that many
    // sessions are open at once.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS as usize / 2));
    let coroutines: Vec<_> = (0..CLIENTS / 2)
        .map(|seed| {
            let talk = talk(seed);
            server.runtime.spawn(move || {
                let mut ws = connect_coronet(addr);
                talk(&mut |m| {
                    ws.send(m).unwrap();
                    ws.read().unwrap()
                });
                close_handshake(ws, CloseCode::Normal, "");
            })
        })
        .collect();
    let threads: Vec<_> = (CLIENTS / 2..CLIENTS)
        .map(|seed| {
            let (talk, barrier) = (talk(seed), barrier.clone());
            std::thread::spawn(move || {
                let mut ws = connect_std(addr);
                barrier.wait();
                talk(&mut |m| {
                    ws.send(m).unwrap();
                    ws.read().unwrap()
                });
                close_handshake(ws, CloseCode::Normal, "");
            })
        })
        .collect();
    for handle in coroutines {
        handle.join().unwrap();
    }
    for handle in threads {
        handle.join().unwrap();
    }
    server.stop();
}

/// Sends raw bytes, hangs up its sending side, and reads the whole reply until the server
/// closes the connection.
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(HANG_GUARD)).unwrap();
    tcp.write_all(request).unwrap();
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply)
        .unwrap_or_else(|e| panic!("the server did not answer and close: {e}"));
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn bad_handshakes_get_an_http_error_and_the_server_keeps_serving() {
    let _watchdog = util::watchdog("websocket bad handshakes", Duration::from_secs(120));
    let server = start_server(websocket::Limits::default());
    let cases: [(&[u8], &str); 5] = [
        (
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "HTTP/1.1 426 Upgrade Required\r\n",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            "HTTP/1.1 426 Upgrade Required\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\n",
        ),
        (
            b"\x16\x03\x01\x00\xff garbage \x00\x01\x02\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\n",
        ),
    ];
    for (request, status_line) in cases {
        let reply = raw_exchange(server.addr, request);
        assert!(
            reply.starts_with(status_line),
            "{:?} got {reply:?}",
            String::from_utf8_lossy(request)
        );
        if status_line.contains("426") {
            assert!(
                reply.contains("\r\nSec-WebSocket-Version: 13\r\n"),
                "{reply:?}"
            );
        }
    }
    // A request with 64 KiB of headers is refused, not buffered.
    let mut huge = b"GET / HTTP/1.1\r\n".to_vec();
    while huge.len() <= 70_000 {
        huge.extend_from_slice(
            b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    huge.extend_from_slice(b"\r\n");
    let reply = raw_exchange(server.addr, &huge);
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply:?}");
    // A client that hangs up mid-request gets no answer, just the close.
    assert_eq!(
        raw_exchange(server.addr, b"GET / HTTP/1.1\r\nHost: loc"),
        ""
    );

    let mut ws = connect_std(server.addr);
    echo(&mut ws, Message::text("still serving"));
    close_handshake(ws, CloseCode::Normal, "");
    server.stop();
}

#[test]
fn a_message_over_the_limit_is_refused_with_close_code_1009() {
    const LIMIT: usize = 64 * 1024;
    let _watchdog = util::watchdog("websocket size limit", Duration::from_secs(120));
    let server = start_server(websocket::Limits {
        max_message: LIMIT,
        ..websocket::Limits::default()
    });
    let mut ws = connect_std(server.addr);
    echo(&mut ws, Message::binary(payload(1, LIMIT)));
    ws.send(Message::binary(payload(2, LIMIT + 1))).unwrap();
    match ws.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // The server then closes the connection.
    match ws.read() {
        Err(Error::ConnectionClosed) => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    // And serves the next client.
    let mut ws = connect_std(server.addr);
    echo(&mut ws, Message::text("next"));
    close_handshake(ws, CloseCode::Normal, "");
    server.stop();
}

#[test]
fn the_default_limit_refuses_a_message_one_byte_over_4_mib_and_the_client_hears_why() {
    let _watchdog = util::watchdog("websocket default limit", Duration::from_secs(120));
    let server = start_server(websocket::Limits::default());
    let mut ws = connect_std(server.addr);
    // The server refuses the message as soon as it reads the frame header, while most of
    // the 4 MiB are still on their way: it must read them away rather than reset the
    // connection, or the client could not finish sending and would never see the close.
    ws.send(Message::binary(payload(3, websocket::MAX_MESSAGE + 1)))
        .unwrap();
    match ws.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    server.stop();
}

/// Upgrades a raw socket by hand, so the test can then send frames tungstenite's client
/// would never produce.
fn raw_upgrade(addr: SocketAddr) -> (std::net::TcpStream, BufReader<std::net::TcpStream>) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(HANG_GUARD)).unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 101 Switching Protocols\r\n");
    let mut accept_key_seen = false;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        // RFC 6455's own example key and answer.
        accept_key_seen |= line
            .eq_ignore_ascii_case("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")
            && line.ends_with("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
    }
    assert!(accept_key_seen, "no correct Sec-WebSocket-Accept header");
    (tcp, reader)
}

/// Reads one unmasked server frame; returns (opcode, payload).
fn read_server_frame(reader: &mut impl Read) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).unwrap();
    assert_eq!(head[1] & 0x80, 0, "server frames are never masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            reader.read_exact(&mut ext).unwrap();
            u16::from_be_bytes(ext) as usize
        }
        127 => panic!("unexpectedly long server frame"),
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).unwrap();
    (head[0] & 0x0f, payload)
}

#[test]
fn protocol_violations_are_closed_with_the_right_close_code() {
    let _watchdog = util::watchdog("websocket protocol violations", Duration::from_secs(120));
    let server = start_server(websocket::Limits::default());
    // (frame bytes, expected close code). Client frames must be masked (RFC 6455 5.1); a
    // text frame must be UTF-8; a frame header may announce at most MAX_MESSAGE bytes.
    let unmasked_text = vec![0x81, 0x02, b'h', b'i'];
    let mask = [1u8, 2, 3, 4];
    let bad_utf8: Vec<u8> = [0xff, 0xfe].iter().zip(mask).map(|(b, m)| b ^ m).collect();
    let mut invalid_text = vec![0x81, 0x82];
    invalid_text.extend_from_slice(&mask);
    invalid_text.extend_from_slice(&bad_utf8);
    let mut huge_header = vec![0x82, 0xff];
    huge_header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    huge_header.extend_from_slice(&mask);
    let cases = [
        (unmasked_text, 1002u16),
        (invalid_text, 1007),
        (huge_header, 1009),
    ];
    for (frame, code) in cases {
        let (mut tcp, mut reader) = raw_upgrade(server.addr);
        tcp.write_all(&frame).unwrap();
        let (opcode, payload) = read_server_frame(&mut reader);
        assert_eq!(opcode, 0x8, "expected a close frame");
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code);
        // The server then closes its side.
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "data after the close frame: {rest:?}");
    }
    let mut ws = connect_std(server.addr);
    echo(&mut ws, Message::text("still serving"));
    close_handshake(ws, CloseCode::Normal, "");
    server.stop();
}

#[test]
fn a_client_that_never_finishes_the_upgrade_is_dropped_at_the_deadline() {
    let _watchdog = util::watchdog("websocket handshake deadline", Duration::from_secs(120));
    // A short handshake deadline on its own server, so only the stalled clients meet it.
    let server = start_server(websocket::Limits {
        handshake: Duration::from_millis(200),
        ..websocket::Limits::default()
    });
    assert_eq!(raw_exchange_open(server.addr, b""), "");
    assert_eq!(
        raw_exchange_open(server.addr, b"GET / HTTP/1.1\r\nHost: x"),
        ""
    );
    server.stop();
}

/// Sends `request` without closing the write side, and reads until the server closes.
fn raw_exchange_open(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(HANG_GUARD)).unwrap();
    tcp.write_all(request).unwrap();
    let mut reply = Vec::new();
    match tcp.read_to_end(&mut reply) {
        Ok(_) => String::from_utf8_lossy(&reply).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => String::new(),
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
}

#[test]
fn a_taken_port_is_a_clean_error() {
    let taken = std::net::TcpListener::bind(util::LOCAL).unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let options = websocket::common::ServerOptions {
        addr: addr.clone(),
        workers: Some(1),
    };
    let error = websocket::run(options, websocket::Limits::default(), |_| {
        panic!("the server started on a taken port")
    })
    .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    assert!(
        error
            .to_string()
            .contains(&format!("cannot listen on {addr}")),
        "{error}"
    );
}

/// Set in the child process that runs [`sigterm_closes_the_listener_and_run_returns`].
const SIGTERM_CHILD: &str = "CORONET_WEBSOCKET_SIGTERM_CHILD";

/// The whole `run` (as `main` calls it) in a child process, which sends itself SIGTERM: the
/// signal must close the listener and make `run` return `Ok`, so the process exits 0. A
/// child because the signal handler is process-wide and installed once.
#[test]
fn sigterm_closes_the_listener_and_run_returns() {
    if util::is_child(SIGTERM_CHILD) {
        sigterm_child();
        return;
    }
    let (stdout, stderr) =
        util::run_child_ok("sigterm_closes_the_listener_and_run_returns", SIGTERM_CHILD);
    assert!(
        stdout.contains("websocket: listening on ws://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("websocket: stopped"), "{stdout}");
    assert!(stderr.contains("got signal 15"), "{stderr}");
}

fn sigterm_child() {
    let _watchdog = util::watchdog("websocket sigterm child", Duration::from_secs(120));
    let options = websocket::common::ServerOptions {
        addr: util::LOCAL.to_owned(),
        workers: Some(2),
    };
    util::serve_until_sigterm(
        |ready| websocket::run(options, websocket::Limits::default(), ready),
        HANG_GUARD,
        |addr| {
            let mut ws = connect_std(addr);
            echo(&mut ws, Message::text("before the signal"));
            close_handshake(ws, CloseCode::Normal, "");
        },
    );
}

#[test]
fn an_idle_client_is_told_1001_and_one_that_stops_reading_is_dropped() {
    let _watchdog = util::watchdog("websocket idle", Duration::from_secs(120));
    // A short idle timeout on its own server, so only these clients meet it.
    let server = start_server(websocket::Limits {
        idle: Duration::from_millis(200),
        ..websocket::Limits::default()
    });
    // Upgraded, then silent. (No message first: a slow test machine could make that late,
    // and the test would depend on timing.)
    let mut quiet = connect_std(server.addr);
    match quiet.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }

    // This client sends and never reads: the server's echo writes stall, and after the idle
    // timeout it drops the connection, so the client's sending fails (bounded: 4 GiB).
    let mut deaf = connect_std(server.addr);
    let message = Message::binary(payload(5, 64 * 1024));
    let error = (0..65_536)
        .find_map(|_| deaf.send(message.clone()).err())
        .expect("the server never dropped a client that does not read");
    match error {
        Error::Io(e) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
        other => panic!("unexpected error: {other}"),
    }
    server.stop();
}
