//! The SCSI passthrough ring protocol (`io/vscsiif.h`, pvSCSI).
//!
//! # Devices in xenstore
//! One pvSCSI frontend device (a *vhost*, `device/vscsi/<vhost>`) carries any number of SCSI
//! devices, each in a `vscsi-devs/dev-<N>` subdirectory of the backend's directory
//! (`/local/domain/<backend>/backend/vscsi/<domid>/<vhost>/vscsi-devs/dev-<N>/`):
//!
//! - `v-dev` = `"host:channel:target:lun"`, four decimal numbers: the address the guest sees. The
//!   frontend parses it with [`Hctl::parse`] and puts channel, target and lun in every request for
//!   that device (`channel`, `id`, `lun`); the host number is the backend's grouping and is not
//!   sent.
//! - `p-dev` = the physical device, either `"h:c:t:l"` of the backend's own SCSI host or a WWN
//!   such as `"naa.60014054ac780582:0"`. Private to the backend; a frontend does not read it.
//! - `p-devname` = a free-form name of the physical device (for the toolstack).
//! - `state` = the device's xenbus state ([`crate::xenbus::XenbusState`] as text). The frontend
//!   mirrors it in its own `vscsi-devs/dev-<N>/state`.
//!
//! The vhost's own `state` node goes through the usual xenbus handshake; `ring-ref`,
//! `event-channel` and optionally `protocol` are the frontend's transport nodes (the ring is
//! always one page). A backend that sets `feature-sg-grant` accepts indirect segment lists (see
//! [`VSCSIIF_SG_GRANT`]).
//!
//! Hot-plugging, as the header describes it from the toolstack's side: to add a LUN, the
//! backend's vhost `state` is set to Reconfiguring (7) and a new `vscsi-devs/dev-<N>` appears
//! with `state` Initialising (1); both reach Connected (4) once the frontend has followed. To
//! remove one, the vhost goes to Reconfiguring and the device's `state` to Closing (5); the vhost
//! returns to Connected, the device reaches Closed (6), and then its directory is removed. The
//! frontend reacts to the vhost's Reconfiguring/Reconfigured transitions by scanning
//! `vscsi-devs`, and mirrors each device's state in its own `vscsi-devs/dev-<N>/state`.
//!
//! # Requests
//! A [`VscsiifRequest`] with [`VSCSIIF_ACT_SCSI_CDB`] carries a CDB and up to
//! [`VSCSIIF_SG_TABLESIZE`] data segments; [`VSCSIIF_ACT_SCSI_ABORT`] and
//! [`VSCSIIF_ACT_SCSI_RESET`] carry no data. The [`VscsiifResponse`] holds the SCSI status and
//! host byte in `rslt` (see [`rslt_status`] and [`rslt_host`]) and up to
//! [`VSCSIIF_SENSE_BUFFERSIZE`] bytes of sense data. Requests and responses are 252 bytes and have
//! the same layout in both ABIs.

use core::fmt;
use core::str::FromStr;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ring::{ring_entry_size, ring_slots};
use crate::types::GrantRef;

/// Execute the CDB in `cmnd`.
pub const VSCSIIF_ACT_SCSI_CDB: u8 = 1;
/// Abort the request whose `rqid` is in `ref_rqid` on the given channel, target and lun.
pub const VSCSIIF_ACT_SCSI_ABORT: u8 = 2;
/// Reset the given target (channel and id).
pub const VSCSIIF_ACT_SCSI_RESET: u8 = 3;
/// Deprecated scatter/gather preset; defined only so that the value is not reused. (There is no
/// unplug action in the protocol: devices are removed through xenstore.)
pub const VSCSIIF_ACT_SCSI_SG_PRESET: u8 = 4;

/// The most segments a request carries directly (and the most indirect pages with
/// [`VSCSIIF_SG_GRANT`]).
pub const VSCSIIF_SG_TABLESIZE: usize = 26;
/// The size of the CDB field: the longest CDB the protocol carries.
pub const VSCSIIF_MAX_COMMAND_SIZE: usize = 16;
/// The size of the sense-data field of a response.
pub const VSCSIIF_SENSE_BUFFERSIZE: usize = 96;
/// The page size the protocol assumes for indirect segment pages.
pub const VSCSIIF_PAGE_SIZE: usize = 4096;
/// How many [`ScsiifRequestSegment`]s an indirect page holds: 512.
pub const VSCSIIF_SG_PER_PAGE: usize = VSCSIIF_PAGE_SIZE / size_of::<ScsiifRequestSegment>();

/// A flag in `nr_segments`: the `seg` entries describe pages holding arrays of
/// [`ScsiifRequestSegment`] (their count in the low 7 bits), not the data itself. The number of
/// data segments is the sum of those entries' `length` divided by 8. Only when the backend sets
/// `feature-sg-grant` (which also bounds the total number of data segments).
pub const VSCSIIF_SG_GRANT: u8 = 0x80;

/// `sc_data_direction`: data flows both ways (Linux's `DMA_BIDIRECTIONAL`); not used by
/// backends in practice.
#[doc(alias = "DMA_BIDIRECTIONAL")]
pub const VSCSIIF_DMA_BIDIRECTIONAL: u8 = 0;
/// `sc_data_direction`: data flows from the guest to the device (a write; `DMA_TO_DEVICE`).
#[doc(alias = "DMA_TO_DEVICE")]
pub const VSCSIIF_DMA_TO_DEVICE: u8 = 1;
/// `sc_data_direction`: data flows from the device to the guest (a read; `DMA_FROM_DEVICE`).
#[doc(alias = "DMA_FROM_DEVICE")]
pub const VSCSIIF_DMA_FROM_DEVICE: u8 = 2;
/// `sc_data_direction`: no data (`DMA_NONE`).
#[doc(alias = "DMA_NONE")]
pub const VSCSIIF_DMA_NONE: u8 = 3;

/// One data area of a request (`struct scsiif_request_segment`): a granted page, and an offset
/// and length within it.
#[doc(alias = "scsiif_request_segment")]
#[doc(alias = "vscsiif_segment_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ScsiifRequestSegment {
    /// The grant of the page.
    pub gref: GrantRef,
    /// The offset of the area within the page.
    pub offset: u16,
    /// The length of the area in bytes.
    pub length: u16,
}

/// A request (`struct vscsiif_request`): 252 bytes.
#[doc(alias = "vscsiif_request")]
#[doc(alias = "vscsiif_request_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VscsiifRequest {
    /// A frontend-chosen identifier echoed in the response.
    pub rqid: u16,
    /// One of the `VSCSIIF_ACT_SCSI_*` values.
    pub act: u8,
    /// How many bytes of `cmnd` are valid.
    pub cmd_len: u8,
    /// The CDB.
    pub cmnd: [u8; VSCSIIF_MAX_COMMAND_SIZE],
    /// Deprecated timeout in seconds; 0 for the backend's default.
    pub timeout_per_command: u16,
    /// The device's channel ([`Hctl::channel`]).
    pub channel: u16,
    /// The device's target ([`Hctl::target`]).
    pub id: u16,
    /// The device's logical unit ([`Hctl::lun`]).
    pub lun: u16,
    /// For [`VSCSIIF_ACT_SCSI_ABORT`], the `rqid` of the request to abort.
    pub ref_rqid: u16,
    /// One of the `VSCSIIF_DMA_*` values.
    pub sc_data_direction: u8,
    /// How many entries of `seg` are used, possibly with [`VSCSIIF_SG_GRANT`].
    pub nr_segments: u8,
    /// The data areas, or with [`VSCSIIF_SG_GRANT`] the pages listing them.
    pub seg: [ScsiifRequestSegment; VSCSIIF_SG_TABLESIZE],
    /// Reserved, zero.
    pub reserved: [u32; 3],
}

/// A response (`struct vscsiif_response`): 252 bytes.
#[doc(alias = "vscsiif_response")]
#[doc(alias = "vscsiif_response_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct VscsiifResponse {
    /// The `rqid` of the request.
    pub rqid: u16,
    /// Deprecated; only meaningful with [`VSCSIIF_ACT_SCSI_SG_PRESET`].
    pub act: u8,
    /// How many bytes of `sense_buffer` are valid.
    pub sense_len: u8,
    /// Sense data.
    pub sense_buffer: [u8; VSCSIIF_SENSE_BUFFERSIZE],
    /// The result: SCSI status in bits 0–7, host status in bits 16–23 (see [`rslt_status`],
    /// [`rslt_host`]); for a reset, [`XEN_VSCSIIF_RSLT_RESET_SUCCESS`] or
    /// [`XEN_VSCSIIF_RSLT_RESET_FAILED`].
    pub rslt: i32,
    /// How many bytes of the requested transfer were not transferred.
    pub residual_len: u32,
    /// Reserved.
    pub reserved: [u32; 36],
}

/// The SCSI status byte of a response's `rslt` (`XEN_VSCSIIF_RSLT_STATUS`).
#[doc(alias = "XEN_VSCSIIF_RSLT_STATUS")]
pub const fn rslt_status(rslt: i32) -> u8 {
    (rslt as u32 & 0x00ff) as u8
}

/// The host status byte of a response's `rslt` (`XEN_VSCSIIF_RSLT_HOST`), one of the
/// `XEN_VSCSIIF_RSLT_HOST_*` values.
#[doc(alias = "XEN_VSCSIIF_RSLT_HOST")]
pub const fn rslt_host(rslt: i32) -> u8 {
    ((rslt as u32 & 0x00ff_0000) >> 16) as u8
}

/// Host status: no error.
pub const XEN_VSCSIIF_RSLT_HOST_OK: u8 = 0;
/// Host status: could not connect before the timeout.
pub const XEN_VSCSIIF_RSLT_HOST_NO_CONNECT: u8 = 1;
/// Host status: the bus stayed busy until the timeout.
pub const XEN_VSCSIIF_RSLT_HOST_BUS_BUSY: u8 = 2;
/// Host status: timed out for another reason.
pub const XEN_VSCSIIF_RSLT_HOST_TIME_OUT: u8 = 3;
/// Host status: bad target.
pub const XEN_VSCSIIF_RSLT_HOST_BAD_TARGET: u8 = 4;
/// Host status: aborted for another reason.
pub const XEN_VSCSIIF_RSLT_HOST_ABORT: u8 = 5;
/// Host status: parity error.
pub const XEN_VSCSIIF_RSLT_HOST_PARITY: u8 = 6;
/// Host status: internal error.
pub const XEN_VSCSIIF_RSLT_HOST_ERROR: u8 = 7;
/// Host status: reset by somebody.
pub const XEN_VSCSIIF_RSLT_HOST_RESET: u8 = 8;
/// Host status: unexpected interrupt.
pub const XEN_VSCSIIF_RSLT_HOST_BAD_INTR: u8 = 9;
/// Host status: the command was forced past the mid-layer.
pub const XEN_VSCSIIF_RSLT_HOST_PASSTHROUGH: u8 = 10;
/// Host status: retry requested.
pub const XEN_VSCSIIF_RSLT_HOST_SOFT_ERROR: u8 = 11;
/// Host status: hidden retry requested.
pub const XEN_VSCSIIF_RSLT_HOST_IMM_RETRY: u8 = 12;
/// Host status: requeue requested.
pub const XEN_VSCSIIF_RSLT_HOST_REQUEUE: u8 = 13;
/// Host status: a transport error disrupted the I/O.
pub const XEN_VSCSIIF_RSLT_HOST_TRANSPORT_DISRUPTED: u8 = 14;
/// Host status: the transport failed fast.
pub const XEN_VSCSIIF_RSLT_HOST_TRANSPORT_FAILFAST: u8 = 15;
/// Host status: permanent target failure.
pub const XEN_VSCSIIF_RSLT_HOST_TARGET_FAILURE: u8 = 16;
/// Host status: permanent failure of the path.
pub const XEN_VSCSIIF_RSLT_HOST_NEXUS_FAILURE: u8 = 17;
/// Host status: space allocation on the device failed.
pub const XEN_VSCSIIF_RSLT_HOST_ALLOC_FAILURE: u8 = 18;
/// Host status: medium error.
pub const XEN_VSCSIIF_RSLT_HOST_MEDIUM_ERROR: u8 = 19;
/// Host status: marginal transport errors.
pub const XEN_VSCSIIF_RSLT_HOST_TRANSPORT_MARGINAL: u8 = 20;

/// `rslt` of a successful [`VSCSIIF_ACT_SCSI_RESET`].
pub const XEN_VSCSIIF_RSLT_RESET_SUCCESS: i32 = 0x2002;
/// `rslt` of a failed [`VSCSIIF_ACT_SCSI_RESET`].
pub const XEN_VSCSIIF_RSLT_RESET_FAILED: i32 = 0x2003;

/// The size of one ring slot (`union vscsiif_sring_entry`): 252 bytes.
pub const VSCSIIF_RING_ENTRY_SIZE: usize = ring_entry_size(
    size_of::<VscsiifRequest>(),
    align_of::<VscsiifRequest>(),
    size_of::<VscsiifResponse>(),
    align_of::<VscsiifResponse>(),
);

/// The number of slots of the (one-page) ring (`__CONST_RING_SIZE(vscsiif, 4096)`): 16.
pub const VSCSIIF_RING_SLOTS: u32 = ring_slots(1, VSCSIIF_RING_ENTRY_SIZE);

/// A SCSI address in the `"host:channel:target:lun"` form of a `v-dev` node.
///
/// Channel, target and lun are limited to 16 bits because requests carry them in 16-bit fields;
/// the host number only groups devices and may use 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hctl {
    /// The (virtual) SCSI host number.
    pub host: u32,
    /// The channel (bus), sent as a request's `channel`.
    pub channel: u16,
    /// The target, sent as a request's `id`.
    pub target: u16,
    /// The logical unit, sent as a request's `lun`.
    pub lun: u16,
}

/// One of the four numbers of an [`Hctl`], to say which one is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HctlPart {
    /// The first number.
    Host,
    /// The second number.
    Channel,
    /// The third number.
    Target,
    /// The fourth number.
    Lun,
}

/// Why a text is not an `"h:c:t:l"` address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseHctlError {
    /// The text does not have exactly four colon-separated parts; `parts` is how many it has.
    WrongArity {
        /// The number of colon-separated parts found.
        parts: usize,
    },
    /// A part is empty or has something other than ASCII digits (a WWN `p-dev` ends up here).
    NotDecimal(HctlPart),
    /// A part's value does not fit its field.
    Overflow(HctlPart),
}

impl fmt::Display for ParseHctlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongArity { parts } => {
                write!(f, "expected host:channel:target:lun, found {parts} part(s)")
            }
            Self::NotDecimal(part) => write!(f, "the {part:?} number is not decimal"),
            Self::Overflow(part) => write!(f, "the {part:?} number is too large"),
        }
    }
}

impl core::error::Error for ParseHctlError {}

/// Parses one decimal part no larger than `max`.
fn parse_part(text: &[u8], max: u32, part: HctlPart) -> Result<u32, ParseHctlError> {
    if text.is_empty() {
        return Err(ParseHctlError::NotDecimal(part));
    }
    let mut value: u32 = 0;
    let mut overflow = false;
    for &byte in text {
        if !byte.is_ascii_digit() {
            return Err(ParseHctlError::NotDecimal(part));
        }
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(byte - b'0')))
        {
            Some(v) if v <= max => value = v,
            _ => overflow = true,
        }
    }
    if overflow {
        Err(ParseHctlError::Overflow(part))
    } else {
        Ok(value)
    }
}

impl Hctl {
    /// Parses `"host:channel:target:lun"`: exactly four parts of one or more ASCII digits each
    /// (leading zeros allowed; no signs, spaces or terminating NUL).
    pub fn parse(text: &[u8]) -> Result<Self, ParseHctlError> {
        let parts = text.split(|&b| b == b':').count();
        let mut split = text.split(|&b| b == b':');
        let (Some(h), Some(c), Some(t), Some(l), None) = (
            split.next(),
            split.next(),
            split.next(),
            split.next(),
            split.next(),
        ) else {
            return Err(ParseHctlError::WrongArity { parts });
        };
        let host = parse_part(h, u32::MAX, HctlPart::Host)?;
        let max = u32::from(u16::MAX);
        let channel = parse_part(c, max, HctlPart::Channel)? as u16;
        let target = parse_part(t, max, HctlPart::Target)? as u16;
        let lun = parse_part(l, max, HctlPart::Lun)? as u16;
        Ok(Self {
            host,
            channel,
            target,
            lun,
        })
    }
}

impl FromStr for Hctl {
    type Err = ParseHctlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text.as_bytes())
    }
}

impl fmt::Display for Hctl {
    /// Writes the `v-dev` form, `"host:channel:target:lun"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.host, self.channel, self.target, self.lun
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size_of::<ScsiifRequestSegment>(), 8);
        assert_eq!(size_of::<VscsiifRequest>(), 252);
        assert_eq!(size_of::<VscsiifResponse>(), 252);
        assert_eq!(VSCSIIF_RING_ENTRY_SIZE, 252);
        assert_eq!(VSCSIIF_RING_SLOTS, 16);
        assert_eq!(VSCSIIF_SG_PER_PAGE, 512);
    }

    #[test]
    fn result_bytes() {
        let rslt = 0x0007_0002; // host error, CHECK CONDITION
        assert_eq!(rslt_status(rslt), 0x02);
        assert_eq!(rslt_host(rslt), XEN_VSCSIIF_RSLT_HOST_ERROR);
        assert_eq!(rslt_status(-1), 0xff);
        assert_eq!(rslt_host(-1), 0xff);
        assert_eq!(
            rslt_host(XEN_VSCSIIF_RSLT_RESET_SUCCESS),
            XEN_VSCSIIF_RSLT_HOST_OK
        );
    }

    #[test]
    fn valid_addresses() {
        assert_eq!(
            "0:0:1:0".parse(),
            Ok(Hctl {
                host: 0,
                channel: 0,
                target: 1,
                lun: 0
            })
        );
        assert_eq!(
            Hctl::parse(b"8:0:2:1"),
            Ok(Hctl {
                host: 8,
                channel: 0,
                target: 2,
                lun: 1
            })
        );
        assert_eq!(
            Hctl::parse(b"4294967295:65535:65535:65535"),
            Ok(Hctl {
                host: u32::MAX,
                channel: u16::MAX,
                target: u16::MAX,
                lun: u16::MAX
            })
        );
        assert_eq!(
            Hctl::parse(b"00:01:002:0003"),
            Ok(Hctl {
                host: 0,
                channel: 1,
                target: 2,
                lun: 3
            })
        );
    }

    #[test]
    fn overflow() {
        assert_eq!(
            Hctl::parse(b"4294967296:0:0:0"),
            Err(ParseHctlError::Overflow(HctlPart::Host))
        );
        assert_eq!(
            Hctl::parse(b"0:65536:0:0"),
            Err(ParseHctlError::Overflow(HctlPart::Channel))
        );
        assert_eq!(
            Hctl::parse(b"0:0:70000:0"),
            Err(ParseHctlError::Overflow(HctlPart::Target))
        );
        assert_eq!(
            Hctl::parse(b"0:0:0:99999999999999999999999"),
            Err(ParseHctlError::Overflow(HctlPart::Lun))
        );
    }

    #[test]
    fn wrong_arity() {
        assert_eq!(
            Hctl::parse(b""),
            Err(ParseHctlError::WrongArity { parts: 1 })
        );
        assert_eq!(
            Hctl::parse(b"0:0:0"),
            Err(ParseHctlError::WrongArity { parts: 3 })
        );
        assert_eq!(
            Hctl::parse(b"0:0:0:0:0"),
            Err(ParseHctlError::WrongArity { parts: 5 })
        );
        assert_eq!(
            Hctl::parse(b"naa.60014054ac780582:0"),
            Err(ParseHctlError::WrongArity { parts: 2 })
        );
    }

    #[test]
    fn garbage() {
        assert_eq!(
            Hctl::parse(b"0:0::0"),
            Err(ParseHctlError::NotDecimal(HctlPart::Target))
        );
        assert_eq!(
            Hctl::parse(b"a:0:0:0"),
            Err(ParseHctlError::NotDecimal(HctlPart::Host))
        );
        assert_eq!(
            Hctl::parse(b"0:-1:0:0"),
            Err(ParseHctlError::NotDecimal(HctlPart::Channel))
        );
        assert_eq!(
            Hctl::parse(b"0:0:0: 1"),
            Err(ParseHctlError::NotDecimal(HctlPart::Lun))
        );
        assert_eq!(
            Hctl::parse(b"0:0:0:1\0"),
            Err(ParseHctlError::NotDecimal(HctlPart::Lun))
        );
        assert_eq!(
            Hctl::parse(b"\xff:\xfe:0:0"),
            Err(ParseHctlError::NotDecimal(HctlPart::Host))
        );
        assert_eq!(
            Hctl::parse(b"naa.6001:0:0:0"),
            Err(ParseHctlError::NotDecimal(HctlPart::Host))
        );
    }

    #[test]
    fn display_round_trips() {
        use core::fmt::Write;
        struct Buf([u8; 48], usize);
        impl Write for Buf {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0[self.1..self.1 + s.len()].copy_from_slice(s.as_bytes());
                self.1 += s.len();
                Ok(())
            }
        }
        let hctl = Hctl {
            host: 3,
            channel: 0,
            target: 12,
            lun: 65535,
        };
        let mut buf = Buf([0; 48], 0);
        write!(buf, "{hctl}").unwrap();
        assert_eq!(&buf.0[..buf.1], b"3:0:12:65535");
        assert_eq!(Hctl::parse(&buf.0[..buf.1]), Ok(hctl));
    }
}
