//! The driver's bring-up and enumeration path ([`crate::bus`]) against `xen-sim`'s model of
//! Xen: its hypervisor (which records misuse such as a hypercall before the mechanism was
//! chosen), its event channels, grant table and xenstored, with dom0 acting as the toolstack.

use xen_sim::{Backend, Config, Xen};
use xenpci_core::evtchn::{Config as EvtchnConfig, EventChannels};
use xenpci_core::grant_table::{GrantLink, GrantTable};
use xenpci_core::hypervisor::hvm::CallbackVia;
use xenpci_core::xenbus::{ChildError, DeviceClass, ReadBuffers};
use xenpci_core::xenstore::XsConnection;

use crate::bus::{bring_up, enumerate, on_upcall, DriverBus, Pass, Report};
use crate::child::{PdoAction, PdoState};
use crate::enumeration::{ChildTable, Noted, Slot};
use crate::ids::{query_id, query_id_answer};
use crate::pnp::minor::*;

type SimBus = DriverBus<
    'static,
    xen_sim::SimHypervisor,
    xen_sim::SimEvtchnOps,
    xen_sim::SimSharedInfo,
    xen_sim::SimFifo,
    xen_sim::SimGrantEntries,
>;

struct Guest {
    xen: Xen,
    dom0: Backend,
    /// Built in place, never moved.
    bus: &'static mut SimBus,
    ring: xen_sim::SimRingTransport,
    bufs: Box<ReadBuffers>,
    table: ChildTable<8>,
    reports: Vec<Report>,
}

fn guest_domid(xen: &Xen) -> u16 {
    xen.config().guest_domid
}

/// The toolstack's part of adding a device of `class` (`vbd`, `vif`, `vscsi`) with `id`.
fn add_device(xen: &Xen, dom0: &Backend, class: &str, id: u32, extra: &[(&str, &str)]) {
    let guest = guest_domid(xen);
    let back = format!("/local/domain/0/backend/{class}/{guest}/{id}");
    let front = format!("/local/domain/{guest}/device/{class}/{id}");
    dom0.xs_mkdir(&back).unwrap();
    dom0.xs_set_perms(&back, &["n0", &format!("r{guest}")])
        .unwrap();
    dom0.xs_write(&format!("{back}/frontend"), front.as_bytes())
        .unwrap();
    dom0.xs_write(&format!("{back}/state"), b"1").unwrap();
    dom0.xs_write(&format!("{front}/backend"), back.as_bytes())
        .unwrap();
    dom0.xs_write(&format!("{front}/backend-id"), b"0").unwrap();
    for (node, value) in extra {
        dom0.xs_write(&format!("{front}/{node}"), value.as_bytes())
            .unwrap();
    }
    dom0.xs_write(&format!("{front}/state"), b"1").unwrap();
}

fn remove_device(xen: &Xen, dom0: &Backend, class: &str, id: u32) {
    let guest = guest_domid(xen);
    dom0.xs_rm(&format!("/local/domain/{guest}/device/{class}/{id}"))
        .unwrap();
}

impl Guest {
    /// A guest whose toolstack configured a disk and a NIC before the bus driver starts.
    fn start() -> Guest {
        let xen = Xen::new(Config {
            vcpus: 2,
            max_grant_frames: 64,
            ..Config::default()
        });
        let dom0 = xen.dom0();
        add_device(&xen, &dom0, "vbd", 51712, &[("virtual-device", "51712")]);
        add_device(&xen, &dom0, "vif", 0, &[("mac", "00:16:3e:00:00:01")]);
        let mut ring = xen.store_ring();
        let links: &'static [GrantLink] =
            Box::leak(xen_sim::grant_links(64 * 512).into_boxed_slice());
        let grants = GrantTable::new(xen.grant_entries(), links, 0).unwrap();
        // Built in place in memory of their own (leaked), as the shell does: written
        // unstarted, then started there.
        let evtchn = Box::leak(Box::new_uninit()).write(EventChannels::unstarted(
            xen.evtchn_ops(),
            xen.shared_info(),
            xen.fifo(),
        ));
        evtchn
            .start(EvtchnConfig {
                vcpus: 2,
                prefer_fifo: true,
            })
            .unwrap();
        let xs = Box::leak(Box::new_uninit()).write(XsConnection::new());
        let bus = bring_up(
            Box::leak(Box::new_uninit()),
            xen.hypervisor(),
            2,
            CallbackVia::Gsi(28),
            grants,
            evtchn,
            xs,
            &mut ring,
            &mut (),
        )
        .unwrap();
        Guest {
            xen,
            dom0,
            bus,
            ring,
            bufs: Box::new(ReadBuffers::new()),
            table: ChildTable::new(),
            reports: Vec::new(),
        }
    }

    /// Enumeration passes until no events are left.
    fn enumerate(&mut self) -> Pass {
        let mut total = Pass::default();
        for _ in 0..16 {
            let pass = enumerate(
                self.bus,
                &mut self.ring,
                &mut self.bufs,
                &mut self.table,
                |r| self.reports.push(r),
            )
            .unwrap();
            total.relations_changed |= pass.relations_changed;
            total.foreign_watches += pass.foreign_watches;
            total.control = total.control.or(pass.control);
            if !pass.more {
                return total;
            }
        }
        panic!("enumeration did not settle");
    }

    /// The `BusRelations` answer: each child's hardware id.
    fn relations(&mut self) -> Vec<(Slot, String)> {
        let mut out = [Slot(0); 8];
        let n = self.table.report_relations(&mut out);
        out[..n]
            .iter()
            .map(|&slot| {
                let pdo = self.table.get(slot).unwrap().described.unwrap().pdo;
                (slot, pdo.hardware_id.as_str().to_owned())
            })
            .collect()
    }

    fn assert_no_misuse(&self) {
        let violations = &self.xen.hv_state().violations;
        assert!(violations.is_empty(), "{violations:?}");
    }
}

fn slot_of(relations: &[(Slot, String)], class: &str) -> Slot {
    relations
        .iter()
        .find(|(_, id)| id.contains(&format!("DEV_{class}&")))
        .unwrap_or_else(|| panic!("no {class} child in {relations:?}"))
        .0
}

#[test]
fn start_enumerates_the_children_the_toolstack_configured() {
    let mut guest = Guest::start();
    let pass = guest.enumerate();
    assert!(pass.relations_changed);
    let relations = guest.relations();
    assert_eq!(relations.len(), 2, "{relations:?}");
    let vbd = slot_of(&relations, "VBD");
    let vif = slot_of(&relations, "VIF");
    assert!(relations
        .iter()
        .all(|(_, id)| id.starts_with("XENBUS\\VEN_XP&DEV_")));

    let disk = guest.table.get(vbd).unwrap().described.unwrap();
    assert_eq!(disk.info.class, DeviceClass::Vbd);
    assert_eq!(disk.pdo.instance_id.as_str(), "51712");
    let nic = guest.table.get(vif).unwrap().described.unwrap();
    assert_eq!(nic.info.class, DeviceClass::Vif);
    assert_eq!(nic.pdo.instance_id.as_str(), "0");

    // The IRP_MN_QUERY_ID answer is the same identity, as UTF-16 MULTI_SZ.
    let answer = query_id_answer(&disk.pdo, query_id::HARDWARE_IDS).unwrap();
    let text = String::from_utf16(answer.units()).unwrap();
    assert!(text.starts_with("XENBUS\\VEN_XP&DEV_VBD&REV_"), "{text:?}");
    assert!(text.ends_with("\0\0"));
    guest.assert_no_misuse();
}

#[test]
fn a_quiet_store_changes_nothing() {
    let mut guest = Guest::start();
    guest.enumerate();
    guest.relations();
    let pass = guest.enumerate();
    assert!(!pass.relations_changed);
    assert_eq!(guest.relations().len(), 2);
}

#[test]
fn hotplug_reaches_the_bus_through_the_upcall_and_invalidates_relations() {
    let mut guest = Guest::start();
    guest.enumerate();
    guest.relations();
    // Drain whatever the bring-up left pending on the store's port.
    on_upcall(guest.bus.evtchn, 0).unwrap();

    add_device(
        &guest.xen,
        &guest.dom0,
        "vbd",
        51728,
        &[("virtual-device", "51728")],
    );
    let upcall = on_upcall(guest.bus.evtchn, 0).unwrap();
    assert!(
        upcall.store,
        "the watch event did not raise the store's port"
    );
    assert_eq!(upcall.other, 0);

    let pass = guest.enumerate();
    assert!(pass.relations_changed);
    let relations = guest.relations();
    assert_eq!(relations.len(), 3, "{relations:?}");
    assert!(relations.iter().any(|(slot, _)| guest
        .table
        .get(*slot)
        .unwrap()
        .described
        .unwrap()
        .pdo
        .instance_id
        .as_str()
        == "51728"));
    guest.assert_no_misuse();
}

#[test]
fn an_unplugged_started_child_is_surprise_removed_then_deleted_by_remove() {
    let mut guest = Guest::start();
    guest.enumerate();
    let relations = guest.relations();
    let vif = slot_of(&relations, "VIF");
    assert_eq!(
        guest.table.on_pdo_pnp(vif, START_DEVICE),
        Some(PdoAction::Complete(0))
    );

    remove_device(&guest.xen, &guest.dom0, "vif", 0);
    let pass = guest.enumerate();
    assert!(pass.relations_changed);
    assert!(guest.reports.contains(&Report::Noted(Noted::Missing(vif))));
    // The next BusRelations answer leaves the NIC out; the PDO lives until REMOVE.
    let relations = guest.relations();
    assert_eq!(relations.len(), 1);
    assert_eq!(guest.table.get(vif).unwrap().pnp.state(), PdoState::Started);
    assert_eq!(
        guest.table.on_pdo_pnp(vif, SURPRISE_REMOVAL),
        Some(PdoAction::Complete(0))
    );
    assert_eq!(
        guest.table.on_pdo_pnp(vif, REMOVE_DEVICE),
        Some(PdoAction::CompleteAndDelete)
    );
    assert!(guest.table.get(vif).is_none());
    assert_eq!(guest.table.on_pdo_pnp(vif, START_DEVICE), None);
}

#[test]
fn a_child_with_a_hostile_backend_path_is_not_reported() {
    let xen_guest = Guest::start();
    let mut guest = xen_guest;
    guest.enumerate();
    guest.relations();
    let domid = guest_domid(&guest.xen);
    let front = format!("/local/domain/{domid}/device/vbd/51744");
    // A backend path outside dom0's backend area.
    guest
        .dom0
        .xs_write(&format!("{front}/backend-id"), b"0")
        .unwrap();
    guest
        .dom0
        .xs_write(&format!("{front}/backend"), b"/local/domain/0/../../secret")
        .unwrap();
    guest
        .dom0
        .xs_write(&format!("{front}/virtual-device"), b"51744")
        .unwrap();
    guest.enumerate();
    assert!(
        guest.reports.iter().any(|r| matches!(
            r,
            Report::Undescribed(u) if u.id == 51744 && u.error == ChildError::BackendOutsideDomain
        )),
        "{:?}",
        guest.reports
    );
    assert_eq!(guest.relations().len(), 2);
    assert_eq!(guest.table.iter().count(), 2);
}

#[test]
fn a_removed_child_the_pnp_manager_never_saw_is_dropped_without_a_remove() {
    let mut guest = Guest::start();
    guest.enumerate();
    // No BusRelations answer yet: the PnP manager knows neither child.
    remove_device(&guest.xen, &guest.dom0, "vbd", 51712);
    guest.enumerate();
    assert!(guest
        .reports
        .iter()
        .any(|r| matches!(r, Report::Noted(Noted::Dropped { id: 51712, .. }))));
    let relations = guest.relations();
    assert_eq!(relations.len(), 1);
    slot_of(&relations, "VIF");
}

mod query_interface {
    use std::sync::atomic::{AtomicU32, Ordering};

    use xen_abi::types::{DomId, EvtchnPort, GrantRef};
    use xenpci_core::grant_table::Revocation;
    use xenpci_interface::negotiate::consumer_accepts;
    use xenpci_interface::{
        BusError, BusServices, ChildDevice, ChildInterface, EventHandler, Irql, QueryRequest,
        SuspendHandler, Violation, WatchHandler,
    };

    use super::*;
    use crate::pdo::{query_interface, InterfaceAnswer};

    /// Services for a negotiation: answering a query must reach none of them (each one fails
    /// the test); the first reference is counted.
    #[derive(Default)]
    struct NegotiationOnly {
        acquired: AtomicU32,
    }

    const UNREACHABLE: &str = "answering IRP_MN_QUERY_INTERFACE reached a bus service";

    impl BusServices for NegotiationOnly {
        fn current_irql(&self) -> Irql {
            Irql::PASSIVE
        }
        fn grant_access(&self, _: DomId, _: u64, _: bool) -> Result<GrantRef, BusError> {
            panic!("{UNREACHABLE}")
        }
        fn end_access(&self, _: GrantRef) -> Result<Revocation, BusError> {
            panic!("{UNREACHABLE}")
        }
        fn alloc_unbound(&self, _: DomId, _: EventHandler) -> Result<EvtchnPort, BusError> {
            panic!("{UNREACHABLE}")
        }
        fn bind_interdomain(
            &self,
            _: DomId,
            _: EvtchnPort,
            _: EventHandler,
        ) -> Result<EvtchnPort, BusError> {
            panic!("{UNREACHABLE}")
        }
        fn notify(&self, _: EvtchnPort) -> Result<(), BusError> {
            panic!("{UNREACHABLE}")
        }
        fn unmask(&self, _: EvtchnPort) -> Result<(), BusError> {
            panic!("{UNREACHABLE}")
        }
        fn close(&self, _: EvtchnPort) -> Result<(), BusError> {
            panic!("{UNREACHABLE}")
        }
        fn store_read(&self, _: u32, _: &[u8], _: &mut [u8]) -> Result<usize, BusError> {
            panic!("{UNREACHABLE}")
        }
        fn store_write(&self, _: u32, _: &[u8], _: &[u8]) -> Result<(), BusError> {
            panic!("{UNREACHABLE}")
        }
        fn store_remove(&self, _: u32, _: &[u8]) -> Result<(), BusError> {
            panic!("{UNREACHABLE}")
        }
        fn store_directory(&self, _: u32, _: &[u8], _: &mut [u8]) -> Result<usize, BusError> {
            panic!("{UNREACHABLE}")
        }
        fn store_watch(&self, _: &[u8], _: WatchHandler) -> Result<u32, BusError> {
            panic!("{UNREACHABLE}")
        }
        fn store_unwatch(&self, _: u32) -> Result<(), BusError> {
            panic!("{UNREACHABLE}")
        }
        fn transaction_start(&self) -> Result<u32, BusError> {
            panic!("{UNREACHABLE}")
        }
        fn transaction_end(&self, _: u32, _: bool) -> Result<(), BusError> {
            panic!("{UNREACHABLE}")
        }
        fn register_suspend(&self, _: SuspendHandler) -> Result<u32, BusError> {
            panic!("{UNREACHABLE}")
        }
        fn unregister_suspend(&self, _: u32) -> Result<(), BusError> {
            panic!("{UNREACHABLE}")
        }
        fn acquired(&self) {
            self.acquired.fetch_add(1, Ordering::AcqRel);
        }
        fn release(&self) {
            panic!("no reference was dropped, so nothing may be released")
        }
        fn violation(&self, violation: Violation) {
            panic!("negotiation reported a violation: {violation:?}")
        }
    }

    #[test]
    fn an_enumerated_child_gets_a_table_its_consumer_accepts_and_mismatches_get_none() {
        let mut guest = Guest::start();
        guest.enumerate();
        let relations = guest.relations();
        let vbd = slot_of(&relations, "VBD");
        let info = guest.table.get(vbd).unwrap().described.unwrap().info;
        let device = ChildDevice::from_child_info(&info);
        assert_eq!(
            device.backend.as_str(),
            "/local/domain/0/backend/vbd/1/51712"
        );
        let iface: &'static ChildInterface<NegotiationOnly> = Box::leak(Box::new(
            ChildInterface::new(NegotiationOnly::default(), device),
        ));

        for request in [
            QueryRequest {
                version: 2,
                ..QueryRequest::V1
            },
            QueryRequest {
                size: 8,
                ..QueryRequest::V1
            },
            QueryRequest {
                has_buffer: false,
                ..QueryRequest::V1
            },
        ] {
            let InterfaceAnswer::Refused { reason, .. } = query_interface(&request) else {
                panic!("{request:?} was not refused");
            };
            // The adapter, asked anyway, refuses for the same reason and takes no reference.
            assert_eq!(iface.answer_query(&request).unwrap_err(), reason);
            assert_eq!(iface.references(), 0);
        }

        assert_eq!(
            query_interface(&QueryRequest::V1),
            InterfaceAnswer::Fill { version: 1 }
        );
        let table = iface.answer_query(&QueryRequest::V1).unwrap();
        assert_eq!(consumer_accepts(&table), Ok(()));
        assert_eq!(iface.references(), 1);
        assert_eq!(iface.services().acquired.load(Ordering::Acquire), 1);
        assert_eq!(iface.tables_handed_out(), 1);
    }
}
