//! The core's grant table over the model, with a simulated backend mapping the pages.

use xen_abi::grant_table::GrantFlags;
use xen_sim::{GntError, Xen};
use xenpci_core::grant_table::{GrantError, GrantTable, Revocation};

#[test]
fn grant_map_end_access_deferred_then_freed_after_unmap() {
    let xen = Xen::default();
    let page = xen.alloc_page();
    xen.write_guest(page, 0, b"request").unwrap();
    let capacity = xen.grant_entries().capacity();
    let links = xen_sim::grant_links(capacity as usize);
    let table = GrantTable::new(xen.grant_entries(), &links, capacity).unwrap();
    let dom0 = xen.dom0();

    let gref = table.grant_access(0, page, false).unwrap();
    let handle = dom0.map_grant(gref, true).unwrap();
    assert_eq!(dom0.mapped_page(handle).unwrap()[..7], *b"request");
    dom0.write_mapped(handle, 0, b"response").unwrap();

    // The backend still has it mapped: revocation is deferred and the ref is not reused.
    assert_eq!(table.end_access(gref), Ok(Revocation::Deferred));
    assert_eq!(table.retry_deferred(16), 0);
    let (flags, _, _) = xen.grant_entries().entry(gref).unwrap();
    assert_ne!(flags & GrantFlags::WRITING.bits(), 0);

    dom0.unmap_grant(handle).unwrap();
    assert_eq!(table.retry_deferred(16), 1);
    assert_eq!(table.deferred_count(), 0);
    // Access is gone: the backend can no longer map or copy.
    assert_eq!(dom0.map_grant(gref, false), Err(GntError::NotPermitted));
    let mut out = [0; 8];
    xen.read_guest(page, 0, &mut out).unwrap();
    assert_eq!(&out, b"response");
    assert_eq!(table.stats().deferred_completed, 1);
}

#[test]
fn read_only_grants_refuse_writable_maps_and_copies() {
    let xen = Xen::default();
    let page = xen.alloc_page();
    let capacity = xen.grant_entries().capacity();
    let links = xen_sim::grant_links(capacity as usize);
    let table = GrantTable::new(xen.grant_entries(), &links, capacity).unwrap();
    let dom0 = xen.dom0();
    let gref = table.grant_access(0, page, true).unwrap();
    assert_eq!(dom0.map_grant(gref, true), Err(GntError::ReadOnly));
    assert_eq!(dom0.copy_to_grant(gref, 0, b"x"), Err(GntError::ReadOnly));
    // The wrong backend is refused too.
    assert_eq!(
        xen.backend(3).map_grant(gref, false),
        Err(GntError::WrongDomain)
    );
    // A copy leaves no pin: revocation completes at once.
    let mut buf = [0; 16];
    dom0.copy_from_grant(gref, 0, &mut buf).unwrap();
    assert_eq!(table.end_access(gref), Ok(Revocation::Revoked));
}

#[test]
fn a_backend_that_never_unmaps_keeps_the_ref_parked() {
    let xen = Xen::default();
    let capacity = xen.grant_entries().capacity();
    let links = xen_sim::grant_links(capacity as usize);
    let table = GrantTable::new(xen.grant_entries(), &links, capacity).unwrap();
    let zombie = xen.backend(4);
    let page = xen.alloc_page();
    let gref = table.grant_access(4, page, false).unwrap();
    zombie.map_grant(gref, false).unwrap();
    zombie.vanish(false);
    assert_eq!(table.end_access(gref), Ok(Revocation::Deferred));
    for _ in 0..100 {
        assert_eq!(table.retry_deferred(8), 0);
    }
    assert_eq!(table.deferred_count(), 1);
    assert_eq!(table.end_access(gref), Err(GrantError::NotGranted { gref }));

    // A backend that vanishes but whose mappings Xen tears down frees its refs.
    let polite = xen.backend(5);
    let g2 = table.grant_access(5, page, false).unwrap();
    polite.map_grant(g2, true).unwrap();
    assert_eq!(table.end_access(g2), Ok(Revocation::Deferred));
    polite.vanish(true);
    assert_eq!(table.retry_deferred(8), 1);
    assert_eq!(table.deferred_count(), 1);
}

#[test]
fn growing_the_table_reaches_new_frames() {
    let xen = Xen::default();
    let links = xen_sim::grant_links(4 * 512);
    let table = GrantTable::new(xen.grant_entries(), &links, 512).unwrap();
    let page = xen.alloc_page();
    while table.grant_access(0, page, false).is_ok() {}
    let new_capacity = xen.set_grant_frames(4).unwrap();
    table.grow(new_capacity).unwrap();
    let gref = table.grant_access(0, page, false).unwrap();
    assert_eq!(gref, 512);
    xen.dom0().map_grant(gref, false).unwrap();
    assert_eq!(xen.grant_frames().len(), 4);
}
