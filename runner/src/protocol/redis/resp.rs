//! RESP2, the Redis wire format: commands written as arrays of bulk strings, replies read
//! in place from the connection's buffer. Written by hand rather than through the `redis` or
//! `fred` crates: a command whose arguments do not vary is pre-rendered bytes (pipelined
//! copies are the same bytes again), and a reply is judged where it lies, with no allocation
//! per request (BENCHMARKS.md, redis section, has the figures). Never panics on a server's
//! bytes: every malformation is `Outcome::Protocol`.

use crate::stats::Outcome;

/// Deepest nesting of arrays read; deeper is a protocol error (no reply of a command a load
/// test sends nests this deep, and the bound keeps a hostile server from exhausting the stack).
const MAX_DEPTH: usize = 16;
/// The longest reply a user reads (bulk length or element count), as for HTTP and TCP;
/// larger is a protocol error, so no reply is buffered without a bound.
pub const MAX_REPLY: usize = 64 * 1024 * 1024;

/// Appends `args` as one command.
pub fn write_command<'a>(out: &mut Vec<u8>, args: impl ExactSizeIterator<Item = &'a [u8]>) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        write_bulk(out, a);
    }
}

/// Appends the header of a command of `count` arguments; each follows as `write_bulk`.
pub fn write_array_header(out: &mut Vec<u8>, count: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn write_bulk(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// The type of a reply, as a check names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// `+OK`
    Status,
    /// `-ERR …`
    Error,
    Integer,
    /// A bulk string.
    String,
    Nil,
    Array,
}

/// One reply, borrowed from the buffer it was read into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    pub kind: Type,
    /// Status and error text, integer digits, bulk content; for an array, its elements'
    /// bytes as on the wire.
    pub data: &'a [u8],
    /// Elements of an array.
    pub len: usize,
}

impl<'a> Reply<'a> {
    /// The error's prefix (`WRONGTYPE`, `NOSCRIPT`, `ERR`): its first word.
    pub fn error_code(&self) -> Option<&'a [u8]> {
        (self.kind == Type::Error).then(|| {
            let end = memchr::memchr(b' ', self.data).unwrap_or(self.data.len());
            &self.data[..end]
        })
    }

    pub fn integer(&self) -> Option<i64> {
        if self.kind != Type::Integer {
            return None;
        }
        std::str::from_utf8(self.data).ok()?.parse().ok()
    }

    /// Element `i` of an array.
    pub fn element(&self, i: usize) -> Option<Reply<'a>> {
        if self.kind != Type::Array || i >= self.len {
            return None;
        }
        let mut at = 0;
        for _ in 0..i {
            let (_, used) = parse(&self.data[at..]).ok()??;
            at += used;
        }
        parse(&self.data[at..]).ok()?.map(|(r, _)| r)
    }

    /// The reply as checks and extracts read it: the text of a status, error, integer or
    /// bulk string as is, nothing for nil, and an array as JSON (strings, integers, nulls,
    /// nested arrays), rendered into `into`.
    pub fn body<'b>(&self, into: &'b mut Vec<u8>) -> &'b [u8]
    where
        'a: 'b,
    {
        into.clear();
        match self.kind {
            Type::Array => self.json_into(into),
            Type::Nil => {}
            _ => into.extend_from_slice(self.data),
        }
        into
    }

    fn json_into(&self, out: &mut Vec<u8>) {
        match self.kind {
            Type::Nil => out.extend_from_slice(b"null"),
            Type::Integer => out.extend_from_slice(self.data),
            Type::Array => {
                out.push(b'[');
                let mut at = 0;
                for i in 0..self.len {
                    let Ok(Some((e, used))) = parse(&self.data[at..]) else {
                        break;
                    };
                    at += used;
                    if i > 0 {
                        out.push(b',');
                    }
                    e.json_into(out);
                }
                out.push(b']');
            }
            _ => {
                let s = String::from_utf8_lossy(self.data);
                out.extend_from_slice(serde_json::Value::from(s.as_ref()).to_string().as_bytes());
            }
        }
    }
}

/// The first reply in `buf` and the bytes it takes, or `None` while it is incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, Outcome> {
    let Some(end) = reply_end(buf, 0)? else {
        return Ok(None);
    };
    let (line, after) = line(buf).ok_or(Outcome::Protocol)?;
    let data = &line[1..];
    let reply = match line[0] {
        b'+' => Reply {
            kind: Type::Status,
            data,
            len: 0,
        },
        b'-' => Reply {
            kind: Type::Error,
            data,
            len: 0,
        },
        b':' => Reply {
            kind: Type::Integer,
            data,
            len: 0,
        },
        b'$' => match length(data)? {
            n if n < 0 => Reply {
                kind: Type::Nil,
                data: &[],
                len: 0,
            },
            n => Reply {
                kind: Type::String,
                data: &buf[after..after + n as usize],
                len: 0,
            },
        },
        b'*' => match length(data)? {
            n if n < 0 => Reply {
                kind: Type::Nil,
                data: &[],
                len: 0,
            },
            n => Reply {
                kind: Type::Array,
                data: &buf[after..end],
                len: n as usize,
            },
        },
        _ => return Err(Outcome::Protocol),
    };
    Ok(Some((reply, end)))
}

/// The line at the start of `buf` (without CRLF) and where the next begins.
fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let i = memchr::memchr(b'\n', buf)?;
    (i >= 2 && buf[i - 1] == b'\r').then(|| (&buf[..i - 1], i + 1))
}

fn number(digits: &[u8]) -> Result<i64, Outcome> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Outcome::Protocol)
}

/// A bulk string's length or an array's element count: at most `MAX_REPLY`.
fn length(digits: &[u8]) -> Result<i64, Outcome> {
    let n = number(digits)?;
    if n > MAX_REPLY as i64 {
        return Err(Outcome::Protocol);
    }
    Ok(n)
}

/// Where the reply at the start of `buf` ends, if it is complete.
fn reply_end(buf: &[u8], depth: usize) -> Result<Option<usize>, Outcome> {
    if depth > MAX_DEPTH {
        return Err(Outcome::Protocol);
    }
    let Some(i) = memchr::memchr(b'\n', buf) else {
        // A line longer than any length header or status a server sends is no reply.
        return if buf.len() > 64 * 1024 {
            Err(Outcome::Protocol)
        } else {
            Ok(None)
        };
    };
    if i < 2 || buf[i - 1] != b'\r' {
        return Err(Outcome::Protocol);
    }
    let head = &buf[1..i - 1];
    let after = i + 1;
    match buf[0] {
        b'+' | b'-' => Ok(Some(after)),
        b':' => {
            number(head)?;
            Ok(Some(after))
        }
        b'$' => {
            let n = length(head)?;
            if n < 0 {
                return Ok(Some(after));
            }
            let end = after + n as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(Outcome::Protocol);
            }
            Ok(Some(end))
        }
        b'*' => {
            let n = length(head)?;
            let mut at = after;
            for _ in 0..n.max(0) {
                match reply_end(&buf[at..], depth + 1)? {
                    Some(used) => at += used,
                    None => return Ok(None),
                }
            }
            Ok(Some(at))
        }
        _ => Err(Outcome::Protocol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(b: &[u8]) -> Reply<'_> {
        let (r, used) = parse(b).unwrap().unwrap();
        assert_eq!(used, b.len(), "{:?}", String::from_utf8_lossy(b));
        r
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        write_command(&mut out, [&b"SET"[..], b"k", b""].into_iter());
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn every_reply_type_is_read_in_place() {
        assert_eq!(one(b"+OK\r\n").kind, Type::Status);
        let e = one(b"-WRONGTYPE Operation against a key\r\n");
        assert_eq!(e.error_code(), Some(&b"WRONGTYPE"[..]));
        assert_eq!(one(b":-42\r\n").integer(), Some(-42));
        assert_eq!(
            one(b":1000000000000\r\n").integer(),
            Some(1_000_000_000_000)
        );
        assert_eq!(one(b"$5\r\nhe\r\nl\r\n").data, b"he\r\nl");
        assert_eq!(one(b"$-1\r\n").kind, Type::Nil);
        assert_eq!(one(b"*-1\r\n").kind, Type::Nil);
        let a = one(b"*3\r\n$1\r\na\r\n:7\r\n*1\r\n$-1\r\n");
        assert_eq!(a.len, 3);
        assert_eq!(a.element(1).and_then(|e| e.integer()), Some(7));
        assert_eq!(a.element(3), None);
        let mut json = Vec::new();
        assert_eq!(a.body(&mut json), br#"["a",7,[null]]"#);
    }

    #[test]
    fn incomplete_replies_wait_and_malformed_ones_are_protocol_errors() {
        for partial in [&b"+OK"[..], b"$5\r\nabc", b"*2\r\n:1\r\n", b"$3\r\nabc\r"] {
            assert_eq!(parse(partial), Ok(None), "{partial:?}");
        }
        for bad in [
            &b"?x\r\n"[..],
            b"+OK\n",
            b"$3\r\nabcde",
            b":12a\r\n",
            b"$99999999999999\r\n",
        ] {
            assert_eq!(parse(bad), Err(Outcome::Protocol), "{bad:?}");
        }
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 2);
        assert_eq!(parse(&deep), Err(Outcome::Protocol));
    }
}
