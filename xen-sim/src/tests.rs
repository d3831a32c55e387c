//! The model's own behaviour, checked against Xen's and xenstored's semantics.

use xen_abi::event_channel::*;
use xen_abi::grant_table::{GrantFlags, GNTST_BAD_GNTREF, GNTST_GENERAL_ERROR};
use xen_abi::xenstore::XsErrno;
use xenpci_core::evtchn::{EventChannelOps, FifoShared, L2Bitmap, SharedInfoEvents, XenErrno};
use xenpci_core::grant_table::GrantEntries;
use xenpci_core::xenstore::Transport;

use crate::*;

const PERMIT: u16 = GrantFlags::PERMIT_ACCESS.bits();
const RO: u16 = GrantFlags::READONLY.bits();
const READING: u16 = GrantFlags::READING.bits();
const WRITING: u16 = GrantFlags::WRITING.bits();

fn grant(xen: &Xen, gref: u32, domid: u16, frame: u64, flags: u16) {
    let e = xen.grant_entries();
    e.write_target(gref, domid, frame as u32);
    e.publish_flags(gref, flags);
}

#[test]
fn grant_map_checks_flags_domain_and_bounds() {
    let xen = Xen::default();
    let page = xen.alloc_page();
    let dom0 = xen.dom0();
    let other = xen.backend(7);
    grant(&xen, 10, 0, page, PERMIT | RO);
    assert_eq!(dom0.map_grant(10, true), Err(GntError::ReadOnly));
    assert_eq!(other.map_grant(10, false), Err(GntError::WrongDomain));
    assert_eq!(dom0.map_grant(11, false), Err(GntError::NotPermitted));
    assert_eq!(dom0.map_grant(512, false), Err(GntError::BadGntref));
    assert_eq!(GntError::BadGntref.status(), GNTST_BAD_GNTREF);
    assert_eq!(GntError::ReadOnly.status(), GNTST_GENERAL_ERROR);
    // A refused map leaves the entry alone.
    assert_eq!(xen.grant_entries().load_flags(10), PERMIT | RO);
    let h = dom0.map_grant(10, false).unwrap();
    assert_eq!(xen.grant_entries().load_flags(10), PERMIT | RO | READING);
    // Another domain cannot pin an entry pinned by dom0.
    assert_eq!(other.map_grant(10, false), Err(GntError::WrongDomain));
    assert_eq!(dom0.write_mapped(h, 0, b"x"), Err(GntError::ReadOnly));
    assert_eq!(other.unmap_grant(h), Err(GntError::BadHandle));
    dom0.unmap_grant(h).unwrap();
    assert_eq!(xen.grant_entries().load_flags(10), PERMIT | RO);
    assert_eq!(dom0.unmap_grant(h), Err(GntError::BadHandle));
}

#[test]
fn grant_pin_bits_follow_the_mappings() {
    let xen = Xen::default();
    let page = xen.alloc_page();
    xen.write_guest(page, 100, b"hello").unwrap();
    let dom0 = xen.dom0();
    grant(&xen, 9, 0, page, PERMIT);
    let r = dom0.map_grant(9, false).unwrap();
    let w = dom0.map_grant(9, true).unwrap();
    assert_eq!(
        xen.grant_entries().load_flags(9),
        PERMIT | READING | WRITING
    );
    let mut buf = [0; 5];
    dom0.read_mapped(r, 100, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    dom0.write_mapped(w, 0, b"back").unwrap();
    dom0.unmap_grant(w).unwrap();
    assert_eq!(xen.grant_entries().load_flags(9), PERMIT | READING);
    dom0.unmap_grant(r).unwrap();
    assert_eq!(xen.grant_entries().load_flags(9), PERMIT);
    let mut out = [0; 4];
    xen.read_guest(page, 0, &mut out).unwrap();
    assert_eq!(&out, b"back");
}

#[test]
fn grant_copy_checks_and_leaves_no_pin() {
    let xen = Xen::default();
    let page = xen.alloc_page();
    let dom0 = xen.dom0();
    grant(&xen, 8, 0, page, PERMIT | RO);
    assert_eq!(dom0.copy_to_grant(8, 0, b"x"), Err(GntError::ReadOnly));
    xen.write_guest(page, 4090, b"abcdef").unwrap();
    let mut out = [0; 6];
    dom0.copy_from_grant(8, 4090, &mut out).unwrap();
    assert_eq!(&out, b"abcdef");
    assert_eq!(
        dom0.copy_from_grant(8, 4091, &mut out),
        Err(GntError::BadCopyArg)
    );
    assert_eq!(xen.grant_entries().load_flags(8), PERMIT | RO);
}

#[test]
fn a_vanished_backend_releases_or_leaks_its_mappings() {
    let xen = Xen::default();
    let page = xen.alloc_page();
    grant(&xen, 8, 5, page, PERMIT);
    grant(&xen, 9, 6, page, PERMIT);
    let polite = xen.backend(5);
    let zombie = xen.backend(6);
    polite.map_grant(8, true).unwrap();
    zombie.map_grant(9, true).unwrap();
    polite.vanish(true);
    zombie.vanish(false);
    assert_eq!(xen.grant_entries().load_flags(8), PERMIT);
    assert_eq!(
        xen.grant_entries().load_flags(9),
        PERMIT | READING | WRITING
    );
    assert_eq!(polite.map_grant(8, false), Err(GntError::BadDomain));
}

#[test]
fn grant_table_grows_to_its_maximum() {
    let xen = Xen::new(Config {
        max_grant_frames: 4,
        ..Config::default()
    });
    assert_eq!(xen.set_grant_frames(4), Ok(2048));
    assert_eq!(xen.grant_frames().len(), 4);
    assert_eq!(xen.set_grant_frames(5), Err(GntError::NoSpace));
}

fn guest_unbound(xen: &Xen) -> (EvtchnPort, EvtchnPort) {
    let ops = xen.evtchn_ops();
    let mut a = EvtchnAllocUnbound {
        dom: xen_abi::types::DOMID_SELF,
        remote_dom: 0,
        port: 0,
    };
    ops.alloc_unbound(&mut a).unwrap();
    let back = xen
        .dom0()
        .bind_interdomain(xen.guest_domid(), a.port)
        .unwrap();
    (a.port, back)
}

use xen_abi::types::EvtchnPort;

#[test]
fn two_level_delivery_honours_masks_and_unmask_reraises() {
    let xen = Xen::default();
    let si = xen.shared_info();
    let (port, back) = guest_unbound(&xen);
    let bit = 1u64 << (port % 64);
    let w = (port / 64) as usize;
    let dom0 = xen.dom0();
    // Binding raised the binding side's new port (notifications to the unbound end were lost).
    assert_eq!(dom0.take_events(), vec![back]);
    si.fetch_or(L2Bitmap::Mask, w, bit);
    dom0.send(back).unwrap();
    assert_ne!(si.load(L2Bitmap::Pending, w) & bit, 0);
    assert!(!xen.upcall_pending(0), "masked: no upcall");
    let before = xen.upcalls(0);
    xen.evtchn_ops().unmask(&EvtchnUnmask { port }).unwrap();
    assert_eq!(si.load(L2Bitmap::Mask, w) & bit, 0);
    assert!(xen.upcall_pending(0));
    assert_eq!(xen.upcalls(0), before + 1);
    assert_eq!(si.take_pending_sel(0), 1 << w);
    // The guest signals the backend.
    xen.evtchn_ops().send(&EvtchnSend { port }).unwrap();
    assert_eq!(dom0.take_events(), vec![back]);
}

#[test]
fn close_makes_the_remote_end_unbound_and_status_says_so() {
    let xen = Xen::default();
    let (port, back) = guest_unbound(&xen);
    let ops = xen.evtchn_ops();
    let mut st = EvtchnStatus {
        dom: xen_abi::types::DOMID_SELF,
        pad: 0,
        port,
        status: 0,
        vcpu: 0,
        u: [0; 8],
    };
    ops.status(&mut st).unwrap();
    assert_eq!(st.status, EVTCHNSTAT_INTERDOMAIN);
    assert_eq!(st.interdomain().port, back);
    xen.dom0().close(back).unwrap();
    ops.status(&mut st).unwrap();
    assert_eq!(st.status, EVTCHNSTAT_UNBOUND);
    assert_eq!(st.unbound_dom(), 0);
    // Sending on an unbound port is silently dropped; on a closed one it is EINVAL.
    assert_eq!(ops.send(&EvtchnSend { port }), Ok(()));
    ops.close(&EvtchnClose { port }).unwrap();
    assert_eq!(ops.send(&EvtchnSend { port }), Err(XenErrno::EINVAL));
    assert_eq!(ops.close(&EvtchnClose { port }), Err(XenErrno::EINVAL));
    // Binding to a port not offered to us is refused.
    let p = xen.dom0().alloc_unbound(9).unwrap();
    let mut b = EvtchnBindInterdomain {
        remote_dom: 0,
        pad: 0,
        remote_port: p,
        local_port: 0,
    };
    assert_eq!(ops.bind_interdomain(&mut b), Err(XenErrno::EINVAL));
}

#[test]
fn fifo_links_events_on_the_queue_and_sets_ready() {
    let xen = Xen::default();
    let fifo = xen.fifo();
    let ops = xen.evtchn_ops();
    let (gfn, offset) = fifo.control_block(0).unwrap();
    let mut ic = EvtchnInitControl {
        control_gfn: gfn,
        offset,
        vcpu: 0,
        link_bits: 0,
        pad: [0; 7],
    };
    ops.init_control(&mut ic).unwrap();
    assert_eq!(ic.link_bits, 17);
    assert_eq!(ops.init_control(&mut ic), Err(XenErrno::EINVAL));
    // Ports raised before their page exists are delivered once it is added.
    let (p1, b1) = guest_unbound(&xen);
    let (p2, b2) = guest_unbound(&xen);
    xen.dom0().send(b1).unwrap();
    xen.dom0().send(b2).unwrap();
    let page = fifo.prepare_array_page(0).unwrap();
    ops.expand_array(&EvtchnExpandArray { array_gfn: page })
        .unwrap();
    let linked = EventWordFlags::LINKED.bits();
    let pending = EventWordFlags::PENDING.bits();
    assert_eq!(fifo.load_word(p1), pending | linked | p2);
    assert_eq!(fifo.load_word(p2), pending | linked);
    let ready = fifo.take_ready(0);
    assert_eq!(ready, 1 << EVTCHN_FIFO_PRIORITY_DEFAULT);
    assert_eq!(fifo.take_head(0, EVTCHN_FIFO_PRIORITY_DEFAULT as usize), p1);
    // Masked events are marked pending but not linked.
    for p in [p1, p2] {
        fifo.poke_word(p, EventWordFlags::MASKED.bits());
    }
    xen.dom0().send(b1).unwrap();
    assert_eq!(fifo.load_word(p1), EventWordFlags::MASKED.bits() | pending);
    ops.unmask(&EvtchnUnmask { port: p1 }).unwrap();
    assert_eq!(fifo.load_word(p1), pending | linked);
    assert_eq!(
        ops.set_priority(&EvtchnSetPriority {
            port: p1,
            priority: 16
        }),
        Err(XenErrno::EINVAL)
    );
}

#[test]
fn two_level_only_xen_refuses_fifo() {
    let xen = Xen::new(Config {
        fifo: false,
        ..Config::default()
    });
    let ops = xen.evtchn_ops();
    let mut ic = EvtchnInitControl {
        control_gfn: xen.alloc_page(),
        offset: 0,
        vcpu: 0,
        link_bits: 0,
        pad: [0; 7],
    };
    assert_eq!(ops.init_control(&mut ic), Err(XenErrno::ENOSYS));
    assert_eq!(
        ops.set_priority(&EvtchnSetPriority {
            port: 1,
            priority: 1
        }),
        Err(XenErrno::ENOSYS)
    );
}

#[test]
fn event_faults_drop_and_delay() {
    let xen = Xen::new(Config {
        fifo: false,
        ..Config::default()
    });
    let si = xen.shared_info();
    let (port, back) = guest_unbound(&xen);
    let (w, bit) = ((port / 64) as usize, 1u64 << (port % 64));
    si.fetch_and(L2Bitmap::Pending, w, !bit);
    xen.event_faults(|f| f.drop_next = 1);
    xen.dom0().send(back).unwrap();
    assert_eq!(si.load(L2Bitmap::Pending, w) & bit, 0);
    xen.event_faults(|f| f.delay = true);
    xen.dom0().send(back).unwrap();
    assert_eq!(si.load(L2Bitmap::Pending, w) & bit, 0);
    xen.event_faults(|f| f.delay = false);
    assert_eq!(xen.release_delayed_events(), 1);
    assert_ne!(si.load(L2Bitmap::Pending, w) & bit, 0);
    assert_eq!(xen.event_faults(|f| f.dropped), 1);
}

#[test]
fn virqs_bind_once_per_vcpu() {
    let xen = Xen::default();
    let ops = xen.evtchn_ops();
    let mut v = EvtchnBindVirq {
        virq: VIRQ_TIMER,
        vcpu: 0,
        port: 0,
    };
    ops.bind_virq(&mut v).unwrap();
    assert_eq!(ops.bind_virq(&mut v), Err(XenErrno::EEXIST));
    v.vcpu = 3;
    assert_eq!(ops.bind_virq(&mut v), Err(XenErrno::ENOENT));
    assert!(xen.raise_virq(VIRQ_TIMER, 0));
    assert!(!xen.raise_virq(VIRQ_DEBUG, 0));
}

// ---- xenstore ----

#[test]
fn store_permissions_and_dom0_bypass() {
    let xen = Xen::default();
    let dom0 = xen.dom0();
    let guest = xen.backend(1);
    // The guest owns its home and creates below it, owning what it creates.
    guest.xs_write("/local/domain/1/data/x", b"1").unwrap();
    assert_eq!(
        guest.xs_get_perms("/local/domain/1/data/x").unwrap()[0],
        "n1"
    );
    // It may not write elsewhere, nor read dom0's home.
    assert_eq!(
        guest.xs_write("/local/domain/0/x", b"1"),
        Err(XsErrno::Eacces)
    );
    assert_eq!(guest.xs_read("/local/domain/0/domid"), Err(XsErrno::Eacces));
    // A dom0 node readable by the guest only through an explicit entry.
    dom0.xs_write("/backend/vif/1/0/state", b"1").unwrap();
    assert_eq!(
        guest.xs_read("/backend/vif/1/0/state"),
        Err(XsErrno::Eacces)
    );
    dom0.xs_set_perms("/backend/vif/1/0/state", &["n0", "r1"])
        .unwrap();
    assert_eq!(guest.xs_read("/backend/vif/1/0/state").unwrap(), b"1");
    assert_eq!(
        guest.xs_write("/backend/vif/1/0/state", b"2"),
        Err(XsErrno::Eacces)
    );
    // Only the owner sets permissions, and cannot give the node away.
    assert_eq!(
        guest.xs_set_perms("/backend/vif/1/0/state", &["b1"]),
        Err(XsErrno::Eacces)
    );
    assert_eq!(
        guest.xs_set_perms("/local/domain/1/data/x", &["b2"]),
        Err(XsErrno::Eperm)
    );
    guest
        .xs_set_perms("/local/domain/1/data/x", &["n1", "r2"])
        .unwrap();
    // Relative paths are under the caller's home.
    assert_eq!(guest.xs_read("data/x").unwrap(), b"1");
    assert_eq!(guest.xs_read("data//x"), Err(XsErrno::Einval));
    assert_eq!(guest.xs_read("data/x/"), Err(XsErrno::Einval));
    assert_eq!(guest.xs_read("data/x y"), Err(XsErrno::Einval));
    // rm of a missing node under an existing parent is fine; without a parent it is ENOENT.
    guest.xs_rm("data/nothing").unwrap();
    assert_eq!(guest.xs_rm("data/no/thing"), Err(XsErrno::Enoent));
    assert_eq!(dom0.xs_rm("/"), Err(XsErrno::Einval));
    assert_eq!(
        dom0.xs_directory("/local/domain/1/data").unwrap(),
        vec!["x".to_owned()]
    );
}

#[test]
fn store_quotas() {
    let xen = Xen::default();
    xen.set_store_quota(Quota {
        max_nodes: 8,
        max_value: 16,
        ..Quota::default()
    });
    let guest = xen.backend(1);
    assert_eq!(guest.xs_write("data/v", &[b'x'; 17]), Err(XsErrno::E2big));
    // The guest owns 5 nodes at start (home, device, control, data, domid).
    guest.xs_write("data/a", b"").unwrap();
    guest.xs_write("data/b", b"").unwrap();
    guest.xs_write("data/c", b"").unwrap();
    assert_eq!(guest.xs_write("data/d", b""), Err(XsErrno::Enospc));
    // dom0 is exempt.
    xen.dom0().xs_write("/x", &[0; 100]).unwrap();
}

/// Raw wire access for the daemon's own tests.
fn request(ty: u32, req_id: u32, tx: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    for v in [ty, req_id, tx, payload.len() as u32] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    m.extend_from_slice(payload);
    m
}

fn replies(t: &mut StoreStream) -> Vec<(u32, u32, u32, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut buf = [0; 256];
    loop {
        let n = t.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= bytes.len() {
        let w =
            |i: usize| u32::from_le_bytes(bytes[at + i * 4..at + i * 4 + 4].try_into().unwrap());
        let len = w(3) as usize;
        let end = (at + 16 + len).min(bytes.len());
        out.push((w(0), w(1), w(2), bytes[at + 16..end].to_vec()));
        at += 16 + len;
    }
    out
}

#[test]
fn wire_transactions_conflict_on_read_nodes() {
    let xen = Xen::default();
    let mut t = xen.store_stream();
    t.write(&request(6, 1, 0, b"\0")).unwrap();
    let r = replies(&mut t);
    assert_eq!(r[0].0, 6);
    let tx: u32 = std::str::from_utf8(&r[0].3[..r[0].3.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    t.write(&request(2, 2, tx, b"domid\0")).unwrap();
    t.write(&request(11, 3, tx, b"data/out\0v")).unwrap();
    let r = replies(&mut t);
    assert_eq!(r[0].3, b"1");
    assert_eq!(r[1].3, b"OK\0");
    // Outside the transaction the write is not visible.
    assert_eq!(
        xen.dom0().xs_read("/local/domain/1/data/out"),
        Err(XsErrno::Enoent)
    );
    // dom0 changes what the transaction read: the commit fails.
    xen.dom0().xs_write("/local/domain/1/domid", b"1").unwrap();
    t.write(&request(7, 4, tx, b"T\0")).unwrap();
    let r = replies(&mut t);
    assert_eq!((r[0].0, r[0].3.as_slice()), (16, &b"EAGAIN\0"[..]));
    assert_eq!(
        xen.dom0().xs_read("/local/domain/1/data/out"),
        Err(XsErrno::Enoent)
    );
    // A transaction unknown or already ended is ENOENT.
    t.write(&request(7, 5, tx, b"T\0")).unwrap();
    assert_eq!(replies(&mut t)[0].3, b"ENOENT\0");
}

#[test]
fn wire_transaction_commit_applies_and_fires() {
    let xen = Xen::default();
    let mut t = xen.store_stream();
    let mut w = xen.dom0().store_stream();
    w.write(&request(4, 1, 0, b"/local/domain/1/data\0tok\0"))
        .unwrap();
    let r = replies(&mut w);
    assert_eq!(r.len(), 2, "reply, then the initial event");
    assert_eq!(r[1].3, b"/local/domain/1/data\0tok\0");
    t.write(&request(6, 1, 0, b"\0")).unwrap();
    let r = replies(&mut t);
    let tx: u32 = std::str::from_utf8(&r[0].3[..r[0].3.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    t.write(&request(11, 2, tx, b"data/a\0x")).unwrap();
    assert!(replies(&mut w).is_empty(), "no event before commit");
    t.write(&request(7, 3, tx, b"T\0")).unwrap();
    assert_eq!(replies(&mut t)[1].3, b"OK\0");
    let r = replies(&mut w);
    assert_eq!(r[0].3, b"/local/domain/1/data/a\0tok\0");
    assert_eq!(xen.dom0().xs_read("/local/domain/1/data/a").unwrap(), b"x");
}

#[test]
fn watches_fire_below_and_inside_removed_subtrees() {
    let xen = Xen::default();
    let dom0 = xen.dom0();
    dom0.xs_write("/a/b/c", b"").unwrap();
    let mut w = dom0.store_stream();
    for (path, tok) in [("/a", "up"), ("/a/b/c", "in"), ("/z", "no")] {
        w.write(&request(4, 1, 0, format!("{path}\0{tok}\0").as_bytes()))
            .unwrap();
    }
    replies(&mut w);
    dom0.xs_rm("/a/b").unwrap();
    let events: Vec<Vec<u8>> = replies(&mut w).into_iter().map(|r| r.3).collect();
    assert_eq!(
        events,
        vec![b"/a/b\0up\0".to_vec(), b"/a/b/c\0in\0".to_vec()]
    );
    // Duplicate registration and unknown unwatch.
    w.write(&request(4, 2, 0, b"/a\0up\0")).unwrap();
    assert_eq!(replies(&mut w)[0].3, b"EEXIST\0");
    w.write(&request(5, 3, 0, b"/a\0nope\0")).unwrap();
    assert_eq!(replies(&mut w)[0].3, b"ENOENT\0");
}

#[test]
fn relative_watches_report_relative_paths_and_respect_read_access() {
    let xen = Xen::default();
    let mut g = xen.store_stream();
    g.write(&request(4, 1, 0, b"data\0t\0")).unwrap();
    g.write(&request(4, 2, 0, b"/backend\0b\0")).unwrap();
    let r = replies(&mut g);
    assert_eq!(r[1].3, b"data\0t\0");
    xen.dom0().xs_write("/local/domain/1/data/k", b"v").unwrap();
    xen.dom0().xs_write("/backend/secret", b"v").unwrap();
    let r = replies(&mut g);
    assert_eq!(r.len(), 1, "no event for a node the guest cannot read");
    assert_eq!(r[0].3, b"data/k\0t\0");
}

#[test]
fn reply_faults_corrupt_one_reply_each() {
    let xen = Xen::default();
    let mut t = xen.store_stream();
    xen.store_faults(|f| {
        f.corrupt_next_replies(&[
            StoreFault::UnknownType,
            StoreFault::WrongReqId,
            StoreFault::GarbageErrorName,
            StoreFault::MissingNul,
            StoreFault::Drop,
        ])
    });
    for id in 1..=6 {
        t.write(&request(10, id, 0, b"1\0")).unwrap();
    }
    let r = replies(&mut t);
    assert_eq!(r.len(), 5);
    assert_eq!(r[0].0, 999);
    assert_eq!(r[1].1, 2 + 0x1000);
    assert_eq!((r[2].0, r[2].3.as_slice()), (16, &b"EWHATEVER\0"[..]));
    assert_eq!(r[3].3, b"/local/domain/1");
    assert_eq!((r[4].1, r[4].3.as_slice()), (6, &b"/local/domain/1\0"[..]));
    xen.store_faults(|f| f.vanish());
    assert!(t.write(&request(10, 7, 0, b"1\0")).is_err());
}

#[test]
fn an_oversized_request_drops_the_connection() {
    let xen = Xen::default();
    let mut t = xen.store_stream();
    let mut m = request(2, 1, 0, b"");
    m[12..16].copy_from_slice(&5000u32.to_le_bytes());
    t.write(&m).unwrap();
    assert!(t.write(&request(2, 2, 0, b"domid\0")).is_err());
}
