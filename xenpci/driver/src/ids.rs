//! The answers a child PDO gives to `IRP_MN_QUERY_ID` and `IRP_MN_QUERY_DEVICE_TEXT`, built from
//! `xenpci-core`'s [`PdoDescription`] as NUL-terminated UTF-16 (the `MULTI_SZ` lists end with a
//! second NUL). The binding layer copies the units into pool memory the PnP manager frees.
#![forbid(unsafe_code)]

use xenpci_core::xenbus::{DeviceClass, PdoDescription};

/// UTF-16 units an answer may have (the longest, the hardware ids, is about 120).
pub const MAX_ANSWER_UNITS: usize = 256;

/// `BUS_QUERY_ID_TYPE` values.
pub mod query_id {
    /// `BusQueryDeviceID`.
    pub const DEVICE_ID: u32 = 0;
    /// `BusQueryHardwareIDs`.
    pub const HARDWARE_IDS: u32 = 1;
    /// `BusQueryCompatibleIDs`.
    pub const COMPATIBLE_IDS: u32 = 2;
    /// `BusQueryInstanceID`.
    pub const INSTANCE_ID: u32 = 3;
}

/// `DEVICE_TEXT_TYPE` values.
pub mod device_text {
    /// `DeviceTextDescription`.
    pub const DESCRIPTION: u32 = 0;
    /// `DeviceTextLocationInformation`.
    pub const LOCATION: u32 = 1;
}

/// A UTF-16 answer in a fixed buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    units: [u16; MAX_ANSWER_UNITS],
    len: usize,
}

impl Answer {
    fn new() -> Self {
        Self {
            units: [0; MAX_ANSWER_UNITS],
            len: 0,
        }
    }

    /// Appends `text` and a NUL; `None` if it does not fit (with room for a final NUL).
    fn push_string(&mut self, text: &str) -> Option<()> {
        for unit in text.encode_utf16() {
            self.push_unit(unit)?;
        }
        self.push_unit(0)
    }

    fn push_unit(&mut self, unit: u16) -> Option<()> {
        // Keep one unit for the NUL that ends a MULTI_SZ.
        if self.len + 1 >= MAX_ANSWER_UNITS {
            return None;
        }
        self.units[self.len] = unit;
        self.len += 1;
        Some(())
    }

    /// The units, terminators included.
    pub fn units(&self) -> &[u16] {
        &self.units[..self.len]
    }
}

/// The answer to `IRP_MN_QUERY_ID` of type `id_type`, or `None` for types the bus does not
/// answer (the IRP then completes with its status unchanged).
pub fn query_id_answer(pdo: &PdoDescription, id_type: u32) -> Option<Answer> {
    let mut answer = Answer::new();
    match id_type {
        query_id::DEVICE_ID => answer.push_string(pdo.hardware_id.as_str())?,
        query_id::HARDWARE_IDS => {
            answer.push_string(pdo.hardware_id.as_str())?;
            answer.push_unit(0)?;
        }
        query_id::COMPATIBLE_IDS => {
            for id in &pdo.compatible_ids {
                answer.push_string(id.as_str())?;
            }
            answer.push_unit(0)?;
        }
        query_id::INSTANCE_ID => answer.push_string(pdo.instance_id.as_str())?,
        _ => return None,
    }
    Some(answer)
}

/// The device description Device Manager shows for a child class.
pub fn class_description(class: DeviceClass) -> &'static str {
    match class {
        DeviceClass::Vbd => "Xen PV Storage Device",
        DeviceClass::Vif => "Xen PV Network Device",
        DeviceClass::Vscsi => "Xen PV SCSI Host",
    }
}

/// The answer to `IRP_MN_QUERY_DEVICE_TEXT` of type `text_type`, or `None` for other types.
pub fn device_text_answer(pdo: &PdoDescription, text_type: u32) -> Option<Answer> {
    let mut answer = Answer::new();
    match text_type {
        device_text::DESCRIPTION => answer.push_string(class_description(pdo.class))?,
        device_text::LOCATION => answer.push_string(pdo.location.as_str())?,
        _ => return None,
    }
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenpci_core::xenbus::FixedStr;

    fn disk() -> PdoDescription {
        let s = |t: &str| FixedStr::try_from_str(t).unwrap();
        PdoDescription {
            class: DeviceClass::Vbd,
            instance: 51712,
            hardware_id: s("XENBUS\\VEN_XP&DEV_VBD&REV_00000001"),
            compatible_ids: [s("XENBUS\\VEN_XP&DEV_VBD"), s("XENBUS\\DEV_VBD")],
            instance_id: FixedStr::try_from_str("51712").unwrap(),
            location: s("Xen PV disk 51712 (xvda)"),
        }
    }

    fn text(units: &[u16]) -> String {
        String::from_utf16(units).unwrap()
    }

    #[test]
    fn ids_are_nul_terminated_and_lists_double_nul_terminated() {
        let pdo = disk();
        let device = query_id_answer(&pdo, query_id::DEVICE_ID).unwrap();
        assert_eq!(
            text(device.units()),
            "XENBUS\\VEN_XP&DEV_VBD&REV_00000001\0"
        );
        let hardware = query_id_answer(&pdo, query_id::HARDWARE_IDS).unwrap();
        assert_eq!(
            text(hardware.units()),
            "XENBUS\\VEN_XP&DEV_VBD&REV_00000001\0\0"
        );
        let compatible = query_id_answer(&pdo, query_id::COMPATIBLE_IDS).unwrap();
        assert_eq!(
            text(compatible.units()),
            "XENBUS\\VEN_XP&DEV_VBD\0XENBUS\\DEV_VBD\0\0"
        );
        let instance = query_id_answer(&pdo, query_id::INSTANCE_ID).unwrap();
        assert_eq!(text(instance.units()), "51712\0");
    }

    #[test]
    fn other_id_types_are_not_answered() {
        // BusQueryDeviceSerialNumber, BusQueryContainerID.
        assert_eq!(query_id_answer(&disk(), 4), None);
        assert_eq!(query_id_answer(&disk(), 5), None);
    }

    #[test]
    fn device_texts() {
        let pdo = disk();
        let description = device_text_answer(&pdo, device_text::DESCRIPTION).unwrap();
        assert_eq!(text(description.units()), "Xen PV Storage Device\0");
        let location = device_text_answer(&pdo, device_text::LOCATION).unwrap();
        assert_eq!(text(location.units()), "Xen PV disk 51712 (xvda)\0");
        assert_eq!(device_text_answer(&pdo, 2), None);
    }

    #[test]
    fn answers_built_from_the_core_description_match_it() {
        // The description the core builds for a child, end to end.
        use xenpci_core::xenbus::{ChildInfo, Identity};
        let child = ChildInfo {
            class: DeviceClass::Vif,
            id: 0,
            backend: FixedStr::try_from_str("/local/domain/0/backend/vif/1/0").unwrap(),
            backend_id: 0,
            state: xen_abi::xenbus::XenbusState::Initialising,
            identity: Identity::Vif {
                handle: 0,
                mac: None,
            },
        };
        let pdo = child.pdo();
        let hardware = query_id_answer(&pdo, query_id::HARDWARE_IDS).unwrap();
        let listed = text(hardware.units());
        assert!(
            listed.starts_with("XENBUS\\VEN_XP&DEV_VIF&REV_"),
            "{listed}"
        );
        assert!(listed.ends_with("\0\0"));
        let instance = query_id_answer(&pdo, query_id::INSTANCE_ID).unwrap();
        assert_eq!(text(instance.units()), "0\0");
    }
}
