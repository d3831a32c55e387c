//! Grant-table frames: size, version, and mapping frames into the platform window.
//!
//! At start the bus asks Xen how many frames the table may grow to (`GNTTABOP_query_size`),
//! makes sure version 1 is in use (`GNTTABOP_get_version` / `GNTTABOP_set_version`; a table
//! found at version 2, left by an earlier driver, is switched back and reported), and then maps
//! frames on demand with `XENMEM_add_to_physmap(XENMAPSPACE_grant_table, idx)` at GFNs of the
//! platform's window. [`GrantFrames::grow`] maps frames up to a target, reports each `(frame,
//! gfn)` to the shell (which maps the GFN so its [`crate::grant_table::GrantEntries`] covers it)
//! and then grows the [`GrantTable`] by 512 references per frame. Growing is passive-level work:
//! hypercalls and platform allocations, bounded by the frame limit.
//!
//! The core drives version 1 only. Xen does not offer a way to learn whether version 2 is
//! available without switching to it, which is unsafe once the toolstack's reserved entries are
//! in use, so the core does not probe: it reports the version it found.

use core::mem::offset_of;

use xen_abi::grant_table::{
    GnttabGetVersion, GnttabQuerySize, GnttabSetVersion, GnttabSetupTable, GNTTABOP_QUERY_SIZE,
    GNTTABOP_SETUP_TABLE,
};
use xen_abi::memory::{AddToPhysmap, XENMAPSPACE_GRANT_TABLE};
use xen_abi::types::DOMID_SELF;
use zerocopy::IntoBytes;

use super::calls::{
    cmd_struct, invoke, Call, GNTTABOP_GET_VERSION_CALL, GNTTABOP_QUERY_SIZE_CALL,
    GNTTABOP_SETUP_TABLE_CALL, GNTTABOP_SET_VERSION_CALL, XENMEM_ADD_TO_PHYSMAP_CALL,
};
use super::{Arg, HvError, Hypervisor, XenErrno};
use crate::grant_table::{GrantEntries, GrantTable, ENTRIES_PER_FRAME_V1};

/// `GNTTABOP_query_size`'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrantTableSize {
    /// Frames Xen currently has for the table.
    pub nr_frames: u32,
    /// The most frames the table may grow to.
    pub max_nr_frames: u32,
}

/// Issues a one-structure `GNTTABOP_*` call: `cmd, &arg, count = 1`.
fn gnttab_one<H: Hypervisor + ?Sized>(hv: &H, call: &Call, arg: &mut [u8]) -> Result<u64, HvError> {
    let mut args = [
        Arg::Value(u64::from(call.cmd)),
        Arg::Buffer(arg),
        Arg::Value(1),
        Arg::Unused,
        Arg::Unused,
    ];
    invoke(hv, call, &mut args)
}

/// Asks Xen for the grant table's size.
pub fn query_size<H: Hypervisor + ?Sized>(hv: &H) -> Result<GrantTableSize, HvError> {
    let mut arg = GnttabQuerySize {
        dom: DOMID_SELF,
        pad0: 0,
        nr_frames: 0,
        max_nr_frames: 0,
        status: 0,
        pad1: 0,
    };
    gnttab_one(hv, &GNTTABOP_QUERY_SIZE_CALL, arg.as_mut_bytes())?;
    if arg.status < 0 {
        return Err(HvError::GrantStatus {
            cmd: GNTTABOP_QUERY_SIZE,
            status: arg.status,
        });
    }
    Ok(GrantTableSize {
        nr_frames: arg.nr_frames,
        max_nr_frames: arg.max_nr_frames,
    })
}

/// The grant-table version in use; `None` when Xen predates `GNTTABOP_get_version` (version 1
/// is then the only one).
pub fn get_version<H: Hypervisor + ?Sized>(hv: &H) -> Result<Option<u32>, HvError> {
    let mut arg = GnttabGetVersion {
        dom: DOMID_SELF,
        pad: 0,
        version: 0,
    };
    match gnttab_one(hv, &GNTTABOP_GET_VERSION_CALL, arg.as_mut_bytes()) {
        Ok(_) => Ok(Some(arg.version)),
        Err(HvError::Hypercall {
            errno: XenErrno::ENOSYS,
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Asks for grant-table version `version`; returns the version in use afterwards (Xen writes it
/// back), or `None` when Xen predates `GNTTABOP_set_version`.
pub fn set_version<H: Hypervisor + ?Sized>(hv: &H, version: u32) -> Result<Option<u32>, HvError> {
    let mut arg = GnttabSetVersion { version };
    match gnttab_one(hv, &GNTTABOP_SET_VERSION_CALL, arg.as_mut_bytes()) {
        Ok(_) => Ok(Some(arg.version)),
        Err(HvError::Hypercall {
            errno: XenErrno::ENOSYS,
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the version negotiation found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VersionReport {
    /// The version in use when the bus started (`None`: Xen cannot tell, so 1).
    pub found: Option<u32>,
    /// Whether the table was found at version 2 and switched to 1 (so Xen supports v2).
    pub v2_seen: bool,
}

/// Makes sure the table runs version 1.
pub fn ensure_v1<H: Hypervisor + ?Sized>(hv: &H) -> Result<VersionReport, HvError> {
    let found = get_version(hv)?;
    match found {
        None | Some(1) => Ok(VersionReport {
            found,
            v2_seen: false,
        }),
        Some(other) => match set_version(hv, 1)? {
            None | Some(1) => Ok(VersionReport {
                found,
                v2_seen: other == 2,
            }),
            Some(version) => Err(HvError::UnsupportedGrantVersion { version }),
        },
    }
}

/// Maps grant frame `frame` at `gfn` (also used to re-map after a resume).
pub fn map_frame<H: Hypervisor + ?Sized>(hv: &H, frame: u32, gfn: u64) -> Result<(), HvError> {
    let mut arg = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_GRANT_TABLE,
        idx: u64::from(frame),
        gpfn: gfn,
    };
    invoke(
        hv,
        &XENMEM_ADD_TO_PHYSMAP_CALL,
        &mut cmd_struct(&XENMEM_ADD_TO_PHYSMAP_CALL, arg.as_mut_bytes()),
    )
    .map(drop)
}

/// The frames Xen backs the first `frames.len()` grant frames with (`GNTTABOP_setup_table` for
/// this domain): machine frames for a PV domain, guest frames for a translated one. Xen grows
/// the table to that many frames if it is smaller (up to its maximum: a negative
/// [`HvError::GrantStatus`] beyond). Fills `frames` and returns how many were asked for.
pub fn frames<H: Hypervisor + ?Sized>(hv: &H, frames: &mut [u64]) -> Result<u32, HvError> {
    let nr_frames = u32::try_from(frames.len()).map_err(|_| HvError::BadFrameCount {
        requested: u32::MAX,
        max: u32::MAX,
    })?;
    let mut arg = GnttabSetupTable {
        dom: DOMID_SELF,
        pad0: 0,
        nr_frames,
        status: 0,
        pad1: [0; 6],
        frame_list: 0,
    };
    let call = &GNTTABOP_SETUP_TABLE_CALL;
    let mut args = [
        Arg::Value(u64::from(call.cmd)),
        Arg::BufferWithHandle {
            arg: arg.as_mut_bytes(),
            handle_offset: offset_of!(GnttabSetupTable, frame_list),
            buffer: frames.as_mut_bytes(),
        },
        Arg::Value(1),
        Arg::Unused,
        Arg::Unused,
    ];
    invoke(hv, call, &mut args)?;
    if arg.status < 0 {
        return Err(HvError::GrantStatus {
            cmd: GNTTABOP_SETUP_TABLE,
            status: arg.status,
        });
    }
    Ok(nr_frames)
}

/// The grant frames the bus has mapped, and how many it may map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantFrames {
    limit: u32,
    mapped: u32,
    size: GrantTableSize,
    version: VersionReport,
}

impl GrantFrames {
    /// Queries the size, ensures version 1 and returns the (empty) set of frames. `max_frames`
    /// is the caller's own limit (the link storage of its [`GrantTable`] divided by 512); the
    /// effective limit is the smaller of it and Xen's maximum.
    pub fn setup<H: Hypervisor + ?Sized>(hv: &H, max_frames: u32) -> Result<Self, HvError> {
        let size = query_size(hv)?;
        if size.max_nr_frames == 0 {
            return Err(HvError::BadGrantTableSize {
                nr_frames: size.nr_frames,
                max_nr_frames: size.max_nr_frames,
            });
        }
        let version = ensure_v1(hv)?;
        let limit = size
            .max_nr_frames
            .min(max_frames)
            .min(u32::MAX / ENTRIES_PER_FRAME_V1);
        Ok(GrantFrames {
            limit,
            mapped: 0,
            size,
            version,
        })
    }

    /// The most frames [`Self::grow`] will map.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Frames mapped so far.
    pub fn mapped(&self) -> u32 {
        self.mapped
    }

    /// References the mapped frames hold.
    pub fn capacity(&self) -> u32 {
        self.mapped * ENTRIES_PER_FRAME_V1
    }

    /// Xen's answer to `GNTTABOP_query_size` at setup.
    pub fn size(&self) -> GrantTableSize {
        self.size
    }

    /// What the version negotiation found.
    pub fn version(&self) -> VersionReport {
        self.version
    }

    /// Maps frames until `frames` are mapped, calling `on_mapped(frame, gfn)` for each new one,
    /// then grows `table` to the references they hold. Asking for no more than are mapped does
    /// nothing. If a frame fails to map, the table still grows to the frames mapped before it
    /// and the error is returned. Returns the frames now mapped.
    pub fn grow<H, E>(
        &mut self,
        hv: &H,
        table: &mut GrantTable<'_, E>,
        frames: u32,
        mut on_mapped: impl FnMut(u32, u64),
    ) -> Result<u32, HvError>
    where
        H: Hypervisor + ?Sized,
        E: GrantEntries,
    {
        if frames > self.limit {
            return Err(HvError::BadFrameCount {
                requested: frames,
                max: self.limit,
            });
        }
        let mut failure = None;
        while self.mapped < frames {
            let frame = self.mapped;
            let Some(gfn) = hv.allocate_frames(1) else {
                failure = Some(HvError::WindowExhausted { count: 1 });
                break;
            };
            if let Err(e) = map_frame(hv, frame, gfn) {
                failure = Some(e);
                break;
            }
            on_mapped(frame, gfn);
            self.mapped += 1;
        }
        if self.capacity() > table.capacity() {
            table.grow(self.capacity()).map_err(HvError::Grant)?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(self.mapped),
        }
    }

    /// Maps one more frame (when the table ran out of references).
    pub fn grow_one<H, E>(
        &mut self,
        hv: &H,
        table: &mut GrantTable<'_, E>,
        on_mapped: impl FnMut(u32, u64),
    ) -> Result<u32, HvError>
    where
        H: Hypervisor + ?Sized,
        E: GrantEntries,
    {
        self.grow(hv, table, self.mapped.saturating_add(1), on_mapped)
    }
}
