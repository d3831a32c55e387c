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
    let ev = EventChannels::new(
        ops,
        mem,
        mem,
        Config {
            vcpus: 2,
            prefer_fifo: true,
        },
    )
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
    let Err(err) = EventChannels::<_, _, _, 64, 4>::new(
        &ops,
        &mem,
        &mem,
        Config {
            vcpus: 1,
            prefer_fifo: true,
        },
    ) else {
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

#[test]
fn an_unstarted_instance_touches_nothing_until_started_in_place() {
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, None);
    let mut ev: Chans<'_, 64> = EventChannels::unstarted(&ops, &mem, &mem);
    assert_eq!(
        ev.mask(1),
        Err(EvtchnError::PortOutOfRange {
            port: 1,
            capacity: 0
        })
    );
    assert_eq!(
        ev.scan(0, 8, |_, _| {}),
        Err(EvtchnError::InvalidVcpu { vcpu: 0 })
    );
    assert_eq!(mem.pages.load(SeqCst), 0);
    let config = Config {
        vcpus: 5,
        prefer_fifo: true,
    };
    assert_eq!(ev.start(config), Err(EvtchnError::InvalidVcpu { vcpu: 5 }));
    let config = Config {
        vcpus: 2,
        prefer_fifo: true,
    };
    assert_eq!(ev.start(config), Ok(Abi::Fifo));
    assert_eq!(ops.state.borrow().init_controls, [0, 1]);
    let port = ev.alloc_unbound(0, HandlerId(4)).unwrap();
    ops.raise(port);
    assert_eq!(scan_all(&ev, 0, 8), [port]);
}

#[test]
fn ports_are_bound_only_to_vcpus_the_upcall_reaches() {
    use crate::hypervisor::hvm::{CallbackVia, UpcallMethod};
    assert_eq!(
        UpcallReach::of(UpcallMethod::PerVcpuVector(0xf3)),
        UpcallReach::AllVcpus
    );
    assert_eq!(
        UpcallReach::of(UpcallMethod::CallbackIrq(CallbackVia::Vector(0xf3))),
        UpcallReach::AllVcpus
    );
    assert_eq!(
        UpcallReach::of(UpcallMethod::CallbackIrq(CallbackVia::Gsi(28))),
        UpcallReach::Vcpu0
    );
    let intx = CallbackVia::PciIntx {
        segment: 0,
        bus: 0,
        devfn: 3 << 3,
        pin: 0,
    };
    assert_eq!(
        UpcallReach::of(UpcallMethod::CallbackIrq(intx)),
        UpcallReach::Vcpu0
    );
    for init in [None, Some(XenErrno::ENOSYS)] {
        let mem = Mem::new(4);
        let ops = Ops::new(&mem, init);
        // No upcall stated yet: only vCPU 0 counts as reached.
        let ev: Chans<'_, 64> = EventChannels::new(
            &ops,
            &mem,
            &mem,
            Config {
                vcpus: 2,
                prefer_fifo: true,
            },
        )
        .unwrap();
        assert_eq!(ev.upcall_reach(), UpcallReach::Vcpu0);
        let port = ev.alloc_unbound(0, HandlerId(1)).unwrap();
        let refused = Err(EvtchnError::UnreachableVcpu { vcpu: 1 });
        assert_eq!(ev.bind_vcpu(port, 1), refused);
        assert_eq!(ev.bind_virq(0, 1, HandlerId(2)).map(|_| ()), refused);
        assert_eq!(ev.attach(port + 1, HandlerId(3), 1), refused);
        // Refused before Xen was asked: the port still notifies vCPU 0.
        assert!(ops.state.borrow().vcpu_of.is_empty());
        assert_eq!(ev.dispatch().get(port).unwrap().vcpu, 0);
        // The callback vector reaches every vCPU.
        ev.set_upcall_reach(UpcallReach::of(UpcallMethod::CallbackIrq(
            CallbackVia::Vector(0xf3),
        )))
        .unwrap();
        ev.bind_vcpu(port, 1).unwrap();
        assert_eq!(ops.state.borrow().vcpu_of.get(&port), Some(&1));
        assert_eq!(ev.dispatch().get(port).unwrap().vcpu, 1);
        // Falling back to a vCPU-0-only upcall with a port on vCPU 1 is refused.
        assert_eq!(
            ev.set_upcall_reach(UpcallReach::Vcpu0),
            Err(EvtchnError::BoundOffVcpu0 { port, vcpu: 1 })
        );
        assert_eq!(ev.upcall_reach(), UpcallReach::AllVcpus);
        ev.bind_vcpu(port, 0).unwrap();
        ev.set_upcall_reach(UpcallReach::Vcpu0).unwrap();
        // An unregistered port is not moved.
        assert_eq!(
            ev.bind_vcpu(port + 5, 0),
            Err(EvtchnError::NotRegistered { port: port + 5 })
        );
    }
}

#[test]
fn a_nested_scan_of_the_same_vcpu_is_refused_and_loses_nothing() {
    for init in [None, Some(XenErrno::ENOSYS)] {
        let mem = Mem::new(4);
        let ops = Ops::new(&mem, init);
        let ev: Chans<'_, 64> = setup(&mem, &ops);
        let a = ev.alloc_unbound(0, HandlerId(1)).unwrap();
        let b = ev.bind_virq(0, 1, HandlerId(2)).unwrap();
        ops.raise(a);
        ops.raise(b);
        let mut nested = Vec::new();
        let mut got = Vec::new();
        ev.scan(0, 8, |p, _| {
            got.push(p);
            // An upcall nesting in this scan on the same CPU: vCPU 0 is busy, vCPU 1 is not.
            nested.push(ev.scan(0, 8, |_, _| panic!("nested scan delivered")));
            ev.scan(1, 8, |p, _| got.push(p)).unwrap();
        })
        .unwrap();
        assert_eq!(nested, [Err(EvtchnError::ScanInProgress { vcpu: 0 })]);
        assert_eq!(got, [a, b]);
        // The slot is free again.
        ops.raise(a);
        assert_eq!(scan_all(&ev, 0, 8), [a]);
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Two vCPUs scanning at once on real threads while Xen raises events on both and a child masks
/// and unmasks ports: every scan is accepted (no lock shared between the vCPUs), a port is only
/// ever reported by its own vCPU's scan, never more often than it was raised, and once the
/// raising stops and the scans drain, every raised port was delivered and none is left pending.
fn concurrent_scans(init: Option<XenErrno>, seed: u64) {
    use std::sync::atomic::AtomicBool;
    const PORTS: u32 = 96;
    let mem = Mem::new(4);
    let ops = Ops::new(&mem, init);
    let ev: Chans<'_, 128> = setup(&mem, &ops);
    let mut rng = seed;
    let ports: Vec<u32> = (0..PORTS)
        .map(|i| {
            let p = ev.alloc_unbound(0, HandlerId(i)).unwrap();
            if i % 2 == 1 {
                ev.bind_vcpu(p, 1).unwrap();
            }
            if ev.abi() == Abi::Fifo {
                ev.set_priority(p, (xorshift(&mut rng) % 3) as u32 + 6)
                    .unwrap();
            }
            p
        })
        .collect();
    let raised: Vec<AtomicU32> = (0..128).map(|_| AtomicU32::new(0)).collect();
    let delivered: Vec<AtomicU32> = (0..128).map(|_| AtomicU32::new(0)).collect();
    let stop = AtomicBool::new(false);
    let (ev, ports, raised, delivered, stop, ops) = (&ev, &ports, &raised, &delivered, &stop, &ops);
    let scan_once = |vcpu: u32, budget: u32| {
        ev.scan(vcpu, budget, |p, h| {
            let binding = ev.dispatch().get(p).unwrap();
            assert_eq!(binding.vcpu, vcpu, "port {p} reported on the wrong vCPU");
            assert_eq!(binding.handler, h);
            delivered[p as usize].fetch_add(1, SeqCst);
        })
        .expect("scans of different vCPUs never block each other")
    };
    std::thread::scope(|scope| {
        for vcpu in 0..2u32 {
            scope.spawn(move || {
                let mut budget = 1;
                while !stop.load(SeqCst) {
                    scan_once(vcpu, budget);
                    budget = budget % 7 + 1;
                    std::thread::yield_now();
                }
            });
        }
        let mut raiser_rng = seed ^ 0x9e37_79b9;
        let raiser = scope.spawn(move || {
            for _ in 0..1500 {
                let p = ports[(xorshift(&mut raiser_rng) % u64::from(PORTS)) as usize];
                raised[p as usize].fetch_add(1, SeqCst);
                ops.raise(p);
            }
        });
        let mut child_rng = seed ^ 0x7f4a_7c15;
        let child = scope.spawn(move || {
            for _ in 0..600 {
                let p = ports[(xorshift(&mut child_rng) % u64::from(PORTS)) as usize];
                ev.mask(p).unwrap();
                std::thread::yield_now();
                ev.unmask(p).unwrap();
            }
        });
        raiser.join().unwrap();
        child.join().unwrap();
        stop.store(true, SeqCst);
    });
    // Drain: scan both vCPUs until a whole pass finds nothing.
    for _ in 0..10_000 {
        let a = scan_once(0, 64);
        let b = scan_once(1, 64);
        if a.delivered + b.delivered == 0 && !a.more && !b.more {
            break;
        }
    }
    for &p in ports {
        let (r, d) = (
            raised[p as usize].load(SeqCst),
            delivered[p as usize].load(SeqCst),
        );
        assert!(d <= r, "port {p} delivered {d} times for {r} raises");
        assert!(
            r == 0 || d > 0,
            "port {p} raised {r} times, never delivered"
        );
        assert!(!ev.is_pending(p).unwrap(), "port {p} left pending");
        assert!(!ev.is_masked(p).unwrap(), "port {p} left masked");
    }
}

#[test]
fn concurrent_scans_two_level() {
    for seed in [1, 0xdead_beef] {
        concurrent_scans(Some(XenErrno::ENOSYS), seed);
    }
}

#[test]
fn concurrent_scans_fifo() {
    for seed in [1, 0xdead_beef] {
        concurrent_scans(None, seed);
    }
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
