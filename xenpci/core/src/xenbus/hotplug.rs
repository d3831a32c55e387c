//! Hotplug: turning events of the watch on `device` into added / removed / changed children.
//!
//! Two pieces, both of fixed size:
//!
//! - [`PendingWork`] collects what the events ask for, at O(1)-bounded cost per event: each
//!   event names a child (`device/vbd/51712/…` → probe that child), a class (`device/vbd` →
//!   rescan the class) or everything (`device`). Up to `P` distinct child probes are kept; one
//!   more, or a lost event ([`XsConnection::take_watch_overflow`]), turns the work into a full
//!   rescan, whose cost does not depend on how many events arrived. A watch flood therefore
//!   costs at most one full rescan.
//! - [`KnownChildren`] is the table of children the bus has reported, diffed against what the
//!   probes and rescans find. A child that does not fit the table is reported as
//!   [`Change::TableFull`] (and found again by the next rescan once there is room).
//!
//! [`Hotplug::process`] runs the pending work against the store (blocking) and reports each
//! [`Change`]. `Changed` is reported for events under a known child that is still present; that
//! includes the bus's own writes (the frontend `state`), which the shell may ignore.

use crate::xenstore::{TxId, Wait, XsConnection, XsError};

use super::device::{frontend_path, list_class, parse_child_id, DeviceClass, ReadBuffers};

/// What one event of the `device` watch concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventScope {
    /// `device` itself: anything may have changed.
    All,
    /// `device/<class>`.
    Class(DeviceClass),
    /// `device/<class>/<id>` (`deeper` false) or a node under it (`deeper` true).
    Child {
        /// The class.
        class: DeviceClass,
        /// The child's id.
        id: u32,
        /// Whether the event is for a node under the child's directory.
        deeper: bool,
    },
    /// A class this bus does not drive.
    UnknownClass,
    /// Not under `device`, or a malformed child name: nothing to do.
    Ignored,
}

/// Classifies the path of a `device` watch event. Accepts the relative form the watch was
/// registered with (`device/…`) and the absolute one (`/local/domain/<n>/device/…`).
pub fn classify_event(path: &[u8]) -> EventScope {
    let rel = match path.strip_prefix(b"/local/domain/") {
        Some(rest) => match rest.iter().position(|&b| b == b'/') {
            Some(i) => &rest[i + 1..],
            None => return EventScope::Ignored,
        },
        None => path,
    };
    let mut parts = rel.split(|&b| b == b'/');
    if parts.next() != Some(b"device") {
        return EventScope::Ignored;
    }
    let Some(class) = parts.next() else {
        return EventScope::All;
    };
    let Some(class) = DeviceClass::from_name(class) else {
        return EventScope::UnknownClass;
    };
    let Some(id) = parts.next() else {
        return EventScope::Class(class);
    };
    match parse_child_id(id) {
        Some(id) => EventScope::Child {
            class,
            id,
            deeper: parts.next().is_some(),
        },
        None => EventScope::Ignored,
    }
}

/// A child the bus should tell Windows about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new child (read it with [`read_child`](super::read_child) to describe its PDO).
    Added {
        /// The class.
        class: DeviceClass,
        /// The id.
        id: u32,
    },
    /// A known child whose directory is gone (surprise removal).
    Removed {
        /// The class.
        class: DeviceClass,
        /// The id.
        id: u32,
    },
    /// Something under a known child changed.
    Changed {
        /// The class.
        class: DeviceClass,
        /// The id.
        id: u32,
    },
    /// A new child that does not fit the table; not reported as added.
    TableFull {
        /// The class.
        class: DeviceClass,
        /// The id.
        id: u32,
    },
}

/// The children reported so far: at most `N`.
#[derive(Clone, Debug)]
pub struct KnownChildren<const N: usize> {
    entries: [Option<(DeviceClass, u32)>; N],
    len: usize,
}

impl<const N: usize> Default for KnownChildren<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> KnownChildren<N> {
    /// An empty table.
    pub const fn new() -> Self {
        KnownChildren {
            entries: [None; N],
            len: 0,
        }
    }

    /// How many children are known.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no child is known.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the child is known.
    pub fn contains(&self, class: DeviceClass, id: u32) -> bool {
        self.entries.contains(&Some((class, id)))
    }

    /// The known children, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (DeviceClass, u32)> + '_ {
        self.entries.iter().flatten().copied()
    }

    /// Adds a child; false if the table is full (a known child is not added twice).
    pub fn insert(&mut self, class: DeviceClass, id: u32) -> bool {
        if self.contains(class, id) {
            return true;
        }
        match self.entries.iter_mut().find(|e| e.is_none()) {
            Some(slot) => {
                *slot = Some((class, id));
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Forgets a child; whether it was known.
    pub fn remove(&mut self, class: DeviceClass, id: u32) -> bool {
        match self.entries.iter_mut().find(|e| **e == Some((class, id))) {
            Some(slot) => {
                *slot = None;
                self.len -= 1;
                true
            }
            None => false,
        }
    }

    /// Applies the result of probing one child: whether its directory exists, and whether the
    /// event was for a node under it.
    pub fn apply_probe(
        &mut self,
        class: DeviceClass,
        id: u32,
        present: bool,
        deeper: bool,
    ) -> Option<Change> {
        let known = self.contains(class, id);
        match (present, known) {
            (true, false) => Some(if self.insert(class, id) {
                Change::Added { class, id }
            } else {
                Change::TableFull { class, id }
            }),
            (false, true) => {
                self.remove(class, id);
                Some(Change::Removed { class, id })
            }
            (true, true) if deeper => Some(Change::Changed { class, id }),
            _ => None,
        }
    }

    /// Diffs the table's children of `class` against the ids listed in the store: reports and
    /// forgets the missing ones, then reports and adds the new ones. O(`N` × `listed`).
    pub fn reconcile_class(
        &mut self,
        class: DeviceClass,
        listed: &[u32],
        mut emit: impl FnMut(Change),
    ) {
        for slot in &mut self.entries {
            if let Some((c, id)) = *slot {
                if c == class && !listed.contains(&id) {
                    *slot = None;
                    self.len -= 1;
                    emit(Change::Removed { class, id });
                }
            }
        }
        for &id in listed {
            if let Some(change) = self.apply_probe(class, id, true, false) {
                emit(change);
            }
        }
    }
}

/// Work collected from watch events, waiting for [`Hotplug::process`]: at most `P` child
/// probes, then a full rescan.
#[derive(Clone, Debug)]
pub struct PendingWork<const P: usize> {
    probes: [Option<(DeviceClass, u32, bool)>; P],
    probe_count: usize,
    classes: [bool; 3],
    all: bool,
    /// Events seen since creation.
    pub events: u64,
    /// Times the work collapsed into a full rescan because of too many probes or lost events.
    pub floods: u64,
}

impl<const P: usize> Default for PendingWork<P> {
    fn default() -> Self {
        Self::new()
    }
}

fn class_index(class: DeviceClass) -> usize {
    match class {
        DeviceClass::Vbd => 0,
        DeviceClass::Vif => 1,
        DeviceClass::Vscsi => 2,
    }
}

impl<const P: usize> PendingWork<P> {
    /// Nothing pending.
    pub const fn new() -> Self {
        PendingWork {
            probes: [None; P],
            probe_count: 0,
            classes: [false; 3],
            all: false,
            events: 0,
            floods: 0,
        }
    }

    /// Whether anything is pending.
    pub fn is_empty(&self) -> bool {
        !self.all && self.probe_count == 0 && !self.classes.contains(&true)
    }

    /// Whether a full rescan is pending.
    pub fn full_rescan(&self) -> bool {
        self.all
    }

    /// Records one event of the `device` watch. O(`P`) at most.
    pub fn note_event(&mut self, path: &[u8]) {
        self.events += 1;
        if self.all {
            return;
        }
        match classify_event(path) {
            EventScope::All => self.request_full_rescan(),
            EventScope::Class(class) => self.classes[class_index(class)] = true,
            EventScope::Child { class, id, deeper } => {
                if self.classes[class_index(class)] {
                    return;
                }
                if let Some(p) = self
                    .probes
                    .iter_mut()
                    .flatten()
                    .find(|p| p.0 == class && p.1 == id)
                {
                    p.2 |= deeper;
                    return;
                }
                match self.probes.iter_mut().find(|p| p.is_none()) {
                    Some(slot) => {
                        *slot = Some((class, id, deeper));
                        self.probe_count += 1;
                    }
                    None => {
                        self.floods += 1;
                        self.request_full_rescan();
                    }
                }
            }
            EventScope::UnknownClass | EventScope::Ignored => {}
        }
    }

    /// Records that events were lost (the connection's overflow flag): a full rescan.
    pub fn note_overflow(&mut self) {
        self.floods += 1;
        self.request_full_rescan();
    }

    /// Asks for a full rescan (at start, and after resume).
    pub fn request_full_rescan(&mut self) {
        self.all = true;
        self.probes = [None; P];
        self.probe_count = 0;
        self.classes = [false; 3];
    }

    fn take(&mut self) -> Self {
        let out = self.clone();
        self.probes = [None; P];
        self.probe_count = 0;
        self.classes = [false; 3];
        self.all = false;
        out
    }
}

/// The bus's hotplug state: known children (at most `N`) and pending work (at most `P` probes).
#[derive(Clone, Debug, Default)]
pub struct Hotplug<const N: usize, const P: usize> {
    /// The children reported so far.
    pub known: KnownChildren<N>,
    /// Work collected from events.
    pub pending: PendingWork<P>,
}

impl<const N: usize, const P: usize> Hotplug<N, P> {
    /// Nothing known; a full rescan pending (the first [`process`](Self::process) enumerates).
    pub fn new() -> Self {
        let mut pending = PendingWork::new();
        pending.request_full_rescan();
        Hotplug {
            known: KnownChildren::new(),
            pending,
        }
    }

    /// Records one event of the `device` watch.
    pub fn note_event(&mut self, path: &[u8]) {
        self.pending.note_event(path);
    }

    /// Records lost events.
    pub fn note_overflow(&mut self) {
        self.pending.note_overflow();
    }

    /// Runs the pending work against the store (blocking) and reports every change. On a store
    /// error, the work not done is kept as a full rescan and the error returned.
    pub fn process<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, E>,
        t: &mut T,
        bufs: &mut ReadBuffers,
        mut emit: impl FnMut(Change),
    ) -> Result<(), XsError> {
        let work = self.pending.take();
        let result = self.run(xs, t, bufs, &work, &mut emit);
        if result.is_err() {
            self.pending.request_full_rescan();
        }
        result
    }

    fn run<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, E>,
        t: &mut T,
        bufs: &mut ReadBuffers,
        work: &PendingWork<P>,
        emit: &mut impl FnMut(Change),
    ) -> Result<(), XsError> {
        for class in DeviceClass::ALL {
            if work.all || work.classes[class_index(class)] {
                self.rescan_class(xs, t, class, bufs, emit)?;
            }
        }
        if work.all {
            return Ok(());
        }
        for &(class, id, deeper) in work.probes.iter().flatten() {
            if work.classes[class_index(class)] {
                continue;
            }
            let present = match xs.read(t, TxId::NONE, frontend_path(class, id), &mut bufs.value) {
                Ok(_) => true,
                Err(e) if e.is_enoent() => false,
                Err(e) => return Err(e),
            };
            if let Some(change) = self.known.apply_probe(class, id, present, deeper) {
                emit(change);
            }
        }
        Ok(())
    }

    fn rescan_class<T: Wait + ?Sized, const R: usize, const W: usize, const E: usize>(
        &mut self,
        xs: &mut XsConnection<R, W, E>,
        t: &mut T,
        class: DeviceClass,
        bufs: &mut ReadBuffers,
        emit: &mut impl FnMut(Change),
    ) -> Result<(), XsError> {
        // The listing is at most one reply; ids beyond the table size cannot be added anyway,
        // but the extra ones are still reported (as `TableFull`) so nothing is lost silently.
        let mut ids = [0u32; 256];
        let mut n = 0;
        let mut extra = 0usize;
        list_class(
            xs,
            t,
            class,
            &mut bufs.list,
            |id| match ids.get_mut(n) {
                Some(slot) => {
                    *slot = id;
                    n += 1;
                }
                None => extra += 1,
            },
            |_| {},
        )?;
        self.known.reconcile_class(class, &ids[..n], &mut *emit);
        if extra > 0 {
            // More ids than one pass holds: `u32::MAX` stands for "the rest".
            emit(Change::TableFull {
                class,
                id: u32::MAX,
            });
        }
        Ok(())
    }
}
