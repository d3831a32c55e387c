//! What a child PDO answers to the PnP queries a bus driver owns (the state-changing minor
//! codes are [`crate::child`]'s, the ID and text answers [`crate::ids`]'s).
//!
//! - `IRP_MN_QUERY_INTERFACE`: the Xen bus interface ([`query_interface`]): another interface
//!   type leaves the IRP as it is; a version or size the bus does not fill is refused with the
//!   status of [`QueryRefusal::ntstatus`] and a reason for the log; otherwise the child's
//!   `xenpci_interface::ChildInterface` fills the table.
//! - `IRP_MN_QUERY_CAPABILITIES`: [`capabilities`] (removable, surprise removal is fine, silent
//!   install, the child's id as address and UI number; instance ids are unique only on this bus).
//! - `IRP_MN_QUERY_RESOURCE_REQUIREMENTS` and `IRP_MN_QUERY_RESOURCES`: none (a child reaches Xen
//!   through the interface, not through hardware resources): success with an empty answer.
//! - `IRP_MN_QUERY_DEVICE_RELATIONS` of type `TargetDeviceRelation`: the PDO itself; other
//!   relation types stay as they are (a PDO has no bus relations).
#![forbid(unsafe_code)]

use win_km::status::NtStatus;
use xenpci_core::xenbus::PdoDescription;
use xenpci_interface::negotiate::provider_accepts;
use xenpci_interface::{QueryRefusal, QueryRequest};

/// `IRP_MN_*` minor codes a child PDO answers here.
pub mod minor {
    /// `IRP_MN_QUERY_DEVICE_RELATIONS`.
    pub const QUERY_DEVICE_RELATIONS: u8 = 0x07;
    /// `IRP_MN_QUERY_INTERFACE`.
    pub const QUERY_INTERFACE: u8 = 0x08;
    /// `IRP_MN_QUERY_CAPABILITIES`.
    pub const QUERY_CAPABILITIES: u8 = 0x09;
    /// `IRP_MN_QUERY_RESOURCES`.
    pub const QUERY_RESOURCES: u8 = 0x0A;
    /// `IRP_MN_QUERY_RESOURCE_REQUIREMENTS`.
    pub const QUERY_RESOURCE_REQUIREMENTS: u8 = 0x0B;
    /// `IRP_MN_QUERY_DEVICE_TEXT`.
    pub const QUERY_DEVICE_TEXT: u8 = 0x0C;
    /// `IRP_MN_QUERY_ID`.
    pub const QUERY_ID: u8 = 0x13;
}

/// `DEVICE_RELATION_TYPE` values.
pub mod relation {
    /// `BusRelations`.
    pub const BUS: u32 = 0;
    /// `TargetDeviceRelation`.
    pub const TARGET_DEVICE: u32 = 4;
}

/// The answer to `IRP_MN_QUERY_INTERFACE` on a child PDO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterfaceAnswer {
    /// Not the Xen bus interface: complete with the IRP's status unchanged.
    NotOurs,
    /// The Xen bus interface, but not a version and size the bus fills: complete with
    /// `status` and log `reason`.
    Refused {
        /// The IRP's status.
        status: NtStatus,
        /// Why, for the log.
        reason: QueryRefusal,
    },
    /// Fill the table of this version (through the child's `ChildInterface`).
    Fill {
        /// The version.
        version: u16,
    },
}

/// Decides a child's `IRP_MN_QUERY_INTERFACE` from its `Parameters.QueryInterface`.
pub fn query_interface(request: &QueryRequest) -> InterfaceAnswer {
    match provider_accepts(request) {
        Ok(version) => InterfaceAnswer::Fill { version },
        Err(QueryRefusal::OtherInterface(_)) => InterfaceAnswer::NotOurs,
        Err(reason) => InterfaceAnswer::Refused {
            status: reason.ntstatus(),
            reason,
        },
    }
}

/// A child PDO's `DEVICE_CAPABILITIES` (the fields the bus sets; the rest stay as the PnP
/// manager initialised them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `Removable`: the toolstack may unplug the device.
    pub removable: bool,
    /// `SurpriseRemovalOK`: unplug without warning is normal for a xenbus device.
    pub surprise_removal_ok: bool,
    /// `UniqueID`: instance ids are unique on this bus only.
    pub unique_id: bool,
    /// `SilentInstall`.
    pub silent_install: bool,
    /// `Address`: the child's xenbus id.
    pub address: u32,
    /// `UINumber`: the child's xenbus id.
    pub ui_number: u32,
}

impl Capabilities {
    /// The bit-field word at offset 4 of `DEVICE_CAPABILITIES` (`DeviceD1` is bit 0;
    /// `Removable` 4, `UniqueID` 6, `SilentInstall` 7, `SurpriseRemovalOK` 9).
    pub fn flag_bits(&self) -> u32 {
        u32::from(self.removable) << 4
            | u32::from(self.unique_id) << 6
            | u32::from(self.silent_install) << 7
            | u32::from(self.surprise_removal_ok) << 9
    }

    /// The bits [`flag_bits`](Self::flag_bits) owns (cleared before they are set).
    pub const OWNED_BITS: u32 = 1 << 4 | 1 << 6 | 1 << 7 | 1 << 9;
}

/// The capabilities of the child `pdo` describes.
pub fn capabilities(pdo: &PdoDescription) -> Capabilities {
    Capabilities {
        removable: true,
        surprise_removal_ok: true,
        unique_id: false,
        silent_install: true,
        address: pdo.instance,
        ui_number: pdo.instance,
    }
}

/// What a child PDO does with a query minor code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryAction {
    /// Answer with the PDO itself (`TargetDeviceRelation`).
    TargetRelation,
    /// Succeed with an empty answer (`Information` 0: no resources).
    SucceedEmpty,
    /// Fill the capabilities.
    Capabilities,
    /// Decide with [`query_interface`].
    Interface,
    /// Answer with [`crate::ids::query_id_answer`].
    Id,
    /// Answer with [`crate::ids::device_text_answer`].
    Text,
    /// Not a query this module answers (a state change, or one left as it is).
    NotAQuery,
}

/// Sorts a child PDO's PnP minor code; `relation_type` is `Parameters.QueryDeviceRelations.Type`
/// (read only for `IRP_MN_QUERY_DEVICE_RELATIONS`).
pub fn query_action(minor_code: u8, relation_type: u32) -> QueryAction {
    match minor_code {
        minor::QUERY_DEVICE_RELATIONS if relation_type == relation::TARGET_DEVICE => {
            QueryAction::TargetRelation
        }
        minor::QUERY_RESOURCES | minor::QUERY_RESOURCE_REQUIREMENTS => QueryAction::SucceedEmpty,
        minor::QUERY_CAPABILITIES => QueryAction::Capabilities,
        minor::QUERY_INTERFACE => QueryAction::Interface,
        minor::QUERY_ID => QueryAction::Id,
        minor::QUERY_DEVICE_TEXT => QueryAction::Text,
        _ => QueryAction::NotAQuery,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenpci_interface::abi::{Guid, XEN_BUS_INTERFACE_V1_SIZE};
    use xenpci_interface::negotiate::{
        NTSTATUS_BUFFER_TOO_SMALL, NTSTATUS_INVALID_PARAMETER, NTSTATUS_NOT_SUPPORTED,
    };
    use xenpci_interface::XEN_BUS_INTERFACE_GUID;

    #[test]
    fn the_v1_request_is_filled() {
        assert_eq!(
            query_interface(&QueryRequest::V1),
            InterfaceAnswer::Fill { version: 1 }
        );
        // A bigger buffer than the table is fine: the bus fills the version's size.
        let roomy = QueryRequest {
            size: XEN_BUS_INTERFACE_V1_SIZE + 64,
            ..QueryRequest::V1
        };
        assert_eq!(
            query_interface(&roomy),
            InterfaceAnswer::Fill { version: 1 }
        );
    }

    #[test]
    fn another_interface_is_left_alone() {
        let other = Guid {
            data1: 0x1234_5678,
            ..XEN_BUS_INTERFACE_GUID
        };
        let request = QueryRequest {
            interface_type: other,
            ..QueryRequest::V1
        };
        assert_eq!(query_interface(&request), InterfaceAnswer::NotOurs);
    }

    #[test]
    fn mismatches_are_refused_with_a_status_and_a_reason() {
        let cases = [
            (
                QueryRequest {
                    version: 2,
                    ..QueryRequest::V1
                },
                NTSTATUS_NOT_SUPPORTED,
                "bus interface version 2 requested, the newest supported is 1",
            ),
            (
                QueryRequest {
                    version: 0,
                    ..QueryRequest::V1
                },
                NTSTATUS_NOT_SUPPORTED,
                "bus interface version 0 requested, the oldest supported is 1",
            ),
            (
                QueryRequest {
                    size: XEN_BUS_INTERFACE_V1_SIZE - 8,
                    ..QueryRequest::V1
                },
                NTSTATUS_BUFFER_TOO_SMALL,
                "the table needs",
            ),
            (
                QueryRequest {
                    has_buffer: false,
                    ..QueryRequest::V1
                },
                NTSTATUS_INVALID_PARAMETER,
                "without a buffer",
            ),
        ];
        for (request, expected_status, text) in cases {
            match query_interface(&request) {
                InterfaceAnswer::Refused { status, reason } => {
                    assert_eq!(status, expected_status, "{request:?}");
                    assert!(reason.to_string().contains(text), "{reason}");
                }
                other => panic!("{request:?} answered {other:?}"),
            }
        }
    }

    #[test]
    fn capability_bits_sit_where_device_capabilities_has_them() {
        let caps = Capabilities {
            removable: true,
            surprise_removal_ok: false,
            unique_id: false,
            silent_install: false,
            address: 0,
            ui_number: 0,
        };
        assert_eq!(caps.flag_bits(), 0x10);
        let all = Capabilities {
            removable: true,
            surprise_removal_ok: true,
            unique_id: true,
            silent_install: true,
            address: 0,
            ui_number: 0,
        };
        assert_eq!(all.flag_bits(), 0x2d0);
        assert_eq!(all.flag_bits(), Capabilities::OWNED_BITS);
    }

    #[test]
    fn queries_are_sorted() {
        assert_eq!(
            query_action(minor::QUERY_DEVICE_RELATIONS, relation::TARGET_DEVICE),
            QueryAction::TargetRelation
        );
        assert_eq!(
            query_action(minor::QUERY_DEVICE_RELATIONS, relation::BUS),
            QueryAction::NotAQuery
        );
        assert_eq!(
            query_action(minor::QUERY_RESOURCE_REQUIREMENTS, 0),
            QueryAction::SucceedEmpty
        );
        assert_eq!(
            query_action(minor::QUERY_RESOURCES, 0),
            QueryAction::SucceedEmpty
        );
        assert_eq!(
            query_action(minor::QUERY_CAPABILITIES, 0),
            QueryAction::Capabilities
        );
        assert_eq!(
            query_action(minor::QUERY_INTERFACE, 0),
            QueryAction::Interface
        );
        assert_eq!(query_action(minor::QUERY_ID, 0), QueryAction::Id);
        assert_eq!(query_action(minor::QUERY_DEVICE_TEXT, 0), QueryAction::Text);
        for state_change in 0x00..=0x06 {
            assert_eq!(query_action(state_change, 0), QueryAction::NotAQuery);
        }
    }
}
