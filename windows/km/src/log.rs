//! Logging to the kernel debugger.
//!
//! [`log!`](crate::log!) (and [`error!`](crate::error!), [`warn!`](crate::warn!),
//! [`info!`](crate::info!), [`trace!`](crate::trace!)) format the message with `core::fmt` into a
//! [`FixedBuf`] on the stack and hand it to `DbgPrintEx` with the IHV driver component id, so the
//! debugger's component filter (`Kd_IHVDRIVER_Mask`) selects by [`Level`]. `DbgPrintEx` may be
//! called at any IRQL up to DIRQL with the `%s` format used here; the message itself is passed
//! as an argument, never as the format, so a `%` in it is printed as is.
//!
//! On hosts other than Windows the message is formatted (so format mistakes are compile errors
//! and the formatting code is tested) and then dropped.
#![forbid(unsafe_code)]

use core::fmt;

use crate::fmt_buf::{format, FixedBuf};

/// Bytes of one log line, including the terminating NUL. Longer lines end with `...`.
pub const LINE_CAPACITY: usize = 256;

/// `DPFLTR_IHVDRIVER_ID`: the debugger component for third-party drivers.
pub const COMPONENT_IHV_DRIVER: u32 = 77;

/// Severity, as the `DPFLTR_*_LEVEL` values of `DbgPrintEx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Level {
    /// `DPFLTR_ERROR_LEVEL`: shown by default.
    Error = 0,
    /// `DPFLTR_WARNING_LEVEL`.
    Warning = 1,
    /// `DPFLTR_TRACE_LEVEL`.
    Trace = 2,
    /// `DPFLTR_INFO_LEVEL`.
    Info = 3,
}

/// Formats one log line (what [`write()`] hands to the debugger).
pub fn format_line(args: fmt::Arguments<'_>) -> FixedBuf<LINE_CAPACITY> {
    let mut line: FixedBuf<LINE_CAPACITY> = format(args);
    if !line.as_str().ends_with('\n') {
        let _ = fmt::Write::write_str(&mut line, "\n");
    }
    line
}

/// Formats and emits one line. Used by the macros.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let mut line = format_line(args);
    sink(level, &mut line);
}

#[cfg(target_os = "windows")]
fn sink(level: Level, line: &mut FixedBuf<LINE_CAPACITY>) {
    crate::sys::debug_print(COMPONENT_IHV_DRIVER, level as u32, line.as_c_bytes());
}

#[cfg(not(target_os = "windows"))]
fn sink(_level: Level, _line: &mut FixedBuf<LINE_CAPACITY>) {}

/// Logs a formatted line at a [`Level`]: `log!(Level::Info, "started {}", n)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        $crate::log::write($level, ::core::format_args!($($arg)+))
    };
}

/// Logs at [`Level::Error`].
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Error, $($arg)+) };
}

/// Logs at [`Level::Warning`].
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Warning, $($arg)+) };
}

/// Logs at [`Level::Info`].
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Info, $($arg)+) };
}

/// Logs at [`Level::Trace`].
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Trace, $($arg)+) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_gets_one_newline() {
        assert_eq!(format_line(format_args!("a {}", 1)).as_str(), "a 1\n");
        assert_eq!(format_line(format_args!("b\n")).as_str(), "b\n");
    }

    #[test]
    fn percent_signs_are_text() {
        assert_eq!(
            format_line(format_args!("100% %s %n")).as_str(),
            "100% %s %n\n"
        );
    }

    #[test]
    fn overlong_line_is_bounded() {
        let long = "x".repeat(1000);
        let line = format_line(format_args!("{long}"));
        assert!(line.truncated());
        assert_eq!(line.as_str().len(), LINE_CAPACITY - 1);
    }

    #[test]
    fn macros_expand() {
        crate::error!("e {}", 1);
        crate::warn!("w");
        crate::info!("i {:?}", Level::Info);
        crate::trace!("t");
    }
}
