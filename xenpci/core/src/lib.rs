//! The portable core of the Xen bus driver: hypervisor interface, grant tables, event channels, xenstore and xenbus.
#![no_std]
#![forbid(unsafe_code)]

pub mod evtchn;
pub mod grant_table;
pub mod xenstore;
