//! Version and feature queries (`version.h`).

use crate::harness::Catalogue;
use xen_abi::version;

pub fn describe(c: &mut Catalogue) {
    c.structs.push(
        layout!(Both, version::CompileInfo = "struct xen_compile_info" {
            compiler => "compiler",
            compile_by => "compile_by",
            compile_domain => "compile_domain",
            compile_date => "compile_date",
        }),
    );
    c.structs.push(
        layout!(X86_64, version::PlatformParameters = "struct xen_platform_parameters" {
            virt_start => "virt_start",
        }),
    );
    c.structs.push(
        layout!(Both, version::FeatureInfo = "struct xen_feature_info" {
            submap_idx => "submap_idx",
            submap => "submap",
        }),
    );
    c.structs.push(
        layout!(Both, version::BuildIdHeader = "struct xen_build_id" {
            len => "len",
        }),
    );
    constants(c);
}

fn constants(c: &mut Catalogue) {
    use xen_abi::version::*;

    c.consts.extend(consts!(Both;
        XENVER_VERSION => "XENVER_version",
        XENVER_EXTRAVERSION => "XENVER_extraversion",
        XENVER_COMPILE_INFO => "XENVER_compile_info",
        XENVER_CAPABILITIES => "XENVER_capabilities",
        XENVER_CHANGESET => "XENVER_changeset",
        XENVER_PLATFORM_PARAMETERS => "XENVER_platform_parameters",
        XENVER_GET_FEATURES => "XENVER_get_features",
        XENVER_PAGESIZE => "XENVER_pagesize",
        XENVER_GUEST_HANDLE => "XENVER_guest_handle",
        XENVER_COMMANDLINE => "XENVER_commandline",
        XENVER_BUILD_ID => "XENVER_build_id",
    ));
    let xen_extraversion_len = XEN_EXTRAVERSION_LEN as u64;
    let xen_capabilities_info_len = XEN_CAPABILITIES_INFO_LEN as u64;
    let xen_changeset_info_len = XEN_CHANGESET_INFO_LEN as u64;
    let xen_extraversion_size = size_of::<XenExtraversion>() as u64;
    let xen_capabilities_info_size = size_of::<XenCapabilitiesInfo>() as u64;
    let xen_changeset_info_size = size_of::<XenChangesetInfo>() as u64;
    let xen_commandline_size = size_of::<XenCommandline>() as u64;
    let xen_domain_handle_size = size_of::<XenDomainHandle>() as u64;
    c.consts.extend(consts!(Both;
        xen_extraversion_len => "XEN_EXTRAVERSION_LEN",
        xen_capabilities_info_len => "XEN_CAPABILITIES_INFO_LEN",
        xen_changeset_info_len => "XEN_CHANGESET_INFO_LEN",
        xen_extraversion_size => "sizeof(xen_extraversion_t)",
        xen_capabilities_info_size => "sizeof(xen_capabilities_info_t)",
        xen_changeset_info_size => "sizeof(xen_changeset_info_t)",
        xen_commandline_size => "sizeof(xen_commandline_t)",
        xen_domain_handle_size => "sizeof(xen_domain_handle_t)",
    ));
}
