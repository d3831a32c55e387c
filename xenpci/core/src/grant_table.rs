//! Grant table, version 1: handing out references, granting access, and revoking it safely.
//!
//! A grant reference names one entry of the guest's grant table; writing `(domid, frame, flags)`
//! there lets `domid` map or copy that frame. This module owns which references are free, in use or
//! waiting to be revoked. It touches the shared entries only through [`GrantEntries`], which the
//! Windows shell implements over the mapped grant frames, xen-sim over its model, and tests over
//! plain memory.
//!
//! # Free list without allocation
//! The shell hands in a `&mut [GrantRef]` with one slot per reference the table can ever hold
//! (the hypervisor's maximum frames × 512), allocated once at start. Each slot holds the state of
//! its reference: the next free reference (a singly linked free list), "in use", or the next entry
//! of the deferred-revocation list. Granting and revoking are O(1); growing the table after the
//! shell maps more frames appends the new references.
//!
//! # Ordering rules Xen requires
//! - Granting: `domid` and `frame` are written first, then `flags` with release ordering, so Xen
//!   never sees `GTF_permit_access` with a stale frame.
//! - Revoking: `flags` is swapped to 0 with a compare-exchange that fails while Xen has set
//!   `GTF_reading` or `GTF_writing` (the backend still has the page mapped). Such a reference is
//!   never reused: it is parked on the deferred list and retried by [`GrantTable::retry_deferred`],
//!   and counted, because a backend that never unmaps would otherwise keep access to a page the
//!   guest has reused for something else.

use core::fmt;

use xen_abi::grant_table::{GrantFlags, GNTTAB_NR_RESERVED_ENTRIES};
use xen_abi::types::{DomId, GrantRef};

/// Entries per 4 KiB grant frame in the v1 table (8-byte entries).
pub const ENTRIES_PER_FRAME_V1: u32 = 512;

/// References below this are reserved for the toolstack (console, xenstore) and never handed out.
pub const FIRST_UNRESERVED_REF: GrantRef = GNTTAB_NR_RESERVED_ENTRIES;

const GTF_PERMIT_ACCESS: u16 = GrantFlags::PERMIT_ACCESS.bits();
const GTF_READONLY: u16 = GrantFlags::READONLY.bits();
const GTF_READING: u16 = GrantFlags::READING.bits();
const GTF_WRITING: u16 = GrantFlags::WRITING.bits();

/// Access to the shared v1 grant entries (`struct grant_entry_v1`: flags, domid, frame).
///
/// Implementations perform the accesses on the live table that Xen also reads and writes.
pub trait GrantEntries {
    /// Writes an entry's `domid` and `frame`. Plain stores suffice: [`Self::publish_flags`] follows
    /// with release ordering.
    fn write_target(&mut self, gref: GrantRef, domid: DomId, frame: u32);
    /// Stores an entry's `flags` with (at least) release ordering.
    fn publish_flags(&mut self, gref: GrantRef, flags: u16);
    /// Atomically replaces an entry's `flags` with `new` if they equal `current` (sequentially
    /// consistent); returns the value found, which equals `current` on success.
    fn compare_exchange_flags(&mut self, gref: GrantRef, current: u16, new: u16) -> u16;
    /// Loads an entry's `flags` (acquire).
    fn load_flags(&self, gref: GrantRef) -> u16;
}

/// Why a grant operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// Every mapped reference is in use or awaiting revocation; grow the table or retry later.
    Exhausted,
    /// The frame number does not fit the 32-bit `frame` field of a v1 entry.
    FrameTooLarge {
        /// The frame that was asked for.
        frame: u64,
    },
    /// The reference is reserved, outside the table, or not currently granted by this table:
    /// a bug in the caller (double revoke, stale reference), refused rather than corrupting the list.
    NotGranted {
        /// The offending reference.
        gref: GrantRef,
    },
    /// `grow` was asked for fewer entries than the table has, or more than the link storage holds.
    BadCapacity {
        /// The capacity that was asked for.
        requested: u32,
    },
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::Exhausted => f.write_str("no free grant reference"),
            GrantError::FrameTooLarge { frame } => {
                write!(f, "frame {frame:#x} does not fit a version 1 grant entry")
            }
            GrantError::NotGranted { gref } => {
                write!(f, "grant reference {gref} is not granted by this table")
            }
            GrantError::BadCapacity { requested } => {
                write!(f, "cannot size the grant table to {requested} entries")
            }
        }
    }
}

/// What ending access to a reference did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// Access is revoked and the reference is free again.
    Revoked,
    /// The backend still has the page mapped; the reference is parked and retried later. The
    /// page must not be reused for anything the backend must not see until the retry succeeds.
    Deferred,
}

/// Counters the driver exposes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantStats {
    /// Successful grants.
    pub granted: u64,
    /// Revocations that completed at once.
    pub revoked: u64,
    /// Revocations deferred because the backend still had the page mapped.
    pub deferred: u64,
    /// Deferred revocations that completed on a retry.
    pub deferred_completed: u64,
    /// Grants refused because no reference was free.
    pub exhausted: u64,
}

/// Link-slot encodings. Free references hold the index of the next free one (or `NIL`); deferred
/// ones `DEFERRED_BIT` plus the next deferred one (or `NIL`). All four kinds of value are distinct.
const NIL: u32 = 0x3fff_ffff;
const IN_USE: u32 = 0xffff_ffff;
const DEFERRED_BIT: u32 = 0x8000_0000;
/// Marks a reserved or not-yet-mapped slot.
const UNAVAILABLE: u32 = 0xffff_fffe;

/// The guest's grant table: free references, grants and revocations.
#[derive(Debug)]
pub struct GrantTable<'links, E> {
    entries: E,
    links: &'links mut [GrantRef],
    capacity: u32,
    free_head: u32,
    free_count: u32,
    deferred_head: u32,
    deferred_count: u32,
    stats: GrantStats,
}

impl<'links, E: GrantEntries> GrantTable<'links, E> {
    /// Creates a table over `capacity` mapped entries, using `links` (one slot per reference the
    /// table may ever hold) as the storage of its lists.
    pub fn new(
        entries: E,
        links: &'links mut [GrantRef],
        capacity: u32,
    ) -> Result<Self, GrantError> {
        if links.len() >= NIL as usize {
            return Err(GrantError::BadCapacity {
                requested: capacity,
            });
        }
        links.fill(UNAVAILABLE);
        let mut table = GrantTable {
            entries,
            links,
            capacity: FIRST_UNRESERVED_REF.min(capacity),
            free_head: NIL,
            free_count: 0,
            deferred_head: NIL,
            deferred_count: 0,
            stats: GrantStats::default(),
        };
        table.grow(capacity)?;
        Ok(table)
    }

    /// Adds the references between the current capacity and `capacity`, after the shell mapped
    /// more grant frames. Lower references are handed out first.
    pub fn grow(&mut self, capacity: u32) -> Result<(), GrantError> {
        if capacity < self.capacity || capacity as usize > self.links.len() {
            return Err(GrantError::BadCapacity {
                requested: capacity,
            });
        }
        let first_new = self.capacity.max(FIRST_UNRESERVED_REF);
        // Push in reverse so the lowest new reference ends up at the head.
        for gref in (first_new..capacity).rev() {
            self.push_free(gref);
        }
        self.capacity = capacity;
        Ok(())
    }

    /// Grants `domid` access to `frame` (read-only if `readonly`) and returns the reference.
    pub fn grant_access(
        &mut self,
        domid: DomId,
        frame: u64,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let frame32 = u32::try_from(frame).map_err(|_| GrantError::FrameTooLarge { frame })?;
        let gref = self.pop_free()?;
        self.entries.write_target(gref, domid, frame32);
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.entries.publish_flags(gref, flags);
        self.links[gref as usize] = IN_USE;
        self.stats.granted += 1;
        Ok(gref)
    }

    /// Ends access through `gref`. The reference is free again only if the backend no longer has
    /// the page mapped; otherwise it is parked for [`Self::retry_deferred`].
    pub fn end_access(&mut self, gref: GrantRef) -> Result<Revocation, GrantError> {
        match self.links.get(gref as usize) {
            Some(&IN_USE) if gref < self.capacity => {}
            _ => return Err(GrantError::NotGranted { gref }),
        }
        if self.try_revoke(gref) {
            self.push_free(gref);
            self.stats.revoked += 1;
            Ok(Revocation::Revoked)
        } else {
            self.links[gref as usize] = DEFERRED_BIT | self.deferred_head;
            self.deferred_head = gref;
            self.deferred_count += 1;
            self.stats.deferred += 1;
            Ok(Revocation::Deferred)
        }
    }

    /// Retries up to `budget` deferred revocations, oldest last-parked first; returns how many
    /// completed. Bounded so it can run from a timer at dispatch level.
    pub fn retry_deferred(&mut self, budget: u32) -> u32 {
        let mut completed = 0;
        let mut previous = NIL;
        let mut current = self.deferred_head;
        let mut visited = 0;
        while current != NIL && visited < budget {
            visited += 1;
            let next = self.links[current as usize] & !DEFERRED_BIT;
            if self.try_revoke(current) {
                // Unlink `current` from the deferred list, then free it.
                if previous == NIL {
                    self.deferred_head = next;
                } else {
                    self.links[previous as usize] = DEFERRED_BIT | next;
                }
                self.deferred_count -= 1;
                self.push_free(current);
                self.stats.deferred_completed += 1;
                completed += 1;
            } else {
                previous = current;
            }
            current = next;
        }
        completed
    }

    /// References ready to be granted.
    pub fn free_count(&self) -> u32 {
        self.free_count
    }

    /// References whose revocation is still waiting for the backend to unmap them.
    pub fn deferred_count(&self) -> u32 {
        self.deferred_count
    }

    /// Entries currently mapped (including the reserved ones).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The counters.
    pub fn stats(&self) -> GrantStats {
        self.stats
    }

    /// The shared entries, for the shell (for example to re-map them after resume).
    pub fn entries(&self) -> &E {
        &self.entries
    }

    /// Attempts to clear the entry's flags; false while Xen reports it mapped.
    fn try_revoke(&mut self, gref: GrantRef) -> bool {
        let mut flags = self.entries.load_flags(gref);
        loop {
            if flags & (GTF_READING | GTF_WRITING) != 0 {
                return false;
            }
            let seen = self.entries.compare_exchange_flags(gref, flags, 0);
            if seen == flags {
                return true;
            }
            // Xen changed the flags between our load and the exchange (it set reading/writing,
            // or cleared them); decide again on what it wrote. Xen only toggles the two mapping
            // bits, so this loop ends: either a mapping bit is seen or the exchange succeeds.
            flags = seen;
        }
    }

    fn push_free(&mut self, gref: GrantRef) {
        self.links[gref as usize] = self.free_head;
        self.free_head = gref;
        self.free_count += 1;
    }

    fn pop_free(&mut self) -> Result<GrantRef, GrantError> {
        if self.free_head == NIL {
            self.stats.exhausted += 1;
            return Err(GrantError::Exhausted);
        }
        let gref = self.free_head;
        self.free_head = self.links[gref as usize];
        self.free_count -= 1;
        Ok(gref)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::{vec, vec::Vec};

    /// Grant entries in plain memory, with a backend that can hold mappings.
    #[derive(Debug, Default)]
    struct MemoryEntries {
        entries: Vec<(u16, DomId, u32)>,
    }

    impl MemoryEntries {
        fn with_capacity(n: usize) -> Self {
            MemoryEntries {
                entries: vec![(0, 0, 0); n],
            }
        }
        fn backend_maps(&mut self, gref: GrantRef, writing: bool) {
            self.entries[gref as usize].0 |= if writing { GTF_WRITING } else { GTF_READING };
        }
        fn backend_unmaps(&mut self, gref: GrantRef) {
            self.entries[gref as usize].0 &= !(GTF_READING | GTF_WRITING);
        }
    }

    impl GrantEntries for &mut MemoryEntries {
        fn write_target(&mut self, gref: GrantRef, domid: DomId, frame: u32) {
            let e = &mut self.entries[gref as usize];
            e.1 = domid;
            e.2 = frame;
        }
        fn publish_flags(&mut self, gref: GrantRef, flags: u16) {
            self.entries[gref as usize].0 = flags;
        }
        fn compare_exchange_flags(&mut self, gref: GrantRef, current: u16, new: u16) -> u16 {
            let e = &mut self.entries[gref as usize];
            let seen = e.0;
            if seen == current {
                e.0 = new;
            }
            seen
        }
        fn load_flags(&self, gref: GrantRef) -> u16 {
            self.entries[gref as usize].0
        }
    }

    #[test]
    fn grants_skip_reserved_refs_and_write_the_entry() {
        let mut mem = MemoryEntries::with_capacity(1024);
        let mut links = vec![0; 1024];
        let mut table = GrantTable::new(&mut mem, &mut links, 512).unwrap();
        assert_eq!(table.free_count(), 512 - 8);
        let gref = table.grant_access(0, 0x1234, true).unwrap();
        assert_eq!(gref, FIRST_UNRESERVED_REF);
        let second = table.grant_access(3, 0x5678, false).unwrap();
        assert_eq!(second, 9);
        assert_eq!(
            mem.entries[8],
            (GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x1234)
        );
        assert_eq!(mem.entries[9], (GTF_PERMIT_ACCESS, 3, 0x5678));
    }

    #[test]
    fn frames_beyond_32_bits_are_refused_without_consuming_a_ref() {
        let mut mem = MemoryEntries::with_capacity(16);
        let mut links = vec![0; 16];
        let mut table = GrantTable::new(&mut mem, &mut links, 16).unwrap();
        let before = table.free_count();
        assert_eq!(
            table.grant_access(0, 1 << 32, false),
            Err(GrantError::FrameTooLarge { frame: 1 << 32 })
        );
        assert_eq!(table.free_count(), before);
    }

    #[test]
    fn exhaustion_and_growth() {
        let mut mem = MemoryEntries::with_capacity(32);
        let mut links = vec![0; 32];
        let mut table = GrantTable::new(&mut mem, &mut links, 10).unwrap();
        assert!(table.grant_access(0, 1, false).is_ok());
        assert!(table.grant_access(0, 2, false).is_ok());
        assert_eq!(table.grant_access(0, 3, false), Err(GrantError::Exhausted));
        assert_eq!(table.stats().exhausted, 1);
        table.grow(32).unwrap();
        assert_eq!(table.grant_access(0, 3, false), Ok(10));
        assert_eq!(
            table.grow(33),
            Err(GrantError::BadCapacity { requested: 33 })
        );
        assert_eq!(
            table.grow(16),
            Err(GrantError::BadCapacity { requested: 16 })
        );
    }

    #[test]
    fn a_mapped_grant_is_never_reused_until_unmapped() {
        let mut mem = MemoryEntries::with_capacity(16);
        let mut links = vec![0; 16];
        // Only one usable reference, so any reuse would be visible at once.
        let mut table = GrantTable::new(&mut mem, &mut links, 9).unwrap();
        let gref = table.grant_access(0, 7, false).unwrap();
        // The backend maps it and keeps it mapped.
        table.entries.backend_maps(gref, true);
        assert_eq!(table.end_access(gref), Ok(Revocation::Deferred));
        assert_eq!(table.deferred_count(), 1);
        assert_eq!(table.grant_access(0, 8, false), Err(GrantError::Exhausted));
        // Retrying while it is still mapped changes nothing, however often.
        for _ in 0..5 {
            assert_eq!(table.retry_deferred(10), 0);
        }
        assert_eq!(table.end_access(gref), Err(GrantError::NotGranted { gref }));
        table.entries.backend_unmaps(gref);
        assert_eq!(table.retry_deferred(10), 1);
        assert_eq!(table.deferred_count(), 0);
        assert_eq!(table.grant_access(0, 8, false), Ok(gref));
        let stats = table.stats();
        assert_eq!((stats.deferred, stats.deferred_completed), (1, 1));
    }

    #[test]
    fn retry_is_bounded_by_its_budget() {
        let mut mem = MemoryEntries::with_capacity(64);
        let mut links = vec![0; 64];
        let mut table = GrantTable::new(&mut mem, &mut links, 64).unwrap();
        let grefs: Vec<_> = (0..10)
            .map(|i| table.grant_access(0, i, false).unwrap())
            .collect();
        for &g in &grefs {
            table.entries.backend_maps(g, false);
            assert_eq!(table.end_access(g), Ok(Revocation::Deferred));
        }
        for &g in &grefs {
            table.entries.backend_unmaps(g);
        }
        assert_eq!(table.retry_deferred(3), 3);
        assert_eq!(table.deferred_count(), 7);
        assert_eq!(table.retry_deferred(100), 7);
        assert_eq!(table.deferred_count(), 0);
    }

    #[test]
    fn bad_references_are_refused() {
        let mut mem = MemoryEntries::with_capacity(16);
        let mut links = vec![0; 16];
        let mut table = GrantTable::new(&mut mem, &mut links, 16).unwrap();
        for gref in [0, 1, 7, 8, 15, 16, 1000, u32::MAX] {
            assert_eq!(table.end_access(gref), Err(GrantError::NotGranted { gref }));
        }
        let g = table.grant_access(0, 1, false).unwrap();
        assert_eq!(table.end_access(g), Ok(Revocation::Revoked));
        assert_eq!(table.end_access(g), Err(GrantError::NotGranted { gref: g }));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Grant(u64),
        End(usize),
        BackendMap(usize),
        BackendUnmap(usize),
        Retry(u32),
        Grow(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u32>().prop_map(|f| Op::Grant(u64::from(f))),
            4 => any::<usize>().prop_map(Op::End),
            2 => any::<usize>().prop_map(Op::BackendMap),
            2 => any::<usize>().prop_map(Op::BackendUnmap),
            1 => (0u32..8).prop_map(Op::Retry),
            1 => (0u32..64).prop_map(Op::Grow),
        ]
    }

    proptest! {
        /// Under any sequence of operations: no reference is handed out twice, reserved ones never
        /// are, a mapped entry is never freed, and free + in-use + deferred always adds up.
        #[test]
        fn free_list_invariants(ops in proptest::collection::vec(op(), 1..300)) {
            let mut mem = MemoryEntries::with_capacity(64);
            let mut links = vec![0; 64];
            let mut table = GrantTable::new(&mut mem, &mut links, 16).unwrap();
            let mut granted: Vec<GrantRef> = Vec::new();
            let mut deferred: Vec<GrantRef> = Vec::new();
            for op in ops {
                match op {
                    Op::Grant(frame) => match table.grant_access(1, frame, false) {
                        Ok(g) => {
                            prop_assert!(g >= FIRST_UNRESERVED_REF && g < table.capacity());
                            prop_assert!(!granted.contains(&g) && !deferred.contains(&g));
                            granted.push(g);
                        }
                        Err(e) => prop_assert_eq!(e, GrantError::Exhausted),
                    },
                    Op::End(i) if !granted.is_empty() => {
                        let g = granted.swap_remove(i % granted.len());
                        let mapped = table.entries.load_flags(g) & (GTF_READING | GTF_WRITING) != 0;
                        match table.end_access(g).unwrap() {
                            Revocation::Revoked => prop_assert!(!mapped),
                            Revocation::Deferred => { prop_assert!(mapped); deferred.push(g); }
                        }
                    }
                    Op::End(_) => {}
                    Op::BackendMap(i) if !granted.is_empty() => {
                        let g = granted[i % granted.len()];
                        table.entries.backend_maps(g, i % 2 == 0);
                    }
                    Op::BackendMap(_) => {}
                    Op::BackendUnmap(i) => {
                        let all: Vec<_> = granted.iter().chain(&deferred).copied().collect();
                        if !all.is_empty() {
                            table.entries.backend_unmaps(all[i % all.len()]);
                        }
                    }
                    Op::Retry(budget) => {
                        let before = table.deferred_count();
                        let done = table.retry_deferred(budget);
                        prop_assert!(done <= budget);
                        prop_assert_eq!(table.deferred_count(), before - done);
                        deferred.retain(|&g| table.entries.load_flags(g) != 0);
                    }
                    Op::Grow(extra) => {
                        let target = (table.capacity() + extra).min(64);
                        table.grow(target).unwrap();
                    }
                }
                for &g in &deferred {
                    prop_assert!(table.entries.load_flags(g) & GTF_PERMIT_ACCESS != 0);
                }
                prop_assert_eq!(table.deferred_count() as usize, deferred.len());
                let usable = table.capacity().saturating_sub(FIRST_UNRESERVED_REF);
                prop_assert_eq!(
                    table.free_count() as usize + granted.len() + deferred.len(),
                    usable as usize
                );
            }
        }
    }
}
