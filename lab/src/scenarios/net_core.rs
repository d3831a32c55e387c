//! `net-core` and `net-one-queue`: the driver's own core, xennet-core, against the real
//! xen-netback, with a dom0-side `AF_PACKET` peer on the backend's `vif0.N` that generates and
//! checks the traffic.

use std::time::{Duration, Instant};

use xen_abi::xenbus::XenbusState;
use xennet_core::negotiate::Side;
use xennet_core::{
    BackendFeatures, Cast, ControlRing, FeatureError, Fragment, FrontendConfig, FrontendParams,
    NetConfig, QueueState, RssHash, RxChecksum, RxVerdict, Tag, TxChecksum, TxCompletion,
    TxOffload, TxPacket, TxStatus,
};

use super::net_frames::{
    check_tcp4_checksum, ipv4_header_ok, plain_frame, tcp4_frame, ChecksumForm, ETHERTYPE_IPV4,
    ETHERTYPE_TEST, FRONT_IP, PEER_IP,
};
use super::net_smoke::{counter, mac_text};
use super::toolstack::{device_dirs, remove_device, sh, wait_path, Store};
use crate::platform::evtchn::EventChannels;
use crate::platform::gntalloc::Gntalloc;
use crate::platform::net::{NetFront, POOL_PAGES};
use crate::platform::packet::PacketSocket;
use crate::platform::pool::PagePool;
use crate::scenario::{ensure, Context, Failure, Outcome, ResultExt, Scenario};

/// The default netback: one queue per dom0 vCPU and split event channels.
pub const SCENARIO: Scenario = Scenario {
    name: "net-core",
    description: "xennet-core against the real xen-netback (queues and split event channels as \
                  netback offers them): every frame size 60..=1514 both ways in 1-3 fragments, \
                  byte for byte on vif0.3 (AF_PACKET); TCP/IPv4 checksum offload sent with \
                  csum_blank and completed on the dom0 side; received IPv4 header/TCP checksums \
                  (good and bad) reported truthfully; Toeplitz RSS set through the control ring: \
                  each received hash = one computed in dom0, on the table's queue; a reconnect \
                  with frames in flight both ways; every grant back",
    default: true,
    timeout: Duration::from_secs(300),
    run: run_default,
};

/// netback reloaded with one queue and one event channel per queue.
pub const ONE_QUEUE: Scenario = Scenario {
    name: "net-one-queue",
    description: "xen-netback reloaded with max_queues=1 separate_tx_rx_irq=0: xennet-core \
                  adapts (one queue, one event channel: no multi-queue-num-queues, \
                  event-channel written), then frames both ways (sizes 60..=1514 in steps of 7) \
                  and the checksum offload and GSO as net-core; mtu 9000 from the toolstack: \
                  frames up to 9014 bytes both ways; netback unloaded again after",
    default: true,
    timeout: Duration::from_secs(180),
    run: run_one_queue,
};

/// The frontend's MAC address.
pub(super) const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x00, 0x01, 0x01];
/// The MAC dom0's peer sends from (vif's own default address).
pub(super) const PEER_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];
/// How long the backend may take to connect.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a batch of frames may take.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames in flight at once.
pub(super) const BATCH: usize = 16;
/// Data pages per frame in flight (up to three fragments, each in its own page).
const PAGES_PER_FRAME: usize = 3;

pub(super) struct Variant {
    handle: u32,
    /// netback's module parameters; `None`: the module as loaded (or loaded with defaults).
    module_params: Option<&'static [&'static str]>,
    /// Frame sizes tried are `60..=1514` in steps of this.
    size_step: usize,
    /// Queues expected: `None` for one per dom0 vCPU.
    queues: Option<u32>,
    /// Use the control ring (when offered) and check the receive hash and steering.
    rss: bool,
    /// Disconnect with frames in flight both ways and connect again.
    reconnect: bool,
    /// The `mtu` the toolstack writes for the vif (and dom0 sets on it); `None`: none written.
    mtu: Option<u32>,
}

fn run_default(cx: &mut Context) -> Outcome {
    run(
        cx,
        &Variant {
            handle: 3,
            module_params: None,
            size_step: 1,
            queues: None,
            rss: true,
            reconnect: true,
            mtu: None,
        },
    )
}

fn run_one_queue(cx: &mut Context) -> Outcome {
    let outcome = run(
        cx,
        &Variant {
            handle: 4,
            module_params: Some(&["max_queues=1", "separate_tx_rx_irq=0"]),
            size_step: 7,
            queues: Some(1),
            rss: false,
            reconnect: false,
            mtu: Some(super::net_checks::JUMBO_MTU),
        },
    );
    // Later scenarios load netback with its defaults.
    outcome.and(unload_netback())
}

/// Unloads xen-netback, waiting for the vifs of earlier devices to go (their removal is
/// asynchronous, and the module is busy until then).
fn unload_netback() -> Outcome {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        if !std::path::Path::new("/sys/module/xen_netback").exists() {
            return Ok(());
        }
        match sh("rmmod", &["xen_netback"]) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn run(cx: &mut Context, variant: &Variant) -> Outcome {
    if let Some(params) = variant.module_params {
        // A loaded netback keeps its parameters; unload it first.
        unload_netback()?;
        let mut args = vec!["xen-netback"];
        args.extend_from_slice(params);
        sh("modprobe", &args)?;
    } else {
        sh("modprobe", &["xen-netback"])?;
    }
    let mut store = Store::open()?;
    let (fe, be) = device_dirs("vif", variant.handle);
    remove_device(&mut store, &fe, &be)?;
    let outcome = session(cx, &mut store, &fe, &be, variant);
    let removed = remove_device(&mut store, &fe, &be);
    outcome.and(removed)
}

/// The toolstack's nodes for a vif of domain 0 (as `xl network-attach` writes them).
pub fn write_vif_nodes(
    store: &mut Store,
    fe: &str,
    be: &str,
    handle: u32,
    mac: [u8; 6],
) -> Outcome {
    let node = |dir: &str, key: &str, value: &str| (format!("{dir}/{key}"), value.to_owned());
    let mac = mac_text(mac);
    let handle = handle.to_string();
    store.write_all(&[
        node(be, "frontend", fe),
        node(be, "frontend-id", "0"),
        node(be, "online", "1"),
        node(be, "state", "1"),
        node(be, "handle", &handle),
        node(be, "mac", &mac),
        node(be, "script", "/etc/xen/scripts/vif-bridge"),
        node(be, "type", "vif"),
        node(fe, "backend", be),
        node(fe, "backend-id", "0"),
        node(fe, "state", "1"),
        node(fe, "handle", &handle),
        node(fe, "mac", &mac),
    ])
}

/// The backend's offer, parsed by the core from the store.
pub fn read_features(store: &mut Store, fe: &str, be: &str) -> Result<BackendFeatures, Failure> {
    let mut failure = None;
    let parsed = BackendFeatures::parse(|side, node, buf| {
        let dir = match side {
            Side::Frontend => fe,
            Side::Backend => be,
        };
        match store.read(&format!("{dir}/{node}")) {
            Ok(Some(v)) => {
                let n = v.len().min(buf.len());
                buf[..n].copy_from_slice(&v.as_bytes()[..n]);
                Ok(Some(v.len()))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                failure = Some(e);
                Err(FeatureError::Missing { node })
            }
        }
    });
    match (parsed, failure) {
        (_, Some(f)) => Err(f),
        (Ok(f), None) => Ok(f),
        (Err(e), None) => Err(Failure(format!("backend features: {e}"))),
    }
}

/// What a pump of the device collected.
#[derive(Debug, Default)]
pub struct Collected {
    /// Send completions.
    pub completions: Vec<TxCompletion>,
    /// Received packets: queue, data, checksum flags, coalesced segments, hash.
    pub received: Vec<Received>,
}

/// One received packet, copied out of the core's buffers.
#[derive(Debug)]
pub struct Received {
    /// The queue it arrived on.
    pub queue: u16,
    /// The frame.
    pub data: Vec<u8>,
    /// What the core reported about its checksums.
    pub checksum: RxChecksum,
    /// The destination kind the core reported.
    pub cast: Cast,
    /// Coalesced segments (GSO).
    pub coalesced: u16,
    /// The backend's hash value and type, if any.
    pub hash: Option<RssHash>,
}

/// Polls every queue once, collecting into `out`; fails if a queue failed.
pub fn service(front: &mut NetFront<'_, '_>, out: &mut Collected) -> Outcome {
    let pool = front.pool();
    let queues = front.dev.queue_count();
    for q in 0..queues {
        let Collected {
            completions,
            received,
        } = out;
        front.with_io(|dev, io| {
            let Some(queue) = dev.queue_mut(q) else {
                return;
            };
            queue.poll(
                io,
                |c| completions.push(c),
                |p| {
                    let mut data = vec![0u8; p.length as usize];
                    let mut at = 0;
                    for f in p.fragments {
                        let n = usize::from(f.length);
                        pool.read(f.frame, usize::from(f.offset), &mut data[at..at + n]);
                        at += n;
                    }
                    received.push(Received {
                        queue: p.queue,
                        data,
                        checksum: p.checksum,
                        cast: p.cast,
                        coalesced: p.coalesced_segments,
                        hash: p.hash,
                    });
                    RxVerdict::Done
                },
            );
        });
        let state = front.dev.queue(q).map(|q| q.state());
        ensure(state == Some(QueueState::Running), || {
            format!(
                "queue {q} is {state:?}; the core logged {:?}",
                front.events.log
            )
        })?;
    }
    if let Some(e) = &front.events.notify_error {
        return Err(Failure(format!("notify the backend: {e}")));
    }
    Ok(())
}

/// Services the device until `done` holds, waiting for events in between; fails after
/// the scenario's I/O timeout with `what`.
pub fn pump_until(
    front: &mut NetFront<'_, '_>,
    out: &mut Collected,
    what: &str,
    mut done: impl FnMut(&Collected) -> bool,
) -> Outcome {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        service(front, out)?;
        if done(out) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure(format!(
                "{what}: not done within {} s ({} completions, {} packets received)",
                IO_TIMEOUT.as_secs_f64(),
                out.completions.len(),
                out.received.len()
            )));
        }
        let ports = front
            .events
            .channels
            .wait_any(left.min(Duration::from_millis(50)))
            .context("wait for an event")?;
        for p in ports {
            front.events.channels.unmask(p).context("unmask")?;
        }
    }
}

/// Places `frame` in the data pages of batch slot `slot`, cut into `pieces` fragments (1..=3)
/// at offsets that vary with `n`, and submits it on queue `q`.
pub(super) fn submit(
    front: &mut NetFront<'_, '_>,
    q: usize,
    slot: usize,
    frame: &[u8],
    pieces: usize,
    offload: TxOffload,
    n: u64,
) -> Outcome {
    let len = frame.len();
    let cuts: Vec<usize> = match pieces {
        1 => vec![len],
        2 => vec![len / 3, len],
        _ => vec![
            14 + (n as usize % 20),
            14 + (n as usize % 20) + (len - 34) / 2,
            len,
        ],
    };
    let mut fragments = Vec::new();
    let mut from = 0;
    for (i, &to) in cuts.iter().enumerate() {
        let piece = &frame[from..to];
        let page = slot * PAGES_PER_FRAME + i;
        // Odd offsets, some near the end of the page.
        let offset = match (n as usize + i) % 3 {
            0 => (n as usize * 13) % 512,
            1 => 4096 - piece.len(),
            _ => 1,
        };
        front.write_data(page, offset, piece);
        fragments.push(Fragment {
            frame: front.data_frame(page),
            offset: offset as u16,
            length: piece.len() as u16,
        });
        from = to;
    }
    let packet = TxPacket {
        tag: Tag(n),
        fragments: &fragments,
        offload,
    };
    front
        .with_io(|dev, io| match dev.queue_mut(q) {
            Some(queue) => queue.submit(&packet, io).map_err(|e| format!("{e:?}")),
            None => Err(format!("no queue {q}")),
        })
        .map_err(|e| Failure(format!("submit frame {n} ({len} bytes) on queue {q}: {e}")))
}

/// Receives frames on `sock` until every one of `want` has arrived, each exactly once
/// (`transform` may complete a frame before the comparison, or refuse it with an error).
pub(super) fn expect_frames(
    sock: &PacketSocket,
    mut want: Vec<Vec<u8>>,
    from: [u8; 6],
    mut transform: impl FnMut(&mut Vec<u8>) -> Result<(), String>,
    what: &str,
) -> Outcome {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = vec![0u8; 70_000];
    while !want.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(n) = sock
            .recv(&mut buf, left)
            .context(format!("receive {what}"))?
        else {
            return Err(Failure(format!(
                "{what}: {} frames did not arrive within {} s (sizes {:?})",
                want.len(),
                IO_TIMEOUT.as_secs_f64(),
                want.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        };
        if buf[6..12] != from {
            continue;
        }
        let mut got = buf[..n].to_vec();
        transform(&mut got).map_err(|e| Failure(format!("{what}: a {n}-byte frame: {e}")))?;
        match want.iter().position(|w| *w == got) {
            Some(i) => {
                want.swap_remove(i);
            }
            None => {
                return Err(Failure(format!(
                    "{what}: a {n}-byte frame from the frontend matches none sent"
                )))
            }
        }
    }
    Ok(())
}

fn session(cx: &mut Context, store: &mut Store, fe: &str, be: &str, v: &Variant) -> Outcome {
    write_vif_nodes(store, fe, be, v.handle, MAC)?;
    if let Some(mtu) = v.mtu {
        store.write(&format!("{be}/mtu"), &mtu.to_string())?;
    }
    store.expect_state("backend", be, XenbusState::InitWait, CONNECT_TIMEOUT)?;
    let vif = format!("vif0.{}", v.handle);
    wait_path(&format!("/sys/class/net/{vif}"), CONNECT_TIMEOUT)?;
    let features = read_features(store, fe, be)?;
    cx.log(format!("netback offers {features:?}"));

    let gnt = Gntalloc::open().context("open gntalloc")?;
    let pool = PagePool::new(&gnt, 0, POOL_PAGES as u32).context("grant the page pool")?;
    let channels = EventChannels::open().context("open evtchn")?;
    let mut front = NetFront::new(&pool, channels, NetConfig::default()).context("the device")?;
    let outcome = connected_session(cx, store, fe, be, v, &vif, &features, &mut front);
    if let Some(port) = front.events.ctrl_port.take() {
        let _ = front.events.channels.unbind(port);
    }
    let ports: Vec<_> = front.events.ports.drain(..).collect();
    for (tx, rx) in ports {
        let _ = front.events.channels.unbind(tx);
        if rx != tx {
            let _ = front.events.channels.unbind(rx);
        }
    }
    let outstanding = front.grants.outstanding();
    drop(front);
    pool.release().context("end the pool's grants")?;
    outcome?;
    ensure(outstanding == 0, || {
        format!("{outstanding} grants not ended after the disconnect")
    })
}

/// Negotiates with the backend (at its InitWait), attaches the rings (and the control ring
/// when `v.rss` and offered), publishes the nodes, switches to Connected and waits for the
/// backend to follow; then posts the receive buffers.
pub(super) fn connect(
    store: &mut Store,
    fe: &str,
    be: &str,
    v: &Variant,
    features: &BackendFeatures,
    front: &mut NetFront<'_, '_>,
) -> Result<FrontendParams, Failure> {
    let params: FrontendParams = front
        .dev
        .negotiate(&FrontendConfig::default(), features)
        .map_err(|e| Failure(format!("negotiate: {e}")))?;
    let queues = params.queues as usize;
    if let Some(want) = v.queues {
        ensure(params.queues == want && features.max_queues == want, || {
            format!(
                "netback offers {} queues, the core took {}; expected {want}",
                features.max_queues, params.queues
            )
        })?;
    }
    if v.module_params.is_some() {
        ensure(!params.split_event_channels, || {
            "split event channels negotiated with separate_tx_rx_irq=0".into()
        })?;
    }
    for _ in 0..queues {
        let ch = &front.events.channels;
        let tx = ch.bind_unbound(0).context("allocate an event channel")?;
        let rx = if params.split_event_channels {
            ch.bind_unbound(0).context("allocate an event channel")?
        } else {
            tx
        };
        front.events.ports.push((tx, rx));
    }
    let rings = front.ring_pages(queues).context("ring pages")?;
    front
        .with_io(|dev, io| dev.attach(rings, io))
        .map_err(|e| Failure(format!("attach: {e:?}")))?;
    let mut refs = vec![(0, 0); queues];
    ensure(front.dev.ring_refs(&mut refs) == queues, || {
        "ring references missing".into()
    })?;
    let channels: Vec<(u32, u32)> = front.events.ports.clone();
    let mut nodes = Vec::new();
    params
        .write_nodes(&refs, &channels, |k, val| {
            nodes.push((format!("{fe}/{k}"), val.to_owned()));
            Ok::<(), ()>(())
        })
        .map_err(|e| Failure(format!("frontend nodes: {e:?}")))?;
    let published: Vec<String> = nodes
        .iter()
        .map(|(k, _)| k.trim_start_matches(fe).to_owned())
        .collect();
    if v.rss && features.ctrl_ring {
        let port = front
            .events
            .channels
            .bind_unbound(0)
            .context("allocate an event channel")?;
        front.events.ctrl_port = Some(port);
        let gref = front
            .attach_control()
            .map_err(|e| Failure(format!("control ring: {e}")))?;
        ControlRing::write_nodes(gref, port, |k, val| {
            nodes.push((format!("{fe}/{k}"), val.to_owned()));
            Ok::<(), ()>(())
        })
        .map_err(|()| Failure("control ring nodes".into()))?;
    }
    if queues == 1 {
        ensure(
            !published.iter().any(|k| k.contains("multi-queue"))
                && published.iter().any(|k| k == "/event-channel"),
            || format!("one queue, one channel expected; published {published:?}"),
        )?;
    }
    nodes.push((
        format!("{fe}/state"),
        XenbusState::Connected.as_str().into(),
    ));
    store.write_all(&nodes)?;
    store.write(&format!("{be}/hotplug-status"), "connected")?;
    store.expect_state("backend", be, XenbusState::Connected, CONNECT_TIMEOUT)?;
    front.with_io(|dev, io| dev.connected(io));
    front.dev.set_backend_state(XenbusState::Connected);
    Ok(params)
}

#[allow(clippy::too_many_arguments)]
fn connected_session(
    cx: &mut Context,
    store: &mut Store,
    fe: &str,
    be: &str,
    v: &Variant,
    vif: &str,
    features: &BackendFeatures,
    front: &mut NetFront<'_, '_>,
) -> Outcome {
    let started = Instant::now();
    let params = connect(store, fe, be, v, features, front)?;
    cx.duration("connect", started.elapsed(), "ms");
    let queues = params.queues as usize;
    cx.text(
        "negotiated",
        &format!(
            "{queues} queue(s), split channels {}, sg {}, csum4 {}, gso4 {}, mtu {}",
            params.split_event_channels as u8,
            params.sg as u8,
            params.csum_ipv4 as u8,
            params.gso_tcpv4 as u8,
            params.mtu
        ),
    );

    sh("ip", &["link", "set", vif, "up"])?;
    let plain = PacketSocket::open(vif, ETHERTYPE_TEST).context("open a packet socket")?;
    let ipv4 = PacketSocket::open(vif, ETHERTYPE_IPV4).context("open a packet socket")?;
    let vif_rx_before = counter(vif, "rx_packets")?;
    let mut out = Collected::default();

    // 1. Frames from the core out of the vif: every size, 1-3 fragments, spread over queues.
    let sizes: Vec<usize> = (60..=1514).step_by(v.size_step).collect();
    let started = Instant::now();
    let mut tag = 0u64;
    for batch in sizes.chunks(BATCH) {
        let mut want = Vec::new();
        out.completions.clear();
        for (slot, &len) in batch.iter().enumerate() {
            let frame = plain_frame([0xff; 6], MAC, len, tag as u32);
            let pieces = 1 + (len % 3);
            submit(
                front,
                tag as usize % queues,
                slot,
                &frame,
                pieces,
                TxOffload::default(),
                tag,
            )?;
            want.push(frame);
            tag += 1;
        }
        let n = batch.len();
        pump_until(front, &mut out, "transmit completions", |o| {
            o.completions.len() >= n
        })?;
        for c in &out.completions {
            ensure(c.status == TxStatus::Ok, || format!("completion {c:?}"))?;
        }
        expect_frames(&plain, want, MAC, |_| Ok(()), "frames sent by the core")?;
    }
    let tx_time = started.elapsed();
    let tx_frames = sizes.len();
    cx.duration(&format!("{tx_frames} frames tx"), tx_time, "ms");
    let vif_rx_after = counter(vif, "rx_packets")?;
    ensure(vif_rx_after >= vif_rx_before + tx_frames as u64, || {
        format!("{vif} rx_packets went from {vif_rx_before} to {vif_rx_after}")
    })?;

    // 2. Frames dom0 sends into the core: every size.
    let started = Instant::now();
    out.received.clear();
    let mut others = 0;
    for batch in sizes.chunks(BATCH) {
        let mut want: Vec<Vec<u8>> = Vec::new();
        for &len in batch {
            let frame = plain_frame(MAC, PEER_MAC, len, tag as u32);
            plain.send(&frame).context("send on the vif")?;
            want.push(frame);
            tag += 1;
        }
        let is_ours = |d: &[u8]| d.len() >= 14 && d[6..12] == PEER_MAC && d[12..14] == [0x88, 0xb5];
        pump_until(front, &mut out, "frames sent by dom0", |o| {
            o.received.iter().filter(|r| is_ours(&r.data)).count() >= want.len()
        })?;
        for r in out.received.drain(..) {
            if !is_ours(&r.data) {
                others += 1;
                continue;
            }
            let Some(i) = want.iter().position(|w| *w == r.data) else {
                return Err(Failure(format!(
                    "a {}-byte frame from dom0 arrived damaged or twice",
                    r.data.len()
                )));
            };
            want.swap_remove(i);
            ensure(r.cast == Cast::Unicast, || format!("cast {:?}", r.cast))?;
        }
        ensure(want.is_empty(), || {
            format!("{} frames from dom0 missing", want.len())
        })?;
    }
    cx.duration(&format!("{tx_frames} frames rx"), started.elapsed(), "ms");

    // 3. Checksum offload on transmit: both checksums asked for, sent blank; dom0 sees them
    // partial (csum_blank) or complete (computed by the core) and completes/verifies them.
    let payloads: Vec<usize> = (0..=1460).step_by(9 * v.size_step).collect();
    let (mut partial, mut complete) = (0u32, 0u32);
    for batch in payloads.chunks(BATCH) {
        let mut want = Vec::new();
        out.completions.clear();
        for (slot, &payload) in batch.iter().enumerate() {
            let good = tcp4_frame(
                PEER_MAC, MAC, FRONT_IP, PEER_IP, 40000, 5001, tag as u32, payload, tag as u16,
            );
            let mut blank = good.clone();
            blank[24..26].copy_from_slice(&[0, 0]);
            blank[50..52].copy_from_slice(&[0xde, 0xad]);
            let offload = TxOffload {
                checksum: TxChecksum {
                    ipv4_header: true,
                    tcp: true,
                    udp: false,
                },
                ..TxOffload::default()
            };
            let pieces = if payload < 40 { 1 } else { 2 + payload % 2 };
            submit(
                front,
                tag as usize % queues,
                slot,
                &blank,
                pieces,
                offload,
                tag,
            )?;
            want.push(good);
            tag += 1;
        }
        let n = batch.len();
        pump_until(front, &mut out, "checksum completions", |o| {
            o.completions.len() >= n
        })?;
        expect_frames(
            &ipv4,
            want,
            MAC,
            |f| {
                if !ipv4_header_ok(f) {
                    return Err("IPv4 header checksum wrong".into());
                }
                match check_tcp4_checksum(f) {
                    Some(ChecksumForm::Partial) => partial += 1,
                    Some(ChecksumForm::Complete) => complete += 1,
                    None => {
                        return Err("TCP checksum neither complete nor a correct partial".into())
                    }
                }
                Ok(())
            },
            "checksum-offloaded frames",
        )?;
    }
    cx.figure("tcp checksums checked in dom0", payloads.len() as f64, "");
    cx.text(
        "tcp checksums",
        &format!("{partial} partial (csum_blank) + {complete} complete"),
    );
    if params.csum_ipv4 {
        ensure(partial as usize == payloads.len(), || {
            format!("checksum offload negotiated but {complete} arrived complete")
        })?;
    }

    // 4. Receive checksums: dom0 sends good, bad-TCP and bad-IPv4-header frames; the core must
    // never call a bad checksum good.
    out.received.clear();
    let mut sent = Vec::new();
    for (i, fault) in [0u8, 1, 2, 0, 1, 2].into_iter().enumerate() {
        let mut f = tcp4_frame(
            MAC,
            PEER_MAC,
            PEER_IP,
            FRONT_IP,
            5001,
            40000,
            i as u32,
            100 + 250 * i,
            0x7000 + i as u16,
        );
        match fault {
            1 => f[51] ^= 0x55,
            2 => f[25] ^= 0x55,
            _ => {}
        }
        ipv4.send(&f).context("send on the vif")?;
        sent.push((f, fault));
    }
    let is_ours = |d: &[u8]| d.len() >= 34 && d[6..12] == PEER_MAC && d[12..14] == [8, 0];
    pump_until(front, &mut out, "checksum test frames", |o| {
        o.received.iter().filter(|r| is_ours(&r.data)).count() >= sent.len()
    })?;
    let mut reported = Vec::new();
    for r in out.received.drain(..).filter(|r| is_ours(&r.data)) {
        let Some((_, fault)) = sent.iter().find(|(f, _)| *f == r.data) else {
            return Err(Failure("a TCP frame from dom0 arrived damaged".into()));
        };
        let c = r.checksum;
        match fault {
            0 => ensure(c.ipv4_header == Some(true) && c.tcp != Some(false), || {
                format!("good frame reported {c:?}")
            })?,
            1 => ensure(c.ipv4_header == Some(true) && c.tcp != Some(true), || {
                format!("bad TCP checksum reported {c:?}")
            })?,
            _ => ensure(c.ipv4_header == Some(false), || {
                format!("bad IPv4 header checksum reported {c:?}")
            })?,
        }
        reported.push(format!("{fault}:{:?}/{:?}", c.ipv4_header, c.tcp));
    }
    cx.log(format!(
        "receive checksums (fault: ipv4 header/tcp): {}",
        reported.join(" ")
    ));

    // 4b. A larger MTU: frames up to MTU + 14 both ways, several pages each.
    if let Some(mtu) = v.mtu {
        ensure(params.mtu == mtu, || {
            format!(
                "the toolstack's mtu {mtu}, the core negotiated {}",
                params.mtu
            )
        })?;
        super::net_checks::jumbo(cx, front, vif, &plain, mtu, &mut tag)?;
    }

    // 5. GSO both ways, when negotiated.
    if params.gso_tcpv4 {
        super::net_checks::gso(cx, front, vif, &mut tag)?;
    }

    // 6. Receive side scaling through the control ring.
    if front.ctrl.attached() {
        super::net_checks::rss(cx, front, &ipv4, queues)?;
    }

    // 7. A reconnect with traffic flowing.
    if v.reconnect {
        super::net_checks::reconnect(cx, store, fe, be, v, front, &plain, &mut tag)?;
    }

    let c = front.dev.counters();
    cx.figure(
        "frames verified",
        (2 * tx_frames + payloads.len() + 6) as f64,
        "",
    );
    cx.figure("dom0 frames also received", f64::from(others), "");
    cx.figure("tx copy-free", c.tx_copy_free as f64, "");
    cx.figure("tx header-copied", c.tx_header_copied as f64, "");
    cx.figure("tx copied", c.tx_copied as f64, "");
    ensure(c.bad_responses == 0, || {
        format!("{} bad responses: {:?}", c.bad_responses, front.events.log)
    })?;
    for q in 0..queues {
        let qc = front.dev.queue(q).map(|q| q.counters()).unwrap_or_default();
        ensure(qc.tx.packets() > 0, || format!("queue {q} sent nothing"))?;
    }

    // Disconnect: every packet completed, every grant back.
    sh("ip", &["link", "set", vif, "down"])?;
    let took = store.disconnect(fe, be, CONNECT_TIMEOUT)?;
    cx.duration("disconnect", took, "ms");
    let mut aborted = 0;
    front.with_io(|dev, io| dev.disconnect(io, |_| aborted += 1));
    ensure(front.with_ctrl(|c, io| c.disconnect(io)), || {
        "a control ring grant is still mapped".into()
    })?;
    ensure(aborted == 0, || {
        format!("{aborted} sends aborted at disconnect")
    })?;
    Ok(())
}
