//! The device list: `vscsi-devs/dev-N/{v-dev,state}` in the backend's directory, mapped to the
//! bus/target/LUN the Windows adapter reports, and LUN hotplug.
//!
//! # The state handshake (as scsiback and the toolstack run it)
//! - Connect: scsiback attaches each LUN once the frontend is Initialised and sets the LUN's
//!   `state` to Initialised (3); when the vhost is Connected the frontend reports the LUN
//!   ([`LunEvent::Added`]) and writes Connected (4) to its own `vscsi-devs/dev-N/state`. After a
//!   reconnect, LUNs the backend still has Connected are confirmed the same way.
//! - Add: the toolstack writes a new `dev-N` (state Initialising) and sets the vhost to
//!   Reconfiguring; the frontend follows ([`ScanOp::Remove`] finds nothing to remove), scsiback
//!   attaches the LUN (3) and reports Reconfigured; the frontend then adds it ([`ScanOp::Add`],
//!   writes 4) and returns to Connected.
//! - Remove: the toolstack sets the LUN's state to Closing (5) and the vhost to Reconfiguring;
//!   the frontend drops the LUN ([`LunEvent::Removed`]) and writes Closed (6) for it.
//! - Re-add of the same address after a removal is an add.
//!
//! Everything read from the store is checked: a `v-dev` that is not `h:c:t:l`, an address that
//! does not fit the adapter's 8-bit bus/target/LUN, an address already in use or a full table
//! refuses the LUN ([`LunEvent::Refused`]; the frontend writes Closed for it, as Linux does when
//! it cannot add a device), and the other LUNs are unaffected.

use core::fmt::Write;

use xen_abi::vscsiif::{Hctl, ParseHctlError};
use xen_abi::xenbus::XenbusState;
use xenpci_core::xenbus::{FixedStr, FrontendStore};
use xenpci_core::xenstore::XsError;

/// The address of a LUN as the Windows adapter reports it (StorPort's PathId, TargetId, Lun).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// The bus (`PathId`): the vscsiif channel.
    pub bus: u8,
    /// The target (`TargetId`): the vscsiif target (`id`).
    pub target: u8,
    /// The logical unit: the vscsiif lun.
    pub lun: u8,
}

/// The largest bus, target or LUN number the adapter reports (255 is StorPort's wildcard).
pub const MAX_ADDRESS_PART: u16 = 254;

impl Address {
    /// The adapter address of a `v-dev`: channel, target and lun as they are, if each fits.
    /// The host number groups devices in the backend and is not part of the address.
    pub fn from_hctl(hctl: Hctl) -> Option<Address> {
        let fit = |v: u16| (v <= MAX_ADDRESS_PART).then_some(v as u8);
        Some(Address {
            bus: fit(hctl.channel)?,
            target: fit(hctl.target)?,
            lun: fit(hctl.lun)?,
        })
    }
}

/// One LUN the frontend reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lun {
    /// `N` of `vscsi-devs/dev-N`.
    pub dev: u32,
    /// The virtual address from `v-dev` (channel, target, lun go into every request).
    pub hctl: Hctl,
    /// The adapter's address.
    pub address: Address,
}

/// Why a LUN was not reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LunRefusal {
    /// `v-dev` is missing or not `host:channel:target:lun`.
    BadVdev(Option<ParseHctlError>),
    /// A part of the address is larger than [`MAX_ADDRESS_PART`].
    Unmappable(Hctl),
    /// Another LUN already has this adapter address.
    Duplicate(Address),
    /// The table is full.
    TableFull,
}

/// What a scan did, for the shell (bus change notification, logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LunEvent {
    /// A LUN appeared.
    Added(Lun),
    /// A LUN was confirmed after a reconnect.
    Confirmed(Lun),
    /// A LUN went away.
    Removed(Lun),
    /// `dev-N` could not be used.
    Refused {
        /// `N`.
        dev: u32,
        /// Why.
        reason: LunRefusal,
    },
}

/// Which part of the handshake a scan serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanOp {
    /// The vhost connected: add LUNs in state Initialised, confirm those in state Connected.
    Connect,
    /// The backend reports Reconfigured: add LUNs in state Initialised.
    Add,
    /// The backend reports Reconfiguring: drop LUNs in state Closing.
    Remove,
}

/// Lists the entries of the backend's `vscsi-devs` directory (the shell runs a xenstore
/// `DIRECTORY`; the names are untrusted).
pub trait DeviceList {
    /// Calls `visit` with each child name of `<backend>/vscsi-devs`; a missing directory is an
    /// empty list.
    fn list(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), XsError>;
}

/// The LUNs of one vhost: at most `L`.
#[derive(Debug)]
pub struct LunTable<const L: usize> {
    luns: [Option<Lun>; L],
}

impl<const L: usize> Default for LunTable<L> {
    fn default() -> Self {
        Self::new()
    }
}

/// Node names are short: `vscsi-devs/dev-4294967295/state`.
type Node = FixedStr<40>;

fn node(dev: u32, leaf: &str) -> Node {
    let mut n = Node::default();
    // 40 bytes hold the longest name; a failure cannot happen and would only shorten it.
    let _ = write!(n, "vscsi-devs/dev-{dev}/{leaf}");
    n
}

/// `N` of a `dev-N` name, if that is what it is.
pub fn parse_dev_name(name: &[u8]) -> Option<u32> {
    let digits = name.strip_prefix(b"dev-")?;
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u32, |v, d| {
        v.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

fn trimmed(raw: &[u8]) -> &[u8] {
    let mut s = raw;
    while let [rest @ .., 0 | b'\n' | b' '] = s {
        s = rest;
    }
    s
}

impl<const L: usize> LunTable<L> {
    /// An empty table.
    pub const fn new() -> Self {
        LunTable { luns: [None; L] }
    }

    /// The LUN at an adapter address.
    pub fn by_address(&self, address: Address) -> Option<Lun> {
        self.luns
            .iter()
            .flatten()
            .find(|l| l.address == address)
            .copied()
    }

    /// The LUN of `dev-N`.
    pub fn by_dev(&self, dev: u32) -> Option<Lun> {
        self.luns.iter().flatten().find(|l| l.dev == dev).copied()
    }

    /// The LUNs, in table order.
    pub fn iter(&self) -> impl Iterator<Item = &Lun> {
        self.luns.iter().flatten()
    }

    /// How many LUNs there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, dev: u32, hctl: Hctl) -> Result<Lun, LunRefusal> {
        let address = Address::from_hctl(hctl).ok_or(LunRefusal::Unmappable(hctl))?;
        if let Some(known) = self.by_dev(dev) {
            if known.hctl == hctl {
                return Ok(known);
            }
            // The same dev-N now names another address: the old LUN is gone.
            self.remove(dev);
        }
        if self.by_address(address).is_some() {
            return Err(LunRefusal::Duplicate(address));
        }
        let lun = Lun { dev, hctl, address };
        let free = self
            .luns
            .iter_mut()
            .find(|l| l.is_none())
            .ok_or(LunRefusal::TableFull)?;
        *free = Some(lun);
        Ok(lun)
    }

    fn remove(&mut self, dev: u32) -> Option<Lun> {
        let slot = self
            .luns
            .iter_mut()
            .find(|l| l.is_some_and(|l| l.dev == dev))?;
        slot.take()
    }

    /// Runs one scan of the backend's device list (see the module documentation), writing the
    /// frontend's `vscsi-devs/dev-N/state` nodes through `store` and reporting each change to
    /// `events`. Devices whose nodes are missing or unreadable are skipped, as Linux does; a
    /// failing directory listing or state write is returned.
    pub fn scan(
        &mut self,
        op: ScanOp,
        store: &mut dyn FrontendStore,
        list: &mut dyn DeviceList,
        events: &mut dyn FnMut(LunEvent),
    ) -> Result<(), XsError> {
        let mut result = Ok(());
        list.list(&mut |name| {
            if result.is_err() {
                return;
            }
            let Some(dev) = parse_dev_name(name) else {
                return;
            };
            result = self.scan_one(op, dev, store, events);
        })?;
        result
    }

    fn scan_one(
        &mut self,
        op: ScanOp,
        dev: u32,
        store: &mut dyn FrontendStore,
        events: &mut dyn FnMut(LunEvent),
    ) -> Result<(), XsError> {
        let mut buf = [0u8; 32];
        let state = match store.read_backend(node(dev, "state").as_str(), &mut buf) {
            Ok(n) => match XenbusState::parse(trimmed(&buf[..n.min(buf.len())])) {
                Ok(s) => s,
                Err(_) => return Ok(()),
            },
            Err(_) => return Ok(()),
        };
        let wants = match (op, state) {
            (ScanOp::Connect | ScanOp::Add, XenbusState::Initialised) => true,
            (ScanOp::Connect, XenbusState::Connected) => true,
            (ScanOp::Remove, XenbusState::Closing) => {
                if let Some(lun) = self.remove(dev) {
                    events(LunEvent::Removed(lun));
                }
                let closed = XenbusState::Closed.as_str().as_bytes();
                return store.write(node(dev, "state").as_str(), closed);
            }
            _ => false,
        };
        if !wants {
            return Ok(());
        }
        let hctl = match store.read_backend(node(dev, "v-dev").as_str(), &mut buf) {
            Ok(n) if n <= buf.len() => {
                Hctl::parse(trimmed(&buf[..n])).map_err(|e| LunRefusal::BadVdev(Some(e)))
            }
            Ok(_) => Err(LunRefusal::BadVdev(None)),
            Err(e) if e.is_enoent() => Err(LunRefusal::BadVdev(None)),
            Err(_) => return Ok(()),
        };
        let known = self.by_dev(dev);
        let (write, event) = match hctl.and_then(|h| self.insert(dev, h)) {
            Ok(lun) if known == Some(lun) => (XenbusState::Connected, LunEvent::Confirmed(lun)),
            Ok(lun) => (XenbusState::Connected, LunEvent::Added(lun)),
            Err(reason) => (XenbusState::Closed, LunEvent::Refused { dev, reason }),
        };
        store.write(node(dev, "state").as_str(), write.as_str().as_bytes())?;
        events(event);
        Ok(())
    }
}
