//! The xenstore wire protocol (`io/xs_wire.h`).

use crate::harness::{self, Catalogue};
use xen_abi::xenstore::{self, XsErrno, XsMsgType};

pub fn describe(c: &mut Catalogue) {
    use xenstore::{
        XENSTORE_CONNECTED, XENSTORE_ERROR_COMM, XENSTORE_ERROR_NONE, XENSTORE_ERROR_PROTO,
        XENSTORE_ERROR_RINGIDX, XENSTORE_RECONNECT, XENSTORE_SERVER_FEATURE_ERROR,
        XENSTORE_SERVER_FEATURE_RECONNECTION, XS_INVALID, XS_TYPE_COUNT,
    };
    c.structs
        .push(layout!(Both, xenstore::XsdSockmsg = "struct xsd_sockmsg" {
            msg_type => "type",
            req_id => "req_id",
            tx_id => "tx_id",
            len => "len",
        }));
    c.structs.push(
        layout!(Both, xenstore::XenstoreDomainInterface = "struct xenstore_domain_interface" {
            req => "req",
            rsp => "rsp",
            req_cons => "req_cons",
            req_prod => "req_prod",
            rsp_cons => "rsp_cons",
            rsp_prod => "rsp_prod",
            server_features => "server_features",
            connection => "connection",
            error => "error",
        }),
    );

    // Message types: the enum's discriminants against the C enumerators.
    let xs_control = XsMsgType::Control.as_u32();
    let xs_debug = xenstore::XS_DEBUG.as_u32();
    let xs_directory = XsMsgType::Directory.as_u32();
    let xs_read = XsMsgType::Read.as_u32();
    let xs_get_perms = XsMsgType::GetPerms.as_u32();
    let xs_watch = XsMsgType::Watch.as_u32();
    let xs_unwatch = XsMsgType::Unwatch.as_u32();
    let xs_transaction_start = XsMsgType::TransactionStart.as_u32();
    let xs_transaction_end = XsMsgType::TransactionEnd.as_u32();
    let xs_introduce = XsMsgType::Introduce.as_u32();
    let xs_release = XsMsgType::Release.as_u32();
    let xs_get_domain_path = XsMsgType::GetDomainPath.as_u32();
    let xs_write = XsMsgType::Write.as_u32();
    let xs_mkdir = XsMsgType::Mkdir.as_u32();
    let xs_rm = XsMsgType::Rm.as_u32();
    let xs_set_perms = XsMsgType::SetPerms.as_u32();
    let xs_watch_event = XsMsgType::WatchEvent.as_u32();
    let xs_error = XsMsgType::Error.as_u32();
    let xs_is_domain_introduced = XsMsgType::IsDomainIntroduced.as_u32();
    let xs_resume = XsMsgType::Resume.as_u32();
    let xs_set_target = XsMsgType::SetTarget.as_u32();
    let xs_reset_watches = XsMsgType::ResetWatches.as_u32();
    let xs_directory_part = XsMsgType::DirectoryPart.as_u32();
    c.consts.extend(consts!(Both;
        xs_control => "XS_CONTROL",
        xs_debug => "XS_DEBUG",
        xs_directory => "XS_DIRECTORY",
        xs_read => "XS_READ",
        xs_get_perms => "XS_GET_PERMS",
        xs_watch => "XS_WATCH",
        xs_unwatch => "XS_UNWATCH",
        xs_transaction_start => "XS_TRANSACTION_START",
        xs_transaction_end => "XS_TRANSACTION_END",
        xs_introduce => "XS_INTRODUCE",
        xs_release => "XS_RELEASE",
        xs_get_domain_path => "XS_GET_DOMAIN_PATH",
        xs_write => "XS_WRITE",
        xs_mkdir => "XS_MKDIR",
        xs_rm => "XS_RM",
        xs_set_perms => "XS_SET_PERMS",
        xs_watch_event => "XS_WATCH_EVENT",
        xs_error => "XS_ERROR",
        xs_is_domain_introduced => "XS_IS_DOMAIN_INTRODUCED",
        xs_resume => "XS_RESUME",
        xs_set_target => "XS_SET_TARGET",
        xs_reset_watches => "XS_RESET_WATCHES",
        xs_directory_part => "XS_DIRECTORY_PART",
        XS_TYPE_COUNT => "XS_TYPE_COUNT",
        XS_INVALID => "XS_INVALID",
    ));

    // Sizes are `usize` in Rust; compare them through u64.
    let xs_watch_path = xenstore::XS_WATCH_PATH as u64;
    let xs_watch_token = xenstore::XS_WATCH_TOKEN as u64;
    let xenstore_ring_size = xenstore::XENSTORE_RING_SIZE as u64;
    let xenstore_payload_max = xenstore::XENSTORE_PAYLOAD_MAX as u64;
    let xenstore_abs_path_max = xenstore::XENSTORE_ABS_PATH_MAX as u64;
    let xenstore_rel_path_max = xenstore::XENSTORE_REL_PATH_MAX as u64;
    let xsd_sockmsg_size = xenstore::XSD_SOCKMSG_SIZE as u64;
    let mask_0 = xenstore::mask_xenstore_idx(0) as u64;
    let mask_1500 = xenstore::mask_xenstore_idx(1500) as u64;
    let mask_max = xenstore::mask_xenstore_idx(u32::MAX) as u64;
    c.consts.extend(consts!(Both;
        xs_watch_path => "XS_WATCH_PATH",
        xs_watch_token => "XS_WATCH_TOKEN",
        xenstore_ring_size => "XENSTORE_RING_SIZE",
        xenstore_payload_max => "XENSTORE_PAYLOAD_MAX",
        xenstore_abs_path_max => "XENSTORE_ABS_PATH_MAX",
        xenstore_rel_path_max => "XENSTORE_REL_PATH_MAX",
        xsd_sockmsg_size => "sizeof(struct xsd_sockmsg)",
        mask_0 => "MASK_XENSTORE_IDX(0)",
        mask_1500 => "MASK_XENSTORE_IDX(1500)",
        mask_max => "MASK_XENSTORE_IDX((XENSTORE_RING_IDX)0xffffffffu)",
        XENSTORE_SERVER_FEATURE_RECONNECTION => "XENSTORE_SERVER_FEATURE_RECONNECTION",
        XENSTORE_SERVER_FEATURE_ERROR => "XENSTORE_SERVER_FEATURE_ERROR",
        XENSTORE_CONNECTED => "XENSTORE_CONNECTED",
        XENSTORE_RECONNECT => "XENSTORE_RECONNECT",
        XENSTORE_ERROR_NONE => "XENSTORE_ERROR_NONE",
        XENSTORE_ERROR_COMM => "XENSTORE_ERROR_COMM",
        XENSTORE_ERROR_RINGIDX => "XENSTORE_ERROR_RINGIDX",
        XENSTORE_ERROR_PROTO => "XENSTORE_ERROR_PROTO",
    ));
    let req_cons = xenstore::interface_offsets::REQ_CONS as u64;
    let rsp_prod = xenstore::interface_offsets::RSP_PROD as u64;
    let error = xenstore::interface_offsets::ERROR as u64;
    c.consts.extend(consts!(Both;
        req_cons => "offsetof(struct xenstore_domain_interface, req_cons)",
        rsp_prod => "offsetof(struct xenstore_domain_interface, rsp_prod)",
        error => "offsetof(struct xenstore_domain_interface, error)",
    ));
}

/// The error table is only defined when `<errno.h>` comes first, which the shared probe does not
/// include; this probe prints `xsd_errors` itself and compares it, entry by entry and in order,
/// with [`xenstore::XSD_ERRORS`] and [`XsErrno`].
#[test]
fn error_table_matches_xs_wire_h() {
    harness::check_headers_installed();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("layout-probe-xsd-errors");
    std::fs::create_dir_all(&dir).unwrap();
    let c_path = dir.join("probe.c");
    let exe_path = dir.join("probe");
    std::fs::write(
        &c_path,
        "#include <errno.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <xen/io/xs_wire.h>\n\
         int main(void) {\n\
           for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)\n\
             printf(\"%d %s\\n\", xsd_errors[i].errnum, xsd_errors[i].errstring);\n\
           return 0;\n}\n",
    )
    .unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let compiled = std::process::Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe_path)
        .arg(&c_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let ran = std::process::Command::new(&exe_path).output().unwrap();
    assert!(ran.status.success());
    let c_table: Vec<(i32, String)> = String::from_utf8(ran.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (n, name) = l.split_once(' ').unwrap();
            (n.parse().unwrap(), name.to_owned())
        })
        .collect();
    let rust_table: Vec<(i32, String)> = xenstore::XSD_ERRORS
        .iter()
        .map(|&(n, name)| (n, name.to_owned()))
        .collect();
    assert_eq!(rust_table, c_table);
    let from_enum: Vec<(i32, String)> = XsErrno::ALL
        .iter()
        .map(|e| (e.linux_errno(), e.name().to_owned()))
        .collect();
    assert_eq!(from_enum, c_table);
}
