//! The blkback model on its own, with requests written by hand into a ring in guest memory.

use xen_abi::types::GrantRef;
use xen_sim::blkback::{BlkFeatures, Blkback, BlkbackError, RingAbi};
use xen_sim::{SimGrantEntries, Xen};
use xenpci_core::grant_table::{GrantLink, GrantTable, Revocation};

struct Rig {
    xen: Xen,
    table: GrantTable<'static, SimGrantEntries>,
    ring: u64,
    ring_ref: GrantRef,
    be: Blkback,
}

fn rig(features: BlkFeatures) -> Rig {
    let xen = Xen::default();
    let capacity = xen.grant_entries().capacity();
    let links: &'static [GrantLink] =
        Box::leak(xen_sim::grant_links(capacity as usize).into_boxed_slice());
    let table = GrantTable::new(xen.grant_entries(), links, capacity).unwrap();
    let ring = xen.alloc_page();
    let ring_ref = table.grant_access(0, ring, false).unwrap();
    let be = Blkback::new(xen.dom0(), 64, features);
    Rig {
        xen,
        table,
        ring,
        ring_ref,
        be,
    }
}

impl Rig {
    /// Writes an x86_64 read/write request with one segment into slot `slot` and publishes it.
    fn push_rw(&self, slot: u32, op: u8, id: u64, sector: u64, gref: GrantRef, last: u8) {
        let mut e = [0u8; 112];
        e[0] = op;
        e[1] = 1;
        e[8..16].copy_from_slice(&id.to_le_bytes());
        e[16..24].copy_from_slice(&sector.to_le_bytes());
        e[24..28].copy_from_slice(&gref.to_le_bytes());
        e[29] = last;
        self.push_raw(slot, &e);
    }

    fn push_raw(&self, slot: u32, e: &[u8]) {
        self.xen
            .write_guest(self.ring, 64 + slot as usize * 112, e)
            .unwrap();
        self.xen
            .write_guest(self.ring, 0, &(slot + 1).to_le_bytes())
            .unwrap();
    }

    /// The response in slot `slot`: (id, operation, status).
    fn response(&self, slot: u32) -> (u64, u8, i16) {
        let mut r = [0u8; 12];
        self.xen
            .read_guest(self.ring, 64 + slot as usize * 112, &mut r)
            .unwrap();
        (
            u64::from_le_bytes(r[..8].try_into().unwrap()),
            r[8],
            i16::from_le_bytes([r[10], r[11]]),
        )
    }

    fn rsp_prod(&self) -> u32 {
        let mut b = [0u8; 4];
        self.xen.read_guest(self.ring, 8, &mut b).unwrap();
        u32::from_le_bytes(b)
    }
}

#[test]
fn read_only_grants_are_honoured() {
    let mut r = rig(BlkFeatures::default());
    r.be.connect(&[r.ring_ref], Some("x86_64-abi"), None, false)
        .unwrap();
    let page = r.xen.alloc_page();
    r.xen.write_guest(page, 0, &[0xaa; 4096]).unwrap();
    let ro = r.table.grant_access(0, page, true).unwrap();
    // A read into a read-only grant fails and leaves the page alone.
    r.push_rw(0, 0, 11, 0, ro, 7);
    assert_eq!(r.be.serve(), Ok(1));
    assert_eq!(r.response(0), (11, 0, -1));
    let mut b = [0u8; 4096];
    r.xen.read_guest(page, 0, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0xaa));
    // A write from it works.
    r.push_rw(1, 1, 12, 8, ro, 7);
    assert_eq!(r.be.serve(), Ok(1));
    assert_eq!(r.response(1), (12, 1, 0));
    assert!(r.be.disk()[4096..8192].iter().all(|&x| x == 0xaa));
    assert_eq!(r.rsp_prod(), 2);
    // Copies leave no mapping behind.
    assert_eq!(r.table.end_access(ro), Ok(Revocation::Revoked));
}

#[test]
fn refusals_and_ring_errors() {
    let mut r = rig(BlkFeatures {
        flush_cache: false,
        discard: false,
        ..BlkFeatures::default()
    });
    assert_eq!(
        r.be.connect(&[r.ring_ref], Some("arm-abi"), None, false),
        Err(BlkbackError::UnknownProtocol)
    );
    r.be.connect(&[r.ring_ref], None, None, false).unwrap();
    assert_eq!(r.be.abi(), Some(RingAbi::X86_64));
    let page = r.xen.alloc_page();
    let rw = r.table.grant_access(0, page, false).unwrap();
    // Flush, discard and indirect are not advertised: EOPNOTSUPP, operation echoed.
    for (slot, op) in [(0u32, 3u8), (1, 5), (2, 6)] {
        let mut e = [0u8; 112];
        e[0] = op;
        e[8..16].copy_from_slice(&u64::from(slot).to_le_bytes());
        r.push_raw(slot, &e);
        assert_eq!(r.be.serve(), Ok(1));
        assert_eq!(r.response(slot), (u64::from(slot), op, -2));
    }
    // Beyond the disk, or a segment past the page: BLKIF_RSP_ERROR.
    r.push_rw(3, 0, 3, 63, rw, 7);
    r.be.serve().unwrap();
    assert_eq!(r.response(3).2, -1);
    r.push_rw(4, 0, 4, 0, rw, 8);
    r.be.serve().unwrap();
    assert_eq!(r.response(4).2, -1);
    // A req_prod more than a ring ahead.
    r.xen.write_guest(r.ring, 0, &100u32.to_le_bytes()).unwrap();
    assert!(matches!(
        r.be.serve(),
        Err(BlkbackError::RingOverflow { req_prod: 100, .. })
    ));
    // A restart releases the ring mapping.
    assert_eq!(r.xen.dom0().mappings(), 1);
    r.be.restart();
    assert_eq!(r.xen.dom0().mappings(), 0);
    assert_eq!(r.be.serve(), Err(BlkbackError::NotConnected));
}

#[test]
fn advertised_nodes_follow_the_switches() {
    let r = rig(BlkFeatures {
        max_indirect_segments: 128,
        persistent: true,
        ..BlkFeatures::default()
    });
    let nodes = r.be.nodes();
    let get = |k: &str| nodes.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    assert_eq!(get("sectors").as_deref(), Some("64"));
    assert_eq!(get("feature-max-indirect-segments").as_deref(), Some("128"));
    assert_eq!(get("feature-persistent").as_deref(), Some("1"));
    assert_eq!(get("discard-granularity").as_deref(), Some("512"));
    r.be.advertise("/local/domain/0/backend/vbd/1/768").unwrap();
    assert_eq!(
        r.xen
            .dom0()
            .xs_read("/local/domain/0/backend/vbd/1/768/feature-flush-cache")
            .unwrap(),
        b"1"
    );
}
