//! Grant table, version 1: handing out references, granting access, and revoking it safely.
//!
//! A grant reference names one entry of the guest's grant table; writing `(domid, frame, flags)`
//! there lets `domid` map or copy that frame. This module owns which references are free, in use or
//! waiting to be revoked. It touches the shared entries only through [`GrantEntries`], which the
//! Windows shell implements over the mapped grant frames, xen-sim over its model, and tests over
//! plain memory.
//!
//! # Concurrency contract
//! Every operation takes `&self`, and none takes a lock:
//! - [`GrantTable::grant_access`] and [`GrantTable::end_access`] run at IRQL <= DISPATCH_LEVEL
//!   on any number of CPUs at once (the I/O path of every child);
//! - [`GrantTable::retry_deferred`] runs at <= DISPATCH_LEVEL from any CPU, also several at once
//!   and concurrently with grants and revocations (a timer DPC per CPU, or a child's completion
//!   path);
//! - [`GrantTable::grow`] runs at PASSIVE_LEVEL (the shell maps the new grant frames first),
//!   concurrently with all of the above; concurrent grows are safe too (each claims its range).
//!
//! The counters ([`GrantTable::free_count`], [`GrantTable::deferred_count`],
//! [`GrantTable::stats`]) are exact whenever no operation is in flight and may lag by the
//! operations in flight otherwise.
//!
//! # Free list without allocation or lock
//! The shell hands in a `&[GrantLink]` with one slot per reference the table can ever hold (the
//! hypervisor's maximum frames × 512), allocated once at start. Each slot holds the state of its
//! reference: the next free reference (the free list), "in use", "being revoked", or the next
//! entry of the deferred-revocation list. Both lists are Treiber stacks (lock-free LIFO lists
//! threaded through the slots) whose heads carry a 32-bit tag that changes on every push and pop,
//! so a pop that read a head, was overtaken by other CPUs popping and pushing that same reference
//! back, and then compares the head again fails instead of installing a stale link (the ABA
//! problem). The tag wraps only after 2^32 operations overtake one pop, which a pop that is
//! a few instructions long never sees. Granting and revoking are O(1) up to retries under
//! contention; growing the table after the shell maps more frames pushes the new references as
//! one chain.
//!
//! # Ordering rules Xen requires
//! - Granting: `domid` and `frame` are written first, then `flags` with release ordering, so Xen
//!   never sees `GTF_permit_access` with a stale frame.
//! - Revoking: `flags` is swapped to 0 with a compare-exchange that fails while Xen has set
//!   `GTF_reading` or `GTF_writing` (the backend still has the page mapped). Such a reference is
//!   never reused: it is parked on the deferred list and retried by [`GrantTable::retry_deferred`],
//!   and counted, because a backend that never unmaps would otherwise keep access to a page the
//!   guest has reused for something else. A reference reaches the free list only after its
//!   revocation succeeded, and the push that frees it is a release that the next grant's pop
//!   acquires, so the new grant's writes to the entry come after the revocation on every CPU.

use core::fmt;

use xen_abi::grant_table::{GrantFlags, GNTTAB_NR_RESERVED_ENTRIES};
use xen_abi::types::{DomId, GrantRef};

use crate::sync::{AtomicU32, AtomicU64, Ordering};

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
/// Implementations perform the accesses on the live table that Xen also reads and writes, with
/// atomics (or volatile accesses of naturally aligned fields, which x86 and arm64 make
/// single-copy atomic): the methods take `&self` because [`GrantTable`] calls them from any CPU
/// at once, each call on the entry of a reference that call owns.
pub trait GrantEntries {
    /// Writes an entry's `domid` and `frame`. Plain (relaxed) stores suffice:
    /// [`Self::publish_flags`] follows with release ordering.
    fn write_target(&self, gref: GrantRef, domid: DomId, frame: u32);
    /// Stores an entry's `flags` with (at least) release ordering.
    fn publish_flags(&self, gref: GrantRef, flags: u16);
    /// Atomically replaces an entry's `flags` with `new` if they equal `current` (sequentially
    /// consistent); returns the value found, which equals `current` on success.
    fn compare_exchange_flags(&self, gref: GrantRef, current: u16, new: u16) -> u16;
    /// Loads an entry's `flags` (acquire).
    fn load_flags(&self, gref: GrantRef) -> u16;
}

impl<T: GrantEntries + ?Sized> GrantEntries for &T {
    fn write_target(&self, gref: GrantRef, domid: DomId, frame: u32) {
        (**self).write_target(gref, domid, frame)
    }
    fn publish_flags(&self, gref: GrantRef, flags: u16) {
        (**self).publish_flags(gref, flags)
    }
    fn compare_exchange_flags(&self, gref: GrantRef, current: u16, new: u16) -> u16 {
        (**self).compare_exchange_flags(gref, current, new)
    }
    fn load_flags(&self, gref: GrantRef) -> u16 {
        (**self).load_flags(gref)
    }
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

/// The counters as atomics (relaxed: they order nothing).
#[derive(Debug, Default)]
struct AtomicGrantStats {
    granted: AtomicU64,
    revoked: AtomicU64,
    deferred: AtomicU64,
    deferred_completed: AtomicU64,
    exhausted: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Link-slot encodings. Free references hold the index of the next free one (or `NIL`); deferred
/// ones `DEFERRED_BIT` plus the next deferred one (or `NIL`). All kinds of value are distinct.
const NIL: u32 = 0x3fff_ffff;
const IN_USE: u32 = 0xffff_ffff;
const DEFERRED_BIT: u32 = 0x8000_0000;
/// Marks a reserved or not-yet-mapped slot.
const UNAVAILABLE: u32 = 0xffff_fffe;
/// A reference whose revocation one caller is attempting (owned by that caller).
const REVOKING: u32 = 0xffff_fffd;

/// The link slot of one grant reference: storage the shell provides for the table's lists (see
/// the module documentation). Create one per reference the table may ever hold, for example
/// `[const { GrantLink::new() }; N]` in a static or the shell's non-paged pool.
#[derive(Debug)]
pub struct GrantLink(AtomicU32);

impl GrantLink {
    /// An unused slot.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        GrantLink(AtomicU32::new(UNAVAILABLE))
    }

    /// An unused slot.
    #[cfg(loom)]
    pub fn new() -> Self {
        GrantLink(AtomicU32::new(UNAVAILABLE))
    }
}

impl Default for GrantLink {
    fn default() -> Self {
        Self::new()
    }
}

/// A list head: the index of the first reference (or `NIL`) in the low half, the ABA tag in the
/// high half.
fn head_index(head: u64) -> u32 {
    head as u32
}

fn next_head(head: u64, index: u32) -> u64 {
    let tag = (head >> 32) as u32;
    (u64::from(tag.wrapping_add(1)) << 32) | u64::from(index)
}

const EMPTY_HEAD: u64 = NIL as u64;

/// The guest's grant table: free references, grants and revocations.
#[derive(Debug)]
pub struct GrantTable<'links, E> {
    entries: E,
    links: &'links [GrantLink],
    capacity: AtomicU32,
    free_head: AtomicU64,
    free_count: AtomicU32,
    deferred_head: AtomicU64,
    deferred_count: AtomicU32,
    stats: AtomicGrantStats,
}

impl<'links, E: GrantEntries> GrantTable<'links, E> {
    /// Creates a table over `capacity` mapped entries, using `links` (one slot per reference the
    /// table may ever hold) as the storage of its lists.
    pub fn new(entries: E, links: &'links [GrantLink], capacity: u32) -> Result<Self, GrantError> {
        if links.len() >= NIL as usize {
            return Err(GrantError::BadCapacity {
                requested: capacity,
            });
        }
        for link in links {
            link.0.store(UNAVAILABLE, Ordering::Relaxed);
        }
        let table = GrantTable {
            entries,
            links,
            capacity: AtomicU32::new(FIRST_UNRESERVED_REF.min(capacity)),
            free_head: AtomicU64::new(EMPTY_HEAD),
            free_count: AtomicU32::new(0),
            deferred_head: AtomicU64::new(EMPTY_HEAD),
            deferred_count: AtomicU32::new(0),
            stats: AtomicGrantStats::default(),
        };
        table.grow(capacity)?;
        Ok(table)
    }

    /// Adds the references between the current capacity and `capacity`, after the shell mapped
    /// more grant frames. Lower references are handed out first. PASSIVE_LEVEL; safe to run
    /// concurrently with every other operation, including another `grow`.
    pub fn grow(&self, capacity: u32) -> Result<(), GrantError> {
        let bad = GrantError::BadCapacity {
            requested: capacity,
        };
        if capacity as usize > self.links.len() {
            return Err(bad);
        }
        // Claim the range [current, capacity) first, so two grows never push the same reference.
        // References in the range but not yet pushed read as UNAVAILABLE: `end_access` refuses
        // them and no grant can return them.
        let mut current = self.capacity.load(Ordering::Acquire);
        loop {
            if capacity < current {
                return Err(bad);
            }
            match self.capacity.compare_exchange(
                current,
                capacity,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        let first = current.max(FIRST_UNRESERVED_REF);
        if first >= capacity {
            return Ok(());
        }
        let last = capacity - 1;
        // Chain the new references in ascending order; they are ours until the push publishes
        // them (release), so relaxed stores suffice.
        for gref in first..last {
            self.link(gref).store(gref + 1, Ordering::Relaxed);
        }
        self.free_count
            .fetch_add(capacity - first, Ordering::Relaxed);
        self.push_chain(&self.free_head, first, last, 0);
        Ok(())
    }

    /// Grants `domid` access to `frame` (read-only if `readonly`) and returns the reference.
    /// Any CPU, IRQL <= DISPATCH_LEVEL.
    pub fn grant_access(
        &self,
        domid: DomId,
        frame: u64,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let frame32 = u32::try_from(frame).map_err(|_| GrantError::FrameTooLarge { frame })?;
        let Some(gref) = self.pop(&self.free_head, 0) else {
            bump(&self.stats.exhausted);
            return Err(GrantError::Exhausted);
        };
        self.free_count.fetch_sub(1, Ordering::Relaxed);
        self.entries.write_target(gref, domid, frame32);
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.entries.publish_flags(gref, flags);
        // Release: a caller that hands the reference to another CPU for `end_access` hands it
        // over with its own synchronisation; this orders the slot after the entry writes anyway.
        self.link(gref).store(IN_USE, Ordering::Release);
        bump(&self.stats.granted);
        Ok(gref)
    }

    /// Ends access through `gref`. The reference is free again only if the backend no longer has
    /// the page mapped; otherwise it is parked for [`Self::retry_deferred`]. Any CPU, IRQL <=
    /// DISPATCH_LEVEL; two calls for the same reference are told apart (the second gets
    /// [`GrantError::NotGranted`]).
    pub fn end_access(&self, gref: GrantRef) -> Result<Revocation, GrantError> {
        let not_granted = GrantError::NotGranted { gref };
        if gref >= self.capacity.load(Ordering::Acquire) {
            return Err(not_granted);
        }
        let link = self.links.get(gref as usize).ok_or(not_granted)?;
        // Take ownership of the reference: only one caller moves it out of IN_USE.
        link.0
            .compare_exchange(IN_USE, REVOKING, Ordering::AcqRel, Ordering::Relaxed)
            .map_err(|_| not_granted)?;
        if self.try_revoke(gref) {
            self.release(gref);
            bump(&self.stats.revoked);
            Ok(Revocation::Revoked)
        } else {
            self.deferred_count.fetch_add(1, Ordering::Relaxed);
            self.push_chain(&self.deferred_head, gref, gref, DEFERRED_BIT);
            bump(&self.stats.deferred);
            Ok(Revocation::Deferred)
        }
    }

    /// Retries up to `budget` deferred revocations, most recently parked first; returns how many
    /// completed. Bounded so it can run from a timer at DISPATCH_LEVEL; any CPU, and several
    /// CPUs at once (each takes distinct references off the list, retries them, and puts the
    /// ones still mapped back as one chain).
    pub fn retry_deferred(&self, budget: u32) -> u32 {
        let mut completed = 0;
        // The references still mapped, chained privately (first, last) until put back.
        let mut kept: Option<(u32, u32)> = None;
        for _ in 0..budget {
            let Some(gref) = self.pop(&self.deferred_head, DEFERRED_BIT) else {
                break;
            };
            if self.try_revoke(gref) {
                self.deferred_count.fetch_sub(1, Ordering::Relaxed);
                self.release(gref);
                bump(&self.stats.deferred_completed);
                completed += 1;
            } else {
                kept = Some(match kept {
                    None => (gref, gref),
                    Some((first, last)) => {
                        self.link(gref)
                            .store(DEFERRED_BIT | first, Ordering::Relaxed);
                        (gref, last)
                    }
                });
            }
        }
        if let Some((first, last)) = kept {
            self.push_chain(&self.deferred_head, first, last, DEFERRED_BIT);
        }
        completed
    }

    /// References ready to be granted.
    pub fn free_count(&self) -> u32 {
        self.free_count.load(Ordering::Relaxed)
    }

    /// References whose revocation is still waiting for the backend to unmap them.
    pub fn deferred_count(&self) -> u32 {
        self.deferred_count.load(Ordering::Relaxed)
    }

    /// Entries currently mapped (including the reserved ones).
    pub fn capacity(&self) -> u32 {
        self.capacity.load(Ordering::Acquire)
    }

    /// The counters.
    pub fn stats(&self) -> GrantStats {
        let s = &self.stats;
        GrantStats {
            granted: s.granted.load(Ordering::Relaxed),
            revoked: s.revoked.load(Ordering::Relaxed),
            deferred: s.deferred.load(Ordering::Relaxed),
            deferred_completed: s.deferred_completed.load(Ordering::Relaxed),
            exhausted: s.exhausted.load(Ordering::Relaxed),
        }
    }

    /// The shared entries, for the shell (for example to re-map them after resume).
    pub fn entries(&self) -> &E {
        &self.entries
    }

    fn link(&self, gref: GrantRef) -> &AtomicU32 {
        &self.links[gref as usize].0
    }

    /// Attempts to clear the entry's flags; false while Xen reports it mapped.
    fn try_revoke(&self, gref: GrantRef) -> bool {
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

    /// Puts a revoked reference (owned by the caller) on the free list.
    fn release(&self, gref: GrantRef) {
        // Counted before the push publishes it, so the pop that takes it never counts below 0.
        self.free_count.fetch_add(1, Ordering::Relaxed);
        self.push_chain(&self.free_head, gref, gref, 0);
    }

    /// Pushes the chain `first ..= last` (linked through the slots, owned by the caller) on the
    /// list at `head`; `kind` is 0 for the free list or `DEFERRED_BIT`.
    fn push_chain(&self, head: &AtomicU64, first: GrantRef, last: GrantRef, kind: u32) {
        let mut old = head.load(Ordering::Relaxed);
        loop {
            self.link(last)
                .store(kind | head_index(old), Ordering::Relaxed);
            // Release: the chain's links (and, for the free list, the revocation that emptied
            // each entry) happen before any pop that acquires this head or a later one (every
            // change of a head is a read-modify-write, so later ones continue the release
            // sequence).
            match head.compare_exchange_weak(
                old,
                next_head(old, first),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => old = actual,
            }
        }
    }

    /// Pops the first reference of the list at `head`, now owned by the caller.
    fn pop(&self, head: &AtomicU64, kind: u32) -> Option<GrantRef> {
        let mut old = head.load(Ordering::Acquire);
        loop {
            let first = head_index(old);
            if first == NIL {
                return None;
            }
            // Heads only ever hold references below the capacity, so `first` indexes `links`.
            // The value read is the link its push stored (the acquire above orders it) unless
            // another CPU popped `first` meanwhile; then the tag has moved on and the exchange
            // below fails, so a stale link is never installed.
            let next = self.link(first).load(Ordering::Relaxed) & !kind;
            match head.compare_exchange_weak(
                old,
                next_head(old, next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(first),
                Err(actual) => old = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU8, Ordering::SeqCst};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Grant entries in plain memory, with a backend that can hold mappings.
    #[derive(Debug, Default)]
    struct MemoryEntries {
        entries: Vec<(AtomicU16, AtomicU16, AtomicU32)>,
    }

    impl MemoryEntries {
        fn with_capacity(n: usize) -> Self {
            MemoryEntries {
                entries: (0..n)
                    .map(|_| (AtomicU16::new(0), AtomicU16::new(0), AtomicU32::new(0)))
                    .collect(),
            }
        }
        fn backend_maps(&self, gref: GrantRef, writing: bool) {
            let bit = if writing { GTF_WRITING } else { GTF_READING };
            self.entries[gref as usize].0.fetch_or(bit, SeqCst);
        }
        fn backend_unmaps(&self, gref: GrantRef) {
            self.entries[gref as usize]
                .0
                .fetch_and(!(GTF_READING | GTF_WRITING), SeqCst);
        }
        fn get(&self, gref: GrantRef) -> (u16, DomId, u32) {
            let e = &self.entries[gref as usize];
            (e.0.load(SeqCst), e.1.load(SeqCst), e.2.load(SeqCst))
        }
    }

    impl GrantEntries for MemoryEntries {
        fn write_target(&self, gref: GrantRef, domid: DomId, frame: u32) {
            let e = &self.entries[gref as usize];
            e.1.store(domid, SeqCst);
            e.2.store(frame, SeqCst);
        }
        fn publish_flags(&self, gref: GrantRef, flags: u16) {
            self.entries[gref as usize].0.store(flags, SeqCst);
        }
        fn compare_exchange_flags(&self, gref: GrantRef, current: u16, new: u16) -> u16 {
            match self.entries[gref as usize]
                .0
                .compare_exchange(current, new, SeqCst, SeqCst)
            {
                Ok(v) | Err(v) => v,
            }
        }
        fn load_flags(&self, gref: GrantRef) -> u16 {
            self.entries[gref as usize].0.load(SeqCst)
        }
    }

    fn links(n: usize) -> Vec<GrantLink> {
        (0..n).map(|_| GrantLink::new()).collect()
    }

    #[test]
    fn grants_skip_reserved_refs_and_write_the_entry() {
        let mem = MemoryEntries::with_capacity(1024);
        let links = links(1024);
        let table = GrantTable::new(&mem, &links, 512).unwrap();
        assert_eq!(table.free_count(), 512 - 8);
        let gref = table.grant_access(0, 0x1234, true).unwrap();
        assert_eq!(gref, FIRST_UNRESERVED_REF);
        let second = table.grant_access(3, 0x5678, false).unwrap();
        assert_eq!(second, 9);
        assert_eq!(mem.get(8), (GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x1234));
        assert_eq!(mem.get(9), (GTF_PERMIT_ACCESS, 3, 0x5678));
    }

    #[test]
    fn frames_beyond_32_bits_are_refused_without_consuming_a_ref() {
        let mem = MemoryEntries::with_capacity(16);
        let links = links(16);
        let table = GrantTable::new(&mem, &links, 16).unwrap();
        let before = table.free_count();
        assert_eq!(
            table.grant_access(0, 1 << 32, false),
            Err(GrantError::FrameTooLarge { frame: 1 << 32 })
        );
        assert_eq!(table.free_count(), before);
    }

    #[test]
    fn exhaustion_and_growth() {
        let mem = MemoryEntries::with_capacity(32);
        let links = links(32);
        let table = GrantTable::new(&mem, &links, 10).unwrap();
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
        let mem = MemoryEntries::with_capacity(16);
        let links = links(16);
        // Only one usable reference, so any reuse would be visible at once.
        let table = GrantTable::new(&mem, &links, 9).unwrap();
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
        let mem = MemoryEntries::with_capacity(64);
        let links = links(64);
        let table = GrantTable::new(&mem, &links, 64).unwrap();
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
        let mem = MemoryEntries::with_capacity(16);
        let links = links(16);
        let table = GrantTable::new(&mem, &links, 16).unwrap();
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
            let mem = MemoryEntries::with_capacity(64);
            let links = links(64);
            let table = GrantTable::new(&mem, &links, 16).unwrap();
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

    /// A small deterministic generator for the threads of the concurrent test.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// One CPU's I/O: grant, sometimes let the backend keep the page mapped, end, retry the
    /// deferred list, and unmap what it mapped a while later. Checks at every grant that nobody
    /// else holds the reference and that the backend does not have it mapped.
    fn io_thread(
        table: &GrantTable<'_, &MemoryEntries>,
        owner: &[AtomicU8],
        mapped: &[AtomicBool],
        mut seed: u64,
        rounds: u32,
    ) {
        let mut still_mapped = Vec::new();
        for _ in 0..rounds {
            let r = next(&mut seed);
            match table.grant_access(1, r & 0xffff, false) {
                Ok(g) => {
                    assert!(g >= FIRST_UNRESERVED_REF && g < table.capacity());
                    assert_eq!(owner[g as usize].swap(1, SeqCst), 0, "{g} granted twice");
                    assert!(!mapped[g as usize].load(SeqCst), "{g} reused while mapped");
                    let map = r % 3 == 0;
                    if map {
                        mapped[g as usize].store(true, SeqCst);
                        table.entries().backend_maps(g, r % 2 == 0);
                    }
                    owner[g as usize].store(0, SeqCst);
                    match table.end_access(g).unwrap() {
                        Revocation::Revoked => assert!(!map),
                        Revocation::Deferred => {
                            assert!(map);
                            still_mapped.push(g);
                        }
                    }
                    // (No second `end_access` here: another CPU may already hold `g` again.)
                }
                Err(e) => assert_eq!(e, GrantError::Exhausted),
            }
            if r % 5 == 0 && !still_mapped.is_empty() {
                let g = still_mapped.swap_remove((r >> 8) as usize % still_mapped.len());
                // The test's record first, then the entry: a grant that finds the entry free
                // must find the record clear.
                mapped[g as usize].store(false, SeqCst);
                table.entries().backend_unmaps(g);
            }
            if r % 4 == 0 {
                table.retry_deferred((r >> 16) as u32 % 8);
            }
        }
        for g in still_mapped {
            mapped[g as usize].store(false, SeqCst);
            table.entries().backend_unmaps(g);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Several CPUs granting, ending and retrying at once: no reference is held by two
        /// callers, none is reused while the backend maps it, and once everything is unmapped and
        /// retried every usable reference is free exactly once.
        #[test]
        fn concurrent_grants_keep_the_invariants(
            seeds in proptest::collection::vec(1u64..u64::MAX, 2..5),
            capacity in 10u32..40,
            grow_to in 40u32..64,
        ) {
            let mem = MemoryEntries::with_capacity(64);
            let links = links(64);
            let table = GrantTable::new(&mem, &links, capacity).unwrap();
            let owner: Vec<AtomicU8> = (0..64).map(|_| AtomicU8::new(0)).collect();
            let mapped: Vec<AtomicBool> = (0..64).map(|_| AtomicBool::new(false)).collect();
            std::thread::scope(|scope| {
                for &seed in &seeds {
                    let (table, owner, mapped) = (&table, &owner, &mapped);
                    scope.spawn(move || io_thread(table, owner, mapped, seed, 2000));
                }
                // The table grows while the I/O runs.
                table.grow(grow_to).unwrap();
            });
            while table.deferred_count() > 0 {
                prop_assert!(table.retry_deferred(64) > 0);
            }
            let usable = grow_to - FIRST_UNRESERVED_REF;
            prop_assert_eq!(table.free_count(), usable);
            let mut all = std::collections::BTreeSet::new();
            while let Ok(g) = table.grant_access(1, 1, true) {
                prop_assert!(all.insert(g));
            }
            prop_assert_eq!(all.len() as u32, usable);
            let stats = table.stats();
            prop_assert_eq!(stats.deferred, stats.deferred_completed);
            prop_assert_eq!(stats.granted, stats.revoked + stats.deferred + u64::from(usable));
        }
    }
}
