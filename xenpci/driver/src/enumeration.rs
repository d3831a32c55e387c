//! The bus's children as the PnP manager sees them: one record per xenbus device that
//! enumeration reported, with the PDO's identity (from `xenpci-core`'s
//! [`ChildInfo::pdo`]) and its PnP state ([`ChildPdo`]).
//!
//! The FDO feeds each [`Change`] of `xenpci-core`'s hotplug state to [`ChildTable::note`]
//! (inside the core's event sink, so without touching the store), then describes the new
//! children with [`ChildTable::describe_pending`] (which reads each child's nodes), answers
//! `BusRelations` with [`ChildTable::report_relations`] and routes each child PDO's PnP IRP
//! through [`ChildTable::on_pdo_pnp`]. The bus-driver rules are [`ChildPdo`]'s: a child that
//! leaves the bus stays in the table until the PnP manager's REMOVE (or is dropped at once if
//! the PnP manager never saw it).
//!
//! Concurrency: one table per bus, behind the bus's child-list lock; every method runs under
//! it. [`ChildTable::describe_pending`] blocks in its reader (the store), so it runs at
//! PASSIVE_LEVEL under a lock that may be held while waiting (a mutex, not a spin lock); the
//! other methods never block. Nothing here allocates: the table has `N` slots, the capacity of
//! the core's hotplug table.
#![forbid(unsafe_code)]

use xenpci_core::xenbus::{Change, ChildError, ChildInfo, DeviceClass, PdoDescription};

use crate::child::{ChildPdo, PdoAction};

/// A slot of the table (the PDO's extension keeps it to find its record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(pub usize);

/// A child and its PDO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildRecord {
    /// The class.
    pub class: DeviceClass,
    /// The id under `device/<class>/`.
    pub id: u32,
    /// What the store said about it; `None` until [`ChildTable::describe_pending`] read it.
    pub described: Option<Described>,
    /// The PDO's PnP state.
    pub pnp: ChildPdo,
}

/// A child's store description and the PDO identity derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Described {
    /// The child as read from the store.
    pub info: ChildInfo,
    /// Its PDO's identity (IDs, location).
    pub pdo: PdoDescription,
}

/// What one [`Change`] did to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noted {
    /// A new child, waiting to be described.
    Added(Slot),
    /// A child left the bus; the PnP manager will remove its PDO once `BusRelations` leaves it
    /// out.
    Missing(Slot),
    /// A child left the bus before the PnP manager saw it: its record (this slot) is gone, and
    /// the shell deletes the PDO object if it created one for the slot.
    Dropped {
        /// The slot it had.
        slot: Slot,
        /// The class.
        class: DeviceClass,
        /// The id.
        id: u32,
    },
    /// Nothing for PnP to do (a change inside a known child, or the removal of a child the
    /// table never held).
    Nothing,
    /// A new child found no free slot (the core's table or this one is full); not reported.
    NoRoom {
        /// The class.
        class: DeviceClass,
        /// The id.
        id: u32,
    },
}

impl Noted {
    /// Whether the shell must call `IoInvalidateDeviceRelations(BusRelations)`.
    pub fn relations_changed(&self) -> bool {
        matches!(self, Noted::Added(_) | Noted::Missing(_))
    }
}

/// A child that could not be described; its record was dropped (nothing was reported for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undescribed {
    /// The class.
    pub class: DeviceClass,
    /// The id.
    pub id: u32,
    /// Why.
    pub error: ChildError,
}

/// The children of the bus, at most `N`.
#[derive(Clone, Debug)]
pub struct ChildTable<const N: usize> {
    slots: [Option<ChildRecord>; N],
}

impl<const N: usize> Default for ChildTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ChildTable<N> {
    /// An empty table.
    pub const fn new() -> Self {
        Self { slots: [None; N] }
    }

    /// The record in `slot`.
    pub fn get(&self, slot: Slot) -> Option<&ChildRecord> {
        self.slots.get(slot.0)?.as_ref()
    }

    /// Every occupied slot with its record.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &ChildRecord)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (Slot(i), r)))
    }

    /// Records what enumeration reported.
    pub fn note(&mut self, change: Change) -> Noted {
        match change {
            Change::Added { class, id } => {
                let Some(free) = self.slots.iter().position(Option::is_none) else {
                    return Noted::NoRoom { class, id };
                };
                self.slots[free] = Some(ChildRecord {
                    class,
                    id,
                    described: None,
                    pnp: ChildPdo::new(),
                });
                Noted::Added(Slot(free))
            }
            Change::Removed { class, id } => {
                // The present record of this child (a child that left earlier and came back
                // may also have a missing record still waiting for its REMOVE).
                let found = self.slots.iter().position(|r| {
                    r.is_some_and(|r| r.class == class && r.id == id && !r.pnp.missing())
                });
                let Some(slot) = found else {
                    return Noted::Nothing;
                };
                let Some(record) = self.slots[slot].as_mut() else {
                    return Noted::Nothing;
                };
                if record.pnp.mark_missing() {
                    self.slots[slot] = None;
                    Noted::Dropped {
                        slot: Slot(slot),
                        class,
                        id,
                    }
                } else {
                    Noted::Missing(Slot(slot))
                }
            }
            Change::Changed { .. } => Noted::Nothing,
            Change::TableFull { class, id } => Noted::NoRoom { class, id },
        }
    }

    /// Describes every child added since the last call with `read` (which reads the child's
    /// nodes from the store). A child that cannot be read is dropped and reported to `failed`;
    /// it was never listed in `BusRelations`. Returns how many were described.
    pub fn describe_pending(
        &mut self,
        mut read: impl FnMut(DeviceClass, u32) -> Result<ChildInfo, ChildError>,
        mut failed: impl FnMut(Undescribed),
    ) -> usize {
        let mut described = 0;
        for slot in &mut self.slots {
            let Some(record) = slot else { continue };
            if record.described.is_some() || record.pnp.missing() {
                continue;
            }
            match read(record.class, record.id) {
                Ok(info) => {
                    record.described = Some(Described {
                        info,
                        pdo: info.pdo(),
                    });
                    described += 1;
                }
                Err(error) => {
                    failed(Undescribed {
                        class: record.class,
                        id: record.id,
                        error,
                    });
                    *slot = None;
                }
            }
        }
        described
    }

    /// The children to list in a `BusRelations` answer, written to `out` (at most `out.len()`;
    /// the count is returned). Each one listed is marked as known to the PnP manager. Children
    /// not yet described and missing children are left out.
    pub fn report_relations(&mut self, out: &mut [Slot]) -> usize {
        let mut n = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(record) = slot else { continue };
            if record.described.is_none() || !record.pnp.reported() {
                continue;
            }
            let Some(entry) = out.get_mut(n) else { break };
            *entry = Slot(i);
            record.pnp.mark_reported();
            n += 1;
        }
        n
    }

    /// Runs a child PDO's PnP IRP through its state machine. On
    /// [`PdoAction::CompleteAndDelete`] the record is freed (the shell deletes the PDO after
    /// completing the IRP). `None`: no child in that slot (a stale PDO).
    pub fn on_pdo_pnp(&mut self, slot: Slot, minor_code: u8) -> Option<PdoAction> {
        let entry = self.slots.get_mut(slot.0)?;
        let record = entry.as_mut()?;
        let action = record.pnp.on_pnp(minor_code);
        if action == PdoAction::CompleteAndDelete {
            *entry = None;
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pnp::minor::*;
    use win_km::status::STATUS_SUCCESS;

    fn added(class: DeviceClass, id: u32) -> Change {
        Change::Added { class, id }
    }

    fn removed(class: DeviceClass, id: u32) -> Change {
        Change::Removed { class, id }
    }

    /// A reader that must not be reached.
    fn no_read(class: DeviceClass, id: u32) -> Result<ChildInfo, ChildError> {
        panic!("read {class:?}/{id} unexpectedly")
    }

    fn unreadable(_: DeviceClass, _: u32) -> Result<ChildInfo, ChildError> {
        Err(ChildError::BackendOutsideDomain)
    }

    #[test]
    fn an_undescribed_child_is_not_reported_and_an_unreadable_one_is_dropped() {
        let mut table = ChildTable::<4>::new();
        let noted = table.note(added(DeviceClass::Vbd, 768));
        assert_eq!(noted, Noted::Added(Slot(0)));
        assert!(noted.relations_changed());
        let mut out = [Slot(99); 4];
        assert_eq!(table.report_relations(&mut out), 0);
        let mut failures = Vec::new();
        assert_eq!(table.describe_pending(unreadable, |u| failures.push(u)), 0);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].id, 768);
        assert_eq!(table.iter().count(), 0);
    }

    #[test]
    fn a_full_table_refuses_with_the_child_named() {
        let mut table = ChildTable::<1>::new();
        table.note(added(DeviceClass::Vif, 0));
        let noted = table.note(added(DeviceClass::Vif, 1));
        assert_eq!(
            noted,
            Noted::NoRoom {
                class: DeviceClass::Vif,
                id: 1
            }
        );
        assert!(!noted.relations_changed());
    }

    #[test]
    fn a_child_gone_before_the_pnp_manager_saw_it_is_dropped_at_once() {
        let mut table = ChildTable::<2>::new();
        table.note(added(DeviceClass::Vscsi, 2));
        let noted = table.note(removed(DeviceClass::Vscsi, 2));
        assert!(matches!(noted, Noted::Dropped { id: 2, .. }));
        assert!(!noted.relations_changed());
        assert_eq!(table.iter().count(), 0);
        assert_eq!(table.describe_pending(no_read, |_| panic!()), 0);
    }

    #[test]
    fn removal_of_an_unknown_child_and_inner_changes_do_nothing() {
        let mut table = ChildTable::<2>::new();
        assert_eq!(table.note(removed(DeviceClass::Vbd, 5)), Noted::Nothing);
        assert_eq!(
            table.note(Change::Changed {
                class: DeviceClass::Vbd,
                id: 5
            }),
            Noted::Nothing
        );
    }

    #[test]
    fn stale_slots_are_refused() {
        let mut table = ChildTable::<2>::new();
        assert_eq!(table.on_pdo_pnp(Slot(0), START_DEVICE), None);
        assert_eq!(table.on_pdo_pnp(Slot(7), START_DEVICE), None);
    }

    /// Every sequence of five events over two children of one class (hotplug added/removed, a
    /// `BusRelations` answer, START/SURPRISE_REMOVAL/REMOVE on either slot): a relations answer
    /// never lists a missing or undescribed child, never lists a slot twice, a record is freed
    /// only by REMOVE of a missing child or by the removal of a child never reported, and the
    /// table never holds two present records of one child.
    #[test]
    fn no_sequence_reports_a_missing_child_or_frees_a_present_one() {
        #[derive(Clone, Copy, Debug)]
        enum Event {
            Add(u32),
            Remove(u32),
            Relations,
            Pnp(usize, u8),
        }
        let events = [
            Event::Add(1),
            Event::Add(2),
            Event::Remove(1),
            Event::Remove(2),
            Event::Relations,
            Event::Pnp(0, START_DEVICE),
            Event::Pnp(0, SURPRISE_REMOVAL),
            Event::Pnp(0, REMOVE_DEVICE),
            Event::Pnp(1, REMOVE_DEVICE),
        ];
        let n = events.len();
        for seq in 0..n.pow(5) {
            let mut table = ChildTable::<4>::new();
            // Which ids the store lists now (hotplug reports each change once).
            let mut present = [false; 3];
            let mut rest = seq;
            for _ in 0..5 {
                let event = events[rest % n];
                rest /= n;
                match event {
                    Event::Add(id) if !present[id as usize] => {
                        present[id as usize] = true;
                        table.note(added(DeviceClass::Vbd, id));
                    }
                    Event::Remove(id) if present[id as usize] => {
                        present[id as usize] = false;
                        let before: Vec<_> = table.iter().map(|(s, r)| (s, *r)).collect();
                        if let Noted::Dropped { slot, .. } =
                            table.note(removed(DeviceClass::Vbd, id))
                        {
                            let record = before.iter().find(|(s, _)| *s == slot).unwrap().1;
                            assert_eq!(record.id, id);
                        }
                    }
                    Event::Add(_) | Event::Remove(_) => {}
                    Event::Relations => {
                        // Describe as the bus would (the store's answer is not needed here:
                        // the record only has to be marked described).
                        for slot in table.slots.iter_mut().flatten() {
                            if !slot.pnp.missing() && slot.described.is_none() {
                                slot.described = Some(Described {
                                    info: sample_info(slot.id),
                                    pdo: sample_info(slot.id).pdo(),
                                });
                            }
                        }
                        let mut out = [Slot(0); 4];
                        let count = table.report_relations(&mut out);
                        let listed = &out[..count];
                        for (i, slot) in listed.iter().enumerate() {
                            assert!(!listed[..i].contains(slot), "listed twice ({seq})");
                            let record = table.get(*slot).unwrap();
                            assert!(!record.pnp.missing(), "listed a missing child ({seq})");
                            assert!(present[record.id as usize], "listed a gone child ({seq})");
                        }
                    }
                    Event::Pnp(slot, code) => {
                        let before = table.get(Slot(slot)).copied();
                        let action = table.on_pdo_pnp(Slot(slot), code);
                        if action == Some(PdoAction::CompleteAndDelete) {
                            let record = before.unwrap();
                            assert!(record.pnp.missing(), "freed a present child ({seq})");
                            assert_eq!(code, REMOVE_DEVICE);
                            assert!(table.get(Slot(slot)).is_none());
                        }
                    }
                }
                for id in 1..=2 {
                    let live = table
                        .iter()
                        .filter(|(_, r)| r.id == id && !r.pnp.missing())
                        .count();
                    assert_eq!(live, usize::from(present[id as usize]), "({seq})");
                }
            }
        }
    }

    fn sample_info(id: u32) -> ChildInfo {
        use xen_abi::xenbus::XenbusState;
        use xenpci_core::xenbus::{Identity, PathBuf, Vdev};
        ChildInfo {
            class: DeviceClass::Vbd,
            id,
            backend: PathBuf::try_from_str("/local/domain/0/backend/vbd/1/1").unwrap(),
            backend_id: 0,
            state: XenbusState::Initialising,
            identity: Identity::Vbd(Vdev::decode(51712).unwrap()),
        }
    }

    #[test]
    fn pdo_pnp_goes_through_the_child_state_machine() {
        let mut table = ChildTable::<2>::new();
        table.note(added(DeviceClass::Vbd, 1));
        // Describing needs a real ChildInfo; the xen-sim tests of `bus_layer` cover that path.
        assert_eq!(
            table.on_pdo_pnp(Slot(0), START_DEVICE),
            Some(PdoAction::Complete(STATUS_SUCCESS))
        );
    }
}
