//! Framing: encoding requests into caller buffers and parsing the reply stream incrementally.

use xen_abi::xenstore::{
    XsErrno, XsMsgType, XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX,
    XSD_SOCKMSG_SIZE, XS_WATCH_PATH, XS_WATCH_TOKEN,
};

use super::perms::{Perm, PERM_TEXT_MAX};
use super::{LimitError, ProtocolError, XsError};

/// The size of a message header.
pub const HEADER_SIZE: usize = XSD_SOCKMSG_SIZE;

/// The size of the largest message: a header and `XENSTORE_PAYLOAD_MAX` bytes of payload.
pub const MAX_MESSAGE: usize = HEADER_SIZE + XENSTORE_PAYLOAD_MAX;

/// One piece of a request payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// A string: must not contain NUL; a NUL terminator is appended.
    Str(&'a [u8]),
    /// Bytes sent verbatim (a value being written, which may hold anything).
    Bytes(&'a [u8]),
    /// Permission entries, each formatted (`"r0"`) and NUL-terminated.
    Perms(&'a [Perm]),
}

impl Arg<'_> {
    fn encoded_len(&self) -> usize {
        match self {
            Arg::Str(s) => s.len() + 1,
            Arg::Bytes(b) => b.len(),
            Arg::Perms(perms) => perms
                .iter()
                .map(|p| p.format(&mut [0; PERM_TEXT_MAX]).len() + 1)
                .sum(),
        }
    }
}

/// Checks a path against what the store accepts: not empty, no NUL, and at most
/// `XENSTORE_ABS_PATH_MAX` bytes when absolute (starting with `/`), `XENSTORE_REL_PATH_MAX`
/// otherwise (relative paths are resolved under the domain's home, `/local/domain/<domid>`).
pub fn check_path(path: &[u8]) -> Result<(), XsError> {
    if path.is_empty() {
        return Err(LimitError::EmptyPath.into());
    }
    if path.contains(&0) {
        return Err(LimitError::NulInArgument.into());
    }
    let max = if path[0] == b'/' {
        XENSTORE_ABS_PATH_MAX
    } else {
        XENSTORE_REL_PATH_MAX
    };
    if path.len() > max {
        return Err(LimitError::PathTooLong {
            len: path.len(),
            max,
        }
        .into());
    }
    Ok(())
}

/// The payload length `args` encode to.
pub fn payload_len(args: &[Arg<'_>]) -> usize {
    args.iter().map(Arg::encoded_len).sum()
}

/// Encodes one request message (header and payload) into `out` and returns its length.
///
/// Fails with [`LimitError::NulInArgument`] for a string argument holding a NUL,
/// [`LimitError::PayloadTooLong`] past `XENSTORE_PAYLOAD_MAX`, and
/// [`LimitError::BufferTooSmall`] when `out` cannot hold the message; `out` is unspecified then.
/// Paths are not checked here (see [`check_path`]).
pub fn encode_request(
    out: &mut [u8],
    msg_type: XsMsgType,
    req_id: u32,
    tx_id: u32,
    args: &[Arg<'_>],
) -> Result<usize, XsError> {
    for arg in args {
        if let Arg::Str(s) = arg {
            if s.contains(&0) {
                return Err(LimitError::NulInArgument.into());
            }
        }
    }
    let len = payload_len(args);
    if len > XENSTORE_PAYLOAD_MAX {
        return Err(LimitError::PayloadTooLong { len }.into());
    }
    let total = HEADER_SIZE + len;
    let Some(out) = out.get_mut(..total) else {
        return Err(LimitError::BufferTooSmall { needed: total }.into());
    };
    // len <= 4096 fits in u32.
    let header = FrameHeader {
        raw_type: msg_type.as_u32(),
        req_id,
        tx_id,
        len: len as u32,
    };
    out[..HEADER_SIZE].copy_from_slice(&header.to_bytes());
    let mut at = HEADER_SIZE;
    for arg in args {
        match arg {
            Arg::Str(s) => {
                out[at..at + s.len()].copy_from_slice(s);
                out[at + s.len()] = 0;
                at += s.len() + 1;
            }
            Arg::Bytes(b) => {
                out[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            }
            Arg::Perms(perms) => {
                for p in *perms {
                    let mut text = [0; PERM_TEXT_MAX];
                    let text = p.format(&mut text);
                    out[at..at + text.len()].copy_from_slice(text);
                    out[at + text.len()] = 0;
                    at += text.len() + 1;
                }
            }
        }
    }
    Ok(total)
}

/// A decoded message header ([`xsd_sockmsg`](xen_abi::xenstore::XsdSockmsg)), fields in host byte
/// order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The raw message type.
    pub raw_type: u32,
    /// The request id.
    pub req_id: u32,
    /// The transaction id.
    pub tx_id: u32,
    /// The payload length.
    pub len: u32,
}

impl FrameHeader {
    /// Decodes a header.
    pub fn from_bytes(b: &[u8; HEADER_SIZE]) -> FrameHeader {
        let word = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        FrameHeader {
            raw_type: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }

    /// Encodes a header.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0; HEADER_SIZE];
        b[0..4].copy_from_slice(&self.raw_type.to_ne_bytes());
        b[4..8].copy_from_slice(&self.req_id.to_ne_bytes());
        b[8..12].copy_from_slice(&self.tx_id.to_ne_bytes());
        b[12..16].copy_from_slice(&self.len.to_ne_bytes());
        b
    }

    /// The message type, if the number names one.
    pub fn msg_type(&self) -> Option<XsMsgType> {
        XsMsgType::from_u32(self.raw_type)
    }
}

/// A complete message held by a [`ReplyParser`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header.
    pub header: FrameHeader,
    /// The payload, exactly `header.len` bytes.
    pub payload: &'a [u8],
}

/// An incremental parser of the reply stream, tolerant of any fragmentation.
///
/// Bytes go in either through [`push`](Self::push) or by filling [`spare`](Self::spare) and
/// calling [`advance`](Self::advance) (which lets a transport read straight into the parser).
/// The parser never takes a byte past the end of the current message, so no input is ever held
/// back. Once a message is complete, [`frame`](Self::frame) returns it until [`next`](Self::next)
/// starts the following one.
///
/// A header whose `len` exceeds `XENSTORE_PAYLOAD_MAX` is rejected as soon as the header is
/// complete, with [`ProtocolError::PayloadTooLong`]; the parser then refuses input (the stream
/// cannot be resynchronised) until [`reset`](Self::reset). Everything else about a message (its
/// type, its payload) is for the caller to judge.
#[derive(Clone)]
pub struct ReplyParser {
    header: [u8; HEADER_SIZE],
    payload: [u8; XENSTORE_PAYLOAD_MAX],
    /// Bytes of the current message received so far (header then payload).
    have: usize,
    /// The payload length, once the header is complete and valid.
    len: Option<usize>,
    poisoned: Option<ProtocolError>,
}

impl core::fmt::Debug for ReplyParser {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplyParser")
            .field("have", &self.have)
            .field("len", &self.len)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Default for ReplyParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplyParser {
    /// An empty parser, expecting a header.
    pub const fn new() -> Self {
        ReplyParser {
            header: [0; HEADER_SIZE],
            payload: [0; XENSTORE_PAYLOAD_MAX],
            have: 0,
            len: None,
            poisoned: None,
        }
    }

    /// Forgets everything, including a fatal error.
    pub fn reset(&mut self) {
        self.have = 0;
        self.len = None;
        self.poisoned = None;
    }

    /// Starts the next message after a complete one (a no-op mid-message).
    pub fn next(&mut self) {
        if self.is_complete() {
            self.have = 0;
            self.len = None;
        }
    }

    /// Whether no byte of a message has been received yet.
    pub fn is_idle(&self) -> bool {
        self.have == 0
    }

    /// Whether a whole message has been received.
    pub fn is_complete(&self) -> bool {
        matches!(self.len, Some(len) if self.have == HEADER_SIZE + len)
    }

    /// The fatal error the parser stopped on, if any.
    pub fn error(&self) -> Option<ProtocolError> {
        self.poisoned
    }

    /// Where the next bytes of the current message go: the rest of the header, or the rest of
    /// the payload. Empty when the message is complete or the parser is poisoned.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.poisoned.is_some() {
            return &mut [];
        }
        match self.len {
            None => &mut self.header[self.have..],
            Some(len) => &mut self.payload[self.have - HEADER_SIZE..len],
        }
    }

    /// Accounts for `n` bytes written into [`spare`](Self::spare) (at most its length).
    pub fn advance(&mut self, n: usize) -> Result<(), ProtocolError> {
        if let Some(e) = self.poisoned {
            return Err(e);
        }
        let room = self.spare().len();
        self.have += n.min(room);
        if self.len.is_none() && self.have == HEADER_SIZE {
            let header = FrameHeader::from_bytes(&self.header);
            if header.len as usize > XENSTORE_PAYLOAD_MAX {
                let e = ProtocolError::PayloadTooLong { len: header.len };
                self.poisoned = Some(e);
                return Err(e);
            }
            self.len = Some(header.len as usize);
        }
        Ok(())
    }

    /// Takes bytes of `input` up to the end of the current message and returns how many were
    /// taken; the rest belongs to the following message (call [`next`](Self::next) once this
    /// one is dealt with, then push the rest).
    pub fn push(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let mut taken = 0;
        loop {
            let spare = self.spare();
            let n = spare.len().min(input.len() - taken);
            if n == 0 {
                if let Some(e) = self.poisoned {
                    return Err(e);
                }
                return Ok(taken);
            }
            spare[..n].copy_from_slice(&input[taken..taken + n]);
            taken += n;
            self.advance(n)?;
        }
    }

    /// The complete message, if there is one.
    pub fn frame(&self) -> Option<Frame<'_>> {
        if !self.is_complete() {
            return None;
        }
        Some(Frame {
            header: FrameHeader::from_bytes(&self.header),
            payload: &self.payload[..self.len.unwrap_or(0)],
        })
    }
}

/// A NUL-separated list of strings (a directory listing, a permission list, a watch event), each
/// string terminated by a NUL. Validated on construction; iterating allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NulList<'a> {
    bytes: &'a [u8],
}

impl<'a> NulList<'a> {
    /// Validates `bytes`: empty, or ending in NUL.
    pub fn new(bytes: &'a [u8]) -> Result<Self, ProtocolError> {
        match bytes.last() {
            None | Some(0) => Ok(NulList { bytes }),
            Some(_) => Err(ProtocolError::MissingNul),
        }
    }

    /// The raw bytes, terminators included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether the list holds no string.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The number of strings.
    pub fn count(&self) -> usize {
        self.bytes.iter().filter(|&&b| b == 0).count()
    }

    /// The strings, without their terminators.
    pub fn iter(&self) -> NulListIter<'a> {
        NulListIter { rest: self.bytes }
    }
}

impl<'a> IntoIterator for NulList<'a> {
    type Item = &'a [u8];
    type IntoIter = NulListIter<'a>;
    fn into_iter(self) -> NulListIter<'a> {
        self.iter()
    }
}

/// Iterator over the strings of a [`NulList`].
#[derive(Clone, Debug)]
pub struct NulListIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NulListIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let end = self.rest.iter().position(|&b| b == 0)?;
        let item = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        Some(item)
    }
}

/// The single NUL-terminated string a payload must consist of (an error name, `"OK"`, a
/// transaction id, a domain path).
pub fn single_string(payload: &[u8]) -> Result<&[u8], ProtocolError> {
    match payload.split_last() {
        Some((0, s)) if !s.contains(&0) => Ok(s),
        Some((0, _)) => Err(ProtocolError::MalformedPayload),
        _ => Err(ProtocolError::MissingNul),
    }
}

/// Decodes an `XS_ERROR` payload (`"ENOENT\0"`).
pub fn parse_error_reply(payload: &[u8]) -> Result<XsErrno, ProtocolError> {
    let name = single_string(payload)?;
    XsErrno::from_name(name).ok_or(ProtocolError::UnknownErrorName)
}

/// Checks an acknowledgement payload (`"OK\0"`).
pub fn parse_ack(payload: &[u8]) -> Result<(), ProtocolError> {
    if single_string(payload)? == b"OK" {
        Ok(())
    } else {
        Err(ProtocolError::MalformedPayload)
    }
}

/// Decodes a decimal `u32` (no sign, no spaces, at least one digit).
pub fn parse_u32(text: &[u8]) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    let mut value: u32 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(value)
}

/// Formats `value` in decimal into `buf`, returning the digits.
pub fn format_u32(value: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut v = value;
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Splits an `XS_WATCH_EVENT` payload into (path, token): at least two NUL-terminated strings.
pub fn parse_watch_event(payload: &[u8]) -> Result<(&[u8], &[u8]), ProtocolError> {
    let list = NulList::new(payload)?;
    match (
        list.iter().nth(XS_WATCH_PATH),
        list.iter().nth(XS_WATCH_TOKEN),
    ) {
        (Some(path), Some(token)) if !path.is_empty() => Ok((path, token)),
        _ => Err(ProtocolError::MalformedPayload),
    }
}
