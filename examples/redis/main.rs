//! A small Redis server speaking RESP2, written in plain blocking style on coronet: one
//! coroutine per connection, a sharded keyspace, expiry by lazy checks plus a sweeper
//! coroutine. Works with `redis-cli`, `redis-benchmark` and the `redis` crate.
//!
//! ```text
//! cargo run --release --example redis                        # 127.0.0.1:6379
//! cargo run --release --example redis -- --addr 127.0.0.1:7379 --workers 4
//! redis-cli -p 7379 set greeting hello
//! redis-benchmark -p 7379 -t ping,set,get,incr,mset -n 100000 -P 16 -q
//! ```
//!
//! Walkthrough: `docs/examples.md`. Files: `resp.rs` (the protocol), `db.rs` (the
//! keyspace), `commands.rs` (the commands), `server.rs` (connections and the sweeper).

#[path = "../common/mod.rs"]
mod common;

mod commands;
mod db;
mod resp;
mod server;

use std::process::ExitCode;

use resp::Limits;

const USAGE: &str = "\
redis: a Redis (RESP2) server on coronet (one coroutine per connection)

USAGE:
    redis [--addr HOST:PORT] [--workers N] [--proto-max-bulk-len BYTES]
          [--query-buffer-limit BYTES]

OPTIONS:
    --addr HOST:PORT              address to serve on (default 127.0.0.1:6379)
    --workers N                   worker threads (default: one per core)
    --proto-max-bulk-len BYTES    longest argument a client may send (default 33554432)
    --query-buffer-limit BYTES    most argument bytes in one request (default 33554432)
    -h, --help                    print this help

Commands: PING ECHO SET (EX PX EXAT PXAT NX XX GET KEEPTTL) GET MSET MGET INCR DECR
INCRBY DECRBY DEL EXISTS EXPIRE PEXPIRE TTL PTTL PERSIST DBSIZE FLUSHALL SELECT 0 QUIT
COMMAND (COUNT INFO LIST) CLIENT (ID GETNAME SETNAME SETINFO) CONFIG GET.
SIGINT or SIGTERM closes the listener and exits.
";

fn main() -> ExitCode {
    common::main_with(
        "redis",
        USAGE,
        "127.0.0.1:6379",
        Limits::DEFAULT,
        |limits, arg, value| {
            match arg {
                "--proto-max-bulk-len" => {
                    limits.max_bulk_len = common::positive(&value()?, arg)?;
                }
                "--query-buffer-limit" => {
                    limits.max_request = common::positive(&value()?, arg)?;
                }
                _ => return Ok(false),
            }
            Ok(true)
        },
        server::run,
    )
}
