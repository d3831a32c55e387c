//! `/dev/xen/xenbus`: the byte stream between this domain and xenstored.
//!
//! Whole xenstore messages (a 16-byte header and a payload) are written to it, and replies and
//! watch events are read back. Reads wait at most a configurable time, so a xenstored that does
//! not answer makes a scenario fail instead of hang.
//!
//! [`XenbusDevice`] is also the project's xenstore client's transport on Linux: it implements
//! `xenpci_core::xenstore::{Transport, Wait}` (non-blocking reads and writes; waiting up to the
//! read timeout).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use xenpci_core::xenstore::{Transport, TransportError, Wait, XsError};

use super::{open_device, wait_readable};

/// The device's path.
pub const PATH: &str = "/dev/xen/xenbus";

/// An open `/dev/xen/xenbus`.
#[derive(Debug)]
pub struct XenbusDevice {
    file: File,
    read_timeout: Duration,
    /// The end of the blocking operation begun last (`Wait::begin`).
    deadline: Option<Instant>,
}

impl XenbusDevice {
    /// Opens the device (present once `xenfs` is loaded and mounted); reads wait up to
    /// `read_timeout`.
    pub fn open(read_timeout: Duration) -> io::Result<Self> {
        Ok(Self {
            file: open_device(PATH)?,
            read_timeout,
            deadline: None,
        })
    }

    /// Changes how long reads wait.
    pub fn set_read_timeout(&mut self, read_timeout: Duration) {
        self.read_timeout = read_timeout;
    }

    /// Reads whatever is available, waiting up to `timeout` for something.
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        loop {
            if !wait_readable(self.file.as_fd(), timeout)? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no data from {PATH} within {timeout:?}"),
                ));
            }
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

/// The device's descriptor, for a thread that waits until it is readable while the device itself
/// is in use elsewhere (the multiplexed client's event thread).
impl AsFd for XenbusDevice {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Read for XenbusDevice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = self.read_timeout;
        self.read_timeout(buf, timeout)
    }
}

impl Write for XenbusDevice {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn transport_error(e: io::Error) -> XsError {
    XsError::Transport(match e.raw_os_error() {
        Some(code) => TransportError::Io(code),
        None => TransportError::Closed,
    })
}

impl Transport for XenbusDevice {
    fn write(&mut self, data: &[u8]) -> Result<usize, XsError> {
        match self.file.write(data) {
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(transport_error(e)),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.file.read(buf) {
            Ok(0) => Err(XsError::Transport(TransportError::Closed)),
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(transport_error(e)),
        }
    }
}

impl XenbusDevice {
    /// What is left of the operation's time limit; `None` once it has passed.
    fn remaining(&self) -> Option<Duration> {
        match self.deadline {
            None => Some(self.read_timeout),
            Some(d) => d
                .checked_duration_since(Instant::now())
                .filter(|r| !r.is_zero()),
        }
    }
}

impl Wait for XenbusDevice {
    fn begin(&mut self) {
        self.deadline = Some(Instant::now() + self.read_timeout);
    }

    fn expired(&mut self) -> bool {
        self.remaining().is_none()
    }

    fn wait(&mut self) -> Result<(), XsError> {
        let Some(left) = self.remaining() else {
            return Err(XsError::Transport(TransportError::TimedOut));
        };
        match wait_readable(self.file.as_fd(), left) {
            Ok(true) => Ok(()),
            Ok(false) => Err(XsError::Transport(TransportError::TimedOut)),
            Err(e) => Err(transport_error(e)),
        }
    }
}
