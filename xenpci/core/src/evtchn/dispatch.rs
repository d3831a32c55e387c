//! The fixed-size table from port to handler: the shell maps [`HandlerId`]s to its DPC
//! callbacks.
//!
//! # Sharing
//! The table is read-mostly. Lookups ([`DispatchTable::get`], and the 2-level scan's per-word
//! mask) are single acquire loads, taken by the upcall scans of every vCPU at once without a
//! lock. Changes ([`DispatchTable::register`], [`DispatchTable::unregister`],
//! [`DispatchTable::set_vcpu`]) are single atomic read-modify-writes with release ordering, so a
//! scan that finds a registration also sees everything the shell wrote before registering it
//! (its callback table entry). Changes are made at PASSIVE_LEVEL under the shell's lock for
//! binding changes; two changes racing anyway cannot corrupt the table (a second registration of
//! the same port is refused).
//!
//! The slots are `core` atomics even in the loom build, so the table stays `const`-constructible
//! into a static.

use core::sync::atomic::{AtomicU64, Ordering};

use xen_abi::types::EvtchnPort;

use super::EvtchnError;

/// An opaque handler identifier chosen by the shell (an index into its callback table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HandlerId(pub u32);

/// A port's registration: who handles it and which vCPU it notifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The handler the scan reports the port to.
    pub handler: HandlerId,
    /// The vCPU Xen notifies for the port (the 2-level scan of other vCPUs leaves it alone).
    pub vcpu: u32,
}

/// A slot: 0 when empty, else `PRESENT | vcpu << 32 | handler`.
const PRESENT: u64 = 1 << 63;
/// The largest vCPU number a slot can hold.
const MAX_VCPU: u32 = (1 << 31) - 1;

fn pack(binding: Binding) -> u64 {
    PRESENT | u64::from(binding.vcpu) << 32 | u64::from(binding.handler.0)
}

fn unpack(slot: u64) -> Option<Binding> {
    (slot & PRESENT != 0).then_some(Binding {
        handler: HandlerId(slot as u32),
        vcpu: ((slot & !PRESENT) >> 32) as u32,
    })
}

/// Port → [`Binding`] for ports `0..PORTS`. Port 0 is never valid and cannot be registered.
///
/// `repr(C)` and without padding (the count is 64 bits wide) so that an empty table is one run
/// of zero bytes, which the compiler writes straight into the memory it initialises instead of
/// building it on the stack and copying it.
#[derive(Debug)]
#[repr(C)]
pub struct DispatchTable<const PORTS: usize> {
    slots: [AtomicU64; PORTS],
    registered: AtomicU64,
}

impl<const PORTS: usize> Default for DispatchTable<PORTS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const PORTS: usize> DispatchTable<PORTS> {
    /// An empty table.
    #[inline(always)]
    pub const fn new() -> Self {
        DispatchTable {
            slots: [const { AtomicU64::new(0) }; PORTS],
            registered: AtomicU64::new(0),
        }
    }

    /// Registers `binding` for `port`.
    pub fn register(&self, port: EvtchnPort, binding: Binding) -> Result<(), EvtchnError> {
        if binding.vcpu > MAX_VCPU {
            return Err(EvtchnError::InvalidVcpu { vcpu: binding.vcpu });
        }
        self.slot(port)?
            .compare_exchange(0, pack(binding), Ordering::AcqRel, Ordering::Relaxed)
            .map_err(|_| EvtchnError::PortInUse { port })?;
        self.registered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes the registration of `port` and returns it.
    pub fn unregister(&self, port: EvtchnPort) -> Result<Binding, EvtchnError> {
        let old = self.slot(port)?.swap(0, Ordering::AcqRel);
        let binding = unpack(old).ok_or(EvtchnError::NotRegistered { port })?;
        self.registered.fetch_sub(1, Ordering::Relaxed);
        Ok(binding)
    }

    /// Records that `port` now notifies `vcpu`.
    pub fn set_vcpu(&self, port: EvtchnPort, vcpu: u32) -> Result<(), EvtchnError> {
        if vcpu > MAX_VCPU {
            return Err(EvtchnError::InvalidVcpu { vcpu });
        }
        self.slot(port)?
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |slot| {
                unpack(slot).map(|b| pack(Binding { vcpu, ..b }))
            })
            .map(|_| ())
            .map_err(|_| EvtchnError::NotRegistered { port })
    }

    /// The registration of `port`, if any (`None` also for ports beyond the table).
    pub fn get(&self, port: EvtchnPort) -> Option<Binding> {
        let slot = self.slots.get(port as usize)?;
        unpack(slot.load(Ordering::Acquire))
    }

    /// The number of registered ports.
    pub fn registered(&self) -> u32 {
        self.registered.load(Ordering::Relaxed) as u32
    }

    /// The number of ports the table can hold (registrable ports are `1..capacity`).
    pub const fn capacity(&self) -> u32 {
        PORTS as u32
    }

    /// Some registered port bound to a vCPU other than 0, if any.
    pub(crate) fn port_off_vcpu0(&self) -> Option<(EvtchnPort, u32)> {
        (1..PORTS).find_map(|port| {
            self.get(port as EvtchnPort)
                .filter(|b| b.vcpu != 0)
                .map(|b| (port as EvtchnPort, b.vcpu))
        })
    }

    /// Forgets every registration (after a resume, with nothing running).
    pub(crate) fn clear(&mut self) {
        for slot in &mut self.slots {
            *slot.get_mut() = 0;
        }
        *self.registered.get_mut() = 0;
    }

    /// Bit `b` is set when port `word * 64 + b` should be handled by a 2-level scan of `vcpu`:
    /// it is registered for that vCPU, or not registered at all (then the scan masks it).
    pub(crate) fn scan_mask_2l(&self, word: usize, vcpu: u32) -> u64 {
        let first = word * 64;
        let mut mine = 0u64;
        for bit in 0..64 {
            match self.get((first + bit) as EvtchnPort) {
                Some(binding) if binding.vcpu != vcpu => {}
                _ => mine |= 1 << bit,
            }
        }
        mine
    }

    fn slot(&self, port: EvtchnPort) -> Result<&AtomicU64, EvtchnError> {
        if port == 0 {
            return Err(EvtchnError::InvalidPort { port });
        }
        let capacity = self.capacity();
        self.slots
            .get(port as usize)
            .ok_or(EvtchnError::PortOutOfRange { port, capacity })
    }
}
