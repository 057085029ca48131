//! RESP2, the Redis serialization protocol: an incremental request decoder (multibulk and
//! inline requests, with Redis's limits and error texts) and the reply encoder.
//!
//! The decoder follows Redis's `processMultibulkBuffer` / `processInlineBuffer`: a request
//! starting with `*` is a multibulk (`*<n>\r\n` then `n` times `$<len>\r\n<len bytes>\r\n`),
//! anything else is an inline command line split like `redis-cli` input (quotes and
//! escapes). It is incremental: the caller hands it the unconsumed bytes it has, the decoder
//! takes what it can (finished bulk arguments are moved out of the caller's buffer at once)
//! and says how many bytes it took, so a large pipelined or slowly arriving request is never
//! re-parsed from its start.
//!
//! Memory is bounded by [`Limits`]. Whenever [`Decoder::decode`] reports that it needs more
//! input, the bytes it left unconsumed are at most [`Limits::max_unconsumed`], so a
//! caller that drops consumed bytes never holds more than that plus one read; the arguments
//! of one request held by the decoder never exceed [`Limits::max_request`] bytes.
//!
//! This file has no dependencies besides `std`: the fuzz target (`fuzz/`) includes it too.

use std::fmt;

/// The bounds on what a client may make the server buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest line without a newline: an inline request, or the `*<n>` / `$<len>`
    /// header of a multibulk (Redis's `PROTO_INLINE_MAX_SIZE`, 64 KiB).
    pub max_inline: usize,
    /// The most arguments one multibulk request may declare (Redis ≤ 5 used 1024 * 1024).
    pub max_multibulk_len: usize,
    /// The longest single argument (Redis's `proto-max-bulk-len`, 512 MB there).
    pub max_bulk_len: usize,
    /// The most argument bytes one request may carry in total (Redis's
    /// `client-query-buffer-limit`, 1 GB there).
    pub max_request: usize,
}

impl Limits {
    /// The defaults of this server: Redis's line and argument-count limits, and 32 MiB for
    /// an argument and for a whole request (Redis allows far more; a small example server
    /// should not let one client claim half a gigabyte).
    pub const DEFAULT: Limits = Limits {
        max_inline: 64 * 1024,
        max_multibulk_len: 1024 * 1024,
        max_bulk_len: 32 * 1024 * 1024,
        max_request: 32 * 1024 * 1024,
    };

    /// The most input the decoder leaves unconsumed when it asks for more: an inline line
    /// or header of up to `max_inline` bytes plus the `\r` of a header, or one bulk
    /// argument that still lacks at least its final `\n`.
    pub fn max_unconsumed(&self) -> usize {
        (self.max_inline + 1).max(self.max_bulk_len.saturating_add(1))
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// A request the decoder rejects. The connection must be closed after answering it:
/// framing is lost, so nothing after it can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*<n>` with `n` not an integer or above [`Limits::max_multibulk_len`].
    InvalidMultibulkLength,
    /// `$<len>` with `len` not an integer, negative, or above [`Limits::max_bulk_len`].
    InvalidBulkLength,
    /// An argument header that does not start with `$`; holds the byte found instead.
    ExpectedDollar(u8),
    /// A multibulk count line longer than [`Limits::max_inline`] without `\r`.
    TooBigMultibulkCount,
    /// A bulk length line longer than [`Limits::max_inline`] without `\r`.
    TooBigBulkCount,
    /// An inline request longer than [`Limits::max_inline`] without `\n`.
    TooBigInline,
    /// An inline request with an unterminated quote, or a closing quote not followed by a
    /// space.
    UnbalancedQuotes,
    /// Bulk data not followed by `\r\n`: the declared length is wrong. (Redis skips the two
    /// bytes without looking; we refuse rather than misread the rest of the stream.)
    BulkNotTerminated,
    /// The arguments of one request add up to more than [`Limits::max_request`] bytes.
    /// Redis closes such a client without a reply (query buffer limit); so do we.
    RequestTooBig,
}

impl ProtocolError {
    /// The error reply Redis sends for it (without `-` and `\r\n`; the byte in
    /// [`ProtocolError::ExpectedDollar`] is sent raw, as Redis's `%c` does), or `None` when
    /// Redis just closes the connection.
    pub fn reply(&self) -> Option<Vec<u8>> {
        let text: &[u8] = match self {
            ProtocolError::InvalidMultibulkLength => b"invalid multibulk length",
            ProtocolError::InvalidBulkLength => b"invalid bulk length",
            ProtocolError::ExpectedDollar(byte) => {
                let mut reply = b"ERR Protocol error: expected '$', got '".to_vec();
                reply.extend_from_slice(&[*byte, b'\'']);
                return Some(reply);
            }
            ProtocolError::TooBigMultibulkCount => b"too big mbulk count string",
            ProtocolError::TooBigBulkCount => b"too big bulk count string",
            ProtocolError::TooBigInline => b"too big inline request",
            ProtocolError::UnbalancedQuotes => b"unbalanced quotes in request",
            ProtocolError::BulkNotTerminated => b"bulk data not followed by CRLF",
            ProtocolError::RequestTooBig => return None,
        };
        Some([&b"ERR Protocol error: "[..], text].concat())
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reply() {
            Some(reply) => f.write_str(&String::from_utf8_lossy(&reply)),
            None => f.write_str("request bigger than the query buffer limit"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// One decoding step: how much input was taken and, if a request was completed, its
/// arguments (never empty: empty requests, `*0\r\n` or a blank line, are skipped as Redis
/// skips them).
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input taken; the caller drops them before the next call.
    pub consumed: usize,
    /// The completed request, if any.
    pub command: Option<Vec<Vec<u8>>>,
}

impl Decoded {
    /// Whether the decoder can do nothing more with the input it was given.
    pub fn needs_more_input(&self) -> bool {
        self.consumed == 0 && self.command.is_none()
    }
}

/// A multibulk request whose header has been read.
#[derive(Debug)]
struct Multibulk {
    /// Arguments still to come.
    remaining: usize,
    /// The arguments so far.
    args: Vec<Vec<u8>>,
    /// Their total length, checked against [`Limits::max_request`].
    bytes: usize,
    /// The length of the current argument, once its `$<len>` header has been read.
    bulk_len: Option<usize>,
}

/// The incremental RESP2 request decoder of one connection.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    multibulk: Option<Multibulk>,
}

/// The longest `Vec` capacity reserved up front for a declared argument count: the count is
/// the client's claim, the memory is ours, so a larger request grows as its arguments come.
const MAX_PREALLOCATED_ARGS: usize = 1024;

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            multibulk: None,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Argument bytes held for the request being decoded (at most
    /// [`Limits::max_request`]).
    pub fn buffered_bytes(&self) -> usize {
        self.multibulk.as_ref().map_or(0, |m| m.bytes)
    }

    /// Decodes from `input`, the bytes received and not yet consumed. Call it again with the
    /// rest of the input (`input[consumed..]` plus anything newly read) until
    /// [`Decoded::needs_more_input`]. After an error the connection must be closed: the
    /// decoder's state is unspecified.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ProtocolError> {
        if self.multibulk.is_none() {
            match input.first() {
                None => return Ok(need_more()),
                Some(b'*') => return self.multibulk_header(input),
                Some(_) => return self.inline(input),
            }
        }
        self.multibulk_args(input)
    }

    /// `*<n>\r\n`.
    fn multibulk_header(&mut self, input: &[u8]) -> Result<Decoded, ProtocolError> {
        let Some(line) = header_line(input, self.limits.max_inline)
            .map_err(|()| ProtocolError::TooBigMultibulkCount)?
        else {
            return Ok(need_more());
        };
        let count = parse_i64(&input[1..line])
            .filter(|n| *n <= self.limits.max_multibulk_len as i64)
            .ok_or(ProtocolError::InvalidMultibulkLength)?;
        if input[line + 1] != b'\n' {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        let consumed = line + 2;
        if count <= 0 {
            // `*0` and `*-1` are empty requests: Redis skips them without a reply.
            return Ok(Decoded {
                consumed,
                command: None,
            });
        }
        let count = count as usize;
        self.multibulk = Some(Multibulk {
            remaining: count,
            args: Vec::with_capacity(count.min(MAX_PREALLOCATED_ARGS)),
            bytes: 0,
            bulk_len: None,
        });
        // Go on with the arguments already received.
        let rest = self.multibulk_args(&input[consumed..])?;
        Ok(Decoded {
            consumed: consumed + rest.consumed,
            command: rest.command,
        })
    }

    /// The `$<len>\r\n<data>\r\n` arguments of the current multibulk.
    fn multibulk_args(&mut self, input: &[u8]) -> Result<Decoded, ProtocolError> {
        let limits = self.limits;
        let request = self
            .multibulk
            .as_mut()
            .expect("multibulk_args outside a multibulk request");
        let mut consumed = 0;
        while request.remaining > 0 {
            let rest = &input[consumed..];
            let len = match request.bulk_len {
                Some(len) => len,
                None => {
                    let Some(line) = header_line(rest, limits.max_inline)
                        .map_err(|()| ProtocolError::TooBigBulkCount)?
                    else {
                        break;
                    };
                    if rest[0] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(rest[0]));
                    }
                    let len = parse_i64(&rest[1..line])
                        .filter(|n| *n >= 0 && *n as u64 <= limits.max_bulk_len as u64)
                        .ok_or(ProtocolError::InvalidBulkLength)?
                        as usize;
                    if rest[line + 1] != b'\n' {
                        return Err(ProtocolError::InvalidBulkLength);
                    }
                    if request.bytes.saturating_add(len) > limits.max_request {
                        return Err(ProtocolError::RequestTooBig);
                    }
                    consumed += line + 2;
                    request.bulk_len = Some(len);
                    len
                }
            };
            let rest = &input[consumed..];
            if rest.len() < len + 2 {
                break;
            }
            if &rest[len..len + 2] != b"\r\n" {
                return Err(ProtocolError::BulkNotTerminated);
            }
            request.args.push(rest[..len].to_vec());
            request.bytes += len;
            request.bulk_len = None;
            request.remaining -= 1;
            consumed += len + 2;
        }
        if request.remaining > 0 {
            return Ok(Decoded {
                consumed,
                command: None,
            });
        }
        let request = self.multibulk.take().expect("checked above");
        Ok(Decoded {
            consumed,
            command: Some(request.args),
        })
    }

    /// An inline request: one line, split as Redis's `sdssplitargs` does.
    fn inline(&mut self, input: &[u8]) -> Result<Decoded, ProtocolError> {
        let Some(newline) = input.iter().position(|&b| b == b'\n') else {
            if input.len() > self.limits.max_inline {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(need_more());
        };
        let mut line = &input[..newline];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        let args = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
        Ok(Decoded {
            consumed: newline + 1,
            command: (!args.is_empty()).then_some(args),
        })
    }
}

fn need_more() -> Decoded {
    Decoded {
        consumed: 0,
        command: None,
    }
}

/// Finds the `\r` ending a header line (`*<n>` or `$<len>`) at the start of `input`, as
/// Redis does: `Ok(Some(i))` when `input[i] == b'\r'` and a byte follows it, `Ok(None)` when
/// more input is needed, `Err(())` when `max_inline` bytes have come without a `\r`.
///
/// A line whose `\r` is the last byte received and lies beyond `max_inline` is refused
/// too (Redis would wait for one more byte, then refuse the over-long number), so the bytes
/// left unconsumed stay within [`Limits::max_unconsumed`].
fn header_line(input: &[u8], max_inline: usize) -> Result<Option<usize>, ()> {
    match input.iter().position(|&b| b == b'\r') {
        Some(cr) if cr + 1 < input.len() => Ok(Some(cr)),
        Some(cr) if cr > max_inline => Err(()),
        Some(_) => Ok(None),
        None if input.len() > max_inline => Err(()),
        None => Ok(None),
    }
}

/// Redis's `string2ll`: a decimal `i64` with an optional `-`, no `+`, no spaces, no leading
/// zeros (so `-0` is refused), at most 20 characters.
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        if magnitude > i64::MAX as u64 + 1 {
            return None;
        }
        Some((magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Redis's `sdssplitargs`: splits an inline request into arguments. Arguments are separated
/// by whitespace; `"..."` takes the escapes `\n \r \t \b \a \xHH` and `\<any>`, `'...'`
/// takes `\'`; a closing quote must be followed by whitespace or the end. `None` for
/// unbalanced quotes. (Unlike C Redis, a NUL byte is an ordinary byte here, not the end of
/// the line.)
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let at = |i: usize| line.get(i).copied();
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while at(p).is_some_and(is_space) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let Some(c) = at(p) else {
                if in_double || in_single {
                    return None;
                }
                break;
            };
            if in_double {
                let hex = |i: usize| at(i).and_then(|b| char::from(b).to_digit(16));
                if let (b'\\', Some(b'x'), Some(high), Some(low)) =
                    (c, at(p + 1), hex(p + 2), hex(p + 3))
                {
                    current.push((high * 16 + low) as u8);
                    p += 4;
                    continue;
                }
                if c == b'\\' && p + 1 < line.len() {
                    p += 1;
                    current.push(match line[p] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1).is_some_and(|b| !is_space(b)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == Some(b'\'') {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1).is_some_and(|b| !is_space(b)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' => {
                        p += 1;
                        break;
                    }
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => current.push(c),
                }
            }
            p += 1;
        }
        args.push(current);
    }
}

/// Reply encoders: each appends one RESP2 value to `out`.
pub mod reply {
    use std::io::Write;

    /// `+OK`-style status.
    pub fn simple(out: &mut Vec<u8>, text: &str) {
        out.push(b'+');
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// `+OK`.
    pub fn ok(out: &mut Vec<u8>) {
        out.extend_from_slice(b"+OK\r\n");
    }

    /// An error: `text` starts with its code (`ERR ...`, `WRONGTYPE ...`). CR and LF are
    /// replaced by spaces, as Redis does, so a client-supplied byte cannot break framing.
    pub fn error(out: &mut Vec<u8>, text: &[u8]) {
        out.push(b'-');
        out.extend(text.iter().map(|&b| match b {
            b'\r' | b'\n' => b' ',
            other => other,
        }));
        out.extend_from_slice(b"\r\n");
    }

    /// `:<n>`.
    pub fn integer(out: &mut Vec<u8>, n: i64) {
        // Writing to a Vec cannot fail.
        let _ = write!(out, ":{n}\r\n");
    }

    /// `$<len>\r\n<bytes>\r\n`.
    pub fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
        let _ = write!(out, "${}\r\n", bytes.len());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }

    /// The nil bulk string, `$-1`.
    pub fn nil(out: &mut Vec<u8>) {
        out.extend_from_slice(b"$-1\r\n");
    }

    /// The header of an array of `len` values, which the caller appends next.
    pub fn array(out: &mut Vec<u8>, len: usize) {
        let _ = write!(out, "*{len}\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut decoder = Decoder::new(Limits::DEFAULT);
        let mut commands = Vec::new();
        let mut pos = 0;
        loop {
            let step = decoder.decode(&input[pos..])?;
            if step.needs_more_input() {
                return Ok(commands);
            }
            pos += step.consumed;
            commands.extend(step.command);
        }
    }

    #[test]
    fn string2ll_rules() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"-",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn multibulk_and_inline() {
        let commands = decode_all(
            b"*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\n\r\n*0\r\nset 'a b' \"c\\x41\\n\"\r\n",
        )
        .unwrap();
        let expected: Vec<Vec<Vec<u8>>> = vec![
            vec![b"GET".to_vec(), b"a".to_vec()],
            vec![b"PING".to_vec()],
            vec![b"set".to_vec(), b"a b".to_vec(), b"cA\n".to_vec()],
        ];
        assert_eq!(commands, expected);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_commands() {
        let input = b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$0\r\n\r\nECHO \"x y\"\n";
        let mut decoder = Decoder::new(Limits::DEFAULT);
        let mut buffer = Vec::new();
        let mut commands = Vec::new();
        for &byte in input.iter() {
            buffer.push(byte);
            loop {
                let step = decoder.decode(&buffer).unwrap();
                if step.needs_more_input() {
                    break;
                }
                buffer.drain(..step.consumed);
                commands.extend(step.command);
            }
        }
        assert!(buffer.is_empty());
        assert_eq!(commands.len(), 2);
        assert_eq!(commands[0][2], b"");
        assert_eq!(commands[1][1], b"x y");
    }

    #[test]
    fn protocol_errors() {
        let cases: [(&[u8], ProtocolError); 6] = [
            (b"*x\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*1048577\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*1\r\nx\r\n", ProtocolError::ExpectedDollar(b'x')),
            (b"*1\r\n$-1\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$1\r\nab\r\n", ProtocolError::BulkNotTerminated),
            (b"SET \"a\r\n", ProtocolError::UnbalancedQuotes),
        ];
        for (input, error) in cases {
            assert_eq!(decode_all(input), Err(error));
        }
        assert_eq!(split_args(b"\"a\"b"), None);
        assert_eq!(split_args(b"'a'b"), None);
    }

    #[test]
    fn long_lines_are_refused_once_past_the_limit() {
        let limits = Limits::DEFAULT;
        let inline = vec![b'a'; limits.max_inline];
        assert_eq!(decode_all(&inline), Ok(vec![]));
        let inline = vec![b'a'; limits.max_inline + 1];
        assert_eq!(decode_all(&inline), Err(ProtocolError::TooBigInline));
        let mut header = b"*1\r\n$".to_vec();
        header.resize(limits.max_inline + 10, b'1');
        assert_eq!(decode_all(&header), Err(ProtocolError::TooBigBulkCount));
        let mut header = b"*".to_vec();
        header.resize(limits.max_inline + 10, b'1');
        assert_eq!(
            decode_all(&header),
            Err(ProtocolError::TooBigMultibulkCount)
        );
    }

    #[test]
    fn unconsumed_input_stays_within_max_unconsumed() {
        // Found by the fuzzer: a header whose `\r` is the last byte received, just at the
        // line limit, leaves `max_inline + 1` bytes for the next call.
        let limits = Limits {
            max_inline: 64,
            max_bulk_len: 32,
            ..Limits::DEFAULT
        };
        let mut header = b"*1\r\n$".to_vec();
        let start = 4;
        header.resize(start + limits.max_inline, b'1');
        header.push(b'\r');
        let mut decoder = Decoder::new(limits);
        let step = decoder.decode(&header).unwrap();
        assert_eq!(step.consumed, start);
        let rest = &header[start..];
        assert!(decoder.decode(rest).unwrap().needs_more_input());
        assert_eq!(rest.len(), limits.max_unconsumed());
        // A bulk missing only its final byte is the other extreme.
        let mut bulk = b"$32\r\n".to_vec();
        bulk.resize(bulk.len() + 32 + 1, b'x');
        bulk[5 + 32] = b'\r';
        let mut decoder = Decoder::new(limits);
        let step = decoder.decode(b"*1\r\n").unwrap();
        assert_eq!(step.consumed, 4);
        let step = decoder.decode(&bulk).unwrap();
        assert_eq!(step.consumed, 5);
        assert!(decoder.decode(&bulk[5..]).unwrap().needs_more_input());
        assert!(bulk[5..].len() <= limits.max_unconsumed());
    }

    #[test]
    fn request_size_is_bounded() {
        let limits = Limits {
            max_request: 10,
            ..Limits::DEFAULT
        };
        let mut decoder = Decoder::new(limits);
        let step = decoder.decode(b"*3\r\n$6\r\nabcdef\r\n").unwrap();
        assert_eq!(step.consumed, 16);
        assert_eq!(decoder.buffered_bytes(), 6);
        assert_eq!(decoder.decode(b"$5\r\n"), Err(ProtocolError::RequestTooBig));
    }
}
