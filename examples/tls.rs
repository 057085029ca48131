//! A TLS echo server: rustls over coronet's `TcpStream`, one coroutine per connection, in
//! plain blocking style.
//!
//! ```text
//! cargo run --release --example tls                                   # 127.0.0.1:7443
//! cargo run --release --example tls -- --addr 0.0.0.0:7443 --workers 4 --cert-out cert.pem
//! ```
//!
//! At start the server makes a fresh self-signed certificate (`rcgen`) for `localhost`,
//! `127.0.0.1` and `::1`, and writes it as PEM to `--cert-out PATH` (default
//! `$TMPDIR/coronet-tls-echo-PID.pem`, removed again on a clean shutdown); the log line names
//! the file. Only the certificate is written, never the private key. To talk to the server
//! with a client that checks the certificate against that file:
//!
//! ```text
//! openssl s_client -connect 127.0.0.1:7443 -CAfile cert.pem -verify_return_error -quiet
//! socat - OPENSSL:localhost:7443,cafile=cert.pem
//! ```
//!
//! Type a line, get it back. (`curl --cacert cert.pem https://localhost:7443/` verifies the
//! certificate too, but echo is not HTTP: curl gets its own request back as the "response".)
//!
//! How it works: rustls is sans-I/O; `rustls::StreamOwned` drives it over any `Read + Write`,
//! and a coronet `TcpStream` is one whose reads and writes park the coroutine instead of the
//! thread. So the echo loop is the same code one would write for `std::net` with one thread
//! per client, and scales like an event loop. The handshake is driven explicitly first
//! (`complete_io`) so that its failure (a plain-TCP client, garbage bytes, a client that does
//! not trust the certificate) is logged as such and closes only that connection.
//!
//! Limits, so no client can pin resources: the handshake must finish within
//! [`Timeouts::handshake`] (10 s); afterwards a read or write that waits longer than
//! [`Timeouts::idle`] (5 min) ends the connection. rustls bounds its own buffers (by default
//! 64 KiB of TLS data waiting to be sent, 16 KiB of decrypted data waiting to be read, and
//! incoming records of at most the protocol's 16 KiB plus overhead; a longer record is an
//! error), and the echo loop holds one 16 KiB buffer, so a connection's memory is bounded
//! whatever the peer sends.
//!
//! SIGINT/SIGTERM close the listener, which ends the accept loop; the process then exits 0
//! (connections still open end with it).

#[path = "common/mod.rs"]
pub mod common;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coronet::net::{TcpListener, TcpStream};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

const USAGE: &str = "\
tls: a TLS echo server on coronet (rustls over coronet's TcpStream, one coroutine per client)

USAGE:
    tls [--addr HOST:PORT] [--workers N] [--cert-out PATH]

OPTIONS:
    --addr HOST:PORT   address to serve on (default 127.0.0.1:7443)
    --workers N        worker threads (default: one per core)
    --cert-out PATH    where to write the generated self-signed certificate (PEM)
                       (default: $TMPDIR/coronet-tls-echo-PID.pem)
    -h, --help         print this help

Every byte a client sends over TLS is sent back. Try:
    openssl s_client -connect 127.0.0.1:7443 -CAfile CERT.pem -verify_return_error -quiet
";

/// The largest plaintext a TLS record carries: the echo buffer holds exactly one record.
const RECORD_PLAINTEXT: usize = 16 * 1024;

/// The example's own command-line options (besides `--addr` and `--workers`).
#[derive(Debug, Default, Clone)]
pub struct TlsOptions {
    /// `--cert-out PATH`; `None` means a per-process file in the temporary directory.
    pub cert_out: Option<PathBuf>,
}

/// How long a peer may keep a connection waiting.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// The whole TLS handshake must complete within this (a Go-style deadline, so a client
    /// trickling one byte at a time cannot stretch it).
    pub handshake: Duration,
    /// After the handshake, a single read or write may wait this long.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(300),
        }
    }
}

/// A freshly generated self-signed server identity.
pub struct SelfSigned {
    /// A rustls server configuration (ring provider, TLS 1.2 and 1.3) presenting the
    /// certificate.
    pub config: Arc<ServerConfig>,
    /// The certificate, DER, for clients to trust.
    pub cert_der: CertificateDer<'static>,
    /// The same certificate as PEM, for `--cert-out`.
    pub cert_pem: String,
}

/// The names the generated certificate is valid for.
pub const CERT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Generates a self-signed certificate for [`CERT_NAMES`] and a server configuration using it.
pub fn self_signed() -> io::Result<SelfSigned> {
    let names: Vec<String> = CERT_NAMES.iter().map(|name| (*name).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| io::Error::other(format!("cannot generate a certificate: {e}")))?;
    let cert_der = certified.cert.der().clone();
    let cert_pem = certified.cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    // The default provider (aws-lc-rs) is not compiled in: name ring explicitly.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(format!("TLS configuration: {e}")))?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .map_err(|e| io::Error::other(format!("TLS configuration: {e}")))?;
    Ok(SelfSigned {
        config: Arc::new(config),
        cert_der,
        cert_pem,
    })
}

/// A server that is bound and has its certificate, ready to [`serve`].
pub struct Prepared {
    /// The bound listener.
    pub listener: TcpListener,
    /// The server configuration.
    pub config: Arc<ServerConfig>,
    /// Where the certificate PEM was written.
    pub cert_path: PathBuf,
}

/// Binds `options.addr` (a taken port is a clean "cannot listen on ADDR" error), generates the
/// certificate and writes its PEM to `--cert-out` (or the default path).
pub fn prepare(options: &common::ServerOptions, own: &TlsOptions) -> io::Result<Prepared> {
    let listener = common::bind(&options.addr)?;
    let identity = self_signed()?;
    let cert_path = own.cert_out.clone().unwrap_or_else(default_cert_path);
    write_certificate(&cert_path, &identity.cert_pem)?;
    Ok(Prepared {
        listener,
        config: identity.config,
        cert_path,
    })
}

fn default_cert_path() -> PathBuf {
    std::env::temp_dir().join(format!("coronet-tls-echo-{}.pem", std::process::id()))
}

fn write_certificate(path: &Path, pem: &str) -> io::Result<()> {
    std::fs::write(path, pem).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot write the certificate to {}: {e}", path.display()),
        )
    })
}

fn main() -> ExitCode {
    common::main_with(
        "tls",
        USAGE,
        "127.0.0.1:7443",
        TlsOptions::default(),
        parse_own_arg,
        |options, own| run(options, own, |_| {}),
    )
}

/// Takes the example's own arguments for [`common::parse_args`]: `--cert-out PATH`.
pub fn parse_own_arg(
    own: &mut TlsOptions,
    arg: &str,
    value: &mut dyn FnMut() -> Result<String, String>,
) -> Result<bool, String> {
    match arg {
        "--cert-out" => {
            own.cert_out = Some(PathBuf::from(value()?));
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Prepares the server, arranges for SIGINT/SIGTERM to close the listener, logs, calls
/// `ready` with the bound address, and serves until the signal. Runs on a coroutine (inside
/// `block_on`).
pub fn run(
    options: common::ServerOptions,
    own: TlsOptions,
    ready: impl FnOnce(std::net::SocketAddr),
) -> io::Result<()> {
    let prepared = prepare(&options, &own)?;
    let local = prepared.listener.local_addr()?;
    let closer = prepared.listener.try_clone()?;
    common::on_shutdown_signal(move |signal| {
        eprintln!("tls: got signal {signal}, closing the listener");
        let _ = closer.close();
    })?;
    println!(
        "tls: listening on {local} with {} worker(s)",
        options.worker_count()
    );
    println!(
        "tls: certificate (PEM) for {} written to {}",
        CERT_NAMES.join(", "),
        prepared.cert_path.display()
    );
    ready(local);
    serve(prepared.listener, prepared.config, Timeouts::default());
    if own.cert_out.is_none() {
        // The default file is ours and names a key that dies with this process.
        let _ = std::fs::remove_file(&prepared.cert_path);
    }
    println!("tls: stopped");
    Ok(())
}

/// Serves TLS echo on `listener`, a coroutine per connection, until the listener is closed.
/// Must run on a coroutine.
pub fn serve(listener: TcpListener, config: Arc<ServerConfig>, timeouts: Timeouts) {
    common::accept_loop("tls", &listener, move |conn, peer| {
        if let Err(e) = echo(conn, Arc::clone(&config), timeouts) {
            eprintln!("tls: {peer}: {e}");
        }
    });
}

/// Why a connection ended badly; its `Display` is the log line.
#[derive(Debug)]
pub enum ConnError {
    /// The TLS handshake failed: not a TLS client, an untrusted certificate, a timeout, ...
    Handshake(io::Error),
    /// The connection failed after the handshake.
    Io(io::Error),
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
            ConnError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// One connection: handshake, then echo until the peer closes.
pub fn echo(
    mut tcp: TcpStream,
    config: Arc<ServerConfig>,
    timeouts: Timeouts,
) -> Result<(), ConnError> {
    let _ = tcp.set_nodelay(true);
    let mut tls =
        ServerConnection::new(config).map_err(|e| ConnError::Handshake(io::Error::other(e)))?;

    // The handshake, under one deadline for all of it. `complete_io` returns once the
    // handshake is done, or with the error (after sending rustls' alert, if any).
    tcp.set_deadline(Some(Instant::now() + timeouts.handshake))
        .map_err(ConnError::Handshake)?;
    tls.complete_io(&mut tcp).map_err(ConnError::Handshake)?;
    if tls.is_handshaking() {
        return Err(ConnError::Handshake(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer stopped before the handshake completed",
        )));
    }
    tcp.set_deadline(None).map_err(ConnError::Io)?;
    tcp.set_read_timeout(Some(timeouts.idle))
        .map_err(ConnError::Io)?;
    tcp.set_write_timeout(Some(timeouts.idle))
        .map_err(ConnError::Io)?;

    // A socket timeout surfaces as std's `WouldBlock`: name it for the log.
    let failed = |e: io::Error| {
        if e.kind() == io::ErrorKind::WouldBlock {
            let message = format!("idle for {:?}, closing", timeouts.idle);
            ConnError::Io(io::Error::new(io::ErrorKind::TimedOut, message))
        } else {
            ConnError::Io(e)
        }
    };
    let mut stream = StreamOwned::new(tls, tcp);
    let mut buf = vec![0u8; RECORD_PLAINTEXT];
    loop {
        let n = match stream.read(&mut buf) {
            // close_notify: the peer is done sending.
            Ok(0) => break,
            Ok(n) => n,
            // TCP EOF without close_notify. Harmless for echo (every byte received was
            // authenticated and has been sent back), and many clients do it.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(failed(e)),
        };
        stream.write_all(&buf[..n]).map_err(failed)?;
        stream.flush().map_err(failed)?;
    }
    // Answer close_notify with ours, as the protocol asks; the socket closes on drop.
    stream.conn.send_close_notify();
    let _ = stream.flush();
    Ok(())
}
