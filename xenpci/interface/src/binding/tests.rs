//! Every thunk and trampoline driven through a real table over a plain in-memory bus, small
//! enough for Miri (`cargo +nightly miri test -p xenpci-interface --lib`), which checks the
//! pointer casts, slices and callbacks of this module.

use std::cell::Cell;
use std::string::String;
use std::sync::Mutex;
use std::vec::Vec;

use super::client::checked_length;
use super::*;
use crate::abi::StoreBase;
use crate::abi::XEN_BUS_INTERFACE_V1_SIZE;
use crate::consumer::BusCallbacks;
use crate::negotiate::QueryRequest;
use crate::provider::ChildDevice;
use crate::provider::{BusServices, ChildInterface};
use crate::rules::{Irql, Violation};
use xen_abi::types::{DomId, GrantRef};
use xenpci_core::grant_table::Revocation;
use xenpci_core::xenbus::Backend;
use xenpci_core::xenbus::PathBuf;
use xenpci_core::xenstore::TxId;

std::thread_local! {
    static IRQL: Cell<u8> = const { Cell::new(0) };
}

/// A bus in a few vectors.
#[derive(Default)]
struct Ledger {
    nodes: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    ports: Mutex<Vec<(EvtchnPort, EventHandler)>>,
    watches: Mutex<Vec<(u32, Vec<u8>, WatchHandler)>>,
    suspends: Mutex<Vec<(u32, SuspendHandler)>>,
    grants: Mutex<Vec<GrantRef>>,
    notified: Mutex<Vec<EvtchnPort>>,
    violations: Mutex<Vec<Violation>>,
    acquired: Mutex<u32>,
    released: Mutex<u32>,
}

impl BusServices for Ledger {
    fn current_irql(&self) -> Irql {
        Irql(IRQL.with(Cell::get))
    }
    fn grant_access(&self, _: DomId, frame: u64, _: bool) -> Result<GrantRef, BusError> {
        if frame > u64::from(u32::MAX) {
            return Err(BusError::FrameTooLarge);
        }
        let mut g = self.grants.lock().unwrap();
        let r = 8 + g.len() as u32;
        g.push(r);
        Ok(r)
    }
    fn end_access(&self, gref: GrantRef) -> Result<Revocation, BusError> {
        let mut g = self.grants.lock().unwrap();
        let i = g
            .iter()
            .position(|&x| x == gref)
            .ok_or(BusError::NotGranted)?;
        g.remove(i);
        Ok(if gref % 2 == 0 {
            Revocation::Revoked
        } else {
            Revocation::Deferred
        })
    }
    fn alloc_unbound(&self, _: DomId, handler: EventHandler) -> Result<EvtchnPort, BusError> {
        let mut p = self.ports.lock().unwrap();
        let port = 10 + p.len() as u32;
        p.push((port, handler));
        Ok(port)
    }
    fn bind_interdomain(
        &self,
        _: DomId,
        remote: EvtchnPort,
        handler: EventHandler,
    ) -> Result<EvtchnPort, BusError> {
        self.ports.lock().unwrap().push((remote + 100, handler));
        Ok(remote + 100)
    }
    fn notify(&self, port: EvtchnPort) -> Result<(), BusError> {
        self.notified.lock().unwrap().push(port);
        Ok(())
    }
    fn unmask(&self, _: EvtchnPort) -> Result<(), BusError> {
        Ok(())
    }
    fn close(&self, port: EvtchnPort) -> Result<(), BusError> {
        let mut p = self.ports.lock().unwrap();
        let i = p
            .iter()
            .position(|r| r.0 == port)
            .ok_or(BusError::NotOwned)?;
        p.remove(i);
        Ok(())
    }
    fn store_read(&self, _: u32, path: &[u8], buf: &mut [u8]) -> Result<usize, BusError> {
        let nodes = self.nodes.lock().unwrap();
        let (_, v) = nodes
            .iter()
            .find(|(k, _)| k == path)
            .ok_or(BusError::Store(xen_abi::xenstore::XsErrno::Enoent))?;
        let dst = buf
            .get_mut(..v.len())
            .ok_or(BusError::BufferTooSmall { needed: v.len() })?;
        dst.copy_from_slice(v);
        Ok(v.len())
    }
    fn store_write(&self, _: u32, path: &[u8], value: &[u8]) -> Result<(), BusError> {
        let mut nodes = self.nodes.lock().unwrap();
        nodes.retain(|(k, _)| k != path);
        nodes.push((path.to_vec(), value.to_vec()));
        Ok(())
    }
    fn store_remove(&self, _: u32, path: &[u8]) -> Result<(), BusError> {
        self.nodes.lock().unwrap().retain(|(k, _)| k != path);
        Ok(())
    }
    fn store_directory(&self, tx: u32, path: &[u8], buf: &mut [u8]) -> Result<usize, BusError> {
        let _ = (tx, path);
        let list = b"a\0bb\0";
        let dst = buf
            .get_mut(..list.len())
            .ok_or(BusError::BufferTooSmall { needed: list.len() })?;
        dst.copy_from_slice(list);
        Ok(list.len())
    }
    fn store_watch(&self, path: &[u8], handler: WatchHandler) -> Result<u32, BusError> {
        let mut w = self.watches.lock().unwrap();
        let h = 1 + w.len() as u32;
        w.push((h, path.to_vec(), handler));
        Ok(h)
    }
    fn store_unwatch(&self, watch: u32) -> Result<(), BusError> {
        self.watches.lock().unwrap().retain(|w| w.0 != watch);
        Ok(())
    }
    fn transaction_start(&self) -> Result<u32, BusError> {
        Ok(42)
    }
    fn transaction_end(&self, tx: u32, commit: bool) -> Result<(), BusError> {
        match (tx, commit) {
            (42, true) => Err(BusError::Store(xen_abi::xenstore::XsErrno::Eagain)),
            (42, false) => Ok(()),
            _ => Err(BusError::NotOwned),
        }
    }
    fn register_suspend(&self, handler: SuspendHandler) -> Result<u32, BusError> {
        let mut s = self.suspends.lock().unwrap();
        s.push((7, handler));
        Ok(7)
    }
    fn unregister_suspend(&self, handle: u32) -> Result<(), BusError> {
        self.suspends.lock().unwrap().retain(|s| s.0 != handle);
        Ok(())
    }
    fn acquired(&self) {
        *self.acquired.lock().unwrap() += 1;
    }
    fn release(&self) {
        *self.released.lock().unwrap() += 1;
        self.ports.lock().unwrap().clear();
        self.watches.lock().unwrap().clear();
        self.suspends.lock().unwrap().clear();
    }
    fn violation(&self, violation: Violation) {
        self.violations.lock().unwrap().push(violation);
    }
}

#[derive(Default, Debug)]
struct Seen {
    events: Mutex<Vec<EvtchnPort>>,
    watches: Mutex<Vec<(u32, String)>>,
    phases: Mutex<Vec<SuspendPhase>>,
}

impl BusCallbacks for Seen {
    fn on_event(&self, port: EvtchnPort) {
        self.events.lock().unwrap().push(port);
    }
    fn on_watch(&self, watch: u32, path: &[u8]) {
        let path = String::from_utf8(path.to_vec()).unwrap();
        self.watches.lock().unwrap().push((watch, path));
    }
    fn on_suspend(&self, phase: SuspendPhase) {
        self.phases.lock().unwrap().push(phase);
    }
}

fn device() -> ChildDevice {
    ChildDevice {
        backend_domid: 3,
        frontend: PathBuf::try_from_str("device/vbd/768").unwrap(),
        backend: PathBuf::try_from_str("/local/domain/3/backend/vbd/1/768").unwrap(),
    }
}

#[test]
fn every_entry_and_callback_crosses_the_table() {
    let iface = ChildInterface::new(Ledger::default(), device());
    let seen = Seen::default();
    // SAFETY:
    // 1. `iface` stays in place and alive until the end of the test, after the client (and
    //    with it the last reference) is gone;
    // 2. the table goes to this test's client only.
    let table = unsafe { iface.answer_query_in_place(&QueryRequest::V1) }.unwrap();
    assert_eq!(table.header.size, XEN_BUS_INTERFACE_V1_SIZE);
    // SAFETY:
    // 1. the table is the bus's answer, its reference handed to the client;
    // 2. `seen` outlives the client.
    let client = unsafe { crate::BusClient::new(&table, &seen) }.unwrap();
    let ledger = iface.services();
    assert_eq!(*ledger.acquired.lock().unwrap(), 1);

    // Grants, with both outcomes of an end reported.
    let a = client.grant_access(3, 0x1234, false).unwrap();
    let b = client.grant_access(3, 0x1235, true).unwrap();
    assert_eq!(client.end_access(a), Ok(Revocation::Revoked));
    assert_eq!(client.end_access(b), Ok(Revocation::Deferred));
    assert_eq!(client.end_access(b), Err(BusError::NotGranted));
    assert_eq!(
        client.grant_access(3, 1 << 40, false),
        Err(BusError::FrameTooLarge)
    );

    // Event channels and their callbacks.
    let p = client.alloc_unbound(3, Delivery::Dirql).unwrap();
    let q = client.bind_interdomain(3, 5, Delivery::Dpc).unwrap();
    assert_eq!(q, 105);
    for (port, handler) in ledger.ports.lock().unwrap().iter() {
        handler.fire(*port);
    }
    assert_eq!(*seen.events.lock().unwrap(), [p, q]);
    assert_eq!(ledger.ports.lock().unwrap()[1].1.delivery(), Delivery::Dpc);
    client.notify(p).unwrap();
    client.unmask(p).unwrap();
    assert_eq!(*ledger.notified.lock().unwrap(), [p]);
    client.close(p).unwrap();
    assert_eq!(client.close(p), Err(BusError::NotOwned));

    // The store, relative to the child's directories.
    let none = TxId::NONE;
    client
        .write(none, StoreBase::Frontend, "ring-ref", b"9")
        .unwrap();
    let mut buf = [0u8; 4];
    let n = client
        .read(
            none,
            StoreBase::Absolute,
            "device/vbd/768/ring-ref",
            &mut buf,
        )
        .err();
    assert_eq!(n, Some(BusError::InvalidParameter), "absolute needs a /");
    let n = client
        .read(none, StoreBase::Frontend, "ring-ref", &mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"9");
    client
        .write(none, StoreBase::Backend, "state", b"2")
        .unwrap();
    assert_eq!(
        ledger.nodes.lock().unwrap()[1].0,
        b"/local/domain/3/backend/vbd/1/768/state"
    );
    assert_eq!(
        client.backend_state(),
        Ok(Backend::State(xen_abi::xenbus::XenbusState::InitWait))
    );
    client
        .write(none, StoreBase::Frontend, "long", b"0123456789")
        .unwrap();
    assert_eq!(
        client.read(none, StoreBase::Frontend, "long", &mut buf),
        Err(BusError::BufferTooSmall { needed: 10 })
    );
    let mut list = [0u8; 16];
    let n = client
        .directory(none, StoreBase::Frontend, "", &mut list)
        .unwrap();
    assert_eq!(&list[..n], b"a\0bb\0");
    client.remove(none, StoreBase::Frontend, "long").unwrap();
    let tx = client.transaction_start().unwrap();
    assert_eq!(
        client.transaction_end(tx, true),
        Err(BusError::Store(xen_abi::xenstore::XsErrno::Eagain))
    );
    client.transaction_end(tx, false).unwrap();
    client
        .switch_state(none, xen_abi::xenbus::XenbusState::Initialised)
        .unwrap();
    let n = client
        .read(none, StoreBase::Frontend, "state", &mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"3");

    // Watches and suspend callbacks.
    let w = client.watch(StoreBase::Backend, "state").unwrap();
    for (h, path, handler) in ledger.watches.lock().unwrap().iter() {
        handler.fire(*h, path);
    }
    assert_eq!(
        *seen.watches.lock().unwrap(),
        [(w, String::from("/local/domain/3/backend/vbd/1/768/state"))]
    );
    let s = client.register_suspend().unwrap();
    for (_, handler) in ledger.suspends.lock().unwrap().iter() {
        handler.fire(SuspendPhase::Resumed);
    }
    assert_eq!(*seen.phases.lock().unwrap(), [SuspendPhase::Resumed]);
    client.unregister_suspend(s).unwrap();

    // Identity.
    assert_eq!(client.backend_domid(), Ok(3));
    assert_eq!(client.frontend_path().unwrap().as_str(), "device/vbd/768");
    assert_eq!(
        client.backend_path().unwrap().as_str(),
        "/local/domain/3/backend/vbd/1/768"
    );

    // A call above its IRQL never reaches the bus.
    IRQL.with(|c| c.set(Irql::DISPATCH.0));
    assert_eq!(client.transaction_start(), Err(BusError::WrongIrql));
    IRQL.with(|c| c.set(0));
    assert_eq!(ledger.violations.lock().unwrap().len(), 1);

    drop(client);
    assert_eq!(iface.references(), 0);
    assert_eq!(*ledger.released.lock().unwrap(), 1);
    assert!(ledger.ports.lock().unwrap().is_empty(), "q revoked");
    assert!(ledger.watches.lock().unwrap().is_empty());
}

#[test]
fn lengths_the_bus_reports_beyond_the_buffer_are_refused() {
    assert_eq!(checked_length(0, 9, 8), Err(BusError::InvalidParameter));
    assert_eq!(checked_length(0, 8, 8), Ok(8));
    assert_eq!(
        checked_length(crate::status::STATUS_BUFFER_TOO_SMALL, 99, 8),
        Err(BusError::BufferTooSmall { needed: 99 })
    );
}
