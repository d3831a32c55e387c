//! Version and size negotiation, on both sides of `IRP_MN_QUERY_INTERFACE`.
//!
//! The child asks for one interface type, version and size (the buffer it hands down). The
//! provider ([`provider_accepts`]) fills the table only when the type is this interface, the
//! version is one it fills and the buffer holds that version's table; otherwise it refuses with
//! a [`QueryRefusal`] (and the IRP's status, [`QueryRefusal::ntstatus`]). The child then checks
//! what came back ([`consumer_accepts`]) before calling anything: the version it asked for,
//! exactly that version's size, a context and every function present; otherwise
//! [`TableRefusal`]. Both reasons print a line fit for the log.
//!
//! # Version policy
//! A version's table never changes. A new version appends functions at the end (so a newer
//! table starts with every older one); a function whose meaning or signature changes gets a
//! new slot in a new version. A provider fills any version in
//! [`MIN_SUPPORTED_VERSION`]..=[`MAX_SUPPORTED_VERSION`] with exactly that version's size, and
//! a child asks for the version it was built against.

#![forbid(unsafe_code)]

use core::fmt;

use crate::abi::{
    Guid, XenBusInterfaceV1, MAX_SUPPORTED_VERSION, MIN_SUPPORTED_VERSION, XEN_BUS_INTERFACE_GUID,
    XEN_BUS_INTERFACE_V1_SIZE, XEN_BUS_INTERFACE_VERSION_1,
};

/// `STATUS_NOT_SUPPORTED`: what a bus leaves in an IRP_MN_QUERY_INTERFACE it cannot answer.
pub const NTSTATUS_NOT_SUPPORTED: i32 = 0xC000_00BB_u32 as i32;
/// `STATUS_BUFFER_TOO_SMALL`.
pub const NTSTATUS_BUFFER_TOO_SMALL: i32 = 0xC000_0023_u32 as i32;
/// `STATUS_INVALID_PARAMETER`.
pub const NTSTATUS_INVALID_PARAMETER: i32 = 0xC000_000D_u32 as i32;

/// What an IRP_MN_QUERY_INTERFACE asks for (`Parameters.QueryInterface`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryRequest {
    /// `InterfaceType`.
    pub interface_type: Guid,
    /// `Size`: bytes of the buffer the child provides.
    pub size: u16,
    /// `Version`.
    pub version: u16,
    /// Whether `Interface` points anywhere.
    pub has_buffer: bool,
}

impl QueryRequest {
    /// The request a child built against version 1 sends.
    pub const V1: QueryRequest = QueryRequest {
        interface_type: XEN_BUS_INTERFACE_GUID,
        size: XEN_BUS_INTERFACE_V1_SIZE,
        version: XEN_BUS_INTERFACE_VERSION_1,
        has_buffer: true,
    };
}

/// Why the provider did not fill the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryRefusal {
    /// Another interface type: not ours to answer.
    OtherInterface(Guid),
    /// Older than the oldest version filled.
    VersionTooOld {
        /// The version asked for.
        requested: u16,
        /// The oldest filled.
        oldest: u16,
    },
    /// Newer than the newest version filled.
    VersionTooNew {
        /// The version asked for.
        requested: u16,
        /// The newest filled.
        newest: u16,
    },
    /// The buffer is smaller than the version's table.
    BufferTooSmall {
        /// The buffer's size.
        size: u16,
        /// The table's size.
        needed: u16,
    },
    /// No buffer was given.
    NoBuffer,
}

impl QueryRefusal {
    /// The status the bus completes the IRP with (an unknown interface type leaves the IRP's
    /// status as it was, `STATUS_NOT_SUPPORTED` for a PDO).
    pub const fn ntstatus(self) -> i32 {
        match self {
            QueryRefusal::OtherInterface(_)
            | QueryRefusal::VersionTooOld { .. }
            | QueryRefusal::VersionTooNew { .. } => NTSTATUS_NOT_SUPPORTED,
            QueryRefusal::BufferTooSmall { .. } => NTSTATUS_BUFFER_TOO_SMALL,
            QueryRefusal::NoBuffer => NTSTATUS_INVALID_PARAMETER,
        }
    }
}

impl fmt::Display for QueryRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryRefusal::OtherInterface(g) => write!(
                f,
                "interface type {:08x}-{:04x}-{:04x}-… is not the Xen bus interface",
                g.data1, g.data2, g.data3
            ),
            QueryRefusal::VersionTooOld { requested, oldest } => write!(
                f,
                "bus interface version {requested} requested, the oldest supported is {oldest}"
            ),
            QueryRefusal::VersionTooNew { requested, newest } => write!(
                f,
                "bus interface version {requested} requested, the newest supported is {newest}"
            ),
            QueryRefusal::BufferTooSmall { size, needed } => write!(
                f,
                "bus interface buffer of {size} bytes given, the table needs {needed}"
            ),
            QueryRefusal::NoBuffer => f.write_str("bus interface query without a buffer"),
        }
    }
}

/// Bytes of the table of `version`, if this crate knows it.
pub const fn table_size(version: u16) -> Option<u16> {
    match version {
        XEN_BUS_INTERFACE_VERSION_1 => Some(XEN_BUS_INTERFACE_V1_SIZE),
        _ => None,
    }
}

/// The provider's decision: the version to fill, or why not.
pub fn provider_accepts(request: &QueryRequest) -> Result<u16, QueryRefusal> {
    if request.interface_type != XEN_BUS_INTERFACE_GUID {
        return Err(QueryRefusal::OtherInterface(request.interface_type));
    }
    if request.version < MIN_SUPPORTED_VERSION {
        return Err(QueryRefusal::VersionTooOld {
            requested: request.version,
            oldest: MIN_SUPPORTED_VERSION,
        });
    }
    if request.version > MAX_SUPPORTED_VERSION {
        return Err(QueryRefusal::VersionTooNew {
            requested: request.version,
            newest: MAX_SUPPORTED_VERSION,
        });
    }
    if !request.has_buffer {
        return Err(QueryRefusal::NoBuffer);
    }
    let needed = table_size(request.version).ok_or(QueryRefusal::VersionTooNew {
        requested: request.version,
        newest: MAX_SUPPORTED_VERSION,
    })?;
    if request.size < needed {
        return Err(QueryRefusal::BufferTooSmall {
            size: request.size,
            needed,
        });
    }
    Ok(request.version)
}

/// Why the child refuses the table it got back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableRefusal {
    /// The table's version is not the one asked for.
    VersionMismatch {
        /// The version asked for.
        requested: u16,
        /// The version in the table.
        found: u16,
    },
    /// The table's size is not its version's.
    SizeMismatch {
        /// The size in the table.
        found: u16,
        /// The version's size.
        expected: u16,
    },
    /// The table has no context.
    NoContext,
    /// A function pointer is missing.
    MissingFunction(&'static str),
}

impl fmt::Display for TableRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableRefusal::VersionMismatch { requested, found } => write!(
                f,
                "bus interface version {found} returned, version {requested} was requested"
            ),
            TableRefusal::SizeMismatch { found, expected } => write!(
                f,
                "bus interface table of {found} bytes returned, this version's is {expected}"
            ),
            TableRefusal::NoContext => f.write_str("bus interface table without a context"),
            TableRefusal::MissingFunction(name) => {
                write!(f, "bus interface table lacks function {name}")
            }
        }
    }
}

/// The child's check of a version 1 table the bus filled.
pub fn consumer_accepts(table: &XenBusInterfaceV1) -> Result<(), TableRefusal> {
    let header = &table.header;
    if header.version != XEN_BUS_INTERFACE_VERSION_1 {
        return Err(TableRefusal::VersionMismatch {
            requested: XEN_BUS_INTERFACE_VERSION_1,
            found: header.version,
        });
    }
    if header.size != XEN_BUS_INTERFACE_V1_SIZE {
        return Err(TableRefusal::SizeMismatch {
            found: header.size,
            expected: XEN_BUS_INTERFACE_V1_SIZE,
        });
    }
    if header.context.is_null() {
        return Err(TableRefusal::NoContext);
    }
    match table.first_missing_function() {
        Some(name) => Err(TableRefusal::MissingFunction(name)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn the_version_1_request_is_accepted() {
        assert_eq!(provider_accepts(&QueryRequest::V1), Ok(1));
        // A larger buffer is fine: the provider fills version 1's size.
        let big = QueryRequest {
            size: 4096,
            ..QueryRequest::V1
        };
        assert_eq!(provider_accepts(&big), Ok(1));
    }

    #[test]
    fn every_provider_refusal_has_its_reason_and_status() {
        let other = Guid {
            data1: 1,
            ..XEN_BUS_INTERFACE_GUID
        };
        let cases = [
            (
                QueryRequest {
                    interface_type: other,
                    ..QueryRequest::V1
                },
                QueryRefusal::OtherInterface(other),
                NTSTATUS_NOT_SUPPORTED,
            ),
            (
                QueryRequest {
                    version: 0,
                    ..QueryRequest::V1
                },
                QueryRefusal::VersionTooOld {
                    requested: 0,
                    oldest: 1,
                },
                NTSTATUS_NOT_SUPPORTED,
            ),
            (
                QueryRequest {
                    version: 2,
                    ..QueryRequest::V1
                },
                QueryRefusal::VersionTooNew {
                    requested: 2,
                    newest: 1,
                },
                NTSTATUS_NOT_SUPPORTED,
            ),
            (
                QueryRequest {
                    size: XEN_BUS_INTERFACE_V1_SIZE - 8,
                    ..QueryRequest::V1
                },
                QueryRefusal::BufferTooSmall {
                    size: 200,
                    needed: 208,
                },
                NTSTATUS_BUFFER_TOO_SMALL,
            ),
            (
                QueryRequest {
                    size: 32,
                    ..QueryRequest::V1
                },
                QueryRefusal::BufferTooSmall {
                    size: 32,
                    needed: 208,
                },
                NTSTATUS_BUFFER_TOO_SMALL,
            ),
            (
                QueryRequest {
                    has_buffer: false,
                    ..QueryRequest::V1
                },
                QueryRefusal::NoBuffer,
                NTSTATUS_INVALID_PARAMETER,
            ),
        ];
        for (request, refusal, status) in cases {
            assert_eq!(provider_accepts(&request), Err(refusal));
            assert_eq!(refusal.ntstatus(), status);
            assert!(!format!("{refusal}").is_empty());
        }
    }
}
