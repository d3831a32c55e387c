//! Node permissions: the strings `"r0"`, `"b5"`, `"w1"`, `"n2"` of `XS_GET_PERMS` and
//! `XS_SET_PERMS`.
//!
//! A node's permission list starts with its owner, whose entry's letter is also the access every
//! domain not listed gets; each further entry grants one domain an access. The owner (and dom0)
//! can always read and write.

use core::fmt;

use xen_abi::types::DomId;

use super::wire::{parse_u32, NulList, NulListIter};
use super::ProtocolError;

/// The access of one permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The letter of this access on the wire.
    pub const fn letter(self) -> u8 {
        match self {
            Access::None => b'n',
            Access::Read => b'r',
            Access::Write => b'w',
            Access::Both => b'b',
        }
    }

    /// The access a letter names.
    pub const fn from_letter(letter: u8) -> Option<Access> {
        match letter {
            b'n' => Some(Access::None),
            b'r' => Some(Access::Read),
            b'w' => Some(Access::Write),
            b'b' => Some(Access::Both),
            _ => None,
        }
    }

    /// Whether this access includes reading.
    pub const fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether this access includes writing.
    pub const fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One permission entry: a domain and its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The access granted.
    pub access: Access,
    /// The domain it is granted to (for the first entry of a list: the owner).
    pub domid: DomId,
}

/// The longest permission string: a letter and five digits.
pub const PERM_TEXT_MAX: usize = 6;

/// A permission string that is not a letter `n`/`r`/`w`/`b` followed by a decimal domain id that
/// fits in 16 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidPerm;

impl fmt::Display for InvalidPerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid permission string")
    }
}

impl Perm {
    /// A permission entry.
    pub const fn new(access: Access, domid: DomId) -> Perm {
        Perm { access, domid }
    }

    /// Parses `"r0"`, `"b12"`, … (without NUL).
    pub fn parse(text: &[u8]) -> Result<Perm, InvalidPerm> {
        let (&letter, digits) = text.split_first().ok_or(InvalidPerm)?;
        let access = Access::from_letter(letter).ok_or(InvalidPerm)?;
        let domid = parse_u32(digits)
            .and_then(|d| DomId::try_from(d).ok())
            .ok_or(InvalidPerm)?;
        Ok(Perm { access, domid })
    }

    /// Formats the entry into `buf` and returns the text (without NUL).
    pub fn format<'b>(&self, buf: &'b mut [u8; PERM_TEXT_MAX]) -> &'b [u8] {
        let mut digits = [0; 10];
        let d = super::wire::format_u32(u32::from(self.domid), &mut digits);
        buf[0] = self.access.letter();
        buf[1..1 + d.len()].copy_from_slice(d);
        &buf[..1 + d.len()]
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter() as char, self.domid)
    }
}

/// A node's permission list as returned by `XS_GET_PERMS`, validated: NUL-terminated entries,
/// at least one (the owner), each a valid [`Perm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermList<'a> {
    list: NulList<'a>,
}

impl<'a> PermList<'a> {
    /// Validates a `XS_GET_PERMS` reply payload.
    pub fn parse(payload: &'a [u8]) -> Result<Self, ProtocolError> {
        let list = NulList::new(payload)?;
        if list.is_empty() {
            return Err(ProtocolError::MalformedPayload);
        }
        for text in list.iter() {
            Perm::parse(text).map_err(|_| ProtocolError::MalformedPayload)?;
        }
        Ok(PermList { list })
    }

    /// The owner's entry: its domain owns the node, its access applies to unlisted domains.
    pub fn owner(&self) -> Perm {
        // Validated non-empty and parseable.
        self.iter().next().unwrap_or(Perm::new(Access::None, 0))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.list.count()
    }

    /// Always false: a valid list has an owner.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The entries, owner first.
    pub fn iter(&self) -> PermIter<'a> {
        PermIter {
            inner: self.list.iter(),
        }
    }

    /// The access `domid` gets by this list, as the daemon decides it: the owner gets both;
    /// a listed domain gets its entry's access; anyone else gets the owner entry's access.
    /// (Dom0's and privileged domains' implicit rights are not modelled.)
    pub fn access_for(&self, domid: DomId) -> Access {
        let owner = self.owner();
        if owner.domid == domid {
            return Access::Both;
        }
        self.iter()
            .skip(1)
            .find(|p| p.domid == domid)
            .map_or(owner.access, |p| p.access)
    }
}

/// Iterator over the entries of a [`PermList`].
#[derive(Clone, Debug)]
pub struct PermIter<'a> {
    inner: NulListIter<'a>,
}

impl Iterator for PermIter<'_> {
    type Item = Perm;
    fn next(&mut self) -> Option<Perm> {
        // Every entry was validated by PermList::parse.
        self.inner.next().and_then(|t| Perm::parse(t).ok())
    }
}
