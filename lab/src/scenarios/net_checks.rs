//! The longer checks of `net-core` and `net-one-queue` (see [`super::net_core`]): a larger MTU,
//! GSO both ways, receive side scaling through the control ring, a reconnect with traffic
//! flowing.

use std::time::{Duration, Instant};

use xen_abi::xenbus::XenbusState;
use xennet_core::ctrl::MAX_TABLE;
use xennet_core::{
    Fragment, HashTypes, RssConfig, RssHash, RssHashType, Tag, TxChecksum, TxOffload, TxPacket,
    TxStatus,
};

use super::net_core::{
    connect, expect_frames, pump_until, read_features, submit, Collected, Variant, BATCH,
    CONNECT_TIMEOUT, IO_TIMEOUT, MAC, PEER_MAC,
};
use super::net_frames::{
    plain_frame, tcp4_checksum_ok, tcp4_frame, tcp4_pseudo_seed, toeplitz_reference,
    ETHERTYPE_IPV4, FRONT_IP, PEER_IP, TCP4_HEADERS,
};
use super::toolstack::{sh, Store};
use crate::platform::net::NetFront;
use crate::platform::net_vnet::{VnetHeader, VnetSocket, VNET_GSO_TCPV4, VNET_NEEDS_CSUM};
use crate::platform::packet::PacketSocket;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt};

/// Microsoft's RSS verification key.
const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];
/// TCP flows dom0 sends in the RSS check.
const RSS_FLOWS: u16 = 32;

/// Configures Toeplitz hashing (IPv4 and TCP/IPv4, [`RSS_KEY`], a 128-entry table spreading
/// over the queues) through the control ring, then sends TCP flows and a non-TCP IPv4 frame
/// from dom0: each must arrive with the hash computed independently here, of the right type,
/// on the queue the table names.
pub(super) fn rss(
    cx: &mut Context,
    front: &mut NetFront<'_, '_>,
    ipv4: &PacketSocket,
    queues: usize,
) -> Outcome {
    let mut table = [0u32; MAX_TABLE];
    for (i, e) in table.iter_mut().enumerate() {
        *e = ((i * 7 + 3) % queues) as u32;
    }
    let config = RssConfig {
        hash_types: HashTypes {
            ipv4: true,
            tcp_ipv4: true,
            ipv6: false,
            tcp_ipv6: false,
        },
        key: RSS_KEY,
        key_len: RSS_KEY.len(),
        table,
        table_len: MAX_TABLE,
    };
    let started = Instant::now();
    front
        .with_ctrl(|c, io| c.configure(&config, queues as u32, io))
        .map_err(|e| Failure(format!("configure RSS: {e:?}")))?;
    let deadline = started + IO_TIMEOUT;
    loop {
        if let Some(result) = front.with_ctrl(|c, io| c.poll(io)) {
            result.map_err(|e| Failure(format!("the backend refused RSS: {e:?}")))?;
            break;
        }
        ensure(Instant::now() < deadline, || {
            "no control ring responses".into()
        })?;
        let ports = front
            .events
            .channels
            .wait_any(Duration::from_millis(50))
            .context("wait for an event")?;
        for p in ports {
            front.events.channels.unmask(p).context("unmask")?;
        }
    }
    cx.duration("rss configured", started.elapsed(), "ms");

    let mut sent = Vec::new();
    for i in 0..=RSS_FLOWS {
        let sport = 1024 + (u32::from(i) * 1999 % 60000) as u16;
        let mut f = tcp4_frame(
            MAC,
            PEER_MAC,
            PEER_IP,
            FRONT_IP,
            sport,
            5001,
            u32::from(i),
            64,
            0x7100 + i,
        );
        let tcp = i < RSS_FLOWS;
        if !tcp {
            // The last one is not TCP (protocol 253, for experiments): an address-only hash.
            f[23] = 253;
            super::net_frames::fill_ipv4_header_checksum(&mut f);
        }
        ipv4.send(&f).context("send on the vif")?;
        sent.push((f, sport, tcp));
    }
    let mut out = Collected::default();
    let is_ours = |d: &[u8]| d.len() >= 34 && d[6..12] == PEER_MAC && d[12..14] == [8, 0];
    pump_until(front, &mut out, "RSS flows", |o| {
        o.received.iter().filter(|r| is_ours(&r.data)).count() >= sent.len()
    })?;
    let mut per_queue = vec![0u32; queues];
    for r in out.received.iter().filter(|r| is_ours(&r.data)) {
        let Some((_, sport, tcp)) = sent.iter().find(|(f, _, _)| *f == r.data) else {
            return Err(Failure("an RSS test frame arrived damaged".into()));
        };
        let mut input = Vec::new();
        input.extend_from_slice(&PEER_IP);
        input.extend_from_slice(&FRONT_IP);
        let want_type = if *tcp {
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&5001u16.to_be_bytes());
            RssHashType::TcpIpv4
        } else {
            RssHashType::Ipv4
        };
        let want = toeplitz_reference(&RSS_KEY, &input);
        let want_hash = RssHash {
            value: want,
            hash_type: want_type,
        };
        ensure(r.hash == Some(want_hash), || {
            format!(
                "port {sport}: netback reported {:?}, computed {want_hash:?}",
                r.hash
            )
        })?;
        let want_queue = config.queue_for(want);
        ensure(u32::from(r.queue) == want_queue, || {
            format!(
                "port {sport}: hash {want:#010x} arrived on queue {}, the table says {want_queue}",
                r.queue
            )
        })?;
        per_queue[usize::from(r.queue)] += 1;
    }
    if queues > 1 {
        ensure(per_queue.iter().all(|&n| n > 0), || {
            format!("flows per queue {per_queue:?}: the table spreads over every queue")
        })?;
    }
    cx.text(
        "rss",
        &format!(
            "{} hashes = Toeplitz computed in dom0, each on its table's queue, per queue {per_queue:?}",
            sent.len()
        ),
    );
    Ok(())
}

/// Frames go out from the core and in from dom0 while the frontend closes: every send
/// completes exactly once (sent or aborted), no frame appears twice on the vif, every grant
/// is back; then Initialising → the backend's InitWait → a new negotiation and connection,
/// and frames flow both ways again.
#[allow(clippy::too_many_arguments)]
pub(super) fn reconnect(
    cx: &mut Context,
    store: &mut Store,
    fe: &str,
    be: &str,
    v: &Variant,
    front: &mut NetFront<'_, '_>,
    plain: &PacketSocket,
    tag: &mut u64,
) -> Outcome {
    let queues = front.dev.queue_count();
    let first = *tag;
    let mut in_flight = Vec::new();
    for slot in 0..BATCH {
        let frame = plain_frame([0xff; 6], MAC, 200 + slot, *tag as u32);
        submit(
            front,
            slot % queues,
            slot,
            &frame,
            1,
            TxOffload::default(),
            *tag,
        )?;
        in_flight.push(frame);
        *tag += 1;
    }
    for _ in 0..8 {
        plain
            .send(&plain_frame(MAC, PEER_MAC, 100, *tag as u32))
            .context("send on the vif")?;
        *tag += 1;
    }
    let started = Instant::now();
    store.disconnect(fe, be, CONNECT_TIMEOUT)?;
    let mut completions = Vec::new();
    front.with_io(|dev, io| {
        for q in dev.queues_mut() {
            // Whatever the backend answered before it closed.
            q.poll_tx(io, |c| completions.push(c));
        }
        dev.disconnect(io, |c| completions.push(c));
    });
    ensure(front.with_ctrl(|c, io| c.disconnect(io)), || {
        "a control ring grant is still mapped".into()
    })?;
    let mut tags: Vec<u64> = completions.iter().map(|c| c.tag.0).collect();
    tags.sort_unstable();
    ensure(
        tags == (first..first + BATCH as u64).collect::<Vec<_>>(),
        || format!("completions {completions:?} for tags {first}.. ({BATCH} sent)"),
    )?;
    let sent = completions
        .iter()
        .filter(|c| c.status == TxStatus::Ok)
        .count();
    let aborted = completions
        .iter()
        .filter(|c| c.status == TxStatus::Aborted)
        .count();
    ensure(sent + aborted == BATCH, || {
        format!("completions {completions:?}")
    })?;
    ensure(front.grants.outstanding() == 0, || {
        format!(
            "{} grants outstanding after the disconnect",
            front.grants.outstanding()
        )
    })?;
    if let Some(port) = front.events.ctrl_port.take() {
        front.events.channels.unbind(port).context("unbind")?;
    }
    for (tx, rx) in std::mem::take(&mut front.events.ports) {
        front.events.channels.unbind(tx).context("unbind")?;
        if rx != tx {
            front.events.channels.unbind(rx).context("unbind")?;
        }
    }
    // What reached the vif: frames of the batch, none twice.
    let mut seen = vec![0u32; BATCH];
    let mut buf = vec![0u8; 2048];
    while let Some(n) = plain
        .recv(&mut buf, Duration::from_millis(500))
        .context("receive")?
    {
        if buf[6..12] != MAC {
            continue;
        }
        let Some(i) = in_flight.iter().position(|f| f[..] == buf[..n]) else {
            return Err(Failure(format!("a {n}-byte frame not of the batch")));
        };
        seen[i] += 1;
    }
    ensure(seen.iter().all(|&n| n <= 1), || {
        format!("frames on the vif per send {seen:?}")
    })?;
    let on_vif = seen.iter().filter(|&&n| n == 1).count();

    store.set_state(fe, XenbusState::Initialising)?;
    // The backend is Closed until it sees Initialising (which `expect_state` would take for
    // giving up): poll for InitWait.
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let state = store.state(be)?;
        if state == XenbusState::InitWait {
            break;
        }
        ensure(Instant::now() < deadline, || {
            format!("backend in state {state:?}, not InitWait, after the frontend's Initialising")
        })?;
        std::thread::sleep(Duration::from_millis(20));
    }
    front.dev.set_backend_state(XenbusState::InitWait);
    let features = read_features(store, fe, be)?;
    let params = connect(store, fe, be, v, &features, front)?;
    cx.duration("reconnect", started.elapsed(), "ms");
    cx.text(
        "in flight at the disconnect",
        &format!("{BATCH} sends: {sent} completed, {aborted} aborted, {on_vif} seen on the vif"),
    );

    // Traffic both ways on the new connection.
    let queues = params.queues as usize;
    let mut want = Vec::new();
    let mut out = Collected::default();
    for slot in 0..BATCH {
        let frame = plain_frame([0xff; 6], MAC, 300 + slot, *tag as u32);
        submit(
            front,
            slot % queues,
            slot,
            &frame,
            2,
            TxOffload::default(),
            *tag,
        )?;
        want.push(frame);
        *tag += 1;
    }
    pump_until(front, &mut out, "sends after the reconnect", |o| {
        o.completions.len() >= BATCH
    })?;
    for c in &out.completions {
        ensure(c.status == TxStatus::Ok, || format!("completion {c:?}"))?;
    }
    expect_frames(plain, want, MAC, |_| Ok(()), "frames after the reconnect")?;
    let mut want = Vec::new();
    for i in 0..BATCH {
        let frame = plain_frame(MAC, PEER_MAC, 400 + i, *tag as u32);
        plain.send(&frame).context("send on the vif")?;
        want.push(frame);
        *tag += 1;
    }
    pump_until(front, &mut out, "receives after the reconnect", |o| {
        want.iter().all(|w| o.received.iter().any(|r| r.data == *w))
    })?;
    Ok(())
}

/// The MTU `net-one-queue` runs with.
pub(super) const JUMBO_MTU: u32 = 9000;

/// Frames longer than a page (up to `mtu` + 14 bytes) both ways: the core's sends in
/// page-sized fragments, dom0's sends received over several slots (`NETRXF_more_data`).
pub(super) fn jumbo(
    cx: &mut Context,
    front: &mut NetFront<'_, '_>,
    vif: &str,
    plain: &PacketSocket,
    mtu: u32,
    tag: &mut u64,
) -> Outcome {
    sh("ip", &["link", "set", vif, "mtu", &mtu.to_string()])?;
    let max = mtu as usize + 14;
    let sizes = [1515, 4095, 4096, 4097, 6000, 8193, max - 1, max];
    let mut out = Collected::default();
    for &len in &sizes {
        let frame = plain_frame([0xff; 6], MAC, len, *tag as u32);
        let mut fragments = Vec::new();
        for (i, chunk) in frame.chunks(4096 - 7).enumerate() {
            front.write_data(i, 7, chunk);
            fragments.push(Fragment {
                frame: front.data_frame(i),
                offset: 7,
                length: chunk.len() as u16,
            });
        }
        let packet = TxPacket {
            tag: Tag(*tag),
            fragments: &fragments,
            offload: TxOffload::default(),
        };
        *tag += 1;
        front
            .with_io(|dev, io| match dev.queue_mut(0) {
                Some(q) => q.submit(&packet, io).map_err(|e| format!("{e:?}")),
                None => Err("no queue 0".into()),
            })
            .map_err(|e| Failure(format!("send a {len}-byte frame: {e}")))?;
        out.completions.clear();
        pump_until(front, &mut out, "a long frame's completion", |o| {
            !o.completions.is_empty()
        })?;
        ensure(out.completions[0].status == TxStatus::Ok, || {
            format!("{len}-byte frame: {:?}", out.completions[0])
        })?;
        expect_frames(
            plain,
            vec![frame],
            MAC,
            |_| Ok(()),
            "a long frame from the core",
        )?;
    }
    for &len in &sizes {
        let frame = plain_frame(MAC, PEER_MAC, len, *tag as u32);
        *tag += 1;
        plain.send(&frame).context("send a long frame on the vif")?;
        out.received.clear();
        pump_until(front, &mut out, "a long frame from dom0", |o| {
            o.received.iter().any(|r| r.data == frame)
        })?;
    }
    cx.text(
        "mtu",
        &format!("{mtu}: frames of {sizes:?} bytes both ways, intact"),
    );
    Ok(())
}

/// The MSS of the GSO checks (a 1500-byte MTU's TCP payload with timestamps).
const GSO_MSS: u16 = 1448;

/// Large sends from the core with `lso_mss`: dom0 receives each as one GSO packet (the
/// virtio-net header says TCPv4 and the MSS), headers and payload intact. A 20000-byte GSO
/// packet from dom0 (partial checksum): the core presents it as one packet of
/// ceil(20000 / MSS) coalesced segments, data intact and the checksum filled in correctly.
pub(super) fn gso(
    cx: &mut Context,
    front: &mut NetFront<'_, '_>,
    vif: &str,
    tag: &mut u64,
) -> Outcome {
    let vnet = VnetSocket::open(vif, ETHERTYPE_IPV4).context("open a vnet packet socket")?;
    let mut out = Collected::default();
    let payloads = [3 * usize::from(GSO_MSS) + 100, 30_000, 65_000];
    for payload in payloads {
        let frame = tcp4_frame(
            PEER_MAC,
            MAC,
            FRONT_IP,
            PEER_IP,
            40001,
            5001,
            *tag as u32,
            payload,
            *tag as u16,
        );
        // The headers in one page, the payload in whole pages after it.
        let mut fragments = Vec::new();
        front.write_data(0, 100, &frame[..TCP4_HEADERS]);
        fragments.push(Fragment {
            frame: front.data_frame(0),
            offset: 100,
            length: TCP4_HEADERS as u16,
        });
        for (i, chunk) in frame[TCP4_HEADERS..].chunks(4096).enumerate() {
            front.write_data(1 + i, 0, chunk);
            fragments.push(Fragment {
                frame: front.data_frame(1 + i),
                offset: 0,
                length: chunk.len() as u16,
            });
        }
        let packet = TxPacket {
            tag: Tag(*tag),
            fragments: &fragments,
            offload: TxOffload {
                checksum: TxChecksum {
                    ipv4_header: true,
                    tcp: true,
                    udp: false,
                },
                lso_mss: Some(GSO_MSS),
                vlan: None,
            },
        };
        front
            .with_io(|dev, io| match dev.queue_mut(0) {
                Some(q) => q.submit(&packet, io).map_err(|e| format!("{e:?}")),
                None => Err("no queue 0".into()),
            })
            .map_err(|e| Failure(format!("large send of {payload} bytes: {e}")))?;
        *tag += 1;
        out.completions.clear();
        pump_until(front, &mut out, "large send completion", |o| {
            !o.completions.is_empty()
        })?;
        let c = out.completions[0];
        ensure(c.status == TxStatus::Ok, || format!("large send {c:?}"))?;
        let deadline = Instant::now() + IO_TIMEOUT;
        let (h, got) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match vnet.recv(left).context("receive a large send")? {
                Some((h, f)) if f.len() > 12 && f[6..12] == MAC => break (h, f),
                Some(_) => {}
                None => {
                    return Err(Failure(format!(
                        "the {payload}-byte large send did not arrive on {vif}"
                    )))
                }
            }
        };
        ensure(
            h.gso_type & 0x7f == VNET_GSO_TCPV4 && h.gso_size == GSO_MSS,
            || format!("the {payload}-byte large send arrived with {h:?}"),
        )?;
        ensure(got.len() == frame.len(), || {
            format!("{payload}-byte large send arrived as {} bytes", got.len())
        })?;
        // Everything but the checksum fields (the TCP one is partial in dom0).
        let same = got[..24] == frame[..24]
            && got[26..50] == frame[26..50]
            && got[TCP4_HEADERS..] == frame[TCP4_HEADERS..];
        ensure(same, || {
            format!("the {payload}-byte large send arrived damaged")
        })?;
    }
    cx.text(
        "gso tx",
        &format!("{payloads:?}-byte large sends arrived as TCPv4 GSO, MSS {GSO_MSS}, intact"),
    );

    // dom0 → core.
    let payload = 20_000;
    let mut frame = tcp4_frame(
        MAC, PEER_MAC, PEER_IP, FRONT_IP, 5002, 40002, 7, payload, 0x7e00,
    );
    let good = frame.clone();
    // What a partial checksum holds: the pseudo-header sum.
    let seed = tcp4_pseudo_seed(&frame);
    frame[50..52].copy_from_slice(&seed.to_be_bytes());
    vnet.send(
        VnetHeader {
            flags: VNET_NEEDS_CSUM,
            gso_type: VNET_GSO_TCPV4,
            hdr_len: TCP4_HEADERS as u16,
            gso_size: GSO_MSS,
            csum_start: 34,
            csum_offset: 16,
        },
        &frame,
    )
    .context("send a GSO packet")?;
    out.received.clear();
    let is_it = |d: &[u8]| d.len() > 60 && d[6..12] == PEER_MAC && d[18..20] == [0x7e, 0];
    pump_until(front, &mut out, "the GSO packet from dom0", |o| {
        o.received.iter().any(|r| is_it(&r.data))
    })?;
    let r = out
        .received
        .iter()
        .find(|r| is_it(&r.data))
        .ok_or_else(|| Failure("the GSO packet vanished".into()))?;
    let segments = payload.div_ceil(usize::from(GSO_MSS));
    ensure(r.data.len() == good.len(), || {
        format!(
            "the {}-byte GSO packet arrived as {} bytes (segmented?)",
            good.len(),
            r.data.len()
        )
    })?;
    ensure(usize::from(r.coalesced) == segments, || {
        format!(
            "{} coalesced segments reported, {segments} sent",
            r.coalesced
        )
    })?;
    ensure(
        r.data[..50] == good[..50] && r.data[52..] == good[52..],
        || "the GSO packet arrived damaged".into(),
    )?;
    ensure(tcp4_checksum_ok(&r.data), || {
        format!(
            "the GSO packet's checksum is wrong ({:02x}{:02x}; reported {:?})",
            r.data[50], r.data[51], r.checksum
        )
    })?;
    cx.text(
        "gso rx",
        &format!("{payload} bytes from dom0 as one packet of {segments} coalesced segments, checksum filled"),
    );
    Ok(())
}
