//! The xenbus device states (`io/xenbus.h`).

use crate::harness::Catalogue;
use xen_abi::xenbus::XenbusState;

pub fn describe(c: &mut Catalogue) {
    let xenbus_state_unknown = XenbusState::Unknown.as_u32();
    let xenbus_state_initialising = XenbusState::Initialising.as_u32();
    let xenbus_state_init_wait = XenbusState::InitWait.as_u32();
    let xenbus_state_initialised = XenbusState::Initialised.as_u32();
    let xenbus_state_connected = XenbusState::Connected.as_u32();
    let xenbus_state_closing = XenbusState::Closing.as_u32();
    let xenbus_state_closed = XenbusState::Closed.as_u32();
    let xenbus_state_reconfiguring = XenbusState::Reconfiguring.as_u32();
    let xenbus_state_reconfigured = XenbusState::Reconfigured.as_u32();
    let xenbus_state_count = XenbusState::ALL.len() as u64;
    c.consts.extend(consts!(Both;
        xenbus_state_unknown => "XenbusStateUnknown",
        xenbus_state_initialising => "XenbusStateInitialising",
        xenbus_state_init_wait => "XenbusStateInitWait",
        xenbus_state_initialised => "XenbusStateInitialised",
        xenbus_state_connected => "XenbusStateConnected",
        xenbus_state_closing => "XenbusStateClosing",
        xenbus_state_closed => "XenbusStateClosed",
        xenbus_state_reconfiguring => "XenbusStateReconfiguring",
        xenbus_state_reconfigured => "XenbusStateReconfigured",
        // The enumeration is dense, so the last value + 1 is the number of states.
        xenbus_state_count => "XenbusStateReconfigured + 1",
    ));
}
