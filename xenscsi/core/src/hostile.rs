//! A hostile backend against the engine, for the fuzz target and the randomized unit test.
//!
//! [`run`] interprets its input as a script: commands submitted with arbitrary segment lists,
//! responses written straight into the shared ring with arbitrary `rqid`, status, sense length
//! and residual (and arbitrary producer indices), grants mapped and unmapped by the "backend",
//! polls, timer ticks with arbitrary clock jumps, the shell's aborts and resets, disconnects and
//! reconnects with arbitrary `feature-sg-grant`. The platform doubles check the engine's side of
//! every contract and panic on a breach:
//!
//! - a grant is ended only while granted, at most once;
//! - a completion (or a refused submission) never leaves a grant on the request's pages;
//! - every accepted request is completed exactly once, and after the backend lets go of every
//!   page and the connection ends, all of them are.

use xen_abi::types::{DomId, GrantRef};
use xen_abi::vscsiif::VSCSIIF_RING_SLOTS;
use xen_ring::{RingIndex, RingMemory};
use xenpci_core::grant_table::GrantError;
use xenpci_core::xenbus::FrontendStore;
use xenpci_core::xenstore::{XsErrno, XsError};

use crate::engine::{EngineConfig, Finished, Vscsi};
use crate::luns::{Address, DeviceList, ScanOp};
use crate::negotiate::BackendFeatures;
use crate::platform::{EndGrant, Events, Grants, GuestMemory, Io};
use crate::types::{DataDirection, ScsiRequest, Segment, Tag};

const ENTRIES: usize = 4096;
const TAGS: usize = 512;
/// Frames of request `tag` are `FRAME_BASE + tag * 64 + i`.
const FRAME_BASE: u64 = 0x10_0000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    Free,
    Granted { frame: u64, mapped: bool },
}

/// A grant table that checks the engine's use of it.
struct CheckedGrants {
    entries: [Entry; ENTRIES],
    next: usize,
}

impl CheckedGrants {
    fn new() -> Self {
        CheckedGrants {
            entries: [Entry::Free; ENTRIES],
            next: 1,
        }
    }

    fn granted_frames_of(&self, tag: usize) -> usize {
        let lo = FRAME_BASE + tag as u64 * 64;
        self.entries
            .iter()
            .filter(|e| matches!(e, Entry::Granted { frame, .. } if (lo..lo + 64).contains(frame)))
            .count()
    }

    /// Maps or unmaps the `k`-th granted entry (the backend only maps what it was granted).
    fn set_mapped(&mut self, k: usize, mapped: bool) {
        let count = self.granted();
        if count == 0 {
            return;
        }
        let mut skip = k % count;
        for e in self.entries.iter_mut() {
            if let Entry::Granted { mapped: m, .. } = e {
                if skip == 0 {
                    *m = mapped;
                    return;
                }
                skip -= 1;
            }
        }
    }

    fn unmap_all(&mut self) {
        for e in self.entries.iter_mut() {
            if let Entry::Granted { mapped, .. } = e {
                *mapped = false;
            }
        }
    }

    fn granted(&self) -> usize {
        self.entries.iter().filter(|e| **e != Entry::Free).count()
    }
}

impl Grants for CheckedGrants {
    fn grant(
        &mut self,
        _domid: DomId,
        frame: u64,
        _readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        for _ in 0..ENTRIES {
            let g = self.next;
            self.next = (self.next + 1) % ENTRIES;
            if g != 0 && self.entries[g] == Entry::Free {
                self.entries[g] = Entry::Granted {
                    frame,
                    mapped: false,
                };
                return Ok(g as GrantRef);
            }
        }
        Err(GrantError::Exhausted)
    }

    fn end(&mut self, gref: GrantRef) -> Result<EndGrant, GrantError> {
        match self.entries.get(gref as usize) {
            Some(Entry::Granted { mapped: true, .. }) => Ok(EndGrant::StillMapped),
            Some(Entry::Granted { mapped: false, .. }) => {
                self.entries[gref as usize] = Entry::Free;
                Ok(EndGrant::Revoked)
            }
            _ => panic!("grant {gref} ended while not granted"),
        }
    }

    fn parked(&mut self) -> u32 {
        0
    }
}

struct NoEvents;

impl Events for NoEvents {
    fn notify(&mut self) {}
}

struct NoMemory;

impl GuestMemory for NoMemory {
    fn write(&mut self, frame: u64, offset: usize, data: &[u8]) {
        assert!(
            offset + data.len() <= crate::PAGE_SIZE,
            "indirect write past the page"
        );
        let _ = frame;
    }
}

/// A store with one LUN, `dev-0` at `0:0:1:0`, in state Initialised.
struct OneLun;

impl FrontendStore for OneLun {
    fn write(&mut self, _node: &str, _value: &[u8]) -> Result<(), XsError> {
        Ok(())
    }
    fn read(&mut self, _node: &str, _buf: &mut [u8]) -> Result<usize, XsError> {
        Err(XsError::Store(XsErrno::Enoent))
    }
    fn read_backend(&mut self, node: &str, buf: &mut [u8]) -> Result<usize, XsError> {
        let v: &[u8] = match node {
            "vscsi-devs/dev-0/state" => b"3",
            "vscsi-devs/dev-0/v-dev" => b"0:0:1:0",
            _ => return Err(XsError::Store(XsErrno::Enoent)),
        };
        buf[..v.len()].copy_from_slice(v);
        Ok(v.len())
    }
    fn remove(&mut self, _node: &str) -> Result<(), XsError> {
        Ok(())
    }
}

impl DeviceList for OneLun {
    fn list(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), XsError> {
        visit(b"dev-0");
        Ok(())
    }
}

const LUN: Address = Address {
    bus: 0,
    target: 1,
    lun: 0,
};

struct Script<'a> {
    data: &'a [u8],
    at: usize,
}

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.at)?;
        self.at += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from(self.u16()?) | u32::from(self.u16()?) << 16)
    }
}

/// What a script exercised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Commands accepted.
    pub accepted: u32,
    /// Completions carrying the backend's answer.
    pub answered: u32,
    /// Protocol violations the engine detected.
    pub violations: u32,
    /// Revocations that found a page still mapped.
    pub still_mapped: u64,
}

/// Plays the script in `data` (see the module documentation).
pub fn run(data: &[u8]) -> Summary {
    let mut grants = CheckedGrants::new();
    let (mut events, mut memory) = (NoEvents, NoMemory);
    let indirect: [u64; 8] = core::array::from_fn(|i| 0x5000 + i as u64);
    let config = EngineConfig {
        max_violations: 1000,
        ..EngineConfig::new(0)
    };
    let mut engine: Vscsi<8, 64, 2> = Vscsi::new(config, &indirect);
    let mut completed = [0u8; TAGS];
    let mut accepted = [false; TAGS];
    let mut s = Script { data, at: 0 };
    let mut now = 0u64;
    let mut next_tag = 0usize;
    let mut ring_frame = 0x9000u64;

    let mut mem = connect(&mut engine, &mut grants, ring_frame, 128);
    let mut rsp_prod = 0u32;

    let mut answered = 0u32;
    let mut sink = |f: Finished, grants: &CheckedGrants, completed: &mut [u8; TAGS]| {
        if let Finished::Command(c) = f {
            if c.outcome == crate::Outcome::Answered {
                answered += 1;
            }
            let t = c.tag.0 as usize;
            assert!(t < TAGS, "completion for an unknown tag");
            completed[t] += 1;
            assert_eq!(completed[t], 1, "tag {t} completed twice");
            assert_eq!(
                grants.granted_frames_of(t),
                0,
                "tag {t} completed while granted"
            );
            assert!(c.residual <= c.transfer_length);
            assert!(c.sense.as_bytes().len() <= 96);
        }
    };

    while let Some(op) = s.byte() {
        match op % 9 {
            0 if next_tag < TAGS => {
                let n = usize::from(s.byte().unwrap_or(0) % 70);
                let dir = match s.byte().unwrap_or(0) % 3 {
                    0 => DataDirection::None,
                    1 => DataDirection::FromDevice,
                    _ => DataDirection::ToDevice,
                };
                let mut segs = [Segment {
                    frame: 0,
                    offset: 0,
                    length: 1,
                }; 70];
                let sloppy = s.byte().unwrap_or(0) > 240;
                for (i, seg) in segs.iter_mut().enumerate().take(n) {
                    seg.frame = FRAME_BASE + next_tag as u64 * 64 + (i as u64 % 64);
                    let (a, b) = (s.u16().unwrap_or(0), s.u16().unwrap_or(1));
                    if sloppy {
                        seg.offset = a % 4200;
                        seg.length = b % 4200;
                    } else {
                        seg.offset = a % 4096;
                        seg.length = 1 + b % (4096 - seg.offset);
                    }
                }
                let cdb_len = if sloppy {
                    usize::from(s.byte().unwrap_or(6) % 18)
                } else {
                    1 + usize::from(s.byte().unwrap_or(6) % 16)
                };
                let cdb = [0x28u8; 17];
                let req = ScsiRequest {
                    tag: Tag(next_tag as u64),
                    address: LUN,
                    cdb: &cdb[..cdb_len],
                    direction: dir,
                    segments: &segs[..n],
                    timeout_ms: u64::from(s.u16().unwrap_or(0)),
                };
                let mut io = Io::new(&mut grants, &mut events, &mut memory);
                match engine.submit(&req, now, &mut io) {
                    Ok(()) => accepted[next_tag] = true,
                    Err(_) => assert_eq!(grants.granted_frames_of(next_tag), 0),
                }
                next_tag += 1;
            }
            1 => {
                // Responses straight into the ring.
                let req_prod = mem.load_index(RingIndex::ReqProd);
                let owed = req_prod.wrapping_sub(rsp_prod);
                let wanted = u32::from(s.byte().unwrap_or(1));
                // Mostly no more answers than requests (more is a ring violation).
                let count = if wanted > 250 {
                    wanted % 20
                } else {
                    wanted.min(owed) % 17
                };
                for _ in 0..count {
                    let slot = (rsp_prod % VSCSIIF_RING_SLOTS) as usize;
                    let mut e = [0u8; 252];
                    // Mostly a plausible rqid: one of a request on the ring.
                    let pick = s.byte().unwrap_or(0);
                    let rqid = if pick < 240 {
                        // The request in this response's own slot, as a backend answering in
                        // order would.
                        let idx = (rsp_prod % VSCSIIF_RING_SLOTS) as usize;
                        let mut b = [0u8; 2];
                        let _ = mem.read_bytes(64 + idx * 252, &mut b);
                        u16::from_le_bytes(b)
                    } else {
                        s.u16().unwrap_or(0)
                    };
                    e[0..2].copy_from_slice(&rqid.to_le_bytes());
                    e[3] = s.byte().unwrap_or(0);
                    if pick < 230 {
                        e[3] %= 97;
                    }
                    let status = s.byte().unwrap_or(0);
                    let host = s.byte().unwrap_or(0) % 24;
                    let rslt: i32 = if pick % 7 == 0 {
                        0x2002 + i32::from(pick & 1)
                    } else {
                        i32::from(status) | i32::from(host) << 16
                    };
                    e[100..104].copy_from_slice(&rslt.to_le_bytes());
                    let r = s.u32().unwrap_or(0);
                    let residual = if pick < 220 { r % 64 } else { r % 300_000 };
                    e[104..108].copy_from_slice(&residual.to_le_bytes());
                    let _ = mem.write_bytes(64 + slot * 252, &e);
                    rsp_prod = rsp_prod.wrapping_add(1);
                }
                if s.byte().unwrap_or(0) == 0xff && s.byte().unwrap_or(0) == 0xff {
                    rsp_prod = s.u32().unwrap_or(0);
                }
                mem.store_index(RingIndex::RspProd, rsp_prod);
            }
            2 => {
                let mut io = Io::new(&mut grants, &mut events, &mut memory);
                let g = &mut completed;
                let mut collected = [None; 16];
                let mut k = 0;
                let _ = engine.poll(now, &mut io, &mut |f| {
                    if k < collected.len() {
                        collected[k] = Some(f);
                        k += 1;
                    } else {
                        panic!("more than 16 completions in one poll");
                    }
                });
                for f in collected.iter().flatten() {
                    sink(*f, &grants, g);
                }
            }
            3 => {
                now += u64::from(s.u16().unwrap_or(0)) * 100;
                let mut collected = [None; 16];
                let mut k = 0;
                let mut io = Io::new(&mut grants, &mut events, &mut memory);
                engine.tick(now, &mut io, &mut |f| {
                    collected[k] = Some(f);
                    k += 1;
                });
                for f in collected.iter().flatten() {
                    sink(*f, &grants, &mut completed);
                }
            }
            4 => {
                let k = usize::from(s.u16().unwrap_or(0));
                let on = s.byte().unwrap_or(0) & 1 != 0;
                grants.set_mapped(k, on);
            }
            5 => {
                let victim = next_tag.saturating_sub(1 + usize::from(s.byte().unwrap_or(0) % 8));
                let mut io = Io::new(&mut grants, &mut events, &mut memory);
                let _ = engine.abort(Tag(9999), Tag(victim as u64), now, &mut io);
            }
            6 => {
                let mut io = Io::new(&mut grants, &mut events, &mut memory);
                let _ = engine.reset_lun(Tag(9998), LUN, now, &mut io);
            }
            7 => {
                // The backend goes away (its mappings maybe kept), the shell reconnects.
                if s.byte().unwrap_or(0) & 1 == 0 {
                    grants.unmap_all();
                }
                let mut collected = [None; 16];
                let mut k = 0;
                let mut io = Io::new(&mut grants, &mut events, &mut memory);
                engine.disconnect(&mut io, &mut |f| {
                    collected[k] = Some(f);
                    k += 1;
                });
                for f in collected.iter().flatten() {
                    sink(*f, &grants, &mut completed);
                }
                ring_frame += 1;
                let sg = u32::from(s.u16().unwrap_or(0));
                mem = connect(&mut engine, &mut grants, ring_frame, sg);
                rsp_prod = 0;
            }
            _ => {}
        }
    }

    // The end: the backend lets go of everything, the connection ends, the timer runs.
    grants.unmap_all();
    let mut collected = [None; 16];
    let mut k = 0;
    let mut io = Io::new(&mut grants, &mut events, &mut memory);
    engine.disconnect(&mut io, &mut |f| {
        collected[k] = Some(f);
        k += 1;
    });
    engine.tick(now, &mut io, &mut |f| {
        collected[k] = Some(f);
        k += 1;
    });
    for f in collected.iter().flatten() {
        sink(*f, &grants, &mut completed);
    }
    for t in 0..TAGS {
        assert_eq!(
            completed[t],
            u8::from(accepted[t]),
            "tag {t}: accepted {} completed {}",
            accepted[t],
            completed[t]
        );
    }
    assert_eq!(engine.in_flight(), 0);
    assert_eq!(grants.granted(), 0, "grants left after the end");
    let counters = engine.counters();
    Summary {
        accepted: accepted.iter().filter(|a| **a).count() as u32,
        answered,
        violations: counters.violations,
        still_mapped: counters.still_mapped,
    }
}

fn connect(
    engine: &mut Vscsi<8, 64, 2>,
    grants: &mut CheckedGrants,
    frame: u64,
    sg_grant: u32,
) -> RingMemory {
    let mem = RingMemory::allocate(0).expect("ring memory");
    let (mut events, mut memory) = (NoEvents, NoMemory);
    let mut io = Io::new(grants, &mut events, &mut memory);
    if engine.attach_ring(mem.clone(), frame, &mut io).is_ok() {
        engine.connected(&BackendFeatures {
            sg_grant,
            host_reset: false,
        });
        let _ = engine
            .luns_mut()
            .scan(ScanOp::Connect, &mut OneLun, &mut OneLun, &mut |_| {});
    }
    mem
}
