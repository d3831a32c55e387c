extern crate std;

use std::collections::BTreeSet;
use std::prelude::rust_2021::*;
use std::vec;

use proptest::prelude::*;

use super::{put, store, Conn};
use crate::xenbus::*;
use crate::xenstore::TxId;
use DeviceClass::*;

#[test]
fn event_paths_are_classified() {
    let table: &[(&[u8], EventScope)] = &[
        (b"device", EventScope::All),
        (b"device/vbd", EventScope::Class(Vbd)),
        (
            b"device/vif/0",
            EventScope::Child {
                class: Vif,
                id: 0,
                deeper: false,
            },
        ),
        (
            b"device/vbd/51712/state",
            EventScope::Child {
                class: Vbd,
                id: 51712,
                deeper: true,
            },
        ),
        (
            b"/local/domain/7/device/vscsi/1/backend",
            EventScope::Child {
                class: Vscsi,
                id: 1,
                deeper: true,
            },
        ),
        (b"/local/domain/7/device", EventScope::All),
        (b"device/console/0", EventScope::UnknownClass),
        (b"device/vbd/xvda", EventScope::Ignored),
        (b"device/vbd/007", EventScope::Ignored),
        (b"control/shutdown", EventScope::Ignored),
        (b"devices/vbd", EventScope::Ignored),
        (b"/local/domain", EventScope::Ignored),
        (b"", EventScope::Ignored),
    ];
    for (path, scope) in table {
        assert_eq!(classify_event(path), *scope, "{path:?}");
    }
}

#[test]
fn probes_diff_against_the_table() {
    let mut k = KnownChildren::<2>::new();
    assert_eq!(
        k.apply_probe(Vbd, 1, true, false),
        Some(Change::Added { class: Vbd, id: 1 })
    );
    assert_eq!(k.apply_probe(Vbd, 1, true, false), None);
    assert_eq!(
        k.apply_probe(Vbd, 1, true, true),
        Some(Change::Changed { class: Vbd, id: 1 })
    );
    assert_eq!(k.apply_probe(Vif, 1, false, true), None);
    assert_eq!(
        k.apply_probe(Vif, 1, true, true),
        Some(Change::Added { class: Vif, id: 1 })
    );
    assert_eq!(
        k.apply_probe(Vif, 2, true, false),
        Some(Change::TableFull { class: Vif, id: 2 })
    );
    assert_eq!(
        k.apply_probe(Vbd, 1, false, false),
        Some(Change::Removed { class: Vbd, id: 1 })
    );
    assert_eq!(
        k.apply_probe(Vif, 2, true, false),
        Some(Change::Added { class: Vif, id: 2 })
    );
    assert_eq!(k.len(), 2);

    let mut out = Vec::new();
    k.reconcile_class(Vif, &[2, 3], |c| out.push(c));
    assert_eq!(
        out,
        vec![
            Change::Removed { class: Vif, id: 1 },
            Change::Added { class: Vif, id: 3 }
        ]
    );
    assert!(k.contains(Vif, 2) && k.contains(Vif, 3) && !k.contains(Vif, 1));
}

#[test]
fn a_flood_of_probes_becomes_one_full_rescan() {
    let mut p = PendingWork::<4>::new();
    for i in 0..4 {
        p.note_event(std::format!("device/vbd/{i}/state").as_bytes());
        p.note_event(std::format!("device/vbd/{i}").as_bytes());
    }
    assert!(!p.full_rescan());
    p.note_event(b"device/vif/9");
    assert!(p.full_rescan());
    assert_eq!(p.floods, 1);
    for i in 0..10_000 {
        p.note_event(std::format!("device/vbd/{i}").as_bytes());
    }
    assert!(p.full_rescan());
    assert_eq!(p.events, 10_009);
    let mut q = PendingWork::<4>::new();
    q.note_overflow();
    assert!(q.full_rescan());
    let mut r = PendingWork::<4>::new();
    r.note_event(b"control/shutdown");
    r.note_event(b"device/console/1");
    assert!(r.is_empty());
}

fn child_nodes(class: DeviceClass, id: u32) -> Vec<(String, String)> {
    let dir = std::format!("device/{}/{id}", class.name());
    vec![
        (std::format!("{dir}/backend-id"), "0".into()),
        (
            std::format!("{dir}/backend"),
            std::format!("/local/domain/0/backend/{}/7/{id}", class.name()),
        ),
    ]
}

fn add(xs: &mut Conn, pipe: &mut super::fake::Pipe, class: DeviceClass, id: u32) {
    for (p, v) in child_nodes(class, id) {
        put(xs, pipe, &[(p.as_str(), v.as_str())]);
    }
}

fn remove(xs: &mut Conn, pipe: &mut super::fake::Pipe, class: DeviceClass, id: u32) {
    let path = std::format!("device/{}/{id}", class.name());
    xs.rm(pipe, TxId::NONE, path).unwrap();
}

/// Feeds every queued event of the connection to `hp` (and the overflow flag), then processes.
fn pump<const N: usize, const P: usize>(
    hp: &mut Hotplug<N, P>,
    xs: &mut Conn,
    pipe: &mut super::fake::Pipe,
) -> Vec<Change> {
    xs.pump(pipe).unwrap();
    pipe.server.process();
    xs.pump(pipe).unwrap();
    let mut buf = [0; 4096];
    while let Some(e) = xs.pop_watch_event(&mut buf).unwrap() {
        hp.note_event(e.path);
    }
    if xs.take_watch_overflow() {
        hp.note_overflow();
    }
    let mut bufs = Box::new(ReadBuffers::new());
    let mut out = Vec::new();
    hp.process(xs, pipe, &mut bufs, |c| out.push(c)).unwrap();
    out
}

#[test]
fn hotplug_through_the_store() {
    let (mut xs, mut pipe) = store();
    add(&mut xs, &mut pipe, Vbd, 51712);
    add(&mut xs, &mut pipe, Vif, 0);
    xs.watch(&mut pipe, "device").unwrap();
    let mut hp = Hotplug::<8, 4>::new();
    let mut first = pump(&mut hp, &mut xs, &mut pipe);
    first.sort_by_key(|c| std::format!("{c:?}"));
    assert_eq!(
        first,
        vec![
            Change::Added {
                class: Vbd,
                id: 51712
            },
            Change::Added { class: Vif, id: 0 }
        ]
    );
    // Hot-add a disk, change a node of a known one, remove the nic.
    add(&mut xs, &mut pipe, Vbd, 51728);
    put(&mut xs, &mut pipe, &[("device/vbd/51712/state", "1")]);
    remove(&mut xs, &mut pipe, Vif, 0);
    let mut changes = pump(&mut hp, &mut xs, &mut pipe);
    changes.sort_by_key(|c| std::format!("{c:?}"));
    assert_eq!(
        changes,
        vec![
            Change::Added {
                class: Vbd,
                id: 51728
            },
            Change::Changed {
                class: Vbd,
                id: 51712
            },
            Change::Removed { class: Vif, id: 0 },
        ]
    );
    assert_eq!(pump(&mut hp, &mut xs, &mut pipe), vec![]);
}

#[test]
fn a_flood_costs_one_rescan_and_loses_nothing() {
    let (mut xs, mut pipe) = store();
    xs.watch(&mut pipe, "device").unwrap();
    let mut hp = Hotplug::<64, 4>::new();
    assert_eq!(pump(&mut hp, &mut xs, &mut pipe), vec![]);
    for id in 0..40 {
        add(&mut xs, &mut pipe, Vbd, 51712 + 16 * id);
    }
    let reads_before = pipe.server.seen.len();
    let changes = pump(&mut hp, &mut xs, &mut pipe);
    assert_eq!(changes.len(), 40);
    assert!(changes
        .iter()
        .all(|c| matches!(c, Change::Added { class: Vbd, .. })));
    assert!(hp.pending.floods >= 1);
    // One listing per class, no per-child probes.
    assert!(
        pipe.server.seen.len() - reads_before <= 4,
        "{}",
        pipe.server.seen.len() - reads_before
    );
}

#[test]
fn a_full_table_reports_and_recovers() {
    let (mut xs, mut pipe) = store();
    for id in 0..3 {
        add(&mut xs, &mut pipe, Vif, id);
    }
    xs.watch(&mut pipe, "device").unwrap();
    let mut hp = Hotplug::<2, 4>::new();
    let changes = pump(&mut hp, &mut xs, &mut pipe);
    assert_eq!(
        changes,
        vec![
            Change::Added { class: Vif, id: 0 },
            Change::Added { class: Vif, id: 1 },
            Change::TableFull { class: Vif, id: 2 },
        ]
    );
    remove(&mut xs, &mut pipe, Vif, 0);
    hp.pending.request_full_rescan();
    let changes = pump(&mut hp, &mut xs, &mut pipe);
    assert_eq!(
        changes,
        vec![
            Change::Removed { class: Vif, id: 0 },
            Change::Added { class: Vif, id: 2 }
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the order of additions and removals, floods or not, the table ends equal to the
    /// store.
    #[test]
    fn the_table_converges_to_the_store(
        ops in proptest::collection::vec((any::<bool>(), 0u32..3, 0u32..12), 1..40),
        batch in 1usize..8,
    ) {
        let (mut xs, mut pipe) = store();
        xs.watch(&mut pipe, "device").unwrap();
        let mut hp = Hotplug::<64, 3>::new();
        let mut present = BTreeSet::new();
        let mut known = BTreeSet::new();
        let classes = [Vbd, Vif, Vscsi];
        let apply = |known: &mut BTreeSet<(DeviceClass, u32)>, changes: Vec<Change>| {
            for c in changes {
                match c {
                    Change::Added { class, id } => prop_assert!(known.insert((class, id))),
                    Change::Removed { class, id } => prop_assert!(known.remove(&(class, id))),
                    Change::Changed { class, id } => prop_assert!(known.contains(&(class, id))),
                    Change::TableFull { .. } => prop_assert!(false),
                }
            }
            Ok(())
        };
        apply(&mut known, pump(&mut hp, &mut xs, &mut pipe))?;
        for (i, (add_it, class, id)) in ops.into_iter().enumerate() {
            let class = classes[class as usize];
            if add_it {
                add(&mut xs, &mut pipe, class, id);
                present.insert((class, id));
            } else if present.remove(&(class, id)) {
                remove(&mut xs, &mut pipe, class, id);
            }
            if i % batch == 0 {
                apply(&mut known, pump(&mut hp, &mut xs, &mut pipe))?;
            }
        }
        apply(&mut known, pump(&mut hp, &mut xs, &mut pipe))?;
        prop_assert_eq!(&known, &present);
        let table: BTreeSet<_> = hp.known.iter().collect();
        prop_assert_eq!(table, present);
    }
}
