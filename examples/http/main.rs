//! An HTTP/1.1 server on coronet: one coroutine per connection, written in blocking style.
//!
//! ```text
//! cargo run --release --example http                      # 127.0.0.1:8080
//! cargo run --release --example http -- --addr 0.0.0.0:8080 --workers 4
//! curl -i http://127.0.0.1:8080/            # Hello, World!
//! curl -i http://127.0.0.1:8080/json        # {"message":"Hello, World!"}
//! curl -i --data-binary @file http://127.0.0.1:8080/echo
//! wrk -t1 -c100 -d5s http://127.0.0.1:8080/
//! ```
//!
//! Requests are parsed by `httparse`; keep-alive, pipelining, `Content-Length` and chunked
//! bodies (trailers are validated and discarded), `Expect: 100-continue` and HEAD are
//! supported; responses carry `Date`, `Content-Type` and `Content-Length`. Limits answer
//! 400 (malformed or ambiguously framed), 431 (head too large, too many headers) or 413
//! (body too large) and close; deadlines drop slow (slowloris) and idle clients. SIGINT/SIGTERM shut down
//! gracefully: stop accepting, close idle connections, finish requests in flight, exit 0.
//!
//! Modules: `conn` (buffers), `request` (parsing and framing), `response` (writing),
//! `server` (connections, routes, shutdown).

use std::io;
use std::process::ExitCode;
use std::time::Duration;

#[path = "../common/mod.rs"]
pub mod common;
pub mod conn;
pub mod request;
pub mod response;
pub mod server;

use server::{Config, Server};

const USAGE: &str = "\
http: an HTTP/1.1 server on coronet (one coroutine per connection)

USAGE:
    http [--addr HOST:PORT] [--workers N] [OPTIONS]

OPTIONS:
    --addr HOST:PORT          address to serve on (default 127.0.0.1:8080)
    --workers N               worker threads (default: one per core)
    --read-timeout SECS       a request (head and body) must arrive within this from its
                              first byte, else 408 and close (default 10)
    --idle-timeout SECS       close keep-alive connections idle this long (default 60)
    --write-timeout SECS      drop a client that does not take a response within this
                              (default 10)
    --max-header-bytes N      larger request heads get 431 (default 8192)
    --max-headers N           more header fields get 431 (default 100)
    --max-body-bytes N        larger request bodies get 413 (default 1048576)
    -h, --help                print this help

ROUTES:
    GET|HEAD /      Hello, World!
    GET|HEAD /json  {\"message\":\"Hello, World!\"}
    POST /echo      the request body

SIGINT/SIGTERM stop accepting, close idle connections, let requests in flight finish and
exit 0.
";

fn main() -> ExitCode {
    common::main_with(
        "http",
        USAGE,
        "127.0.0.1:8080",
        Config::default(),
        parse_option,
        serve,
    )
}

/// Takes one of the server's own options into `config`; `Ok(false)` if `arg` is not one.
pub fn parse_option(
    config: &mut Config,
    arg: &str,
    value: &mut dyn FnMut() -> Result<String, String>,
) -> Result<bool, String> {
    match arg {
        "--read-timeout" => config.read_timeout = seconds(&value()?, arg)?,
        "--idle-timeout" => config.idle_timeout = seconds(&value()?, arg)?,
        "--write-timeout" => config.write_timeout = seconds(&value()?, arg)?,
        "--max-header-bytes" => config.limits.max_head_bytes = common::positive(&value()?, arg)?,
        "--max-headers" => config.limits.max_headers = common::positive(&value()?, arg)?,
        "--max-body-bytes" => config.limits.max_body_bytes = common::positive(&value()?, arg)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// A positive, finite number of seconds (fractions allowed: `0.5`).
fn seconds(text: &str, name: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{name}: not a positive number of seconds: {text}"))
}

/// Binds, logs, installs the SIGINT/SIGTERM handler and serves until a signal has shut the
/// server down and every connection has ended.
pub fn serve(options: common::ServerOptions, config: Config) -> io::Result<()> {
    let listener = common::bind(&options.addr)?;
    let server = Server::new(config);
    let handle = server.handle();
    common::on_shutdown_signal(move |signal| {
        let report = handle.shutdown();
        eprintln!(
            "http: signal {signal}: shutting down: stopped accepting, closing {} idle \
             connection(s), finishing {} in flight",
            report.idle_closed, report.active
        );
    })?;
    println!(
        "http: listening on http://{} with {} worker(s)",
        listener.local_addr()?,
        options.worker_count()
    );
    let accepted = server.handle();
    server.serve(listener)?;
    println!(
        "http: shut down cleanly after serving {} connection(s)",
        accepted.connections_accepted()
    );
    Ok(())
}
