//! What Xen says about itself: `XENVER_version`, `XENVER_extraversion` and
//! `XENVER_get_features`.

use core::fmt;

use xen_abi::features::Features;
use xen_abi::version::FeatureInfo;
use zerocopy::IntoBytes;

use super::calls::{
    cmd_struct, invoke, EXTRAVERSION_LEN, XENVER_EXTRAVERSION_CALL, XENVER_GET_FEATURES_CALL,
    XENVER_VERSION_CALL,
};
use super::{Arg, HvError, Hypervisor};

/// Xen's version as `XENVER_version` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// `XENVER_version`: `major << 16 | minor` in the return value.
pub fn version<H: Hypervisor + ?Sized>(hv: &H) -> Result<Version, HvError> {
    let call = &XENVER_VERSION_CALL;
    let mut args = [
        Arg::Value(u64::from(call.cmd)),
        Arg::Null,
        Arg::Unused,
        Arg::Unused,
        Arg::Unused,
    ];
    let raw = invoke(hv, call, &mut args)?;
    Ok(Version {
        major: (raw >> 16) as u16,
        minor: raw as u16,
    })
}

/// `XENVER_extraversion`: the text after `major.minor` (for example `.7` or `-unstable`), NUL
/// padded. Xen's bytes are returned as they are; [`extraversion_str`] makes text of them.
pub fn extraversion<H: Hypervisor + ?Sized>(hv: &H) -> Result<[u8; EXTRAVERSION_LEN], HvError> {
    let mut text = [0u8; EXTRAVERSION_LEN];
    invoke(
        hv,
        &XENVER_EXTRAVERSION_CALL,
        &mut cmd_struct(&XENVER_EXTRAVERSION_CALL, &mut text),
    )?;
    Ok(text)
}

/// The text of an extraversion: up to the first NUL, and only if it is UTF-8 (Xen's answer is
/// untrusted; `None` otherwise).
pub fn extraversion_str(raw: &[u8; EXTRAVERSION_LEN]) -> Option<&str> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    core::str::from_utf8(&raw[..end]).ok()
}

/// Xen's feature submap 0 (`XENVER_get_features`).
pub fn features<H: Hypervisor + ?Sized>(hv: &H) -> Result<Features, HvError> {
    let mut arg = FeatureInfo {
        submap_idx: 0,
        submap: 0,
    };
    invoke(
        hv,
        &XENVER_GET_FEATURES_CALL,
        &mut cmd_struct(&XENVER_GET_FEATURES_CALL, arg.as_mut_bytes()),
    )?;
    Ok(Features::from_bits_retain(arg.submap))
}
