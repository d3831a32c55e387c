//! The report format the lab checks: one line per step, `STEP <name> PASS|FAIL <detail>`,
//! then `DONE <passed> passed <failed> failed`. A line never exceeds [`MAX_LINE`] bytes (Xen's
//! debug port splits longer ones) and never contains a byte outside printable ASCII, whatever
//! a detail (a string from Xen) holds.

use core::fmt;

/// The longest line written, newline excluded.
pub const MAX_LINE: usize = 120;

/// Where report bytes go (port 0xe9 in the kernel, a buffer in tests).
pub trait ByteSink {
    /// Writes one byte.
    fn put(&mut self, byte: u8);
}

/// The outcome of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The step did what it checks.
    Pass,
    /// It did not.
    Fail,
}

/// Writes step lines and counts them.
#[derive(Debug)]
pub struct Reporter<S: ByteSink> {
    sink: S,
    passed: u32,
    failed: u32,
}

/// Truncates and sanitises one line on its way to the sink.
struct LineWriter<'a, S: ByteSink> {
    sink: &'a mut S,
    written: usize,
}

impl<S: ByteSink> fmt::Write for LineWriter<'_, S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if self.written == MAX_LINE {
                return Ok(());
            }
            let byte = if (0x20..0x7f).contains(&byte) {
                byte
            } else {
                b'?'
            };
            self.sink.put(byte);
            self.written += 1;
        }
        Ok(())
    }
}

impl<S: ByteSink> Reporter<S> {
    /// A reporter writing to `sink`.
    pub fn new(sink: S) -> Self {
        Reporter {
            sink,
            passed: 0,
            failed: 0,
        }
    }

    /// Writes a free-form line (not a step): `prefix` then `args`.
    pub fn line(&mut self, args: fmt::Arguments<'_>) {
        let mut w = LineWriter {
            sink: &mut self.sink,
            written: 0,
        };
        // LineWriter never fails; a failing Display impl only shortens the line.
        let _ = fmt::write(&mut w, args);
        self.sink.put(b'\n');
    }

    /// Reports step `name` with `outcome` and `detail`.
    pub fn step(&mut self, name: &str, outcome: Outcome, detail: fmt::Arguments<'_>) {
        let word = match outcome {
            Outcome::Pass => {
                self.passed += 1;
                "PASS"
            }
            Outcome::Fail => {
                self.failed += 1;
                "FAIL"
            }
        };
        self.line(format_args!("STEP {name} {word} {detail}"));
    }

    /// Reports a passed step.
    pub fn pass(&mut self, name: &str, detail: fmt::Arguments<'_>) {
        self.step(name, Outcome::Pass, detail);
    }

    /// Reports a failed step.
    pub fn fail(&mut self, name: &str, detail: fmt::Arguments<'_>) {
        self.step(name, Outcome::Fail, detail);
    }

    /// Writes the closing `DONE` line.
    pub fn done(&mut self) {
        let (passed, failed) = (self.passed, self.failed);
        self.line(format_args!("DONE {passed} passed {failed} failed"));
    }

    /// Steps failed so far.
    pub fn failed(&self) -> u32 {
        self.failed
    }

    /// Steps passed so far.
    pub fn passed(&self) -> u32 {
        self.passed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    impl ByteSink for Vec<u8> {
        fn put(&mut self, byte: u8) {
            self.push(byte);
        }
    }

    fn text(r: Reporter<Vec<u8>>) -> String {
        String::from_utf8(r.sink).unwrap()
    }

    #[test]
    fn steps_are_counted_and_formatted() {
        let mut r = Reporter::new(Vec::new());
        r.pass("detect", format_args!("xen {}.{}", 4, 17));
        r.fail("gnttab", format_args!("status {}", -1));
        assert_eq!((r.passed(), r.failed()), (1, 1));
        r.done();
        assert_eq!(
            text(r),
            "STEP detect PASS xen 4.17\nSTEP gnttab FAIL status -1\nDONE 1 passed 1 failed\n"
        );
    }

    #[test]
    fn hostile_detail_is_truncated_and_sanitised() {
        let mut r = Reporter::new(Vec::new());
        let evil = "a\nSTEP fake PASS\u{7f}é".repeat(20);
        r.pass("x", format_args!("{evil}"));
        let out = text(r);
        assert_eq!(out.lines().count(), 1);
        assert_eq!(out.len(), MAX_LINE + 1);
        assert!(out
            .bytes()
            .take(MAX_LINE)
            .all(|b| (0x20..0x7f).contains(&b)));
    }
}
