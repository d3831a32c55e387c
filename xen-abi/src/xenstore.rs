//! The xenstore wire protocol (`io/xs_wire.h`).
//!
//! A xenstore client and the store daemon exchange messages, each a [`XsdSockmsg`] header followed
//! by `len` bytes of payload (generally NUL-terminated strings). A guest reaches the daemon through
//! one shared page, [`XenstoreDomainInterface`], holding two 1024-byte byte rings: requests flow
//! in `req`, and replies and unsolicited watch events flow back in `rsp`. A Linux dom0 process
//! speaks the same messages over the `/dev/xen/xenbus` character device or the daemon's socket.
//!
//! Errors are returned as an [`XsMsgType::Error`] message whose payload is the errno's *name*
//! (`"ENOENT\0"`), for portability between systems whose errno numbers differ; [`XsErrno`] and
//! [`XSD_ERRORS`] list the names.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The header of every xenstore message (`struct xsd_sockmsg`), in the byte order of the machine
/// (little-endian on x86).
#[doc(alias = "xsd_sockmsg")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XsdSockmsg {
    /// The message type (C `type`), one of [`XsMsgType`] as a raw number.
    #[doc(alias = "type")]
    pub msg_type: u32,
    /// Request identifier chosen by the client and echoed in the daemon's reply; 0 in watch events.
    pub req_id: u32,
    /// Transaction id, or 0 when the request is not part of a transaction.
    pub tx_id: u32,
    /// Length of the payload that follows the header.
    pub len: u32,
}

/// Size of [`XsdSockmsg`] on the wire.
pub const XSD_SOCKMSG_SIZE: usize = size_of::<XsdSockmsg>();

/// Message types (`enum xsd_sockmsg_type`).
///
/// The header carries the type as a raw `u32`; [`XsMsgType::from_u32`] (or `TryFrom<u32>`) is the
/// checked conversion, rejecting the removed `XS_RESTRICT` (20) and anything at or past
/// [`XS_TYPE_COUNT`].
#[doc(alias = "xsd_sockmsg_type")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XsMsgType {
    /// Daemon-specific control request (`XS_CONTROL`, formerly `XS_DEBUG`).
    #[doc(alias = "XS_CONTROL")]
    #[doc(alias = "XS_DEBUG")]
    Control = 0,
    /// List the children of a node.
    #[doc(alias = "XS_DIRECTORY")]
    Directory = 1,
    /// Read the value of a node.
    #[doc(alias = "XS_READ")]
    Read = 2,
    /// Read the permissions of a node.
    #[doc(alias = "XS_GET_PERMS")]
    GetPerms = 3,
    /// Register a watch on a path with a token.
    #[doc(alias = "XS_WATCH")]
    Watch = 4,
    /// Remove a watch.
    #[doc(alias = "XS_UNWATCH")]
    Unwatch = 5,
    /// Start a transaction; the reply is its id in decimal.
    #[doc(alias = "XS_TRANSACTION_START")]
    TransactionStart = 6,
    /// Commit (`"T"`) or abort (`"F"`) a transaction.
    #[doc(alias = "XS_TRANSACTION_END")]
    TransactionEnd = 7,
    /// Introduce a domain to the daemon (toolstack only).
    #[doc(alias = "XS_INTRODUCE")]
    Introduce = 8,
    /// Release a domain (toolstack only).
    #[doc(alias = "XS_RELEASE")]
    Release = 9,
    /// Ask for a domain's home path (`/local/domain/<domid>`).
    #[doc(alias = "XS_GET_DOMAIN_PATH")]
    GetDomainPath = 10,
    /// Write the value of a node, creating it if needed.
    #[doc(alias = "XS_WRITE")]
    Write = 11,
    /// Create a node with an empty value.
    #[doc(alias = "XS_MKDIR")]
    Mkdir = 12,
    /// Remove a node and its children.
    #[doc(alias = "XS_RM")]
    Rm = 13,
    /// Set the permissions of a node.
    #[doc(alias = "XS_SET_PERMS")]
    SetPerms = 14,
    /// A watch fired (daemon to client, unsolicited): payload `path\0token\0`.
    #[doc(alias = "XS_WATCH_EVENT")]
    WatchEvent = 15,
    /// An error reply: payload is the errno name, NUL-terminated.
    #[doc(alias = "XS_ERROR")]
    Error = 16,
    /// Ask whether a domain was introduced (toolstack only).
    #[doc(alias = "XS_IS_DOMAIN_INTRODUCED")]
    IsDomainIntroduced = 17,
    /// Resume a domain's connection (toolstack only).
    #[doc(alias = "XS_RESUME")]
    Resume = 18,
    /// Make a domain the target of another (toolstack only).
    #[doc(alias = "XS_SET_TARGET")]
    SetTarget = 19,
    /// Drop every watch and transaction of the connection.
    #[doc(alias = "XS_RESET_WATCHES")]
    ResetWatches = 21,
    /// List a part of a large directory.
    #[doc(alias = "XS_DIRECTORY_PART")]
    DirectoryPart = 22,
}

/// The old name of [`XsMsgType::Control`].
pub const XS_DEBUG: XsMsgType = XsMsgType::Control;

/// One past the largest valid message type (`XS_TYPE_COUNT`).
pub const XS_TYPE_COUNT: u32 = 23;

/// A message type guaranteed never to be valid (`XS_INVALID`).
pub const XS_INVALID: u32 = 0xffff;

/// A raw message type that names no [`XsMsgType`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownMsgType(pub u32);

impl XsMsgType {
    /// Every valid message type, in numeric order.
    pub const ALL: [XsMsgType; 22] = [
        XsMsgType::Control,
        XsMsgType::Directory,
        XsMsgType::Read,
        XsMsgType::GetPerms,
        XsMsgType::Watch,
        XsMsgType::Unwatch,
        XsMsgType::TransactionStart,
        XsMsgType::TransactionEnd,
        XsMsgType::Introduce,
        XsMsgType::Release,
        XsMsgType::GetDomainPath,
        XsMsgType::Write,
        XsMsgType::Mkdir,
        XsMsgType::Rm,
        XsMsgType::SetPerms,
        XsMsgType::WatchEvent,
        XsMsgType::Error,
        XsMsgType::IsDomainIntroduced,
        XsMsgType::Resume,
        XsMsgType::SetTarget,
        XsMsgType::ResetWatches,
        XsMsgType::DirectoryPart,
    ];

    /// The checked conversion from the raw header field.
    pub const fn from_u32(raw: u32) -> Option<XsMsgType> {
        Some(match raw {
            0 => XsMsgType::Control,
            1 => XsMsgType::Directory,
            2 => XsMsgType::Read,
            3 => XsMsgType::GetPerms,
            4 => XsMsgType::Watch,
            5 => XsMsgType::Unwatch,
            6 => XsMsgType::TransactionStart,
            7 => XsMsgType::TransactionEnd,
            8 => XsMsgType::Introduce,
            9 => XsMsgType::Release,
            10 => XsMsgType::GetDomainPath,
            11 => XsMsgType::Write,
            12 => XsMsgType::Mkdir,
            13 => XsMsgType::Rm,
            14 => XsMsgType::SetPerms,
            15 => XsMsgType::WatchEvent,
            16 => XsMsgType::Error,
            17 => XsMsgType::IsDomainIntroduced,
            18 => XsMsgType::Resume,
            19 => XsMsgType::SetTarget,
            21 => XsMsgType::ResetWatches,
            22 => XsMsgType::DirectoryPart,
            _ => return None,
        })
    }

    /// The raw value for the header.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// The C name, e.g. `"XS_READ"`, for logs.
    pub const fn c_name(self) -> &'static str {
        match self {
            XsMsgType::Control => "XS_CONTROL",
            XsMsgType::Directory => "XS_DIRECTORY",
            XsMsgType::Read => "XS_READ",
            XsMsgType::GetPerms => "XS_GET_PERMS",
            XsMsgType::Watch => "XS_WATCH",
            XsMsgType::Unwatch => "XS_UNWATCH",
            XsMsgType::TransactionStart => "XS_TRANSACTION_START",
            XsMsgType::TransactionEnd => "XS_TRANSACTION_END",
            XsMsgType::Introduce => "XS_INTRODUCE",
            XsMsgType::Release => "XS_RELEASE",
            XsMsgType::GetDomainPath => "XS_GET_DOMAIN_PATH",
            XsMsgType::Write => "XS_WRITE",
            XsMsgType::Mkdir => "XS_MKDIR",
            XsMsgType::Rm => "XS_RM",
            XsMsgType::SetPerms => "XS_SET_PERMS",
            XsMsgType::WatchEvent => "XS_WATCH_EVENT",
            XsMsgType::Error => "XS_ERROR",
            XsMsgType::IsDomainIntroduced => "XS_IS_DOMAIN_INTRODUCED",
            XsMsgType::Resume => "XS_RESUME",
            XsMsgType::SetTarget => "XS_SET_TARGET",
            XsMsgType::ResetWatches => "XS_RESET_WATCHES",
            XsMsgType::DirectoryPart => "XS_DIRECTORY_PART",
        }
    }
}

impl TryFrom<u32> for XsMsgType {
    type Error = UnknownMsgType;

    fn try_from(raw: u32) -> Result<Self, UnknownMsgType> {
        XsMsgType::from_u32(raw).ok_or(UnknownMsgType(raw))
    }
}

impl From<XsMsgType> for u32 {
    fn from(t: XsMsgType) -> u32 {
        t as u32
    }
}

/// Index of the watched path among the NUL-separated strings of an [`XsMsgType::WatchEvent`]
/// payload (`XS_WATCH_PATH`).
pub const XS_WATCH_PATH: usize = 0;

/// Index of the token among the NUL-separated strings of an [`XsMsgType::WatchEvent`] payload
/// (`XS_WATCH_TOKEN`).
pub const XS_WATCH_TOKEN: usize = 1;

/// The size in bytes of each of the two byte rings of the shared page (`XENSTORE_RING_SIZE`).
pub const XENSTORE_RING_SIZE: usize = 1024;

/// A free-running byte index of a xenstore ring (`XENSTORE_RING_IDX`).
#[doc(alias = "XENSTORE_RING_IDX")]
pub type XenstoreRingIdx = u32;

/// The byte of the ring a free-running index designates (`MASK_XENSTORE_IDX`).
///
/// Indices only ever grow (wrapping at 2^32); `prod - cons` (wrapping) is the number of bytes in
/// flight and is at most [`XENSTORE_RING_SIZE`] in a well-behaved ring. A larger difference is a
/// protocol violation by whoever wrote the index.
#[doc(alias = "MASK_XENSTORE_IDX")]
pub const fn mask_xenstore_idx(idx: XenstoreRingIdx) -> usize {
    idx as usize & (XENSTORE_RING_SIZE - 1)
}

/// The shared xenstore page of a domain (`struct xenstore_domain_interface`).
///
/// The guest produces requests into `req` at `req_prod` and consumes replies from `rsp` at
/// `rsp_cons`; the daemon does the opposite. Index fields are shared with the peer and must be
/// accessed atomically (see [`interface_offsets`]).
#[doc(alias = "xenstore_domain_interface")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct XenstoreDomainInterface {
    /// Requests to the daemon.
    pub req: [u8; XENSTORE_RING_SIZE],
    /// Replies and watch events from the daemon.
    pub rsp: [u8; XENSTORE_RING_SIZE],
    /// Bytes of `req` the daemon has consumed.
    pub req_cons: XenstoreRingIdx,
    /// Bytes of `req` the guest has produced.
    pub req_prod: XenstoreRingIdx,
    /// Bytes of `rsp` the guest has consumed.
    pub rsp_cons: XenstoreRingIdx,
    /// Bytes of `rsp` the daemon has produced.
    pub rsp_prod: XenstoreRingIdx,
    /// Features the daemon supports (`XENSTORE_SERVER_FEATURE_*` bits).
    pub server_features: u32,
    /// Connection state (`XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`).
    pub connection: u32,
    /// Error the daemon detected (`XENSTORE_ERROR_*`), if it has the error feature.
    pub error: u32,
}

/// Byte offsets of the fields of [`XenstoreDomainInterface`], for code that accesses the shared
/// page through raw memory (indices must be read and written atomically).
pub mod interface_offsets {
    use super::XenstoreDomainInterface as I;
    /// Offset of the request ring.
    pub const REQ: usize = core::mem::offset_of!(I, req);
    /// Offset of the reply ring.
    pub const RSP: usize = core::mem::offset_of!(I, rsp);
    /// Offset of `req_cons`.
    pub const REQ_CONS: usize = core::mem::offset_of!(I, req_cons);
    /// Offset of `req_prod`.
    pub const REQ_PROD: usize = core::mem::offset_of!(I, req_prod);
    /// Offset of `rsp_cons`.
    pub const RSP_CONS: usize = core::mem::offset_of!(I, rsp_cons);
    /// Offset of `rsp_prod`.
    pub const RSP_PROD: usize = core::mem::offset_of!(I, rsp_prod);
    /// Offset of `server_features`.
    pub const SERVER_FEATURES: usize = core::mem::offset_of!(I, server_features);
    /// Offset of `connection`.
    pub const CONNECTION: usize = core::mem::offset_of!(I, connection);
    /// Offset of `error`.
    pub const ERROR: usize = core::mem::offset_of!(I, error);
}

/// The largest payload of one message (`XENSTORE_PAYLOAD_MAX`). A message claiming more is a
/// protocol violation after which the byte stream cannot be trusted.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;

/// The longest absolute path the daemon accepts (`XENSTORE_ABS_PATH_MAX`).
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;

/// The longest relative path the daemon accepts (`XENSTORE_REL_PATH_MAX`).
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// Server feature bit: the ring can be reconnected through the `connection` field.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;

/// Server feature bit: the daemon reports errors in the `error` field.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;

/// `connection` value: the steady state.
pub const XENSTORE_CONNECTED: u32 = 0;

/// `connection` value: a reconnection is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;

/// `error` value: no error.
pub const XENSTORE_ERROR_NONE: u32 = 0;

/// `error` value: a communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;

/// `error` value: an invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;

/// `error` value: a protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// An error the daemon can report, by the errno name it puts in an [`XsMsgType::Error`] payload
/// (`xsd_errors`).
///
/// The discriminants follow the order of the C table, which only ever grows at its end.
#[doc(alias = "xsd_errors")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsErrno {
    /// `EINVAL`: invalid argument (also what daemons say for malformed requests).
    #[doc(alias = "EINVAL")]
    Einval,
    /// `EACCES`: permission denied.
    #[doc(alias = "EACCES")]
    Eacces,
    /// `EEXIST`: the node exists.
    #[doc(alias = "EEXIST")]
    Eexist,
    /// `EISDIR`: the node is a directory.
    #[doc(alias = "EISDIR")]
    Eisdir,
    /// `ENOENT`: no such node, or no such transaction.
    #[doc(alias = "ENOENT")]
    Enoent,
    /// `ENOMEM`: the daemon is out of memory.
    #[doc(alias = "ENOMEM")]
    Enomem,
    /// `ENOSPC`: a quota was exceeded.
    #[doc(alias = "ENOSPC")]
    Enospc,
    /// `EIO`: input/output error.
    #[doc(alias = "EIO")]
    Eio,
    /// `ENOTEMPTY`: the directory is not empty.
    #[doc(alias = "ENOTEMPTY")]
    Enotempty,
    /// `ENOSYS`: the request type is not implemented.
    #[doc(alias = "ENOSYS")]
    Enosys,
    /// `EROFS`: the store is read-only.
    #[doc(alias = "EROFS")]
    Erofs,
    /// `EBUSY`: the daemon is busy.
    #[doc(alias = "EBUSY")]
    Ebusy,
    /// `EAGAIN`: try again; at transaction end, the transaction conflicted and must be redone.
    #[doc(alias = "EAGAIN")]
    Eagain,
    /// `EISCONN`: already connected (the domain was already introduced).
    #[doc(alias = "EISCONN")]
    Eisconn,
    /// `E2BIG`: the request or the resulting reply is too large.
    #[doc(alias = "E2BIG")]
    E2big,
    /// `EPERM`: operation not permitted.
    #[doc(alias = "EPERM")]
    Eperm,
}

/// The error table of `xs_wire.h` (`xsd_errors`), as (errno number, name) pairs in the C order.
///
/// The names are what travels on the wire. The numbers are Linux's errno values, which is what the
/// C table holds when compiled on Linux; other systems (the Windows CRT among them) number some of
/// these differently, so code should match on [`XsErrno`] rather than on the numbers.
#[doc(alias = "xsd_errors")]
pub const XSD_ERRORS: [(i32, &str); 16] = [
    (22, "EINVAL"),
    (13, "EACCES"),
    (17, "EEXIST"),
    (21, "EISDIR"),
    (2, "ENOENT"),
    (12, "ENOMEM"),
    (28, "ENOSPC"),
    (5, "EIO"),
    (39, "ENOTEMPTY"),
    (38, "ENOSYS"),
    (30, "EROFS"),
    (16, "EBUSY"),
    (11, "EAGAIN"),
    (106, "EISCONN"),
    (7, "E2BIG"),
    (1, "EPERM"),
];

impl XsErrno {
    /// Every error, in the order of [`XSD_ERRORS`].
    pub const ALL: [XsErrno; 16] = [
        XsErrno::Einval,
        XsErrno::Eacces,
        XsErrno::Eexist,
        XsErrno::Eisdir,
        XsErrno::Enoent,
        XsErrno::Enomem,
        XsErrno::Enospc,
        XsErrno::Eio,
        XsErrno::Enotempty,
        XsErrno::Enosys,
        XsErrno::Erofs,
        XsErrno::Ebusy,
        XsErrno::Eagain,
        XsErrno::Eisconn,
        XsErrno::E2big,
        XsErrno::Eperm,
    ];

    /// The name sent on the wire, e.g. `"ENOENT"` (without the NUL).
    pub const fn name(self) -> &'static str {
        XSD_ERRORS[self as usize].1
    }

    /// Linux's errno number for this error (see [`XSD_ERRORS`]).
    pub const fn linux_errno(self) -> i32 {
        XSD_ERRORS[self as usize].0
    }

    /// Looks an error up by its wire name (without the NUL); `None` for a name not in the table.
    pub fn from_name(name: &[u8]) -> Option<XsErrno> {
        XsErrno::ALL
            .iter()
            .copied()
            .find(|e| e.name().as_bytes() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_round_trip() {
        for t in XsMsgType::ALL {
            assert_eq!(XsMsgType::from_u32(t.as_u32()), Some(t));
            assert_eq!(XsMsgType::try_from(u32::from(t)), Ok(t));
            assert!(t.c_name().starts_with("XS_"));
        }
        assert_eq!(XsMsgType::from_u32(20), None);
        assert_eq!(
            XsMsgType::try_from(XS_TYPE_COUNT),
            Err(UnknownMsgType(XS_TYPE_COUNT))
        );
        assert_eq!(XsMsgType::from_u32(XS_INVALID), None);
        assert_eq!(XS_DEBUG, XsMsgType::Control);
    }

    #[test]
    fn error_table_and_enum_agree() {
        for (i, e) in XsErrno::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
            assert_eq!(XsErrno::from_name(e.name().as_bytes()), Some(*e));
            assert_eq!(e.linux_errno(), XSD_ERRORS[i].0);
        }
        assert_eq!(XsErrno::from_name(b"EAGAIN"), Some(XsErrno::Eagain));
        assert_eq!(XsErrno::from_name(b"EAGAIN\0"), None);
        assert_eq!(XsErrno::from_name(b"ENOPE"), None);
    }

    #[test]
    fn index_mask_wraps() {
        assert_eq!(mask_xenstore_idx(0), 0);
        assert_eq!(mask_xenstore_idx(1023), 1023);
        assert_eq!(mask_xenstore_idx(1024), 0);
        assert_eq!(mask_xenstore_idx(u32::MAX), 1023);
    }

    #[test]
    fn interface_is_2076_bytes() {
        assert_eq!(size_of::<XenstoreDomainInterface>(), 2076);
        assert_eq!(interface_offsets::REQ_CONS, 2048);
        assert_eq!(interface_offsets::ERROR, 2072);
        assert_eq!(XSD_SOCKMSG_SIZE, 16);
    }
}
