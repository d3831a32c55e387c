//! Sense keys, additional sense codes and the error type command handlers return.

use crate::types::Sense;

/// NO SENSE.
pub const KEY_NO_SENSE: u8 = 0x00;
/// NOT READY.
pub const KEY_NOT_READY: u8 = 0x02;
/// MEDIUM ERROR.
pub const KEY_MEDIUM_ERROR: u8 = 0x03;
/// HARDWARE ERROR.
pub const KEY_HARDWARE_ERROR: u8 = 0x04;
/// ILLEGAL REQUEST.
pub const KEY_ILLEGAL_REQUEST: u8 = 0x05;
/// UNIT ATTENTION.
pub const KEY_UNIT_ATTENTION: u8 = 0x06;
/// DATA PROTECT.
pub const KEY_DATA_PROTECT: u8 = 0x07;

/// A sense key with its additional sense code and qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenseCode {
    /// Sense key.
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
}

const fn code(key: u8, asc: u8, ascq: u8) -> SenseCode {
    SenseCode { key, asc, ascq }
}

/// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE (20h/00h).
pub const INVALID_OPCODE: SenseCode = code(KEY_ILLEGAL_REQUEST, 0x20, 0x00);
/// ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21h/00h).
pub const LBA_OUT_OF_RANGE: SenseCode = code(KEY_ILLEGAL_REQUEST, 0x21, 0x00);
/// ILLEGAL REQUEST / INVALID FIELD IN CDB (24h/00h).
pub const INVALID_FIELD_IN_CDB: SenseCode = code(KEY_ILLEGAL_REQUEST, 0x24, 0x00);
/// ILLEGAL REQUEST / LOGICAL UNIT NOT SUPPORTED (25h/00h).
pub const LUN_NOT_SUPPORTED: SenseCode = code(KEY_ILLEGAL_REQUEST, 0x25, 0x00);
/// ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST (26h/00h).
pub const INVALID_FIELD_IN_PARAMETER_LIST: SenseCode = code(KEY_ILLEGAL_REQUEST, 0x26, 0x00);
/// ILLEGAL REQUEST / PARAMETER LIST LENGTH ERROR (1Ah/00h).
pub const PARAMETER_LIST_LENGTH_ERROR: SenseCode = code(KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
/// ILLEGAL REQUEST / SAVING PARAMETERS NOT SUPPORTED (39h/00h).
pub const SAVING_NOT_SUPPORTED: SenseCode = code(KEY_ILLEGAL_REQUEST, 0x39, 0x00);
/// ILLEGAL REQUEST / MEDIUM REMOVAL PREVENTED (53h/02h).
pub const MEDIUM_REMOVAL_PREVENTED: SenseCode = code(KEY_ILLEGAL_REQUEST, 0x53, 0x02);
/// DATA PROTECT / WRITE PROTECTED (27h/00h).
pub const WRITE_PROTECTED: SenseCode = code(KEY_DATA_PROTECT, 0x27, 0x00);
/// NOT READY / MEDIUM NOT PRESENT (3Ah/00h).
pub const MEDIUM_NOT_PRESENT: SenseCode = code(KEY_NOT_READY, 0x3a, 0x00);
/// UNIT ATTENTION / POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29h/00h).
pub const POWER_ON_RESET: SenseCode = code(KEY_UNIT_ATTENTION, 0x29, 0x00);
/// UNIT ATTENTION / NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED (28h/00h).
pub const MEDIUM_MAY_HAVE_CHANGED: SenseCode = code(KEY_UNIT_ATTENTION, 0x28, 0x00);
/// UNIT ATTENTION / CAPACITY DATA HAS CHANGED (2Ah/09h).
pub const CAPACITY_CHANGED: SenseCode = code(KEY_UNIT_ATTENTION, 0x2a, 0x09);
/// UNIT ATTENTION: MODE PARAMETERS CHANGED (the write cache or provisioning changed).
pub const MODE_PARAMETERS_CHANGED: SenseCode = code(KEY_UNIT_ATTENTION, 0x2a, 0x01);
/// MEDIUM ERROR / UNRECOVERED READ ERROR (11h/00h).
pub const UNRECOVERED_READ_ERROR: SenseCode = code(KEY_MEDIUM_ERROR, 0x11, 0x00);
/// MEDIUM ERROR / WRITE ERROR (0Ch/00h).
pub const WRITE_ERROR: SenseCode = code(KEY_MEDIUM_ERROR, 0x0c, 0x00);
/// HARDWARE ERROR / LOGICAL UNIT FAILURE (3Eh/01h).
pub const LOGICAL_UNIT_FAILURE: SenseCode = code(KEY_HARDWARE_ERROR, 0x3e, 0x01);
/// HARDWARE ERROR / INTERNAL TARGET FAILURE (44h/00h).
pub const INTERNAL_TARGET_FAILURE: SenseCode = code(KEY_HARDWARE_ERROR, 0x44, 0x00);

impl SenseCode {
    /// The sense data without an INFORMATION field.
    pub const fn sense(self) -> Sense {
        Sense {
            key: self.key,
            asc: self.asc,
            ascq: self.ascq,
            information: 0,
            information_valid: false,
        }
    }

    /// The sense data with `information` in the INFORMATION field (VALID set). The fixed format
    /// carries 32 bits: a larger value is reported without the VALID bit, as SPC requires.
    pub fn sense_with_information(self, information: u64) -> Sense {
        match u32::try_from(information) {
            Ok(information) => Sense {
                information,
                information_valid: true,
                ..self.sense()
            },
            Err(_) => self.sense(),
        }
    }
}

/// Length of fixed-format sense data as the core produces it.
pub const FIXED_SENSE_LEN: usize = 18;

/// Formats `sense` as fixed-format sense data (response code 70h, current error), the form
/// REQUEST SENSE returns and the glue copies into the request's sense buffer.
pub fn fixed_sense(sense: &Sense) -> [u8; FIXED_SENSE_LEN] {
    let mut out = [0u8; FIXED_SENSE_LEN];
    out[0] = 0x70 | if sense.information_valid { 0x80 } else { 0 };
    out[2] = sense.key & 0x0f;
    out[3..7].copy_from_slice(&sense.information.to_be_bytes());
    out[7] = (FIXED_SENSE_LEN - 8) as u8;
    out[12] = sense.asc;
    out[13] = sense.ascq;
    out
}

/// Why a command ends with CHECK CONDITION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScsiError(pub Sense);

impl From<SenseCode> for ScsiError {
    fn from(code: SenseCode) -> Self {
        ScsiError(code.sense())
    }
}

/// Result of a command handler.
pub(crate) type ScsiResult<T> = Result<T, ScsiError>;

/// Shorthand for an INVALID FIELD IN CDB error.
pub(crate) fn invalid_field<T>() -> ScsiResult<T> {
    Err(INVALID_FIELD_IN_CDB.into())
}
