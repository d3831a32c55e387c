//! NTSTATUS values and their classes.
#![forbid(unsafe_code)]

/// An `NTSTATUS` (a signed 32-bit value; negative is an error).
pub type NtStatus = i32;

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: NtStatus = 0;
/// `STATUS_UNSUCCESSFUL`.
pub const STATUS_UNSUCCESSFUL: NtStatus = 0xC000_0001_u32 as i32;
/// `STATUS_PENDING`.
pub const STATUS_PENDING: NtStatus = 0x0000_0103;
/// `STATUS_MORE_PROCESSING_REQUIRED`: a completion routine keeps the IRP.
pub const STATUS_MORE_PROCESSING_REQUIRED: NtStatus = 0xC000_0016_u32 as i32;
/// `STATUS_NOT_SUPPORTED`: the default status of a PnP IRP nobody handled.
pub const STATUS_NOT_SUPPORTED: NtStatus = 0xC000_00BB_u32 as i32;
/// `STATUS_INVALID_DEVICE_REQUEST`.
pub const STATUS_INVALID_DEVICE_REQUEST: NtStatus = 0xC000_0010_u32 as i32;
/// `STATUS_INSUFFICIENT_RESOURCES`.
pub const STATUS_INSUFFICIENT_RESOURCES: NtStatus = 0xC000_009A_u32 as i32;
/// `STATUS_NO_SUCH_DEVICE`.
pub const STATUS_NO_SUCH_DEVICE: NtStatus = 0xC000_000E_u32 as i32;
/// `STATUS_DEVICE_CONFIGURATION_ERROR`: the device's configuration cannot be used.
pub const STATUS_DEVICE_CONFIGURATION_ERROR: NtStatus = 0xC000_0182_u32 as i32;
/// `STATUS_DEVICE_NOT_READY`.
pub const STATUS_DEVICE_NOT_READY: NtStatus = 0xC000_00A3_u32 as i32;
/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: NtStatus = 0xC000_000D_u32 as i32;
/// `STATUS_OBJECT_NAME_NOT_FOUND`: for example a registry value that does not exist.
pub const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = 0xC000_0034_u32 as i32;
/// `STATUS_BUFFER_OVERFLOW` (a warning: the buffer was too small, partial data returned).
pub const STATUS_BUFFER_OVERFLOW: NtStatus = 0x8000_0005_u32 as i32;
/// `STATUS_BUFFER_TOO_SMALL`.
pub const STATUS_BUFFER_TOO_SMALL: NtStatus = 0xC000_0023_u32 as i32;

/// `NT_SUCCESS`: success and informational values (0 to 0x7FFF_FFFF).
pub const fn nt_success(status: NtStatus) -> bool {
    status >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(nt_success(STATUS_SUCCESS));
        assert!(nt_success(STATUS_PENDING));
        assert!(!nt_success(STATUS_BUFFER_OVERFLOW));
        assert!(!nt_success(STATUS_DEVICE_CONFIGURATION_ERROR));
    }

    #[test]
    fn values_agree_with_windows_sys() {
        use windows_sys::Win32::Foundation as f;
        assert_eq!(
            STATUS_MORE_PROCESSING_REQUIRED,
            f::STATUS_MORE_PROCESSING_REQUIRED
        );
        assert_eq!(STATUS_NOT_SUPPORTED, f::STATUS_NOT_SUPPORTED);
        assert_eq!(
            STATUS_INVALID_DEVICE_REQUEST,
            f::STATUS_INVALID_DEVICE_REQUEST
        );
        assert_eq!(
            STATUS_INSUFFICIENT_RESOURCES,
            f::STATUS_INSUFFICIENT_RESOURCES
        );
        assert_eq!(STATUS_NO_SUCH_DEVICE, f::STATUS_NO_SUCH_DEVICE);
        assert_eq!(
            STATUS_DEVICE_CONFIGURATION_ERROR,
            f::STATUS_DEVICE_CONFIGURATION_ERROR
        );
        assert_eq!(STATUS_DEVICE_NOT_READY, f::STATUS_DEVICE_NOT_READY);
        assert_eq!(STATUS_INVALID_PARAMETER, f::STATUS_INVALID_PARAMETER);
        assert_eq!(
            STATUS_OBJECT_NAME_NOT_FOUND,
            f::STATUS_OBJECT_NAME_NOT_FOUND
        );
        assert_eq!(STATUS_BUFFER_OVERFLOW, f::STATUS_BUFFER_OVERFLOW);
        assert_eq!(STATUS_BUFFER_TOO_SMALL, f::STATUS_BUFFER_TOO_SMALL);
        assert_eq!(STATUS_PENDING, f::STATUS_PENDING);
        assert_eq!(STATUS_UNSUCCESSFUL, f::STATUS_UNSUCCESSFUL);
    }
}
