//! The TLS echo example, served in-process and driven by rustls clients: on coroutines (over
//! coronet's `TcpStream`) and on plain threads (over `std::net::TcpStream`), plus clients that
//! do not speak TLS at all.

#[allow(dead_code)]
#[path = "../examples/tls.rs"]
mod tls;

mod util;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A guard against a hang, not a timing assertion: a broken server fails the test instead.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// Payload sizes every client round-trips: tiny, exactly one TLS record, just over one record
/// (so a payload spans records), several records, and 1 MiB.
const SIZES: [usize; 6] = [1, 100, 16 * 1024, 16 * 1024 + 1, 64 * 1024 + 7, 1 << 20];

/// The client writes at most this much before reading the echo back. Keeping the bytes in
/// flight below what the two sockets' buffers hold means neither side can block the other
/// for good, whatever the payload size (a client that wrote 1 MiB before reading would
/// deadlock against any echo server once the buffers fill).
const CHUNK: usize = 32 * 1024;

/// The example's server on its own 2-worker runtime, with the certificate clients must
/// trust. Derefs to the shared [`util::ExampleServer`] (`runtime`, `addr`).
struct Server {
    served: util::ExampleServer,
    cert: CertificateDer<'static>,
}

impl Server {
    fn start(timeouts: tls::Timeouts) -> Server {
        let identity = tls::self_signed().unwrap();
        let config = identity.config;
        Server {
            served: util::ExampleServer::start(move |listener| {
                tls::serve(listener, config, timeouts)
            }),
            cert: identity.cert_der,
        }
    }

    /// Closes the listener and waits for the accept loop to return.
    fn stop(self) {
        self.served.stop();
    }
}

impl std::ops::Deref for Server {
    type Target = util::ExampleServer;

    fn deref(&self) -> &util::ExampleServer {
        &self.served
    }
}

/// A client configuration (ring provider) trusting exactly `cert`.
fn client_config(cert: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Sends `len` bytes of pattern `seed` in chunks of [`CHUNK`], reading each chunk's echo back
/// before sending the next, and checks every byte.
fn round_trip<S: Read + Write>(tls: &mut StreamOwned<ClientConnection, S>, seed: u64, len: usize) {
    let mut offset = 0;
    let mut echo = vec![0u8; CHUNK];
    while offset < len {
        let n = CHUNK.min(len - offset);
        let sent = util::pattern_at(seed, offset as u64, n);
        tls.write_all(&sent).unwrap();
        tls.flush().unwrap();
        tls.read_exact(&mut echo[..n])
            .unwrap_or_else(|e| panic!("reading the echo of bytes {offset}..: {e}"));
        if echo[..n] != sent[..] {
            let at = (0..n).find(|&i| echo[i] != sent[i]).unwrap();
            panic!(
                "payload of {len} bytes, seed {seed}: byte {} differs",
                offset + at
            );
        }
        offset += n;
    }
}

/// Sends close_notify and expects the server's close_notify back (a clean `Ok(0)`, not a bare
/// TCP EOF, which rustls reports as `UnexpectedEof`).
fn close_cleanly<S: Read + Write>(mut tls: StreamOwned<ClientConnection, S>) {
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "unexpected data after close: {rest:?}");
}

/// A whole client session over `tcp`: every size in [`SIZES`], then a clean close.
fn session<S: Read + Write>(tcp: S, config: Arc<ClientConfig>, seed: u64) {
    let conn = ClientConnection::new(config, localhost()).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    for (i, &size) in SIZES.iter().enumerate() {
        round_trip(&mut tls, seed * 100 + i as u64, size);
    }
    close_cleanly(tls);
}

fn std_connect(addr: SocketAddr) -> std::net::TcpStream {
    util::std_client(addr, HANG_GUARD)
}

fn coronet_connect(addr: SocketAddr) -> coronet::net::TcpStream {
    util::coronet_client(addr, HANG_GUARD)
}

#[test]
fn a_coroutine_client_and_a_thread_client_round_trip_every_size() {
    let _watchdog = util::watchdog("tls round trips", Duration::from_secs(120));
    let server = Server::start(tls::Timeouts::default());
    let (addr, config) = (server.addr, client_config(&server.cert));
    let coroutine_config = Arc::clone(&config);
    let on_coroutine = server
        .runtime
        .spawn(move || session(coronet_connect(addr), coroutine_config, 1));
    let on_thread = std::thread::spawn(move || session(std_connect(addr), config, 2));
    on_coroutine.join().unwrap();
    on_thread.join().unwrap();
    server.stop();
}

#[test]
fn concurrent_clients_each_get_their_own_bytes_back() {
    const CLIENTS: u64 = 16;
    const SIZE: usize = 256 * 1024 + 3;
    let _watchdog = util::watchdog("tls concurrent clients", Duration::from_secs(120));
    let server = Server::start(tls::Timeouts::default());
    let (addr, config) = (server.addr, client_config(&server.cert));
    let client = |seed: u64, tcp_is_coronet: bool, config: Arc<ClientConfig>| {
        move || {
            let conn = ClientConnection::new(config, localhost()).unwrap();
            if tcp_is_coronet {
                let mut tls = StreamOwned::new(conn, coronet_connect(addr));
                round_trip(&mut tls, seed, SIZE);
                close_cleanly(tls);
            } else {
                let mut tls = StreamOwned::new(conn, std_connect(addr));
                round_trip(&mut tls, seed, SIZE);
                close_cleanly(tls);
            }
        }
    };
    // Half the clients on coroutines of the server's own runtime, half on threads.
    let coroutines: Vec<_> = (0..CLIENTS / 2)
        .map(|seed| {
            server
                .runtime
                .spawn(client(seed, true, Arc::clone(&config)))
        })
        .collect();
    let threads: Vec<_> = (CLIENTS / 2..CLIENTS)
        .map(|seed| std::thread::spawn(client(seed, false, Arc::clone(&config))))
        .collect();
    for handle in coroutines {
        handle.join().unwrap();
    }
    for handle in threads {
        handle.join().unwrap();
    }
    server.stop();
}

/// Reads until the server closes the connection; a reset counts as closed too. Fails if the
/// hang guard expires instead.
fn expect_closed(mut tcp: std::net::TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    match tcp.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => got,
        Err(e) => panic!("{what}: the server did not close the connection: {e}"),
    }
}

/// Whether `bytes` is empty or TLS records only (an alert): never our own bytes echoed.
fn is_tls_or_nothing(bytes: &[u8]) -> bool {
    // A TLS record starts with its content type: 21 = alert, 22 = handshake.
    bytes.first().map_or(true, |&kind| kind == 21 || kind == 22)
}

#[test]
fn clients_that_do_not_speak_tls_are_closed_and_the_server_keeps_serving() {
    let _watchdog = util::watchdog("tls garbage clients", Duration::from_secs(120));
    let server = Server::start(tls::Timeouts::default());
    let config = client_config(&server.cert);

    // A plain HTTP client on the TLS port.
    let mut http = std_connect(server.addr);
    http.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let reply = expect_closed(http, "plain HTTP");
    assert!(is_tls_or_nothing(&reply), "plain HTTP got {reply:?}");

    // Bytes that are not a TLS record at all, and a record header announcing a 16 MiB record
    // (over the protocol's maximum), which must not be buffered.
    for garbage in [
        util::pattern_at(7, 0, 4096),
        vec![22, 3, 1, 0xff, 0xff, 1, 2, 3],
    ] {
        let mut tcp = std_connect(server.addr);
        tcp.write_all(&garbage).unwrap();
        let reply = expect_closed(tcp, "garbage");
        assert!(is_tls_or_nothing(&reply), "garbage got {reply:?}");
    }

    // A TLS client that does not trust the server's certificate: its handshake fails, on
    // the client side, and the server closes that connection.
    let stranger = tls::self_signed().unwrap();
    let distrustful = client_config(&stranger.cert_der);
    let conn = ClientConnection::new(distrustful, localhost()).unwrap();
    let mut tls = StreamOwned::new(conn, std_connect(server.addr));
    let error = tls.write_all(b"hello").and_then(|()| tls.flush());
    let error = match error {
        Err(e) => e,
        Ok(()) => tls.read(&mut [0; 16]).unwrap_err(),
    };
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");

    // And the server still serves.
    session(std_connect(server.addr), config, 3);
    server.stop();
}

#[test]
fn a_client_that_stalls_its_handshake_is_dropped_at_the_deadline() {
    let _watchdog = util::watchdog("tls handshake deadline", Duration::from_secs(120));
    // A short handshake deadline on its own server, so only the stalled clients meet it.
    let server = Server::start(tls::Timeouts {
        handshake: Duration::from_millis(200),
        idle: Duration::from_secs(300),
    });
    // One client says nothing; one sends the first bytes of a record and stops.
    let silent = std_connect(server.addr);
    let mut trickling = std_connect(server.addr);
    trickling.write_all(&[22, 3, 1]).unwrap();
    assert_eq!(expect_closed(silent, "silent client"), b"");
    let reply = expect_closed(trickling, "stalled handshake");
    assert!(is_tls_or_nothing(&reply), "stalled handshake got {reply:?}");
    server.stop();
}

#[test]
fn the_cert_out_file_lets_clients_verify_the_server_by_name_and_by_ip() {
    let _watchdog = util::watchdog("tls cert-out", Duration::from_secs(120));
    let dir = util::TempDir::new("tls-cert-out");
    let cert_path = dir.join("cert.pem");
    let options = common_options(util::LOCAL);
    let own = tls::TlsOptions {
        cert_out: Some(cert_path.clone()),
    };
    let prepared = tls::prepare(&options, &own).unwrap();
    assert_eq!(prepared.cert_path, cert_path);
    let addr = prepared.listener.local_addr().unwrap();
    let closer = prepared.listener.try_clone().unwrap();

    let pem = std::fs::read(&cert_path).unwrap();
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert!(
        !String::from_utf8_lossy(&pem).contains("PRIVATE KEY"),
        "the key must never be written"
    );
    let cert = CertificateDer::from_pem_slice(&pem).unwrap();
    let config = client_config(&cert);

    let runtime = coronet::runtime::Builder::new().workers(2).build().unwrap();
    let serving = runtime
        .spawn(move || tls::serve(prepared.listener, prepared.config, tls::Timeouts::default()));
    for name in ["localhost", "127.0.0.1"] {
        let name = ServerName::try_from(name).unwrap();
        let conn = ClientConnection::new(Arc::clone(&config), name).unwrap();
        let mut tls = StreamOwned::new(conn, std_connect(addr));
        round_trip(&mut tls, 9, 1000);
        close_cleanly(tls);
    }
    // A name the certificate does not cover is refused by the client.
    let conn = ClientConnection::new(config, ServerName::try_from("example.com").unwrap()).unwrap();
    let mut tls = StreamOwned::new(conn, std_connect(addr));
    let error = tls.write_all(b"x").and_then(|()| tls.flush());
    let error = match error {
        Err(e) => e,
        Ok(()) => tls.read(&mut [0; 1]).unwrap_err(),
    };
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");

    closer.close().unwrap();
    serving.join().unwrap();
}

fn common_options(addr: &str) -> tls::common::ServerOptions {
    tls::common::ServerOptions {
        addr: addr.to_owned(),
        workers: Some(1),
    }
}

#[test]
fn a_taken_port_is_a_clean_error() {
    let taken = std::net::TcpListener::bind(util::LOCAL).unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let error = match tls::prepare(&common_options(&addr), &tls::TlsOptions::default()) {
        Ok(_) => panic!("binding a taken port succeeded"),
        Err(error) => error,
    };
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    assert!(
        error
            .to_string()
            .contains(&format!("cannot listen on {addr}")),
        "{error}"
    );
}

#[test]
fn the_command_line_takes_cert_out_and_rejects_unknown_arguments() {
    let parse = |args: &[&str]| {
        tls::common::parse_args(
            args.iter().map(|arg| (*arg).to_owned()),
            "usage\n",
            "127.0.0.1:7443",
            tls::TlsOptions::default(),
            tls::parse_own_arg,
        )
    };
    match parse(&["--cert-out", "/tmp/x.pem", "--workers", "3"]) {
        Ok(tls::common::Command::Serve(options, own)) => {
            assert_eq!(options.workers, Some(3));
            assert_eq!(options.addr, "127.0.0.1:7443");
            assert_eq!(
                own.cert_out.as_deref(),
                Some(std::path::Path::new("/tmp/x.pem"))
            );
        }
        _ => panic!("expected options to serve with"),
    }
    let error = parse(&["--cert-out"]).err().unwrap();
    assert!(error.contains("--cert-out needs a value"), "{error}");
    let error = parse(&["--bogus"]).err().unwrap();
    assert!(error.contains("unknown argument: --bogus"), "{error}");
}

/// Set in the child process that runs [`sigterm_closes_the_listener_and_run_returns`].
const SIGTERM_CHILD: &str = "CORONET_TLS_SIGTERM_CHILD";

/// The whole `run` (as `main` calls it) in a child process, which sends itself SIGTERM: the
/// signal must close the listener and make `run` return `Ok`, so the process exits 0, and
/// the default certificate file must be gone. A child because the signal handler is
/// process-wide and installed once.
#[test]
fn sigterm_closes_the_listener_and_run_returns() {
    if util::is_child(SIGTERM_CHILD) {
        sigterm_child();
        return;
    }
    let (stdout, stderr) =
        util::run_child_ok("sigterm_closes_the_listener_and_run_returns", SIGTERM_CHILD);
    assert!(stdout.contains("tls: listening on 127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("tls: stopped"), "{stdout}");
    assert!(stderr.contains("got signal 15"), "{stderr}");
}

fn sigterm_child() {
    let _watchdog = util::watchdog("tls sigterm child", Duration::from_secs(120));
    // No `--cert-out`: the PEM is at the default, per-process path.
    let cert_path =
        std::env::temp_dir().join(format!("coronet-tls-echo-{}.pem", std::process::id()));
    util::serve_until_sigterm(
        |ready| {
            tls::run(
                common_options(util::LOCAL),
                tls::TlsOptions::default(),
                ready,
            )
        },
        HANG_GUARD,
        |addr| {
            let pem = std::fs::read(&cert_path).unwrap();
            let cert = CertificateDer::from_pem_slice(&pem).unwrap();
            session(std_connect(addr), client_config(&cert), 4);
        },
    );
    assert!(
        !cert_path.exists(),
        "the default certificate file was left behind"
    );
}

#[test]
fn idle_clients_and_clients_that_stop_reading_are_dropped() {
    let _watchdog = util::watchdog("tls idle", Duration::from_secs(120));
    // A short idle timeout on its own server, so only these clients meet it.
    let server = Server::start(tls::Timeouts {
        handshake: Duration::from_secs(10),
        idle: Duration::from_millis(200),
    });
    let config = client_config(&server.cert);

    let conn = ClientConnection::new(Arc::clone(&config), localhost()).unwrap();
    let mut quiet = StreamOwned::new(conn, std_connect(server.addr));
    // The read completes the handshake, then waits. (No round trip first: a slow test
    // machine could make it late, and the test would depend on timing.)
    let error = quiet.read(&mut [0; 16]).unwrap_err();
    // The server closed the TCP connection (without close_notify): not our hang guard.
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");

    // This client sends and never reads: the server's echo writes stall, and after the idle
    // timeout it drops the connection, so the client's sending fails (bounded: 4 GiB).
    let conn = ClientConnection::new(config, localhost()).unwrap();
    let mut deaf = StreamOwned::new(conn, std_connect(server.addr));
    let chunk = util::pattern_at(12, 0, 64 * 1024);
    let error = (0..65_536)
        .find_map(|_| deaf.write_all(&chunk).and_then(|()| deaf.flush()).err())
        .expect("the server never dropped a client that does not read");
    assert!(
        matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
    server.stop();
}
