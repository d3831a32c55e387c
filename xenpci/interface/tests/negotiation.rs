//! Version and size negotiation through the real query path: every refusal on the provider's
//! side leaves the child's buffer untouched and takes no reference; every refusal on the
//! child's side names its reason and gives the reference back when the header allows it.

mod support;

use support::*;
use xenpci_interface::abi::{Guid, XEN_BUS_INTERFACE_V1_SIZE};
use xenpci_interface::{
    BusClient, QueryRefusal, QueryRequest, TableRefusal, XenBusInterfaceV1, XEN_BUS_INTERFACE_GUID,
};

#[test]
fn the_provider_refuses_every_mismatch_and_touches_nothing() {
    let (bus, iface) = bus_with_vbd();
    let other = Guid {
        data4: [0; 8],
        ..XEN_BUS_INTERFACE_GUID
    };
    let cases = [
        (
            QueryRequest {
                interface_type: other,
                ..QueryRequest::V1
            },
            QueryRefusal::OtherInterface(other),
        ),
        (
            QueryRequest {
                version: 0,
                ..QueryRequest::V1
            },
            QueryRefusal::VersionTooOld {
                requested: 0,
                oldest: 1,
            },
        ),
        (
            QueryRequest {
                version: 7,
                ..QueryRequest::V1
            },
            QueryRefusal::VersionTooNew {
                requested: 7,
                newest: 1,
            },
        ),
        (
            QueryRequest {
                size: XEN_BUS_INTERFACE_V1_SIZE - 1,
                ..QueryRequest::V1
            },
            QueryRefusal::BufferTooSmall {
                size: XEN_BUS_INTERFACE_V1_SIZE - 1,
                needed: XEN_BUS_INTERFACE_V1_SIZE,
            },
        ),
        (
            QueryRequest {
                size: 0,
                ..QueryRequest::V1
            },
            QueryRefusal::BufferTooSmall {
                size: 0,
                needed: XEN_BUS_INTERFACE_V1_SIZE,
            },
        ),
        (
            QueryRequest {
                has_buffer: false,
                ..QueryRequest::V1
            },
            QueryRefusal::NoBuffer,
        ),
    ];
    for (request, refusal) in cases {
        let mut buffer = XenBusInterfaceV1::EMPTY;
        assert_eq!(query_interface(iface, &request, &mut buffer), Err(refusal));
        assert_eq!(buffer.header.size, 0, "{refusal}");
        assert!(buffer.header.context.is_null());
        assert!(buffer.first_missing_function().is_some());
        assert_eq!(iface.references(), 0, "{refusal}");
        // The reason reads as a log line with the numbers in it.
        let line = refusal.to_string();
        assert!(!line.is_empty());
        if let QueryRefusal::VersionTooNew { requested, .. } = refusal {
            assert!(line.contains(&requested.to_string()));
        }
    }
    assert_eq!(iface.tables_handed_out(), 0);
    assert_eq!(bus.releases.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// A table the bus filled, then bent as a mismatched provider would have.
fn bent(iface: &'static xenpci_interface::ChildInterface<SimChild>) -> XenBusInterfaceV1 {
    let mut buffer = XenBusInterfaceV1::EMPTY;
    query_interface(iface, &QueryRequest::V1, &mut buffer).unwrap();
    buffer
}

#[test]
fn the_child_refuses_a_mismatched_table_and_gives_the_reference_back() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    type Bend = fn(&mut XenBusInterfaceV1);
    let cases: [(Bend, TableRefusal, u32); 7] = [
        (
            |t| t.header.version = 2,
            TableRefusal::VersionMismatch {
                requested: 1,
                found: 2,
            },
            0,
        ),
        (
            |t| t.header.version = 0,
            TableRefusal::VersionMismatch {
                requested: 1,
                found: 0,
            },
            0,
        ),
        (
            |t| t.header.size = 200,
            TableRefusal::SizeMismatch {
                found: 200,
                expected: 208,
            },
            0,
        ),
        (
            |t| t.header.size = 4096,
            TableRefusal::SizeMismatch {
                found: 4096,
                expected: 208,
            },
            0,
        ),
        (
            |t| t.store_watch = None,
            TableRefusal::MissingFunction("store_watch"),
            0,
        ),
        // Without a context or a dereference function nothing can be given back: the bus
        // keeps the reference (and logs the refusal the child reports).
        (
            |t| t.header.context = std::ptr::null_mut(),
            TableRefusal::NoContext,
            1,
        ),
        (
            |t| t.header.interface_dereference = None,
            TableRefusal::MissingFunction("interface_dereference"),
            1,
        ),
    ];
    for (bend, refusal, left) in cases {
        let before = iface.references();
        let mut table = bent(iface);
        assert_eq!(iface.references(), before + 1);
        bend(&mut table);
        // SAFETY:
        // 1. the table came from the bus's answer to this child's query (then bent, which the
        //    check must refuse before any function is called);
        // 2. `handlers` outlives every client made here.
        let got = unsafe { BusClient::new(&table, &handlers) };
        assert_eq!(got.err(), Some(refusal));
        assert_eq!(iface.references(), before + left, "{refusal}");
        assert!(!refusal.to_string().is_empty());
    }
    assert_eq!(iface.violations(), 0);
    assert_eq!(bus.violations(), Vec::<String>::new());
}

#[test]
fn two_queries_two_references_one_release() {
    let (bus, iface) = bus_with_vbd();
    let handlers = Recorder::default();
    let first = bent(iface);
    let second = bent(iface);
    assert_eq!(iface.references(), 2);
    assert_eq!(iface.tables_handed_out(), 2);
    // SAFETY:
    // 1. both tables are the bus's answers to this child's queries, one reference each;
    // 2. `handlers` outlives both clients.
    let a = unsafe { BusClient::new(&first, &handlers) }.unwrap();
    // SAFETY: as above.
    let b = unsafe { BusClient::new(&second, &handlers) }.unwrap();
    drop(a);
    assert_eq!(iface.references(), 1);
    assert_eq!(bus.releases.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(b.backend_domid(), Ok(0));
    drop(b);
    assert_eq!(iface.references(), 0);
    bus.assert_clean();

    // The child driver loaded again queries again: a new lifetime, released again.
    let third = bent(iface);
    // SAFETY: as above.
    let c = unsafe { BusClient::new(&third, &handlers) }.unwrap();
    assert_eq!(c.backend_domid(), Ok(0));
    drop(c);
    assert_eq!(
        bus.acquisitions.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    bus.assert_clean();
}
