//! The xenbus device states (`io/xenbus.h`).
//!
//! Every frontend and backend directory in xenstore has a `state` node holding one of these values
//! as decimal text (`"1"` for [`XenbusState::Initialising`], …, `"8"` for
//! [`XenbusState::Reconfigured`]). The two ends advance through the states to set a device up and
//! tear it down; the usual frontend path is Initialising → Initialised (or straight to Connected
//! once the backend is in InitWait) → Connected → Closing → Closed.
//!
//! The state node is written by the peer, which is untrusted: [`XenbusState::parse`] accepts only
//! the nine defined values and returns a [`ParseXenbusStateError`] for anything else.

use core::fmt;
use core::str::FromStr;

/// The state of one end of a xenbus device (`enum xenbus_state`).
///
/// The discriminants are the values written to and read from the `state` node.
#[doc(alias = "xenbus_state")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum XenbusState {
    /// No state yet, or the node could not be read (`XenbusStateUnknown`, 0).
    #[doc(alias = "XenbusStateUnknown")]
    Unknown = 0,
    /// The driver is setting up its end (`XenbusStateInitialising`, 1).
    #[doc(alias = "XenbusStateInitialising")]
    Initialising = 1,
    /// Early initialisation is finished; waiting for information from the peer or from hotplug
    /// scripts (`XenbusStateInitWait`, 2). Backends publish their features in this state.
    #[doc(alias = "XenbusStateInitWait")]
    InitWait = 2,
    /// This end has published its ring references and event channels and waits for the peer to
    /// connect (`XenbusStateInitialised`, 3).
    #[doc(alias = "XenbusStateInitialised")]
    Initialised = 3,
    /// The device is usable (`XenbusStateConnected`, 4).
    #[doc(alias = "XenbusStateConnected")]
    Connected = 4,
    /// The device is being closed because of an error or an unplug (`XenbusStateClosing`, 5).
    #[doc(alias = "XenbusStateClosing")]
    Closing = 5,
    /// This end has released its resources (`XenbusStateClosed`, 6).
    #[doc(alias = "XenbusStateClosed")]
    Closed = 6,
    /// The device is being reconfigured, as pvSCSI does when it adds or removes a LUN
    /// (`XenbusStateReconfiguring`, 7).
    #[doc(alias = "XenbusStateReconfiguring")]
    Reconfiguring = 7,
    /// Reconfiguration is finished (`XenbusStateReconfigured`, 8).
    #[doc(alias = "XenbusStateReconfigured")]
    Reconfigured = 8,
}

/// Why a `state` node's text is not a xenbus state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseXenbusStateError {
    /// The node is empty.
    Empty,
    /// The text contains something other than the ASCII digits `0`–`9`.
    NotDecimal,
    /// The text is a number, but not one of the defined states (it may not even fit a `u32`, in
    /// which case `u32::MAX` is reported).
    UnknownState(u32),
}

impl fmt::Display for ParseXenbusStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty xenbus state"),
            Self::NotDecimal => f.write_str("xenbus state is not a decimal number"),
            Self::UnknownState(value) => write!(f, "unknown xenbus state {value}"),
        }
    }
}

impl core::error::Error for ParseXenbusStateError {}

impl XenbusState {
    /// All states, in numeric order.
    pub const ALL: [XenbusState; 9] = [
        Self::Unknown,
        Self::Initialising,
        Self::InitWait,
        Self::Initialised,
        Self::Connected,
        Self::Closing,
        Self::Closed,
        Self::Reconfiguring,
        Self::Reconfigured,
    ];

    /// The state with this numeric value, or `None` if no state has it.
    pub const fn from_u32(value: u32) -> Option<Self> {
        if value < Self::ALL.len() as u32 {
            Some(Self::ALL[value as usize])
        } else {
            None
        }
    }

    /// The numeric value of the state.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// Parses the contents of a `state` node: one or more ASCII digits (leading zeros allowed)
    /// whose value is a defined state. No sign, whitespace or terminating NUL is accepted.
    pub const fn parse(text: &[u8]) -> Result<Self, ParseXenbusStateError> {
        if text.is_empty() {
            return Err(ParseXenbusStateError::Empty);
        }
        let mut value: u32 = 0;
        let mut overflowed = false;
        let mut i = 0;
        while i < text.len() {
            let byte = text[i];
            if !byte.is_ascii_digit() {
                return Err(ParseXenbusStateError::NotDecimal);
            }
            match value.checked_mul(10) {
                Some(v) => match v.checked_add((byte - b'0') as u32) {
                    Some(v) => value = v,
                    None => overflowed = true,
                },
                None => overflowed = true,
            }
            i += 1;
        }
        if overflowed {
            return Err(ParseXenbusStateError::UnknownState(u32::MAX));
        }
        match Self::from_u32(value) {
            Some(state) => Ok(state),
            None => Err(ParseXenbusStateError::UnknownState(value)),
        }
    }

    /// The text to write to a `state` node: `"0"` … `"8"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "0",
            Self::Initialising => "1",
            Self::InitWait => "2",
            Self::Initialised => "3",
            Self::Connected => "4",
            Self::Closing => "5",
            Self::Closed => "6",
            Self::Reconfiguring => "7",
            Self::Reconfigured => "8",
        }
    }
}

impl From<XenbusState> for u32 {
    fn from(state: XenbusState) -> u32 {
        state as u32
    }
}

impl TryFrom<u32> for XenbusState {
    type Error = ParseXenbusStateError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::from_u32(value).ok_or(ParseXenbusStateError::UnknownState(value))
    }
}

impl FromStr for XenbusState {
    type Err = ParseXenbusStateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text.as_bytes())
    }
}

impl fmt::Display for XenbusState {
    /// Writes the node text (`"4"`), not the name; `{:?}` gives the name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_text() {
        for (i, state) in XenbusState::ALL.into_iter().enumerate() {
            assert_eq!(state.as_u32(), i as u32);
            assert_eq!(XenbusState::parse(state.as_str().as_bytes()), Ok(state));
            assert_eq!(state.as_str().parse::<XenbusState>(), Ok(state));
            assert_eq!(XenbusState::try_from(i as u32), Ok(state));
        }
    }

    #[test]
    fn xenstore_texts() {
        assert_eq!("1".parse(), Ok(XenbusState::Initialising));
        assert_eq!("4".parse(), Ok(XenbusState::Connected));
        assert_eq!("8".parse(), Ok(XenbusState::Reconfigured));
        assert_eq!("0".parse(), Ok(XenbusState::Unknown));
        assert_eq!("06".parse(), Ok(XenbusState::Closed));
    }

    #[test]
    fn unknown_values_are_errors() {
        assert_eq!(
            XenbusState::parse(b"9"),
            Err(ParseXenbusStateError::UnknownState(9))
        );
        assert_eq!(
            XenbusState::parse(b"42"),
            Err(ParseXenbusStateError::UnknownState(42))
        );
        assert_eq!(
            XenbusState::parse(b"99999999999999999999"),
            Err(ParseXenbusStateError::UnknownState(u32::MAX))
        );
        assert_eq!(
            XenbusState::try_from(9),
            Err(ParseXenbusStateError::UnknownState(9))
        );
    }

    #[test]
    fn malformed_texts_are_errors() {
        assert_eq!(XenbusState::parse(b""), Err(ParseXenbusStateError::Empty));
        for text in [
            &b"-1"[..],
            b"+4",
            b" 4",
            b"4\n",
            b"4\0",
            b"four",
            b"0x4",
            b"\xff",
        ] {
            assert_eq!(
                XenbusState::parse(text),
                Err(ParseXenbusStateError::NotDecimal),
                "{text:?}"
            );
        }
    }

    #[test]
    fn display_writes_the_node_text() {
        use core::fmt::Write;
        struct Buf([u8; 4], usize);
        impl Write for Buf {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0[self.1..self.1 + s.len()].copy_from_slice(s.as_bytes());
                self.1 += s.len();
                Ok(())
            }
        }
        let mut buf = Buf([0; 4], 0);
        write!(buf, "{}", XenbusState::Connected).unwrap();
        assert_eq!(&buf.0[..buf.1], b"4");
    }
}
