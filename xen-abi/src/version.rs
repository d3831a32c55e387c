//! Version and feature queries (`version.h`): the `XENVER_*` sub-ops of
//! [`crate::hypercall::HYPERVISOR_XEN_VERSION`]. All return 0 on success except
//! [`XENVER_VERSION`], [`XENVER_PAGESIZE`] and [`XENVER_BUILD_ID`], which return their result.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Returns the version as `major << 16 | minor`; argument NULL (`XENVER_version`). See
/// [`version_major`] and [`version_minor`].
#[doc(alias = "XENVER_version")]
pub const XENVER_VERSION: u32 = 0;

/// Fills a [`XenExtraversion`], such as `".2"` or `"-rc"` (`XENVER_extraversion`).
#[doc(alias = "XENVER_extraversion")]
pub const XENVER_EXTRAVERSION: u32 = 1;

/// Fills a [`CompileInfo`] (`XENVER_compile_info`).
#[doc(alias = "XENVER_compile_info")]
pub const XENVER_COMPILE_INFO: u32 = 2;

/// Fills a [`XenCapabilitiesInfo`], the space-separated guest types the host runs, such as
/// `"xen-3.0-x86_64 hvm-3.0-x86_64"` (`XENVER_capabilities`).
#[doc(alias = "XENVER_capabilities")]
pub const XENVER_CAPABILITIES: u32 = 3;

/// Fills a [`XenChangesetInfo`], the source revision (`XENVER_changeset`).
#[doc(alias = "XENVER_changeset")]
pub const XENVER_CHANGESET: u32 = 4;

/// Fills a [`PlatformParameters`] (`XENVER_platform_parameters`).
#[doc(alias = "XENVER_platform_parameters")]
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;

/// Fills a [`FeatureInfo`] with one 32-bit word of `XENFEAT_*` bits (`XENVER_get_features`).
#[doc(alias = "XENVER_get_features")]
pub const XENVER_GET_FEATURES: u32 = 6;

/// Returns the host's page size; argument NULL (`XENVER_pagesize`).
#[doc(alias = "XENVER_pagesize")]
pub const XENVER_PAGESIZE: u32 = 7;

/// Fills a [`XenDomainHandle`], the 16-byte handle (normally the UUID) the toolstack gave the
/// domain (`XENVER_guest_handle`).
#[doc(alias = "XENVER_guest_handle")]
pub const XENVER_GUEST_HANDLE: u32 = 8;

/// Fills a [`XenCommandline`], Xen's boot command line (`XENVER_commandline`).
#[doc(alias = "XENVER_commandline")]
pub const XENVER_COMMANDLINE: u32 = 9;

/// Fills a [`BuildIdHeader`] and the bytes after it, returning the number of bytes written, or
/// the size needed when called without a buffer (`XENVER_build_id`).
#[doc(alias = "XENVER_build_id")]
pub const XENVER_BUILD_ID: u32 = 10;

/// The major version in an [`XENVER_VERSION`] result.
pub const fn version_major(version: u32) -> u16 {
    (version >> 16) as u16
}

/// The minor version in an [`XENVER_VERSION`] result.
pub const fn version_minor(version: u32) -> u16 {
    version as u16
}

/// The extra version string, NUL-padded (`xen_extraversion_t`).
#[doc(alias = "xen_extraversion_t")]
pub type XenExtraversion = [u8; XEN_EXTRAVERSION_LEN];

/// The size of [`XenExtraversion`] (`XEN_EXTRAVERSION_LEN`).
pub const XEN_EXTRAVERSION_LEN: usize = 16;

/// The capabilities string, NUL-padded (`xen_capabilities_info_t`).
#[doc(alias = "xen_capabilities_info_t")]
pub type XenCapabilitiesInfo = [u8; XEN_CAPABILITIES_INFO_LEN];

/// The size of [`XenCapabilitiesInfo`] (`XEN_CAPABILITIES_INFO_LEN`).
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;

/// The changeset string, NUL-padded (`xen_changeset_info_t`).
#[doc(alias = "xen_changeset_info_t")]
pub type XenChangesetInfo = [u8; XEN_CHANGESET_INFO_LEN];

/// The size of [`XenChangesetInfo`] (`XEN_CHANGESET_INFO_LEN`).
pub const XEN_CHANGESET_INFO_LEN: usize = 64;

/// Xen's command line, NUL-padded (`xen_commandline_t`).
#[doc(alias = "xen_commandline_t")]
pub type XenCommandline = [u8; 1024];

/// A domain handle, normally the domain's UUID in big-endian byte order (`xen_domain_handle_t`).
#[doc(alias = "xen_domain_handle_t")]
pub type XenDomainHandle = [u8; 16];

/// The compiler, builder and date of the running Xen, each NUL-padded (`struct
/// xen_compile_info`).
#[doc(alias = "xen_compile_info")]
#[doc(alias = "xen_compile_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CompileInfo {
    /// The compiler's version string.
    pub compiler: [u8; 64],
    /// Who built Xen.
    pub compile_by: [u8; 16],
    /// The builder's domain name.
    pub compile_domain: [u8; 32],
    /// The build date.
    pub compile_date: [u8; 32],
}

/// Platform parameters (`struct xen_platform_parameters`).
#[doc(alias = "xen_platform_parameters")]
#[doc(alias = "xen_platform_parameters_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PlatformParameters {
    /// The lowest virtual address Xen reserves in PV guests' address spaces.
    pub virt_start: u64,
}

/// Argument of [`XENVER_GET_FEATURES`] (`struct xen_feature_info`).
#[doc(alias = "xen_feature_info")]
#[doc(alias = "xen_feature_info_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FeatureInfo {
    /// Which 32-bit word of feature bits to return, below
    /// [`crate::features::XENFEAT_NR_SUBMAPS`].
    pub submap_idx: u32,
    /// On return, the word: bit `i` of word `n` is feature `32 * n + i` (`XENFEAT_*`).
    pub submap: u32,
}

/// The fixed part of the [`XENVER_BUILD_ID`] argument (`struct xen_build_id`); the build id's
/// bytes follow it.
#[doc(alias = "xen_build_id")]
#[doc(alias = "xen_build_id_t")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BuildIdHeader {
    /// The size of the buffer following this header.
    pub len: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_halves() {
        assert_eq!(version_major(0x0004_0011), 4);
        assert_eq!(version_minor(0x0004_0011), 17);
    }
}
