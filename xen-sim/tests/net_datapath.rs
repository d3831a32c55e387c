//! The network core (xennet-core) against the model's netback: every frame size both ways,
//! checksums and large sends with and without the backend's offloads (segmentation compared
//! byte for byte with a reference), coalesced receive, multi-queue, backpressure, VLAN tags,
//! a bridge between two frontends, and every grant returned at the end.

mod net_support;

use net_support::*;
use proptest::prelude::*;
use xen_sim::netback::{bridge, NetFeatures, RxMeta};
use xennet_core::{
    Cast, FrontendConfig, QueueState, SubmitError, TxChecksum, TxOffload, TxStatus, VlanTag,
};

fn plain(len: usize, seed: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect();
    f[..6].copy_from_slice(&DST_MAC);
    f[6..12].copy_from_slice(&SRC_MAC);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f
}

fn csum(tcp: bool) -> TxOffload {
    TxOffload {
        checksum: TxChecksum {
            ipv4_header: false,
            tcp,
            udp: !tcp,
        },
        ..TxOffload::default()
    }
}

fn lso(mss: u16) -> TxOffload {
    TxOffload {
        checksum: TxChecksum {
            ipv4_header: false,
            tcp: true,
            udp: false,
        },
        lso_mss: Some(mss),
        vlan: None,
    }
}

#[test]
fn negotiation_follows_the_backend() {
    let h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    let p = h.front.params().unwrap();
    assert_eq!(p.queues, 4);
    assert!(p.split_event_channels && p.sg && p.gso_tcpv4 && p.gso_tcpv6);
    assert!(p.csum_ipv4 && p.csum_ipv6);
    assert_eq!(p.mtu, 1500);
    assert_eq!(h.front.mac().unwrap().0, SRC_MAC);
    for q in 0..4 {
        assert_eq!(h.front.queue(q).unwrap().rx_posted(), RXB);
        assert_eq!(h.front.queue(q).unwrap().state(), QueueState::Running);
    }
    let h = Harness::new(NetFeatures::bare(), FrontendConfig::default());
    let p = h.front.params().unwrap();
    assert_eq!(p.queues, 1);
    assert!(!p.split_event_channels && !p.sg && !p.gso_tcpv4 && !p.csum_ipv4 && !p.csum_ipv6);
}

#[test]
fn every_plain_size_both_ways() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    let sizes: Vec<usize> = (14..=1514).collect();
    for batch in sizes.chunks(16) {
        let mut frames = Vec::new();
        for &len in batch {
            let f = plain(len, len as u8);
            let frags = h.lay_out(&f, &[(4000, 50)]);
            h.submit(len % 4, len as u64, &frags, TxOffload::default())
                .unwrap();
            frames.push(f);
        }
        h.run();
        // The backend serves the queues in turn: compare in length order.
        let mut sent = h.back.take_sent();
        sent.sort_by_key(|s| s.data.len());
        assert_eq!(sent.len(), frames.len());
        for (s, f) in sent.iter().zip(&frames) {
            assert_eq!(&s.data, f);
            assert_eq!(s.queue, f.len() % 4);
            assert!(!s.csum_blank && s.gso.is_none());
        }
        for f in &frames {
            h.back.inject(f.len() % 4, f, RxMeta::default()).unwrap();
        }
        h.run();
        let mut got: Vec<_> = h.received.drain(..).collect();
        got.sort_by_key(|r| r.data.len());
        assert_eq!(got.len(), frames.len());
        for (r, f) in got.iter().zip(&frames) {
            assert_eq!(&r.data, f);
            assert_eq!(usize::from(r.queue), f.len() % 4);
        }
    }
    assert!(h.done.iter().all(|c| c.status == TxStatus::Ok));
    let c = h.front.counters();
    assert_eq!(c.tx.packets(), sizes.len() as u64);
    assert_eq!(c.rx.packets(), sizes.len() as u64);
    assert_eq!(c.tx.bytes(), sizes.iter().sum::<usize>() as u64);
    assert_eq!(c.tx_copy_free, sizes.len() as u64);
    assert_eq!(c.bad_responses, 0);
}

/// Sends `frames` with checksum offload and checks what the backend got: a blank field holding
/// the pseudo-header sum when the backend offers the offload, a full checksum otherwise.
fn checksum_round(features: NetFeatures, v6: bool, tcp: bool, sizes: impl Iterator<Item = usize>) {
    let offered = if v6 {
        features.ipv6_csum_offload
    } else {
        !features.no_csum_offload
    };
    let mut h = Harness::new(features, FrontendConfig::default());
    let sizes: Vec<usize> = sizes.collect();
    for batch in sizes.chunks(16) {
        let mut frames = Vec::new();
        for &len in batch {
            let f = frame(v6, tcp, len, len as u8, true);
            let frags = h.lay_out(&f, &[(4090, 6), (100, 30)]);
            h.submit(0, len as u64, &frags, csum(tcp)).unwrap();
            frames.push(f);
        }
        h.run();
        let sent = h.back.take_sent();
        assert_eq!(sent.len(), frames.len());
        for (s, f) in sent.iter().zip(&frames) {
            let mut data = s.data.clone();
            assert_eq!(s.csum_blank, offered, "len {}", f.len());
            if s.csum_blank {
                assert!(
                    complete_blank(&mut data),
                    "pseudo-header sum, len {}",
                    f.len()
                );
            }
            assert!(checksums_ok(&data), "len {}", f.len());
            let mut expect = f.clone();
            fill_checksums(&mut expect);
            assert_eq!(data, expect);
        }
    }
    let c = h.front.counters();
    if offered {
        assert_eq!(c.tx_checksum_offloaded, sizes.len() as u64);
    } else {
        assert_eq!(c.tx_software_checksums, sizes.len() as u64);
    }
}

#[test]
fn tcp4_checksum_every_size_offloaded_and_in_software() {
    checksum_round(NetFeatures::default(), false, true, 54..=1514);
    checksum_round(NetFeatures::bare(), false, true, 54..=1514);
}

#[test]
fn udp_and_ipv6_checksums_offloaded_and_in_software() {
    for features in [NetFeatures::default(), NetFeatures::bare()] {
        checksum_round(features, false, false, (42..=1514).step_by(7));
        checksum_round(features, true, true, (74..=1514).step_by(7));
        checksum_round(features, true, false, (62..=1514).step_by(7));
    }
}

fn gso_sizes(hdr: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (hdr + 1..=65535).step_by(1499).collect();
    v.extend([hdr + 1448, hdr + 1449, 65535]);
    v
}

/// Large sends of every size class up to 64 KiB: natively as GSO when offered (the frame then
/// segmented by the reference must give the reference's segments), in software otherwise (the
/// core's segments compared byte for byte with the reference's).
fn lso_round(features: NetFeatures, v6: bool) {
    let native = if v6 {
        features.gso_tcpv6
    } else {
        features.gso_tcpv4
    };
    let mut h = Harness::new(features, FrontendConfig::default());
    let hdr = if v6 { 74 } else { 54 };
    let mss: usize = if v6 { 1440 } else { 1460 };
    for (k, len) in gso_sizes(hdr).into_iter().enumerate() {
        let f = frame(v6, true, len, k as u8, true);
        let mut whole = f.clone();
        fill_checksums(&mut whole);
        let expect = reference_segments(&whole, mss);
        let frags = h.lay_out(&f, &[(3000, 100), (0, 7), (5, 4091)]);
        h.submit(0, k as u64, &frags, lso(mss as u16)).unwrap();
        h.run();
        let sent = h.back.take_sent();
        let segments: Vec<Vec<u8>> = if native && len - hdr > mss {
            assert_eq!(sent.len(), 1);
            let s = &sent[0];
            let gso_type = if v6 { 2 } else { 1 };
            assert_eq!(s.gso, Some((gso_type, mss as u16)));
            assert!(s.csum_blank);
            let mut data = s.data.clone();
            assert!(complete_blank(&mut data));
            assert_eq!(data, whole, "len {len}");
            reference_segments(&data, mss)
        } else {
            sent.iter()
                .map(|s| {
                    let mut d = s.data.clone();
                    if s.csum_blank {
                        assert!(complete_blank(&mut d));
                    }
                    d
                })
                .collect()
        };
        assert_eq!(segments.len(), expect.len(), "len {len}");
        for (a, b) in segments.iter().zip(&expect) {
            assert!(checksums_ok(b), "reference, len {len} native {native}");
            assert!(checksums_ok(a), "len {len} native {native}");
            assert_eq!(a, b, "len {len}");
        }
    }
    let c = h.front.counters();
    assert!(h.done.iter().all(|c| c.status == TxStatus::Ok));
    let sizes = gso_sizes(hdr);
    for d in &h.done {
        assert_eq!(d.lso_payload as usize, sizes[d.tag.0 as usize] - hdr);
    }
    if native {
        assert!(c.tx_gso > 0 && c.tx_software_segmented == 0);
    } else {
        assert!(c.tx_software_segmented > 0 && c.tx_gso == 0);
    }
}

#[test]
fn large_send_ipv4_native_and_software() {
    lso_round(NetFeatures::default(), false);
    lso_round(NetFeatures::bare(), false);
}

#[test]
fn large_send_ipv6_native_and_software() {
    lso_round(NetFeatures::default(), true);
    lso_round(
        NetFeatures {
            gso_tcpv6: false,
            ..NetFeatures::default()
        },
        true,
    );
}

#[test]
fn receive_checksums_gso_and_hash() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    for (k, len) in [60usize, 1514, 4096, 4097, 9000, 30000, 65535]
        .into_iter()
        .enumerate()
    {
        for v6 in [false, true] {
            let mut f = frame(v6, true, len, k as u8, true);
            // Linux's CHECKSUM_PARTIAL: the field holds the pseudo-header sum.
            let (_, _, l4, _) = layout_of(&f);
            let p = {
                let mut g = f.clone();
                g[l4 + 16..l4 + 18].fill(0);
                fill_checksums(&mut g);
                g
            };
            // IPv4 header checksum right, transport field garbage: the core must not trust it.
            f[..l4].copy_from_slice(&p[..l4]);
            f[l4 + 16] = 0xde;
            let gso = (len > 1514).then_some((if v6 { 2 } else { 1 }, 1448u16));
            h.back
                .inject(
                    k % 4,
                    &f,
                    RxMeta {
                        gso,
                        csum_blank: true,
                        data_validated: true,
                        hash: Some((1, 0xdead_beef)),
                        fault: None,
                    },
                )
                .unwrap();
            h.run();
            let r = h.received.pop().unwrap();
            assert_eq!(r.data, p, "len {len}");
            assert!(checksums_ok(&r.data));
            assert_eq!(r.tcp_ok, Some(true));
            assert_eq!(r.ipv4_ok, (!v6).then_some(true));
            let hdr = if v6 { 74 } else { 54 };
            let expect = gso.map_or(0, |_| (len - hdr).div_ceil(1448) as u16);
            assert_eq!(r.coalesced, expect);
            assert_eq!(r.hash.unwrap().value, 0xdead_beef);
        }
    }
    let c = h.front.counters();
    assert_eq!(c.rx_checksum_filled, 14);
    assert_eq!(c.rx_coalesced, 10);
    assert_eq!(c.bad_responses, 0);
}

#[test]
fn two_frontends_bridged() {
    let mut a = Harness::new(NetFeatures::default(), FrontendConfig::default());
    let mut b = Harness::new(NetFeatures::default(), FrontendConfig::default());
    let mut c = Harness::new(NetFeatures::bare(), FrontendConfig::default());
    for (k, len) in [100usize, 1514, 20000, 65535].into_iter().enumerate() {
        let f = frame(false, true, len, k as u8, true);
        let mut whole = f.clone();
        fill_checksums(&mut whole);
        let off = if len > 1514 { lso(1460) } else { csum(true) };
        assert_eq!(a.send(0, k as u64, &f, off).status, TxStatus::Ok);
        // A to B (GSO frames stay GSO: B sees one coalesced packet).
        let moved = bridge(&mut a.back, &mut b.back).unwrap();
        assert_eq!(moved, 1);
        b.run();
        let r = b.received.pop().unwrap();
        assert_eq!(r.data, whole);
        assert_eq!(r.tcp_ok, Some(true));
        // C has no offloads: the same packet goes out as segments, each arriving at B whole.
        assert_eq!(c.send(0, k as u64, &f, off).status, TxStatus::Ok);
        let n = bridge(&mut c.back, &mut b.back).unwrap();
        b.run();
        let got: Vec<Vec<u8>> = b.received.drain(..).map(|r| r.data).collect();
        assert_eq!(got.len(), n);
        if len > 1514 {
            assert_eq!(got, reference_segments(&whole, 1460));
        } else {
            assert_eq!(got, vec![whole]);
        }
    }
}

#[test]
fn backpressure_is_bounded_and_nothing_is_lost() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    h.back.faults.hold_tx = true;
    let f = plain(1000, 1);
    let mut accepted = 0u64;
    let mut busy = false;
    for tag in 0..1000u64 {
        let frags = h.lay_out(&f, &[]);
        match h.submit(1, tag, &frags, TxOffload::default()) {
            Ok(()) => accepted += 1,
            Err(SubmitError::Busy) => {
                busy = true;
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
        h.serve();
        h.poll();
    }
    assert!(busy);
    assert_eq!(accepted, PENDING as u64);
    assert_eq!(h.front.counters().tx_busy, 1);
    h.back.faults.hold_tx = false;
    h.release_held();
    h.run();
    let mut tags: Vec<u64> = h.done.iter().map(|c| c.tag.0).collect();
    tags.sort();
    assert_eq!(tags, (0..accepted).collect::<Vec<_>>());
    assert_eq!(h.back.take_sent().len() as u64, accepted);
}

#[test]
fn rx_buffers_kept_by_the_shell_come_back() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    h.keep = true;
    for i in 0..(RXB + 10) {
        h.back
            .inject(2, &plain(200, i as u8), RxMeta::default())
            .unwrap();
    }
    h.run();
    // Every buffer is with the shell; the rest wait in the backend.
    assert_eq!(h.received.len(), RXB);
    assert_eq!(h.front.queue(2).unwrap().rx_with_shell(), RXB);
    // Once fewer than a quarter of the buffers are posted, the shell is told to copy.
    let low: Vec<bool> = h.received.iter().map(|r| r.low_resources).collect();
    assert!(!low[0] && low[RXB - 1]);
    assert_eq!(low.iter().filter(|l| **l).count(), RXB / 4);
    assert_eq!(h.back.waiting(2), 10);
    let bufs: Vec<u16> = h.received.iter().flat_map(|r| r.buffers.clone()).collect();
    assert_eq!(h.return_buffers(2, &bufs), RXB);
    // Giving one back twice is ignored.
    assert_eq!(h.return_buffers(2, &bufs[..1]), 0);
    h.run();
    assert_eq!(h.received.len(), RXB + 10);
}

#[test]
fn vlan_tags_are_inserted_and_removed() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    let f = frame(false, true, 600, 3, true);
    let tag = VlanTag {
        priority: 5,
        vlan_id: 42,
    };
    let off = TxOffload {
        vlan: Some(tag),
        ..csum(true)
    };
    assert_eq!(h.send(0, 1, &f, off).status, TxStatus::Ok);
    let s = h.back.take_sent().pop().unwrap();
    assert_eq!(&s.data[12..16], &[0x81, 0x00, 0xa0, 42]);
    let mut d = s.data.clone();
    assert!(complete_blank(&mut d));
    let mut expect = f.clone();
    fill_checksums(&mut expect);
    assert_eq!([&d[..12], &d[16..]].concat(), expect);
    // Back in: the tag is removed and reported.
    h.back.inject(0, &d, RxMeta::default()).unwrap();
    h.run();
    let r = h.received.pop().unwrap();
    assert_eq!(r.vlan, Some(tag));
    assert_eq!(r.data, expect);
}

#[test]
fn many_fragments_are_copied_and_counted() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    let f = plain(1400, 9);
    let layout: Vec<(u16, u16)> = (0..30).map(|i| (i * 3, 40)).collect();
    let frags = h.lay_out(&f, &layout);
    assert!(frags.len() > 18);
    h.submit(0, 1, &frags, TxOffload::default()).unwrap();
    h.run();
    assert_eq!(h.back.take_sent().pop().unwrap().data, f);
    let c = h.front.counters();
    assert_eq!((c.tx_copied, c.tx_copy_free), (1, 0));
    assert_eq!(c.tx_copied_bytes, 1400);
}

#[test]
fn counters_by_destination_kind() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    let mut b = plain(100, 1);
    b[..6].fill(0xff);
    let mut m = plain(100, 2);
    m[0] = 0x01;
    for (i, f) in [b.clone(), m.clone(), plain(100, 3)].iter().enumerate() {
        assert_eq!(
            h.send(3, i as u64, f, TxOffload::default()).status,
            TxStatus::Ok
        );
        h.back.inject(3, f, RxMeta::default()).unwrap();
    }
    h.run();
    let c = h.front.queue(3).unwrap().counters();
    for d in [c.tx, c.rx] {
        assert_eq!(
            (d.broadcast_packets, d.multicast_packets, d.unicast_packets),
            (1, 1, 1)
        );
        assert_eq!(d.bytes(), 300);
    }
    assert_eq!(Cast::of(&[0xff; 6]), Cast::Broadcast);
}

#[test]
fn disconnect_returns_every_grant() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    h.back.faults.hold_tx = true;
    let f = frame(false, true, 30000, 1, true);
    let frags = h.lay_out(&f, &[]);
    h.submit(0, 7, &frags, lso(1460)).unwrap();
    h.submit(0, 8, &frags, lso(1460)).unwrap();
    h.serve();
    h.poll();
    assert!(h.grants_in_use() > 0);
    let done = h.disconnect();
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|c| c.status == TxStatus::Aborted));
    assert_eq!(h.grants_in_use(), 0);
    assert_eq!(h.front.counters().still_mapped, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any fragment layout, any offload combination, either backend: the backend gets the
    /// frame (or the reference's segments) byte for byte.
    #[test]
    fn any_fragment_layout(
        layout in prop::collection::vec((0u16..4096, 1u16..2000), 0..24),
        len in 60usize..20000,
        v6 in any::<bool>(),
        native in any::<bool>(),
        use_lso in any::<bool>(),
        seed in any::<u8>(),
    ) {
        let features = if native { NetFeatures::default() } else { NetFeatures::bare() };
        let mut h = Harness::new(features, FrontendConfig::default());
        let len = if use_lso { len } else { len.min(1514) };
        let f = frame(v6, true, len, seed, true);
        let mut whole = f.clone();
        fill_checksums(&mut whole);
        let frags = h.lay_out(&f, &layout);
        let off = if use_lso { lso(1200) } else { csum(true) };
        let r = h.submit(0, 1, &frags, off);
        if frags.len() > xennet_core::MAX_TX_FRAGMENTS {
            prop_assert!(r.is_err());
            return Ok(());
        }
        r.unwrap();
        h.run();
        prop_assert_eq!(h.done.len(), 1);
        prop_assert_eq!(h.done[0].status, TxStatus::Ok);
        let mut got = Vec::new();
        for s in h.back.take_sent() {
            let mut d = s.data.clone();
            if s.csum_blank {
                prop_assert!(complete_blank(&mut d));
            }
            if s.gso.is_some() {
                got.extend(reference_segments(&d, usize::from(s.gso.unwrap().1)));
            } else {
                got.push(d);
            }
        }
        let hdr = if v6 { 74 } else { 54 };
        let expect = if use_lso && whole.len() - hdr > 1200 {
            reference_segments(&whole, 1200)
        } else {
            vec![whole]
        };
        prop_assert_eq!(got, expect);
        prop_assert_eq!(h.disconnect().len(), 0);
        prop_assert_eq!(h.grants_in_use(), 0);
    }
}

#[test]
fn ipv4_header_checksum_is_filled_on_request() {
    for features in [NetFeatures::default(), NetFeatures::bare()] {
        let mut h = Harness::new(features, FrontendConfig::default());
        for (k, tcp) in [true, false].into_iter().enumerate() {
            let mut f = frame(false, tcp, 300, k as u8, true);
            f[24..26].fill(0);
            let off = TxOffload {
                checksum: TxChecksum {
                    ipv4_header: true,
                    tcp,
                    udp: !tcp,
                },
                ..TxOffload::default()
            };
            assert_eq!(h.send(0, k as u64, &f, off).status, TxStatus::Ok);
            let s = h.back.take_sent().pop().unwrap();
            let mut d = s.data.clone();
            if s.csum_blank {
                assert!(complete_blank(&mut d));
            }
            assert!(checksums_ok(&d));
        }
        // The header checksum alone, on a packet that is neither TCP nor UDP.
        let mut f = frame(false, true, 100, 9, false);
        f[23] = 1; // ICMP
        f[24..26].fill(0);
        let off = TxOffload {
            checksum: TxChecksum {
                ipv4_header: true,
                ..TxChecksum::default()
            },
            ..TxOffload::default()
        };
        assert_eq!(h.send(0, 9, &f, off).status, TxStatus::Ok);
        let d = h.back.take_sent().pop().unwrap().data;
        let mut expect = f.clone();
        let c = {
            let mut s = 0u32;
            for w in expect[14..34].chunks(2) {
                s += u32::from(w[0]) << 8 | u32::from(w[1]);
            }
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            !(s as u16)
        };
        expect[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(d, expect);
    }
}

#[test]
fn invalid_packets_are_refused() {
    use xennet_core::{Fragment, InvalidPacket};
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    let udp = frame(false, false, 200, 1, true);
    let frags = h.lay_out(&udp, &[]);
    let refused = |h: &mut Harness, frags: &[Fragment], off: TxOffload| {
        h.submit(0, 99, frags, off).unwrap_err()
    };
    assert_eq!(
        refused(&mut h, &frags, csum(true)),
        SubmitError::Invalid(InvalidPacket::Headers)
    );
    assert_eq!(
        refused(&mut h, &frags, lso(1000)),
        SubmitError::Invalid(InvalidPacket::Headers)
    );
    let tcp = frame(true, true, 200, 1, true);
    let frags = h.lay_out(&tcp, &[]);
    let v4_only = TxOffload {
        checksum: TxChecksum {
            ipv4_header: true,
            ..TxChecksum::default()
        },
        ..TxOffload::default()
    };
    assert_eq!(
        refused(&mut h, &frags, v4_only),
        SubmitError::Invalid(InvalidPacket::Headers)
    );
    assert_eq!(
        refused(&mut h, &frags, lso(0)),
        SubmitError::Invalid(InvalidPacket::Mss)
    );
    let short = h.lay_out(&[0u8; 13], &[]);
    assert_eq!(
        refused(&mut h, &short, TxOffload::default()),
        SubmitError::Invalid(InvalidPacket::TooShort)
    );
    let big = h.lay_out(&plain(1600, 1), &[]);
    assert_eq!(
        refused(&mut h, &big, TxOffload::default()),
        SubmitError::Invalid(InvalidPacket::TooLong)
    );
    let past = [Fragment {
        frame: h.data[0],
        offset: 4000,
        length: 200,
    }];
    assert_eq!(
        refused(&mut h, &past, TxOffload::default()),
        SubmitError::Invalid(InvalidPacket::FragmentOutOfPage { index: 0 })
    );
    assert_eq!(
        refused(&mut h, &[], TxOffload::default()),
        SubmitError::Invalid(InvalidPacket::FragmentCount)
    );
    assert!(h.done.is_empty());
    assert_eq!(h.front.queue(0).unwrap().tx_outstanding(), 0);
}

#[test]
fn a_reconnect_sends_queued_packets_once() {
    let mut h = Harness::new(NetFeatures::bare(), FrontendConfig::default());
    h.back.faults.hold_tx = true;
    let f = frame(false, true, 65535, 4, true);
    let mut whole = f.clone();
    fill_checksums(&mut whole);
    for tag in 0..3 {
        let frags = h.lay_out(&f, &[]);
        h.submit(0, tag, &frags, lso(1460)).unwrap();
    }
    h.serve();
    h.poll();
    // The first is on the ring (its segments fill most copy pages); the others wait for pages.
    let q = h.front.queue(0).unwrap();
    assert_eq!((q.tx_outstanding(), q.tx_queued()), (3, 2));
    let done = h.disconnect();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].tag.0, done[0].status), (0, TxStatus::Aborted));
    assert_eq!(h.grants_in_use(), 0);
    h.back.take_sent();
    h.back.faults.hold_tx = false;
    h.connect();
    h.run();
    let mut tags: Vec<u64> = h.done.iter().map(|c| c.tag.0).collect();
    tags.sort();
    assert_eq!(tags, [1, 2]);
    let sent: Vec<Vec<u8>> = h.back.take_sent().into_iter().map(|s| s.data).collect();
    let expect = reference_segments(&whole, 1460);
    assert_eq!(sent, [expect.clone(), expect].concat());
}

#[test]
fn every_hash_type_is_reported_and_an_unknown_one_refused() {
    use xen_sim::netback::RxFault;
    use xennet_core::RssHashType;
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    let f = plain(100, 1);
    let types = [
        RssHashType::Ipv4,
        RssHashType::TcpIpv4,
        RssHashType::Ipv6,
        RssHashType::TcpIpv6,
    ];
    for (t, expect) in types.into_iter().enumerate() {
        let meta = RxMeta {
            hash: Some((t as u8, 0x1000 + t as u32)),
            ..RxMeta::default()
        };
        h.back.inject(0, &f, meta).unwrap();
        h.run();
        let r = h.received.pop().unwrap();
        let hash = r.hash.unwrap();
        assert_eq!((hash.hash_type, hash.value), (expect, 0x1000 + t as u32));
    }
    let meta = RxMeta {
        hash: Some((4, 1)),
        ..RxMeta::default()
    };
    h.back.inject(0, &f, meta).unwrap();
    // A hash slot typed as something else is refused too.
    let meta = RxMeta {
        hash: Some((1, 1)),
        fault: Some(RxFault::ExtraType(5)),
        ..RxMeta::default()
    };
    h.back.inject(0, &f, meta).unwrap();
    h.run();
    assert!(h.received.is_empty());
    assert_eq!(h.front.queue(0).unwrap().counters().bad_responses, 2);
}

#[test]
fn the_model_catches_what_a_backend_would_refuse() {
    let mut h = Harness::new(NetFeatures::default(), FrontendConfig::default());
    // Nothing the core sends is refused, whatever the offloads.
    for (k, off) in [csum(true), csum(false), lso(1000), TxOffload::default()]
        .into_iter()
        .enumerate()
    {
        let len = if k == 2 { 9000 } else { 1400 };
        let f = frame(k % 2 == 1, k != 1, len, 1, true);
        assert_eq!(h.send(0, k as u64, &f, off).status, TxStatus::Ok);
    }
    assert_eq!((h.back.tx_errors, h.back.rx_errors), (0, 0));
}
