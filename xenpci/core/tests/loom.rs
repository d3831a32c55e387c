//! Loom models of the core's lock-free sharing: every interleaving (up to the preemption bound)
//! and every weak-memory outcome loom models.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p xenpci-core --release --test loom` (as
//! `scripts/test` does); preemptions are bounded at 3 unless `LOOM_MAX_PREEMPTIONS` says otherwise.
//!
//! Under `cfg(loom)` the core's own atomics (the grant table's lists and counters, the event
//! channels' per-vCPU slots and counters) are loom's, and the shared memory Xen writes is
//! modelled here with loom atomics too, together with the parts of Xen that write it (raising
//! an event, `EVTCHNOP_unmask`, a backend mapping and unmapping a grant). What is checked:
//! - grant references: two CPUs granting and ending at once never hold the same reference, a
//!   reference ended twice at once is revoked once, growth races grants, and deferred
//!   revocations retried from two CPUs at once while the backend unmaps never free a reference
//!   Xen still reports mapped;
//! - event channels, both ABIs: scans of two vCPUs racing Xen raising events and a child
//!   unmasking: every event is delivered exactly once, on its own vCPU, and none is left pending
//!   without an upcall to find it (a lost wake-up).
#![cfg(loom)]

use loom::sync::atomic::{fence, AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

use xen_abi::event_channel::{
    EventWord, EventWordFlags, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVcpu,
    EvtchnBindVirq, EvtchnClose, EvtchnExpandArray, EvtchnInitControl, EvtchnSend,
    EvtchnSetPriority, EvtchnStatus, EvtchnUnmask, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_MAX_QUEUES,
    EVTCHN_FIFO_PRIORITY_DEFAULT,
};
use xen_abi::grant_table::GrantFlags;
use xen_abi::types::{DomId, EvtchnPort, GrantRef};
use xenpci_core::evtchn::{
    Config, EventChannelOps, EventChannels, FifoShared, HandlerId, L2Bitmap, SharedInfoEvents,
    UpcallReach, XenErrno,
};
use xenpci_core::grant_table::{
    GrantEntries, GrantError, GrantLink, GrantTable, Revocation, FIRST_UNRESERVED_REF,
};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

// ---- grant table ----

const PERMIT: u16 = GrantFlags::PERMIT_ACCESS.bits();
const READING: u16 = GrantFlags::READING.bits();

/// The shared v1 entries: flags, domid and frame of each, as loom atomics.
struct Entries {
    flags: Vec<AtomicU16>,
    domid: Vec<AtomicU16>,
    frame: Vec<AtomicU32>,
}

impl Entries {
    fn new(n: usize) -> Self {
        Entries {
            flags: (0..n).map(|_| AtomicU16::new(0)).collect(),
            domid: (0..n).map(|_| AtomicU16::new(0)).collect(),
            frame: (0..n).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// The backend maps `gref` as Xen does: only while access is permitted.
    fn backend_maps(&self, gref: GrantRef) -> bool {
        self.flags[gref as usize]
            .fetch_update(SeqCst, SeqCst, |f| (f & PERMIT != 0).then_some(f | READING))
            .is_ok()
    }

    fn backend_unmaps(&self, gref: GrantRef) {
        self.flags[gref as usize].fetch_and(!READING, SeqCst);
    }

    fn mapped(&self, gref: GrantRef) -> bool {
        self.flags[gref as usize].load(SeqCst) & READING != 0
    }
}

impl GrantEntries for Entries {
    fn write_target(&self, gref: GrantRef, domid: DomId, frame: u32) {
        self.domid[gref as usize].store(domid, loom::sync::atomic::Ordering::Relaxed);
        self.frame[gref as usize].store(frame, loom::sync::atomic::Ordering::Relaxed);
    }
    fn publish_flags(&self, gref: GrantRef, flags: u16) {
        self.flags[gref as usize].store(flags, loom::sync::atomic::Ordering::Release);
    }
    fn compare_exchange_flags(&self, gref: GrantRef, current: u16, new: u16) -> u16 {
        match self.flags[gref as usize].compare_exchange(current, new, SeqCst, SeqCst) {
            Ok(v) | Err(v) => v,
        }
    }
    fn load_flags(&self, gref: GrantRef) -> u16 {
        self.flags[gref as usize].load(loom::sync::atomic::Ordering::Acquire)
    }
}

/// A grant table over `entries` entries with `capacity` mapped, its links leaked for the
/// model's lifetime (loom runs the closure many times; each run's storage is small).
struct Grants {
    table: GrantTable<'static, SharedEntries>,
    entries: SharedEntries,
    /// Which references a caller holds right now (to catch one handed out twice).
    held: Vec<AtomicBool>,
}

/// `Entries` shared by the table and the backend.
#[derive(Clone)]
struct SharedEntries(Arc<Entries>);

impl GrantEntries for SharedEntries {
    fn write_target(&self, gref: GrantRef, domid: DomId, frame: u32) {
        self.0.write_target(gref, domid, frame)
    }
    fn publish_flags(&self, gref: GrantRef, flags: u16) {
        self.0.publish_flags(gref, flags)
    }
    fn compare_exchange_flags(&self, gref: GrantRef, current: u16, new: u16) -> u16 {
        self.0.compare_exchange_flags(gref, current, new)
    }
    fn load_flags(&self, gref: GrantRef) -> u16 {
        self.0.load_flags(gref)
    }
}

impl Grants {
    fn new(slots: u32, capacity: u32) -> Arc<Self> {
        let entries = SharedEntries(Arc::new(Entries::new(slots as usize)));
        let links: &'static [GrantLink] = Box::leak(
            (0..slots)
                .map(|_| GrantLink::new())
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        Arc::new(Grants {
            table: GrantTable::new(entries.clone(), links, capacity).unwrap(),
            entries,
            held: (0..slots).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// Grants, checks the reference is ours alone and its entry is what we wrote, lets go.
    fn grant_and_check(&self, frame: u32) -> Option<GrantRef> {
        let g = match self.table.grant_access(1, u64::from(frame), false) {
            Ok(g) => g,
            Err(e) => {
                assert_eq!(e, GrantError::Exhausted);
                return None;
            }
        };
        assert!(
            !self.held[g as usize].swap(true, SeqCst),
            "{g} handed out twice"
        );
        let e = &self.entries.0;
        assert_eq!(e.frame[g as usize].load(SeqCst), frame);
        assert_eq!(e.flags[g as usize].load(SeqCst), PERMIT);
        self.held[g as usize].store(false, SeqCst);
        Some(g)
    }

    /// Every free reference granted once: the set of references handed out.
    fn drain(&self) -> Vec<GrantRef> {
        let mut all = Vec::new();
        while let Ok(g) = self.table.grant_access(1, 1, true) {
            assert!(!all.contains(&g));
            all.push(g);
        }
        all.sort_unstable();
        all
    }
}

#[test]
fn grants_on_two_cpus_never_share_a_reference() {
    model(|| {
        let first = FIRST_UNRESERVED_REF;
        let grants = Grants::new(first + 2, first + 2);
        let workers: Vec<_> = (0..2u32)
            .map(|cpu| {
                let grants = grants.clone();
                thread::spawn(move || {
                    for round in 0..2 {
                        if let Some(g) = grants.grant_and_check(cpu * 10 + round) {
                            assert_eq!(grants.table.end_access(g), Ok(Revocation::Revoked));
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(grants.table.free_count(), 2);
        assert_eq!(grants.drain(), [first, first + 1]);
    });
}

#[test]
fn a_reference_ended_twice_at_once_is_revoked_once() {
    model(|| {
        let first = FIRST_UNRESERVED_REF;
        let grants = Grants::new(first + 2, first + 2);
        let g = grants.grant_and_check(5).unwrap();
        let enders: Vec<_> = (0..2)
            .map(|_| {
                let grants = grants.clone();
                thread::spawn(move || grants.table.end_access(g))
            })
            .collect();
        let mut results: Vec<_> = enders.into_iter().map(|t| t.join().unwrap()).collect();
        results.sort_by_key(|r| r.is_err());
        assert_eq!(
            results,
            [
                Ok(Revocation::Revoked),
                Err(GrantError::NotGranted { gref: g })
            ]
        );
        assert_eq!(grants.drain(), [first, first + 1]);
    });
}

#[test]
fn growth_races_grants() {
    model(|| {
        let first = FIRST_UNRESERVED_REF;
        let grants = Grants::new(first + 3, first + 1);
        let grower = {
            let grants = grants.clone();
            thread::spawn(move || grants.table.grow(first + 3).unwrap())
        };
        let granter = {
            let grants = grants.clone();
            thread::spawn(move || {
                let a = grants.grant_and_check(1);
                let b = grants.grant_and_check(2);
                for g in [a, b].into_iter().flatten() {
                    assert_eq!(grants.table.end_access(g), Ok(Revocation::Revoked));
                }
            })
        };
        grower.join().unwrap();
        granter.join().unwrap();
        assert_eq!(grants.table.capacity(), first + 3);
        assert_eq!(grants.drain(), [first, first + 1, first + 2]);
    });
}

#[test]
fn deferred_revocations_retried_concurrently_never_free_a_mapped_reference() {
    model(|| {
        let first = FIRST_UNRESERVED_REF;
        let grants = Grants::new(first + 2, first + 2);
        let (stuck, released) = (first, first + 1);
        for frame in 0..2 {
            let g = grants.grant_and_check(frame).unwrap();
            assert!(grants.entries.0.backend_maps(g));
            assert_eq!(grants.table.end_access(g), Ok(Revocation::Deferred));
        }
        let backend = {
            let grants = grants.clone();
            thread::spawn(move || grants.entries.0.backend_unmaps(released))
        };
        let retriers: Vec<_> = (0..2)
            .map(|_| {
                let grants = grants.clone();
                thread::spawn(move || {
                    let done = grants.table.retry_deferred(2);
                    // A reference freed by a retry must be granted afresh, never while mapped.
                    if let Some(g) = grants.grant_and_check(9) {
                        assert_eq!(g, released);
                        assert!(!grants.entries.0.mapped(g));
                        assert_eq!(grants.table.end_access(g), Ok(Revocation::Revoked));
                    }
                    done
                })
            })
            .collect();
        backend.join().unwrap();
        let done: u32 = retriers.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(done <= 1);
        grants.table.retry_deferred(4);
        assert_eq!(grants.table.deferred_count(), 1);
        assert!(grants.entries.0.mapped(stuck));
        assert_eq!(grants.drain(), [released]);
        let stats = grants.table.stats();
        assert_eq!((stats.deferred, stats.deferred_completed), (2, 1));
    });
}

// ---- event channels ----

const PENDING: u32 = EventWordFlags::PENDING.bits();
const MASKED: u32 = EventWordFlags::MASKED.bits();
const LINKED: u32 = EventWordFlags::LINKED.bits();
/// Event words the model backs (the core touches only the ports it binds).
const WORDS: usize = 8;
const VCPUS: usize = 2;

/// Xen and the shared memory of both ABIs, for two vCPUs.
struct XenModel {
    fifo: bool,
    next_port: AtomicU32,
    vcpu_of: Vec<AtomicU32>,
    pending: Vec<AtomicU64>,
    mask: Vec<AtomicU64>,
    sel: Vec<AtomicU64>,
    upcall: Vec<AtomicBool>,
    words: Vec<AtomicU32>,
    ready: Vec<AtomicU32>,
    heads: Vec<AtomicU32>,
    /// Xen's queue tails, under its queue lock.
    tails: Mutex<[[EvtchnPort; EVTCHN_FIFO_MAX_QUEUES]; VCPUS]>,
}

#[derive(Clone)]
struct Xen(Arc<XenModel>);

impl Xen {
    fn new(fifo: bool) -> Self {
        let n = |count: usize| (0..count).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        // The core only touches the 2-level bitmaps when the 2-level ABI is in use.
        let words_2l = if fifo { 0 } else { 64 };
        Xen(Arc::new(XenModel {
            fifo,
            next_port: AtomicU32::new(1),
            vcpu_of: (0..WORDS).map(|_| AtomicU32::new(0)).collect(),
            pending: n(words_2l),
            mask: n(words_2l),
            sel: n(VCPUS),
            upcall: (0..VCPUS).map(|_| AtomicBool::new(false)).collect(),
            words: (0..WORDS).map(|_| AtomicU32::new(0)).collect(),
            ready: (0..VCPUS).map(|_| AtomicU32::new(0)).collect(),
            heads: (0..VCPUS * EVTCHN_FIFO_MAX_QUEUES)
                .map(|_| AtomicU32::new(0))
                .collect(),
            tails: Mutex::new([[0; EVTCHN_FIFO_MAX_QUEUES]; VCPUS]),
        }))
    }

    fn vcpu(&self, port: EvtchnPort) -> usize {
        self.0.vcpu_of[port as usize].load(SeqCst) as usize
    }

    /// Xen raising `port` (a backend's `EVTCHNOP_send`).
    fn raise(&self, port: EvtchnPort) {
        let x = &self.0;
        let vcpu = self.vcpu(port);
        if x.fifo {
            x.words[port as usize].fetch_or(PENDING, SeqCst);
            self.link(port, vcpu);
        } else {
            let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
            let was = x.pending[w].fetch_or(bit, SeqCst);
            // Xen's `test_and_set_bit` is a locked instruction: a full barrier. (Loom models a
            // SeqCst read-modify-write as acquire/release only, so the barrier is explicit.)
            fence(SeqCst);
            if was & bit == 0 && x.mask[w].load(SeqCst) & bit == 0 {
                x.sel[vcpu].fetch_or(1 << w, SeqCst);
                x.upcall[vcpu].store(true, SeqCst);
            }
        }
    }

    /// FIFO: links a pending, unmasked, unlinked event on its vCPU's default queue.
    fn link(&self, port: EvtchnPort, vcpu: usize) {
        let x = &self.0;
        let q = EVTCHN_FIFO_PRIORITY_DEFAULT as usize;
        let mut tails = x.tails.lock().unwrap();
        let word = &x.words[port as usize];
        let w = word.load(SeqCst);
        if w & (MASKED | LINKED) != 0 || w & PENDING == 0 {
            return;
        }
        word.fetch_or(LINKED, SeqCst);
        let tail = tails[vcpu][q];
        let mut linked = false;
        if tail != 0 && tail != port {
            let tw = &x.words[tail as usize];
            let mut cur = tw.load(SeqCst);
            while cur & LINKED != 0 {
                match tw.compare_exchange(
                    cur,
                    (cur & !EVTCHN_FIFO_LINK_MASK) | port,
                    SeqCst,
                    SeqCst,
                ) {
                    Ok(_) => {
                        linked = true;
                        break;
                    }
                    Err(actual) => cur = actual,
                }
            }
        }
        if !linked {
            x.heads[vcpu * EVTCHN_FIFO_MAX_QUEUES + q].store(port, SeqCst);
        }
        tails[vcpu][q] = port;
        x.ready[vcpu].fetch_or(1 << q, SeqCst);
        x.upcall[vcpu].store(true, SeqCst);
    }

    fn upcall_pending(&self, vcpu: usize) -> bool {
        self.0.upcall[vcpu].load(SeqCst)
    }
}

impl SharedInfoEvents for Xen {
    fn load(&self, map: L2Bitmap, word: usize) -> u64 {
        self.bitmap(map)[word].load(SeqCst)
    }
    fn fetch_or(&self, map: L2Bitmap, word: usize, bits: u64) -> u64 {
        self.bitmap(map)[word].fetch_or(bits, SeqCst)
    }
    fn fetch_and(&self, map: L2Bitmap, word: usize, bits: u64) -> u64 {
        self.bitmap(map)[word].fetch_and(bits, SeqCst)
    }
    fn take_pending_sel(&self, vcpu: u32) -> u64 {
        self.0.sel[vcpu as usize].swap(0, SeqCst)
    }
    fn clear_upcall_pending(&self, vcpu: u32) {
        self.0.upcall[vcpu as usize].store(false, SeqCst);
    }
}

impl Xen {
    fn bitmap(&self, map: L2Bitmap) -> &[AtomicU64] {
        match map {
            L2Bitmap::Pending => &self.0.pending,
            L2Bitmap::Mask => &self.0.mask,
        }
    }
    fn word(&self, port: EvtchnPort) -> &AtomicU32 {
        &self.0.words[port as usize]
    }
}

impl FifoShared for Xen {
    fn control_block(&self, vcpu: u32) -> Option<(u64, u32)> {
        Some((0x100 + u64::from(vcpu), 0))
    }
    fn prepare_array_page(&self, page: u32) -> Option<u64> {
        (page == 0).then_some(0x200)
    }
    fn load_word(&self, port: EvtchnPort) -> EventWord {
        self.word(port).load(SeqCst)
    }
    fn fetch_or_word(&self, port: EvtchnPort, bits: EventWord) -> EventWord {
        self.word(port).fetch_or(bits, SeqCst)
    }
    fn fetch_and_word(&self, port: EvtchnPort, bits: EventWord) -> EventWord {
        self.word(port).fetch_and(bits, SeqCst)
    }
    fn compare_exchange_word(
        &self,
        port: EvtchnPort,
        current: EventWord,
        new: EventWord,
    ) -> Result<EventWord, EventWord> {
        self.word(port)
            .compare_exchange(current, new, SeqCst, SeqCst)
    }
    fn take_ready(&self, vcpu: u32) -> u32 {
        self.0.ready[vcpu as usize].swap(0, SeqCst)
    }
    fn take_head(&self, vcpu: u32, queue: usize) -> EvtchnPort {
        self.0.heads[vcpu as usize * EVTCHN_FIFO_MAX_QUEUES + queue].swap(0, SeqCst)
    }
}

impl EventChannelOps for Xen {
    fn alloc_unbound(&self, arg: &mut EvtchnAllocUnbound) -> Result<(), XenErrno> {
        arg.port = self.0.next_port.fetch_add(1, SeqCst);
        Ok(())
    }
    fn bind_interdomain(&self, _: &mut EvtchnBindInterdomain) -> Result<(), XenErrno> {
        Err(XenErrno::ENOSYS)
    }
    fn bind_virq(&self, _: &mut EvtchnBindVirq) -> Result<(), XenErrno> {
        Err(XenErrno::ENOSYS)
    }
    fn send(&self, _: &EvtchnSend) -> Result<(), XenErrno> {
        Ok(())
    }
    fn close(&self, _: &EvtchnClose) -> Result<(), XenErrno> {
        Ok(())
    }
    /// Xen's unmask: clear the mask, and raise the upcall again if the event is pending.
    fn unmask(&self, arg: &EvtchnUnmask) -> Result<(), XenErrno> {
        let x = &self.0;
        let port = arg.port;
        let vcpu = self.vcpu(port);
        if x.fifo {
            x.words[port as usize].fetch_and(!MASKED, SeqCst);
            self.link(port, vcpu);
        } else {
            let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
            x.mask[w].fetch_and(!bit, SeqCst);
            fence(SeqCst);
            if x.pending[w].load(SeqCst) & bit != 0 {
                x.sel[vcpu].fetch_or(1 << w, SeqCst);
                x.upcall[vcpu].store(true, SeqCst);
            }
        }
        Ok(())
    }
    fn status(&self, _: &mut EvtchnStatus) -> Result<(), XenErrno> {
        Err(XenErrno::ENOSYS)
    }
    fn init_control(&self, _: &mut EvtchnInitControl) -> Result<(), XenErrno> {
        if self.0.fifo {
            Ok(())
        } else {
            Err(XenErrno::ENOSYS)
        }
    }
    fn expand_array(&self, _: &EvtchnExpandArray) -> Result<(), XenErrno> {
        Ok(())
    }
    fn set_priority(&self, _: &EvtchnSetPriority) -> Result<(), XenErrno> {
        Ok(())
    }
    fn bind_vcpu(&self, arg: &EvtchnBindVcpu) -> Result<(), XenErrno> {
        self.0.vcpu_of[arg.port as usize].store(arg.vcpu, SeqCst);
        Ok(())
    }
}

type Chans = EventChannels<Xen, Xen, Xen, WORDS, VCPUS>;

/// Event channels over the model with one port per vCPU: the port of vCPU `v` is `v + 1`.
fn channels(fifo: bool) -> (Xen, Arc<Chans>) {
    let xen = Xen::new(fifo);
    let config = Config {
        vcpus: VCPUS as u32,
        prefer_fifo: true,
    };
    let mut ev = Chans::unstarted(xen.clone(), xen.clone(), xen.clone());
    ev.start(config).unwrap();
    ev.set_upcall_reach(UpcallReach::AllVcpus).unwrap();
    for vcpu in 0..VCPUS as u32 {
        let port = ev.alloc_unbound(0, HandlerId(vcpu)).unwrap();
        assert_eq!(port, vcpu + 1);
        if vcpu != 0 {
            ev.bind_vcpu(port, vcpu).unwrap();
        }
    }
    (xen, Arc::new(ev))
}

/// Scans `vcpu` once, checking each port belongs to it; returns the ports.
fn scan(ev: &Chans, vcpu: u32) -> Vec<EvtchnPort> {
    let mut got = Vec::new();
    ev.scan(vcpu, 4, |port, handler| {
        assert_eq!(
            handler,
            HandlerId(vcpu),
            "port {port} reported on vCPU {vcpu}"
        );
        got.push(port);
    })
    .expect("each vCPU is scanned from one thread");
    got
}

/// What the upcall handlers of every vCPU still find once everything else has stopped: a scan
/// runs only where Xen set `evtchn_upcall_pending` (an event left pending without it is lost).
fn drain(xen: &Xen, ev: &Chans, delivered: &mut Vec<EvtchnPort>) {
    for _ in 0..4 {
        for vcpu in 0..VCPUS {
            if xen.upcall_pending(vcpu) {
                delivered.extend(scan(ev, vcpu as u32));
            }
        }
    }
}

/// vCPU 0's port is masked; Xen raises it while a child unmasks it and vCPU 0 scans.
fn unmask_races_raise_and_scan(fifo: bool) {
    model(move || {
        let (xen, ev) = channels(fifo);
        ev.mask(1).unwrap();
        let raiser = {
            let xen = xen.clone();
            thread::spawn(move || xen.raise(1))
        };
        let child = {
            let ev = ev.clone();
            thread::spawn(move || ev.unmask(1).unwrap())
        };
        let scanner = {
            let ev = ev.clone();
            thread::spawn(move || scan(&ev, 0))
        };
        raiser.join().unwrap();
        child.join().unwrap();
        let mut delivered = scanner.join().unwrap();
        drain(&xen, &ev, &mut delivered);
        assert_eq!(delivered, [1], "the event was lost or delivered twice");
        assert!(!ev.is_pending(1).unwrap());
    });
}

#[test]
fn two_level_unmask_races_raise_and_scan() {
    unmask_races_raise_and_scan(false);
}

#[test]
fn fifo_unmask_races_raise_and_scan() {
    unmask_races_raise_and_scan(true);
}

/// Both vCPUs scan while Xen raises each one's port: each event is delivered once, by its own
/// vCPU's scan.
fn two_vcpus_scan_while_xen_raises(fifo: bool) {
    model(move || {
        let (xen, ev) = channels(fifo);
        let raiser = {
            let xen = xen.clone();
            thread::spawn(move || {
                xen.raise(1);
                xen.raise(2);
            })
        };
        let scanners: Vec<_> = (0..VCPUS as u32)
            .map(|vcpu| {
                let ev = ev.clone();
                thread::spawn(move || scan(&ev, vcpu))
            })
            .collect();
        raiser.join().unwrap();
        let mut delivered: Vec<_> = scanners
            .into_iter()
            .flat_map(|s| s.join().unwrap())
            .collect();
        drain(&xen, &ev, &mut delivered);
        delivered.sort_unstable();
        assert_eq!(delivered, [1, 2]);
        assert_eq!(ev.stats().delivered, 2);
    });
}

#[test]
fn two_level_two_vcpus_scan_while_xen_raises() {
    two_vcpus_scan_while_xen_raises(false);
}

#[test]
fn fifo_two_vcpus_scan_while_xen_raises() {
    two_vcpus_scan_while_xen_raises(true);
}
