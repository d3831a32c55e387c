//! Tests of the device model against the in-crate xenstored used by the xenstore tests.

extern crate std;

// The xenstore tests' daemon, shared rather than duplicated.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../xenstore/tests/fake.rs"]
pub(crate) mod fake;

mod enumerate;
mod handshake;
mod hotplug;

use std::boxed::Box;

use crate::xenstore::{TxId, XsConnection};
use fake::Pipe;

/// The connection the tests use.
pub(crate) type Conn = XsConnection<8, 8, 4096>;

/// A connection and a daemon behind a pipe.
pub(crate) fn store() -> (Box<Conn>, Pipe) {
    (Box::new(Conn::new()), Pipe::new(64))
}

/// Writes nodes (path, value) through the client, as the toolstack would.
pub(crate) fn put(xs: &mut Conn, pipe: &mut Pipe, nodes: &[(&str, &str)]) {
    for (path, value) in nodes {
        xs.write(pipe, TxId::NONE, path, value.as_bytes()).unwrap();
    }
}

/// The value of a node in the daemon, if it exists.
pub(crate) fn value(pipe: &Pipe, path: &str) -> Option<std::string::String> {
    pipe.server
        .nodes
        .get(path.as_bytes())
        .map(|n| std::string::String::from_utf8(n.value.clone()).unwrap())
}
