//! An in-process model of Xen (hypercalls, grant tables, event channels, xenstored) for tests.
#![forbid(unsafe_code)]
