//! Scalar types of the Xen ABI, fixed-width.

/// A domain id (`domid_t`).
#[doc(alias = "domid_t")]
pub type DomId = u16;

/// The domain id a guest uses to name itself in hypercalls (`DOMID_SELF`).
pub const DOMID_SELF: DomId = 0x7ff0;

/// The first domain id reserved for special meanings; ids at or above it are not real domains.
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;

/// A grant reference (`grant_ref_t`).
#[doc(alias = "grant_ref_t")]
pub type GrantRef = u32;

/// An event-channel port (`evtchn_port_t`).
#[doc(alias = "evtchn_port_t")]
pub type EvtchnPort = u32;

/// A guest frame number in the x86_64 ABI (`xen_pfn_t`, 64 bits).
#[doc(alias = "xen_pfn_t")]
pub type XenPfn = u64;

/// `xen_ulong_t` in the x86_64 ABI: 64 bits, even on LLP64 Windows where `unsigned long` is 32.
#[doc(alias = "xen_ulong_t")]
pub type XenUlong = u64;

/// A blkif sector number (`blkif_sector_t`), always in 512-byte units.
#[doc(alias = "blkif_sector_t")]
pub type BlkifSector = u64;
