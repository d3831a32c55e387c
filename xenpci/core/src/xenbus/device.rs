//! The children of the bus: device classes, what is read about each child from xenstore, and
//! the description of the PDO the Windows shell creates for it.

use core::fmt::{self, Write};

use xen_abi::types::{DomId, DOMID_FIRST_RESERVED};
use xen_abi::xenbus::{ParseXenbusStateError, XenbusState};

use crate::xenstore::wire::parse_u32;
use crate::xenstore::{TxId, Wait, XsConnection, XsError};

use super::text::{format_fixed, FixedStr};
use super::vdev::{Vdev, VdevError};

/// The longest xenstore path this module builds or accepts for a child (frontend directory,
/// backend directory, or a node under either).
pub const MAX_CHILD_PATH: usize = 160;

/// A path built by this module.
pub type PathBuf = FixedStr<MAX_CHILD_PATH>;

/// The most SCSI targets recorded for one vscsi child; more are counted, not stored.
pub const MAX_VSCSI_LUNS: usize = 16;

/// The revision in the hardware ids: bump when the frontend protocol the drivers speak changes
/// incompatibly, so that an old driver package no longer matches.
pub const HARDWARE_REVISION: u32 = 1;

/// The device classes the bus knows (the names under `device/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceClass {
    /// A virtual block device (`vbd`), driven by xenvbd.
    Vbd,
    /// A virtual network interface (`vif`), driven by xennet.
    Vif,
    /// A paravirtual SCSI host (`vscsi`), driven by xenscsi.
    Vscsi,
}

impl DeviceClass {
    /// Every class, in enumeration order.
    pub const ALL: [DeviceClass; 3] = [DeviceClass::Vbd, DeviceClass::Vif, DeviceClass::Vscsi];

    /// The directory name under `device/`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Vbd => "vbd",
            Self::Vif => "vif",
            Self::Vscsi => "vscsi",
        }
    }

    /// The `DEV_` part of the hardware id.
    pub const fn hardware_name(self) -> &'static str {
        match self {
            Self::Vbd => "VBD",
            Self::Vif => "VIF",
            Self::Vscsi => "VSCSI",
        }
    }

    /// The class named `name`, if known.
    pub fn from_name(name: &[u8]) -> Option<DeviceClass> {
        Self::ALL.into_iter().find(|c| c.name().as_bytes() == name)
    }
}

/// A node read for a child; says which one an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The child's directory name (`device/<class>/<id>`).
    Id,
    /// `backend`.
    Backend,
    /// `backend-id`.
    BackendId,
    /// `state` (the frontend's, or the backend's when reading the backend failed).
    State,
    /// vbd `virtual-device`.
    VirtualDevice,
    /// vif `handle`.
    Handle,
    /// vif `mac`.
    Mac,
    /// The backend's vscsi `vscsi-devs` list or one of its `v-dev` nodes.
    VscsiDevs,
}

/// Why one child could not be described. Only that child is affected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildError {
    /// Reading a node failed.
    Store {
        /// The node.
        field: Field,
        /// The failure.
        error: XsError,
    },
    /// A node's value is malformed (not a number, not printable, too long, …).
    Malformed {
        /// The node.
        field: Field,
    },
    /// `backend` is not under `/local/domain/<backend-id>/backend/`, or contains `..`, empty
    /// components or characters outside the xenstore path alphabet.
    BackendOutsideDomain,
    /// `backend-id` names a reserved domain id.
    ReservedBackendId(u32),
    /// The state node holds no xenbus state.
    State(ParseXenbusStateError),
    /// vbd `virtual-device` is not a disk number.
    Vdev(VdevError),
}

impl From<VdevError> for ChildError {
    fn from(e: VdevError) -> Self {
        ChildError::Vdev(e)
    }
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store { field, error } => write!(f, "reading {field:?}: {error:?}"),
            Self::Malformed { field } => write!(f, "{field:?} is malformed"),
            Self::BackendOutsideDomain => f.write_str("backend path outside the backend domain"),
            Self::ReservedBackendId(id) => write!(f, "backend-id {id} is reserved"),
            Self::State(e) => write!(f, "state: {e}"),
            Self::Vdev(e) => write!(f, "{e}"),
        }
    }
}

/// One SCSI address `host:channel:target:lun` from a vscsi backend's `v-dev` node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScsiAddress {
    /// Host.
    pub host: u32,
    /// Channel.
    pub channel: u32,
    /// Target.
    pub target: u32,
    /// Logical unit.
    pub lun: u32,
}

impl ScsiAddress {
    /// Parses `"h:c:t:l"` (four decimal numbers).
    pub fn parse(text: &[u8]) -> Option<ScsiAddress> {
        let mut parts = text.split(|&b| b == b':');
        let mut next = || parts.next().and_then(parse_u32);
        let address = ScsiAddress {
            host: next()?,
            channel: next()?,
            target: next()?,
            lun: next()?,
        };
        parts_done(parts).then_some(address)
    }
}

fn parts_done<'a>(mut parts: impl Iterator<Item = &'a [u8]>) -> bool {
    parts.next().is_none()
}

/// What identifies a child within its class, beyond its id.
///
/// Held inline (nothing here may allocate), so the vscsi variant is the largest.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A disk.
    Vbd(Vdev),
    /// A network interface.
    Vif {
        /// `handle` (the interface number the backend knows).
        handle: u32,
        /// `mac`, if the toolstack wrote one.
        mac: Option<[u8; 6]>,
    },
    /// A SCSI host.
    Vscsi {
        /// The first [`MAX_VSCSI_LUNS`] devices the backend lists.
        luns: [ScsiAddress; MAX_VSCSI_LUNS],
        /// How many of `luns` are valid.
        count: usize,
        /// Devices listed beyond [`MAX_VSCSI_LUNS`], or whose `v-dev` was malformed.
        skipped: usize,
    },
}

/// Everything read about one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildInfo {
    /// The class.
    pub class: DeviceClass,
    /// The directory name under `device/<class>/`, a decimal number.
    pub id: u32,
    /// The backend's directory (absolute, validated).
    pub backend: PathBuf,
    /// The backend's domain.
    pub backend_id: DomId,
    /// The frontend's `state` node (missing counts as [`XenbusState::Unknown`]).
    pub state: XenbusState,
    /// Class-specific identity.
    pub identity: Identity,
}

/// What the shell needs to create a PDO for a child.
///
/// # Identifier scheme
/// The enumerator is `XENBUS` and the vendor `XP` (the Xen Project):
///
/// - hardware id: `XENBUS\VEN_XP&DEV_<CLASS>&REV_<8 hex digits>` with `<CLASS>` one of `VBD`,
///   `VIF`, `VSCSI` and the revision [`HARDWARE_REVISION`];
/// - compatible ids: `XENBUS\VEN_XP&DEV_<CLASS>`, then `XENBUS\DEV_<CLASS>`;
/// - instance id: the child's id in decimal (unique among the children of one class);
/// - location: `Xen PV disk 51712 (xvda)`, `Xen PV network interface 0`, `Xen PV SCSI host 0`.
///
/// The INF files match the hardware id, so a driver package is bound to one protocol revision;
/// the compatible ids let a generic driver match any revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PdoDescription {
    /// The class.
    pub class: DeviceClass,
    /// The child's id.
    pub instance: u32,
    /// The hardware id.
    pub hardware_id: FixedStr<64>,
    /// The compatible ids, most specific first.
    pub compatible_ids: [FixedStr<64>; 2],
    /// The instance id.
    pub instance_id: FixedStr<16>,
    /// The location text.
    pub location: FixedStr<64>,
}

impl ChildInfo {
    /// The frontend directory, `device/<class>/<id>`.
    pub fn frontend_path(&self) -> PathBuf {
        frontend_path(self.class, self.id)
    }

    /// The PDO description (see [`PdoDescription`] for the scheme).
    pub fn pdo(&self) -> PdoDescription {
        let class = self.class.hardware_name();
        // Every piece below has a bounded length that fits its buffer (the longest hardware id
        // is 38 bytes, the longest location 53), so the fallbacks to an empty string never run.
        let hardware_id = format_fixed(format_args!(
            "XENBUS\\VEN_XP&DEV_{class}&REV_{HARDWARE_REVISION:08X}"
        ))
        .unwrap_or_default();
        let compatible_ids = [
            format_fixed(format_args!("XENBUS\\VEN_XP&DEV_{class}")).unwrap_or_default(),
            format_fixed(format_args!("XENBUS\\DEV_{class}")).unwrap_or_default(),
        ];
        let instance_id = format_fixed(format_args!("{}", self.id)).unwrap_or_default();
        let mut location = FixedStr::<64>::new();
        let _ = match self.identity {
            Identity::Vbd(vdev) => match vdev.name() {
                Ok(name) => write!(location, "Xen PV disk {} ({name})", self.id),
                Err(_) => write!(location, "Xen PV disk {}", self.id),
            },
            Identity::Vif { .. } => write!(location, "Xen PV network interface {}", self.id),
            Identity::Vscsi { .. } => write!(location, "Xen PV SCSI host {}", self.id),
        };
        PdoDescription {
            class: self.class,
            instance: self.id,
            hardware_id,
            compatible_ids,
            instance_id,
            location,
        }
    }
}

/// `device/<class>/<id>`.
pub fn frontend_path(class: DeviceClass, id: u32) -> PathBuf {
    // At most 6 + 5 + 1 + 10 bytes.
    format_fixed(format_args!("device/{}/{id}", class.name())).unwrap_or_default()
}

/// `<dir>/<node>`, or `Malformed` when it does not fit.
pub fn node_path(dir: &[u8], node: &str, field: Field) -> Result<PathBuf, ChildError> {
    let dir = core::str::from_utf8(dir).map_err(|_| ChildError::Malformed { field })?;
    format_fixed(format_args!("{dir}/{node}")).map_err(|_| ChildError::Malformed { field })
}

/// Parses a child's directory name: a decimal `u32` without leading zeros (so one child has
/// exactly one name).
pub fn parse_child_id(name: &[u8]) -> Option<u32> {
    if name.len() > 1 && name[0] == b'0' {
        return None;
    }
    parse_u32(name)
}

/// Whether `b` may appear in a xenstore path component.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'@' | b'.')
}

/// Checks that `backend` is a clean absolute path under `/local/domain/<backend_id>/backend/`
/// with at least one component after `backend`.
pub fn validate_backend_path(backend: &[u8], backend_id: DomId) -> Result<(), ChildError> {
    let mut digits = [0; 10];
    let id = crate::xenstore::wire::format_u32(u32::from(backend_id), &mut digits);
    let rest = backend
        .strip_prefix(b"/local/domain/")
        .and_then(|r| r.strip_prefix(id))
        .and_then(|r| r.strip_prefix(b"/backend/"))
        .ok_or(ChildError::BackendOutsideDomain)?;
    if rest.is_empty() {
        return Err(ChildError::BackendOutsideDomain);
    }
    for component in rest.split(|&b| b == b'/') {
        if component.is_empty()
            || component == b"."
            || component == b".."
            || !component.iter().all(|&b| is_path_byte(b))
        {
            return Err(ChildError::BackendOutsideDomain);
        }
    }
    Ok(())
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff` (hex, either case, two digits each).
pub fn parse_mac(text: &[u8]) -> Option<[u8; 6]> {
    if text.len() != 17 {
        return None;
    }
    let mut mac = [0; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        let at = i * 3;
        if i > 0 && text[at - 1] != b':' {
            return None;
        }
        let hex = |b: u8| (b as char).to_digit(16);
        // Each digit is < 16, so the value fits a byte.
        *byte = (hex(text[at])? * 16 + hex(text[at + 1])?) as u8;
    }
    Some(mac)
}

/// Buffers for reading children: one for the value of a node, one for a directory listing.
/// About 8 KiB; the caller decides where they live.
#[derive(Clone)]
pub struct ReadBuffers {
    /// A node's value.
    pub value: [u8; xen_abi::xenstore::XENSTORE_PAYLOAD_MAX],
    /// A directory listing.
    pub list: [u8; xen_abi::xenstore::XENSTORE_PAYLOAD_MAX],
}

impl ReadBuffers {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        ReadBuffers {
            value: [0; xen_abi::xenstore::XENSTORE_PAYLOAD_MAX],
            list: [0; xen_abi::xenstore::XENSTORE_PAYLOAD_MAX],
        }
    }
}

impl Default for ReadBuffers {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ReadBuffers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadBuffers")
    }
}

fn read_node<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
    xs: &mut XsConnection<R, W, E>,
    t: &mut T,
    path: &PathBuf,
    field: Field,
    buf: &mut [u8],
) -> Result<usize, ChildError> {
    xs.read(t, TxId::NONE, path, buf)
        .map_err(|error| ChildError::Store { field, error })
}

/// Reads and validates one child, `device/<class>/<id>`. Blocks until the reads complete.
///
/// Everything the peer wrote is checked: the backend path against `backend-id`, numbers for
/// being numbers, the state for being a state. The first problem is returned; other children
/// are unaffected.
pub fn read_child<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
    xs: &mut XsConnection<R, W, E>,
    t: &mut T,
    class: DeviceClass,
    id: u32,
    bufs: &mut ReadBuffers,
) -> Result<ChildInfo, ChildError> {
    let dir = frontend_path(class, id);
    let buf = &mut bufs.value;

    let n = read_node(
        xs,
        t,
        &node_path(dir.as_bytes(), "backend-id", Field::BackendId)?,
        Field::BackendId,
        buf,
    )?;
    let raw_id = parse_u32(&buf[..n]).ok_or(ChildError::Malformed {
        field: Field::BackendId,
    })?;
    let backend_id = DomId::try_from(raw_id)
        .ok()
        .filter(|&d| d < DOMID_FIRST_RESERVED)
        .ok_or(ChildError::ReservedBackendId(raw_id))?;

    let n = read_node(
        xs,
        t,
        &node_path(dir.as_bytes(), "backend", Field::Backend)?,
        Field::Backend,
        buf,
    )?;
    let backend = PathBuf::from_printable_ascii(&buf[..n]).ok_or(ChildError::Malformed {
        field: Field::Backend,
    })?;
    validate_backend_path(backend.as_bytes(), backend_id)?;

    let state = match xs.read(
        t,
        TxId::NONE,
        node_path(dir.as_bytes(), "state", Field::State)?,
        buf,
    ) {
        Ok(n) => XenbusState::parse(&buf[..n]).map_err(ChildError::State)?,
        Err(e) if e.is_enoent() => XenbusState::Unknown,
        Err(error) => {
            return Err(ChildError::Store {
                field: Field::State,
                error,
            })
        }
    };

    let identity = match class {
        DeviceClass::Vbd => {
            let path = node_path(dir.as_bytes(), "virtual-device", Field::VirtualDevice)?;
            match read_node(xs, t, &path, Field::VirtualDevice, buf) {
                Ok(n) => Identity::Vbd(Vdev::parse(&buf[..n])?),
                // Some toolstacks leave `virtual-device` out: the id is the same number.
                Err(ChildError::Store { error, .. }) if error.is_enoent() => {
                    Identity::Vbd(Vdev::decode(id)?)
                }
                Err(e) => return Err(e),
            }
        }
        DeviceClass::Vif => {
            let path = node_path(dir.as_bytes(), "handle", Field::Handle)?;
            let handle = match read_node(xs, t, &path, Field::Handle, buf) {
                Ok(n) => parse_u32(&buf[..n]).ok_or(ChildError::Malformed {
                    field: Field::Handle,
                })?,
                Err(ChildError::Store { error, .. }) if error.is_enoent() => id,
                Err(e) => return Err(e),
            };
            let path = node_path(dir.as_bytes(), "mac", Field::Mac)?;
            let mac = match read_node(xs, t, &path, Field::Mac, buf) {
                Ok(n) => {
                    Some(parse_mac(&buf[..n]).ok_or(ChildError::Malformed { field: Field::Mac })?)
                }
                Err(ChildError::Store { error, .. }) if error.is_enoent() => None,
                Err(e) => return Err(e),
            };
            Identity::Vif { handle, mac }
        }
        DeviceClass::Vscsi => read_vscsi_devs(xs, t, backend.as_bytes(), bufs)?,
    };

    Ok(ChildInfo {
        class,
        id,
        backend,
        backend_id,
        state,
        identity,
    })
}

/// Reads `<backend>/vscsi-devs/*/v-dev`.
fn read_vscsi_devs<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
    xs: &mut XsConnection<R, W, E>,
    t: &mut T,
    backend: &[u8],
    bufs: &mut ReadBuffers,
) -> Result<Identity, ChildError> {
    let field = Field::VscsiDevs;
    let mut luns = [ScsiAddress::default(); MAX_VSCSI_LUNS];
    let mut count = 0;
    let mut skipped = 0;
    let devs = node_path(backend, "vscsi-devs", field)?;
    let list = match xs.directory(t, TxId::NONE, devs, &mut bufs.list) {
        Ok(list) => list,
        // A host with no devices yet.
        Err(e) if e.is_enoent() => {
            return Ok(Identity::Vscsi {
                luns,
                count,
                skipped,
            })
        }
        Err(error) => return Err(ChildError::Store { field, error }),
    };
    for dev in list.iter() {
        if count == MAX_VSCSI_LUNS {
            skipped += 1;
            continue;
        }
        let Some(dev) = FixedStr::<32>::from_printable_ascii(dev) else {
            skipped += 1;
            continue;
        };
        let Ok(path) = format_fixed::<MAX_CHILD_PATH>(format_args!(
            "{}/{}/v-dev",
            core::str::from_utf8(devs.as_bytes()).unwrap_or(""),
            dev
        )) else {
            skipped += 1;
            continue;
        };
        match xs.read(t, TxId::NONE, path, &mut bufs.value) {
            Ok(n) => match ScsiAddress::parse(&bufs.value[..n]) {
                Some(a) => {
                    luns[count] = a;
                    count += 1;
                }
                None => skipped += 1,
            },
            // Removed while listing.
            Err(e) if e.is_enoent() => skipped += 1,
            Err(error) => return Err(ChildError::Store { field, error }),
        }
    }
    Ok(Identity::Vscsi {
        luns,
        count,
        skipped,
    })
}

/// What enumeration found under `device/`.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovered<'a> {
    /// A child, read and validated.
    Child(ChildInfo),
    /// A child of a known class that could not be described.
    BadChild {
        /// Its class.
        class: DeviceClass,
        /// Its directory name, as listed (it may not even be a number).
        name: &'a [u8],
        /// What is wrong.
        error: ChildError,
    },
    /// A class this bus has no driver for (`device/<name>`): reported, not an error.
    UnknownClass(&'a [u8]),
}

/// Lists the children of `class`, calling `found` with the id of each well-named one and
/// `bad` with each name that is not a child id. A missing class directory lists nothing.
pub fn list_class<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
    xs: &mut XsConnection<R, W, E>,
    t: &mut T,
    class: DeviceClass,
    list_buf: &mut [u8],
    mut found: impl FnMut(u32),
    mut bad: impl FnMut(&[u8]),
) -> Result<(), XsError> {
    let path = format_fixed::<32>(format_args!("device/{}", class.name())).unwrap_or_default();
    let list = match xs.directory(t, TxId::NONE, path, list_buf) {
        Ok(list) => list,
        Err(e) if e.is_enoent() => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in list.iter() {
        match parse_child_id(name) {
            Some(id) => found(id),
            None => bad(name),
        }
    }
    Ok(())
}

/// Enumerates every child under `device/`, blocking, and reports each to `report`.
///
/// Unknown classes are reported as [`Discovered::UnknownClass`]; a child that cannot be read or
/// validated as [`Discovered::BadChild`]. Only a failure to list `device/` or a class directory
/// (the store itself failing) ends enumeration with an error. A missing `device/` means no
/// children.
///
/// `class_buf` holds the listing of `device/` while the classes are walked; `bufs` the
/// listings of each class and the values read.
pub fn enumerate<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
    xs: &mut XsConnection<R, W, E>,
    t: &mut T,
    class_buf: &mut [u8],
    bufs: &mut ReadBuffers,
    mut report: impl FnMut(Discovered<'_>),
) -> Result<(), XsError> {
    let classes = match xs.directory(t, TxId::NONE, "device", class_buf) {
        Ok(list) => list,
        Err(e) if e.is_enoent() => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in classes.iter() {
        let Some(class) = DeviceClass::from_name(name) else {
            report(Discovered::UnknownClass(name));
            continue;
        };
        // The ids of one class listing fit in its reply; copy them out of `bufs.list` so that
        // reading each child can reuse the buffers.
        let mut ids = IdList::new();
        list_class(
            xs,
            t,
            class,
            &mut bufs.list,
            |id| ids.push(id),
            |bad| {
                report(Discovered::BadChild {
                    class,
                    name: bad,
                    error: ChildError::Malformed { field: Field::Id },
                })
            },
        )?;
        for &id in ids.as_slice() {
            match read_child(xs, t, class, id, bufs) {
                Ok(info) => report(Discovered::Child(info)),
                Err(error) => {
                    let mut digits = [0; 10];
                    let name = crate::xenstore::wire::format_u32(id, &mut digits);
                    report(Discovered::BadChild { class, name, error });
                }
            }
        }
        if ids.overflowed {
            report(Discovered::BadChild {
                class,
                name: b"",
                error: ChildError::Malformed { field: Field::Id },
            });
        }
    }
    Ok(())
}

/// The most children of one class [`enumerate`] describes in one pass; more are reported as
/// one [`Discovered::BadChild`] with an empty name.
pub const MAX_CHILDREN_PER_CLASS: usize = 256;

struct IdList {
    ids: [u32; MAX_CHILDREN_PER_CLASS],
    len: usize,
    overflowed: bool,
}

impl IdList {
    fn new() -> Self {
        IdList {
            ids: [0; MAX_CHILDREN_PER_CLASS],
            len: 0,
            overflowed: false,
        }
    }

    fn push(&mut self, id: u32) {
        match self.ids.get_mut(self.len) {
            Some(slot) => {
                *slot = id;
                self.len += 1;
            }
            None => self.overflowed = true,
        }
    }

    fn as_slice(&self) -> &[u32] {
        &self.ids[..self.len]
    }
}
