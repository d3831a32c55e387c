//! A hostile hypervisor on the event-channel shared memory: arbitrary pending/mask/selector
//! words, FIFO event words, queue heads and ready bits, interleaved with guest masks, unmasks and
//! scans with arbitrary budgets. The scan must never panic, touch an unmapped event word, report
//! more ports than its budget or a port that has no handler.
#![no_main]

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use libfuzzer_sys::fuzz_target;
use xen_abi::event_channel::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVcpu, EvtchnBindVirq, EvtchnClose,
    EvtchnExpandArray, EvtchnInitControl, EvtchnSend, EvtchnSetPriority, EvtchnStatus,
    EvtchnUnmask, EVTCHN_FIFO_EVENT_WORDS_PER_PAGE, EVTCHN_FIFO_MAX_QUEUES,
};
use xenpci_core::evtchn::{
    Config, EventChannelOps, EventChannels, EvtchnError, FifoShared, HandlerId, L2Bitmap,
    SharedInfoEvents, UpcallReach, XenErrno,
};

const VCPUS: usize = 2;
const PAGES: u32 = 2;
const WORDS: usize = (PAGES * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE) as usize;

struct Mem {
    pending: Vec<AtomicU64>,
    mask: Vec<AtomicU64>,
    sel: Vec<AtomicU64>,
    words: Vec<AtomicU32>,
    pages: AtomicU32,
    ready: Vec<AtomicU32>,
    heads: Vec<Vec<AtomicU32>>,
}

impl Mem {
    fn new() -> Self {
        let atomics64 = |n| (0..n).map(|_| AtomicU64::new(0)).collect();
        let atomics32 = |n| (0..n).map(|_| AtomicU32::new(0)).collect::<Vec<_>>();
        Mem {
            pending: atomics64(64),
            mask: atomics64(64),
            sel: atomics64(VCPUS),
            words: atomics32(WORDS),
            pages: AtomicU32::new(0),
            ready: atomics32(VCPUS),
            heads: (0..VCPUS)
                .map(|_| atomics32(EVTCHN_FIFO_MAX_QUEUES))
                .collect(),
        }
    }

    fn bitmap(&self, map: L2Bitmap) -> &[AtomicU64] {
        match map {
            L2Bitmap::Pending => &self.pending,
            L2Bitmap::Mask => &self.mask,
        }
    }

    fn word(&self, port: u32) -> &AtomicU32 {
        let mapped = self.pages.load(SeqCst) * EVTCHN_FIFO_EVENT_WORDS_PER_PAGE;
        assert!(port < mapped, "event word {port} is not mapped");
        &self.words[port as usize]
    }
}

impl SharedInfoEvents for Mem {
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
        self.sel[vcpu as usize].swap(0, SeqCst)
    }
    fn clear_upcall_pending(&self, _vcpu: u32) {}
}

impl FifoShared for Mem {
    fn control_block(&self, vcpu: u32) -> Option<(u64, u32)> {
        Some((u64::from(vcpu), 0))
    }
    fn prepare_array_page(&self, page: u32) -> Option<u64> {
        (page < PAGES).then(|| {
            self.pages.store(page + 1, SeqCst);
            u64::from(page)
        })
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

/// Hypercalls that succeed and hand out consecutive ports; `init_control` fails with ENOSYS
/// when the 2-level ABI is wanted.
struct Ops {
    fifo: bool,
    next_port: RefCell<u32>,
}

impl Ops {
    fn port(&self) -> u32 {
        let mut next = self.next_port.borrow_mut();
        *next += 1;
        *next
    }
}

impl EventChannelOps for Ops {
    fn alloc_unbound(&self, arg: &mut EvtchnAllocUnbound) -> Result<(), XenErrno> {
        arg.port = self.port();
        Ok(())
    }
    fn bind_interdomain(&self, arg: &mut EvtchnBindInterdomain) -> Result<(), XenErrno> {
        arg.local_port = self.port();
        Ok(())
    }
    fn bind_virq(&self, arg: &mut EvtchnBindVirq) -> Result<(), XenErrno> {
        arg.port = self.port();
        Ok(())
    }
    fn send(&self, _: &EvtchnSend) -> Result<(), XenErrno> {
        Ok(())
    }
    fn close(&self, _: &EvtchnClose) -> Result<(), XenErrno> {
        Ok(())
    }
    fn unmask(&self, _: &EvtchnUnmask) -> Result<(), XenErrno> {
        Ok(())
    }
    fn status(&self, _: &mut EvtchnStatus) -> Result<(), XenErrno> {
        Ok(())
    }
    fn init_control(&self, _: &mut EvtchnInitControl) -> Result<(), XenErrno> {
        if self.fifo {
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
    fn bind_vcpu(&self, _: &EvtchnBindVcpu) -> Result<(), XenErrno> {
        Ok(())
    }
}

fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>()?;
    *data = rest;
    Some(*head)
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let Some([mode, bound]) = take::<2>(&mut data) else {
        return;
    };
    let mem = Mem::new();
    let ops = Ops {
        fifo: mode & 1 == 0,
        next_port: RefCell::new(0),
    };
    let config = Config {
        vcpus: VCPUS as u32,
        prefer_fifo: true,
    };
    let mut ev = EventChannels::<_, _, _, 256, VCPUS>::unstarted(&ops, &mem, &mem);
    if ev.start(config).is_err() {
        return;
    }
    for i in 0..u32::from(bound % 200) {
        ev.alloc_unbound(0, HandlerId(i))
            .expect("binding within capacity");
    }
    while let Some([op, a, b, c, d, e]) = take::<6>(&mut data) {
        let value = u32::from_le_bytes([b, c, d, e]);
        let vcpu = u32::from(a) % VCPUS as u32;
        match op % 10 {
            0 => mem.words[usize::from(u16::from_le_bytes([a, b])) % WORDS].store(value, SeqCst),
            1 => mem.heads[vcpu as usize][usize::from(b) % EVTCHN_FIFO_MAX_QUEUES]
                .store(value, SeqCst),
            2 => mem.ready[vcpu as usize].store(value, SeqCst),
            3 => {
                let bits = u64::from(value) << (b % 33);
                mem.pending[usize::from(a) % 64].fetch_or(bits, SeqCst);
                mem.sel[vcpu as usize].fetch_or(1 << (a % 64), SeqCst);
            }
            4 => mem.mask[usize::from(a) % 64].store(u64::from(value), SeqCst),
            5 => {
                let _ = ev.mask(value % 600);
            }
            6 => {
                let _ = ev.unmask(value % 600);
            }
            7 => {
                let reach = if value & 1 == 0 {
                    UpcallReach::AllVcpus
                } else {
                    UpcallReach::Vcpu0
                };
                let _ = ev.set_upcall_reach(reach);
            }
            8 => {
                let port = value % 600;
                let result = ev.bind_vcpu(port, vcpu);
                if vcpu != 0 && ev.upcall_reach() == UpcallReach::Vcpu0 {
                    assert_eq!(result, Err(EvtchnError::UnreachableVcpu { vcpu }));
                }
                if result.is_ok() {
                    assert_eq!(ev.dispatch().get(port).map(|b| b.vcpu), Some(vcpu));
                }
            }
            _ => {
                let budget = u32::from(b) + 1;
                let mut count = 0;
                let table = ev.dispatch();
                let mut foreign = None;
                let registered: Vec<_> = (0..256).map(|p| table.get(p)).collect();
                ev.scan(vcpu, budget, |port, handler| {
                    count += 1;
                    match registered.get(port as usize).copied().flatten() {
                        Some(binding) if binding.handler == handler => {}
                        _ => foreign = Some(port),
                    }
                })
                .expect("valid vCPU");
                assert!(count <= budget, "{count} ports for a budget of {budget}");
                assert_eq!(foreign, None, "delivered a port without that handler");
            }
        }
    }
});
