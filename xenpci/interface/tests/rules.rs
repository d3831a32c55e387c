//! The rules of the table, each broken or exercised on purpose through the real adapter over
//! the simulated bus: IRQL limits, calls after the last dereference, reference underflow,
//! ownership, event masking and delivery modes, deferred revocation, store paths and buffer
//! lengths, transactions, watches, and the revocation of leftovers at release.

mod support;

use std::sync::atomic::Ordering;

use support::*;
use xen_abi::xenbus::XenbusState;
use xen_abi::xenstore::XsErrno;
use xenpci_core::grant_table::Revocation;
use xenpci_core::xenbus::Backend;
use xenpci_core::xenstore::TxId;
use xenpci_interface::status::{STATUS_INVALID_PARAMETER, STATUS_RELEASED};
use xenpci_interface::{
    BusClient, BusError, ChildInterface, Delivery, Irql, QueryRequest, StoreBase, XenBusInterfaceV1,
};

fn connect<'h>(
    iface: &'static ChildInterface<SimChild>,
    handlers: &'h Recorder,
) -> (BusClient<'h, Recorder>, XenBusInterfaceV1) {
    let mut buffer = XenBusInterfaceV1::EMPTY;
    query_interface(iface, &QueryRequest::V1, &mut buffer).unwrap();
    // SAFETY:
    // 1. `buffer` is the bus's answer to this child's query, its reference handed over;
    // 2. `handlers` outlives the client (the tests drop it first).
    let client = unsafe { BusClient::new(&buffer, handlers) }.unwrap();
    (client, buffer)
}

#[test]
fn calls_above_their_irql_are_refused_and_reported() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let (client, _) = connect(iface, &handlers);
    let page = bus.xen.alloc_page();
    let calls = bus.service_calls.load(Ordering::SeqCst);
    at_irql(DIRQL, || {
        let mut buf = [0u8; 16];
        assert_eq!(
            client.read(TxId::NONE, StoreBase::Backend, "state", &mut buf),
            Err(BusError::WrongIrql)
        );
        assert_eq!(
            client.grant_access(0, page, false),
            Err(BusError::WrongIrql)
        );
        // What may run at DIRQL does.
        assert_eq!(client.backend_domid(), Ok(0));
        assert!(client.frontend_path().is_ok());
    });
    at_irql(Irql::DISPATCH, || {
        assert_eq!(
            client.alloc_unbound(0, Delivery::Dpc),
            Err(BusError::WrongIrql)
        );
        assert_eq!(
            client.watch(StoreBase::Backend, "state"),
            Err(BusError::WrongIrql)
        );
        let gref = client.grant_access(0, page, true).unwrap();
        assert_eq!(client.end_access(gref), Ok(Revocation::Revoked));
    });
    // None of the refused calls reached the bus.
    assert_eq!(bus.service_calls.load(Ordering::SeqCst), calls + 2);
    let seen = bus.take_violations();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen[0].contains("store_read called at IRQL 5 (highest allowed 0)"));
    assert!(seen[1].contains("grant_access called at IRQL 5 (highest allowed 2)"));
    assert_eq!(iface.violations(), 4);
    drop(client);
    bus.assert_clean();
}

#[test]
fn nothing_reaches_the_bus_after_the_last_dereference() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let (client, table) = connect(iface, &handlers);
    drop(client);
    assert_eq!(iface.references(), 0);
    assert_eq!(bus.releases.load(Ordering::SeqCst), 1);
    let calls = bus.service_calls.load(Ordering::SeqCst);

    // A child that kept a copy of the table and calls on.
    let ctx = table.header.context;
    let mut gref = 0u32;
    let grant = table.grant_access.unwrap();
    // SAFETY:
    // 1. `grant` and `ctx` belong together (the bus's table) and the adapter is leaked, so it
    //    is still in place: the call is well-formed, only made after the last dereference,
    //    which the adapter must refuse;
    // 2. `gref` is a valid `u32` for the call.
    let status = unsafe { grant(ctx, 0, 1, 0, &mut gref) };
    assert_eq!(status, STATUS_RELEASED);
    let deref = table.header.interface_dereference.unwrap();
    // SAFETY: as above: a dereference with none held, which the adapter must refuse.
    unsafe { deref(ctx) };
    let reference = table.header.interface_reference.unwrap();
    // SAFETY: as above: a reference on a released interface, refused.
    unsafe { reference(ctx) };
    assert_eq!(iface.references(), 0);

    assert_eq!(bus.service_calls.load(Ordering::SeqCst), calls);
    assert_eq!(bus.releases.load(Ordering::SeqCst), 1, "released once");
    let seen = bus.take_violations();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].contains("grant_access called after the last dereference"));
    assert!(seen[1].contains("interface_dereference called with no reference held"));
    assert!(seen[2].contains("interface_reference called after the last dereference"));
    bus.assert_clean();
}

#[test]
fn bad_pointers_are_refused_before_anything_happens() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let (client, table) = connect(iface, &handlers);
    let ctx = table.header.context;
    let start = table.store_transaction_start.unwrap();
    // SAFETY:
    // 1. the table's function with its context; a null output, which must be refused before
    //    a transaction is started (nobody could end it).
    let status = unsafe { start(ctx, std::ptr::null_mut()) };
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    assert_eq!(bus.transactions_open(), 0);
    let read = table.store_read.unwrap();
    let mut len = 0usize;
    // SAFETY:
    // 1. the table's function with its context; a null path with a length, refused;
    // 2. `len` is valid for the call.
    let status = unsafe {
        read(
            ctx,
            0,
            1,
            std::ptr::null(),
            5,
            std::ptr::null_mut(),
            0,
            &mut len,
        )
    };
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    let end = table.end_access.unwrap();
    // SAFETY:
    // 1. the table's function with its context; a null outcome, refused before the grant is
    //    touched (an outcome must never be lost).
    let status = unsafe { end(ctx, 8, std::ptr::null_mut()) };
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    let switch = table.switch_state.unwrap();
    // SAFETY:
    // 1. the table's function with its context; a state that is no xenbus state, refused.
    let status = unsafe { switch(ctx, 0, 99) };
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    drop(client);
    bus.assert_clean();
}

#[test]
fn events_are_masked_for_their_callback_until_the_child_unmasks() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let (client, _) = connect(iface, &handlers);
    let dom0 = bus.xen.dom0();
    let port = client.alloc_unbound(0, Delivery::Dirql).unwrap();
    let remote = dom0.bind_interdomain(GUEST, port).unwrap();

    dom0.send(remote).unwrap();
    assert_eq!(bus.interrupt(), vec![port]);
    assert_eq!(*handlers.events.lock().unwrap(), vec![(port, DIRQL)]);
    assert!(bus.is_masked(port));

    // Another event while masked: pending, no callback.
    dom0.send(remote).unwrap();
    assert_eq!(bus.interrupt(), vec![]);
    assert_eq!(handlers.events.lock().unwrap().len(), 1);

    // The child unmasks from its DPC: the pending event is raised and delivered.
    at_irql(Irql::DISPATCH, || client.unmask(port).unwrap());
    assert_eq!(bus.interrupt(), vec![port]);
    assert_eq!(handlers.events.lock().unwrap().len(), 2);
    assert_eq!(bus.event_calls(port), 2);

    // Notify from the callback's IRQL reaches the backend.
    let before = dom0.events_received();
    at_irql(DIRQL, || client.notify(port).unwrap());
    assert_eq!(dom0.events_received(), before + 1);

    // A DPC-mode port is delivered at DISPATCH_LEVEL, from the DPC only.
    let dpc_remote = dom0.alloc_unbound(GUEST).unwrap();
    let dpc_port = client
        .bind_interdomain(0, dpc_remote, Delivery::Dpc)
        .unwrap();
    dom0.send(dpc_remote).unwrap();
    assert_eq!(bus.interrupt(), vec![dpc_port]);
    assert_eq!(handlers.events.lock().unwrap().len(), 2, "not from the ISR");
    assert_eq!(bus.run_dpc(), 1);
    assert_eq!(
        handlers.events.lock().unwrap().last(),
        Some(&(dpc_port, Irql::DISPATCH))
    );

    // Someone else's port is refused.
    assert_eq!(client.notify(1), Err(BusError::NotOwned));
    client.close(port).unwrap();
    assert_eq!(client.close(port), Err(BusError::NotOwned));
    dom0.send(remote).ok();
    assert_eq!(bus.interrupt(), vec![]);
    client.close(dpc_port).unwrap();
    drop(client);
    bus.assert_clean();
}

#[test]
fn a_revocation_the_backend_still_maps_is_reported_deferred() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let (client, _) = connect(iface, &handlers);
    let dom0 = bus.xen.dom0();
    let page = bus.xen.alloc_page();
    let gref = client.grant_access(0, page, false).unwrap();
    let mapped = dom0.map_grant(gref, true).unwrap();
    assert_eq!(client.end_access(gref), Ok(Revocation::Deferred));
    assert_eq!(bus.deferred(), 1);
    // The reference is no longer the child's: a second end is refused.
    assert_eq!(client.end_access(gref), Err(BusError::NotGranted));
    dom0.unmap_grant(mapped).unwrap();

    // Through the block core's trait: the bus took the reference over, so the page is
    // abandoned (never reused), not reported free.
    let gref = client.grant_access(0, page, true).unwrap();
    let mapped = dom0.map_grant(gref, false).unwrap();
    let mut grants = xenpci_interface::blkif::TableGrants::new(&client);
    use xenvbd_core::blkif::Grants;
    assert_eq!(grants.end(gref), Ok(xenvbd_core::blkif::Ended::Abandoned));
    assert_eq!(grants.end_failures(), 0);
    assert_eq!(
        grants.end(gref),
        Err(xenpci_core::grant_table::GrantError::NotGranted { gref })
    );
    dom0.unmap_grant(mapped).unwrap();
    drop(client);
    bus.assert_clean();
}

#[test]
fn store_paths_lengths_and_transactions() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let (client, _) = connect(iface, &handlers);
    let dom0 = bus.xen.dom0();
    let none = TxId::NONE;

    client
        .write(none, StoreBase::Frontend, "feature-x", b"12345")
        .unwrap();
    assert_eq!(
        dom0.xs_read(&format!("{}/feature-x", frontend_dir(VBD)))
            .unwrap(),
        b"12345"
    );
    let mut buf = [0u8; 8];
    let n = client
        .read(none, StoreBase::Frontend, "feature-x", &mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"12345");
    let mut small = [0u8; 3];
    assert_eq!(
        client.read(none, StoreBase::Frontend, "feature-x", &mut small),
        Err(BusError::BufferTooSmall { needed: 5 })
    );
    let n = client
        .read(none, StoreBase::Backend, "frontend-id", &mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"1");
    let abs = format!("{}/backend-id", frontend_dir(VBD));
    let n = client
        .read(none, StoreBase::Absolute, &abs, &mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"0");

    let mut list = [0u8; 128];
    let n = client
        .directory(none, StoreBase::Frontend, "", &mut list)
        .unwrap();
    let names: Vec<&[u8]> = list[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .collect();
    assert!(names.contains(&&b"feature-x"[..]), "{names:?}");
    assert!(names.contains(&&b"state"[..]));
    let mut tiny = [0u8; 4];
    assert!(matches!(
        client.directory(none, StoreBase::Frontend, "", &mut tiny),
        Err(BusError::BufferTooSmall { needed }) if needed == n
    ));

    client
        .remove(none, StoreBase::Frontend, "feature-x")
        .unwrap();
    assert_eq!(
        client.read(none, StoreBase::Frontend, "feature-x", &mut buf),
        Err(BusError::Store(XsErrno::Enoent))
    );

    // Paths that do not fit their base are refused before the store sees them.
    assert_eq!(
        client.read(none, StoreBase::Frontend, "/local", &mut buf),
        Err(BusError::InvalidParameter)
    );
    assert_eq!(
        client.read(none, StoreBase::Absolute, "local", &mut buf),
        Err(BusError::InvalidParameter)
    );
    let long = "x".repeat(300);
    assert_eq!(
        client.write(none, StoreBase::Frontend, &long, b"1"),
        Err(BusError::PathTooLong)
    );

    // A transaction commits; one that raced with another writer must be redone.
    let tx = client.transaction_start().unwrap();
    client
        .write(tx, StoreBase::Frontend, "ring-ref", b"8")
        .unwrap();
    client.switch_state(tx, XenbusState::Initialised).unwrap();
    client.transaction_end(tx, true).unwrap();
    assert_eq!(frontend_state(&dom0, VBD), XenbusState::Initialised);
    let tx = client.transaction_start().unwrap();
    let n = client
        .read(tx, StoreBase::Frontend, "ring-ref", &mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"8");
    client
        .write(tx, StoreBase::Frontend, "ring-ref", b"9")
        .unwrap();
    dom0.xs_write(&format!("{}/ring-ref", frontend_dir(VBD)), b"7")
        .unwrap();
    assert_eq!(
        client.transaction_end(tx, true),
        Err(BusError::Store(XsErrno::Eagain))
    );
    assert_eq!(client.transaction_end(tx, false), Err(BusError::NotOwned));
    let tx = client.transaction_start().unwrap();
    client
        .write(tx, StoreBase::Frontend, "ring-ref", b"9")
        .unwrap();
    client.transaction_end(tx, false).unwrap();
    let n = client
        .read(none, StoreBase::Frontend, "ring-ref", &mut buf)
        .unwrap();
    assert_eq!(&buf[..n], b"7", "an aborted transaction changes nothing");

    // The backend's state as the handshake reads it: a state, garbage, gone.
    assert_eq!(
        client.backend_state(),
        Ok(Backend::State(XenbusState::InitWait))
    );
    dom0.xs_write(&format!("{}/state", backend_dir(VBD)), b"junk")
        .unwrap();
    assert!(matches!(client.backend_state(), Ok(Backend::Garbage(_))));
    dom0.xs_write(&format!("{}/state", backend_dir(VBD)), &[b'4'; 40])
        .unwrap();
    assert!(matches!(client.backend_state(), Ok(Backend::Garbage(_))));
    dom0.xs_rm(&backend_dir(VBD)).unwrap();
    assert_eq!(client.backend_state(), Ok(Backend::Gone));
    drop(client);
    bus.assert_clean();
}

#[test]
fn watches_fire_at_passive_until_removed() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let (client, _) = connect(iface, &handlers);
    let dom0 = bus.xen.dom0();
    let watch = client.watch(StoreBase::Backend, "state").unwrap();
    bus.process_store();
    // The store fires a new watch once at registration.
    let path = format!("{}/state", backend_dir(VBD));
    assert_eq!(
        *handlers.watches.lock().unwrap(),
        vec![(watch, path.clone().into_bytes())]
    );
    set_backend_state(&dom0, VBD, XenbusState::Connected);
    bus.process_store();
    assert_eq!(handlers.watches.lock().unwrap().len(), 2);
    client.unwatch(watch).unwrap();
    assert_eq!(client.unwatch(watch), Err(BusError::NotOwned));
    set_backend_state(&dom0, VBD, XenbusState::Closing);
    bus.process_store();
    assert_eq!(handlers.watches.lock().unwrap().len(), 2);
    drop(client);
    bus.assert_clean();
}

#[test]
fn the_last_dereference_revokes_what_the_child_left() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let (client, _) = connect(iface, &handlers);
    let dom0 = bus.xen.dom0();
    let port = client.alloc_unbound(0, Delivery::Dirql).unwrap();
    let remote = dom0.bind_interdomain(GUEST, port).unwrap();
    client.watch(StoreBase::Backend, "state").unwrap();
    client.register_suspend().unwrap();
    assert_eq!(bus.registrations(), (1, 1, 1));
    drop(client);
    assert_eq!(iface.references(), 0);
    assert_eq!(bus.registrations(), (0, 0, 0));
    let _ = dom0.send(remote);
    assert_eq!(bus.interrupt(), vec![]);
    set_backend_state(&dom0, VBD, XenbusState::Connected);
    bus.process_store();
    assert!(handlers.events.lock().unwrap().is_empty());
    // Not even the firing the store queued at registration reaches the released child.
    assert!(handlers.watches.lock().unwrap().is_empty());
    bus.assert_clean();
}

#[test]
fn one_client_serves_several_cpus_at_once() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let (client, _) = connect(iface, &handlers);
    let pages: Vec<u64> = (0..4).map(|_| bus.xen.alloc_page()).collect();
    std::thread::scope(|s| {
        for &page in &pages {
            let client = &client;
            s.spawn(move || {
                at_irql(Irql::DISPATCH, || {
                    for _ in 0..200 {
                        let gref = client.grant_access(0, page, false).unwrap();
                        assert_eq!(client.end_access(gref), Ok(Revocation::Revoked));
                    }
                })
            });
        }
    });
    assert_eq!(bus.grants_held(), 0);
    drop(client);
    bus.assert_clean();
}

#[test]
fn the_block_cores_kicks_go_to_their_queues_port_and_failures_are_counted() {
    use xenvbd_core::blkif::{Events, LogEvent};
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let (client, _) = connect(iface, &handlers);
    let dom0 = bus.xen.dom0();
    let port = client.alloc_unbound(0, Delivery::Dpc).unwrap();
    dom0.bind_interdomain(GUEST, port).unwrap();
    let logged = std::cell::RefCell::new(Vec::new());
    let mut events = xenpci_interface::blkif::TableEvents::new(&client, &[port], |e| {
        logged.borrow_mut().push(e)
    });
    let before = dom0.events_received();
    at_irql(Irql::DISPATCH, || events.notify(0));
    assert_eq!(dom0.events_received(), before + 1);
    // A queue with no port, and a kick above DIRQL: counted, never a panic.
    events.notify(3);
    at_irql(Irql::HIGH, || events.notify(0));
    assert_eq!(events.notify_failures(), 2);
    assert_eq!(dom0.events_received(), before + 1);
    events.log(LogEvent::Resubmitting(2));
    assert_eq!(*logged.borrow(), vec![LogEvent::Resubmitting(2)]);
    assert_eq!(bus.take_violations().len(), 1, "the kick at HIGH_LEVEL");
    drop(client);
    bus.assert_clean();
}
