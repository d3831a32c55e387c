extern crate std;

use std::prelude::rust_2021::*;
use std::vec;

use proptest::prelude::*;
use xen_abi::xenbus::{ParseXenbusStateError, XenbusState};

use super::{put, store};
use crate::xenbus::*;
use crate::xenstore::{TxId, XsError};

#[test]
fn vdev_decoding_table() {
    use VdevScheme::*;
    let ext = VDEV_EXTENDED;
    // (raw, scheme, disk, partition, name)
    let table: &[(u32, VdevScheme, u32, u32, &str)] = &[
        (51712, Xvd, 0, 0, "xvda"),
        (51713, Xvd, 0, 1, "xvda1"),
        (51728, Xvd, 1, 0, "xvdb"),
        (51967, Xvd, 15, 15, "xvdp15"),
        (768, Hd, 0, 0, "xvda"),
        (769, Hd, 0, 1, "xvda1"),
        (832, Hd, 1, 0, "xvdb"),
        (5632, Hd, 2, 0, "xvdc"),
        (5696, Hd, 3, 0, "xvdd"),
        (91 << 8 | 64 | 63, Hd, 19, 63, "xvdt63"),
        (2048, Sd, 0, 0, "xvda"),
        (2064, Sd, 1, 0, "xvdb"),
        (2065, Sd, 1, 1, "xvdb1"),
        (65 << 8, Sd, 16, 0, "xvdq"),
        (71 << 8 | 0xf0, Sd, 127, 0, "xvddx"),
        (128 << 8, Sd, 128, 0, "xvddy"),
        (135 << 8 | 0xff, Sd, 255, 15, "xvdiv15"),
        (ext, XvdExtended, 0, 0, "xvda"),
        (ext | 26 << 8, XvdExtended, 26, 0, "xvdaa"),
        (ext | 701 << 8 | 3, XvdExtended, 701, 3, "xvdzz3"),
        (ext | 702 << 8, XvdExtended, 702, 0, "xvdaaa"),
        (
            ext | 0xfffff << 8 | 255,
            XvdExtended,
            0xfffff,
            255,
            "xvdbgqcv255",
        ),
    ];
    for &(raw, scheme, disk, partition, name) in table {
        let v = Vdev::decode(raw).unwrap();
        assert_eq!(
            v,
            Vdev {
                raw,
                scheme,
                disk,
                partition
            },
            "{raw}"
        );
        assert_eq!(v.name().unwrap(), name, "{raw}");
        let text = std::format!("{raw}");
        assert_eq!(Vdev::parse(text.as_bytes()), Ok(v));
    }
}

#[test]
fn vdev_errors() {
    assert_eq!(Vdev::decode(0), Err(VdevError::UnknownMajor(0)));
    assert_eq!(Vdev::decode(1 << 8), Err(VdevError::UnknownMajor(1)));
    assert_eq!(Vdev::decode(203 << 8), Err(VdevError::UnknownMajor(203)));
    assert_eq!(Vdev::decode(1 << 29), Err(VdevError::ReservedBits));
    assert_eq!(Vdev::decode(u32::MAX), Err(VdevError::ReservedBits));
    for bad in [&b""[..], b"abc", b"-1", b" 768", b"99999999999"] {
        assert_eq!(Vdev::parse(bad), Err(VdevError::NotANumber), "{bad:?}");
    }
}

proptest! {
    #[test]
    fn vdev_decode_never_panics(raw in any::<u32>()) {
        if let Ok(v) = Vdev::decode(raw) {
            prop_assert!(v.name().is_ok());
        }
    }

    #[test]
    fn extended_vdev_round_trips(disk in 0u32..(1 << 20), part in 0u32..256) {
        let v = Vdev::decode(VDEV_EXTENDED | disk << 8 | part).unwrap();
        prop_assert_eq!((v.disk, v.partition), (disk, part));
    }

    #[test]
    fn xvd_and_sd_agree_on_disk_index(disk in 0u32..16, part in 0u32..16) {
        let x = Vdev::decode(202 << 8 | disk << 4 | part).unwrap();
        let s = Vdev::decode(8 << 8 | disk << 4 | part).unwrap();
        prop_assert_eq!((x.disk, x.partition), (s.disk, s.partition));
        prop_assert_eq!(x.name().unwrap(), s.name().unwrap());
    }
}

#[test]
fn backend_paths_are_validated() {
    let ok = [
        &b"/local/domain/0/backend/vbd/5/51712"[..],
        b"/local/domain/0/backend/qdisk/5/768",
    ];
    for p in ok {
        assert_eq!(validate_backend_path(p, 0), Ok(()), "{p:?}");
    }
    assert_eq!(
        validate_backend_path(b"/local/domain/12/backend/vif/5/0", 12),
        Ok(())
    );
    let bad = [
        &b"/local/domain/1/backend/vbd/5/51712"[..],
        b"/local/domain/0/backend",
        b"/local/domain/0/backend/",
        b"/local/domain/0/backend/vbd//1",
        b"/local/domain/0/backend/vbd/../../../5/device",
        b"/local/domain/0/backend/vbd/./x",
        b"/local/domain/0/backend/vbd/5/1/",
        b"/local/domain/00/backend/vbd/5/1",
        b"local/domain/0/backend/vbd/5/1",
        b"/local/domain/0/backendx/vbd",
        b"/local/domain/0/backend/vbd/5 1",
        b"/local/domain/0/backend/vbd/\xff",
        b"/local/domain/5/device/vbd/51712",
    ];
    for p in bad {
        assert_eq!(
            validate_backend_path(p, 0),
            Err(ChildError::BackendOutsideDomain),
            "{p:?}"
        );
    }
}

#[test]
fn macs_and_scsi_addresses() {
    assert_eq!(
        parse_mac(b"00:16:3e:0A:bB:ff"),
        Some([0, 0x16, 0x3e, 0x0a, 0xbb, 0xff])
    );
    for bad in [
        &b"00:16:3e:0a:bb"[..],
        b"00-16-3e-0a-bb-ff",
        b"00:16:3e:0a:bb:fg",
        b"00:16:3e:0a:bb:ff:",
        b"0:016:3e:0a:bb:ff",
        b"+0:16:3e:0a:bb:ff",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad:?}");
    }
    assert_eq!(
        ScsiAddress::parse(b"1:0:2:3"),
        Some(ScsiAddress {
            host: 1,
            channel: 0,
            target: 2,
            lun: 3
        })
    );
    for bad in [&b"1:0:2"[..], b"1:0:2:3:4", b"1:0:x:3", b"", b"1::2:3"] {
        assert_eq!(ScsiAddress::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn child_ids() {
    assert_eq!(parse_child_id(b"0"), Some(0));
    assert_eq!(parse_child_id(b"51712"), Some(51712));
    assert_eq!(parse_child_id(b"0768"), None);
    assert_eq!(parse_child_id(b"abc"), None);
    assert_eq!(parse_child_id(b""), None);
    assert_eq!(parse_child_id(b"4294967296"), None);
}

fn vbd(id: u32, backend_id: &str, backend: &str, state: &str, vdev: &str) -> Vec<(String, String)> {
    let dir = std::format!("device/vbd/{id}");
    vec![
        (std::format!("{dir}/backend-id"), backend_id.into()),
        (std::format!("{dir}/backend"), backend.into()),
        (std::format!("{dir}/state"), state.into()),
        (std::format!("{dir}/virtual-device"), vdev.into()),
    ]
}

fn put_owned(xs: &mut super::Conn, pipe: &mut super::fake::Pipe, nodes: &[(String, String)]) {
    let refs: Vec<(&str, &str)> = nodes
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    put(xs, pipe, &refs);
}

/// What enumeration reported, owned.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
enum Found {
    Child(ChildInfo),
    Bad(DeviceClass, Vec<u8>, ChildError),
    Unknown(Vec<u8>),
}

fn enumerate_all(xs: &mut super::Conn, pipe: &mut super::fake::Pipe) -> Vec<Found> {
    let mut class_buf = [0; 4096];
    let mut bufs = Box::new(ReadBuffers::new());
    let mut out = Vec::new();
    enumerate(xs, pipe, &mut class_buf, &mut bufs, |d| {
        out.push(match d {
            Discovered::Child(c) => Found::Child(c),
            Discovered::BadChild { class, name, error } => Found::Bad(class, name.to_vec(), error),
            Discovered::UnknownClass(n) => Found::Unknown(n.to_vec()),
        })
    })
    .unwrap();
    out
}

#[test]
fn enumeration_with_malformed_nodes() {
    let (mut xs, mut pipe) = store();
    let be = "/local/domain/0/backend";
    put_owned(
        &mut xs,
        &mut pipe,
        &vbd(51712, "0", &std::format!("{be}/vbd/7/51712"), "1", "51712"),
    );
    // Backend in another domain than backend-id says.
    put_owned(
        &mut xs,
        &mut pipe,
        &vbd(
            51728,
            "0",
            "/local/domain/3/backend/vbd/7/51728",
            "1",
            "51728",
        ),
    );
    // Malformed backend-id, garbage state, bad vdev, reserved backend-id.
    put_owned(
        &mut xs,
        &mut pipe,
        &vbd(
            51744,
            "zero",
            &std::format!("{be}/vbd/7/51744"),
            "1",
            "51744",
        ),
    );
    put_owned(
        &mut xs,
        &mut pipe,
        &vbd(51760, "0", &std::format!("{be}/vbd/7/51760"), "9", "51760"),
    );
    put_owned(
        &mut xs,
        &mut pipe,
        &vbd(51776, "0", &std::format!("{be}/vbd/7/51776"), "1", "12345"),
    );
    put_owned(
        &mut xs,
        &mut pipe,
        &vbd(
            51792,
            "32752",
            &std::format!("{be}/vbd/7/51792"),
            "1",
            "51792",
        ),
    );
    put(
        &mut xs,
        &mut pipe,
        &[
            // A name that is no id.
            ("device/vbd/xvda/backend", "x"),
            // A vbd missing its backend.
            ("device/vbd/768/backend-id", "0"),
            // Good vif with a mac, and one with a bad mac.
            ("device/vif/0/backend-id", "0"),
            ("device/vif/0/backend", "/local/domain/0/backend/vif/7/0"),
            ("device/vif/0/handle", "0"),
            ("device/vif/0/mac", "00:16:3e:01:02:03"),
            ("device/vif/0/state", "4"),
            ("device/vif/1/backend-id", "0"),
            ("device/vif/1/backend", "/local/domain/0/backend/vif/7/1"),
            ("device/vif/1/mac", "00:16:3e:01:02"),
            // vscsi with two devices listed by its backend, one malformed.
            ("device/vscsi/0/backend-id", "0"),
            (
                "device/vscsi/0/backend",
                "/local/domain/0/backend/vscsi/7/0",
            ),
            (
                "/local/domain/0/backend/vscsi/7/0/vscsi-devs/dev-0/v-dev",
                "0:0:1:0",
            ),
            (
                "/local/domain/0/backend/vscsi/7/0/vscsi-devs/dev-1/v-dev",
                "0:0:x:0",
            ),
            (
                "/local/domain/0/backend/vscsi/7/0/vscsi-devs/dev-2/v-dev",
                "0:0:2:5",
            ),
            ("device/console/0/backend-id", "0"),
        ],
    );
    let found = enumerate_all(&mut xs, &mut pipe);
    let mut luns = [ScsiAddress::default(); MAX_VSCSI_LUNS];
    luns[0] = ScsiAddress {
        host: 0,
        channel: 0,
        target: 1,
        lun: 0,
    };
    luns[1] = ScsiAddress {
        host: 0,
        channel: 0,
        target: 2,
        lun: 5,
    };
    let path = |s: &str| PathBuf::try_from_str(s).unwrap();
    let expected = vec![
        Found::Unknown(b"console".to_vec()),
        Found::Bad(
            DeviceClass::Vbd,
            b"xvda".to_vec(),
            ChildError::Malformed { field: Field::Id },
        ),
        Found::Child(ChildInfo {
            class: DeviceClass::Vbd,
            id: 51712,
            backend: path("/local/domain/0/backend/vbd/7/51712"),
            backend_id: 0,
            state: XenbusState::Initialising,
            identity: Identity::Vbd(Vdev::decode(51712).unwrap()),
        }),
        Found::Bad(
            DeviceClass::Vbd,
            b"51728".to_vec(),
            ChildError::BackendOutsideDomain,
        ),
        Found::Bad(
            DeviceClass::Vbd,
            b"51744".to_vec(),
            ChildError::Malformed {
                field: Field::BackendId,
            },
        ),
        Found::Bad(
            DeviceClass::Vbd,
            b"51760".to_vec(),
            ChildError::State(ParseXenbusStateError::UnknownState(9)),
        ),
        Found::Bad(
            DeviceClass::Vbd,
            b"51776".to_vec(),
            ChildError::Vdev(VdevError::UnknownMajor(48)),
        ),
        Found::Bad(
            DeviceClass::Vbd,
            b"51792".to_vec(),
            ChildError::ReservedBackendId(32752),
        ),
        Found::Bad(
            DeviceClass::Vbd,
            b"768".to_vec(),
            ChildError::Store {
                field: Field::Backend,
                error: XsError::Store(xen_abi::xenstore::XsErrno::Enoent),
            },
        ),
        Found::Child(ChildInfo {
            class: DeviceClass::Vif,
            id: 0,
            backend: path("/local/domain/0/backend/vif/7/0"),
            backend_id: 0,
            state: XenbusState::Connected,
            identity: Identity::Vif {
                handle: 0,
                mac: Some([0, 0x16, 0x3e, 1, 2, 3]),
            },
        }),
        Found::Bad(
            DeviceClass::Vif,
            b"1".to_vec(),
            ChildError::Malformed { field: Field::Mac },
        ),
        Found::Child(ChildInfo {
            class: DeviceClass::Vscsi,
            id: 0,
            backend: path("/local/domain/0/backend/vscsi/7/0"),
            backend_id: 0,
            state: XenbusState::Unknown,
            identity: Identity::Vscsi {
                luns,
                count: 2,
                skipped: 1,
            },
        }),
    ];
    // The fake lists in byte order; compare as sets of reports per class order.
    let mut got = found;
    let key = |f: &Found| std::format!("{f:?}");
    got.sort_by_key(key);
    let mut want = expected;
    want.sort_by_key(key);
    assert_eq!(got, want);
}

#[test]
fn missing_device_directory_means_no_children() {
    let (mut xs, mut pipe) = store();
    assert!(enumerate_all(&mut xs, &mut pipe).is_empty());
}

#[test]
fn pdo_descriptions() {
    let info = ChildInfo {
        class: DeviceClass::Vbd,
        id: 51712,
        backend: PathBuf::try_from_str("/local/domain/0/backend/vbd/7/51712").unwrap(),
        backend_id: 0,
        state: XenbusState::Initialising,
        identity: Identity::Vbd(Vdev::decode(51712).unwrap()),
    };
    let pdo = info.pdo();
    assert_eq!(pdo.hardware_id, "XENBUS\\VEN_XP&DEV_VBD&REV_00000001");
    assert_eq!(pdo.compatible_ids[0], "XENBUS\\VEN_XP&DEV_VBD");
    assert_eq!(pdo.compatible_ids[1], "XENBUS\\DEV_VBD");
    assert_eq!(pdo.instance_id, "51712");
    assert_eq!(pdo.location, "Xen PV disk 51712 (xvda)");
    assert_eq!(info.frontend_path(), "device/vbd/51712");

    let vif = ChildInfo {
        class: DeviceClass::Vif,
        id: 1,
        identity: Identity::Vif {
            handle: 1,
            mac: None,
        },
        ..info
    };
    assert_eq!(vif.pdo().hardware_id, "XENBUS\\VEN_XP&DEV_VIF&REV_00000001");
    assert_eq!(vif.pdo().location, "Xen PV network interface 1");
    let scsi = ChildInfo {
        class: DeviceClass::Vscsi,
        id: u32::MAX,
        identity: Identity::Vscsi {
            luns: [ScsiAddress::default(); MAX_VSCSI_LUNS],
            count: 0,
            skipped: 0,
        },
        ..info
    };
    let pdo = scsi.pdo();
    assert_eq!(pdo.hardware_id, "XENBUS\\VEN_XP&DEV_VSCSI&REV_00000001");
    assert_eq!(pdo.instance_id, "4294967295");
    assert_eq!(pdo.location, "Xen PV SCSI host 4294967295");
    // The longest extended disk name still fits the location.
    let big = ChildInfo {
        id: u32::MAX,
        identity: Identity::Vbd(Vdev::decode(VDEV_EXTENDED | 0xfffff << 8 | 255).unwrap()),
        ..info
    };
    assert_eq!(big.pdo().location, "Xen PV disk 4294967295 (xvdbgqcv255)");
}

#[test]
fn fixed_str_never_truncates() {
    let mut s = FixedStr::<4>::new();
    s.push_str("abc").unwrap();
    assert_eq!(s.push_str("de"), Err(CapacityError));
    assert_eq!(s, "abc");
    s.push_str("d").unwrap();
    assert_eq!(s.as_str(), "abcd");
    assert!(format_fixed::<3>(format_args!("{}", 1234)).is_err());
    assert_eq!(FixedStr::<8>::from_printable_ascii(b"a\nb"), None);
    assert_eq!(FixedStr::<2>::from_printable_ascii(b"abc"), None);
}

#[test]
fn read_child_accepts_missing_optional_nodes() {
    let (mut xs, mut pipe) = store();
    put(
        &mut xs,
        &mut pipe,
        &[
            ("device/vbd/768/backend-id", "0"),
            (
                "device/vbd/768/backend",
                "/local/domain/0/backend/vbd/7/768",
            ),
            ("device/vif/3/backend-id", "0"),
            ("device/vif/3/backend", "/local/domain/0/backend/vif/7/3"),
        ],
    );
    let mut bufs = Box::new(ReadBuffers::new());
    let disk = read_child(&mut *xs, &mut pipe, DeviceClass::Vbd, 768, &mut bufs).unwrap();
    assert_eq!(disk.identity, Identity::Vbd(Vdev::decode(768).unwrap()));
    assert_eq!(disk.state, XenbusState::Unknown);
    let nic = read_child(&mut *xs, &mut pipe, DeviceClass::Vif, 3, &mut bufs).unwrap();
    assert_eq!(
        nic.identity,
        Identity::Vif {
            handle: 3,
            mac: None
        }
    );
    let _ = TxId::NONE;
}
