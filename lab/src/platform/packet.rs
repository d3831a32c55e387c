//! Raw Ethernet frames on a dom0 network interface (`AF_PACKET`), to put traffic into `vif0.0`
//! and to see what comes out of a Linux netfront's interface.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::{annotate, wait_readable};

/// An `AF_PACKET` raw socket bound to one interface and one ethertype.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifname: String,
}

/// The interface index of `ifname`.
pub fn interface_index(ifname: &str) -> io::Result<u32> {
    let name = CString::new(ifname).map_err(|_| io::Error::other("interface name with a NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string that lives for the whole call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(annotate(
            &format!("if_nametoindex {ifname}"),
            io::Error::last_os_error(),
        ))
    } else {
        Ok(index)
    }
}

impl PacketSocket {
    /// Opens a raw socket on `ifname` that sends frames and receives those of `ethertype`.
    pub fn open(ifname: &str, ethertype: u16) -> io::Result<Self> {
        let ifindex = interface_index(ifname)?;
        let proto = ethertype.to_be();
        // SAFETY: plain system call with integer arguments; the result is checked below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        };
        if raw < 0 {
            return Err(annotate("socket(AF_PACKET)", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a new descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `sockaddr_ll` is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as i32;
        let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `addr` is a live `sockaddr_ll` of `len` bytes for the whole call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
                len,
            )
        };
        if rc < 0 {
            return Err(annotate(
                &format!("bind to {ifname}"),
                io::Error::last_os_error(),
            ));
        }
        Ok(Self {
            fd,
            ifname: ifname.to_owned(),
        })
    }

    /// Sends one whole Ethernet frame (header included).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is a live buffer of `frame.len()` bytes for the whole call.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if rc < 0 {
            return Err(annotate(
                &format!("send on {}", self.ifname),
                io::Error::last_os_error(),
            ));
        }
        if rc as usize != frame.len() {
            return Err(io::Error::other(format!(
                "sent {rc} of {} bytes on {}",
                frame.len(),
                self.ifname
            )));
        }
        Ok(())
    }

    /// Receives one frame into `buf`, waiting up to `timeout`; `None` if none came.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        let deadline = Instant::now() + timeout;
        loop {
            // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes for the whole call.
            let rc =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if rc >= 0 {
                return Ok(Some(rc as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => {}
                io::ErrorKind::Interrupted => continue,
                _ => return Err(annotate(&format!("recv on {}", self.ifname), e)),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !wait_readable(self.fd.as_fd(), left)? {
                return Ok(None);
            }
        }
    }
}
