extern crate std;

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::vec::Vec;

use proptest::prelude::*;
use xen_abi::event_channel::{
    EvtchnStatus, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_MAX_QUEUES, EVTCHN_FIFO_NR_CHANNELS,
    EVTCHN_FIFO_PRIORITY_DEFAULT,
};

use super::*;

mod concurrent;

const LINKED: u32 = EventWordFlags::LINKED.bits();
const PENDING: u32 = EventWordFlags::PENDING.bits();
const MASKED: u32 = EventWordFlags::MASKED.bits();

/// A `RefCell`-like cell that threads may share: the Xen model's own state, under one lock as
/// Xen's per-queue and per-domain locks would hold it.
#[derive(Debug, Default)]
struct Locked<T>(Mutex<T>);

impl<T> Locked<T> {
    fn new(value: T) -> Self {
        Locked(Mutex::new(value))
    }
    fn borrow(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }
    fn borrow_mut(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }
}

#[derive(Debug)]
/// Shared memory of both ABIs plus the part of Xen that raises events into it.
struct Mem {
    pending: [AtomicU64; 64],
    mask: [AtomicU64; 64],
    sel: Vec<AtomicU64>,
    upcall: Vec<AtomicU8>,
    words: Vec<AtomicU32>,
    pages: AtomicU32,
    max_pages: u32,
    ready: Vec<AtomicU32>,
    heads: Vec<[AtomicU32; EVTCHN_FIFO_MAX_QUEUES]>,
    tails: Locked<Vec<[u32; EVTCHN_FIFO_MAX_QUEUES]>>,
}

impl Mem {
    fn new(vcpus: usize) -> Self {
        Mem {
            pending: core::array::from_fn(|_| AtomicU64::new(0)),
            mask: core::array::from_fn(|_| AtomicU64::new(0)),
            sel: (0..vcpus).map(|_| AtomicU64::new(0)).collect(),
            upcall: (0..vcpus).map(|_| AtomicU8::new(0)).collect(),
            words: (0..EVTCHN_FIFO_NR_CHANNELS)
                .map(|_| AtomicU32::new(0))
                .collect(),
            pages: AtomicU32::new(0),
            max_pages: 128,
            ready: (0..vcpus).map(|_| AtomicU32::new(0)).collect(),
            heads: (0..vcpus)
                .map(|_| core::array::from_fn(|_| AtomicU32::new(0)))
                .collect(),
            tails: Locked::new(std::vec![[0; EVTCHN_FIFO_MAX_QUEUES]; vcpus]),
        }
    }

    /// Xen raising a 2-level port for `vcpu`.
    fn raise_2l(&self, port: u32, vcpu: usize) {
        let (w, bit) = split_2l(port);
        let was = self.pending[w].fetch_or(bit, SeqCst);
        if was & bit == 0 && self.mask[w].load(SeqCst) & bit == 0 {
            self.sel[vcpu].fetch_or(1 << w, SeqCst);
            self.upcall[vcpu].store(1, SeqCst);
        }
    }

    /// Xen raising a FIFO port on `vcpu`'s queue `prio`.
    fn raise_fifo(&self, port: u32, vcpu: usize, prio: usize) {
        self.words[port as usize].fetch_or(PENDING, SeqCst);
        self.link_fifo(port, vcpu, prio);
    }

    fn link_fifo(&self, port: u32, vcpu: usize, prio: usize) {
        // The whole link under the queue's lock, as Xen holds it.
        let mut tails = self.tails.borrow_mut();
        let w = self.words[port as usize].load(SeqCst);
        if w & (MASKED | LINKED) != 0 || w & PENDING == 0 {
            return;
        }
        self.words[port as usize].fetch_or(LINKED, SeqCst);
        let tail = tails[vcpu][prio];
        // As Xen: a tail equal to the port itself means the queue is empty (the port was
        // consumed and its LINKED bit is the one just set). Linking to a tail the guest is
        // unlinking at the same moment is a compare-exchange loop on its whole word.
        let linked_to_tail = tail != 0 && tail != port && {
            let tw = &self.words[tail as usize];
            let mut cur = tw.load(SeqCst);
            loop {
                if cur & LINKED == 0 {
                    break false;
                }
                let new = (cur & !EVTCHN_FIFO_LINK_MASK) | port;
                match tw.compare_exchange(cur, new, SeqCst, SeqCst) {
                    Ok(_) => break true,
                    Err(actual) => cur = actual,
                }
            }
        };
        if !linked_to_tail {
            self.heads[vcpu][prio].store(port, SeqCst);
        }
        tails[vcpu][prio] = port;
        self.ready[vcpu].fetch_or(1 << prio, SeqCst);
        self.upcall[vcpu].store(1, SeqCst);
    }
}

impl SharedInfoEvents for Mem {
    fn load(&self, map: L2Bitmap, word: usize) -> u64 {
        self.map(map)[word].load(SeqCst)
    }
    fn fetch_or(&self, map: L2Bitmap, word: usize, bits: u64) -> u64 {
        self.map(map)[word].fetch_or(bits, SeqCst)
    }
    fn fetch_and(&self, map: L2Bitmap, word: usize, bits: u64) -> u64 {
        self.map(map)[word].fetch_and(bits, SeqCst)
    }
    fn take_pending_sel(&self, vcpu: u32) -> u64 {
        self.sel[vcpu as usize].swap(0, SeqCst)
    }
    fn clear_upcall_pending(&self, vcpu: u32) {
        self.upcall[vcpu as usize].store(0, SeqCst);
    }
}

impl Mem {
    fn map(&self, map: L2Bitmap) -> &[AtomicU64; 64] {
        match map {
            L2Bitmap::Pending => &self.pending,
            L2Bitmap::Mask => &self.mask,
        }
    }
    fn word(&self, port: u32) -> &AtomicU32 {
        assert!(
            port < self.pages.load(SeqCst) * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE,
            "access to unmapped event word {port}"
        );
        &self.words[port as usize]
    }
}

impl FifoShared for Mem {
    fn control_block(&self, vcpu: u32) -> Option<(u64, u32)> {
        Some((0x1000 + u64::from(vcpu), 0))
    }
    fn prepare_array_page(&self, page: u32) -> Option<u64> {
        if page >= self.max_pages {
            return None;
        }
        assert_eq!(page, self.pages.load(SeqCst));
        self.pages.store(page + 1, SeqCst);
        Some(0x2000 + u64::from(page))
    }
    fn load_word(&self, port: u32) -> u32 {
        self.word(port).load(SeqCst)
    }
    fn fetch_or_word(&self, port: u32, bits: u32) -> u32 {
        self.word(port).fetch_or(bits, SeqCst)
    }
    fn fetch_and_word(&self, port: u32, bits: u32) -> u32 {
        self.word(port).fetch_and(bits, SeqCst)
    }
    fn compare_exchange_word(&self, port: u32, current: u32, new: u32) -> Result<u32, u32> {
        self.word(port)
            .compare_exchange(current, new, SeqCst, SeqCst)
    }
    fn take_ready(&self, vcpu: u32) -> u32 {
        self.ready[vcpu as usize].swap(0, SeqCst)
    }
    fn take_head(&self, vcpu: u32, queue: usize) -> u32 {
        self.heads[vcpu as usize][queue].swap(0, SeqCst)
    }
}

#[derive(Debug, Default)]
struct OpsState {
    next_port: u32,
    fifo: bool,
    init_control_error: Option<XenErrno>,
    init_controls: Vec<u32>,
    expanded: Vec<u64>,
    closed: Vec<u32>,
    sent: Vec<u32>,
    unmasks: Vec<u32>,
    vcpu_of: BTreeMap<u32, u32>,
    prio_of: BTreeMap<u32, u32>,
}

/// The hypercalls, acting on `Mem` like Xen.
#[derive(Debug)]
struct Ops<'m> {
    mem: &'m Mem,
    state: Locked<OpsState>,
}

impl<'m> Ops<'m> {
    fn new(mem: &'m Mem, init_control_error: Option<XenErrno>) -> Self {
        Ops {
            mem,
            state: Locked::new(OpsState {
                next_port: 1,
                init_control_error,
                ..OpsState::default()
            }),
        }
    }
    fn new_port(&self) -> u32 {
        let mut s = self.state.borrow_mut();
        let port = s.next_port;
        s.next_port += 1;
        port
    }
    /// Raises `port` as Xen would under the ABI in use.
    fn raise(&self, port: u32) {
        let s = self.state.borrow();
        let vcpu = *s.vcpu_of.get(&port).unwrap_or(&0) as usize;
        if s.fifo {
            let prio = *s
                .prio_of
                .get(&port)
                .unwrap_or(&EVTCHN_FIFO_PRIORITY_DEFAULT) as usize;
            self.mem.raise_fifo(port, vcpu, prio);
        } else {
            self.mem.raise_2l(port, vcpu);
        }
    }
}

impl EventChannelOps for Ops<'_> {
    fn alloc_unbound(&self, arg: &mut EvtchnAllocUnbound) -> Result<(), XenErrno> {
        arg.port = self.new_port();
        Ok(())
    }
    fn bind_interdomain(&self, arg: &mut EvtchnBindInterdomain) -> Result<(), XenErrno> {
        arg.local_port = self.new_port();
        Ok(())
    }
    fn bind_virq(&self, arg: &mut EvtchnBindVirq) -> Result<(), XenErrno> {
        arg.port = self.new_port();
        self.state.borrow_mut().vcpu_of.insert(arg.port, arg.vcpu);
        Ok(())
    }
    fn send(&self, arg: &EvtchnSend) -> Result<(), XenErrno> {
        self.state.borrow_mut().sent.push(arg.port);
        Ok(())
    }
    fn close(&self, arg: &EvtchnClose) -> Result<(), XenErrno> {
        self.state.borrow_mut().closed.push(arg.port);
        Ok(())
    }
    fn unmask(&self, arg: &EvtchnUnmask) -> Result<(), XenErrno> {
        let port = arg.port;
        self.state.borrow_mut().unmasks.push(port);
        let fifo = self.state.borrow().fifo;
        if fifo {
            self.mem.words[port as usize].fetch_and(!MASKED, SeqCst);
            let s = self.state.borrow();
            let vcpu = *s.vcpu_of.get(&port).unwrap_or(&0) as usize;
            let prio = *s
                .prio_of
                .get(&port)
                .unwrap_or(&EVTCHN_FIFO_PRIORITY_DEFAULT) as usize;
            self.mem.link_fifo(port, vcpu, prio);
        } else {
            let (w, bit) = split_2l(port);
            self.mem.mask[w].fetch_and(!bit, SeqCst);
            if self.mem.pending[w].load(SeqCst) & bit != 0 {
                let vcpu = *self.state.borrow().vcpu_of.get(&port).unwrap_or(&0) as usize;
                self.mem.sel[vcpu].fetch_or(1 << w, SeqCst);
                self.mem.upcall[vcpu].store(1, SeqCst);
            }
        }
        Ok(())
    }
    fn status(&self, _arg: &mut EvtchnStatus) -> Result<(), XenErrno> {
        Err(XenErrno::ENOSYS)
    }
    fn init_control(&self, arg: &mut EvtchnInitControl) -> Result<(), XenErrno> {
        let mut s = self.state.borrow_mut();
        if let Some(errno) = s.init_control_error {
            return Err(errno);
        }
        s.init_controls.push(arg.vcpu);
        s.fifo = true;
        arg.link_bits = 17;
        Ok(())
    }
    fn expand_array(&self, arg: &EvtchnExpandArray) -> Result<(), XenErrno> {
        self.state.borrow_mut().expanded.push(arg.array_gfn);
        Ok(())
    }
    fn set_priority(&self, arg: &EvtchnSetPriority) -> Result<(), XenErrno> {
        self.state
            .borrow_mut()
            .prio_of
            .insert(arg.port, arg.priority);
        Ok(())
    }
    fn bind_vcpu(&self, arg: &EvtchnBindVcpu) -> Result<(), XenErrno> {
        self.state.borrow_mut().vcpu_of.insert(arg.port, arg.vcpu);
        Ok(())
    }
}

type Chans<'a, const P: usize> = EventChannels<&'a Ops<'a>, &'a Mem, &'a Mem, P, 4>;

/// Event channels on two vCPUs, with an upcall that reaches both (the per-vCPU vector).
fn setup<'a, const P: usize>(mem: &'a Mem, ops: &'a Ops<'a>) -> Chans<'a, P> {
    let mut ev = EventChannels::unstarted(ops, mem, mem);
    ev.start(Config {
        vcpus: 2,
        prefer_fifo: true,
    })
    .unwrap();
    ev.set_upcall_reach(UpcallReach::AllVcpus).unwrap();
    ev
}

fn scan_all<const P: usize>(ev: &Chans<'_, P>, vcpu: u32, budget: u32) -> Vec<u32> {
    let mut out = Vec::new();
    ev.scan(vcpu, budget, |port, _| out.push(port)).unwrap();
    out
}

#[test]
fn enosys_from_init_control_falls_back_to_two_level() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, Some(XenErrno::ENOSYS));
    let ev: Chans<'_, 64> = setup(&mem, &ops);
    assert_eq!(ev.abi(), Abi::TwoLevel);
    // Every port starts masked.
    assert!(mem.mask.iter().all(|w| w.load(SeqCst) == u64::MAX));
    // Other errors are reported, not hidden.
    let ops = Ops::new(&mem, Some(XenErrno::EINVAL));
    let mut ev = EventChannels::<_, _, _, 64, 4>::unstarted(&ops, &mem, &mem);
    let Err(err) = ev.start(Config {
        vcpus: 1,
        prefer_fifo: true,
    }) else {
        panic!("init_control failure was hidden");
    };
    assert_eq!(
        err,
        EvtchnError::Hypercall {
            op: EVTCHNOP_INIT_CONTROL,
            errno: XenErrno::EINVAL
        }
    );
}

#[test]
fn fifo_is_the_default_and_expands_on_bind() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, None);
    let ev: Chans<'_, 4096> = setup(&mem, &ops);
    assert_eq!(ev.abi(), Abi::Fifo);
    assert_eq!(ops.state.borrow().init_controls, [0, 1]);
    assert!(ops.state.borrow().expanded.is_empty());
    let port = ev.alloc_unbound(0, HandlerId(1)).unwrap();
    assert_eq!(ops.state.borrow().expanded, [0x2000]);
    ops.state.borrow_mut().next_port = 2500;
    let far = ev.bind_interdomain(0, 9, HandlerId(2)).unwrap();
    assert_eq!(far, 2500);
    assert_eq!(ops.state.borrow().expanded, [0x2000, 0x2001, 0x2002]);
    assert_eq!(ev.stats().array_pages, 3);
    ops.raise(port);
    ops.raise(far);
    assert_eq!(scan_all(&ev, 0, 10), [port, far]);
}

fn round_trip(init_error: Option<XenErrno>, abi: Abi) {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, init_error);
    let ev: Chans<'_, 256> = setup(&mem, &ops);
    assert_eq!(ev.abi(), abi);
    let a = ev.bind_interdomain(0, 7, HandlerId(10)).unwrap();
    let b = ev.alloc_unbound(0, HandlerId(11)).unwrap();
    assert!(!ev.is_masked(a).unwrap());

    ops.raise(a);
    let mut got = Vec::new();
    let outcome = ev.scan(0, 8, |p, h| got.push((p, h))).unwrap();
    assert_eq!(got, [(a, HandlerId(10))]);
    assert_eq!(
        outcome,
        ScanOutcome {
            delivered: 1,
            unhandled: 0,
            more: false
        }
    );
    assert!(!ev.is_pending(a).unwrap());

    // Masked: the event is recorded but not delivered; unmasking re-raises it via Xen.
    ev.mask(b).unwrap();
    ops.raise(b);
    assert!(scan_all(&ev, 0, 8).is_empty());
    assert!(ev.is_pending(b).unwrap());
    ev.unmask(b).unwrap();
    assert_eq!(ops.state.borrow().unmasks, [b]);
    assert_eq!(scan_all(&ev, 0, 8), [b]);

    // Unmasking a port that is not pending needs no hypercall.
    ev.mask(a).unwrap();
    ev.unmask(a).unwrap();
    assert_eq!(ops.state.borrow().unmasks.len(), 1);
    assert_eq!(ev.stats().unmask_hypercalls, 1);

    // Clearing a pending port drops it.
    ev.mask(a).unwrap();
    ops.raise(a);
    ev.clear_pending(a).unwrap();
    ev.unmask(a).unwrap();
    assert!(scan_all(&ev, 0, 8).is_empty());

    ev.send(a).unwrap();
    assert_eq!(ops.state.borrow().sent, [a]);
    ev.close(a).unwrap();
    assert_eq!(ops.state.borrow().closed, [a]);
    assert_eq!(ev.dispatch().get(a), None);
    assert!(ev.is_masked(a).unwrap());
    assert_eq!(ev.stats().delivered, 2);
}

#[test]
fn round_trip_two_level() {
    round_trip(Some(XenErrno::ENOSYS), Abi::TwoLevel);
}

#[test]
fn round_trip_fifo() {
    round_trip(None, Abi::Fifo);
}

#[test]
fn fired_ports_without_handler_are_masked_and_counted() {
    for init in [None, Some(XenErrno::ENOSYS)] {
        let mem = Mem::new(4);
        let ops = Ops::new(&mem, init);
        let ev: Chans<'_, 256> = setup(&mem, &ops);
        let a = ev.alloc_unbound(0, HandlerId(1)).unwrap();
        // A port Xen bound that the core never adopted; unmasked by the shell or left so.
        let stray = a + 1;
        if ev.abi() == Abi::TwoLevel {
            let (w, bit) = split_2l(stray);
            mem.mask[w].fetch_and(!bit, SeqCst);
        }
        ops.raise(stray);
        let outcome = ev.scan(0, 8, |_, _| panic!("nothing registered")).unwrap();
        assert_eq!(outcome.unhandled, 1);
        assert_eq!(ev.stats().unhandled_masked, 1);
        assert!(ev.is_masked(stray).unwrap());
    }
}

#[test]
fn dispatch_refuses_ports_beyond_capacity() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, None);
    let ev: Chans<'_, 64> = setup(&mem, &ops);
    ops.state.borrow_mut().next_port = 64;
    let err = ev.alloc_unbound(0, HandlerId(1)).unwrap_err();
    assert_eq!(
        err,
        EvtchnError::PortOutOfRange {
            port: 64,
            capacity: 64
        }
    );
    assert_eq!(ops.state.borrow().closed, [64]);

    let table = DispatchTable::<8>::new();
    let binding = Binding {
        handler: HandlerId(3),
        vcpu: 0,
    };
    assert_eq!(
        table.register(0, binding),
        Err(EvtchnError::InvalidPort { port: 0 })
    );
    table.register(7, binding).unwrap();
    assert_eq!(
        table.register(7, binding),
        Err(EvtchnError::PortInUse { port: 7 })
    );
    assert_eq!(table.registered(), 1);
    assert_eq!(table.unregister(7), Ok(binding));
    assert_eq!(
        table.unregister(7),
        Err(EvtchnError::NotRegistered { port: 7 })
    );
}

#[test]
fn two_level_scan_leaves_other_vcpus_ports_alone() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, Some(XenErrno::ENOSYS));
    let ev: Chans<'_, 256> = setup(&mem, &ops);
    let p0 = ev.alloc_unbound(0, HandlerId(0)).unwrap();
    let p1 = ev.bind_virq(0, 1, HandlerId(1)).unwrap();
    ops.raise(p0);
    ops.raise(p1);
    // Both in word 0: pretend vCPU 0 was also told about word 0.
    assert_eq!(scan_all(&ev, 0, 8), [p0]);
    assert_eq!(scan_all(&ev, 1, 8), [p1]);
    assert_eq!(ev.stats().unhandled_masked, 0);
}

/// Port `hot` re-fires after every scan while every other bound port fires once; each of them
/// must be delivered within `bound` scans.
fn fairness(init: Option<XenErrno>) {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, init);
    let ev: Chans<'_, 512> = setup(&mem, &ops);
    let ports: Vec<u32> = (0..300)
        .map(|_| ev.alloc_unbound(0, HandlerId(0)).unwrap())
        .collect();
    let hot = ports[0];
    for &p in &ports {
        ops.raise(p);
    }
    let budget = 8;
    let mut seen = BTreeSet::new();
    let bound = ports.len().div_ceil(budget as usize - 1) + 2;
    for _ in 0..bound {
        for p in scan_all(&ev, 0, budget) {
            seen.insert(p);
        }
        ops.raise(hot);
    }
    assert_eq!(
        seen.len(),
        ports.len(),
        "starved ports within {bound} scans"
    );
}

#[test]
fn fairness_two_level() {
    fairness(Some(XenErrno::ENOSYS));
}

#[test]
fn fairness_fifo() {
    fairness(None);
}

/// Every port fires; small budgets return at most `budget` ports per call and deliver all
/// exactly once.
fn storm(init: Option<XenErrno>) {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, init);
    let ev: Chans<'_, 4096> = setup(&mem, &ops);
    let ports: Vec<u32> = (1..4096)
        .map(|_| ev.alloc_unbound(0, HandlerId(0)).unwrap())
        .collect();
    for &p in &ports {
        ops.raise(p);
    }
    let budget = 16;
    let mut seen = BTreeSet::new();
    let mut calls = 0;
    loop {
        let mut got = Vec::new();
        let outcome = ev.scan(0, budget, |p, _| got.push(p)).unwrap();
        assert!(got.len() <= budget as usize);
        for p in got {
            assert!(seen.insert(p), "port {p} delivered twice");
        }
        calls += 1;
        if !outcome.more {
            break;
        }
        assert!(calls < 10_000);
    }
    assert_eq!(seen.len(), ports.len());
    assert!(ev.stats().budget_exhausted > 0);
}

#[test]
fn storm_two_level() {
    storm(Some(XenErrno::ENOSYS));
}

#[test]
fn storm_fifo() {
    storm(None);
}

#[test]
fn fifo_priorities_are_served_highest_first() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, None);
    let ev: Chans<'_, 64> = setup(&mem, &ops);
    let low = ev.alloc_unbound(0, HandlerId(0)).unwrap();
    let high = ev.alloc_unbound(0, HandlerId(0)).unwrap();
    ev.set_priority(high, 1).unwrap();
    assert_eq!(
        ev.set_priority(high, 16),
        Err(EvtchnError::InvalidPriority { priority: 16 })
    );
    ops.raise(low);
    ops.raise(high);
    assert_eq!(scan_all(&ev, 0, 8), [high, low]);
}

/// A FIFO set up with one page and ports 1..=4 bound, nothing pending.
fn hostile_setup<'a>(mem: &'a Mem, ops: &'a Ops<'a>) -> Chans<'a, 64> {
    let ev: Chans<'_, 64> = setup(mem, ops);
    for _ in 0..4 {
        ev.alloc_unbound(0, HandlerId(0)).unwrap();
    }
    ev
}

fn put(mem: &Mem, port: u32, flags: u32, link: u32) {
    mem.words[port as usize].store(flags | link, SeqCst);
}

fn queue(mem: &Mem, head: u32) {
    mem.heads[0][7].store(head, SeqCst);
    mem.ready[0].store(1 << 7, SeqCst);
}

#[test]
fn hostile_fifo_cycle_terminates() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, None);
    let ev = hostile_setup(&mem, &ops);
    put(&mem, 1, LINKED | PENDING, 2);
    put(&mem, 2, LINKED | PENDING, 1);
    queue(&mem, 1);
    let got = scan_all(&ev, 0, 1000);
    assert_eq!(got, [1, 2]);
    assert_eq!(ev.stats().fifo_bad_links, 1);
    assert!(!ev.scan(0, 1000, |_, _| {}).unwrap().more);
}

#[test]
fn hostile_fifo_self_link_terminates() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, None);
    let ev = hostile_setup(&mem, &ops);
    put(&mem, 3, LINKED | PENDING, 3);
    queue(&mem, 3);
    assert_eq!(scan_all(&ev, 0, 1000), [3]);
    assert_eq!(ev.stats().fifo_bad_links, 1);
}

#[test]
fn hostile_fifo_out_of_range_link_and_head() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, None);
    let ev = hostile_setup(&mem, &ops);
    // The link points past the single mapped page; the mock panics on any such access.
    put(&mem, 1, LINKED | PENDING, 5000);
    queue(&mem, 1);
    assert_eq!(scan_all(&ev, 0, 1000), [1]);
    assert_eq!(ev.stats().fifo_bad_links, 1);
    queue(&mem, EVTCHN_FIFO_LINK_MASK);
    assert!(scan_all(&ev, 0, 1000).is_empty());
    assert_eq!(ev.stats().fifo_bad_links, 2);
    // Garbage ready bits are counted too.
    mem.ready[0].store(u32::MAX, SeqCst);
    assert!(!ev.scan(0, 1000, |_, _| {}).unwrap().more);
    assert_eq!(ev.stats().fifo_bad_links, 3);
}

#[test]
fn invalid_arguments_are_typed_errors() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, Some(XenErrno::ENOSYS));
    let ev: Chans<'_, 64> = setup(&mem, &ops);
    assert_eq!(
        ev.scan(2, 1, |_, _| {}),
        Err(EvtchnError::InvalidVcpu { vcpu: 2 })
    );
    assert_eq!(ev.mask(0), Err(EvtchnError::InvalidPort { port: 0 }));
    assert_eq!(
        ev.mask(4096),
        Err(EvtchnError::PortOutOfRange {
            port: 4096,
            capacity: 4096
        })
    );
    assert_eq!(ev.set_priority(1, 0), Err(EvtchnError::NotFifo));
    assert_eq!(
        ev.status(1),
        Err(EvtchnError::Hypercall {
            op: EVTCHNOP_STATUS,
            errno: XenErrno::ENOSYS
        })
    );
    assert_eq!(XenErrno::from_ret(-38), Err(XenErrno::ENOSYS));
    assert_eq!(XenErrno::from_ret(5), Ok(5));
}

proptest! {
    /// Whatever fires and whatever the budgets, each fired port is delivered exactly once and
    /// no call exceeds its budget.
    #[test]
    fn every_fired_port_is_delivered_once(
        fifo in any::<bool>(),
        fired in proptest::collection::btree_set(1u32..400, 0..200),
        budgets in proptest::collection::vec(1u32..20, 1..8),
    ) {
        let mem = Mem::new(4);
        let ops = Ops::new(&mem, if fifo { None } else { Some(XenErrno::ENOSYS) });
        let ev: Chans<'_, 512> = setup(&mem, &ops);
        for _ in 1..400 {
            ev.alloc_unbound(0, HandlerId(0)).unwrap();
        }
        for &p in &fired {
            ops.raise(p);
        }
        let mut seen = BTreeSet::new();
        for round in 0..1000usize {
            let budget = budgets[round % budgets.len()];
            let mut got = Vec::new();
            let outcome = ev.scan(0, budget, |p, _| got.push(p)).unwrap();
            prop_assert!(got.len() <= budget as usize);
            for p in got {
                prop_assert!(seen.insert(p));
            }
            if !outcome.more {
                break;
            }
        }
        prop_assert_eq!(seen, fired);
    }

    /// Arbitrary FIFO words and queue heads never make the scan read outside the mapped array
    /// (the mock panics) or run past its budget.
    #[test]
    fn arbitrary_fifo_state_is_bounded(
        words in proptest::collection::vec(any::<u32>(), 1100),
        heads in proptest::collection::vec(any::<u32>(), EVTCHN_FIFO_MAX_QUEUES),
        ready in any::<u32>(),
        budget in 1u32..64,
    ) {
        let mem = Mem::new(4);
        let ops = Ops::new(&mem, None);
        let ev: Chans<'_, 64> = setup(&mem, &ops);
        ev.alloc_unbound(0, HandlerId(0)).unwrap();
        for (i, w) in words.iter().enumerate() {
            mem.words[i].store(*w, SeqCst);
        }
        for (q, h) in heads.iter().enumerate() {
            mem.heads[0][q].store(*h, SeqCst);
        }
        mem.ready[0].store(ready, SeqCst);
        for _ in 0..4 {
            let mut n = 0u32;
            ev.scan(0, budget, |_, _| n += 1).unwrap();
            prop_assert!(n <= budget);
        }
    }
}
