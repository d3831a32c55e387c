//! Event channels: Xen's port tables for every domain, delivery into the guest's shared memory
//! (2-level bitmaps or the FIFO event array, whichever ABI the guest set up), and the guest-side
//! views of that memory the core reads.
//!
//! Backend domains have no shared memory in the model: an event sent to one marks its port
//! pending in a set the backend takes from ([`crate::Backend::take_events`]).

use std::collections::{BTreeMap, BTreeSet};

use xen_abi::event_channel::{
    EventWord, EventWordFlags, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVcpu,
    EvtchnBindVirq, EvtchnClose, EvtchnExpandArray, EvtchnFifoControlBlock, EvtchnInitControl,
    EvtchnSend, EvtchnSetPriority, EvtchnStatus, EvtchnUnmask, EVTCHNSTAT_CLOSED,
    EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND, EVTCHNSTAT_VIRQ, EVTCHN_2L_NR_CHANNELS,
    EVTCHN_FIFO_EVENT_WORDS_PER_PAGE, EVTCHN_FIFO_LINK_BITS, EVTCHN_FIFO_LINK_MASK,
    EVTCHN_FIFO_MAX_QUEUES, EVTCHN_FIFO_NR_CHANNELS, EVTCHN_FIFO_PRIORITY_DEFAULT,
    EVTCHN_FIFO_PRIORITY_MIN, NR_VIRQS,
};
use xen_abi::hvm::{
    HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CALLBACK_IRQ_TYPE_MASK, HVM_PARAM_CALLBACK_TYPE_SHIFT,
    HVM_PARAM_CALLBACK_TYPE_VECTOR,
};
use xen_abi::shared_info::{SharedInfo, VcpuInfo, EVTCHN_2L_WORDS};
use xen_abi::types::{DomId, EvtchnPort, DOMID_SELF};
use xenpci_core::evtchn::{EventChannelOps, FifoShared, L2Bitmap, SharedInfoEvents, XenErrno};

use crate::memory::PAGE_SIZE;
use crate::{Config, State, Xen};

const PENDING: u32 = EventWordFlags::PENDING.bits();
const MASKED: u32 = EventWordFlags::MASKED.bits();
const LINKED: u32 = EventWordFlags::LINKED.bits();

const PENDING_OFF: usize = core::mem::offset_of!(SharedInfo, evtchn_pending);
const MASK_OFF: usize = core::mem::offset_of!(SharedInfo, evtchn_mask);
const VCPU_INFO_OFF: usize = core::mem::offset_of!(SharedInfo, vcpu_info);
const VCPU_INFO_SIZE: usize = size_of::<VcpuInfo>();
const UPCALL_PENDING_OFF: usize = core::mem::offset_of!(VcpuInfo, evtchn_upcall_pending);
const PENDING_SEL_OFF: usize = core::mem::offset_of!(VcpuInfo, evtchn_pending_sel);
const CB_READY_OFF: usize = core::mem::offset_of!(EvtchnFifoControlBlock, ready);
const CB_HEAD_OFF: usize = core::mem::offset_of!(EvtchnFifoControlBlock, head);
const CB_SIZE: usize = size_of::<EvtchnFifoControlBlock>();

/// Switches for faults in event delivery to the guest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFaults {
    /// Drop this many of the next guest-bound events (as if the notification were lost).
    pub drop_next: u32,
    /// Hold guest-bound events back until [`Xen::release_delayed_events`].
    pub delay: bool,
    /// Events dropped so far.
    pub dropped: u64,
    /// Events delivered so far (including re-raises by unmask).
    pub delivered: u64,
    delayed: Vec<EvtchnPort>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChanState {
    Free,
    Unbound { remote: DomId },
    Interdomain { dom: DomId, port: EvtchnPort },
    Virq(u32),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Channel {
    pub(crate) state: ChanState,
    vcpu: u32,
    priority: u32,
    /// FIFO: raised while its event word was not mapped; delivered when the page is added.
    pending_unmapped: bool,
}

const FREE_CHANNEL: Channel = Channel {
    state: ChanState::Free,
    vcpu: 0,
    priority: EVTCHN_FIFO_PRIORITY_DEFAULT,
    pending_unmapped: false,
};

#[derive(Debug, Default)]
pub(crate) struct DomainPorts {
    pub(crate) ports: Vec<Channel>,
    pub(crate) dead: bool,
    /// Backend domains: ports with an event not yet taken.
    pub(crate) pending: BTreeSet<EvtchnPort>,
    /// Backend domains: events received.
    pub(crate) received: u64,
}

impl DomainPorts {
    fn chan(&self, port: EvtchnPort) -> Option<&Channel> {
        self.ports.get(port as usize).filter(|_| port != 0)
    }
    fn chan_mut(&mut self, port: EvtchnPort) -> Option<&mut Channel> {
        if port == 0 {
            return None;
        }
        self.ports.get_mut(port as usize)
    }
}

/// Xen's FIFO state for the guest.
#[derive(Debug)]
struct FifoXen {
    control: Vec<Option<(u64, usize)>>,
    array: Vec<u64>,
    tails: Vec<[EvtchnPort; EVTCHN_FIFO_MAX_QUEUES]>,
}

/// The guest shell's FIFO pages (what it handed to Xen).
#[derive(Debug, Default)]
struct FifoShell {
    control: Vec<Option<(u64, u32)>>,
    array: Vec<u64>,
}

#[derive(Debug)]
pub(crate) struct EvtchnModel {
    guest: DomId,
    vcpus: u32,
    max_port: u32,
    pub(crate) shared_info_gfn: u64,
    pub(crate) domains: BTreeMap<DomId, DomainPorts>,
    virqs: BTreeMap<(u32, u32), EvtchnPort>,
    fifo: Option<FifoXen>,
    shell: FifoShell,
    pub(crate) faults: EventFaults,
    pub(crate) upcalls: Vec<u64>,
    /// Upcalls raised for a vCPU the installed upcall does not interrupt (lost events).
    pub(crate) stranded: Vec<u64>,
}

impl EvtchnModel {
    pub(crate) fn new(config: &Config, shared_info_gfn: u64) -> Self {
        let mut domains = BTreeMap::new();
        domains.insert(config.guest_domid, DomainPorts::default());
        domains.insert(0, DomainPorts::default());
        EvtchnModel {
            guest: config.guest_domid,
            vcpus: config.vcpus,
            max_port: config.max_evtchn_port,
            shared_info_gfn,
            domains,
            virqs: BTreeMap::new(),
            fifo: None,
            shell: FifoShell {
                control: vec![None; config.vcpus as usize],
                array: Vec::new(),
            },
            faults: EventFaults::default(),
            upcalls: vec![0; config.vcpus as usize],
            stranded: vec![0; config.vcpus as usize],
        }
    }

    pub(crate) fn add_domain(&mut self, domid: DomId) {
        self.domains.entry(domid).or_default();
    }

    fn port_limit(&self, domid: DomId) -> u32 {
        let abi = if domid == self.guest && self.fifo.is_some() {
            EVTCHN_FIFO_NR_CHANNELS
        } else {
            EVTCHN_2L_NR_CHANNELS
        };
        abi.min(self.max_port + 1)
    }

    fn alloc_port(&mut self, domid: DomId) -> Result<EvtchnPort, XenErrno> {
        let limit = self.port_limit(domid);
        let d = self.domains.get_mut(&domid).ok_or(XenErrno::ESRCH)?;
        let port = (1..limit)
            .find(|&p| d.chan(p).is_none_or(|c| c.state == ChanState::Free))
            .ok_or(XenErrno::ENOSPC)?;
        if d.ports.len() <= port as usize {
            d.ports.resize(port as usize + 1, FREE_CHANNEL);
        }
        Ok(port)
    }

    pub(crate) fn channel(&self, domid: DomId, port: EvtchnPort) -> Option<ChanState> {
        self.domains
            .get(&domid)?
            .chan(port)
            .map(|c| c.state)
            .filter(|s| *s != ChanState::Free)
    }
}

fn vcpu_info_off(vcpu: u32) -> usize {
    VCPU_INFO_OFF + vcpu as usize * VCPU_INFO_SIZE
}

/// The byte offset of `vcpu`'s `vcpu_info` in the shared-info page.
pub(crate) fn vcpu_info_offset(vcpu: u32) -> usize {
    vcpu_info_off(vcpu)
}

pub(crate) fn upcall_pending(s: &State, vcpu: u32) -> bool {
    let mut b = [0u8; 1];
    s.mem
        .read(
            s.evtchn.shared_info_gfn,
            vcpu_info_off(vcpu) + UPCALL_PENDING_OFF,
            &mut b,
        )
        .is_ok()
        && b[0] != 0
}

/// `vcpu_mark_events_pending`: sets `evtchn_upcall_pending`, counting a new upcall.
fn mark_upcall(s: &mut State, vcpu: u32) {
    let gfn = s.evtchn.shared_info_gfn;
    let off = vcpu_info_off(vcpu) + UPCALL_PENDING_OFF;
    let mut b = [0u8; 1];
    if s.mem.read(gfn, off, &mut b).is_err() {
        return;
    }
    if b[0] == 0 {
        let _ = s.mem.write(gfn, off, &[1]);
        if let Some(n) = s.evtchn.upcalls.get_mut(vcpu as usize) {
            *n += 1;
        }
        if !upcall_interrupts(s, vcpu) {
            if let Some(n) = s.evtchn.stranded.get_mut(vcpu as usize) {
                *n += 1;
            }
        }
    }
}

/// Whether the upcall the guest installed interrupts `vcpu`, as Xen delivers it: a per-vCPU
/// vector (`HVMOP_set_evtchn_upcall_vector`) or the callback vector reach every vCPU; a callback
/// through a GSI or the PCI INTx line is asserted for vCPU 0's `evtchn_upcall_pending` only. With
/// no upcall installed yet, nothing is interrupted (and nothing counts as stranded: the guest
/// scans once it installs one).
fn upcall_interrupts(s: &State, vcpu: u32) -> bool {
    if s.hv.upcall_vectors.contains_key(&vcpu) {
        return true;
    }
    let via =
        s.hv.params
            .get(&HVM_PARAM_CALLBACK_IRQ)
            .copied()
            .unwrap_or(0);
    let kind = (via & HVM_PARAM_CALLBACK_IRQ_TYPE_MASK) >> HVM_PARAM_CALLBACK_TYPE_SHIFT;
    via == 0 || kind == HVM_PARAM_CALLBACK_TYPE_VECTOR || vcpu == 0
}

/// Raises `port` of `domid` (the remote end of a send, a VIRQ, a re-raise).
pub(crate) fn raise(s: &mut State, domid: DomId, port: EvtchnPort) {
    if domid != s.evtchn.guest {
        if let Some(d) = s.evtchn.domains.get_mut(&domid) {
            if !d.dead {
                d.pending.insert(port);
                d.received += 1;
            }
        }
        return;
    }
    let faults = &mut s.evtchn.faults;
    if faults.drop_next > 0 {
        faults.drop_next -= 1;
        faults.dropped += 1;
        return;
    }
    if faults.delay {
        faults.delayed.push(port);
        return;
    }
    deliver_guest(s, port);
}

pub(crate) fn release_delayed(s: &mut State) -> usize {
    let ports = std::mem::take(&mut s.evtchn.faults.delayed);
    for &p in &ports {
        deliver_guest(s, p);
    }
    ports.len()
}

fn deliver_guest(s: &mut State, port: EvtchnPort) {
    let guest = s.evtchn.guest;
    let Some(chan) = s
        .evtchn
        .domains
        .get(&guest)
        .and_then(|d| d.chan(port))
        .copied()
    else {
        return;
    };
    if chan.state == ChanState::Free {
        return;
    }
    s.evtchn.faults.delivered += 1;
    if s.evtchn.fifo.is_some() {
        fifo_set_pending(s, port, chan);
    } else {
        l2_set_pending(s, port, chan.vcpu);
    }
}

fn l2_set_pending(s: &mut State, port: EvtchnPort, vcpu: u32) {
    let gfn = s.evtchn.shared_info_gfn;
    let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
    let mem = &mut s.mem;
    let Ok(pending) = mem.read_u64(gfn, PENDING_OFF + w * 8) else {
        return;
    };
    if pending & bit != 0 {
        return;
    }
    let _ = mem.write_u64(gfn, PENDING_OFF + w * 8, pending | bit);
    if mem.read_u64(gfn, MASK_OFF + w * 8).unwrap_or(0) & bit != 0 {
        return;
    }
    let sel_off = vcpu_info_off(vcpu) + PENDING_SEL_OFF;
    let sel = mem.read_u64(gfn, sel_off).unwrap_or(0);
    if sel & (1 << w) != 0 {
        return;
    }
    let _ = mem.write_u64(gfn, sel_off, sel | (1 << w));
    mark_upcall(s, vcpu);
}

fn l2_unmask(s: &mut State, port: EvtchnPort, vcpu: u32) {
    let gfn = s.evtchn.shared_info_gfn;
    let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
    let mem = &mut s.mem;
    let Ok(mask) = mem.read_u64(gfn, MASK_OFF + w * 8) else {
        return;
    };
    let _ = mem.write_u64(gfn, MASK_OFF + w * 8, mask & !bit);
    if mask & bit == 0 || mem.read_u64(gfn, PENDING_OFF + w * 8).unwrap_or(0) & bit == 0 {
        return;
    }
    let sel_off = vcpu_info_off(vcpu) + PENDING_SEL_OFF;
    let sel = mem.read_u64(gfn, sel_off).unwrap_or(0);
    if sel & (1 << w) == 0 {
        let _ = mem.write_u64(gfn, sel_off, sel | (1 << w));
        mark_upcall(s, vcpu);
    }
}

/// Where the event word of `port` is, per the pages the guest gave Xen.
fn fifo_word_at(s: &State, port: EvtchnPort) -> Option<(u64, usize)> {
    let fifo = s.evtchn.fifo.as_ref()?;
    let gfn = *fifo
        .array
        .get((port / EVTCHN_FIFO_EVENT_WORDS_PER_PAGE) as usize)?;
    Some((gfn, (port % EVTCHN_FIFO_EVENT_WORDS_PER_PAGE) as usize * 4))
}

fn fifo_set_pending(s: &mut State, port: EvtchnPort, chan: Channel) {
    let Some((gfn, off)) = fifo_word_at(s, port) else {
        let guest = s.evtchn.guest;
        if let Some(c) = s
            .evtchn
            .domains
            .get_mut(&guest)
            .and_then(|d| d.chan_mut(port))
        {
            c.pending_unmapped = true;
        }
        return;
    };
    let Ok(word) = s.mem.read_u32(gfn, off) else {
        return;
    };
    let _ = s.mem.write_u32(gfn, off, word | PENDING);
    if word & (MASKED | LINKED) != 0 {
        return;
    }
    let _ = s.mem.write_u32(gfn, off, word | PENDING | LINKED);
    let (vcpu, prio) = (chan.vcpu as usize, chan.priority as usize);
    let Some(fifo) = s.evtchn.fifo.as_ref() else {
        return;
    };
    let Some((cb_gfn, cb_off)) = fifo.control.get(vcpu).copied().flatten() else {
        return;
    };
    let tail = fifo.tails[vcpu][prio];
    let mut linked = false;
    if tail != 0 && tail != port {
        if let Some((tg, to)) = fifo_word_at(s, tail) {
            let tw = s.mem.read_u32(tg, to).unwrap_or(0);
            if tw & LINKED != 0 {
                let _ = s
                    .mem
                    .write_u32(tg, to, (tw & !EVTCHN_FIFO_LINK_MASK) | port);
                linked = true;
            }
        }
    }
    if !linked {
        let _ = s
            .mem
            .write_u32(cb_gfn, cb_off + CB_HEAD_OFF + prio * 4, port);
    }
    if let Some(f) = s.evtchn.fifo.as_mut() {
        f.tails[vcpu][prio] = port;
    }
    let ready = s.mem.read_u32(cb_gfn, cb_off + CB_READY_OFF).unwrap_or(0);
    if ready & (1 << prio) == 0 {
        let _ = s
            .mem
            .write_u32(cb_gfn, cb_off + CB_READY_OFF, ready | (1 << prio));
        mark_upcall(s, chan.vcpu);
    }
}

fn fifo_unmask(s: &mut State, port: EvtchnPort, chan: Channel) {
    let Some((gfn, off)) = fifo_word_at(s, port) else {
        return;
    };
    let word = s.mem.read_u32(gfn, off).unwrap_or(0);
    let _ = s.mem.write_u32(gfn, off, word & !MASKED);
    if word & PENDING != 0 {
        fifo_set_pending(s, port, chan);
    }
}

fn clear_pending(s: &mut State, port: EvtchnPort) {
    if s.evtchn.fifo.is_some() {
        if let Some((gfn, off)) = fifo_word_at(s, port) {
            let w = s.mem.read_u32(gfn, off).unwrap_or(0);
            let _ = s.mem.write_u32(gfn, off, w & !PENDING);
        }
    } else {
        let gfn = s.evtchn.shared_info_gfn;
        let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
        if let Ok(v) = s.mem.read_u64(gfn, PENDING_OFF + w * 8) {
            let _ = s.mem.write_u64(gfn, PENDING_OFF + w * 8, v & !bit);
        }
    }
}

pub(crate) fn raise_virq(s: &mut State, virq: u32, vcpu: u32) -> bool {
    match s.evtchn.virqs.get(&(virq, vcpu)).copied() {
        Some(port) => {
            let guest = s.evtchn.guest;
            raise(s, guest, port);
            true
        }
        None => false,
    }
}

/// Closes `port` of `domid` (`EVTCHNOP_close`, or domain destruction).
pub(crate) fn close_port(s: &mut State, domid: DomId, port: EvtchnPort) -> Result<(), XenErrno> {
    let d = s.evtchn.domains.get_mut(&domid).ok_or(XenErrno::ESRCH)?;
    let chan = d.chan_mut(port).ok_or(XenErrno::EINVAL)?;
    let old = chan.state;
    if old == ChanState::Free {
        return Err(XenErrno::EINVAL);
    }
    *chan = FREE_CHANNEL;
    d.pending.remove(&port);
    match old {
        ChanState::Interdomain {
            dom: rdom,
            port: rport,
        } => {
            if let Some(rc) = s
                .evtchn
                .domains
                .get_mut(&rdom)
                .and_then(|d| d.chan_mut(rport))
            {
                rc.state = ChanState::Unbound { remote: domid };
            }
        }
        ChanState::Virq(virq) => {
            s.evtchn
                .virqs
                .retain(|&(v, _), &mut p| !(v == virq && p == port));
        }
        _ => {}
    }
    if domid == s.evtchn.guest {
        clear_pending(s, port);
    }
    Ok(())
}

/// Closes every port of `domid` and marks it dead.
pub(crate) fn destroy_domain(s: &mut State, domid: DomId) {
    let ports: Vec<EvtchnPort> = s
        .evtchn
        .domains
        .get(&domid)
        .map(|d| {
            (1..d.ports.len() as u32)
                .filter(|&p| d.ports[p as usize].state != ChanState::Free)
                .collect()
        })
        .unwrap_or_default();
    for p in ports {
        let _ = close_port(s, domid, p);
    }
    if let Some(d) = s.evtchn.domains.get_mut(&domid) {
        d.dead = true;
        d.pending.clear();
    }
}

fn resolve(domid: DomId, dom: DomId) -> DomId {
    if dom == DOMID_SELF {
        domid
    } else {
        dom
    }
}

fn live(s: &State, domid: DomId) -> Result<(), XenErrno> {
    match s.evtchn.domains.get(&domid) {
        Some(d) if !d.dead => Ok(()),
        _ => Err(XenErrno::ESRCH),
    }
}

/// Sends on `port` of `domid` (`EVTCHNOP_send`).
pub(crate) fn send(s: &mut State, domid: DomId, port: EvtchnPort) -> Result<(), XenErrno> {
    live(s, domid)?;
    match s.evtchn.channel(domid, port) {
        Some(ChanState::Interdomain { dom, port }) => {
            raise(s, dom, port);
            Ok(())
        }
        Some(ChanState::Unbound { .. }) => Ok(()),
        Some(ChanState::Virq(_)) | Some(ChanState::Free) | None => Err(XenErrno::EINVAL),
    }
}

pub(crate) fn alloc_unbound(
    s: &mut State,
    domid: DomId,
    arg: &mut EvtchnAllocUnbound,
) -> Result<(), XenErrno> {
    live(s, domid)?;
    if resolve(domid, arg.dom) != domid {
        return Err(XenErrno::EPERM);
    }
    let port = s.evtchn.alloc_port(domid)?;
    let remote = resolve(domid, arg.remote_dom);
    if let Some(c) = s
        .evtchn
        .domains
        .get_mut(&domid)
        .and_then(|d| d.chan_mut(port))
    {
        *c = Channel {
            state: ChanState::Unbound { remote },
            ..FREE_CHANNEL
        };
    }
    arg.port = port;
    Ok(())
}

pub(crate) fn bind_interdomain(
    s: &mut State,
    domid: DomId,
    arg: &mut EvtchnBindInterdomain,
) -> Result<(), XenErrno> {
    live(s, domid)?;
    let rdom = resolve(domid, arg.remote_dom);
    live(s, rdom)?;
    match s.evtchn.channel(rdom, arg.remote_port) {
        Some(ChanState::Unbound { remote }) if remote == domid => {}
        _ => return Err(XenErrno::EINVAL),
    }
    let lport = s.evtchn.alloc_port(domid)?;
    if rdom == domid && lport == arg.remote_port {
        return Err(XenErrno::EINVAL);
    }
    let d = s.evtchn.domains.get_mut(&domid).ok_or(XenErrno::ESRCH)?;
    if let Some(c) = d.chan_mut(lport) {
        *c = Channel {
            state: ChanState::Interdomain {
                dom: rdom,
                port: arg.remote_port,
            },
            ..FREE_CHANNEL
        };
    }
    if let Some(rc) = s
        .evtchn
        .domains
        .get_mut(&rdom)
        .and_then(|d| d.chan_mut(arg.remote_port))
    {
        rc.state = ChanState::Interdomain {
            dom: domid,
            port: lport,
        };
    }
    arg.local_port = lport;
    // Xen raises the new local port: notifications sent to the unbound remote end were lost.
    raise(s, domid, lport);
    Ok(())
}

/// The guest's (or a backend's) event-channel hypercalls against the model.
#[derive(Clone, Debug)]
pub struct SimEvtchnOps {
    xen: Xen,
    domid: DomId,
}

impl SimEvtchnOps {
    /// The hypercalls as issued by `domid`.
    pub fn new(xen: Xen, domid: DomId) -> Self {
        SimEvtchnOps { xen, domid }
    }
}

impl EventChannelOps for SimEvtchnOps {
    fn alloc_unbound(&self, arg: &mut EvtchnAllocUnbound) -> Result<(), XenErrno> {
        self.xen.with(|s| alloc_unbound(s, self.domid, arg))
    }

    fn bind_interdomain(&self, arg: &mut EvtchnBindInterdomain) -> Result<(), XenErrno> {
        self.xen.with(|s| bind_interdomain(s, self.domid, arg))
    }

    fn bind_virq(&self, arg: &mut EvtchnBindVirq) -> Result<(), XenErrno> {
        self.xen.with(|s| {
            live(s, self.domid)?;
            if arg.virq >= NR_VIRQS {
                return Err(XenErrno::EINVAL);
            }
            if self.domid != s.evtchn.guest || arg.vcpu >= s.evtchn.vcpus {
                return Err(XenErrno::ENOENT);
            }
            if s.evtchn.virqs.contains_key(&(arg.virq, arg.vcpu)) {
                return Err(XenErrno::EEXIST);
            }
            let port = s.evtchn.alloc_port(self.domid)?;
            if let Some(c) = s
                .evtchn
                .domains
                .get_mut(&self.domid)
                .and_then(|d| d.chan_mut(port))
            {
                *c = Channel {
                    state: ChanState::Virq(arg.virq),
                    vcpu: arg.vcpu,
                    ..FREE_CHANNEL
                };
            }
            s.evtchn.virqs.insert((arg.virq, arg.vcpu), port);
            arg.port = port;
            Ok(())
        })
    }

    fn send(&self, arg: &EvtchnSend) -> Result<(), XenErrno> {
        self.xen.with(|s| send(s, self.domid, arg.port))
    }

    fn close(&self, arg: &EvtchnClose) -> Result<(), XenErrno> {
        self.xen.with(|s| close_port(s, self.domid, arg.port))
    }

    fn unmask(&self, arg: &EvtchnUnmask) -> Result<(), XenErrno> {
        self.xen.with(|s| {
            live(s, self.domid)?;
            let chan = s
                .evtchn
                .domains
                .get(&self.domid)
                .and_then(|d| d.chan(arg.port))
                .copied()
                .ok_or(XenErrno::EINVAL)?;
            if self.domid != s.evtchn.guest {
                return Ok(());
            }
            if s.evtchn.fifo.is_some() {
                fifo_unmask(s, arg.port, chan);
            } else {
                l2_unmask(s, arg.port, chan.vcpu);
            }
            Ok(())
        })
    }

    fn status(&self, arg: &mut EvtchnStatus) -> Result<(), XenErrno> {
        let s = self.xen.lock();
        let dom = resolve(self.domid, arg.dom);
        if dom != self.domid && self.domid != 0 {
            return Err(XenErrno::EPERM);
        }
        let d = s.evtchn.domains.get(&dom).ok_or(XenErrno::ESRCH)?;
        let chan = d.chan(arg.port).ok_or(XenErrno::EINVAL)?;
        arg.vcpu = chan.vcpu;
        arg.u = [0; 8];
        match chan.state {
            ChanState::Free => arg.status = EVTCHNSTAT_CLOSED,
            ChanState::Unbound { remote } => {
                arg.status = EVTCHNSTAT_UNBOUND;
                arg.u[..2].copy_from_slice(&remote.to_ne_bytes());
            }
            ChanState::Interdomain { dom, port } => {
                arg.status = EVTCHNSTAT_INTERDOMAIN;
                arg.u[..2].copy_from_slice(&dom.to_ne_bytes());
                arg.u[4..].copy_from_slice(&port.to_ne_bytes());
            }
            ChanState::Virq(virq) => {
                arg.status = EVTCHNSTAT_VIRQ;
                arg.u[..4].copy_from_slice(&virq.to_ne_bytes());
            }
        }
        Ok(())
    }

    fn init_control(&self, arg: &mut EvtchnInitControl) -> Result<(), XenErrno> {
        self.xen.with(|s| {
            if !s.config.fifo {
                return Err(XenErrno::ENOSYS);
            }
            if self.domid != s.evtchn.guest {
                return Err(XenErrno::EOPNOTSUPP);
            }
            let offset = arg.offset as usize;
            if arg.vcpu >= s.evtchn.vcpus {
                return Err(XenErrno::ENOENT);
            }
            if offset % 8 != 0 || offset + CB_SIZE > PAGE_SIZE {
                return Err(XenErrno::EINVAL);
            }
            if !s.mem.is_populated(arg.control_gfn) {
                return Err(XenErrno::EINVAL);
            }
            let vcpus = s.evtchn.vcpus as usize;
            let fifo = s.evtchn.fifo.get_or_insert_with(|| FifoXen {
                control: vec![None; vcpus],
                array: Vec::new(),
                tails: vec![[0; EVTCHN_FIFO_MAX_QUEUES]; vcpus],
            });
            if fifo.control[arg.vcpu as usize].is_some() {
                return Err(XenErrno::EINVAL);
            }
            fifo.control[arg.vcpu as usize] = Some((arg.control_gfn, offset));
            let _ = s.mem.write(arg.control_gfn, offset, &[0; CB_SIZE]);
            arg.link_bits = EVTCHN_FIFO_LINK_BITS as u8;
            // Events pending under the 2-level ABI move over once their words exist.
            let guest = s.evtchn.guest;
            let gfn = s.evtchn.shared_info_gfn;
            let mut moved = Vec::new();
            if let Some(d) = s.evtchn.domains.get(&guest) {
                for p in 1..d.ports.len() as u32 {
                    let w = (p / 64) as usize;
                    if w < EVTCHN_2L_WORDS
                        && s.mem.read_u64(gfn, PENDING_OFF + w * 8).unwrap_or(0) & (1 << (p % 64))
                            != 0
                    {
                        moved.push(p);
                    }
                }
            }
            for p in moved {
                if let Some(c) = s.evtchn.domains.get_mut(&guest).and_then(|d| d.chan_mut(p)) {
                    c.pending_unmapped = true;
                }
            }
            Ok(())
        })
    }

    fn expand_array(&self, arg: &EvtchnExpandArray) -> Result<(), XenErrno> {
        self.xen.with(|s| {
            let Some(fifo) = s.evtchn.fifo.as_mut() else {
                return Err(XenErrno::EOPNOTSUPP);
            };
            if fifo.array.len() as u32 * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE >= EVTCHN_FIFO_NR_CHANNELS
            {
                return Err(XenErrno::ENOSPC);
            }
            if !s.mem.is_populated(arg.array_gfn) {
                return Err(XenErrno::EINVAL);
            }
            let page = fifo.array.len() as u32;
            fifo.array.push(arg.array_gfn);
            let _ = s.mem.write(arg.array_gfn, 0, &[0; PAGE_SIZE]);
            // Deliver what was raised for ports of the new page before it existed.
            let guest = s.evtchn.guest;
            let first = page * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE;
            let mut late = Vec::new();
            if let Some(d) = s.evtchn.domains.get_mut(&guest) {
                for p in first..first + EVTCHN_FIFO_EVENT_WORDS_PER_PAGE {
                    if let Some(c) = d.chan_mut(p) {
                        if std::mem::take(&mut c.pending_unmapped) {
                            late.push((p, *c));
                        }
                    }
                }
            }
            for (p, c) in late {
                fifo_set_pending(s, p, c);
            }
            Ok(())
        })
    }

    fn set_priority(&self, arg: &EvtchnSetPriority) -> Result<(), XenErrno> {
        self.xen.with(|s| {
            if s.evtchn.fifo.is_none() || self.domid != s.evtchn.guest {
                return Err(XenErrno::ENOSYS);
            }
            if arg.priority > EVTCHN_FIFO_PRIORITY_MIN {
                return Err(XenErrno::EINVAL);
            }
            let c = s
                .evtchn
                .domains
                .get_mut(&self.domid)
                .and_then(|d| d.chan_mut(arg.port))
                .filter(|c| c.state != ChanState::Free)
                .ok_or(XenErrno::EINVAL)?;
            c.priority = arg.priority;
            Ok(())
        })
    }

    fn bind_vcpu(&self, arg: &EvtchnBindVcpu) -> Result<(), XenErrno> {
        self.xen.with(|s| {
            live(s, self.domid)?;
            if self.domid == s.evtchn.guest && arg.vcpu >= s.evtchn.vcpus {
                return Err(XenErrno::ENOENT);
            }
            let c = s
                .evtchn
                .domains
                .get_mut(&self.domid)
                .and_then(|d| d.chan_mut(arg.port))
                .ok_or(XenErrno::EINVAL)?;
            match c.state {
                ChanState::Unbound { .. } | ChanState::Interdomain { .. } => {
                    c.vcpu = arg.vcpu;
                    Ok(())
                }
                ChanState::Virq(_) | ChanState::Free => Err(XenErrno::EINVAL),
            }
        })
    }
}

/// The guest's shared-info page as the core sees it.
#[derive(Clone, Debug)]
pub struct SimSharedInfo {
    xen: Xen,
}

impl SimSharedInfo {
    pub(crate) fn new(xen: Xen) -> Self {
        SimSharedInfo { xen }
    }

    pub(crate) fn xen(&self) -> &Xen {
        &self.xen
    }

    fn map_off(map: L2Bitmap, word: usize) -> usize {
        match map {
            L2Bitmap::Pending => PENDING_OFF + word * 8,
            L2Bitmap::Mask => MASK_OFF + word * 8,
        }
    }

    fn rmw(&self, map: L2Bitmap, word: usize, f: impl FnOnce(u64) -> u64) -> u64 {
        self.xen.with(|s| {
            let gfn = s.evtchn.shared_info_gfn;
            let off = Self::map_off(map, word);
            let old = s.mem.read_u64(gfn, off).unwrap_or(0);
            let _ = s.mem.write_u64(gfn, off, f(old));
            old
        })
    }
}

impl SharedInfoEvents for SimSharedInfo {
    fn load(&self, map: L2Bitmap, word: usize) -> u64 {
        let s = self.xen.lock();
        s.mem
            .read_u64(s.evtchn.shared_info_gfn, Self::map_off(map, word))
            .unwrap_or(0)
    }

    fn fetch_or(&self, map: L2Bitmap, word: usize, bits: u64) -> u64 {
        self.rmw(map, word, |v| v | bits)
    }

    fn fetch_and(&self, map: L2Bitmap, word: usize, bits: u64) -> u64 {
        self.rmw(map, word, |v| v & bits)
    }

    fn take_pending_sel(&self, vcpu: u32) -> u64 {
        self.xen.with(|s| {
            let gfn = s.evtchn.shared_info_gfn;
            let off = vcpu_info_off(vcpu) + PENDING_SEL_OFF;
            let old = s.mem.read_u64(gfn, off).unwrap_or(0);
            let _ = s.mem.write_u64(gfn, off, 0);
            old
        })
    }

    fn clear_upcall_pending(&self, vcpu: u32) {
        self.xen.with(|s| {
            let gfn = s.evtchn.shared_info_gfn;
            let _ = s
                .mem
                .write(gfn, vcpu_info_off(vcpu) + UPCALL_PENDING_OFF, &[0]);
        })
    }
}

/// The guest shell's FIFO pages: it hands out control blocks and event-array pages from guest
/// memory and accesses the words the core asks for.
#[derive(Clone, Debug)]
pub struct SimFifo {
    xen: Xen,
}

impl SimFifo {
    pub(crate) fn new(xen: Xen) -> Self {
        SimFifo { xen }
    }

    fn word_at(s: &State, port: EvtchnPort) -> Option<(u64, usize)> {
        let gfn = *s
            .evtchn
            .shell
            .array
            .get((port / EVTCHN_FIFO_EVENT_WORDS_PER_PAGE) as usize)?;
        Some((gfn, (port % EVTCHN_FIFO_EVENT_WORDS_PER_PAGE) as usize * 4))
    }

    fn cb(s: &State, vcpu: u32) -> Option<(u64, usize)> {
        s.evtchn
            .shell
            .control
            .get(vcpu as usize)
            .copied()
            .flatten()
            .map(|(g, o)| (g, o as usize))
    }

    fn rmw_word(&self, port: EvtchnPort, f: impl FnOnce(u32) -> Option<u32>) -> u32 {
        self.xen.with(|s| {
            let Some((gfn, off)) = Self::word_at(s, port) else {
                return 0;
            };
            let old = s.mem.read_u32(gfn, off).unwrap_or(0);
            if let Some(new) = f(old) {
                let _ = s.mem.write_u32(gfn, off, new);
            }
            old
        })
    }

    /// Writes an event word directly (for tests playing a hostile hypervisor).
    pub fn poke_word(&self, port: EvtchnPort, word: EventWord) {
        self.rmw_word(port, |_| Some(word));
    }
}

impl FifoShared for SimFifo {
    fn control_block(&self, vcpu: u32) -> Option<(u64, u32)> {
        self.xen.with(|s| {
            let slot = s.evtchn.shell.control.get(vcpu as usize)?;
            if let Some(cb) = slot {
                return Some(*cb);
            }
            let gfn = s.mem.alloc();
            s.evtchn.shell.control[vcpu as usize] = Some((gfn, 0));
            Some((gfn, 0))
        })
    }

    fn prepare_array_page(&self, page: u32) -> Option<u64> {
        self.xen.with(|s| {
            if page as usize != s.evtchn.shell.array.len() {
                return None;
            }
            let gfn = s.mem.alloc();
            s.evtchn.shell.array.push(gfn);
            Some(gfn)
        })
    }

    fn load_word(&self, port: EvtchnPort) -> EventWord {
        let s = self.xen.lock();
        Self::word_at(&s, port)
            .and_then(|(g, o)| s.mem.read_u32(g, o).ok())
            .unwrap_or(0)
    }

    fn fetch_or_word(&self, port: EvtchnPort, bits: EventWord) -> EventWord {
        self.rmw_word(port, |w| Some(w | bits))
    }

    fn fetch_and_word(&self, port: EvtchnPort, bits: EventWord) -> EventWord {
        self.rmw_word(port, |w| Some(w & bits))
    }

    fn compare_exchange_word(
        &self,
        port: EvtchnPort,
        current: EventWord,
        new: EventWord,
    ) -> Result<EventWord, EventWord> {
        let seen = self.rmw_word(port, |w| (w == current).then_some(new));
        if seen == current {
            Ok(seen)
        } else {
            Err(seen)
        }
    }

    fn take_ready(&self, vcpu: u32) -> u32 {
        self.xen.with(|s| {
            let Some((gfn, off)) = Self::cb(s, vcpu) else {
                return 0;
            };
            let old = s.mem.read_u32(gfn, off + CB_READY_OFF).unwrap_or(0);
            let _ = s.mem.write_u32(gfn, off + CB_READY_OFF, 0);
            old
        })
    }

    fn take_head(&self, vcpu: u32, queue: usize) -> EvtchnPort {
        self.xen.with(|s| {
            let Some((gfn, off)) = Self::cb(s, vcpu) else {
                return 0;
            };
            let at = off + CB_HEAD_OFF + queue * 4;
            let old = s.mem.read_u32(gfn, at).unwrap_or(0);
            let _ = s.mem.write_u32(gfn, at, 0);
            old
        })
    }
}

const _: () = assert!(CB_SIZE == 72);
const _: () = assert!(VCPU_INFO_SIZE == 64);

pub(crate) fn guest_has_fifo(s: &State) -> bool {
    s.evtchn.fifo.is_some()
}

/// The guest was restored into a new domain: every port is closed (remote ends become unbound)
/// and Xen knows nothing of its FIFO control blocks or event array.
pub(crate) fn reset_guest(s: &mut State) {
    let guest = s.evtchn.guest;
    let ports: Vec<EvtchnPort> = s
        .evtchn
        .domains
        .get(&guest)
        .map(|d| {
            (1..d.ports.len() as u32)
                .filter(|&p| d.ports[p as usize].state != ChanState::Free)
                .collect()
        })
        .unwrap_or_default();
    for p in ports {
        let _ = close_port(s, guest, p);
    }
    s.evtchn.fifo = None;
    s.evtchn.shell = FifoShell {
        control: vec![None; s.evtchn.vcpus as usize],
        array: Vec::new(),
    };
    s.evtchn.virqs.clear();
}
