//! `/dev/xen/evtchn`: event channels.
//!
//! Each open of the device is one set of bound ports: [`EventChannels::bind_unbound`] allocates a
//! port another domain may connect to (a frontend does this), [`EventChannels::bind_interdomain`]
//! connects to a port another domain allocated (a backend does this). An event on a bound port
//! makes the port readable from the device; Linux masks the port until it is written back, which
//! [`EventChannels::unmask`] does.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use super::{check_ioctl, ioc_none, open_device, wait_readable};

/// The device's path.
pub const PATH: &str = "/dev/xen/evtchn";

/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: `{ u32 remote_domain; u32 remote_port; }`, returns the port.
pub const IOCTL_BIND_INTERDOMAIN: libc::c_ulong = ioc_none(b'E', 1, 8);
/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`: `{ u32 remote_domain; }`, returns the port.
pub const IOCTL_BIND_UNBOUND_PORT: libc::c_ulong = ioc_none(b'E', 2, 4);
/// `IOCTL_EVTCHN_UNBIND`: `{ u32 port; }`.
pub const IOCTL_UNBIND: libc::c_ulong = ioc_none(b'E', 3, 4);
/// `IOCTL_EVTCHN_NOTIFY`: `{ u32 port; }`.
pub const IOCTL_NOTIFY: libc::c_ulong = ioc_none(b'E', 4, 4);

/// An event-channel port number.
pub type Port = u32;

/// An open `/dev/xen/evtchn` and the ports bound through it (all unbound when it is dropped).
#[derive(Debug)]
pub struct EventChannels {
    file: File,
    /// Ports read from the device but not yet handed out by [`EventChannels::wait_for`].
    pending: VecDeque<Port>,
}

impl EventChannels {
    /// Opens the device (needs the `xen-evtchn` module).
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            file: open_device(PATH)?,
            pending: VecDeque::new(),
        })
    }

    /// Issues a request whose argument is `words` and whose result is a port.
    fn port_ioctl<const N: usize>(
        &self,
        what: &str,
        request: libc::c_ulong,
        words: &mut [u32; N],
    ) -> io::Result<u32> {
        // SAFETY: every request used with this helper takes a struct of N 32-bit fields (the
        // callers in this module pair each request with its struct's size), which `words` is,
        // live and writable for the whole call.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request, words.as_mut_ptr()) };
        check_ioctl(what, rc).map(|port| port as u32)
    }

    /// Allocates a port that domain `remote_domain` may bind to, and binds it here.
    pub fn bind_unbound(&self, remote_domain: u16) -> io::Result<Port> {
        let mut arg = [u32::from(remote_domain)];
        self.port_ioctl(
            "IOCTL_EVTCHN_BIND_UNBOUND_PORT",
            IOCTL_BIND_UNBOUND_PORT,
            &mut arg,
        )
    }

    /// Binds a local port to `remote_port` of domain `remote_domain`, which that domain allocated
    /// for this one.
    pub fn bind_interdomain(&self, remote_domain: u16, remote_port: Port) -> io::Result<Port> {
        let mut arg = [u32::from(remote_domain), remote_port];
        self.port_ioctl(
            "IOCTL_EVTCHN_BIND_INTERDOMAIN",
            IOCTL_BIND_INTERDOMAIN,
            &mut arg,
        )
    }

    /// Sends an event on a port bound here.
    pub fn notify(&self, port: Port) -> io::Result<()> {
        self.port_ioctl("IOCTL_EVTCHN_NOTIFY", IOCTL_NOTIFY, &mut [port])
            .map(drop)
    }

    /// Unbinds a port bound here (closing the port for both ends).
    pub fn unbind(&mut self, port: Port) -> io::Result<()> {
        self.pending.retain(|p| *p != port);
        self.port_ioctl("IOCTL_EVTCHN_UNBIND", IOCTL_UNBIND, &mut [port])
            .map(drop)
    }

    /// Re-enables delivery on a port after an event was received on it.
    pub fn unmask(&mut self, port: Port) -> io::Result<()> {
        let written = self.file.write(&port.to_ne_bytes())?;
        if written == 4 {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "unmask of port {port}: wrote {written} of 4 bytes"
            )))
        }
    }

    /// Reads every port that has signalled, without waiting.
    fn read_ready(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4 * 64];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    if n % 4 != 0 {
                        return Err(io::Error::other(format!("evtchn read of {n} bytes")));
                    }
                    for chunk in buf[..n].chunks_exact(4) {
                        let port = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                        self.pending.push_back(port);
                    }
                    if n < buf.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits up to `timeout` for any port to signal; returns the signalled ports (empty if none
    /// did). The ports stay masked until [`EventChannels::unmask`].
    pub fn wait_any(&mut self, timeout: Duration) -> io::Result<Vec<Port>> {
        if self.pending.is_empty() && wait_readable(self.file.as_fd(), timeout)? {
            self.read_ready()?;
        }
        Ok(self.pending.drain(..).collect())
    }

    /// Waits up to `timeout` for `port` to signal; returns whether it did. Other ports that
    /// signal meanwhile are kept for later calls.
    pub fn wait_for(&mut self, port: Port, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.pending.iter().position(|p| *p == port) {
                self.pending.remove(at);
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !wait_readable(self.file.as_fd(), left)? {
                return Ok(false);
            }
            self.read_ready()?;
        }
    }
}
