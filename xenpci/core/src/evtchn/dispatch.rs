//! The fixed-size table from port to handler: the shell maps [`HandlerId`]s to its DPC
//! callbacks.

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

/// Port → [`Binding`] for ports `0..PORTS`. Port 0 is never valid and cannot be registered.
#[derive(Debug)]
pub struct DispatchTable<const PORTS: usize> {
    slots: [Option<Binding>; PORTS],
    registered: u32,
}

impl<const PORTS: usize> Default for DispatchTable<PORTS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const PORTS: usize> DispatchTable<PORTS> {
    /// An empty table.
    pub const fn new() -> Self {
        DispatchTable {
            slots: [None; PORTS],
            registered: 0,
        }
    }

    /// Registers `binding` for `port`.
    pub fn register(&mut self, port: EvtchnPort, binding: Binding) -> Result<(), EvtchnError> {
        let slot = self.slot_mut(port)?;
        if slot.is_some() {
            return Err(EvtchnError::PortInUse { port });
        }
        *slot = Some(binding);
        self.registered += 1;
        Ok(())
    }

    /// Removes the registration of `port` and returns it.
    pub fn unregister(&mut self, port: EvtchnPort) -> Result<Binding, EvtchnError> {
        let binding = self
            .slot_mut(port)?
            .take()
            .ok_or(EvtchnError::NotRegistered { port })?;
        self.registered -= 1;
        Ok(binding)
    }

    /// Records that `port` now notifies `vcpu`.
    pub fn set_vcpu(&mut self, port: EvtchnPort, vcpu: u32) -> Result<(), EvtchnError> {
        match self.slot_mut(port)? {
            Some(binding) => {
                binding.vcpu = vcpu;
                Ok(())
            }
            None => Err(EvtchnError::NotRegistered { port }),
        }
    }

    /// The registration of `port`, if any (`None` also for ports beyond the table).
    pub fn get(&self, port: EvtchnPort) -> Option<Binding> {
        self.slots.get(port as usize).copied().flatten()
    }

    /// The number of registered ports.
    pub fn registered(&self) -> u32 {
        self.registered
    }

    /// The number of ports the table can hold (registrable ports are `1..capacity`).
    pub const fn capacity(&self) -> u32 {
        PORTS as u32
    }

    /// Bit `b` is set when port `word * 64 + b` should be handled by a 2-level scan of `vcpu`:
    /// it is registered for that vCPU, or not registered at all (then the scan masks it).
    pub(crate) fn scan_mask_2l(&self, word: usize, vcpu: u32) -> u64 {
        let first = word * 64;
        let mut mine = 0u64;
        for bit in 0..64 {
            match self.slots.get(first + bit) {
                Some(Some(binding)) if binding.vcpu != vcpu => {}
                _ => mine |= 1 << bit,
            }
        }
        mine
    }

    fn slot_mut(&mut self, port: EvtchnPort) -> Result<&mut Option<Binding>, EvtchnError> {
        if port == 0 {
            return Err(EvtchnError::InvalidPort { port });
        }
        let capacity = self.capacity();
        self.slots
            .get_mut(port as usize)
            .ok_or(EvtchnError::PortOutOfRange { port, capacity })
    }
}
