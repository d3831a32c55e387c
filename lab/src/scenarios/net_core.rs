//! `net-core` and `net-one-queue`: the driver's own core, xennet-core, against the real
//! xen-netback, with a dom0-side `AF_PACKET` peer on the backend's `vif0.N` that generates and
//! checks the traffic.

use std::time::{Duration, Instant};

use xen_abi::xenbus::XenbusState;
use xennet_core::ctrl::MAX_TABLE;
use xennet_core::negotiate::Side;
use xennet_core::{
    BackendFeatures, Cast, ControlRing, FeatureError, Fragment, FrontendConfig, FrontendParams,
    HashTypes, NetConfig, QueueState, RssConfig, RssHash, RssHashType, RxChecksum, RxVerdict, Tag,
    TxChecksum, TxCompletion, TxOffload, TxPacket, TxStatus,
};

use super::net_frames::{
    check_tcp4_checksum, ipv4_header_ok, plain_frame, tcp4_checksum_ok, tcp4_frame,
    tcp4_pseudo_seed, toeplitz_reference, ChecksumForm, ETHERTYPE_IPV4, ETHERTYPE_TEST, FRONT_IP,
    PEER_IP, TCP4_HEADERS,
};
use super::net_smoke::{counter, mac_text};
use super::toolstack::{device_dirs, remove_device, sh, wait_path, Store};
use crate::platform::evtchn::EventChannels;
use crate::platform::gntalloc::Gntalloc;
use crate::platform::net::{NetFront, POOL_PAGES};
use crate::platform::net_vnet::{VnetHeader, VnetSocket, VNET_GSO_TCPV4, VNET_NEEDS_CSUM};
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
    default: false,
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
    default: false,
    timeout: Duration::from_secs(180),
    run: run_one_queue,
};

/// The frontend's MAC address.
const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x00, 0x01, 0x01];
/// The MAC dom0's peer sends from (vif's own default address).
const PEER_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];
/// How long the backend may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a batch of frames may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames in flight at once.
const BATCH: usize = 16;
/// Data pages per frame in flight (up to three fragments, each in its own page).
const PAGES_PER_FRAME: usize = 3;

struct Variant {
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
            mtu: Some(JUMBO_MTU),
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
fn submit(
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
fn expect_frames(
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
fn connect(
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
        jumbo(cx, front, vif, &plain, mtu, &mut tag)?;
    }

    // 5. GSO both ways, when negotiated.
    if params.gso_tcpv4 {
        gso(cx, front, vif, &mut tag)?;
    }

    // 6. Receive side scaling through the control ring.
    if front.ctrl.attached() {
        rss(cx, front, &ipv4, queues)?;
    }

    // 7. A reconnect with traffic flowing.
    if v.reconnect {
        reconnect(cx, store, fe, be, v, front, &plain, &mut tag)?;
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
fn rss(
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
fn reconnect(
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
const JUMBO_MTU: u32 = 9000;

/// Frames longer than a page (up to `mtu` + 14 bytes) both ways: the core's sends in
/// page-sized fragments, dom0's sends received over several slots (`NETRXF_more_data`).
fn jumbo(
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
fn gso(cx: &mut Context, front: &mut NetFront<'_, '_>, vif: &str, tag: &mut u64) -> Outcome {
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
