//! The network core through xenpci-core's xenbus frontend state machine against the model's
//! xenstored and netback: the nodes published, the backend connecting from them, traffic on
//! every queue, the link following the backend, and the close returning every grant.

mod net_support;

use net_support::*;
use xen_abi::xenbus::XenbusState;
use xen_ring::RingMemory;
use xen_sim::netback::{NetFeatures, QueueRefs, RxMeta};
use xen_sim::StoreStream;
use xennet_core::negotiate::{FeatureError, NodeError};
use xennet_core::{
    BackendFeatures, FrontendConfig, Io, LinkState, NetConfig, RingPages, TxOffload, TxStatus,
};
use xenpci_core::xenbus::{
    execute, format_fixed, read_backend_state, FrontendDriver, FrontendPaths, FrontendStore,
    Handshake,
};
use xenpci_core::xenstore::XsConnection;

const FRONT: &str = "/local/domain/1/device/vif/0";
const BACK: &str = "/local/domain/0/backend/vif/1/0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VifError {
    Feature(FeatureError),
    Attach,
    Store,
}

/// The shell's part: what the handshake's steps call.
struct Vif<'a> {
    h: &'a mut Harness,
}

impl FrontendDriver for Vif<'_> {
    type Error = VifError;

    fn on_backend_init_wait(
        &mut self,
        store: &mut dyn FrontendStore,
    ) -> Result<XenbusState, VifError> {
        let h = &mut *self.h;
        let feat = BackendFeatures::read_from(store).map_err(VifError::Feature)?;
        // A redone transaction publishes the same rings again.
        if h.front.queue(0).and_then(|q| q.ring_refs()).is_none() {
            let params = h
                .front
                .negotiate(&h.cfg, &feat)
                .map_err(VifError::Feature)?;
            let mut pages = Vec::new();
            for _ in 0..params.queues {
                let tx = (RingMemory::allocate(0).unwrap(), h.xen.alloc_page());
                let rx = (RingMemory::allocate(0).unwrap(), h.xen.alloc_page());
                h.rings.push((tx.0.clone(), tx.1));
                h.rings.push((rx.0.clone(), rx.1));
                pages.push(RingPages { tx, rx });
                let t = h.alloc_port();
                let r = if params.split_event_channels {
                    h.alloc_port()
                } else {
                    t
                };
                h.ev.ports.push((t, r));
            }
            let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
            h.front
                .attach(pages, &mut io)
                .map_err(|_| VifError::Attach)?;
            h.ring_to_sim();
        }
        let params = h.front.params().unwrap();
        let mut refs = [(0, 0); QUEUES];
        let n = h.front.ring_refs(&mut refs);
        let channels: Vec<(u32, u32)> = h.ev.ports.clone();
        params
            .publish(&refs[..n], &channels, store)
            .map_err(|e| match e {
                NodeError::Shape | NodeError::Store(_) => VifError::Store,
            })?;
        Ok(XenbusState::Connected)
    }

    fn on_backend_connected(&mut self, _store: &mut dyn FrontendStore) -> Result<(), VifError> {
        let h = &mut *self.h;
        let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        h.front.connected(&mut io);
        h.front.set_backend_state(XenbusState::Connected);
        Ok(())
    }

    fn on_backend_closing(&mut self) -> Result<(), VifError> {
        self.h.front.set_backend_state(XenbusState::Closing);
        Ok(())
    }

    fn on_backend_closed(&mut self) {
        let h = &mut *self.h;
        let mut io = Io::new(&mut h.grants, &mut h.ev, &mut h.mem);
        h.front.disconnect(&mut io, |_| {});
        for (t, r) in h.ev.ports.drain(..) {
            use xenpci_core::evtchn::EventChannelOps;
            for p in if t == r { vec![t] } else { vec![t, r] } {
                let _ = h
                    .xen
                    .evtchn_ops()
                    .close(&xen_abi::event_channel::EvtchnClose { port: p });
            }
        }
        h.rings.clear();
    }
}

fn read(h: &Harness, node: &str) -> String {
    String::from_utf8(h.xen.dom0().xs_read(&format!("{FRONT}/{node}")).unwrap()).unwrap()
}

fn set_backend(h: &Harness, s: XenbusState) {
    h.xen
        .dom0()
        .xs_write(&format!("{BACK}/state"), s.as_u32().to_string().as_bytes())
        .unwrap();
}

struct Front {
    xs: XsConnection,
    t: StoreStream,
    paths: FrontendPaths,
    hs: Handshake,
}

impl Front {
    fn step(&mut self, h: &mut Harness) {
        let b = read_backend_state(&mut self.xs, &mut self.t, &self.paths).unwrap();
        let plan = self.hs.on_backend(b);
        assert_eq!(plan.error, None);
        execute(
            &mut self.hs,
            &plan,
            &mut self.xs,
            &mut self.t,
            &self.paths,
            &mut Vif { h },
        )
        .unwrap();
    }
}

fn handshake(features: NetFeatures) {
    let mut h = Harness::unconnected(features, FrontendConfig::default(), NetConfig::default());
    let dom0 = h.xen.dom0();
    // The toolstack's part.
    dom0.xs_mkdir(BACK).unwrap();
    dom0.xs_set_perms(BACK, &["n0", "r1"]).unwrap();
    dom0.xs_write(&format!("{BACK}/frontend"), FRONT.as_bytes())
        .unwrap();
    dom0.xs_write(&format!("{BACK}/frontend-id"), b"1").unwrap();
    dom0.xs_write(&format!("{FRONT}/backend"), BACK.as_bytes())
        .unwrap();
    dom0.xs_write(&format!("{FRONT}/backend-id"), b"0").unwrap();
    dom0.xs_write(&format!("{FRONT}/state"), b"1").unwrap();
    h.back.advertise(BACK, FRONT).unwrap();
    set_backend(&h, XenbusState::InitWait);

    let mut f = Front {
        xs: XsConnection::new(),
        t: h.xen.store_stream(),
        paths: FrontendPaths {
            frontend: format_fixed(format_args!("{FRONT}")).unwrap(),
            backend: format_fixed(format_args!("{BACK}")).unwrap(),
        },
        hs: Handshake::new(),
    };
    let plan = f.hs.start();
    execute(
        &mut f.hs,
        &plan,
        &mut f.xs,
        &mut f.t,
        &f.paths,
        &mut Vif { h: &mut h },
    )
    .unwrap();
    f.step(&mut h);
    assert_eq!(read(&h, "state"), "4");
    assert_eq!(h.front.link(), LinkState::Down);

    // What the frontend published.
    let params = h.front.params().unwrap();
    let queues = params.queues as usize;
    for (node, v) in [
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-gso-tcpv6", "1"),
        ("feature-no-csum-offload", "0"),
        ("feature-ipv6-csum-offload", "1"),
    ] {
        assert_eq!(read(&h, node), v, "{node}");
    }
    let prefix = |q: usize| {
        if queues > 1 {
            assert_eq!(read(&h, "multi-queue-num-queues"), queues.to_string());
            format!("queue-{q}/")
        } else {
            String::new()
        }
    };
    // The backend connects from the published nodes alone.
    let mut qrefs = Vec::new();
    for q in 0..queues {
        let p = prefix(q);
        let num = |n: &str| read(&h, &format!("{p}{n}")).parse::<u32>().unwrap();
        let (tx, rx) = if params.split_event_channels {
            (num("event-channel-tx"), num("event-channel-rx"))
        } else {
            let e = num("event-channel");
            (e, e)
        };
        let btx = dom0.bind_interdomain(1, tx).unwrap();
        let brx = if rx == tx {
            btx
        } else {
            dom0.bind_interdomain(1, rx).unwrap()
        };
        qrefs.push(QueueRefs {
            tx_ring: num("tx-ring-ref"),
            rx_ring: num("rx-ring-ref"),
            tx_port: Some(btx),
            rx_port: Some(brx),
        });
    }
    h.back.connect(&qrefs).unwrap();
    set_backend(&h, XenbusState::Connected);
    f.step(&mut h);
    assert_eq!(h.front.link(), LinkState::Up);

    // Traffic on every queue, both ways.
    for q in 0..queues {
        let fr = frame(false, true, 1000, q as u8, false);
        assert_eq!(
            h.send(q, q as u64, &fr, TxOffload::default()).status,
            TxStatus::Ok
        );
        h.back.inject(q, &fr, RxMeta::default()).unwrap();
        h.run();
        assert_eq!(h.received.pop().unwrap().data, fr);
    }
    assert_eq!(h.back.take_sent().len(), queues);

    // The backend closes: the frontend releases everything.
    h.back.disconnect();
    set_backend(&h, XenbusState::Closing);
    f.step(&mut h);
    assert_eq!(read(&h, "state"), "6");
    assert_eq!(h.front.link(), LinkState::Down);
    assert_eq!(h.grants_in_use(), 0);
}

#[test]
fn handshake_with_four_queues_and_split_channels() {
    handshake(NetFeatures::default());
}

#[test]
fn handshake_with_one_queue_and_one_channel() {
    handshake(NetFeatures::bare());
}

#[test]
fn a_backend_without_rx_copy_is_refused() {
    let mut h = Harness::unconnected(
        NetFeatures {
            rx_copy: false,
            ..NetFeatures::default()
        },
        FrontendConfig::default(),
        NetConfig::default(),
    );
    let feat = parse_features(&h.back);
    assert_eq!(
        h.front.negotiate(&h.cfg, &feat),
        Err(FeatureError::NoRxCopy)
    );
}
