//! WebSocket framing (RFC 6455 §5): frame headers, masking, and writing frames. Pure: no I/O.
//! Never panics on a peer's bytes: every malformation is an `Error`.

use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID a server appends to the client's key (RFC 6455 §1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key.trim_ascii());
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0,
            Opcode::Text => 1,
            Opcode::Binary => 2,
            Opcode::Close => 8,
            Opcode::Ping => 9,
            Opcode::Pong => 10,
        }
    }

    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// Why a peer's bytes are not WebSocket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Reserved bits set (no extension was negotiated), or an unknown opcode.
    Reserved,
    /// A control frame fragmented or longer than 125 bytes.
    BadControl,
    /// A frame or message larger than the limit.
    TooBig,
    /// Masking the wrong way round (a server must not mask, a client must).
    Mask,
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    /// Bytes of header before the payload.
    pub len: usize,
    pub payload: usize,
}

impl Header {
    /// Header and payload together.
    pub fn frame_len(&self) -> usize {
        self.len + self.payload
    }
}

/// Parses the header at the start of `buf`: `Ok(None)` until enough bytes are there.
/// `masked` is what the reader requires (a server reads masked frames, a client unmasked).
pub fn parse_header(buf: &[u8], masked: bool, max_payload: usize) -> Result<Option<Header>, Error> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(Error::Reserved);
    }
    let opcode = Opcode::from_bits(b0 & 0x0f).ok_or(Error::Reserved)?;
    let fin = b0 & 0x80 != 0;
    let is_masked = b1 & 0x80 != 0;
    if is_masked != masked {
        return Err(Error::Mask);
    }
    let (payload, mut len) = match b1 & 0x7f {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            (u64::from_be_bytes(a), 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (!fin || payload > 125) {
        return Err(Error::BadControl);
    }
    if payload > max_payload as u64 {
        return Err(Error::TooBig);
    }
    let mask = if masked {
        let Some(m) = buf.get(len..len + 4) else {
            return Ok(None);
        };
        len += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        len,
        payload: payload as usize,
    }))
}

/// XORs `data` with `mask`, as the bytes at positions `offset..` of a payload.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(offset + i) & 3];
    }
}

/// Appends one final frame carrying `payload` to `out`, masked with `mask` when given (every
/// frame a client sends must be).
pub fn write_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.push(0x80 | opcode.bits());
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len() + if mask.is_some() { 4 } else { 0 };
    if let Some(m) = mask {
        out.extend_from_slice(&m);
    }
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m, 0);
    }
}

/// The largest frame `write_frame` makes for a control message (2 + 4 + 125 bytes).
pub const MAX_CONTROL_FRAME: usize = 131;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_key_is_accepted() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_round_trip_at_every_length_class() {
        for len in [0usize, 5, 125, 126, 65_535, 65_536, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = Vec::new();
                write_frame(&mut out, Opcode::Binary, &payload, mask);
                let h = parse_header(&out, mask.is_some(), 1 << 20)
                    .unwrap()
                    .unwrap();
                assert_eq!((h.fin, h.opcode, h.payload), (true, Opcode::Binary, len));
                assert_eq!(h.frame_len(), out.len());
                let mut body = out[h.len..].to_vec();
                if let Some(m) = h.mask {
                    apply_mask(&mut body, m, 0);
                }
                assert_eq!(body, payload);
                // Every prefix is "not yet".
                for cut in 0..h.len {
                    assert_eq!(parse_header(&out[..cut], mask.is_some(), 1 << 20), Ok(None));
                }
            }
        }
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        assert_eq!(parse_header(&[0xC1, 0x00], false, 10), Err(Error::Reserved));
        assert_eq!(parse_header(&[0x83, 0x00], false, 10), Err(Error::Reserved));
        assert_eq!(
            parse_header(&[0x09, 0x00], false, 10),
            Err(Error::BadControl)
        );
        assert_eq!(
            parse_header(&[0x89, 126, 0, 200], false, 1000),
            Err(Error::BadControl)
        );
        assert_eq!(parse_header(&[0x81, 11], false, 10), Err(Error::TooBig));
        assert_eq!(
            parse_header(&[0x81, 0x81, 0, 0, 0, 0], false, 10),
            Err(Error::Mask)
        );
        assert_eq!(
            parse_header(
                &[0x82, 127, 255, 255, 255, 255, 255, 255, 255, 255],
                false,
                1 << 20
            ),
            Err(Error::TooBig)
        );
    }
}
