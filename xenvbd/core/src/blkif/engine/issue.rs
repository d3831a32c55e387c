//! Issuing: queued jobs cut into pieces, pieces into ring requests, and the pages and grants
//! they need.

use xen_abi::blkif::{
    BlkifRequestSegment, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST,
    BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_SEGMENTS_PER_INDIRECT_PAGE,
};
use xen_abi::types::{DomId, GrantRef};
use xen_ring::RingError;
use zerocopy::IntoBytes;

use super::hold::{revoke, Access};
use super::layout::{self, WireRequest, MAX_ENTRY};
use super::{Blkif, EngineState, Job, Phase, Piece, PieceKind, PoolPage, NONE16, SECTOR};
use crate::blkif::{
    BackendFeatures, BlockCompletion, BlockStatus, Counters, Events, FrontendParams, Grants, Io,
};
use crate::types::{BlockOp, GuestMemory, Segment, PAGE_SIZE};

impl<
        const JOBS: usize,
        const SEGS: usize,
        const SLOTS: usize,
        const POOL: usize,
        const IND: usize,
    > Blkif<JOBS, SEGS, SLOTS, POOL, IND>
{
    /// Issues queued work in order until something is missing, then tells the device-wide
    /// flush ordering (if any) where this queue's writes stand.
    pub(super) fn dispatch<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        complete: &mut impl FnMut(BlockCompletion),
    ) {
        self.dispatch_queued(io, complete);
        self.publish_order(io);
    }

    /// Publishes this queue's oldest unanswered write to the [`DeviceOrder`] and wakes the
    /// queues whose flush may have become issuable.
    pub(super) fn publish_order<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
    ) {
        let Some(order) = io.order else {
            return;
        };
        // The queue is in submission order, so the first write in it is the oldest.
        let oldest = self.order[..self.order_len]
            .iter()
            .map(|&j| &self.jobs[usize::from(j)])
            .find(|job| matches!(job.op, BlockOp::Write { .. } | BlockOp::Discard { .. }))
            .map_or(u64::MAX, |job| job.seq);
        let queue = usize::from(self.config.queue);
        // A flush waits only at the head of the queue, unissued; otherwise none waits here.
        let flush_waits = self.order[..self.order_len].first().is_some_and(|&j| {
            let job = &self.jobs[usize::from(j)];
            job.is_barrier() && !job.issued
        });
        if !flush_waits {
            order.not_waiting(queue);
        }
        let mut wake = order.publish_oldest(queue, oldest);
        while wake != 0 {
            let q = wake.trailing_zeros();
            wake &= wake - 1;
            io.events.wake(q as usize);
        }
    }

    fn dispatch_queued<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        complete: &mut impl FnMut(BlockCompletion),
    ) {
        if self.state != EngineState::Running || self.queues == 0 || self.quiescing {
            return;
        }
        // Bit q: something was pushed on queue q.
        let mut pushed = 0u32;
        let mut k = 0;
        while k < self.order_len {
            let j = self.order[k] as usize;
            let job = &self.jobs[j];
            if job.is_barrier() {
                if k > 0 {
                    break; // earlier operations first
                }
                if job.issued {
                    break; // later operations wait for the flush
                }
                // Writes accepted earlier on the device's other queues first.
                if job.phase == Phase::Main
                    && io.order.is_some_and(|o| {
                        !o.flush_may_issue(usize::from(self.config.queue), job.seq)
                    })
                {
                    break;
                }
            }
            if job.fully_issued() {
                k += 1;
                continue;
            }
            match self.issue_job(j, io, &mut pushed, complete) {
                Issue::Done => {
                    if !self.jobs[j].live {
                        // Completed without the ring; the list shifted.
                        continue;
                    }
                    if self.jobs[j].is_barrier() {
                        break;
                    }
                    k += 1;
                }
                Issue::Wait => break,
            }
        }
        for q in 0..self.queues {
            if pushed & (1 << q) == 0 {
                continue;
            }
            if let Some(ring) = self.rings[q].as_mut() {
                if ring.push_requests_and_check_notify() {
                    io.events.notify(usize::from(self.config.queue) + q);
                }
            }
        }
    }

    /// The slot the next request takes ([`take_slot`](Self::take_slot) takes it): the top
    /// of the free list.
    fn free_slot(&self) -> Option<usize> {
        self.free_slots_len
            .checked_sub(1)
            .map(|top| usize::from(self.free_slots[top]))
    }

    /// The queue for the next ring request: the least loaded one with room, ties taken in
    /// turn, so that work spreads over the backend's rings (one thread each in blkback).
    fn pick_queue(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for k in 0..self.queues {
            let q = (self.next_queue + k) % self.queues;
            if self.rings[q]
                .as_ref()
                .is_none_or(|r| r.free_requests() == 0)
            {
                continue;
            }
            if best.is_none_or(|b| self.queue_load[q] < self.queue_load[b]) {
                best = Some(q);
            }
        }
        best
    }

    fn issue_job<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        j: usize,
        io: &mut Io<'_, G, N, M>,
        pushed: &mut u32,
        complete: &mut impl FnMut(BlockCompletion),
    ) -> Issue {
        let params = self.params.unwrap_or_else(unreachable_params);
        let job = &self.jobs[j];
        if job.phase == Phase::PostFlush || !job.is_data() {
            let (op, id_sector, discard) = match (job.phase, job.op) {
                (Phase::PostFlush, _) | (_, BlockOp::Flush) => {
                    if params.flush {
                        (BLKIF_OP_FLUSH_DISKCACHE, 0, None)
                    } else if params.barrier {
                        (BLKIF_OP_WRITE_BARRIER, 0, None)
                    } else {
                        // No volatile cache to flush: done at once.
                        return self.complete_now(j, BlockStatus::Ok, complete);
                    }
                }
                (
                    _,
                    BlockOp::Discard {
                        sector,
                        sectors,
                        secure,
                    },
                ) => match params.discard {
                    Some(d) if !secure || d.secure => {
                        (BLKIF_OP_DISCARD, sector, Some((sectors, secure)))
                    }
                    _ => return self.complete_now(j, BlockStatus::NotSupported, complete),
                },
                _ => return Issue::Wait,
            };
            let Some(s) = self.free_slot() else {
                return Issue::Wait;
            };
            let Some(q) = self.pick_queue() else {
                return Issue::Wait;
            };
            let id = self.take_slot(s, q, j, op, op, 0, 0);
            let req = match discard {
                Some((sectors, secure)) => WireRequest::Discard {
                    id,
                    sector: id_sector,
                    sectors,
                    secure,
                },
                None => WireRequest::Direct {
                    operation: op,
                    id,
                    sector: 0,
                    segments: &[],
                },
            };
            self.push(q, &req, pushed);
            let job = &mut self.jobs[j];
            job.issued = true;
            job.outstanding += 1;
            return Issue::Done;
        }

        // Data.
        if !self.jobs[j].planned {
            if self.jobs[j].holds_guest_pages() {
                // Grants of the plan before a reconnect are still being revoked: re-planning
                // would forget them.
                return Issue::Wait;
            }
            let copy_all = params.persistent || params.bounce_all;
            if plan(&mut self.jobs[j], copy_all, self.block_size).is_none() {
                return self.complete_now(j, BlockStatus::Invalid, complete);
            }
        }
        let (write, start_sector) = match self.jobs[j].op {
            BlockOp::Read { sector, .. } => (false, sector),
            BlockOp::Write { sector, .. } => (true, sector),
            _ => return Issue::Wait,
        };
        let op = if write { BLKIF_OP_WRITE } else { BLKIF_OP_READ };
        while self.jobs[j].next_piece < self.jobs[j].npieces {
            let Some(s) = self.free_slot() else {
                return Issue::Wait;
            };
            let Some(q) = self.pick_queue() else {
                return Issue::Wait;
            };
            let first = self.jobs[j].next_piece as usize;
            let remaining = self.jobs[j].npieces as usize - first;
            let free_ind = self.indirect.iter().filter(|p| p.available()).count();
            let cap = if params.indirect_segments > 0 && free_ind > 0 {
                (params.indirect_segments as usize)
                    .min(free_ind * BLKIF_SEGMENTS_PER_INDIRECT_PAGE)
                    .max(BLKIF_MAX_SEGMENTS_PER_REQUEST)
            } else {
                BLKIF_MAX_SEGMENTS_PER_REQUEST
            };
            let want = remaining.min(cap);
            // Acquire pages and grants piece by piece.
            let mut got = 0;
            while got < want {
                if !self.acquire_piece(j, first + got, write, params.persistent, io) {
                    break;
                }
                got += 1;
            }
            if got == 0 {
                return Issue::Wait;
            }
            let indirect = got > BLKIF_MAX_SEGMENTS_PER_REQUEST;
            let mut ind_pages = [NONE16; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
            let mut ind_grefs = [0 as GrantRef; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
            let mut nind = 0;
            if indirect {
                let needed = got.div_ceil(BLKIF_SEGMENTS_PER_INDIRECT_PAGE);
                let mut ok = true;
                // With persistent grants, pages whose grant is kept come first.
                for kept in [true, false] {
                    for (p, page) in self.indirect.iter().enumerate() {
                        if nind == needed {
                            break;
                        }
                        let has_kept = matches!(page.persistent, Access::Granted(_));
                        if page.available()
                            && (has_kept == kept || !params.persistent)
                            && !ind_pages[..nind].contains(&(p as u16))
                        {
                            ind_pages[nind] = p as u16;
                            nind += 1;
                        }
                    }
                }
                // Fill and grant the indirect pages.
                for (k, &p) in ind_pages[..nind].iter().enumerate() {
                    let frame = self.indirect[p as usize].frame;
                    let lo = first + k * BLKIF_SEGMENTS_PER_INDIRECT_PAGE;
                    let hi = (lo + BLKIF_SEGMENTS_PER_INDIRECT_PAGE).min(first + got);
                    for (n, i) in (lo..hi).enumerate() {
                        let seg = self.wire_segment(j, i);
                        io.memory.write(frame, n * 8, seg.as_bytes());
                    }
                    // The backend only reads an indirect page.
                    match grant_page(
                        &mut self.indirect[p as usize],
                        self.config.backend,
                        params.persistent,
                        true,
                        io.grants,
                        &mut self.counters,
                    ) {
                        Some(g) => ind_grefs[k] = g,
                        None => {
                            ok = false;
                            break;
                        }
                    }
                }
                if nind < needed || !ok {
                    for &p in &ind_pages[..nind] {
                        let page = &mut self.indirect[p as usize];
                        revoke(
                            &mut page.gref,
                            io.grants,
                            &mut self.ledger,
                            &mut self.counters,
                        );
                        page.busy = false;
                    }
                    self.release_pieces(j, first, first + got, io);
                    return Issue::Wait;
                }
            }
            let wire_op = if indirect { BLKIF_OP_INDIRECT } else { op };
            let id = self.take_slot(s, q, j, wire_op, op, first as u16, (first + got) as u16);
            self.slots[s].indirect = ind_pages;
            self.slots[s].nindirect = nind as u8;
            let sector = start_sector + u64::from(self.jobs[j].pieces[first].stream / SECTOR);
            if indirect {
                self.push(
                    q,
                    &WireRequest::Indirect {
                        indirect_op: op,
                        id,
                        sector,
                        nr_segments: got as u16,
                        pages: &ind_grefs[..nind],
                    },
                    pushed,
                );
                self.counters.indirect_requests += 1;
            } else {
                let mut segs = [BlkifRequestSegment::new(0, 0, 0); BLKIF_MAX_SEGMENTS_PER_REQUEST];
                for (n, seg) in segs[..got].iter_mut().enumerate() {
                    *seg = self.wire_segment(j, first + n);
                }
                self.push(
                    q,
                    &WireRequest::Direct {
                        operation: op,
                        id,
                        sector,
                        segments: &segs[..got],
                    },
                    pushed,
                );
            }
            self.counters.segments += got as u64;
            let job = &mut self.jobs[j];
            job.next_piece += got as u16;
            job.outstanding += 1;
        }
        Issue::Done
    }

    fn wire_segment(&self, j: usize, i: usize) -> BlkifRequestSegment {
        let piece = self.jobs[j].pieces[i];
        let first = match piece.kind {
            PieceKind::Direct { offset, .. } => (u32::from(offset) / SECTOR) as u8,
            PieceKind::Copy { .. } => 0,
        };
        let last = first + (piece.len / SECTOR) as u8 - 1;
        let gref = match piece.kind {
            PieceKind::Copy { page } if page != NONE16 => {
                let pg = &self.pool[page as usize];
                pg.persistent.granted().or(pg.gref.granted()).unwrap_or(0)
            }
            _ => piece.gref.granted().unwrap_or(0),
        };
        BlkifRequestSegment::new(gref, first, last)
    }

    /// Gets piece `i` of job `j` ready: a pool page (filled for writes) and a grant.
    fn acquire_piece<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        j: usize,
        i: usize,
        write: bool,
        persistent: bool,
        io: &mut Io<'_, G, N, M>,
    ) -> bool {
        let piece = self.jobs[j].pieces[i];
        match piece.kind {
            PieceKind::Direct { frame, .. } => {
                match io.grants.grant(self.config.backend, frame, write) {
                    Ok(g) => {
                        self.jobs[j].pieces[i].gref = Access::Granted(g);
                        true
                    }
                    Err(_) => false,
                }
            }
            PieceKind::Copy { .. } => {
                // Prefer a page whose persistent grant is kept.
                let page = if persistent {
                    self.pool
                        .iter()
                        .position(|p| p.available() && matches!(p.persistent, Access::Granted(_)))
                        .or_else(|| self.pool.iter().position(PoolPage::available))
                } else {
                    self.pool.iter().position(PoolPage::available)
                };
                let Some(p) = page else {
                    return false;
                };
                if write {
                    copy_in(&self.jobs[j], piece, self.pool[p].frame, io.memory);
                }
                // The backend only reads the page of a write.
                let granted = grant_page(
                    &mut self.pool[p],
                    self.config.backend,
                    persistent,
                    write,
                    io.grants,
                    &mut self.counters,
                );
                if granted.is_none() {
                    return false;
                }
                if !persistent {
                    self.counters.bounced_segments += 1;
                }
                self.jobs[j].pieces[i].kind = PieceKind::Copy { page: p as u16 };
                true
            }
        }
    }

    pub(super) fn release_pieces<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        j: usize,
        from: usize,
        to: usize,
        io: &mut Io<'_, G, N, M>,
    ) {
        for i in from..to {
            let piece = &mut self.jobs[j].pieces[i];
            revoke(
                &mut piece.gref,
                io.grants,
                &mut self.ledger,
                &mut self.counters,
            );
            if let PieceKind::Copy { page } = piece.kind {
                if page != NONE16 {
                    piece.kind = PieceKind::Copy { page: NONE16 };
                    let pg = &mut self.pool[page as usize];
                    pg.busy = false;
                    revoke(
                        &mut pg.gref,
                        io.grants,
                        &mut self.ledger,
                        &mut self.counters,
                    );
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn take_slot(
        &mut self,
        s: usize,
        queue: usize,
        j: usize,
        wire_op: u8,
        inner_op: u8,
        first: u16,
        end: u16,
    ) -> u64 {
        // `s` came from `free_slot`: the top of the free list.
        debug_assert_eq!(self.free_slot(), Some(s));
        self.free_slots_len -= 1;
        let slot = &mut self.slots[s];
        slot.generation = slot.generation.wrapping_add(1);
        slot.busy = true;
        slot.job = j as u16;
        slot.wire_op = wire_op;
        slot.inner_op = inner_op;
        slot.first_piece = first;
        slot.end_piece = end;
        slot.nindirect = 0;
        slot.indirect = [NONE16; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
        slot.queue = queue as u8;
        self.queue_load[queue] += 1;
        self.next_queue = (queue + 1) % self.queues.max(1);
        self.counters.queue_requests[queue] += 1;
        (u64::from(slot.generation) << 32) | s as u64
    }

    fn push(&mut self, queue: usize, req: &WireRequest<'_>, pushed: &mut u32) {
        let mut out = [0u8; MAX_ENTRY];
        let n = layout::encode(self.layout, self.config.handle, req, &mut out);
        if let Some(ring) = self.rings[queue].as_mut() {
            // Room was checked when the queue was picked.
            let _: Result<(), RingError> = ring.push_request(&out[..n]);
        }
        self.counters.ring_requests += 1;
        *pushed |= 1 << queue;
    }

    fn complete_now(
        &mut self,
        j: usize,
        status: BlockStatus,
        complete: &mut impl FnMut(BlockCompletion),
    ) -> Issue {
        let transferred = if status == BlockStatus::Ok {
            self.jobs[j].bytes()
        } else {
            0
        };
        self.decide(j, status, transferred, complete);
        Issue::Done
    }
}

pub(super) enum Issue {
    Done,
    Wait,
}

pub(super) fn unreachable_params() -> FrontendParams {
    FrontendParams::negotiate(
        &crate::blkif::FrontendConfig::default(),
        &BackendFeatures::default(),
    )
}

/// Grants pool or indirect `page` for one request and marks it busy: with persistent grants its
/// kept grant (a hit: blkback still has it mapped) or a new grant it keeps, writable because
/// blkback maps every persistent grant read-write; otherwise a grant for this request only,
/// read-only when `readonly`. `None` when the grant table refuses (the page stays free).
fn grant_page<G: Grants>(
    page: &mut PoolPage,
    backend: DomId,
    persistent: bool,
    readonly: bool,
    grants: &mut G,
    counters: &mut Counters,
) -> Option<GrantRef> {
    let gref = if persistent {
        match page.persistent {
            Access::Granted(g) => {
                counters.persistent_hits += 1;
                g
            }
            _ => {
                let g = grants.grant(backend, page.frame, false).ok()?;
                page.persistent = Access::Granted(g);
                g
            }
        }
    } else {
        let g = grants.grant(backend, page.frame, readonly).ok()?;
        page.gref = Access::Granted(g);
        g
    };
    page.busy = true;
    Some(gref)
}

/// Cuts a data job into pieces. Returns `None` when they do not fit the job.
///
/// Only a whole guest page is granted as is (never part of a page: the rest of it may belong
/// to someone else); with `copy_all` (persistent grants, or a backend not trusted) nothing is.
/// Everything else is gathered into pool pages, cut where a grantable page follows on a
/// block boundary.
pub(super) fn plan<const S: usize>(job: &mut Job<S>, copy_all: bool, align: u32) -> Option<()> {
    let segs = &job.segs[..job.nsegs as usize];
    let total: u32 = segs.iter().map(|s| u32::from(s.length)).sum();
    let eligible = |s: &Segment| !copy_all && s.offset == 0 && usize::from(s.length) == PAGE_SIZE;
    let mut n = 0usize;
    let (mut i, mut within, mut pos) = (0usize, 0u32, 0u32);
    while pos < total {
        if n == S {
            return None;
        }
        let s = segs[i];
        if within == 0 && eligible(&s) {
            job.pieces[n] = Piece {
                stream: pos,
                len: u32::from(s.length),
                kind: PieceKind::Direct {
                    frame: s.frame,
                    offset: s.offset,
                },
                gref: Access::None,
            };
            n += 1;
            pos += u32::from(s.length);
            i += 1;
            continue;
        }
        let start = pos;
        let limit = (start + PAGE_SIZE as u32).min(total);
        loop {
            let rem = u32::from(segs[i].length) - within;
            if pos + rem <= limit {
                pos += rem;
                i += 1;
                within = 0;
                if pos == limit || (i < segs.len() && eligible(&segs[i]) && pos % align == 0) {
                    break;
                }
            } else {
                within += limit - pos;
                pos = limit;
                break;
            }
        }
        job.pieces[n] = Piece {
            stream: start,
            len: pos - start,
            kind: PieceKind::Copy { page: NONE16 },
            gref: Access::None,
        };
        n += 1;
    }
    job.npieces = n as u16;
    job.planned = true;
    job.next_piece = 0;
    Some(())
}

/// Calls `f(frame, offset_in_page, offset_in_piece, len)` for the guest ranges holding the
/// operation's bytes `stream..stream + len`.
fn for_guest_ranges<const S: usize>(
    job: &Job<S>,
    stream: u32,
    len: u32,
    mut f: impl FnMut(u64, usize, usize, usize),
) {
    let mut seg_start = 0u32;
    let end = stream + len;
    for s in &job.segs[..job.nsegs as usize] {
        let seg_end = seg_start + u32::from(s.length);
        let lo = seg_start.max(stream);
        let hi = seg_end.min(end);
        if lo < hi {
            f(
                s.frame,
                usize::from(s.offset) + (lo - seg_start) as usize,
                (lo - stream) as usize,
                (hi - lo) as usize,
            );
        }
        if seg_end >= end {
            break;
        }
        seg_start = seg_end;
    }
}

fn copy_in<const S: usize, M: GuestMemory>(job: &Job<S>, piece: Piece, page: u64, mem: &mut M) {
    for_guest_ranges(job, piece.stream, piece.len, |frame, off, at, len| {
        mem.copy(page, at, frame, off, len);
    });
}

pub(super) fn copy_out<const S: usize, M: GuestMemory>(
    job: &Job<S>,
    piece: Piece,
    page: u64,
    mem: &mut M,
) {
    for_guest_ranges(job, piece.stream, piece.len, |frame, off, at, len| {
        mem.copy(frame, off, page, at, len);
    });
}
