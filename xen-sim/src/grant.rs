//! The guest's v1 grant table and what a backend domain can do with it.
//!
//! The entries live in grant frames in guest memory (8 bytes each: `flags`, `domid`, `frame`),
//! so the guest's [`SimGrantEntries`] and the hypervisor side below read the same bytes. Mapping
//! follows Xen's rules for v1 entries: the entry must say `GTF_permit_access` for the mapping
//! domain, a writable mapping needs an entry without `GTF_readonly`, and while mappings exist Xen
//! keeps `GTF_reading` (any mapping) and `GTF_writing` (a writable one) set in the entry, which
//! is what makes the guest's revocation wait.

use std::collections::BTreeMap;
use std::fmt;

use xen_abi::grant_table::{
    GrantFlags, GNTST_BAD_COPY_ARG, GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_BAD_HANDLE,
    GNTST_BAD_PAGE, GNTST_GENERAL_ERROR, GNTST_NO_SPACE, GRANT_ENTRIES_V1_PER_FRAME,
};
use xen_abi::types::{DomId, GrantRef};
use xenpci_core::grant_table::{GrantEntries, GrantLink};

use crate::memory::{GuestMemory, PAGE_SIZE};
use crate::Xen;

const GTF_TYPE_MASK: u16 = 3;
const GTF_PERMIT_ACCESS: u16 = GrantFlags::PERMIT_ACCESS.bits();
const GTF_READONLY: u16 = GrantFlags::READONLY.bits();
const GTF_READING: u16 = GrantFlags::READING.bits();
const GTF_WRITING: u16 = GrantFlags::WRITING.bits();
const GTF_SUB_PAGE: u16 = 1 << 8;

/// Why Xen refused a grant operation; [`GntError::status`] is the `GNTST_*` value it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GntError {
    /// The reference is beyond the guest's table (`GNTST_bad_gntref`).
    BadGntref,
    /// The entry does not say `GTF_permit_access` (`GNTST_general_error`, as Xen answers).
    NotPermitted,
    /// The entry grants another domain, or the entry is already pinned by another domain
    /// (`GNTST_general_error`).
    WrongDomain,
    /// A writable mapping or copy into a read-only grant (`GNTST_general_error`).
    ReadOnly,
    /// The handle names no mapping of this domain (`GNTST_bad_handle`).
    BadHandle,
    /// A copy's offset and length leave the page (`GNTST_bad_copy_arg`).
    BadCopyArg,
    /// The granted frame is not populated (`GNTST_bad_page`).
    BadPage,
    /// The mapping domain does not exist or is dying (`GNTST_bad_domain`).
    BadDomain,
    /// More grant frames than the table may have (`GNTST_no_space`).
    NoSpace,
}

impl GntError {
    /// The `GNTST_*` status Xen reports.
    pub fn status(self) -> i16 {
        match self {
            GntError::BadGntref => GNTST_BAD_GNTREF,
            GntError::NotPermitted | GntError::WrongDomain | GntError::ReadOnly => {
                GNTST_GENERAL_ERROR
            }
            GntError::BadHandle => GNTST_BAD_HANDLE,
            GntError::BadCopyArg => GNTST_BAD_COPY_ARG,
            GntError::BadPage => GNTST_BAD_PAGE,
            GntError::BadDomain => GNTST_BAD_DOMAIN,
            GntError::NoSpace => GNTST_NO_SPACE,
        }
    }
}

impl fmt::Display for GntError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "grant operation failed: {self:?} (status {})",
            self.status()
        )
    }
}

impl std::error::Error for GntError {}

/// A backend's mapping of a granted page (the `grant_handle_t` of `GNTTABOP_map_grant_ref`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MappedGrant(pub u32);

#[derive(Clone, Copy, Debug)]
pub(crate) struct Mapping {
    pub(crate) mapper: DomId,
    pub(crate) gref: GrantRef,
    pub(crate) gfn: u64,
    pub(crate) writable: bool,
}

/// Xen's view of the guest's grant table.
#[derive(Debug)]
pub(crate) struct GrantModel {
    frames: Vec<u64>,
    max_frames: u32,
    pub(crate) maps: BTreeMap<u32, Mapping>,
    next_handle: u32,
}

impl GrantModel {
    pub(crate) fn new(max_frames: u32) -> Self {
        GrantModel {
            frames: Vec::new(),
            max_frames,
            maps: BTreeMap::new(),
            next_handle: 1,
        }
    }

    /// Grows the table to `frames` frames (never shrinks); returns the entry count.
    pub(crate) fn setup(&mut self, mem: &mut GuestMemory, frames: u32) -> Result<u32, GntError> {
        if frames > self.max_frames {
            return Err(GntError::NoSpace);
        }
        while (self.frames.len() as u32) < frames {
            self.frames.push(mem.alloc());
        }
        Ok(self.entries())
    }

    pub(crate) fn entries(&self) -> u32 {
        self.frames.len() as u32 * GRANT_ENTRIES_V1_PER_FRAME
    }

    /// Grant frame `idx` now lives at `gfn` (`XENMEM_add_to_physmap`).
    pub(crate) fn move_frame(&mut self, idx: u32, gfn: u64) {
        if let Some(f) = self.frames.get_mut(idx as usize) {
            *f = gfn;
        }
    }

    pub(crate) fn frames(&self) -> &[u64] {
        &self.frames
    }

    /// Where entry `gref` is: (frame, byte offset).
    fn locate(&self, gref: GrantRef) -> Option<(u64, usize)> {
        let frame = self
            .frames
            .get((gref / GRANT_ENTRIES_V1_PER_FRAME) as usize)?;
        Some((*frame, (gref % GRANT_ENTRIES_V1_PER_FRAME) as usize * 8))
    }

    /// Reads (flags, domid, frame) of an entry.
    pub(crate) fn entry(&self, mem: &GuestMemory, gref: GrantRef) -> Option<(u16, DomId, u32)> {
        let (gfn, off) = self.locate(gref)?;
        Some((
            mem.read_u16(gfn, off).ok()?,
            mem.read_u16(gfn, off + 2).ok()?,
            mem.read_u32(gfn, off + 4).ok()?,
        ))
    }

    fn set_flags(&self, mem: &mut GuestMemory, gref: GrantRef, flags: u16) {
        if let Some((gfn, off)) = self.locate(gref) {
            let _ = mem.write_u16(gfn, off, flags);
        }
    }

    fn pins(&self, gref: GrantRef) -> impl Iterator<Item = &Mapping> {
        self.maps.values().filter(move |m| m.gref == gref)
    }

    /// Checks an entry for access by `mapper` and pins it as Xen does (setting `GTF_reading`,
    /// and `GTF_writing` for write access); returns the granted frame.
    fn acquire(
        &self,
        mem: &mut GuestMemory,
        mapper: DomId,
        gref: GrantRef,
        write: bool,
    ) -> Result<u64, GntError> {
        let (flags, domid, frame) = self.entry(mem, gref).ok_or(GntError::BadGntref)?;
        let mut pins = self.pins(gref).peekable();
        let pinned = pins.peek().copied();
        let write_pinned = self.pins(gref).any(|m| m.writable);
        let gfn = match pinned {
            Some(active) => {
                if active.mapper != mapper {
                    return Err(GntError::WrongDomain);
                }
                if write && !write_pinned && flags & GTF_READONLY != 0 {
                    return Err(GntError::ReadOnly);
                }
                active.gfn
            }
            None => {
                if flags & (GTF_TYPE_MASK | GTF_SUB_PAGE) != GTF_PERMIT_ACCESS {
                    return Err(GntError::NotPermitted);
                }
                if domid != mapper {
                    return Err(GntError::WrongDomain);
                }
                if write && flags & GTF_READONLY != 0 {
                    return Err(GntError::ReadOnly);
                }
                u64::from(frame)
            }
        };
        if !mem.is_populated(gfn) {
            return Err(GntError::BadPage);
        }
        let mut new = flags | GTF_READING;
        if write {
            new |= GTF_WRITING;
        }
        self.set_flags(mem, gref, new);
        Ok(gfn)
    }

    /// Drops the pin bits no remaining mapping needs.
    fn release(&self, mem: &mut GuestMemory, gref: GrantRef) {
        let Some((mut flags, _, _)) = self.entry(mem, gref) else {
            return;
        };
        if !self.pins(gref).any(|m| m.writable) {
            flags &= !GTF_WRITING;
        }
        if self.pins(gref).next().is_none() {
            flags &= !GTF_READING;
        }
        self.set_flags(mem, gref, flags);
    }

    pub(crate) fn map(
        &mut self,
        mem: &mut GuestMemory,
        mapper: DomId,
        gref: GrantRef,
        writable: bool,
    ) -> Result<MappedGrant, GntError> {
        let gfn = self.acquire(mem, mapper, gref, writable)?;
        let handle = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1).max(1);
        self.maps.insert(
            handle,
            Mapping {
                mapper,
                gref,
                gfn,
                writable,
            },
        );
        Ok(MappedGrant(handle))
    }

    pub(crate) fn unmap(
        &mut self,
        mem: &mut GuestMemory,
        mapper: DomId,
        handle: MappedGrant,
    ) -> Result<(), GntError> {
        match self.maps.get(&handle.0) {
            Some(m) if m.mapper == mapper => {}
            _ => return Err(GntError::BadHandle),
        }
        let m = self.maps.remove(&handle.0).ok_or(GntError::BadHandle)?;
        self.release(mem, m.gref);
        Ok(())
    }

    pub(crate) fn mapping(&self, mapper: DomId, handle: MappedGrant) -> Result<Mapping, GntError> {
        match self.maps.get(&handle.0) {
            Some(m) if m.mapper == mapper => Ok(*m),
            _ => Err(GntError::BadHandle),
        }
    }

    /// `GNTTABOP_copy` with the guest's grant on one side: pins for the duration of the copy.
    pub(crate) fn copy(
        &mut self,
        mem: &mut GuestMemory,
        mapper: DomId,
        gref: GrantRef,
        offset: usize,
        data: CopyDir<'_>,
    ) -> Result<(), GntError> {
        let len = match &data {
            CopyDir::FromGuest(out) => out.len(),
            CopyDir::ToGuest(src) => src.len(),
        };
        if offset.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
            return Err(GntError::BadCopyArg);
        }
        let write = matches!(data, CopyDir::ToGuest(_));
        let gfn = self.acquire(mem, mapper, gref, write)?;
        let result = match data {
            CopyDir::FromGuest(out) => mem.read(gfn, offset, out),
            CopyDir::ToGuest(src) => mem.write(gfn, offset, src),
        };
        self.release(mem, gref);
        result.map_err(|_| GntError::BadPage)
    }

    /// Releases every mapping `mapper` holds (the domain died and Xen cleaned up after it).
    pub(crate) fn release_all(&mut self, mem: &mut GuestMemory, mapper: DomId) -> usize {
        let handles: Vec<u32> = self
            .maps
            .iter()
            .filter(|(_, m)| m.mapper == mapper)
            .map(|(h, _)| *h)
            .collect();
        for h in &handles {
            if let Some(m) = self.maps.remove(h) {
                self.release(mem, m.gref);
            }
        }
        handles.len()
    }
}

/// The direction of a grant copy.
pub(crate) enum CopyDir<'a> {
    FromGuest(&'a mut [u8]),
    ToGuest(&'a [u8]),
}

/// The guest's grant entries in the model's memory, for `GrantTable`.
///
/// References outside the mapped frames are ignored on write and read as 0 (the core never
/// passes them; the table size is the shell's business).
#[derive(Clone, Debug)]
pub struct SimGrantEntries {
    xen: Xen,
}

impl SimGrantEntries {
    pub(crate) fn new(xen: Xen) -> Self {
        SimGrantEntries { xen }
    }

    /// The entry as the guest wrote it: (flags, domid, frame); `None` beyond the table.
    pub fn entry(&self, gref: GrantRef) -> Option<(u16, DomId, u32)> {
        let s = self.xen.lock();
        s.grants.entry(&s.mem, gref)
    }

    /// Entries the table holds now.
    pub fn capacity(&self) -> u32 {
        self.xen.lock().grants.entries()
    }
}

impl GrantEntries for SimGrantEntries {
    fn write_target(&self, gref: GrantRef, domid: DomId, frame: u32) {
        self.xen.with(|s| {
            if let Some((gfn, off)) = s.grants.locate(gref) {
                let _ = s.mem.write_u16(gfn, off + 2, domid);
                let _ = s.mem.write_u32(gfn, off + 4, frame);
            }
        })
    }

    fn publish_flags(&self, gref: GrantRef, flags: u16) {
        self.xen
            .with(|s| s.grants.set_flags(&mut s.mem, gref, flags))
    }

    fn compare_exchange_flags(&self, gref: GrantRef, current: u16, new: u16) -> u16 {
        self.xen.with(|s| {
            let seen = s.grants.entry(&s.mem, gref).map_or(0, |e| e.0);
            if seen == current {
                s.grants.set_flags(&mut s.mem, gref, new);
            }
            seen
        })
    }

    fn load_flags(&self, gref: GrantRef) -> u16 {
        self.entry(gref).map_or(0, |e| e.0)
    }
}

/// `count` unused link slots for a `GrantTable` (the storage the shell allocates once at start).
pub fn grant_links(count: usize) -> Vec<GrantLink> {
    (0..count).map(|_| GrantLink::new()).collect()
}
