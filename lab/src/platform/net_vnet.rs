//! An `AF_PACKET` socket with `PACKET_VNET_HDR`: each frame goes and comes with a
//! `virtio_net_hdr` in front, which carries GSO (segment size and type) and a partial
//! checksum's position. Sending one puts a GSO packet into a vif (which netback hands to the
//! frontend as one packet with a GSO extra-info slot); receiving one shows how a GSO packet a
//! frontend sent arrived in dom0.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::packet::interface_index;
use super::{annotate, wait_readable};

/// `struct virtio_net_hdr` (10 bytes, host byte order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHeader {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`.
    pub gso_type: u8,
    /// Bytes of headers.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the checksummed region starts.
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum field is.
    pub csum_offset: u16,
}

/// The checksum is partial (`VIRTIO_NET_HDR_F_NEEDS_CSUM`).
pub const VNET_NEEDS_CSUM: u8 = 1;
/// TCP over IPv4 segmentation (`VIRTIO_NET_HDR_GSO_TCPV4`).
pub const VNET_GSO_TCPV4: u8 = 1;
const HEADER_LEN: usize = 10;

impl VnetHeader {
    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Self {
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VnetHeader {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        }
    }
}

/// An `AF_PACKET` raw socket with virtio-net headers, bound to one interface and ethertype.
#[derive(Debug)]
pub struct VnetSocket {
    fd: OwnedFd,
    ifname: String,
}

impl VnetSocket {
    /// Opens the socket on `ifname` for `ethertype`.
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
        let on: libc::c_int = 1;
        // SAFETY: 1. `fd` is a live socket; 2. `on` is a live `c_int` for the whole call and
        // its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_VNET_HDR,
                std::ptr::from_ref(&on).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(annotate("PACKET_VNET_HDR", io::Error::last_os_error()));
        }
        // SAFETY: `sockaddr_ll` is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a live `sockaddr_ll` of the size passed, for the whole call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
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

    /// Sends `frame` (Ethernet header included) described by `header`.
    pub fn send(&self, header: VnetHeader, frame: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(HEADER_LEN + frame.len());
        buf.extend_from_slice(&header.to_bytes());
        buf.extend_from_slice(frame);
        // SAFETY: `buf` is a live buffer of `buf.len()` bytes for the whole call.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if rc < 0 {
            return Err(annotate(
                &format!("send on {}", self.ifname),
                io::Error::last_os_error(),
            ));
        }
        if rc as usize != buf.len() {
            return Err(io::Error::other(format!(
                "sent {rc} of {} bytes on {}",
                buf.len(),
                self.ifname
            )));
        }
        Ok(())
    }

    /// Receives one frame and its header, waiting up to `timeout`; `None` if none came.
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<(VnetHeader, Vec<u8>)>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; HEADER_LEN + 70_000];
        loop {
            // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes for the whole call.
            let rc =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if rc >= 0 {
                let n = rc as usize;
                if n < HEADER_LEN {
                    return Err(io::Error::other(format!("a {n}-byte read")));
                }
                let header = VnetHeader::from_bytes(&buf[..HEADER_LEN]);
                return Ok(Some((header, buf[HEADER_LEN..n].to_vec())));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_round_trips() {
        let h = VnetHeader {
            flags: VNET_NEEDS_CSUM,
            gso_type: VNET_GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        assert_eq!(VnetHeader::from_bytes(&h.to_bytes()), h);
    }
}
