//! The transmit half of [`NetQueue`]: submission, dispatch (the slots of each plan, the copy
//! pages filled), completion (see the `queue` module documentation; planning is in `txplan`).

use xen_abi::netif::{
    NetTxFlags, NetifExtraInfoGso, NetifTxRequest, NetifTxResponse, NETIF_RSP_DROPPED,
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETIF_TX_RING_SLOTS, XEN_NETIF_EXTRA_TYPE_GSO,
};
use xen_abi::types::GrantRef;
use zerocopy::{FromBytes, IntoBytes};

use crate::packet::{self, Checksum, Ip, MAX_HEADER};
use crate::platform::{Events, Grants, GuestMemory, Io, RingKind};
use crate::queue::{NetQueue, QueueError, QueueState, NONE16};
use crate::txplan::{self, out_header, pieces, place, segment_lens, L4Sum, Mode, TxPlan};
use crate::types::{
    Cast, Fragment, InvalidPacket, SubmitError, Tag, TxCompletion, TxPacket, TxStatus,
    MAX_TX_FRAGMENTS, PAGE_SIZE,
};

/// Transmit ids: one per slot of the (one-page) transmit ring.
pub(crate) const TX_IDS: usize = NETIF_TX_RING_SLOTS as usize;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    pub(crate) live: bool,
    on_ring: bool,
    /// A grant of this packet was still mapped at completion: it never completes.
    stuck: bool,
    tag: Tag,
    frags: [Fragment; MAX_TX_FRAGMENTS],
    nfrags: u8,
    len: u32,
    plan: TxPlan,
    awaiting: u16,
    worst: TxStatus,
    frag_grants: [Option<GrantRef>; MAX_TX_FRAGMENTS],
    /// Copy pages in use, one bit per pool page.
    pages: u64,
}

impl Pending {
    pub(crate) const EMPTY: Pending = Pending {
        live: false,
        on_ring: false,
        stuck: false,
        tag: Tag(0),
        frags: [Fragment {
            frame: 0,
            offset: 0,
            length: 0,
        }; MAX_TX_FRAGMENTS],
        nfrags: 0,
        len: 0,
        plan: TxPlan {
            mode: Mode::Direct,
            hdr_orig: 0,
            vlan: None,
            out_len: 0,
            headers: None,
            l4: None,
            l4_sum: L4Sum::Untouched,
            ipv4_header: false,
            gso: None,
            mss: 0,
            slots: 0,
            data_slots: 0,
            pages: 0,
            cast: Cast::Unicast,
            lso_payload: 0,
        },
        awaiting: 0,
        worst: TxStatus::Ok,
        frag_grants: [None; MAX_TX_FRAGMENTS],
        pages: 0,
    };
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolPage {
    frame: u64,
    busy: bool,
    gref: Option<GrantRef>,
}

impl PoolPage {
    pub(crate) const EMPTY: PoolPage = PoolPage::new(0);

    pub(crate) const fn new(frame: u64) -> Self {
        PoolPage {
            frame,
            busy: false,
            gref: None,
        }
    }
}

/// Reads bytes `[start, start + buf.len())` of the frame described by `frags`.
pub(crate) fn read_frame<M: GuestMemory>(
    mem: &M,
    frags: &[Fragment],
    start: usize,
    buf: &mut [u8],
) {
    let mut at = 0usize;
    let mut done = 0usize;
    for f in frags {
        let len = usize::from(f.length);
        let want = start + done;
        if done == buf.len() {
            break;
        }
        if want < at + len {
            let from = want - at;
            let n = (len - from).min(buf.len() - done);
            mem.read(
                f.frame,
                usize::from(f.offset) + from,
                &mut buf[done..done + n],
            );
            done += n;
        }
        at += len;
    }
}

impl<const PENDING: usize, const POOL: usize, const RXB: usize> NetQueue<PENDING, POOL, RXB> {
    /// Accepts a packet for sending. The fragments' memory belongs to the core until the
    /// completion with the packet's tag (from this call or a later [`poll`](Self::poll));
    /// on `Err` nothing was accepted.
    pub fn submit<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        packet: &TxPacket<'_>,
        io: &mut Io<'_, G, N, M>,
    ) -> Result<(), SubmitError> {
        if self.state != QueueState::Running {
            return Err(SubmitError::NotRunning);
        }
        let frags = packet.fragments;
        if frags.is_empty() || frags.len() > MAX_TX_FRAGMENTS {
            return Err(SubmitError::Invalid(InvalidPacket::FragmentCount));
        }
        let mut len = 0usize;
        for (index, f) in frags.iter().enumerate() {
            if f.length == 0 || usize::from(f.offset) + usize::from(f.length) > PAGE_SIZE {
                return Err(SubmitError::Invalid(InvalidPacket::FragmentOutOfPage {
                    index,
                }));
            }
            len += usize::from(f.length);
        }
        let mut hdr = [0u8; MAX_HEADER];
        let n = len.min(MAX_HEADER);
        read_frame(&*io.memory, frags, 0, &mut hdr[..n]);
        let params = self.params.ok_or(SubmitError::NotRunning)?;
        let plan = txplan::plan(&params, POOL, frags, len, &packet.offload, &hdr[..n])
            .map_err(SubmitError::Invalid)?;
        let Some(slot) = self.pending.iter().position(|p| !p.live) else {
            self.counters.tx_busy += 1;
            return Err(SubmitError::Busy);
        };
        let p = &mut self.pending[slot];
        *p = Pending::EMPTY;
        p.live = true;
        p.tag = packet.tag;
        p.frags[..frags.len()].copy_from_slice(frags);
        p.nfrags = frags.len() as u8;
        p.len = len as u32;
        p.plan = plan;
        let tail = (self.fifo_head + self.fifo_len) % PENDING;
        self.fifo[tail] = slot as u16;
        self.fifo_len += 1;
        self.dispatch(io);
        Ok(())
    }

    /// Puts queued packets on the ring, in order, while there is room.
    pub(crate) fn dispatch<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
    ) {
        if self.state != QueueState::Running {
            return;
        }
        let mut pushed = false;
        while self.fifo_len > 0 {
            let pidx = usize::from(self.fifo[self.fifo_head]);
            if !self.emit(io, pidx) {
                break;
            }
            self.fifo[self.fifo_head] = NONE16;
            self.fifo_head = (self.fifo_head + 1) % PENDING;
            self.fifo_len -= 1;
            pushed = true;
        }
        if pushed {
            if let Some(ring) = self.tx_ring.as_mut() {
                if ring.push_requests_and_check_notify() {
                    io.events.notify(usize::from(self.index), RingKind::Tx);
                }
            }
        }
    }

    /// Puts one packet on the ring if everything it needs is available; false otherwise
    /// (nothing changed).
    fn emit<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        pidx: usize,
    ) -> bool {
        let p = self.pending[pidx];
        let plan = p.plan;
        let Some(ring) = self.tx_ring.as_ref() else {
            return false;
        };
        let free_pages = self.pool.iter().filter(|pg| !pg.busy).count();
        if (ring.free_requests() as usize) < usize::from(plan.slots)
            || self.tx_free_id_count < usize::from(plan.data_slots)
            || free_pages < usize::from(plan.pages)
        {
            return false;
        }
        let frags = &p.frags[..usize::from(p.nfrags)];
        // Copy pages, in order.
        let mut page_list = [0u8; 64];
        let mut mask = 0u64;
        let mut k = 0;
        for (i, pg) in self.pool.iter().enumerate() {
            if k == usize::from(plan.pages) {
                break;
            }
            if !pg.busy {
                page_list[k] = i as u8;
                mask |= 1 << i;
                k += 1;
            }
        }
        let pages = &page_list[..usize::from(plan.pages)];
        // Fill the copy pages before granting them.
        let mut out = [0u8; MAX_HEADER + 4];
        let mut hdr = [0u8; MAX_HEADER];
        let hdr_orig = usize::from(plan.hdr_orig);
        read_frame(&*io.memory, frags, 0, &mut hdr[..hdr_orig]);
        let out_hdr = out_header(&hdr[..hdr_orig], plan.vlan, &mut out);
        match plan.mode {
            Mode::Direct => {}
            Mode::Header => {
                self.edit_headers(&mut out[..out_hdr], &plan, plan.out_len as usize);
                if plan.l4_sum == L4Sum::Software {
                    if let (Some(h), Some(l4)) = (plan.headers, plan.l4) {
                        let mut c = packet::pseudo_header(
                            &out,
                            &h,
                            packet::proto(l4),
                            plan.out_len - h.l4 as u32,
                        );
                        c.add(&out[h.l4..out_hdr]);
                        sum_frame(&*io.memory, frags, hdr_orig, p.len as usize, &mut c);
                        let v = packet::transport_checksum_value(l4, c.finish());
                        let at = h.l4 + packet::checksum_field(l4);
                        out[at..at + 2].copy_from_slice(&v.to_be_bytes());
                    }
                }
                io.memory
                    .write(self.pool[usize::from(pages[0])].frame, 0, &out[..out_hdr]);
            }
            Mode::Whole => {
                self.edit_headers(&mut out[..out_hdr], &plan, plan.out_len as usize);
                self.copy_segment(
                    io,
                    pages,
                    0,
                    &mut out[..out_hdr],
                    &plan,
                    frags,
                    hdr_orig..p.len as usize,
                    plan.l4_sum == L4Sum::Software,
                );
            }
            Mode::Segment => {
                if let Some(h) = plan.headers {
                    let payload = plan.out_len as usize - h.payload;
                    let mss = usize::from(plan.mss);
                    let mut starts = [0u32; TX_IDS];
                    let mut nseg = 0;
                    place(segment_lens(h.payload, payload, mss), |start, _| {
                        starts[nseg] = start as u32;
                        nseg += 1;
                    });
                    for (i, &start) in starts[..nseg].iter().enumerate() {
                        let chunk = (payload - i * mss).min(mss);
                        let mut seg = out;
                        packet::segment_headers(
                            &mut seg[..out_hdr],
                            &h,
                            i as u16,
                            (i * mss) as u32,
                            i + 1 == nseg,
                            h.payload + chunk,
                        );
                        let from = hdr_orig + i * mss;
                        self.copy_segment(
                            io,
                            pages,
                            start as usize,
                            &mut seg[..out_hdr],
                            &plan,
                            frags,
                            from..from + chunk,
                            true,
                        );
                    }
                }
            }
        }
        // Grants: copy pages, then the fragments the slots name.
        let mut frag_grants = [None; MAX_TX_FRAGMENTS];
        let mut ok = true;
        for &pg in pages {
            match io
                .grants
                .grant(self.backend, self.pool[usize::from(pg)].frame, true)
            {
                Ok(g) => self.pool[usize::from(pg)].gref = Some(g),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if ok && matches!(plan.mode, Mode::Direct | Mode::Header) {
            let start = if plan.mode == Mode::Direct {
                0
            } else {
                hdr_orig
            };
            let mut wanted = [false; MAX_TX_FRAGMENTS];
            pieces(frags, start, |i, _, _| wanted[i] = true);
            for (i, f) in frags.iter().enumerate() {
                if !wanted[i] {
                    continue;
                }
                match io.grants.grant(self.backend, f.frame, true) {
                    Ok(g) => frag_grants[i] = Some(g),
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
        }
        if !ok {
            self.counters.grant_shortages += 1;
            for &pg in pages {
                if let Some(g) = self.pool[usize::from(pg)].gref.take() {
                    let _ = io.grants.end(g);
                }
            }
            for g in frag_grants.iter().flatten() {
                let _ = io.grants.end(*g);
            }
            return false;
        }
        for &pg in pages {
            self.pool[usize::from(pg)].busy = true;
        }
        // The slots.
        let mut slots = SlotWriter {
            queue: self,
            pidx,
            pushed: 0,
        };
        let csum_flags = if plan.l4_sum == L4Sum::Blank {
            NetTxFlags::CSUM_BLANK | NetTxFlags::DATA_VALIDATED
        } else {
            NetTxFlags::empty()
        };
        match plan.mode {
            Mode::Direct => {
                let n = frags.len();
                for (i, f) in frags.iter().enumerate() {
                    let size = if i == 0 { p.len as u16 } else { f.length };
                    let more = i + 1 < n;
                    slots.data(frag_grants[i], f.offset, size, more, NetTxFlags::empty());
                }
            }
            Mode::Header => {
                let page_gref = slots.queue.pool[usize::from(pages[0])].gref;
                let npieces = pieces(frags, hdr_orig, |_, _, _| {});
                let mut flags = csum_flags;
                if plan.gso.is_some() {
                    flags |= NetTxFlags::EXTRA_INFO;
                }
                slots.data(page_gref, 0, plan.out_len as u16, npieces > 0, flags);
                if let Some((t, mss)) = plan.gso {
                    slots.gso(t, mss);
                }
                let mut k = 0;
                pieces(frags, hdr_orig, |i, off, len| {
                    k += 1;
                    slots.data(frag_grants[i], off, len, k < npieces, NetTxFlags::empty());
                });
            }
            Mode::Whole => {
                slots.copied(pages, 0, plan.out_len as usize, csum_flags, plan.gso);
            }
            Mode::Segment => {
                if let Some(h) = plan.headers {
                    let payload = plan.out_len as usize - h.payload;
                    place(
                        segment_lens(h.payload, payload, usize::from(plan.mss)),
                        |start, len| slots.copied(pages, start, len, NetTxFlags::empty(), None),
                    );
                }
            }
        }
        let pushed = slots.pushed;
        let q = &mut self.pending[pidx];
        q.on_ring = true;
        q.awaiting = pushed;
        q.frag_grants = frag_grants;
        q.pages = mask;
        let c = &mut self.counters;
        match plan.mode {
            Mode::Direct => c.tx_copy_free += 1,
            Mode::Header => {
                c.tx_header_copied += 1;
                c.tx_copied_bytes += out_hdr as u64;
            }
            Mode::Whole | Mode::Segment => {
                c.tx_copied += 1;
                c.tx_copied_bytes += u64::from(plan.out_len);
            }
        }
        match plan.l4_sum {
            L4Sum::Blank => c.tx_checksum_offloaded += 1,
            L4Sum::Software => c.tx_software_checksums += 1,
            L4Sum::Untouched => {}
        }
        if plan.gso.is_some() {
            c.tx_gso += 1;
        }
        if plan.mode == Mode::Segment {
            c.tx_software_segmented += 1;
            c.tx_software_segments += u64::from(plan.data_slots);
        }
        true
    }

    /// The header edits of a packet sent whole (not segmented): IP length of a GSO packet,
    /// pseudo-header sum of a blank checksum, zero for a software one, IPv4 header checksum.
    fn edit_headers(&self, out: &mut [u8], plan: &TxPlan, frame_len: usize) {
        let Some(h) = plan.headers else {
            return;
        };
        if out.len() < h.l4 {
            return;
        }
        if plan.gso.is_some() {
            packet::set_ip_length(out, &h, frame_len);
        }
        if let Some(l4) = plan.l4 {
            let at = h.l4 + packet::checksum_field(l4);
            match plan.l4_sum {
                L4Sum::Blank => {
                    let c = packet::pseudo_header(
                        out,
                        &h,
                        packet::proto(l4),
                        (frame_len - h.l4) as u32,
                    );
                    out[at..at + 2].copy_from_slice(&c.fold().to_be_bytes());
                }
                L4Sum::Software => out[at..at + 2].fill(0),
                L4Sum::Untouched => {}
            }
        }
        if h.ip == Ip::V4 && (plan.ipv4_header || plan.gso.is_some()) {
            packet::fill_ipv4_header_checksum(out, &h);
        }
    }

    /// Writes one netif packet into the copy pages at `start`: the edited headers `hdr`, then
    /// bytes `payload` of the original frame; with `software`, computes and stores the
    /// transport checksum and the IPv4 header checksum.
    #[allow(clippy::too_many_arguments)]
    fn copy_segment<G: Grants, N: Events, M: GuestMemory>(
        &self,
        io: &mut Io<'_, G, N, M>,
        pages: &[u8],
        start: usize,
        hdr: &mut [u8],
        plan: &TxPlan,
        frags: &[Fragment],
        payload: core::ops::Range<usize>,
        software: bool,
    ) {
        let seg_len = hdr.len() + payload.len();
        let mut sum = None;
        if let (true, Some(h), Some(l4)) = (software, plan.headers, plan.l4) {
            let at = h.l4 + packet::checksum_field(l4);
            hdr[at..at + 2].fill(0);
            if h.ip == Ip::V4 {
                packet::fill_ipv4_header_checksum(hdr, &h);
            }
            let mut c = packet::pseudo_header(hdr, &h, packet::proto(l4), (seg_len - h.l4) as u32);
            c.add(&hdr[h.l4..]);
            sum = Some((c, at, l4));
        }
        self.stream_write(io, pages, start, hdr);
        let mut chunk = [0u8; 512];
        let mut from = payload.start;
        let mut pos = start + hdr.len();
        while from < payload.end {
            let n = (payload.end - from).min(chunk.len());
            read_frame(&*io.memory, frags, from, &mut chunk[..n]);
            if let Some((c, _, _)) = sum.as_mut() {
                c.add(&chunk[..n]);
            }
            self.stream_write(io, pages, pos, &chunk[..n]);
            from += n;
            pos += n;
        }
        if let Some((c, at, l4)) = sum {
            let v = packet::transport_checksum_value(l4, c.finish());
            self.stream_write(io, pages, start + at, &v.to_be_bytes());
        }
    }

    fn stream_write<G: Grants, N: Events, M: GuestMemory>(
        &self,
        io: &mut Io<'_, G, N, M>,
        pages: &[u8],
        mut pos: usize,
        mut data: &[u8],
    ) {
        while !data.is_empty() {
            let (page, off) = (pos / PAGE_SIZE, pos % PAGE_SIZE);
            let n = (PAGE_SIZE - off).min(data.len());
            let frame = self.pool[usize::from(pages[page])].frame;
            io.memory.write(frame, off, &data[..n]);
            data = &data[n..];
            pos += n;
        }
    }

    /// Takes the transmit responses, completes finished packets, dispatches queued ones: the
    /// transmit channel's handler with split event channels ([`poll`](Self::poll) does both).
    pub fn poll_tx<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(TxCompletion),
    ) {
        if self.state != QueueState::Running {
            return;
        }
        loop {
            let Some(ring) = self.tx_ring.as_mut() else {
                return;
            };
            let rsp = match ring.take_response() {
                Ok(Some(r)) => r,
                Ok(None) => match ring.final_check_for_responses() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => return self.fail(io, QueueError::Ring(e)),
                },
                Err(e) => return self.fail(io, QueueError::Ring(e)),
            };
            self.tx_response(io, rsp, &mut complete);
            if self.state != QueueState::Running {
                return;
            }
        }
        self.dispatch(io);
    }

    fn tx_response<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        rsp: NetifTxResponse,
        complete: &mut impl FnMut(TxCompletion),
    ) {
        let status = match rsp.status {
            NETIF_RSP_NULL => return,
            NETIF_RSP_OKAY => TxStatus::Ok,
            NETIF_RSP_DROPPED => TxStatus::Dropped,
            NETIF_RSP_ERROR => TxStatus::Error,
            status => {
                self.violation(io, QueueError::TxBadStatus { status });
                TxStatus::Error
            }
        };
        let id = usize::from(rsp.id);
        let pidx = match self.tx_ids.get(id) {
            Some(&p) if p != NONE16 => usize::from(p),
            _ => return self.violation(io, QueueError::TxUnknownId { id: rsp.id }),
        };
        self.tx_ids[id] = NONE16;
        self.tx_free_ids[self.tx_free_id_count] = id as u16;
        self.tx_free_id_count += 1;
        let p = &mut self.pending[pidx];
        p.awaiting = p.awaiting.saturating_sub(1);
        p.worst = match (p.worst, status) {
            (TxStatus::Error, _) | (_, TxStatus::Error) => TxStatus::Error,
            (TxStatus::Dropped, _) | (_, TxStatus::Dropped) => TxStatus::Dropped,
            _ => TxStatus::Ok,
        };
        if p.awaiting == 0 {
            let worst = p.worst;
            self.finish(io, pidx, worst, complete);
        }
    }

    /// Ends the packet's grants and completes it, unless a grant is still mapped.
    fn finish<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        pidx: usize,
        status: TxStatus,
        complete: &mut impl FnMut(TxCompletion),
    ) {
        let p = self.pending[pidx];
        let mut clean = true;
        for g in p.frag_grants.iter().flatten() {
            clean &= self.end_grant(io, *g);
        }
        for i in 0..POOL {
            if p.pages & (1 << i) != 0 {
                if let Some(g) = self.pool[i].gref.take() {
                    clean &= self.end_grant(io, g);
                }
            }
        }
        let q = &mut self.pending[pidx];
        q.frag_grants = [None; MAX_TX_FRAGMENTS];
        q.on_ring = false;
        if !clean {
            // Its memory may still be read by the backend: neither the fragments nor the copy
            // pages are handed back.
            q.stuck = true;
            return;
        }
        for i in 0..POOL {
            if p.pages & (1 << i) != 0 {
                self.pool[i].busy = false;
            }
        }
        self.pending[pidx].live = false;
        let c = &mut self.counters.tx;
        match status {
            TxStatus::Ok => c.count(p.plan.cast, u64::from(p.plan.out_len)),
            TxStatus::Error => c.errors += 1,
            TxStatus::Dropped | TxStatus::Aborted => c.discards += 1,
        }
        complete(TxCompletion {
            tag: p.tag,
            status,
            lso_payload: p.plan.lso_payload,
        });
    }

    /// At disconnect: packets on the ring complete `Aborted` (their grants ended first).
    pub(crate) fn abort_tx<G: Grants, N: Events, M: GuestMemory>(
        &mut self,
        io: &mut Io<'_, G, N, M>,
        mut complete: impl FnMut(TxCompletion),
    ) {
        for pidx in 0..PENDING {
            let p = self.pending[pidx];
            if p.live && p.on_ring && !p.stuck {
                self.finish(io, pidx, TxStatus::Aborted, &mut complete);
            }
        }
        self.tx_ids = [NONE16; TX_IDS];
        for (i, id) in self.tx_free_ids.iter_mut().enumerate() {
            *id = (TX_IDS - 1 - i) as u16;
        }
        self.tx_free_id_count = TX_IDS;
    }
}

/// Adds bytes `[from, to)` of the frame to a checksum.
fn sum_frame<M: GuestMemory>(
    mem: &M,
    frags: &[Fragment],
    from: usize,
    to: usize,
    c: &mut Checksum,
) {
    let mut chunk = [0u8; 512];
    let mut at = from;
    while at < to {
        let n = (to - at).min(chunk.len());
        read_frame(mem, frags, at, &mut chunk[..n]);
        c.add(&chunk[..n]);
        at += n;
    }
}

/// Pushes the slots of one pending packet, giving each data slot an id.
struct SlotWriter<'q, const PENDING: usize, const POOL: usize, const RXB: usize> {
    queue: &'q mut NetQueue<PENDING, POOL, RXB>,
    pidx: usize,
    pushed: u16,
}

impl<const PENDING: usize, const POOL: usize, const RXB: usize> SlotWriter<'_, PENDING, POOL, RXB> {
    fn data(
        &mut self,
        gref: Option<GrantRef>,
        offset: u16,
        size: u16,
        more: bool,
        mut flags: NetTxFlags,
    ) {
        let q = &mut *self.queue;
        // Room was checked before anything was granted.
        q.tx_free_id_count -= 1;
        let id = q.tx_free_ids[q.tx_free_id_count];
        q.tx_ids[usize::from(id)] = self.pidx as u16;
        if more {
            flags |= NetTxFlags::MORE_DATA;
        }
        let req = NetifTxRequest {
            gref: gref.unwrap_or(0),
            offset,
            flags: flags.bits(),
            id,
            size,
        };
        if let Some(ring) = q.tx_ring.as_mut() {
            let _ = ring.push_request(&req);
        }
        self.pushed += 1;
    }

    fn gso(&mut self, gso_type: u8, mss: u16) {
        let extra = NetifExtraInfoGso {
            extra_type: XEN_NETIF_EXTRA_TYPE_GSO,
            flags: 0,
            size: mss,
            gso_type,
            pad: 0,
            features: 0,
        };
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(extra.as_bytes());
        if let (Some(ring), Ok(req)) = (
            self.queue.tx_ring.as_mut(),
            NetifTxRequest::read_from_bytes(&bytes),
        ) {
            let _ = ring.push_request(&req);
        }
    }

    /// The slots of a netif packet of `len` bytes at `start` in the copy pages.
    fn copied(
        &mut self,
        pages: &[u8],
        start: usize,
        len: usize,
        first_flags: NetTxFlags,
        gso: Option<(u8, u16)>,
    ) {
        let mut pos = start;
        let end = start + len;
        let mut first = true;
        while pos < end {
            let (page, off) = (pos / PAGE_SIZE, pos % PAGE_SIZE);
            let n = (PAGE_SIZE - off).min(end - pos);
            let gref = self.queue.pool[usize::from(pages[page])].gref;
            let (size, mut flags) = if first {
                (len as u16, first_flags)
            } else {
                (n as u16, NetTxFlags::empty())
            };
            if first && gso.is_some() {
                flags |= NetTxFlags::EXTRA_INFO;
            }
            self.data(gref, off as u16, size, pos + n < end, flags);
            if first {
                if let Some((t, mss)) = gso {
                    self.gso(t, mss);
                }
            }
            first = false;
            pos += n;
        }
    }
}
