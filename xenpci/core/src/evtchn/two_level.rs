//! The 2-level ABI: pending/mask bitmaps in the shared-info page and a per-vCPU selector.
//!
//! # Fair, bounded scan
//! Each vCPU keeps a cursor (word, bit) and the selector bits it has taken from Xen but not yet
//! finished. A scan starts at the cursor, takes the lowest active port at or after it, clears its
//! pending bit, and moves the cursor just past it; the cursor wraps over the words in selector
//! order. So a port that is always pending is delivered once per pass over the other pending
//! ports, never ahead of them, and a budget bounds the ports handled per call: the next call
//! resumes where this one stopped.
//!
//! The cursor lives in the vCPU's slot (`evtchn/vcpu.rs`) between scans; the scan works on a copy
//! of it, owned by the one scan of that vCPU that may run at a time.

use xen_abi::shared_info::EVTCHN_2L_WORDS;
use xen_abi::types::EvtchnPort;

use super::dispatch::{DispatchTable, HandlerId};
use super::shared::{L2Bitmap, SharedInfoEvents};
use super::{EvtchnStats, ScanOutcome};

const BITS: u32 = 64;

/// A vCPU's resume point and the selector bits still to be worked through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(super) sel: u64,
    pub(super) word: u32,
    pub(super) bit: u32,
}

/// The first set bit of `sel` at or after `from`, wrapping around.
fn next_word(sel: u64, from: u32) -> u32 {
    let at_or_after = sel & (u64::MAX << from);
    if at_or_after != 0 {
        at_or_after.trailing_zeros()
    } else {
        sel.trailing_zeros()
    }
}

/// Runs one bounded scan for `vcpu`; see the module documentation.
pub(crate) fn scan<S, F, const PORTS: usize>(
    cursor: &mut Cursor,
    shared: &S,
    dispatch: &DispatchTable<PORTS>,
    vcpu: u32,
    budget: u32,
    stats: &mut EvtchnStats,
    sink: &mut F,
) -> ScanOutcome
where
    S: SharedInfoEvents,
    F: FnMut(EvtchnPort, HandlerId),
{
    cursor.sel |= shared.take_pending_sel(vcpu);
    let mut outcome = ScanOutcome::default();
    let mut handled = 0u32;
    // Each step handles a port, retires a selector bit, or moves to the next word after which a
    // word is revisited from bit 0; the cap only guards against a bitmap changing under us.
    let max_steps = budget as usize + 3 * EVTCHN_2L_WORDS + 1;
    let mut steps = 0usize;
    while cursor.sel != 0 && handled < budget {
        steps += 1;
        if steps > max_steps {
            stats.scan_step_limit += 1;
            break;
        }
        let word = next_word(cursor.sel, cursor.word);
        if word != cursor.word {
            cursor.word = word;
            cursor.bit = 0;
        }
        let w = word as usize;
        let active = shared.load(L2Bitmap::Pending, w)
            & !shared.load(L2Bitmap::Mask, w)
            & dispatch.scan_mask_2l(w, vcpu);
        let from_cursor = active & (u64::MAX << cursor.bit);
        if from_cursor == 0 {
            if cursor.bit == 0 || active == 0 {
                // Nothing left in this word: retire its selector bit.
                cursor.sel &= !(1u64 << word);
            }
            // Otherwise ports below the cursor remain: come back to them after the other words.
            cursor.word = (word + 1) % BITS;
            cursor.bit = 0;
            continue;
        }
        let bit = from_cursor.trailing_zeros();
        cursor.bit = bit + 1;
        if cursor.bit == BITS {
            cursor.word = (word + 1) % BITS;
            cursor.bit = 0;
        }
        let flag = 1u64 << bit;
        if shared.fetch_and(L2Bitmap::Pending, w, !flag) & flag == 0 {
            continue; // Cleared concurrently: nothing to deliver.
        }
        handled += 1;
        let port = word * BITS + bit;
        match dispatch.get(port) {
            Some(binding) => {
                stats.delivered += 1;
                outcome.delivered += 1;
                sink(port, binding.handler);
            }
            None => {
                shared.fetch_or(L2Bitmap::Mask, w, flag);
                stats.unhandled_masked += 1;
                outcome.unhandled += 1;
            }
        }
    }
    outcome.more = cursor.sel != 0;
    if outcome.more {
        stats.budget_exhausted += 1;
    }
    outcome
}
