//! Writing HTTP/1.1 responses: status lines, the headers every response carries (`Date`,
//! `Content-Length`, `Content-Type`), and the `Date` value in IMF-fixdate form.

use std::time::{SystemTime, UNIX_EPOCH};

/// A status code with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The three-digit code.
    pub code: u16,
    /// The reason phrase sent after it.
    pub reason: &'static str,
}

impl Status {
    /// 200: the request succeeded.
    pub const OK: Status = Status::new(200, "OK");
    /// 400: malformed or ambiguously framed request.
    pub const BAD_REQUEST: Status = Status::new(400, "Bad Request");
    /// 404: no such route.
    pub const NOT_FOUND: Status = Status::new(404, "Not Found");
    /// 405: the route exists, the method does not (sent with `Allow`).
    pub const METHOD_NOT_ALLOWED: Status = Status::new(405, "Method Not Allowed");
    /// 408: the request did not arrive within the read deadline.
    pub const REQUEST_TIMEOUT: Status = Status::new(408, "Request Timeout");
    /// 413: the body exceeds the limit.
    pub const CONTENT_TOO_LARGE: Status = Status::new(413, "Content Too Large");
    /// 417: an `Expect` other than `100-continue`.
    pub const EXPECTATION_FAILED: Status = Status::new(417, "Expectation Failed");
    /// 431: the head is too large or has too many fields.
    pub const HEADER_FIELDS_TOO_LARGE: Status = Status::new(431, "Request Header Fields Too Large");
    /// 501: a transfer coding other than `chunked`.
    pub const NOT_IMPLEMENTED: Status = Status::new(501, "Not Implemented");

    const fn new(code: u16, reason: &'static str) -> Status {
        Status { code, reason }
    }
}

/// The interim response sent to a client that asked `Expect: 100-continue`, before the
/// server reads the body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the `Connection` header of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Nothing: HTTP/1.1's default, the connection stays open.
    Default,
    /// `Connection: keep-alive`: an HTTP/1.0 client asked to keep the connection open.
    KeepAlive,
    /// `Connection: close`: the server closes after this response.
    Close,
}

/// A response to write.
pub struct Response<'a> {
    /// The status line's code and reason.
    pub status: Status,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body (its length is sent as `Content-Length`).
    pub body: &'a [u8],
    /// The `Allow` header, for 405.
    pub allow: Option<&'static str>,
}

impl<'a> Response<'a> {
    /// A `text/plain` response.
    pub fn text(status: Status, body: &'a [u8]) -> Response<'a> {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
            allow: None,
        }
    }

    /// Appends the response to `out`. `head_only` (a HEAD request) sends the headers of the
    /// full response, `Content-Length` included, without the body.
    pub fn write_to(
        &self,
        out: &mut Vec<u8>,
        date: &mut DateCache,
        connection: Connection,
        head_only: bool,
    ) {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status.code,
            self.status.reason,
            date.now(),
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            let _ = write!(out, "Allow: {allow}\r\n");
        }
        match connection {
            Connection::Default => {}
            Connection::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
            Connection::Close => out.extend_from_slice(b"Connection: close\r\n"),
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(self.body);
        }
    }
}

/// The current time formatted for the `Date` header, recomputed at most once a second.
#[derive(Default)]
pub struct DateCache {
    second: u64,
    text: String,
}

impl DateCache {
    /// Now, as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    pub fn now(&mut self) -> &str {
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.text.is_empty() || second != self.second {
            self.second = second;
            self.text = imf_fixdate(second);
        }
        &self.text
    }
}

/// Formats seconds since the Unix epoch as an IMF-fixdate (RFC 9110 section 5.6.7).
pub fn imf_fixdate(unix_seconds: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_seconds / 86_400;
    let in_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Year, month (1..=12) and day (1..=31) of the day `days` after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, restricted to dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
