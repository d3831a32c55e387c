//! What the backend is given to see: whole guest pages only when trusted, none when not.

use super::*;

/// The frames of the engine's own pages in [`Harness`]: pool, indirect, ring.
fn own_frame(frame: u64) -> bool {
    (0x9000..0x9100).contains(&frame) || frame == 0xa000 || frame == 0xa001 || frame == 0x5000
}

/// Guest frames (not the engine's own) granted so far.
fn guest_frames(grants: &TestGrants) -> Vec<u64> {
    let mut frames: Vec<u64> = grants
        .frames
        .iter()
        .copied()
        .filter(|f| !own_frame(*f))
        .collect();
    frames.sort_unstable();
    frames
}

fn parse(nodes: &[(&'static str, &'static str)]) -> Result<BackendFeatures, FeatureError> {
    let nodes: HashMap<&str, &str> = nodes.iter().copied().collect();
    BackendFeatures::parse(|node, buf| {
        Ok(nodes.get(node).map(|v| {
            buf[..v.len()].copy_from_slice(v.as_bytes());
            v.len()
        }))
    })
}

#[test]
fn the_trusted_node_is_read_and_only_withdraws_trust() {
    assert!(!parse(&[]).unwrap().untrusted, "absent: trusted");
    assert!(!parse(&[("trusted", "1")]).unwrap().untrusted);
    assert!(parse(&[("trusted", "0")]).unwrap().untrusted);
    assert_eq!(
        parse(&[("trusted", "no")]),
        Err(FeatureError::NotANumber { node: "trusted" })
    );
    let trusting = FrontendConfig::default();
    let wary = FrontendConfig {
        trust_backend: false,
        ..trusting
    };
    let trusted = BackendFeatures::default();
    let untrusted = BackendFeatures {
        untrusted: true,
        ..trusted
    };
    assert!(!FrontendParams::negotiate(&trusting, &trusted).bounce_all);
    assert!(FrontendParams::negotiate(&wary, &trusted).bounce_all);
    assert!(FrontendParams::negotiate(&trusting, &untrusted).bounce_all);
    // Connected may withdraw trust, never give it.
    let mut p = FrontendParams::negotiate(&trusting, &trusted);
    p.apply_connected(&untrusted);
    assert!(p.bounce_all);
    p.apply_connected(&trusted);
    assert!(p.bounce_all);
}

/// A whole page, two block-aligned halves of pages, and an unaligned piece.
fn mixed(base: u64) -> Vec<Segment> {
    vec![
        Segment {
            frame: base,
            offset: 0,
            length: 4096,
        },
        Segment {
            frame: base + 1,
            offset: 0,
            length: 2048,
        },
        Segment {
            frame: base + 2,
            offset: 2048,
            length: 2048,
        },
        Segment {
            frame: base + 3,
            offset: 100,
            length: 1024,
        },
        Segment {
            frame: base + 4,
            offset: 0,
            length: 4096,
        },
    ]
}

#[test]
fn a_trusted_backend_is_given_whole_pages_only() {
    let mut h = Harness::<8>::new(features(0, false), config(0), Layout::X86_64);
    assert!(!h.eng.params().unwrap().bounce_all);
    write_then_read(&mut h, 16, &mixed(0x100), &mixed(0x200));
    assert_eq!(
        guest_frames(&h.grants),
        [0x100, 0x104, 0x200, 0x204],
        "the block-aligned halves bounce like the unaligned piece"
    );
    // Per operation, the 5 KiB of the halves and the unaligned piece fill two bounce pages.
    assert_eq!(h.eng.counters().bounced_segments, 4);
}

#[test]
fn an_untrusted_backend_is_given_no_guest_page() {
    let feat = BackendFeatures {
        untrusted: true,
        ..features(0, false)
    };
    let mut h = Harness::<8>::new(feat, config(0), Layout::X86_64);
    assert!(h.eng.params().unwrap().bounce_all);
    write_then_read(&mut h, 16, &mixed(0x100), &mixed(0x200));
    write_then_read(&mut h, 64, &pages(6, 0x300), &pages(6, 0x400));
    assert_eq!(guest_frames(&h.grants), Vec::<u64>::new());
    assert!(h.eng.counters().bounced_segments >= 10);
}

#[test]
fn the_trust_switch_uses_persistent_grants_when_offered() {
    let cfg = FrontendConfig {
        trust_backend: false,
        ..config(32)
    };
    let mut h = Harness::<8>::new(features(32, true), cfg, Layout::X86_64);
    let params = h.eng.params().unwrap();
    assert!(params.bounce_all && params.persistent);
    write_then_read(&mut h, 0, &pages(4, 0x100), &pages(4, 0x200));
    let granted = h.grants.granted;
    write_then_read(&mut h, 64, &mixed(0x300), &mixed(0x400));
    assert_eq!(guest_frames(&h.grants), Vec::<u64>::new());
    assert_eq!(h.grants.granted, granted, "the kept grants are reused");
    assert!(h.eng.counters().persistent_hits > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random scatter-gather lists round-trip in both modes. Trusted: every guest frame granted
    /// is a whole-page segment of the lists. Untrusted: no guest frame is granted.
    #[test]
    fn the_backend_sees_whole_pages_or_nothing(
        segs in sg_list(0x1000),
        whole in prop::collection::vec(0usize..20, 0..4),
        cut in 100u16..600,
        sector in 0u64..2000,
        trusted in any::<bool>(),
        indirect in any::<bool>(),
    ) {
        let n = if indirect { 64 } else { 0 };
        let cfg = FrontendConfig { trust_backend: trusted, ..config(n) };
        let mut h = Harness::<8>::new(features(n, false), cfg, Layout::X86_64);
        let mut rsegs = recut(&segs, 0x3000, cut);
        // Whole pages among the pieces, on both sides.
        let mut segs = segs;
        for (k, &at) in whole.iter().enumerate() {
            let page = |frame| Segment { frame, offset: 0, length: 4096 };
            segs.insert(at.min(segs.len()), page(0x2000 + k as u64));
            rsegs.insert(at.min(rsegs.len()), page(0x4000 + k as u64));
        }
        prop_assume!(rsegs.len() <= 64 && segs.len() <= 64);
        write_then_read(&mut h, sector, &segs, &rsegs);
        let whole: HashSet<u64> = segs
            .iter()
            .chain(&rsegs)
            .filter(|s| s.offset == 0 && s.length == 4096)
            .map(|s| s.frame)
            .collect();
        for frame in guest_frames(&h.grants) {
            prop_assert!(trusted, "frame {:#x} granted to an untrusted backend", frame);
            prop_assert!(whole.contains(&frame), "part of frame {:#x} granted", frame);
        }
    }
}

/// The frontend's own nodes, for [`toolstack_trusts_backend`].
struct FrontendNodes(HashMap<&'static str, &'static str>);

impl xenpci_core::xenbus::FrontendStore for FrontendNodes {
    fn write(&mut self, _: &str, _: &[u8]) -> Result<(), xenpci_core::xenstore::XsError> {
        unreachable!("reading trust writes nothing")
    }
    fn read(
        &mut self,
        node: &str,
        buf: &mut [u8],
    ) -> Result<usize, xenpci_core::xenstore::XsError> {
        match self.0.get(node) {
            Some(v) => {
                let n = v.len().min(buf.len());
                buf[..n].copy_from_slice(&v.as_bytes()[..n]);
                Ok(v.len())
            }
            None => Err(xenpci_core::xenstore::XsError::Store(
                xen_abi::xenstore::XsErrno::Enoent,
            )),
        }
    }
    fn read_backend(
        &mut self,
        _: &str,
        _: &mut [u8],
    ) -> Result<usize, xenpci_core::xenstore::XsError> {
        unreachable!("the toolstack's node is the frontend's")
    }
    fn remove(&mut self, _: &str) -> Result<(), xenpci_core::xenstore::XsError> {
        unreachable!("reading trust removes nothing")
    }
}

#[test]
fn the_toolstack_node_in_the_frontend_directory_is_read() {
    let read = |nodes: &[(&'static str, &'static str)]| {
        toolstack_trusts_backend(&mut FrontendNodes(nodes.iter().copied().collect()))
    };
    assert_eq!(read(&[]), Ok(true));
    assert_eq!(read(&[("trusted", "1")]), Ok(true));
    assert_eq!(read(&[("trusted", "0")]), Ok(false));
    assert_eq!(
        read(&[("trusted", "yes")]),
        Err(FeatureError::NotANumber { node: "trusted" })
    );
    let long = "0000000000000000000000000000000000000001";
    assert_eq!(
        read(&[("trusted", long)]),
        Err(FeatureError::NotANumber { node: "trusted" })
    );
}
