//! What a panic in a driver turns into: a bug check with the project's code and the location.
//!
//! A kernel driver cannot unwind, and continuing after a broken invariant risks corrupting the
//! machine, so the panic handler (Windows only) logs the message and calls `KeBugCheckEx` with
//! [`PANIC_BUGCHECK_CODE`] and the parameters from [`bugcheck_parameters`]; a crash dump then names
//! the source line.
#![forbid(unsafe_code)]

/// The bug-check code of a panic in one of the suite's drivers ("XPV" + 1). Microsoft's
/// documented codes are below 0x1000, or 0xC000_0000 and above for the `..._M` variants and
/// `0xDEADDEAD`; this one is in neither range.
pub const PANIC_BUGCHECK_CODE: u32 = 0x5850_5601;
const _: () = assert!(PANIC_BUGCHECK_CODE > 0x1000 && PANIC_BUGCHECK_CODE < 0xC000_0000);

/// Bug-check parameters 1 to 4 for a panic at `file:line:column`:
/// 1. the line, 2. the column, 3. the address of the file name bytes (not NUL-terminated),
/// 4. the file name's length in bytes.
pub fn bugcheck_parameters(file: &str, line: u32, column: u32) -> [usize; 4] {
    [
        line as usize,
        column as usize,
        file.as_ptr() as usize,
        file.len(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_name_the_location() {
        let file = "xenpci/driver/src/wdm.rs";
        let p = bugcheck_parameters(file, 120, 9);
        assert_eq!(p[0], 120);
        assert_eq!(p[1], 9);
        assert_eq!(p[2], file.as_ptr() as usize);
        assert_eq!(p[3], file.len());
    }
}
