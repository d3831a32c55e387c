//! A simulated backend domain: what a driver domain (dom0 by default) does to the guest through
//! Xen: event channels, grant mapping and copying, and xenstore access.

use std::time::Duration;

use xen_abi::event_channel::{EvtchnAllocUnbound, EvtchnBindInterdomain};
use xen_abi::types::{DomId, EvtchnPort, GrantRef};
use xen_abi::xenstore::XsErrno;
use xenpci_core::evtchn::{EventChannelOps, XenErrno};

use crate::evtchn::{self, SimEvtchnOps};
use crate::grant::{CopyDir, GntError, MappedGrant};
use crate::memory::PAGE_SIZE;
use crate::xenstore::{self, StoreStream};
use crate::Xen;

/// A backend domain of the simulated host.
#[derive(Clone, Debug)]
pub struct Backend {
    xen: Xen,
    domid: DomId,
}

impl Backend {
    pub(crate) fn new(xen: Xen, domid: DomId) -> Self {
        Backend { xen, domid }
    }

    /// The backend's domain id.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// Whether the domain still exists.
    pub fn is_alive(&self) -> bool {
        self.xen
            .lock()
            .evtchn
            .domains
            .get(&self.domid)
            .is_some_and(|d| !d.dead)
    }

    fn check_alive_gnt(&self) -> Result<(), GntError> {
        if self.is_alive() {
            Ok(())
        } else {
            Err(GntError::BadDomain)
        }
    }

    /// The backend's event-channel hypercalls.
    pub fn evtchn_ops(&self) -> SimEvtchnOps {
        SimEvtchnOps::new(self.xen.clone(), self.domid)
    }

    /// Allocates a port `remote` may bind to.
    pub fn alloc_unbound(&self, remote: DomId) -> Result<EvtchnPort, XenErrno> {
        let mut arg = EvtchnAllocUnbound {
            dom: self.domid,
            remote_dom: remote,
            port: 0,
        };
        self.evtchn_ops().alloc_unbound(&mut arg)?;
        Ok(arg.port)
    }

    /// Binds to `remote_port` of `remote` (typically the guest's unbound port).
    pub fn bind_interdomain(
        &self,
        remote: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenErrno> {
        let mut arg = EvtchnBindInterdomain {
            remote_dom: remote,
            pad: 0,
            remote_port,
            local_port: 0,
        };
        self.evtchn_ops().bind_interdomain(&mut arg)?;
        Ok(arg.local_port)
    }

    /// Notifies the other end of `port`.
    pub fn send(&self, port: EvtchnPort) -> Result<(), XenErrno> {
        self.xen.with(|s| evtchn::send(s, self.domid, port))
    }

    /// Sends `count` notifications on `port` back to back (an event storm).
    pub fn storm(&self, port: EvtchnPort, count: u32) -> Result<(), XenErrno> {
        self.xen.with(|s| {
            for _ in 0..count {
                evtchn::send(s, self.domid, port)?;
            }
            Ok(())
        })
    }

    /// Closes `port`.
    pub fn close(&self, port: EvtchnPort) -> Result<(), XenErrno> {
        self.xen.with(|s| evtchn::close_port(s, self.domid, port))
    }

    /// Takes the ports that received events since the last call (ascending).
    pub fn take_events(&self) -> Vec<EvtchnPort> {
        self.xen.with(|s| {
            s.evtchn
                .domains
                .get_mut(&self.domid)
                .map(|d| std::mem::take(&mut d.pending).into_iter().collect())
                .unwrap_or_default()
        })
    }

    /// Waits up to `timeout` for an event, then takes them as [`Self::take_events`] does.
    pub fn wait_events(&self, timeout: Duration) -> Vec<EvtchnPort> {
        let domid = self.domid;
        self.xen.wait_until(timeout, |s| {
            s.evtchn
                .domains
                .get(&domid)
                .is_some_and(|d| !d.pending.is_empty())
        });
        self.take_events()
    }

    /// Events received so far.
    pub fn events_received(&self) -> u64 {
        self.xen
            .lock()
            .evtchn
            .domains
            .get(&self.domid)
            .map_or(0, |d| d.received)
    }

    /// `GNTTABOP_map_grant_ref` of the guest's `gref`.
    pub fn map_grant(&self, gref: GrantRef, writable: bool) -> Result<MappedGrant, GntError> {
        self.check_alive_gnt()?;
        self.xen
            .with(|s| s.grants.map(&mut s.mem, self.domid, gref, writable))
    }

    /// `GNTTABOP_unmap_grant_ref`.
    pub fn unmap_grant(&self, handle: MappedGrant) -> Result<(), GntError> {
        self.check_alive_gnt()?;
        self.xen
            .with(|s| s.grants.unmap(&mut s.mem, self.domid, handle))
    }

    /// Reads through a mapping.
    pub fn read_mapped(
        &self,
        handle: MappedGrant,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), GntError> {
        let s = self.xen.lock();
        let m = s.grants.mapping(self.domid, handle)?;
        s.mem
            .read(m.gfn, offset, out)
            .map_err(|_| GntError::BadCopyArg)
    }

    /// Writes through a mapping; a read-only mapping refuses ([`GntError::ReadOnly`]).
    pub fn write_mapped(
        &self,
        handle: MappedGrant,
        offset: usize,
        data: &[u8],
    ) -> Result<(), GntError> {
        self.xen.with(|s| {
            let m = s.grants.mapping(self.domid, handle)?;
            if !m.writable {
                return Err(GntError::ReadOnly);
            }
            s.mem
                .write(m.gfn, offset, data)
                .map_err(|_| GntError::BadCopyArg)
        })
    }

    /// The whole mapped page.
    pub fn mapped_page(&self, handle: MappedGrant) -> Result<Vec<u8>, GntError> {
        let mut page = vec![0; PAGE_SIZE];
        self.read_mapped(handle, 0, &mut page)?;
        Ok(page)
    }

    /// Mappings this backend holds.
    pub fn mappings(&self) -> usize {
        self.xen
            .lock()
            .grants
            .maps
            .values()
            .filter(|m| m.mapper == self.domid)
            .count()
    }

    /// `GNTTABOP_copy` from the guest's granted page into `out`.
    pub fn copy_from_grant(
        &self,
        gref: GrantRef,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), GntError> {
        self.check_alive_gnt()?;
        self.xen.with(|s| {
            s.grants.copy(
                &mut s.mem,
                self.domid,
                gref,
                offset,
                CopyDir::FromGuest(out),
            )
        })
    }

    /// `GNTTABOP_copy` from `data` into the guest's granted page.
    pub fn copy_to_grant(
        &self,
        gref: GrantRef,
        offset: usize,
        data: &[u8],
    ) -> Result<(), GntError> {
        self.check_alive_gnt()?;
        self.xen.with(|s| {
            s.grants
                .copy(&mut s.mem, self.domid, gref, offset, CopyDir::ToGuest(data))
        })
    }

    /// The domain dies mid-operation: its ports close (their guest ends become unbound), its
    /// xenstore connections close and `@releaseDomain` fires. With `release_mappings` Xen tears
    /// its grant mappings down (the normal case); without, they stay forever (a zombie domain
    /// whose pages cannot be released), so the guest's revocations stay deferred.
    pub fn vanish(&self, release_mappings: bool) {
        self.xen.with(|s| {
            evtchn::destroy_domain(s, self.domid);
            if release_mappings {
                s.grants.release_all(&mut s.mem, self.domid);
            }
            xenstore::release_domain(s, self.domid);
        })
    }

    /// A xenstore connection (byte stream) as this domain.
    pub fn store_stream(&self) -> StoreStream {
        StoreStream::connect(self.xen.clone(), self.domid)
    }

    /// Reads `path` as this domain, directly (no wire).
    pub fn xs_read(&self, path: &str) -> Result<Vec<u8>, XsErrno> {
        self.xen
            .with(|s| xenstore::direct(s, self.domid, |st, d| st.read(d, None, path)))
    }

    /// Writes `path` as this domain, directly; watches fire.
    pub fn xs_write(&self, path: &str, value: &[u8]) -> Result<(), XsErrno> {
        self.xen
            .with(|s| xenstore::direct(s, self.domid, |st, d| st.write(d, None, path, value)))
    }

    /// Creates `path` as this domain, directly.
    pub fn xs_mkdir(&self, path: &str) -> Result<(), XsErrno> {
        self.xen
            .with(|s| xenstore::direct(s, self.domid, |st, d| st.mkdir(d, None, path)))
    }

    /// Removes `path` and its subtree as this domain, directly.
    pub fn xs_rm(&self, path: &str) -> Result<(), XsErrno> {
        self.xen
            .with(|s| xenstore::direct(s, self.domid, |st, d| st.rm(d, None, path)))
    }

    /// Lists the children of `path` as this domain, directly.
    pub fn xs_directory(&self, path: &str) -> Result<Vec<String>, XsErrno> {
        self.xen
            .with(|s| xenstore::direct(s, self.domid, |st, d| st.directory(d, None, path)))
    }

    /// Sets the permissions of `path` (`["b0", "r1"]`: owner first) as this domain.
    pub fn xs_set_perms(&self, path: &str, perms: &[&str]) -> Result<(), XsErrno> {
        self.xen.with(|s| {
            xenstore::direct(s, self.domid, |st, d| {
                let parsed = perms
                    .iter()
                    .map(|p| xenstore::Perm::parse(p.as_bytes()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(XsErrno::Einval)?;
                st.set_perms(d, None, path, parsed)
            })
        })
    }

    /// The permissions of `path` as strings, owner first.
    pub fn xs_get_perms(&self, path: &str) -> Result<Vec<String>, XsErrno> {
        self.xen.with(|s| {
            xenstore::direct(s, self.domid, |st, d| {
                Ok(st
                    .get_perms(d, None, path)?
                    .iter()
                    .map(|p| p.to_string())
                    .collect())
            })
        })
    }
}
