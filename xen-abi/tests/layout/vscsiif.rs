//! The SCSI passthrough ring (`io/vscsiif.h`).

use crate::harness::Catalogue;
use crate::padding;
use xen_abi::vscsiif;
use xen_abi::vscsiif::{
    VSCSIIF_ACT_SCSI_ABORT, VSCSIIF_ACT_SCSI_CDB, VSCSIIF_ACT_SCSI_RESET,
    VSCSIIF_ACT_SCSI_SG_PRESET, VSCSIIF_RING_SLOTS, VSCSIIF_SG_GRANT, XEN_VSCSIIF_RSLT_HOST_ABORT,
    XEN_VSCSIIF_RSLT_HOST_ALLOC_FAILURE, XEN_VSCSIIF_RSLT_HOST_BAD_INTR,
    XEN_VSCSIIF_RSLT_HOST_BAD_TARGET, XEN_VSCSIIF_RSLT_HOST_BUS_BUSY, XEN_VSCSIIF_RSLT_HOST_ERROR,
    XEN_VSCSIIF_RSLT_HOST_IMM_RETRY, XEN_VSCSIIF_RSLT_HOST_MEDIUM_ERROR,
    XEN_VSCSIIF_RSLT_HOST_NEXUS_FAILURE, XEN_VSCSIIF_RSLT_HOST_NO_CONNECT,
    XEN_VSCSIIF_RSLT_HOST_OK, XEN_VSCSIIF_RSLT_HOST_PARITY, XEN_VSCSIIF_RSLT_HOST_PASSTHROUGH,
    XEN_VSCSIIF_RSLT_HOST_REQUEUE, XEN_VSCSIIF_RSLT_HOST_RESET, XEN_VSCSIIF_RSLT_HOST_SOFT_ERROR,
    XEN_VSCSIIF_RSLT_HOST_TARGET_FAILURE, XEN_VSCSIIF_RSLT_HOST_TIME_OUT,
    XEN_VSCSIIF_RSLT_HOST_TRANSPORT_DISRUPTED, XEN_VSCSIIF_RSLT_HOST_TRANSPORT_FAILFAST,
    XEN_VSCSIIF_RSLT_HOST_TRANSPORT_MARGINAL, XEN_VSCSIIF_RSLT_RESET_FAILED,
    XEN_VSCSIIF_RSLT_RESET_SUCCESS,
};

pub fn describe(c: &mut Catalogue) {
    padding::push(
        c,
        layout!(Both, vscsiif::ScsiifRequestSegment = "struct scsiif_request_segment" {
            gref => "gref",
            offset => "offset",
            length => "length",
        }),
    );
    padding::push(
        c,
        layout!(Both, vscsiif::VscsiifRequest = "struct vscsiif_request" {
            rqid => "rqid",
            act => "act",
            cmd_len => "cmd_len",
            cmnd => "cmnd",
            timeout_per_command => "timeout_per_command",
            channel => "channel",
            id => "id",
            lun => "lun",
            ref_rqid => "ref_rqid",
            sc_data_direction => "sc_data_direction",
            nr_segments => "nr_segments",
            seg => "seg",
            reserved => "reserved",
        }),
    );
    padding::push(
        c,
        layout!(Both, vscsiif::VscsiifResponse = "struct vscsiif_response" {
            rqid => "rqid",
            act => "act",
            sense_len => "sense_len",
            sense_buffer => "sense_buffer",
            rslt => "rslt",
            residual_len => "residual_len",
            reserved => "reserved",
        }),
    );

    c.consts.extend(consts!(Both;
        VSCSIIF_ACT_SCSI_CDB => "VSCSIIF_ACT_SCSI_CDB",
        VSCSIIF_ACT_SCSI_ABORT => "VSCSIIF_ACT_SCSI_ABORT",
        VSCSIIF_ACT_SCSI_RESET => "VSCSIIF_ACT_SCSI_RESET",
        VSCSIIF_ACT_SCSI_SG_PRESET => "VSCSIIF_ACT_SCSI_SG_PRESET",
        VSCSIIF_SG_GRANT => "VSCSIIF_SG_GRANT",
        XEN_VSCSIIF_RSLT_HOST_OK => "XEN_VSCSIIF_RSLT_HOST_OK",
        XEN_VSCSIIF_RSLT_HOST_NO_CONNECT => "XEN_VSCSIIF_RSLT_HOST_NO_CONNECT",
        XEN_VSCSIIF_RSLT_HOST_BUS_BUSY => "XEN_VSCSIIF_RSLT_HOST_BUS_BUSY",
        XEN_VSCSIIF_RSLT_HOST_TIME_OUT => "XEN_VSCSIIF_RSLT_HOST_TIME_OUT",
        XEN_VSCSIIF_RSLT_HOST_BAD_TARGET => "XEN_VSCSIIF_RSLT_HOST_BAD_TARGET",
        XEN_VSCSIIF_RSLT_HOST_ABORT => "XEN_VSCSIIF_RSLT_HOST_ABORT",
        XEN_VSCSIIF_RSLT_HOST_PARITY => "XEN_VSCSIIF_RSLT_HOST_PARITY",
        XEN_VSCSIIF_RSLT_HOST_ERROR => "XEN_VSCSIIF_RSLT_HOST_ERROR",
        XEN_VSCSIIF_RSLT_HOST_RESET => "XEN_VSCSIIF_RSLT_HOST_RESET",
        XEN_VSCSIIF_RSLT_HOST_BAD_INTR => "XEN_VSCSIIF_RSLT_HOST_BAD_INTR",
        XEN_VSCSIIF_RSLT_HOST_PASSTHROUGH => "XEN_VSCSIIF_RSLT_HOST_PASSTHROUGH",
        XEN_VSCSIIF_RSLT_HOST_SOFT_ERROR => "XEN_VSCSIIF_RSLT_HOST_SOFT_ERROR",
        XEN_VSCSIIF_RSLT_HOST_IMM_RETRY => "XEN_VSCSIIF_RSLT_HOST_IMM_RETRY",
        XEN_VSCSIIF_RSLT_HOST_REQUEUE => "XEN_VSCSIIF_RSLT_HOST_REQUEUE",
        XEN_VSCSIIF_RSLT_HOST_TRANSPORT_DISRUPTED => "XEN_VSCSIIF_RSLT_HOST_TRANSPORT_DISRUPTED",
        XEN_VSCSIIF_RSLT_HOST_TRANSPORT_FAILFAST => "XEN_VSCSIIF_RSLT_HOST_TRANSPORT_FAILFAST",
        XEN_VSCSIIF_RSLT_HOST_TARGET_FAILURE => "XEN_VSCSIIF_RSLT_HOST_TARGET_FAILURE",
        XEN_VSCSIIF_RSLT_HOST_NEXUS_FAILURE => "XEN_VSCSIIF_RSLT_HOST_NEXUS_FAILURE",
        XEN_VSCSIIF_RSLT_HOST_ALLOC_FAILURE => "XEN_VSCSIIF_RSLT_HOST_ALLOC_FAILURE",
        XEN_VSCSIIF_RSLT_HOST_MEDIUM_ERROR => "XEN_VSCSIIF_RSLT_HOST_MEDIUM_ERROR",
        XEN_VSCSIIF_RSLT_HOST_TRANSPORT_MARGINAL => "XEN_VSCSIIF_RSLT_HOST_TRANSPORT_MARGINAL",
        XEN_VSCSIIF_RSLT_RESET_SUCCESS => "XEN_VSCSIIF_RSLT_RESET_SUCCESS",
        XEN_VSCSIIF_RSLT_RESET_FAILED => "XEN_VSCSIIF_RSLT_RESET_FAILED",
        VSCSIIF_RING_SLOTS => "__CONST_RING_SIZE(vscsiif, 4096)",
    ));

    // Sizes are `usize` in Rust; compare them through locals.
    let vscsiif_sg_tablesize = vscsiif::VSCSIIF_SG_TABLESIZE as u64;
    let vscsiif_max_command_size = vscsiif::VSCSIIF_MAX_COMMAND_SIZE as u64;
    let vscsiif_sense_buffersize = vscsiif::VSCSIIF_SENSE_BUFFERSIZE as u64;
    let vscsiif_page_size = vscsiif::VSCSIIF_PAGE_SIZE as u64;
    let vscsiif_sg_per_page = vscsiif::VSCSIIF_SG_PER_PAGE as u64;
    let vscsiif_ring_entry_size = vscsiif::VSCSIIF_RING_ENTRY_SIZE as u64;
    // The result-decoding macros, applied to values with every byte set differently and to a
    // negative one.
    let vscsiif_rslt_status_sample = vscsiif::rslt_status(0x7f5a_3c11);
    let vscsiif_rslt_host_sample = vscsiif::rslt_host(0x7f5a_3c11);
    let vscsiif_rslt_status_negative = vscsiif::rslt_status(-0x0123_4568);
    let vscsiif_rslt_host_negative = vscsiif::rslt_host(-0x0123_4568);
    c.consts.extend(consts!(Both;
        vscsiif_sg_tablesize => "VSCSIIF_SG_TABLESIZE",
        vscsiif_max_command_size => "VSCSIIF_MAX_COMMAND_SIZE",
        vscsiif_sense_buffersize => "VSCSIIF_SENSE_BUFFERSIZE",
        vscsiif_page_size => "VSCSIIF_PAGE_SIZE",
        vscsiif_sg_per_page => "VSCSIIF_SG_PER_PAGE",
        vscsiif_ring_entry_size => "sizeof(union vscsiif_sring_entry)",
        vscsiif_rslt_status_sample => "XEN_VSCSIIF_RSLT_STATUS((int32_t)0x7f5a3c11)",
        vscsiif_rslt_host_sample => "XEN_VSCSIIF_RSLT_HOST((int32_t)0x7f5a3c11)",
        vscsiif_rslt_status_negative => "XEN_VSCSIIF_RSLT_STATUS((int32_t)-0x01234568)",
        vscsiif_rslt_host_negative => "XEN_VSCSIIF_RSLT_HOST((int32_t)-0x01234568)",
    ));
}
