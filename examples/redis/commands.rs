//! The command table and the commands: lookup, arity checks and replies byte-for-byte as
//! Redis 7 gives them.
//!
//! Only strings exist in this keyspace, so Redis's `-WRONGTYPE Operation against a key
//! holding the wrong kind of value` can never be produced: every key holds a string, and
//! every command here works on strings.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::db::{now_ms, Db, Entry};
use crate::resp::{parse_i64, reply, Limits};

/// What is shared by every connection.
pub struct Server {
    /// The keyspace.
    pub db: Db,
    /// The protocol limits (reported by `CONFIG GET proto-max-bulk-len`).
    pub limits: Limits,
    /// Connections being served, for the shutdown log.
    pub open_connections: AtomicUsize,
    next_client_id: AtomicU64,
}

impl Server {
    /// A server with an empty keyspace.
    pub fn new(limits: Limits) -> Server {
        Server {
            db: Db::new(),
            limits,
            open_connections: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
        }
    }

    /// The state of a new connection.
    pub fn new_session(&self) -> Session {
        Session {
            id: self.next_client_id.fetch_add(1, Ordering::Relaxed),
            name: None,
            lib_name: None,
            lib_ver: None,
        }
    }
}

/// The per-connection state.
#[derive(Debug)]
pub struct Session {
    /// `CLIENT ID`.
    pub id: u64,
    /// `CLIENT SETNAME`.
    pub name: Option<Vec<u8>>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Vec<u8>>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Vec<u8>>,
}

/// What the connection does after a command's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Send the replies so far, then close (`QUIT`).
    Close,
}

/// One command being run.
struct Call<'a> {
    server: &'a Server,
    session: &'a mut Session,
    args: &'a [Vec<u8>],
    out: &'a mut Vec<u8>,
    /// The command's time, taken once, as Redis's command time snapshot.
    now: i64,
}

type Handler = fn(&mut Call<'_>) -> Flow;

/// A command's entry in the table (what `COMMAND` reports, plus its handler).
struct Spec {
    /// The full lowercase name (`get`, `client|setname`).
    name: &'static str,
    /// Redis's arity: `n` exactly `n` arguments counting the name, `-n` at least `n`.
    arity: i64,
    flags: &'static [&'static str],
    /// First key, last key, step (as `COMMAND` reports them).
    keys: (i64, i64, i64),
    categories: &'static [&'static str],
    /// One line for the container's `HELP`.
    summary: &'static str,
    /// `None` for a container (`CLIENT`, `CONFIG`) that does nothing by itself.
    run: Option<Handler>,
    subcommands: &'static [Spec],
}

impl Spec {
    /// The subcommand name after `|` (or the name of a top-level command).
    fn short_name(&self) -> &'static str {
        self.name.rsplit('|').next().unwrap_or(self.name)
    }

    fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }
}

const fn command(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    categories: &'static [&'static str],
    run: Handler,
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
        categories,
        summary: "",
        run: Some(run),
        subcommands: &[],
    }
}

const fn subcommand(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    summary: &'static str,
    run: Handler,
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys: (0, 0, 0),
        categories: &["@slow", "@connection"],
        summary,
        run: Some(run),
        subcommands: &[],
    }
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);

const READ_FAST: &[&str] = &["readonly", "fast"];
const WRITE_FAST: &[&str] = &["write", "denyoom", "fast"];
const STRING_READ: &[&str] = &["@read", "@string", "@fast"];
const STRING_WRITE: &[&str] = &["@write", "@string", "@fast"];
const KEYSPACE_READ: &[&str] = &["@keyspace", "@read", "@fast"];
const KEYSPACE_WRITE: &[&str] = &["@keyspace", "@write", "@fast"];
const CONNECTION: &[&str] = &["@fast", "@connection"];

static COMMANDS: &[Spec] = &[
    command("ping", -1, &["fast"], NO_KEYS, CONNECTION, ping),
    command("echo", 2, &["fast"], NO_KEYS, CONNECTION, echo),
    command("quit", -1, &["fast", "no_auth"], NO_KEYS, CONNECTION, quit),
    command(
        "select",
        2,
        &["loading", "stale", "fast"],
        NO_KEYS,
        CONNECTION,
        select,
    ),
    command(
        "set",
        -3,
        &["write", "denyoom"],
        ONE_KEY,
        &["@write", "@string", "@slow"],
        set,
    ),
    command("get", 2, READ_FAST, ONE_KEY, STRING_READ, get),
    command(
        "mset",
        -3,
        &["write", "denyoom"],
        (1, -1, 2),
        &["@write", "@string", "@slow"],
        mset,
    ),
    command("mget", -2, READ_FAST, ALL_KEYS, STRING_READ, mget),
    command("incr", 2, WRITE_FAST, ONE_KEY, STRING_WRITE, incr),
    command("decr", 2, WRITE_FAST, ONE_KEY, STRING_WRITE, decr),
    command("incrby", 3, WRITE_FAST, ONE_KEY, STRING_WRITE, incrby),
    command("decrby", 3, WRITE_FAST, ONE_KEY, STRING_WRITE, decrby),
    command(
        "del",
        -2,
        &["write"],
        ALL_KEYS,
        &["@keyspace", "@write", "@slow"],
        del,
    ),
    command("exists", -2, READ_FAST, ALL_KEYS, KEYSPACE_READ, exists),
    command(
        "expire",
        -3,
        &["write", "fast"],
        ONE_KEY,
        KEYSPACE_WRITE,
        expire,
    ),
    command(
        "pexpire",
        -3,
        &["write", "fast"],
        ONE_KEY,
        KEYSPACE_WRITE,
        pexpire,
    ),
    command("ttl", 2, &["readonly", "fast"], ONE_KEY, KEYSPACE_READ, ttl),
    command(
        "pttl",
        2,
        &["readonly", "fast"],
        ONE_KEY,
        KEYSPACE_READ,
        pttl,
    ),
    command(
        "persist",
        2,
        &["write", "fast"],
        ONE_KEY,
        KEYSPACE_WRITE,
        persist,
    ),
    command("dbsize", 1, READ_FAST, NO_KEYS, KEYSPACE_READ, dbsize),
    command(
        "flushall",
        -1,
        &["write"],
        NO_KEYS,
        &["@keyspace", "@write", "@slow", "@dangerous"],
        flushall,
    ),
    Spec {
        name: "command",
        arity: -1,
        flags: &["loading", "stale"],
        keys: NO_KEYS,
        categories: &["@slow", "@connection"],
        summary: "",
        run: Some(command_all),
        subcommands: &[
            subcommand(
                "command|count",
                2,
                &["loading", "stale"],
                "Return the number of commands.",
                command_count,
            ),
            subcommand(
                "command|info",
                -2,
                &["loading", "stale"],
                "Return details about the named commands.",
                command_info,
            ),
            subcommand(
                "command|list",
                -2,
                &["loading", "stale"],
                "Return the names of all commands.",
                command_list,
            ),
            subcommand("command|help", 2, &["loading", "stale"], "", command_help),
        ],
    },
    Spec {
        name: "client",
        arity: -2,
        flags: &[],
        keys: NO_KEYS,
        categories: &["@slow"],
        summary: "",
        run: None,
        subcommands: &[
            subcommand(
                "client|id",
                2,
                &["noscript", "loading", "stale"],
                "Return the ID of the current connection.",
                client_id,
            ),
            subcommand(
                "client|getname",
                2,
                &["noscript", "loading", "stale"],
                "Return the name of the current connection.",
                client_getname,
            ),
            subcommand(
                "client|setname",
                3,
                &["noscript", "loading", "stale"],
                "Assign the name <name> to the current connection.",
                client_setname,
            ),
            subcommand(
                "client|setinfo",
                4,
                &["noscript", "loading", "stale"],
                "Set LIB-NAME or LIB-VER of the current connection.",
                client_setinfo,
            ),
            subcommand("client|help", 2, &["loading", "stale"], "", client_help),
        ],
    },
    Spec {
        name: "config",
        arity: -2,
        flags: &[],
        keys: NO_KEYS,
        categories: &["@slow"],
        summary: "",
        run: None,
        subcommands: &[
            subcommand(
                "config|get",
                -3,
                &["admin", "noscript", "loading", "stale"],
                "Return parameters matching the glob-like <pattern> and their values.",
                config_get,
            ),
            subcommand("config|help", 2, &["loading", "stale"], "", config_help),
        ],
    },
];

/// Runs one command (`args` is never empty) and appends its reply to `out`.
pub fn execute(
    server: &Server,
    session: &mut Session,
    args: &[Vec<u8>],
    out: &mut Vec<u8>,
) -> Flow {
    let Some(spec) = lookup(args, out) else {
        return Flow::Continue;
    };
    if !spec.arity_ok(args.len()) {
        wrong_arity(out, spec.name);
        return Flow::Continue;
    }
    let Some(run) = spec.run else {
        // Containers have arity -2, so they never get here without a subcommand.
        reply::error(out, b"ERR syntax error");
        return Flow::Continue;
    };
    let mut call = Call {
        server,
        session,
        args,
        out,
        now: now_ms(),
    };
    run(&mut call)
}

/// Finds the command (or subcommand) for `args`, or replies Redis's unknown-command error.
fn lookup(args: &[Vec<u8>], out: &mut Vec<u8>) -> Option<&'static Spec> {
    let name = &args[0];
    let Some(spec) = COMMANDS
        .iter()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
    else {
        unknown_command(args, out);
        return None;
    };
    if spec.subcommands.is_empty() || args.len() < 2 {
        return Some(spec);
    }
    let sub = &args[1];
    match spec
        .subcommands
        .iter()
        .find(|s| s.short_name().as_bytes().eq_ignore_ascii_case(sub))
    {
        Some(subspec) => Some(subspec),
        None => {
            let mut text = b"ERR unknown subcommand '".to_vec();
            text.extend_from_slice(c_string(sub, 128));
            text.extend_from_slice(b"'. Try ");
            text.extend_from_slice(spec.name.to_ascii_uppercase().as_bytes());
            text.extend_from_slice(b" HELP.");
            reply::error(out, &text);
            None
        }
    }
}

/// `bytes` as C's `%.<max>s` prints it: up to the first NUL, at most `max` bytes.
fn c_string(bytes: &[u8], max: usize) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end.min(max)]
}

/// `-ERR unknown command 'foo', with args beginning with: 'a' 'b' ` (Redis 7's text,
/// including the trailing space and its 128-byte truncations).
fn unknown_command(args: &[Vec<u8>], out: &mut Vec<u8>) {
    let mut listed = Vec::new();
    for arg in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        listed.push(b'\'');
        listed.extend_from_slice(c_string(arg, room));
        listed.extend_from_slice(b"' ");
    }
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(c_string(&args[0], 128));
    text.extend_from_slice(b"', with args beginning with: ");
    text.extend_from_slice(&listed);
    reply::error(out, &text);
}

fn wrong_arity(out: &mut Vec<u8>, name: &str) {
    let text = format!("ERR wrong number of arguments for '{name}' command");
    reply::error(out, text.as_bytes());
}

fn not_an_integer(out: &mut Vec<u8>) {
    reply::error(out, b"ERR value is not an integer or out of range");
}

fn syntax_error(out: &mut Vec<u8>) {
    reply::error(out, b"ERR syntax error");
}

fn invalid_expire_time(out: &mut Vec<u8>, command: &str) {
    let text = format!("ERR invalid expire time in '{command}' command");
    reply::error(out, text.as_bytes());
}

fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

fn ping(c: &mut Call<'_>) -> Flow {
    match c.args.len() {
        1 => reply::simple(c.out, "PONG"),
        2 => reply::bulk(c.out, &c.args[1]),
        _ => wrong_arity(c.out, "ping"),
    }
    Flow::Continue
}

fn echo(c: &mut Call<'_>) -> Flow {
    reply::bulk(c.out, &c.args[1]);
    Flow::Continue
}

fn quit(c: &mut Call<'_>) -> Flow {
    reply::ok(c.out);
    Flow::Close
}

fn select(c: &mut Call<'_>) -> Flow {
    match parse_i64(&c.args[1]).filter(|n| i32::try_from(*n).is_ok()) {
        None => not_an_integer(c.out),
        Some(0) => reply::ok(c.out),
        Some(_) => reply::error(c.out, b"ERR DB index is out of range"),
    }
    Flow::Continue
}

/// How `SET` was told to expire the key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpireOption {
    Ex,
    Px,
    ExAt,
    PxAt,
}

fn set(c: &mut Call<'_>) -> Flow {
    let args = c.args;
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    let mut expire: Option<(ExpireOption, &[u8])> = None;
    // Redis's parseExtendedStringArgumentsOrReply: EX may repeat (the last wins), but the
    // expire options exclude each other and KEEPTTL, and NX excludes XX.
    let mut j = 3;
    while j < args.len() {
        let option = &args[j];
        let next = args.get(j + 1);
        let expire_kind = [
            ("ex", ExpireOption::Ex),
            ("px", ExpireOption::Px),
            ("exat", ExpireOption::ExAt),
            ("pxat", ExpireOption::PxAt),
        ]
        .into_iter()
        .find(|(name, _)| is(option, name))
        .map(|(_, kind)| kind);
        if is(option, "nx") && !xx {
            nx = true;
        } else if is(option, "xx") && !nx {
            xx = true;
        } else if is(option, "get") {
            get = true;
        } else if is(option, "keepttl") && expire.is_none() {
            keep_ttl = true;
        } else if let (Some(kind), Some(value), false) = (expire_kind, next, keep_ttl) {
            if expire.is_some_and(|(other, _)| other != kind) {
                syntax_error(c.out);
                return Flow::Continue;
            }
            expire = Some((kind, value));
            j += 1;
        } else {
            syntax_error(c.out);
            return Flow::Continue;
        }
        j += 1;
    }
    let expires_at = match expire {
        None => None,
        Some((kind, text)) => match expire_deadline(c, kind, text) {
            Some(deadline) => Some(deadline),
            None => return Flow::Continue,
        },
    };
    let key = &args[1];
    let now = c.now;
    let mut shard = c.server.db.lock(key);
    let old = shard.live(key, now);
    let found = old.is_some();
    let old_expiry = old.as_ref().and_then(|entry| entry.expires_at);
    if get {
        match old {
            Some(entry) => reply::bulk(c.out, &entry.value),
            None => reply::nil(c.out),
        }
    }
    if (nx && found) || (xx && !found) {
        if !get {
            reply::nil(c.out);
        }
        return Flow::Continue;
    }
    let expires_at = if keep_ttl { old_expiry } else { expires_at };
    if expires_at.is_some_and(|t| t <= now) {
        // Already in the past (PXAT/EXAT): the key is set and at once expired.
        shard.remove(key);
    } else {
        shard.set(key, args[2].clone(), expires_at);
    }
    if !get {
        reply::ok(c.out);
    }
    Flow::Continue
}

/// Redis's getExpireMillisecondsOrReply: the absolute deadline for `SET ... EX/PX/EXAT/PXAT
/// text`, or `None` after replying the error.
fn expire_deadline(c: &mut Call<'_>, kind: ExpireOption, text: &[u8]) -> Option<i64> {
    let Some(n) = parse_i64(text) else {
        not_an_integer(c.out);
        return None;
    };
    let seconds = matches!(kind, ExpireOption::Ex | ExpireOption::ExAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        invalid_expire_time(c.out, "set");
        return None;
    }
    let ms = if seconds { n * 1000 } else { n };
    let deadline = match kind {
        ExpireOption::Ex | ExpireOption::Px => ms.checked_add(c.now),
        ExpireOption::ExAt | ExpireOption::PxAt => Some(ms),
    };
    if deadline.is_none() {
        invalid_expire_time(c.out, "set");
    }
    deadline
}

fn get(c: &mut Call<'_>) -> Flow {
    let key = &c.args[1];
    let mut shard = c.server.db.lock(key);
    match shard.live(key, c.now) {
        Some(entry) => reply::bulk(c.out, &entry.value),
        None => reply::nil(c.out),
    }
    Flow::Continue
}

fn mset(c: &mut Call<'_>) -> Flow {
    if c.args.len() % 2 == 0 {
        wrong_arity(c.out, "mset");
        return Flow::Continue;
    }
    let pairs = &c.args[1..];
    let mut locked = c.server.db.lock_many(pairs.iter().step_by(2));
    for pair in pairs.chunks_exact(2) {
        locked.shard(&pair[0]).set(&pair[0], pair[1].clone(), None);
    }
    reply::ok(c.out);
    Flow::Continue
}

fn mget(c: &mut Call<'_>) -> Flow {
    let keys = &c.args[1..];
    let mut locked = c.server.db.lock_many(keys);
    reply::array(c.out, keys.len());
    for key in keys {
        match locked.shard(key).live(key, c.now) {
            Some(entry) => reply::bulk(c.out, &entry.value),
            None => reply::nil(c.out),
        }
    }
    Flow::Continue
}

/// `INCRBY key delta` and friends: the value must be a `string2ll` integer; the key keeps
/// its expiry.
fn incr_by(c: &mut Call<'_>, delta: i64) -> Flow {
    let key = &c.args[1];
    let mut shard = c.server.db.lock(key);
    let (old, expires_at) = match shard.live(key, c.now) {
        None => (0, None),
        Some(entry) => match parse_i64(&entry.value) {
            Some(n) => (n, entry.expires_at),
            None => {
                not_an_integer(c.out);
                return Flow::Continue;
            }
        },
    };
    let Some(new) = old.checked_add(delta) else {
        reply::error(c.out, b"ERR increment or decrement would overflow");
        return Flow::Continue;
    };
    shard.set(key, new.to_string().into_bytes(), expires_at);
    reply::integer(c.out, new);
    Flow::Continue
}

fn incr(c: &mut Call<'_>) -> Flow {
    incr_by(c, 1)
}

fn decr(c: &mut Call<'_>) -> Flow {
    incr_by(c, -1)
}

fn incrby(c: &mut Call<'_>) -> Flow {
    match parse_i64(&c.args[2]) {
        Some(delta) => incr_by(c, delta),
        None => {
            not_an_integer(c.out);
            Flow::Continue
        }
    }
}

fn decrby(c: &mut Call<'_>) -> Flow {
    match parse_i64(&c.args[2]) {
        Some(i64::MIN) => {
            reply::error(c.out, b"ERR decrement would overflow");
            Flow::Continue
        }
        Some(delta) => incr_by(c, -delta),
        None => {
            not_an_integer(c.out);
            Flow::Continue
        }
    }
}

fn del(c: &mut Call<'_>) -> Flow {
    let keys = &c.args[1..];
    let mut locked = c.server.db.lock_many(keys);
    let mut deleted = 0;
    for key in keys {
        let shard = locked.shard(key);
        if shard.live(key, c.now).is_some() && shard.remove(key) {
            deleted += 1;
        }
    }
    reply::integer(c.out, deleted);
    Flow::Continue
}

fn exists(c: &mut Call<'_>) -> Flow {
    let keys = &c.args[1..];
    let mut locked = c.server.db.lock_many(keys);
    let count = keys
        .iter()
        .filter(|key| locked.shard(key).live(key, c.now).is_some())
        .count();
    reply::integer(c.out, count as i64);
    Flow::Continue
}

fn expire(c: &mut Call<'_>) -> Flow {
    expire_generic(c, "expire", 1000)
}

fn pexpire(c: &mut Call<'_>) -> Flow {
    expire_generic(c, "pexpire", 1)
}

/// Redis's expireGenericCommand: `EXPIRE key time [NX|XX|GT|LT]`, `time` in units of
/// `unit_ms` from now. A time in the past deletes the key.
fn expire_generic(c: &mut Call<'_>, command: &str, unit_ms: i64) -> Flow {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in &c.args[3..] {
        if is(option, "nx") {
            nx = true;
        } else if is(option, "xx") {
            xx = true;
        } else if is(option, "gt") {
            gt = true;
        } else if is(option, "lt") {
            lt = true;
        } else {
            let mut text = b"ERR Unsupported option ".to_vec();
            text.extend_from_slice(c_string(option, usize::MAX));
            reply::error(c.out, &text);
            return Flow::Continue;
        }
    }
    if nx && (xx || gt || lt) {
        reply::error(
            c.out,
            b"ERR NX and XX, GT or LT options at the same time are not compatible",
        );
        return Flow::Continue;
    }
    if gt && lt {
        reply::error(
            c.out,
            b"ERR GT and LT options at the same time are not compatible",
        );
        return Flow::Continue;
    }
    let Some(time) = parse_i64(&c.args[2]) else {
        not_an_integer(c.out);
        return Flow::Continue;
    };
    let Some(deadline) = time
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(c.now))
    else {
        invalid_expire_time(c.out, command);
        return Flow::Continue;
    };
    let key = &c.args[1];
    let mut shard = c.server.db.lock(key);
    let Some(entry) = shard.live(key, c.now) else {
        reply::integer(c.out, 0);
        return Flow::Continue;
    };
    let current = entry.expires_at;
    // A key without expiry counts as expiring never: GT can never beat it, LT always does.
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.map_or(true, |t| deadline <= t))
        || (lt && current.is_some_and(|t| deadline >= t));
    if refused {
        reply::integer(c.out, 0);
        return Flow::Continue;
    }
    if deadline <= c.now {
        shard.remove(key);
    } else {
        shard.set_expiry(key, Some(deadline));
    }
    reply::integer(c.out, 1);
    Flow::Continue
}

/// `TTL`/`PTTL`: -2 for no key, -1 for no expiry, else the time left (seconds rounded to
/// the nearest, as Redis does).
fn ttl_generic(c: &mut Call<'_>, in_ms: bool) -> Flow {
    let key = &c.args[1];
    let mut shard = c.server.db.lock(key);
    let answer = match shard.live(key, c.now) {
        None => -2,
        Some(Entry {
            expires_at: None, ..
        }) => -1,
        Some(Entry {
            expires_at: Some(t),
            ..
        }) => {
            let left = (*t - c.now).max(0);
            if in_ms {
                left
            } else {
                (left + 500) / 1000
            }
        }
    };
    reply::integer(c.out, answer);
    Flow::Continue
}

fn ttl(c: &mut Call<'_>) -> Flow {
    ttl_generic(c, false)
}

fn pttl(c: &mut Call<'_>) -> Flow {
    ttl_generic(c, true)
}

fn persist(c: &mut Call<'_>) -> Flow {
    let key = &c.args[1];
    let mut shard = c.server.db.lock(key);
    let had_expiry = shard
        .live(key, c.now)
        .is_some_and(|entry| entry.expires_at.is_some());
    if had_expiry {
        shard.set_expiry(key, None);
    }
    reply::integer(c.out, i64::from(had_expiry));
    Flow::Continue
}

fn dbsize(c: &mut Call<'_>) -> Flow {
    reply::integer(c.out, c.server.db.len() as i64);
    Flow::Continue
}

fn flushall(c: &mut Call<'_>) -> Flow {
    let valid = match c.args.len() {
        1 => true,
        2 => is(&c.args[1], "sync") || is(&c.args[1], "async"),
        _ => false,
    };
    if !valid {
        syntax_error(c.out);
        return Flow::Continue;
    }
    c.server.db.lock_all().for_each_shard(|shard| shard.clear());
    reply::ok(c.out);
    Flow::Continue
}

/// One `COMMAND` entry, in Redis 7's ten-field layout (key specifications left empty).
fn command_entry(out: &mut Vec<u8>, spec: &Spec) {
    reply::array(out, 10);
    reply::bulk(out, spec.name.as_bytes());
    reply::integer(out, spec.arity);
    reply::array(out, spec.flags.len());
    for flag in spec.flags {
        reply::simple(out, flag);
    }
    reply::integer(out, spec.keys.0);
    reply::integer(out, spec.keys.1);
    reply::integer(out, spec.keys.2);
    reply::array(out, spec.categories.len());
    for category in spec.categories {
        reply::simple(out, category);
    }
    reply::array(out, 0); // tips
    reply::array(out, 0); // key specifications
    reply::array(out, spec.subcommands.len());
    for sub in spec.subcommands {
        command_entry(out, sub);
    }
}

fn command_all(c: &mut Call<'_>) -> Flow {
    reply::array(c.out, COMMANDS.len());
    for spec in COMMANDS {
        command_entry(c.out, spec);
    }
    Flow::Continue
}

fn command_count(c: &mut Call<'_>) -> Flow {
    reply::integer(c.out, COMMANDS.len() as i64);
    Flow::Continue
}

fn command_info(c: &mut Call<'_>) -> Flow {
    let names = &c.args[2..];
    if names.is_empty() {
        return command_all(c);
    }
    reply::array(c.out, names.len());
    for name in names {
        match COMMANDS
            .iter()
            .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
        {
            Some(spec) => command_entry(c.out, spec),
            None => reply::nil(c.out),
        }
    }
    Flow::Continue
}

fn command_list(c: &mut Call<'_>) -> Flow {
    if c.args.len() > 2 {
        // FILTERBY is not supported.
        syntax_error(c.out);
        return Flow::Continue;
    }
    reply::array(c.out, COMMANDS.len());
    for spec in COMMANDS {
        reply::bulk(c.out, spec.name.as_bytes());
    }
    Flow::Continue
}

/// A container's `HELP`, laid out as Redis's addReplyHelp.
fn help(c: &mut Call<'_>, container: &str) -> Flow {
    let spec = COMMANDS
        .iter()
        .find(|spec| spec.name == container)
        .expect("help for a listed container");
    let documented: Vec<&Spec> = spec
        .subcommands
        .iter()
        .filter(|sub| !sub.summary.is_empty())
        .collect();
    let upper = container.to_ascii_uppercase();
    reply::array(c.out, 1 + 2 * documented.len() + 2);
    reply::simple(
        c.out,
        &format!("{upper} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"),
    );
    for sub in documented {
        reply::simple(c.out, &sub.short_name().to_ascii_uppercase());
        reply::simple(c.out, &format!("    {}", sub.summary));
    }
    reply::simple(c.out, "HELP");
    reply::simple(c.out, "    Print this help.");
    Flow::Continue
}

fn command_help(c: &mut Call<'_>) -> Flow {
    help(c, "command")
}

fn client_help(c: &mut Call<'_>) -> Flow {
    help(c, "client")
}

fn config_help(c: &mut Call<'_>) -> Flow {
    help(c, "config")
}

fn client_id(c: &mut Call<'_>) -> Flow {
    reply::integer(c.out, c.session.id as i64);
    Flow::Continue
}

fn client_getname(c: &mut Call<'_>) -> Flow {
    match &c.session.name {
        Some(name) => reply::bulk(c.out, name),
        None => reply::nil(c.out),
    }
    Flow::Continue
}

/// Whether `value` may be a client name or library attribute: printable ASCII without
/// spaces (so `CLIENT LIST` stays splittable, Redis's reason).
fn printable_token(value: &[u8]) -> bool {
    value.iter().all(|b| (b'!'..=b'~').contains(b))
}

fn client_setname(c: &mut Call<'_>) -> Flow {
    let name = &c.args[2];
    if !printable_token(name) {
        reply::error(
            c.out,
            b"ERR Client names cannot contain spaces, newlines or special characters.",
        );
        return Flow::Continue;
    }
    c.session.name = (!name.is_empty()).then(|| name.clone());
    reply::ok(c.out);
    Flow::Continue
}

fn client_setinfo(c: &mut Call<'_>) -> Flow {
    let (attribute, value) = (&c.args[2], &c.args[3]);
    let (label, slot) = if is(attribute, "lib-name") {
        ("lib-name", &mut c.session.lib_name)
    } else if is(attribute, "lib-ver") {
        ("lib-ver", &mut c.session.lib_ver)
    } else {
        let mut text = b"ERR Unrecognized option '".to_vec();
        text.extend_from_slice(c_string(attribute, usize::MAX));
        text.push(b'\'');
        reply::error(c.out, &text);
        return Flow::Continue;
    };
    if !printable_token(value) {
        let text = format!("ERR {label} cannot contain spaces, newlines or special characters.");
        reply::error(c.out, text.as_bytes());
        return Flow::Continue;
    }
    *slot = (!value.is_empty()).then(|| value.clone());
    reply::ok(c.out);
    Flow::Continue
}

/// `CONFIG GET pattern...`: the few parameters clients ask about (`redis-benchmark` reads
/// `save` and `appendonly` at start-up).
fn config_get(c: &mut Call<'_>) -> Flow {
    let max_bulk = c.server.limits.max_bulk_len.to_string();
    let parameters: [(&str, &str); 5] = [
        ("appendonly", "no"),
        ("databases", "1"),
        ("proto-max-bulk-len", &max_bulk),
        ("save", ""),
        ("timeout", "0"),
    ];
    let matched: Vec<(&str, &str)> = parameters
        .iter()
        .copied()
        .filter(|(name, _)| {
            c.args[2..]
                .iter()
                .any(|pattern| glob_match(pattern, name.as_bytes()))
        })
        .collect();
    reply::array(c.out, matched.len() * 2);
    for (name, value) in matched {
        reply::bulk(c.out, name.as_bytes());
        reply::bulk(c.out, value.as_bytes());
    }
    Flow::Continue
}

/// Case-insensitive glob with `*` and `?` (Redis's stringmatch without classes). Dynamic
/// programming over (pattern, text) prefixes: the pattern comes from the client, and a
/// backtracking matcher is exponential in its stars.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // matches[j]: whether the pattern so far matches text[..j].
    let mut matches = vec![false; text.len() + 1];
    matches[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == b'*' {
            let mut any = false;
            for j in 0..=text.len() {
                any |= matches[j];
                next[j] = any;
            }
        } else {
            for j in 1..=text.len() {
                next[j] = matches[j - 1] && (p == b'?' || p.eq_ignore_ascii_case(&text[j - 1]));
            }
        }
        matches = next;
    }
    matches[text.len()]
}
