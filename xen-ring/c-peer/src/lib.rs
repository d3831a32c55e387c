//! Test-only: a ring peer built from Xen's own `io/ring.h` macros.
