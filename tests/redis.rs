//! The redis example served in-process on a coronet runtime and driven by the `redis`
//! crate's synchronous client (a client written elsewhere) and by raw TCP for byte-exact
//! replies, protocol errors and hostile framing. `redis-cli`/`redis-benchmark` are run too
//! when installed (skipped, with a note, when not).

#[allow(dead_code)]
#[path = "../examples/redis/commands.rs"]
mod commands;
#[path = "../examples/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/redis/db.rs"]
mod db;
#[allow(dead_code)]
#[path = "../examples/redis/resp.rs"]
mod resp;
#[allow(dead_code)]
#[path = "../examples/redis/server.rs"]
mod server;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commands::Server;
use resp::Limits;

/// A guard against a hang, not a timing assertion: a broken server fails the test instead.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// The server on its own 2-worker runtime; closing the listener and joining on drop.
struct TestServer {
    addr: SocketAddr,
    closer: coronet::net::TcpListener,
    handle: Option<coronet::JoinHandle<io::Result<()>>>,
    // Dropped last: the runtime must outlive the server's coroutines.
    _runtime: coronet::Runtime,
}

impl TestServer {
    fn start() -> TestServer {
        TestServer::with_limits(Limits::DEFAULT)
    }

    fn with_limits(limits: Limits) -> TestServer {
        let runtime = coronet::runtime::Builder::new().workers(2).build().unwrap();
        let listener = coronet::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let closer = listener.try_clone().unwrap();
        let server = Arc::new(Server::new(limits));
        let handle = runtime.spawn(move || server::serve(listener, server));
        TestServer {
            addr,
            closer,
            handle: Some(handle),
            _runtime: runtime,
        }
    }

    /// A `redis` crate connection.
    fn client(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.addr)).unwrap();
        let connection = client.get_connection_with_timeout(HANG_GUARD).unwrap();
        connection.set_read_timeout(Some(HANG_GUARD)).unwrap();
        connection.set_write_timeout(Some(HANG_GUARD)).unwrap();
        connection
    }

    fn raw(&self) -> Raw {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        stream.set_write_timeout(Some(HANG_GUARD)).unwrap();
        Raw { stream }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.closer.close();
        if let Some(handle) = self.handle.take() {
            let result = handle.join();
            if !std::thread::panicking() {
                result.expect("server panicked").expect("server failed");
            }
        }
    }
}

/// A plain TCP client for byte-exact exchanges.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads exactly `expected.len()` bytes and compares them.
    fn expect(&mut self, expected: &[u8]) {
        let mut got = vec![0; expected.len()];
        self.stream
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("reading {:?}: {e}", String::from_utf8_lossy(expected)));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    /// Sends `request` and expects exactly `reply`.
    fn exchange(&mut self, request: &[u8], reply: &[u8]) {
        self.send(request);
        self.expect(reply);
    }

    /// Expects the server to have closed the connection with nothing more to read.
    fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        self.stream.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "unexpected bytes before close: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

/// A request in RESP multibulk form.
fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// Polls `condition` until it holds; a bounded loop (the hang guard), paced by a short
/// sleep so it does not spin. Used for expiry, which is driven by the clock.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn set_and_get_with_every_option() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(query::<String>(&mut con, &["SET", "k", "v1"]), "OK");
    assert_eq!(
        query::<Option<String>>(&mut con, &["GET", "k"]).as_deref(),
        Some("v1")
    );
    assert_eq!(query::<Option<String>>(&mut con, &["GET", "missing"]), None);
    // NX: only when absent; XX: only when present (nil reply when refused).
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "k", "v2", "NX"]),
        None
    );
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "new", "n", "XX"]),
        None
    );
    assert_eq!(query::<Option<String>>(&mut con, &["GET", "new"]), None);
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "new", "n", "nx"]).as_deref(),
        Some("OK")
    );
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "k", "v3", "XX"]).as_deref(),
        Some("OK")
    );
    // GET returns the old value (or nil) and still sets.
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "k", "v4", "GET"]).as_deref(),
        Some("v3")
    );
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "fresh", "f", "GET"]),
        None
    );
    assert_eq!(
        query::<Option<String>>(&mut con, &["GET", "fresh"]).as_deref(),
        Some("f")
    );
    // EX sets a TTL, a plain SET clears it, KEEPTTL keeps it.
    assert_eq!(
        query::<String>(&mut con, &["SET", "t", "1", "EX", "100"]),
        "OK"
    );
    let ttl: i64 = query(&mut con, &["TTL", "t"]);
    assert!((1..=100).contains(&ttl), "{ttl}");
    assert_eq!(
        query::<String>(&mut con, &["SET", "t", "2", "KEEPTTL"]),
        "OK"
    );
    let ttl: i64 = query(&mut con, &["TTL", "t"]);
    assert!((1..=100).contains(&ttl), "{ttl}");
    assert_eq!(query::<String>(&mut con, &["SET", "t", "3"]), "OK");
    assert_eq!(query::<i64>(&mut con, &["TTL", "t"]), -1);
    assert_eq!(
        query::<String>(&mut con, &["SET", "t", "4", "PX", "100000"]),
        "OK"
    );
    let pttl: i64 = query(&mut con, &["PTTL", "t"]);
    assert!((1..=100_000).contains(&pttl), "{pttl}");
    // EXAT in the past: set and immediately gone.
    assert_eq!(
        query::<String>(&mut con, &["SET", "t", "5", "EXAT", "1"]),
        "OK"
    );
    assert_eq!(query::<Option<String>>(&mut con, &["GET", "t"]), None);
    // Binary-safe values, including CR LF and NUL, and a value of 1 MiB.
    let binary: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    redis::cmd("SET")
        .arg("bin")
        .arg(&binary[..])
        .query::<()>(&mut con)
        .unwrap();
    let back: Vec<u8> = redis::cmd("GET").arg("bin").query(&mut con).unwrap();
    assert!(back == binary, "the 1 MiB binary value came back different");
}

#[test]
fn counters() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(query::<i64>(&mut con, &["INCR", "c"]), 1);
    assert_eq!(query::<i64>(&mut con, &["INCRBY", "c", "41"]), 42);
    assert_eq!(query::<i64>(&mut con, &["DECR", "c"]), 41);
    assert_eq!(query::<i64>(&mut con, &["DECRBY", "c", "-9"]), 50);
    assert_eq!(query::<i64>(&mut con, &["DECR", "fresh"]), -1);
    assert_eq!(query::<String>(&mut con, &["GET", "c"]), "50");
    // INCR keeps the key's TTL.
    query::<()>(&mut con, &["EXPIRE", "c", "1000"]);
    query::<()>(&mut con, &["INCR", "c"]);
    let ttl: i64 = query(&mut con, &["TTL", "c"]);
    assert!((1..=1000).contains(&ttl), "{ttl}");
    query::<()>(&mut con, &["SET", "max", &i64::MAX.to_string()]);
    query::<()>(&mut con, &["SET", "spaced", " 1"]);
    let mut raw = server.raw();
    raw.exchange(
        &multibulk(&[b"INCR", b"max"]),
        b"-ERR increment or decrement would overflow\r\n",
    );
    raw.exchange(
        &multibulk(&[b"INCR", b"spaced"]),
        b"-ERR value is not an integer or out of range\r\n",
    );
    raw.exchange(
        &multibulk(&[b"INCRBY", b"c", b"1.5"]),
        b"-ERR value is not an integer or out of range\r\n",
    );
    raw.exchange(
        &multibulk(&[b"DECRBY", b"c", b"-9223372036854775808"]),
        b"-ERR decrement would overflow\r\n",
    );
}

#[test]
fn multi_key_commands_and_the_keyspace() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(query::<String>(&mut con, &["FLUSHALL"]), "OK");
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]), 0);
    assert_eq!(
        query::<String>(&mut con, &["MSET", "a", "1", "b", "2", "c", "3", "a", "4"]),
        "OK"
    );
    assert_eq!(
        query::<Vec<Option<String>>>(&mut con, &["MGET", "a", "b", "nope", "c"]),
        vec![Some("4".into()), Some("2".into()), None, Some("3".into())]
    );
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]), 3);
    assert_eq!(
        query::<i64>(&mut con, &["EXISTS", "a", "a", "nope", "b"]),
        3
    );
    assert_eq!(query::<i64>(&mut con, &["DEL", "a", "nope", "a"]), 1);
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "a"]), 0);
    assert_eq!(query::<String>(&mut con, &["FLUSHALL", "ASYNC"]), "OK");
    assert_eq!(query::<i64>(&mut con, &["DBSIZE"]), 0);
    let mut raw = server.raw();
    raw.exchange(
        &multibulk(&[b"MSET", b"a", b"1", b"b"]),
        b"-ERR wrong number of arguments for 'mset' command\r\n",
    );
    raw.exchange(
        &multibulk(&[b"FLUSHALL", b"LATER"]),
        b"-ERR syntax error\r\n",
    );
}

#[test]
fn expiry_ttl_persist_and_options() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(query::<i64>(&mut con, &["TTL", "none"]), -2);
    assert_eq!(query::<i64>(&mut con, &["PTTL", "none"]), -2);
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "none", "10"]), 0);
    query::<()>(&mut con, &["SET", "k", "v"]);
    assert_eq!(query::<i64>(&mut con, &["TTL", "k"]), -1);
    assert_eq!(query::<i64>(&mut con, &["PERSIST", "k"]), 0);
    // NX/XX/GT/LT, Redis 7 semantics (no TTL counts as infinite).
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "k", "100", "XX"]), 0);
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "k", "100", "GT"]), 0);
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "k", "100", "NX"]), 1);
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "k", "200", "NX"]), 0);
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "k", "50", "GT"]), 0);
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "k", "200", "GT"]), 1);
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "k", "300", "LT"]), 0);
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "k", "150", "lt"]), 1);
    let ttl: i64 = query(&mut con, &["TTL", "k"]);
    assert!((1..=150).contains(&ttl), "{ttl}");
    assert_eq!(query::<i64>(&mut con, &["PERSIST", "k"]), 1);
    assert_eq!(query::<i64>(&mut con, &["TTL", "k"]), -1);
    // A time in the past deletes the key.
    assert_eq!(query::<i64>(&mut con, &["EXPIRE", "k", "-1"]), 1);
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "k"]), 0);
    // A key set with a short PX disappears: lazily, when read...
    query::<()>(&mut con, &["SET", "short", "v", "PX", "30"]);
    eventually("GET short returns nil", || {
        query::<Option<String>>(&mut con, &["GET", "short"]).is_none()
    });
    // ...and actively: DBSIZE counts expired keys not yet removed (as Redis does), so it
    // reaching 0 without anyone reading the keys shows the sweeper removed them.
    query::<()>(&mut con, &["FLUSHALL"]);
    for i in 0..500 {
        query::<()>(&mut con, &["SET", &format!("sweep:{i}"), "v", "PX", "20"]);
    }
    query::<()>(&mut con, &["PEXPIRE", "sweep:0", "10"]);
    eventually("the sweeper empties the keyspace", || {
        query::<i64>(&mut con, &["DBSIZE"]) == 0
    });
    let mut raw = server.raw();
    raw.exchange(
        &multibulk(&[b"EXPIRE", b"k", b"10", b"NX", b"XX"]),
        b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
    );
    raw.exchange(
        &multibulk(&[b"EXPIRE", b"k", b"10", b"GT", b"LT"]),
        b"-ERR GT and LT options at the same time are not compatible\r\n",
    );
    raw.exchange(
        &multibulk(&[b"EXPIRE", b"k", b"10", b"SOON"]),
        b"-ERR Unsupported option SOON\r\n",
    );
    raw.exchange(
        &multibulk(&[b"EXPIRE", b"k", b"9223372036854775807"]),
        b"-ERR invalid expire time in 'expire' command\r\n",
    );
}

#[test]
fn the_sweep_removes_only_due_keys_and_within_its_budget() {
    // `Db` directly, from this plain thread (coronet's mutex blocks the thread there).
    let db = db::Db::new();
    let now = db::now_ms();
    for i in 0..1000 {
        let key = format!("due:{i}");
        db.lock(key.as_bytes())
            .set(key.as_bytes(), b"v".to_vec(), Some(now - 1));
        let key = format!("later:{i}");
        db.lock(key.as_bytes())
            .set(key.as_bytes(), b"v".to_vec(), Some(now + 3_600_000));
    }
    db.lock(b"forever").set(b"forever", b"v".to_vec(), None);
    assert_eq!(db.len(), 2001);
    // A budget of 1 per shard: 1000 due keys over 64 shards take several passes, each
    // removing at most one key per shard and saying whether more are due.
    let mut passes = 0;
    let mut removed = 0;
    loop {
        let (n, more_due) = db.sweep(now, 1);
        assert!(n <= db::SHARDS);
        removed += n;
        passes += 1;
        if !more_due {
            break;
        }
        assert!(passes <= 1000, "the sweep never finished");
    }
    assert_eq!(removed, 1000);
    assert!(passes > 1);
    assert_eq!(db.len(), 1001);
    assert_eq!(db.sweep(now, 1), (0, false));
}

#[test]
fn connection_commands() {
    let server = TestServer::start();
    let mut con = server.client();
    assert_eq!(query::<String>(&mut con, &["PING"]), "PONG");
    assert_eq!(query::<String>(&mut con, &["PING", "hi there"]), "hi there");
    assert_eq!(query::<String>(&mut con, &["ECHO", "echo"]), "echo");
    assert_eq!(query::<String>(&mut con, &["SELECT", "0"]), "OK");
    assert_eq!(
        query::<Option<String>>(&mut con, &["CLIENT", "GETNAME"]),
        None
    );
    assert_eq!(
        query::<String>(&mut con, &["CLIENT", "SETNAME", "worker-1"]),
        "OK"
    );
    assert_eq!(
        query::<Option<String>>(&mut con, &["client", "getname"]).as_deref(),
        Some("worker-1")
    );
    let id: i64 = query(&mut con, &["CLIENT", "ID"]);
    let other_id: i64 = query(&mut server.client(), &["CLIENT", "ID"]);
    assert_ne!(id, other_id);
    // COMMAND: what redis-cli reads at start-up, one 10-field entry per command.
    let count: i64 = query(&mut con, &["COMMAND", "COUNT"]);
    let table: Vec<redis::Value> = query(&mut con, &["COMMAND"]);
    assert_eq!(table.len() as i64, count);
    let mut arities = HashMap::new();
    for entry in table {
        let redis::Value::Array(fields) = entry else {
            panic!("not an array: {entry:?}")
        };
        assert_eq!(fields.len(), 10);
        let name: String = redis::from_redis_value(&fields[0]).unwrap();
        let arity: i64 = redis::from_redis_value(&fields[1]).unwrap();
        arities.insert(name, arity);
    }
    for (name, arity) in [
        ("get", 2),
        ("set", -3),
        ("mset", -3),
        ("ping", -1),
        ("client", -2),
    ] {
        assert_eq!(arities.get(name), Some(&arity), "{name}");
    }
    let names: Vec<String> = query(&mut con, &["COMMAND", "LIST"]);
    assert_eq!(names.len() as i64, count);
    let config: Vec<String> = query(&mut con, &["CONFIG", "GET", "save", "append*"]);
    assert_eq!(config, ["appendonly", "no", "save", ""]);

    let mut raw = server.raw();
    raw.exchange(
        &multibulk(&[b"SELECT", b"1"]),
        b"-ERR DB index is out of range\r\n",
    );
    raw.exchange(
        &multibulk(&[b"SELECT", b"x"]),
        b"-ERR value is not an integer or out of range\r\n",
    );
    raw.exchange(
        &multibulk(&[b"CLIENT", b"SETNAME", b"two words"]),
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    );
    raw.exchange(
        &multibulk(&[b"CLIENT", b"nosuch"]),
        b"-ERR unknown subcommand 'nosuch'. Try CLIENT HELP.\r\n",
    );
    raw.exchange(
        &multibulk(&[b"COMMAND", b"DOCS"]),
        b"-ERR unknown subcommand 'DOCS'. Try COMMAND HELP.\r\n",
    );
    raw.exchange(
        &multibulk(&[b"PING", b"a", b"b"]),
        b"-ERR wrong number of arguments for 'ping' command\r\n",
    );
    // QUIT: +OK, then the server closes.
    raw.exchange(&multibulk(&[b"QUIT"]), b"+OK\r\n");
    raw.expect_closed();
}

#[test]
fn quit_ignores_the_requests_pipelined_after_it() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.send(b"SET before 1\r\nQUIT\r\nSET after 1\r\n");
    raw.expect(b"+OK\r\n+OK\r\n");
    raw.expect_closed();
    let mut con = server.client();
    assert_eq!(
        query::<Option<String>>(&mut con, &["GET", "before"]).as_deref(),
        Some("1")
    );
    assert_eq!(query::<Option<String>>(&mut con, &["GET", "after"]), None);
}

#[test]
fn a_pipeline_of_a_thousand_commands() {
    let server = TestServer::start();
    let mut con = server.client();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        if i % 2 == 0 {
            pipe.cmd("INCR").arg("pipelined");
        } else {
            pipe.cmd("SET").arg(format!("p:{i}")).arg(i).ignore();
        }
    }
    let counts: Vec<i64> = pipe.query(&mut con).unwrap();
    assert_eq!(counts, (1..=500).collect::<Vec<i64>>());
    let mut pipe = redis::pipe();
    for i in (1..1000).step_by(2) {
        pipe.cmd("GET").arg(format!("p:{i}"));
    }
    let values: Vec<i64> = pipe.query(&mut con).unwrap();
    assert_eq!(values, (1..1000).step_by(2).collect::<Vec<i64>>());

    // The same in raw bytes, in one write, answered in order.
    let mut raw = server.raw();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1000 {
        request.extend(multibulk(&[b"ECHO", format!("m{i}").as_bytes()]));
        expected.extend(format!("${}\r\nm{i}\r\n", format!("m{i}").len()).into_bytes());
    }
    raw.exchange(&request, &expected);
}

#[test]
fn a_hundred_clients_increment_one_counter() {
    const CLIENTS: usize = 100;
    const INCREMENTS: usize = 100;
    let server = TestServer::start();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut con = server.client();
            std::thread::spawn(move || {
                for _ in 0..INCREMENTS {
                    let _: i64 = query(&mut con, &["INCR", "shared"]);
                }
                // MSET is atomic: a concurrent MGET sees both keys from one MSET.
                let _: () = query(&mut con, &["MSET", "pair:a", "x", "pair:b", "x"]);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut con = server.client();
    assert_eq!(
        query::<i64>(&mut con, &["GET", "shared"]),
        (CLIENTS * INCREMENTS) as i64
    );
}

#[test]
fn errors_are_byte_exact() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.exchange(
        &multibulk(&[b"foo", b"a", b"b"]),
        b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n",
    );
    raw.exchange(
        &multibulk(&[b"foo"]),
        b"-ERR unknown command 'foo', with args beginning with: \r\n",
    );
    // Client bytes cannot break the reply's framing: CR/LF become spaces.
    raw.exchange(
        &multibulk(&[b"x\r\ny", b"a\nb"]),
        b"-ERR unknown command 'x  y', with args beginning with: 'a b' \r\n",
    );
    // Long arguments are cut as Redis cuts them (128 bytes of name, ~128 of arguments).
    let long = vec![b'z'; 300];
    let mut expected = b"-ERR unknown command '".to_vec();
    expected.extend_from_slice(&long[..128]);
    expected.extend_from_slice(b"', with args beginning with: '");
    expected.extend_from_slice(&long[..128]);
    expected.extend_from_slice(b"' \r\n");
    raw.exchange(&multibulk(&[&long, &long, b"more"]), &expected);
    raw.exchange(
        &multibulk(&[b"GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    raw.exchange(
        &multibulk(&[b"CLIENT", b"SETNAME"]),
        b"-ERR wrong number of arguments for 'client|setname' command\r\n",
    );
    raw.exchange(
        &multibulk(&[b"CLIENT"]),
        b"-ERR wrong number of arguments for 'client' command\r\n",
    );
    raw.exchange(&multibulk(&[b"SET", b"n", b"abc"]), b"+OK\r\n");
    raw.exchange(
        &multibulk(&[b"INCR", b"n"]),
        b"-ERR value is not an integer or out of range\r\n",
    );
    raw.exchange(
        &multibulk(&[b"SET", b"k", b"v", b"FOO"]),
        b"-ERR syntax error\r\n",
    );
    raw.exchange(
        &multibulk(&[b"SET", b"k", b"v", b"NX", b"XX"]),
        b"-ERR syntax error\r\n",
    );
    raw.exchange(
        &multibulk(&[b"SET", b"k", b"v", b"EX", b"1", b"PX", b"1"]),
        b"-ERR syntax error\r\n",
    );
    raw.exchange(
        &multibulk(&[b"SET", b"k", b"v", b"EX"]),
        b"-ERR syntax error\r\n",
    );
    raw.exchange(
        &multibulk(&[b"SET", b"k", b"v", b"KEEPTTL", b"EX", b"1"]),
        b"-ERR syntax error\r\n",
    );
    raw.exchange(
        &multibulk(&[b"SET", b"k", b"v", b"EX", b"0"]),
        b"-ERR invalid expire time in 'set' command\r\n",
    );
    raw.exchange(
        &multibulk(&[b"SET", b"k", b"v", b"PX", b"-5"]),
        b"-ERR invalid expire time in 'set' command\r\n",
    );
    raw.exchange(
        &multibulk(&[b"SET", b"k", b"v", b"EX", b"ten"]),
        b"-ERR value is not an integer or out of range\r\n",
    );
    // The connection is still good after all of these.
    raw.exchange(&multibulk(&[b"PING"]), b"+PONG\r\n");
}

#[test]
fn inline_commands() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.exchange(b"PING\r\n", b"+PONG\r\n");
    raw.exchange(b"ping\n", b"+PONG\r\n");
    // Blank lines are skipped without a reply.
    raw.exchange(b"\r\n   \r\nPING\r\n", b"+PONG\r\n");
    raw.exchange(b"SET \"a b\" 'c d'\r\n", b"+OK\r\n");
    raw.exchange(b"GET \"a b\"\r\n", b"$3\r\nc d\r\n");
    raw.exchange(b"ECHO \"\\x41\\n\\\"q\\\"\"\r\n", b"$5\r\nA\n\"q\"\r\n");
    raw.exchange(b"ECHO 'it\\'s'\r\n", b"$4\r\nit's\r\n");
    raw.exchange(b"  ECHO   spaced\t\r\n", b"$6\r\nspaced\r\n");
    // Inline and multibulk mix freely in one pipeline.
    raw.exchange(
        b"INCR i\r\n*2\r\n$4\r\nINCR\r\n$1\r\ni\r\nINCR i\n",
        b":1\r\n:2\r\n:3\r\n",
    );
}

/// Sends `request` on a fresh connection and expects `replies`, then the close.
fn expect_protocol_error(server: &TestServer, request: &[u8], replies: &[u8]) {
    let mut raw = server.raw();
    raw.exchange(request, replies);
    raw.expect_closed();
}

#[test]
fn protocol_errors_are_answered_then_the_connection_closes() {
    let server = TestServer::start();
    let cases: [(&[u8], &[u8]); 8] = [
        (
            b"*x\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1048577\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nxyz\r\n",
            b"-ERR Protocol error: expected '$', got 'x'\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$abc\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"SET \"a\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"SET 'a'b c\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (request, reply) in cases {
        expect_protocol_error(&server, request, reply);
    }
    // The requests before the bad one are answered; the ones after it are not run.
    expect_protocol_error(
        &server,
        b"PING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*x\r\nSET after 1\r\n",
        b"+PONG\r\n+PONG\r\n$-1\r\n-ERR Protocol error: invalid multibulk length\r\n",
    );
    let mut con = server.client();
    assert_eq!(query::<Option<String>>(&mut con, &["GET", "after"]), None);
    // A bulk whose declared length is wrong is refused rather than misread.
    expect_protocol_error(
        &server,
        b"*1\r\n$3\r\nPINGPONG\r\n",
        b"-ERR Protocol error: bulk data not followed by CRLF\r\n",
    );
}

/// Writes `prefix` then `filler` bytes forever (bounded: 256 MiB) on one thread while this
/// thread reads the reply; the server must answer `reply` and close long before the bound,
/// so it cannot have buffered the stream.
fn endless_request(server: &TestServer, prefix: &[u8], filler: u8, reply: &[u8]) {
    const BOUND: usize = 256 << 20;
    let mut raw = server.raw();
    let mut writer = raw.stream.try_clone().unwrap();
    let prefix = prefix.to_vec();
    let sender = std::thread::spawn(move || -> usize {
        let chunk = vec![filler; 64 * 1024];
        let mut sent = 0;
        if writer.write_all(&prefix).is_err() {
            return sent;
        }
        while sent < BOUND {
            match writer.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => return sent,
            }
        }
        sent
    });
    raw.expect(reply);
    // The server drains (bounded) and closes; the reader sees the end of the stream...
    let mut rest = Vec::new();
    let _ = raw.stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "bytes after the error: {rest:?}");
    // ...and the writer is refused well before the bound.
    let sent = sender.join().unwrap();
    assert!(
        sent < BOUND,
        "the server accepted {sent} bytes of one request"
    );
}

#[test]
fn unbounded_requests_are_cut_off() {
    let server = TestServer::start();
    endless_request(
        &server,
        b"",
        b'a',
        b"-ERR Protocol error: too big inline request\r\n",
    );
    endless_request(
        &server,
        b"*",
        b'1',
        b"-ERR Protocol error: too big mbulk count string\r\n",
    );
    endless_request(
        &server,
        b"*1\r\n$",
        b'1',
        b"-ERR Protocol error: too big bulk count string\r\n",
    );
    // The server is fine afterwards.
    let mut con = server.client();
    assert_eq!(query::<String>(&mut con, &["PING"]), "PONG");
}

#[test]
fn a_request_over_the_query_buffer_limit_is_closed_without_reply() {
    let limits = Limits {
        max_bulk_len: 64 * 1024,
        max_request: 100 * 1024,
        ..Limits::DEFAULT
    };
    let server = TestServer::with_limits(limits);
    let arg = vec![b'x'; 64 * 1024];
    // One argument at the bulk limit is fine...
    let mut raw = server.raw();
    raw.exchange(&multibulk(&[b"SET", b"big", &arg]), b"+OK\r\n");
    // ...one byte more is a protocol error...
    let mut too_long = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", arg.len() + 1).into_bytes();
    too_long.extend_from_slice(&arg);
    expect_protocol_error(
        &server,
        &too_long,
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    // ...and two of them are over the request limit: Redis closes such a client silently.
    expect_protocol_error(&server, &multibulk(&[b"MSET", b"a", &arg, b"b", &arg]), b"");
    let mut con = server.client();
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "big", "a", "b"]), 1);
}

#[test]
fn a_client_that_reads_late_gets_every_reply_in_order() {
    // 20 000 GETs of a 1 KiB value are 20 MB of replies, more than the socket buffers hold.
    // The client writes requests without reading; the server, whose replies back up, stops
    // reading requests while it flushes (its back-pressure), which stalls the writer until
    // this thread reads. Every reply must arrive, complete and in order.
    const REQUESTS: usize = 20_000;
    let server = TestServer::start();
    let value = vec![b'v'; 1024];
    let mut raw = server.raw();
    raw.exchange(&multibulk(&[b"SET", b"v", &value]), b"+OK\r\n");
    let mut writer = raw.stream.try_clone().unwrap();
    let request = multibulk(&[b"GET", b"v"]);
    let sender = std::thread::spawn(move || {
        for _ in 0..REQUESTS {
            writer.write_all(&request).unwrap();
        }
    });
    let mut expected = format!("${}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\n");
    let mut reader = BufReader::new(raw.stream.try_clone().unwrap());
    let mut reply = vec![0; expected.len()];
    for i in 0..REQUESTS {
        reader.read_exact(&mut reply).unwrap();
        assert!(reply == expected, "reply {i} differs");
    }
    sender.join().unwrap();
}

/// Runs `program args` with a hang guard (killed after two minutes); `None` if it is not
/// installed.
fn run_tool(program: &str, args: &[&str]) -> Option<std::process::Output> {
    let child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{program}: {e}"),
    };
    let pid = child.id() as i32;
    // `wait_with_output` reads both pipes to the end, so a chatty tool cannot block on a
    // full pipe; it runs on a thread so that this one can enforce the hang guard.
    let (done, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(Duration::from_secs(120)) {
        Ok(output) => Some(output.unwrap()),
        Err(_) => {
            // SAFETY: `kill` with our child's pid and a valid signal number.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{program} {args:?} hung");
        }
    }
}

#[test]
fn redis_cli_and_redis_benchmark_if_installed() {
    let server = TestServer::start();
    let port = server.addr.port().to_string();
    let cli = |args: &[&str]| -> Option<String> {
        let mut all = vec!["-h", "127.0.0.1", "-p", &port];
        all.extend_from_slice(args);
        let output = run_tool("redis-cli", &all)?;
        assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
        Some(
            String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_owned(),
        )
    };
    match cli(&["ping"]) {
        None => eprintln!("redis-cli is not installed: skipped"),
        Some(pong) => {
            assert_eq!(pong, "PONG");
            assert_eq!(cli(&["set", "a", "1"]).unwrap(), "OK");
            assert_eq!(cli(&["get", "a"]).unwrap(), "1");
            assert_eq!(cli(&["incrby", "a", "41"]).unwrap(), "42");
        }
    }
    for pipeline in ["1", "16"] {
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "ping,set,get,incr,mset",
            "-n",
            "2000",
            "-P",
            pipeline,
            "-q",
        ];
        let Some(output) = run_tool("redis-benchmark", &args) else {
            eprintln!("redis-benchmark is not installed: skipped");
            return;
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        // redis-benchmark 7 prints an error reply and exits with a failure at the first
        // one; check the text as well, and that every test reported.
        assert!(
            !stdout.contains("Error") && !stderr.contains("Error"),
            "{stdout}\n{stderr}"
        );
        for test in ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET"] {
            assert!(stdout.contains(test), "{test} missing: {stdout}");
        }
    }
}

/// The environment variable that makes this binary the shutdown test's server.
const SHUTDOWN_CHILD: &str = "CORONET_REDIS_SHUTDOWN_CHILD";

#[test]
fn sigterm_closes_the_listener_and_exits_cleanly() {
    if std::env::var_os(SHUTDOWN_CHILD).is_some() {
        // The child: the example's own `run`, which logs its address and serves until
        // SIGTERM.
        let runtime = coronet::runtime::Builder::new().workers(2).build().unwrap();
        let options = common::ServerOptions {
            addr: "127.0.0.1:0".to_owned(),
            workers: Some(2),
        };
        runtime
            .block_on(move || server::run(options, Limits::DEFAULT))
            .unwrap();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "sigterm_closes_the_listener_and_exits_cleanly",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SHUTDOWN_CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The hang guard: a child that does not finish in time is killed, which ends the reads
    // below with an error.
    let pid = child.id() as i32;
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(HANG_GUARD).is_err() {
            // SAFETY: `kill` with our child's pid and a valid signal number.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    // The test harness prints `test NAME ... ` before the server's first line, without a
    // newline: look for the log text anywhere in the line.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the child ended before listening")
            .unwrap();
        if let Some((_, rest)) = line.split_once("redis: listening on ") {
            assert!(rest.ends_with("with 2 worker(s)"), "{line}");
            break rest.split(' ').next().unwrap().to_owned();
        }
    };
    let mut raw = Raw {
        stream: TcpStream::connect(&addr).unwrap(),
    };
    raw.stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    raw.exchange(b"SET k v\r\nGET k\r\n", b"+OK\r\n$1\r\nv\r\n");
    // SAFETY: `kill` with a child's pid and a valid signal number.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    // The client stays connected until the server has logged its stop, so the count in
    // the log is exactly one.
    let stopped = loop {
        let line = lines
            .next()
            .expect("the child ended without logging its stop")
            .unwrap();
        if line.contains("redis: stopped") {
            break line;
        }
    };
    assert_eq!(stopped, "redis: stopped (1 connection(s) were open)");
    drop(raw);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = finished.send(());
    watchdog.join().unwrap();
    assert!(status.success(), "{status}: {rest:?}\n{stderr}");
    assert!(stderr.contains("got signal 15"), "{stderr}");
}
