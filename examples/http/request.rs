//! Reading one HTTP/1.x request from a [`Conn`]: the head parsed by `httparse`, then the
//! body framed by `Content-Length` or decoded from chunked transfer coding, all within
//! limits.
//!
//! Framing is checked strictly because a proxy in front of the server may frame the same
//! bytes differently (request smuggling): a request with both `Content-Length` and
//! `Transfer-Encoding`, with conflicting or malformed `Content-Length`s, or with a
//! malformed chunk is refused with 400 and the connection is closed, never guessed at.

use std::io;

use super::conn::Conn;
use super::response::{Status, CONTINUE};

/// The longest chunk-size line (size plus extensions) accepted, as Go's `maxLineLength`.
const MAX_CHUNK_LINE: usize = 4096;

/// What a request may be.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of the head (request line and header fields, and of a chunked body's trailer
    /// section); more is 431.
    pub max_head_bytes: usize,
    /// Header fields (and trailer fields); more is 431.
    pub max_headers: usize,
    /// Bytes of the body, after chunked decoding; more is 413.
    pub max_body_bytes: usize,
}

/// A request, read completely (body included).
#[derive(Debug)]
pub struct Request {
    /// The method, as sent (methods are case-sensitive).
    pub method: String,
    /// The request target's path, without the query.
    pub path: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client lets the connection stay open after the response (HTTP/1.1
    /// unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// The body, decoded (empty if there was none).
    pub body: Vec<u8>,
}

/// Why no request was read.
#[derive(Debug)]
pub enum ReadError {
    /// The request is refused: answer with this status and message, then close.
    Reject(Status, String),
    /// The read deadline passed while the request was arriving (a slow or stalled client).
    TimedOut,
    /// The client closed mid-request or the connection failed: nothing can be answered.
    Io(io::Error),
}

impl ReadError {
    fn reject(status: Status, message: impl Into<String>) -> ReadError {
        ReadError::Reject(status, message.into())
    }
}

/// How the body is delimited.
enum Framing {
    Length(u64),
    Chunked,
}

/// What the head says, copied out of the read buffer so the buffer can be reused for the
/// body.
struct Head {
    method: String,
    target: String,
    minor_version: u8,
    content_lengths: Vec<Vec<u8>>,
    transfer_encodings: Vec<Vec<u8>>,
    connection_close: bool,
    connection_keep_alive: bool,
    hosts: usize,
    expect: Option<Vec<u8>>,
}

/// Reads the next request. The caller has made sure at least one byte of it is buffered
/// and has set the read deadline that bounds the whole request.
pub fn read_request(conn: &mut Conn, limits: &Limits) -> Result<Request, ReadError> {
    let head = read_head(conn, limits)?;
    if head.minor_version > 1 {
        return Err(ReadError::reject(
            Status::BAD_REQUEST,
            "unsupported HTTP version",
        ));
    }
    if !head.target.starts_with('/') {
        return Err(ReadError::reject(
            Status::BAD_REQUEST,
            "request target must be a path",
        ));
    }
    if head.minor_version == 1 && head.hosts != 1 {
        return Err(ReadError::reject(
            Status::BAD_REQUEST,
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    let expect_continue = match &head.expect {
        None => false,
        Some(value) if value.eq_ignore_ascii_case(b"100-continue") => true,
        Some(_) => {
            return Err(ReadError::reject(
                Status::EXPECTATION_FAILED,
                "unsupported expectation",
            ))
        }
    };
    let framing = framing(&head)?;
    let mut body = Vec::new();
    match framing {
        Framing::Length(length) => {
            let length = usize::try_from(length)
                .ok()
                .filter(|n| *n <= limits.max_body_bytes)
                .ok_or_else(|| ReadError::reject(Status::CONTENT_TOO_LARGE, "body too large"))?;
            if expect_continue && head.minor_version == 1 && conn.buffered().len() < length {
                conn.out().extend_from_slice(CONTINUE);
            }
            body.reserve_exact(length);
            read_exact_into(conn, &mut body, length)?;
        }
        Framing::Chunked => {
            if expect_continue && conn.buffered().is_empty() {
                conn.out().extend_from_slice(CONTINUE);
            }
            read_chunked(conn, limits, &mut body)?;
        }
    }
    let keep_alive = if head.minor_version == 1 {
        !head.connection_close
    } else {
        head.connection_keep_alive && !head.connection_close
    };
    let path = match head.target.split_once('?') {
        Some((path, _query)) => path.to_owned(),
        None => head.target,
    };
    Ok(Request {
        method: head.method,
        path,
        minor_version: head.minor_version,
        keep_alive,
        body,
    })
}

/// Parses the head, reading until it is complete or too large.
fn read_head(conn: &mut Conn, limits: &Limits) -> Result<Head, ReadError> {
    loop {
        // A fresh array per attempt: the parsed headers borrow the read buffer, which the
        // `fill` below must be free to change. Most heads arrive in one read.
        let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut request = httparse::Request::new(&mut headers);
        let buffered = conn.buffered();
        match request.parse(buffered) {
            Ok(httparse::Status::Complete(length)) => {
                if length > limits.max_head_bytes {
                    return Err(head_too_large());
                }
                let head = copy_head(&request)?;
                conn.consume(length);
                return Ok(head);
            }
            Ok(httparse::Status::Partial) => {
                if buffered.len() >= limits.max_head_bytes {
                    return Err(head_too_large());
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ReadError::reject(
                    Status::HEADER_FIELDS_TOO_LARGE,
                    "too many header fields",
                ))
            }
            Err(e) => {
                return Err(ReadError::reject(
                    Status::BAD_REQUEST,
                    format!("malformed request: {e}"),
                ))
            }
        }
        fill(conn)?;
    }
}

fn head_too_large() -> ReadError {
    ReadError::reject(Status::HEADER_FIELDS_TOO_LARGE, "request header too large")
}

/// Copies what the server needs out of a complete parse.
fn copy_head(request: &httparse::Request<'_, '_>) -> Result<Head, ReadError> {
    // A complete parse has all three; the `else` only keeps a parser surprise from
    // becoming a panic.
    let (Some(method), Some(target), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        return Err(ReadError::reject(Status::BAD_REQUEST, "malformed request"));
    };
    let mut head = Head {
        method: method.to_owned(),
        target: target.to_owned(),
        minor_version,
        content_lengths: Vec::new(),
        transfer_encodings: Vec::new(),
        connection_close: false,
        connection_keep_alive: false,
        hosts: 0,
        expect: None,
    };
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            head.content_lengths.push(header.value.to_vec());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.transfer_encodings.push(header.value.to_vec());
        } else if name.eq_ignore_ascii_case("host") {
            head.hosts += 1;
        } else if name.eq_ignore_ascii_case("expect") {
            if head.expect.is_some() {
                return Err(ReadError::reject(
                    Status::BAD_REQUEST,
                    "more than one Expect header",
                ));
            }
            head.expect = Some(trim(header.value).to_vec());
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|b| *b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.connection_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    head.connection_keep_alive = true;
                }
            }
        }
    }
    Ok(head)
}

/// Decides the body's framing (RFC 9112 section 6.3), refusing anything ambiguous.
fn framing(head: &Head) -> Result<Framing, ReadError> {
    if !head.transfer_encodings.is_empty() {
        if !head.content_lengths.is_empty() {
            return Err(ReadError::reject(
                Status::BAD_REQUEST,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if head.minor_version == 0 {
            return Err(ReadError::reject(
                Status::BAD_REQUEST,
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        // Only `chunked` alone is supported; any other coding, or chunked twice, is 501
        // as in Go.
        let codings: Vec<&[u8]> = head
            .transfer_encodings
            .iter()
            .flat_map(|value| value.split(|b| *b == b','))
            .map(trim)
            .collect();
        return match codings.as_slice() {
            [coding] if coding.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            _ => Err(ReadError::reject(
                Status::NOT_IMPLEMENTED,
                "unsupported transfer encoding",
            )),
        };
    }
    let mut length = None;
    for value in &head.content_lengths {
        let parsed = parse_content_length(value)
            .ok_or_else(|| ReadError::reject(Status::BAD_REQUEST, "invalid Content-Length"))?;
        if length.is_some_and(|previous| previous != parsed) {
            return Err(ReadError::reject(
                Status::BAD_REQUEST,
                "conflicting Content-Length headers",
            ));
        }
        length = Some(parsed);
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

/// A `Content-Length` value: one or more ASCII digits, nothing else (no sign, no list, no
/// spaces inside), not overflowing.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    let value = trim(value);
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, digit| {
        n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Decodes a chunked body into `body` (RFC 9112 section 7.1), trailers validated and
/// discarded.
fn read_chunked(conn: &mut Conn, limits: &Limits, body: &mut Vec<u8>) -> Result<(), ReadError> {
    loop {
        let size = read_chunk_size(conn)?;
        if size == 0 {
            return read_trailers(conn, limits);
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|size| {
                body.len()
                    .checked_add(*size)
                    .is_some_and(|total| total <= limits.max_body_bytes)
            })
            .ok_or_else(|| ReadError::reject(Status::CONTENT_TOO_LARGE, "body too large"))?;
        read_exact_into(conn, body, size)?;
        while conn.buffered().len() < 2 {
            fill(conn)?;
        }
        if &conn.buffered()[..2] != b"\r\n" {
            return Err(ReadError::reject(
                Status::BAD_REQUEST,
                "chunk data not followed by CRLF",
            ));
        }
        conn.consume(2);
    }
}

/// Reads a chunk-size line (`1a;ext=v\r\n`) and returns the size.
fn read_chunk_size(conn: &mut Conn) -> Result<u64, ReadError> {
    loop {
        let buffered = conn.buffered();
        if let Some(newline) = buffered.iter().position(|b| *b == b'\n') {
            let line = &buffered[..=newline];
            // httparse accepts an empty size and a bare LF inside an extension; HTTP
            // does not.
            let valid_start = line.first().is_some_and(u8::is_ascii_hexdigit);
            let crlf = newline >= 1 && line[newline - 1] == b'\r';
            let size = match httparse::parse_chunk_size(line) {
                Ok(httparse::Status::Complete((used, size))) if used == line.len() => Some(size),
                _ => None,
            };
            return match (valid_start, crlf, size) {
                (true, true, Some(size)) => {
                    conn.consume(newline + 1);
                    Ok(size)
                }
                _ => Err(ReadError::reject(
                    Status::BAD_REQUEST,
                    "malformed chunk size line",
                )),
            };
        }
        if buffered.len() >= MAX_CHUNK_LINE {
            return Err(ReadError::reject(
                Status::BAD_REQUEST,
                "chunk size line too long",
            ));
        }
        fill(conn)?;
    }
}

/// Reads the trailer section after the last chunk, up to and including its empty line.
fn read_trailers(conn: &mut Conn, limits: &Limits) -> Result<(), ReadError> {
    loop {
        let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let buffered = conn.buffered();
        match httparse::parse_headers(buffered, &mut fields) {
            Ok(httparse::Status::Complete((length, _))) => {
                if length > limits.max_head_bytes {
                    return Err(trailers_too_large());
                }
                conn.consume(length);
                return Ok(());
            }
            Ok(httparse::Status::Partial) => {
                if buffered.len() >= limits.max_head_bytes {
                    return Err(trailers_too_large());
                }
            }
            Err(httparse::Error::TooManyHeaders) => return Err(trailers_too_large()),
            Err(e) => {
                return Err(ReadError::reject(
                    Status::BAD_REQUEST,
                    format!("malformed trailer: {e}"),
                ))
            }
        }
        fill(conn)?;
    }
}

fn trailers_too_large() -> ReadError {
    ReadError::reject(Status::HEADER_FIELDS_TOO_LARGE, "trailer section too large")
}

/// Appends exactly `n` more body bytes to `body`.
fn read_exact_into(conn: &mut Conn, body: &mut Vec<u8>, n: usize) -> Result<(), ReadError> {
    let mut remaining = n - conn.take_into(body, n);
    while remaining > 0 {
        fill(conn)?;
        remaining -= conn.take_into(body, remaining);
    }
    Ok(())
}

/// [`Conn::fill`] for a request in progress: end of stream is an error here.
fn fill(conn: &mut Conn) -> Result<(), ReadError> {
    match conn.fill() {
        Ok(0) => Err(ReadError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "client closed mid-request",
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(ReadError::TimedOut),
        Err(e) => Err(ReadError::Io(e)),
    }
}

/// `value` without leading and trailing spaces and tabs.
fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end]
}
