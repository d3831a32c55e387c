//! The hypercall table and the arity of every call, from the core's side and from Xen's.

use super::*;

#[test]
fn negative_returns_become_errno() {
    let f = ready();
    f.fail.borrow_mut().insert((HYPERVISOR_HVM_OP, 1), -13);
    assert_eq!(
        hvm::get_param(&f, 1),
        Err(HvError::Hypercall {
            op: HYPERVISOR_HVM_OP,
            cmd: 1,
            errno: XenErrno::EACCES
        })
    );
    // A hypercall Xen does not have.
    let mut args = [
        Arg::Value(0),
        Arg::Null,
        Arg::Unused,
        Arg::Unused,
        Arg::Unused,
    ];
    assert_eq!(f.hypercall(99, &mut args), ENOSYS);
}

fn query_size_arg() -> GnttabQuerySize {
    GnttabQuerySize {
        dom: xen_abi::types::DOMID_SELF,
        pad0: 0,
        nr_frames: 0,
        max_nr_frames: 0,
        status: 0,
        pad1: 0,
    }
}

/// The bug this table exists for: `GNTTABOP_query_size` issued as `(cmd, uop)` without its
/// `count`. The core's table refuses it before the platform sees it; issued anyway, the fake
/// answers as Xen does (`count != 1` is `-EINVAL`) and names the missing register.
#[test]
fn query_size_without_count_is_refused_by_the_table_and_by_xen() {
    let mut f = ready();
    f.abi.expect_violations = true;
    let mut arg = query_size_arg();
    fn old_shape(arg: &mut GnttabQuerySize) -> [Arg<'_>; 5] {
        [
            Arg::Value(u64::from(GNTTABOP_QUERY_SIZE)),
            Arg::Buffer(arg.as_mut_bytes()),
            Arg::Unused,
            Arg::Unused,
            Arg::Unused,
        ]
    }
    assert_eq!(
        invoke(&f, &GNTTABOP_QUERY_SIZE_CALL, &mut old_shape(&mut arg)),
        Err(HvError::Arity {
            call: "GNTTABOP_query_size",
            index: 2,
            expected: Param::Value {
                meaning: "count",
                exactly: Some(1)
            }
        })
    );
    assert!(f.calls.borrow().is_empty(), "nothing reaches the platform");
    let e = invoke(&f, &GNTTABOP_QUERY_SIZE_CALL, &mut old_shape(&mut arg)).unwrap_err();
    assert_eq!(
        std::format!("{e}"),
        "GNTTABOP_query_size: argument 3 does not fit the hypercall table (expected count = 1)"
    );
    // Past the table (a platform bug, or the old wrapper): Xen's answer, and the fake names it.
    assert_eq!(
        f.hypercall(HYPERVISOR_GRANT_TABLE_OP, &mut old_shape(&mut arg)),
        EINVAL
    );
    assert_eq!(
        *f.abi.violations.borrow(),
        [std::format!(
            "hypercall {HYPERVISOR_GRANT_TABLE_OP}: register 3 not passed"
        )]
    );
    // A count of 2 is refused by Xen's own check, without a violation of the register rules.
    f.abi.violations.borrow_mut().clear();
    let mut args = old_shape(&mut arg);
    args[2] = Arg::Value(2);
    assert_eq!(f.hypercall(HYPERVISOR_GRANT_TABLE_OP, &mut args), EINVAL);
    // So does the table.
    assert!(matches!(
        invoke(&f, &GNTTABOP_QUERY_SIZE_CALL, &mut args),
        Err(HvError::Arity { index: 2, .. })
    ));
    assert!(f.abi.violations.borrow().is_empty());
    // The wrapper passes count = 1.
    assert_eq!(
        gnttab::query_size(&f),
        Ok(gnttab::GrantTableSize {
            nr_frames: 1,
            max_nr_frames: 4
        })
    );
    assert!(f.abi.violations.borrow().is_empty());
}

#[test]
fn every_other_arity_mistake_is_caught_by_table_and_fake() {
    let mut f = ready();
    f.abi.expect_violations = true;
    // An extra register on a two-argument hypercall.
    let mut info = FeatureInfo {
        submap_idx: 0,
        submap: 0,
    };
    let mut args = [
        Arg::Value(u64::from(XENVER_GET_FEATURES)),
        Arg::Buffer(info.as_mut_bytes()),
        Arg::Value(1),
        Arg::Unused,
        Arg::Unused,
    ];
    assert!(matches!(
        invoke(&f, &calls::XENVER_GET_FEATURES_CALL, &mut args),
        Err(HvError::Arity { index: 2, .. })
    ));
    f.hypercall(HYPERVISOR_XEN_VERSION, &mut args);
    assert_eq!(
        f.abi.violations.borrow_mut().pop(),
        Some(std::format!(
            "hypercall {HYPERVISOR_XEN_VERSION}: extra register 3"
        ))
    );
    // vcpu_op without its vCPU id (the structure in register 2 instead of 3).
    let mut a = VcpuRegisterVcpuInfo {
        mfn: 1,
        offset: 0,
        rsvd: 0,
    };
    let mut args = [
        Arg::Value(u64::from(VCPUOP_REGISTER_VCPU_INFO)),
        Arg::Buffer(a.as_mut_bytes()),
        Arg::Unused,
        Arg::Unused,
        Arg::Unused,
    ];
    assert!(matches!(
        invoke(&f, &calls::VCPUOP_REGISTER_VCPU_INFO_CALL, &mut args),
        Err(HvError::Arity { index: 1, .. })
    ));
    assert_eq!(f.hypercall(HYPERVISOR_VCPU_OP, &mut args), -14);
    assert!(f.abi.violations.borrow_mut().pop().is_some());
    // A structure of the wrong size, and the wrong sub-op for the entry.
    let mut short = [0u8; 4];
    assert!(matches!(
        invoke(
            &f,
            &calls::XENVER_GET_FEATURES_CALL,
            &mut calls::cmd_struct(&calls::XENVER_GET_FEATURES_CALL, &mut short)
        ),
        Err(HvError::Arity { index: 1, .. })
    ));
    let mut args = calls::cmd_struct(&calls::HVMOP_GET_PARAM_CALL, info.as_mut_bytes());
    assert!(matches!(
        invoke(&f, &calls::XENVER_GET_FEATURES_CALL, &mut args),
        Err(HvError::Arity { index: 0, .. })
    ));
    // XENVER_version takes a NULL handle, not a missing one.
    let mut args = [
        Arg::Value(u64::from(XENVER_VERSION)),
        Arg::Unused,
        Arg::Unused,
        Arg::Unused,
        Arg::Unused,
    ];
    assert!(matches!(
        invoke(&f, &calls::XENVER_VERSION_CALL, &mut args),
        Err(HvError::Arity { index: 1, .. })
    ));
    assert!(f.abi.violations.borrow().is_empty());
}

#[test]
fn every_wrapper_passes_what_xen_reads() {
    // The fake's drop check fails the test on any violation.
    let f = ready();
    assert_eq!(
        version::version(&f),
        Ok(version::Version {
            major: 4,
            minor: 19
        })
    );
    assert_eq!(version::features(&f), Ok(Features::HVM_CALLBACK_VECTOR));
    let extra = version::extraversion(&f).unwrap();
    assert_eq!(version::extraversion_str(&extra), Some(".3-rc1"));
    let mut bad = extra;
    bad[0] = 0xff;
    assert_eq!(version::extraversion_str(&bad), None);
    gnttab::query_size(&f).unwrap();
    gnttab::get_version(&f).unwrap();
    gnttab::set_version(&f, 1).unwrap();
    gnttab::map_frame(&f, 0, 0xf000).unwrap();
    si::map_at(&f, 0xf001).unwrap();
    si::register_vcpu_info(&f, 33, 0xf002, 64).unwrap();
    assert_eq!(*f.vcpu_info.borrow(), [(33, 0xf002, 64)]);
    hvm::get_param(&f, HVM_PARAM_STORE_PFN).unwrap();
    hvm::set_param(&f, HVM_PARAM_CALLBACK_IRQ, 0).unwrap();
    hvm::set_upcall_vector(&f, 0, 0xf3).unwrap();
    assert_eq!(sched::suspend(&f), Ok(1));
    let mut frames = [0u64; 2];
    assert_eq!(gnttab::frames(&f, &mut frames), Ok(2));
    // Every entry of the table was exercised except the event-channel ones (evtchn's tests).
    let seen = f.calls.borrow().clone();
    for call in calls::TABLE
        .iter()
        .filter(|c| c.op != HYPERVISOR_EVENT_CHANNEL_OP)
    {
        if call.name == "XENVER_extraversion" {
            continue;
        }
        assert!(
            seen.contains(&(call.op, u64::from(call.cmd))),
            "{} not issued",
            call.name
        );
    }
}

#[test]
fn register_vcpu_info_refuses_offsets_xen_refuses() {
    let f = ready();
    for offset in [4096 - 32, 4, 8000] {
        assert!(matches!(
            si::register_vcpu_info(&f, 40, 1, offset),
            Err(HvError::Hypercall {
                errno: XenErrno::ENXIO,
                ..
            })
        ));
    }
    assert!(f.calls.borrow().is_empty());
}

#[test]
fn setup_table_fills_the_frame_list_through_its_handle() {
    let mut f = ready();
    f.grant_frames = vec![0x777, 0x778];
    let mut frames = [0u64; 2];
    assert_eq!(gnttab::frames(&f, &mut frames), Ok(2));
    assert_eq!(frames, [0x777, 0x778]);
    assert_eq!(
        *f.handles.borrow(),
        vec![(core::mem::offset_of!(GnttabSetupTable, frame_list), 16)]
    );
    // More frames than Xen's maximum: a GNTST status.
    let mut frames = [0u64; 5];
    assert_eq!(
        gnttab::frames(&f, &mut frames),
        Err(HvError::GrantStatus {
            cmd: GNTTABOP_SETUP_TABLE,
            status: -1
        })
    );
}
