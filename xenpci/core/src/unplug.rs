//! Unplugging QEMU's emulated disks and NICs: the port protocol, and the policy deciding what
//! to unplug.
//!
//! # Protocol
//! [`unplug`] runs the handshake of [`xen_abi::unplug`] over [`PortIo`]: check the magic on
//! port 0x10, read the protocol version on 0x12, register the product and build numbers (when the
//! version is non-zero), re-read the magic to learn whether this build is blacklisted, and write
//! the mask of devices to remove. It must run before Windows binds drivers to the emulated
//! devices (from the boot-start bus driver).
//!
//! # Policy
//! Only devices a PV driver will replace are unplugged: disks only when xenvbd is installed and
//! enabled, NICs only when xennet is. On top of that the administrator can:
//! - keep every emulated device with the boot option `XEN:BOOT_EMULATED=TRUE` (in the style of
//!   the winpv drivers' switch), or with `NOGPLPV` — the historical switch of the GPLPV drivers,
//!   which read `/GPLPV` / `/NOGPLPV` from the Windows boot options (Windows hands the options
//!   over without the slashes, so both spellings are accepted);
//! - narrow what is unplugged with a registry option, a comma-separated list of `disks`,
//!   `aux-ide` (every IDE disk except the primary master), `nvme`, `nics`, or one of `all` /
//!   `none` ([`UnplugRequest::parse`]).
//!
//! A malformed option is a typed [`OptionError`]; the caller then uses the default
//! ([`UnplugRequest::default`], still filtered by which drivers are present), which never
//! unplugs a device no PV driver replaces.

use core::fmt;

use xen_abi::unplug::{
    is_blacklisted, unplug_support, UnplugFlags, UnplugSupport, PORT_BUILD_NUMBER, PORT_LOG,
    PORT_MAGIC, PORT_PRODUCT_NUMBER, PORT_PROTOCOL_VERSION, PORT_UNPLUG,
};

use crate::hypervisor::PortIo;

/// Why the unplug protocol did not unplug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnplugError {
    /// The magic is absent: no Xen platform device, or a device model without the protocol.
    /// The emulated devices stay; PV drivers must not bind devices they would share.
    NotAvailable {
        /// The 16-bit value read from port 0x10.
        magic: u16,
    },
    /// This product and build are blacklisted: the PV drivers must not load.
    Blacklisted {
        /// The magic read (after registration, or at first read if already blacklisted).
        magic: u16,
    },
}

impl fmt::Display for UnplugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnplugError::NotAvailable { magic } => {
                write!(f, "unplug protocol not available (magic {magic:#06x})")
            }
            UnplugError::Blacklisted { magic } => {
                write!(
                    f,
                    "PV drivers are blacklisted by the host (magic {magic:#06x})"
                )
            }
        }
    }
}

/// What [`unplug`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnplugReport {
    /// The protocol version read from port 0x12.
    pub protocol_version: u8,
    /// Whether the product and build numbers were registered (protocol version non-zero).
    pub registered: bool,
    /// The mask written to port 0x10 (empty: nothing written).
    pub unplugged: UnplugFlags,
}

/// Runs the unplug handshake and unplugs `flags`.
pub fn unplug<P: PortIo + ?Sized>(
    io: &P,
    product: u16,
    build: u32,
    flags: UnplugFlags,
) -> Result<UnplugReport, UnplugError> {
    let magic = io.inw(PORT_MAGIC);
    match unplug_support(magic) {
        UnplugSupport::Available => {}
        UnplugSupport::Blacklisted => return Err(UnplugError::Blacklisted { magic }),
        UnplugSupport::Absent => return Err(UnplugError::NotAvailable { magic }),
    }
    let protocol_version = io.inb(PORT_PROTOCOL_VERSION);
    let registered = protocol_version != 0;
    if registered {
        io.outw(PORT_PRODUCT_NUMBER, product);
        io.outl(PORT_BUILD_NUMBER, build);
        let again = io.inw(PORT_MAGIC);
        if is_blacklisted(again) {
            return Err(UnplugError::Blacklisted { magic: again });
        }
    }
    if !flags.is_empty() {
        io.outw(PORT_UNPLUG, flags.bits());
    }
    Ok(UnplugReport {
        protocol_version,
        registered,
        unplugged: flags,
    })
}

/// The longest log line [`log_line`] writes, in bytes (QEMU rate-limits these anyway).
pub const LOG_LINE_MAX: usize = 240;

/// Writes one line to QEMU's log through port 0x12: printable ASCII only (other bytes become
/// `?`), at most [`LOG_LINE_MAX`] bytes, ending in a newline. Only after the magic was seen.
pub fn log_line<P: PortIo + ?Sized>(io: &P, line: &str) {
    for &b in line.as_bytes().iter().take(LOG_LINE_MAX) {
        let b = if (0x20..0x7f).contains(&b) { b } else { b'?' };
        io.outb(PORT_LOG, b);
    }
    io.outb(PORT_LOG, b'\n');
}

/// Which PV drivers are installed and enabled (from the registry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PvDrivers {
    /// xenvbd: replaces emulated disks.
    pub xenvbd: bool,
    /// xennet: replaces emulated NICs.
    pub xennet: bool,
}

/// The device classes the administrator asks to unplug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnplugRequest {
    /// All emulated IDE/SCSI disks.
    pub disks: bool,
    /// IDE disks except the primary master (ignored when `disks` is set).
    pub aux_ide: bool,
    /// Emulated NVMe disks.
    pub nvme: bool,
    /// Emulated NICs.
    pub nics: bool,
}

impl Default for UnplugRequest {
    /// Everything a PV driver can replace: disks, NVMe, NICs.
    fn default() -> Self {
        UnplugRequest::ALL
    }
}

/// The longest option string parsed; longer ones are an error.
pub const OPTION_MAX: usize = 256;

/// Why an option string was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptionError {
    /// A list item (or boot option value) is not recognised; `at` is its byte offset.
    UnknownItem {
        /// Byte offset of the item in the string.
        at: usize,
    },
    /// An empty item (`"disks,,nics"`, a trailing comma, an empty string).
    EmptyItem {
        /// Byte offset of the item in the string.
        at: usize,
    },
    /// `none` or `all` combined with other items.
    Conflicting {
        /// Byte offset of the conflicting item.
        at: usize,
    },
    /// The string is longer than [`OPTION_MAX`].
    TooLong {
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::UnknownItem { at } => write!(f, "unknown unplug option at byte {at}"),
            OptionError::EmptyItem { at } => write!(f, "empty unplug option at byte {at}"),
            OptionError::Conflicting { at } => {
                write!(f, "'none' or 'all' combined with other items at byte {at}")
            }
            OptionError::TooLong { len } => {
                write!(f, "unplug option of {len} bytes is too long")
            }
        }
    }
}

impl UnplugRequest {
    /// Nothing.
    pub const NONE: Self = UnplugRequest {
        disks: false,
        aux_ide: false,
        nvme: false,
        nics: false,
    };
    /// Every class.
    pub const ALL: Self = UnplugRequest {
        disks: true,
        aux_ide: false,
        nvme: true,
        nics: true,
    };

    /// Parses a comma-separated list of `disks`, `aux-ide`, `nvme`, `nics`, or a single `all` /
    /// `none` (ASCII case-insensitive, spaces around items ignored).
    pub fn parse(s: &str) -> Result<Self, OptionError> {
        if s.len() > OPTION_MAX {
            return Err(OptionError::TooLong { len: s.len() });
        }
        let mut request = UnplugRequest::NONE;
        let mut exclusive = false;
        let mut at = 0usize;
        for (items, raw) in s.split(',').enumerate() {
            let item_at = at;
            at += raw.len() + 1;
            let item = raw.trim_matches(' ');
            let item_at = item_at + (raw.len() - raw.trim_start_matches(' ').len());
            if item.is_empty() {
                return Err(OptionError::EmptyItem { at: item_at });
            }
            let is = |name: &str| item.eq_ignore_ascii_case(name);
            let whole = if is("all") {
                Some(UnplugRequest::ALL)
            } else if is("none") {
                Some(UnplugRequest::NONE)
            } else {
                None
            };
            if let Some(whole) = whole {
                if items > 0 {
                    return Err(OptionError::Conflicting { at: item_at });
                }
                request = whole;
                exclusive = true;
            } else {
                if exclusive {
                    return Err(OptionError::Conflicting { at: item_at });
                }
                if is("disks") {
                    request.disks = true;
                } else if is("aux-ide") {
                    request.aux_ide = true;
                } else if is("nvme") {
                    request.nvme = true;
                } else if is("nics") {
                    request.nics = true;
                } else {
                    return Err(OptionError::UnknownItem { at: item_at });
                }
            }
        }
        Ok(request)
    }

    /// [`Self::parse`], or the default and the error.
    pub fn parse_or_default(s: &str) -> (Self, Option<OptionError>) {
        match Self::parse(s) {
            Ok(r) => (r, None),
            Err(e) => (Self::default(), Some(e)),
        }
    }
}

/// What the Windows boot options say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BootOptions {
    /// Keep every emulated device (`XEN:BOOT_EMULATED=TRUE`, or the historical `NOGPLPV`).
    pub keep_emulated: bool,
}

/// Parses the Windows boot options (`SystemStartOptions`: space-separated, usually upper case,
/// leading slashes removed by Windows but accepted). Unrelated options are ignored; a malformed
/// value of one of ours is an [`OptionError`], and the caller keeps the default (unplug what the
/// PV drivers replace). The last of conflicting switches wins.
pub fn parse_boot_options(s: &str) -> Result<BootOptions, OptionError> {
    if s.len() > OPTION_MAX * 8 {
        return Err(OptionError::TooLong { len: s.len() });
    }
    const BOOT_EMULATED: &str = "XEN:BOOT_EMULATED";
    let mut options = BootOptions::default();
    let base = s.as_ptr() as usize;
    for token in s.split([' ', '\t']).filter(|t| !t.is_empty()) {
        let at = token.as_ptr() as usize - base;
        let word = token.trim_start_matches('/');
        let at = at + (token.len() - word.len());
        if word.eq_ignore_ascii_case("NOGPLPV") {
            options.keep_emulated = true;
        } else if word.eq_ignore_ascii_case("GPLPV") {
            options.keep_emulated = false;
        } else if word.len() >= BOOT_EMULATED.len()
            && word.is_char_boundary(BOOT_EMULATED.len())
            && word[..BOOT_EMULATED.len()].eq_ignore_ascii_case(BOOT_EMULATED)
        {
            let rest = &word[BOOT_EMULATED.len()..];
            let value_at = at + BOOT_EMULATED.len() + 1;
            options.keep_emulated = match rest.strip_prefix('=') {
                None if rest.is_empty() => true,
                Some(v) if v.eq_ignore_ascii_case("TRUE") || v == "1" => true,
                Some(v) if v.eq_ignore_ascii_case("FALSE") || v == "0" => false,
                Some(_) => return Err(OptionError::UnknownItem { at: value_at }),
                // "XEN:BOOT_EMULATEDX": not our option.
                None => continue,
            };
        }
    }
    Ok(options)
}

/// Decides the unplug mask: what was requested, limited to what the installed PV drivers
/// replace, and nothing when the boot options keep the emulated devices.
pub fn decide(request: UnplugRequest, drivers: PvDrivers, boot: BootOptions) -> UnplugFlags {
    let mut flags = UnplugFlags::empty();
    if boot.keep_emulated {
        return flags;
    }
    if drivers.xenvbd {
        if request.disks {
            flags |= UnplugFlags::ALL_IDE_DISKS;
        } else if request.aux_ide {
            flags |= UnplugFlags::AUX_IDE_DISKS;
        }
        if request.nvme {
            flags |= UnplugFlags::NVME_DISKS;
        }
    }
    if drivers.xennet && request.nics {
        flags |= UnplugFlags::ALL_NICS;
    }
    flags
}

/// The whole policy from raw strings: the registry list (`None`: not set) and the boot options.
/// Errors are returned alongside the safe result so the caller can log them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyOutcome {
    /// The mask to unplug.
    pub flags: UnplugFlags,
    /// The registry list's error, if it was malformed (the default was used).
    pub request_error: Option<OptionError>,
    /// The boot options' error, if malformed (emulated devices were not kept on its account).
    pub boot_error: Option<OptionError>,
}

/// Evaluates the policy from the registry list and the boot options.
pub fn evaluate(registry: Option<&str>, boot_options: &str, drivers: PvDrivers) -> PolicyOutcome {
    let (request, request_error) = match registry {
        Some(s) => UnplugRequest::parse_or_default(s),
        None => (UnplugRequest::default(), None),
    };
    let (boot, boot_error) = match parse_boot_options(boot_options) {
        Ok(b) => (b, None),
        Err(e) => (BootOptions::default(), Some(e)),
    };
    PolicyOutcome {
        flags: decide(request, drivers, boot),
        request_error,
        boot_error,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;
    use xen_abi::unplug::{PVDRIVERS_PRODUCT_EXPERIMENTAL, UNPLUG_MAGIC, UNPLUG_MAGIC_BLACKLISTED};

    use super::*;

    #[derive(Debug, PartialEq, Eq, Clone, Copy)]
    enum Io {
        InB(u16),
        InW(u16),
        OutB(u16, u8),
        OutW(u16, u16),
        OutL(u16, u32),
    }

    /// Ports answering from scripted 16-bit magic reads and a protocol version; every access logged.
    struct Ports {
        magic: RefCell<VecDeque<u16>>,
        version: u8,
        log: RefCell<Vec<Io>>,
    }

    impl Ports {
        fn new(magic: &[u16], version: u8) -> Self {
            Ports {
                magic: RefCell::new(magic.iter().copied().collect()),
                version,
                log: RefCell::new(Vec::new()),
            }
        }
        fn log(&self) -> Vec<Io> {
            self.log.borrow().clone()
        }
    }

    impl PortIo for Ports {
        fn inb(&self, port: u16) -> u8 {
            self.log.borrow_mut().push(Io::InB(port));
            self.version
        }
        fn inw(&self, port: u16) -> u16 {
            self.log.borrow_mut().push(Io::InW(port));
            self.magic.borrow_mut().pop_front().unwrap_or(0xffff)
        }
        fn inl(&self, _: u16) -> u32 {
            panic!("no 32-bit reads in the protocol")
        }
        fn outb(&self, port: u16, value: u8) {
            self.log.borrow_mut().push(Io::OutB(port, value));
        }
        fn outw(&self, port: u16, value: u16) {
            self.log.borrow_mut().push(Io::OutW(port, value));
        }
        fn outl(&self, port: u16, value: u32) {
            self.log.borrow_mut().push(Io::OutL(port, value));
        }
    }

    const P: u16 = PVDRIVERS_PRODUCT_EXPERIMENTAL;

    #[test]
    fn full_handshake() {
        let io = Ports::new(&[UNPLUG_MAGIC, UNPLUG_MAGIC], 1);
        let flags = UnplugFlags::ALL_IDE_DISKS | UnplugFlags::ALL_NICS;
        let r = unplug(&io, P, 42, flags).unwrap();
        assert_eq!(
            r,
            UnplugReport {
                protocol_version: 1,
                registered: true,
                unplugged: flags
            }
        );
        assert_eq!(
            io.log(),
            vec![
                Io::InW(0x10),
                Io::InB(0x12),
                Io::OutW(0x12, P),
                Io::OutL(0x10, 42),
                Io::InW(0x10),
                Io::OutW(0x10, 3),
            ]
        );
    }

    #[test]
    fn version_zero_skips_registration() {
        let io = Ports::new(&[UNPLUG_MAGIC], 0);
        let r = unplug(&io, P, 42, UnplugFlags::NVME_DISKS).unwrap();
        assert!(!r.registered);
        assert_eq!(
            io.log(),
            vec![Io::InW(0x10), Io::InB(0x12), Io::OutW(0x10, 8)]
        );
    }

    #[test]
    fn nothing_to_unplug_writes_nothing() {
        let io = Ports::new(&[UNPLUG_MAGIC, UNPLUG_MAGIC], 1);
        let r = unplug(&io, P, 1, UnplugFlags::empty()).unwrap();
        assert!(r.unplugged.is_empty());
        assert!(!io.log().iter().any(|a| matches!(a, Io::OutW(0x10, _))));
    }

    #[test]
    fn magic_missing() {
        for magic in [0xffff, 0, 0x1234] {
            let io = Ports::new(&[magic], 1);
            assert_eq!(
                unplug(&io, P, 1, UnplugFlags::all()),
                Err(UnplugError::NotAvailable { magic })
            );
            assert_eq!(io.log(), vec![Io::InW(0x10)]);
        }
    }

    #[test]
    fn blacklisted() {
        // After registration.
        let io = Ports::new(&[UNPLUG_MAGIC, UNPLUG_MAGIC_BLACKLISTED], 1);
        assert_eq!(
            unplug(&io, P, 7, UnplugFlags::all()),
            Err(UnplugError::Blacklisted {
                magic: UNPLUG_MAGIC_BLACKLISTED
            })
        );
        assert!(!io.log().iter().any(|a| matches!(a, Io::OutW(0x10, _))));
        // Any other answer after registration counts as blacklisted too.
        let io = Ports::new(&[UNPLUG_MAGIC, 0xffff], 1);
        assert!(matches!(
            unplug(&io, P, 7, UnplugFlags::all()),
            Err(UnplugError::Blacklisted { magic: 0xffff })
        ));
        // Already blacklisted at the first read (a reload).
        let io = Ports::new(&[UNPLUG_MAGIC_BLACKLISTED], 1);
        assert!(matches!(
            unplug(&io, P, 7, UnplugFlags::all()),
            Err(UnplugError::Blacklisted { .. })
        ));
        assert_eq!(io.log(), vec![Io::InW(0x10)]);
        assert!(!std::format!("{}", UnplugError::Blacklisted { magic: 1 }).is_empty());
        assert!(!std::format!("{}", UnplugError::NotAvailable { magic: 1 }).is_empty());
    }

    #[test]
    fn log_lines_are_sanitised_and_bounded() {
        let io = Ports::new(&[], 0);
        log_line(&io, "a\u{e9}\n");
        let bytes: Vec<u8> = io
            .log()
            .iter()
            .map(|a| match a {
                Io::OutB(0x12, b) => *b,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(bytes, b"a???\n");
        let io = Ports::new(&[], 0);
        log_line(&io, &"x".repeat(1000));
        assert_eq!(io.log().len(), LOG_LINE_MAX + 1);
    }

    const BOTH: PvDrivers = PvDrivers {
        xenvbd: true,
        xennet: true,
    };

    #[test]
    fn request_parsing() {
        assert_eq!(UnplugRequest::parse("all"), Ok(UnplugRequest::ALL));
        assert_eq!(UnplugRequest::parse(" NONE "), Ok(UnplugRequest::NONE));
        assert_eq!(
            UnplugRequest::parse("disks, NICs"),
            Ok(UnplugRequest {
                disks: true,
                aux_ide: false,
                nvme: false,
                nics: true
            })
        );
        assert_eq!(
            UnplugRequest::parse("aux-ide,nvme"),
            Ok(UnplugRequest {
                disks: false,
                aux_ide: true,
                nvme: true,
                nics: false
            })
        );
        assert_eq!(
            UnplugRequest::parse("disks,,nics"),
            Err(OptionError::EmptyItem { at: 6 })
        );
        assert_eq!(
            UnplugRequest::parse(""),
            Err(OptionError::EmptyItem { at: 0 })
        );
        assert_eq!(
            UnplugRequest::parse("disks,"),
            Err(OptionError::EmptyItem { at: 6 })
        );
        assert_eq!(
            UnplugRequest::parse("disks, floppy"),
            Err(OptionError::UnknownItem { at: 7 })
        );
        assert_eq!(
            UnplugRequest::parse("disks,none"),
            Err(OptionError::Conflicting { at: 6 })
        );
        assert_eq!(
            UnplugRequest::parse("all,nics"),
            Err(OptionError::Conflicting { at: 4 })
        );
        assert_eq!(
            UnplugRequest::parse(&"nics,".repeat(100)),
            Err(OptionError::TooLong { len: 500 })
        );
        assert_eq!(
            UnplugRequest::parse_or_default("\u{0}garbage"),
            (
                UnplugRequest::default(),
                Some(OptionError::UnknownItem { at: 0 })
            )
        );
        for e in [
            OptionError::UnknownItem { at: 1 },
            OptionError::EmptyItem { at: 1 },
            OptionError::Conflicting { at: 1 },
            OptionError::TooLong { len: 1 },
        ] {
            assert!(!std::format!("{e}").is_empty());
        }
    }

    #[test]
    fn boot_option_parsing() {
        let keep = BootOptions {
            keep_emulated: true,
        };
        let pv = BootOptions::default();
        assert_eq!(parse_boot_options(""), Ok(pv));
        assert_eq!(parse_boot_options(" NOEXECUTE=OPTIN  FASTDETECT"), Ok(pv));
        assert_eq!(parse_boot_options("NOEXECUTE=OPTIN NOGPLPV"), Ok(keep));
        assert_eq!(parse_boot_options("/nogplpv"), Ok(keep));
        assert_eq!(parse_boot_options("NOGPLPV /GPLPV"), Ok(pv));
        assert_eq!(parse_boot_options("XEN:BOOT_EMULATED=TRUE"), Ok(keep));
        assert_eq!(parse_boot_options("xen:boot_emulated=1"), Ok(keep));
        assert_eq!(parse_boot_options("XEN:BOOT_EMULATED"), Ok(keep));
        assert_eq!(parse_boot_options("XEN:BOOT_EMULATED=FALSE"), Ok(pv));
        assert_eq!(parse_boot_options("XEN:BOOT_EMULATED=0"), Ok(pv));
        assert_eq!(parse_boot_options("XEN:BOOT_EMULATEDX=1"), Ok(pv));
        assert_eq!(
            parse_boot_options("DEBUG XEN:BOOT_EMULATED=MAYBE"),
            Err(OptionError::UnknownItem { at: 24 })
        );
        assert_eq!(
            parse_boot_options("XEN:BOOT_EMULATED=\u{e9}"),
            Err(OptionError::UnknownItem { at: 18 })
        );
        assert_eq!(parse_boot_options("XEN:BOOT_EMULAT\u{e9}D"), Ok(pv));
        assert!(matches!(
            parse_boot_options(&"A ".repeat(2000)),
            Err(OptionError::TooLong { .. })
        ));
    }

    #[test]
    fn decisions_only_unplug_what_is_replaced() {
        let pv = BootOptions::default();
        let all = UnplugRequest::ALL;
        let disks = UnplugFlags::ALL_IDE_DISKS | UnplugFlags::NVME_DISKS;
        assert_eq!(decide(all, BOTH, pv), disks | UnplugFlags::ALL_NICS);
        let vbd = PvDrivers {
            xenvbd: true,
            xennet: false,
        };
        let net = PvDrivers {
            xenvbd: false,
            xennet: true,
        };
        assert_eq!(decide(all, vbd, pv), disks);
        assert_eq!(decide(all, net, pv), UnplugFlags::ALL_NICS);
        assert_eq!(decide(all, PvDrivers::default(), pv), UnplugFlags::empty());
        assert_eq!(
            decide(
                all,
                BOTH,
                BootOptions {
                    keep_emulated: true
                }
            ),
            UnplugFlags::empty()
        );
        let aux = UnplugRequest {
            aux_ide: true,
            ..UnplugRequest::NONE
        };
        assert_eq!(decide(aux, BOTH, pv), UnplugFlags::AUX_IDE_DISKS);
        assert_eq!(decide(aux, net, pv), UnplugFlags::empty());
        let both_ide = UnplugRequest {
            disks: true,
            aux_ide: true,
            ..UnplugRequest::NONE
        };
        assert_eq!(decide(both_ide, BOTH, pv), UnplugFlags::ALL_IDE_DISKS);
        assert_eq!(decide(UnplugRequest::NONE, BOTH, pv), UnplugFlags::empty());
    }

    #[test]
    fn evaluate_reports_errors_with_safe_results() {
        let o = evaluate(
            Some("nics, floppy"),
            "XEN:BOOT_EMULATED=perhaps",
            PvDrivers {
                xenvbd: false,
                xennet: true,
            },
        );
        assert_eq!(o.flags, UnplugFlags::ALL_NICS);
        assert!(o.request_error.is_some());
        assert!(o.boot_error.is_some());
        let o = evaluate(None, "NOGPLPV", BOTH);
        assert_eq!(o.flags, UnplugFlags::empty());
        assert_eq!((o.request_error, o.boot_error), (None, None));
        let o = evaluate(Some("nvme"), "", BOTH);
        assert_eq!(o.flags, UnplugFlags::NVME_DISKS);
    }

    proptest! {
        #[test]
        fn never_unplugs_what_is_not_replaced(registry in proptest::option::of(".{0,40}"),
                                              boot in ".{0,80}",
                                              xenvbd in any::<bool>(), xennet in any::<bool>()) {
            let drivers = PvDrivers { xenvbd, xennet };
            let o = evaluate(registry.as_deref(), &boot, drivers);
            if !xenvbd {
                prop_assert!(!o.flags.intersects(
                    UnplugFlags::ALL_IDE_DISKS | UnplugFlags::AUX_IDE_DISKS | UnplugFlags::NVME_DISKS));
            }
            if !xennet {
                prop_assert!(!o.flags.contains(UnplugFlags::ALL_NICS));
            }
        }

        #[test]
        fn request_words_parse(items in proptest::collection::vec(
            prop_oneof![Just("disks"), Just("aux-ide"), Just("nvme"), Just("nics")], 1..6)) {
            let s = items.join(",");
            let r = UnplugRequest::parse(&s).unwrap();
            prop_assert_eq!(r.disks, items.contains(&"disks"));
            prop_assert_eq!(r.aux_ide, items.contains(&"aux-ide"));
            prop_assert_eq!(r.nvme, items.contains(&"nvme"));
            prop_assert_eq!(r.nics, items.contains(&"nics"));
        }
    }
}
