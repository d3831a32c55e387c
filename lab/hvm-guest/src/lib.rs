//! The safe part of the HVM test kernel: the step reporter, the PCI scan for the Xen platform
//! device and the sequence of xenpci-core steps, all over the core's `PortIo`/`Hypervisor`
//! traits so that they build and are tested on the host too. The machine layer (entry, port
//! instructions, hypercall instructions) is the binary's `platform` module.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod pci;
pub mod report;
pub mod steps;
