//! The xenbus device model: the children under `device/`, hotplug, and the frontend/backend
//! state handshake the class drivers share.
//!
//! - [`enumerate`] and [`read_child`] list and read the children (`device/vbd/*`,
//!   `device/vif/*`, `device/vscsi/*`), validating everything the toolstack and backends wrote,
//!   and [`ChildInfo::pdo`] describes the PDO the shell creates (see [`PdoDescription`] for the
//!   hardware id scheme the INF files match).
//! - [`Hotplug`] turns events of the watch on `device` into [`Change`]s, with bounded work per
//!   event and a full rescan after a flood or lost events.
//! - [`Handshake`], [`FrontendDriver`] and [`execute`] run the state handshake for one child.
//! - [`Vdev`] decodes vbd `virtual-device` numbers; [`FixedStr`] is the inline string type.
//!
//! Everything is fixed-size. The state machines ([`Handshake`], [`PendingWork`],
//! [`KnownChildren`]) do no I/O; the functions that read or write the store block, through the
//! client's [`Wait`](crate::xenstore::Wait).

mod device;
mod frontend;
mod hotplug;
mod text;
mod vdev;

#[cfg(test)]
pub(crate) mod tests;

pub use device::{
    enumerate, frontend_path, list_class, node_path, parse_child_id, parse_mac, read_child,
    validate_backend_path, ChildError, ChildInfo, DeviceClass, Discovered, Field, Identity,
    PathBuf, PdoDescription, ReadBuffers, ScsiAddress, HARDWARE_REVISION, MAX_CHILDREN_PER_CLASS,
    MAX_CHILD_PATH, MAX_VSCSI_LUNS,
};
pub use frontend::{
    execute, read_backend_state, Action, Backend, Done, FrontendDriver, FrontendError,
    FrontendPaths, FrontendStore, Handshake, HandshakeError, HandshakeStats, Plan, MAX_ACTIONS,
    PUBLISH_ATTEMPTS,
};
pub use hotplug::{classify_event, Change, EventScope, Hotplug, KnownChildren, PendingWork};
pub use text::{format_fixed, CapacityError, FixedStr};
pub use vdev::{Vdev, VdevError, VdevScheme, HD_MAJORS, SD_MAJOR_0, VDEV_EXTENDED, XVD_MAJOR};
