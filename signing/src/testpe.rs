//! A small, well-formed PE image for tests (one `.text` section with a recognisable pattern):
//! enough for the Authenticode hash, for osslsigncode to sign and verify, and for catalogs.

/// A PE image with optional-header magic `magic` (0x10b: PE32 for i386, 0x20b: PE32+ for AMD64),
/// subsystem native, one code section; 0x400 bytes, unsigned.
pub fn tiny_pe(magic: u16) -> Vec<u8> {
    let mut image = vec![0u8; 0x400];
    let put16 = |image: &mut Vec<u8>, at: usize, v: u16| {
        image[at..at + 2].copy_from_slice(&v.to_le_bytes())
    };
    let put32 = |image: &mut Vec<u8>, at: usize, v: u32| {
        image[at..at + 4].copy_from_slice(&v.to_le_bytes())
    };
    image[0..2].copy_from_slice(b"MZ");
    put32(&mut image, 0x3c, 0x80);
    image[0x80..0x84].copy_from_slice(b"PE\0\0");
    let coff = 0x84;
    let pe32_plus = magic == 0x20b;
    put16(&mut image, coff, if pe32_plus { 0x8664 } else { 0x14c });
    put16(&mut image, coff + 2, 1); // NumberOfSections
    let optional_size: u16 = if pe32_plus { 240 } else { 224 };
    put16(&mut image, coff + 16, optional_size);
    put16(
        &mut image,
        coff + 18,
        if pe32_plus { 0x2022 } else { 0x2102 },
    );
    let opt = coff + 20;
    put16(&mut image, opt, magic);
    put32(&mut image, opt + 4, 0x200); // SizeOfCode
    put32(&mut image, opt + 16, 0x1000); // AddressOfEntryPoint
    put32(&mut image, opt + 20, 0x1000); // BaseOfCode
    if pe32_plus {
        image[opt + 24..opt + 32].copy_from_slice(&0x1_4000_0000u64.to_le_bytes());
    } else {
        put32(&mut image, opt + 28, 0x1000_0000);
    }
    put32(&mut image, opt + 32, 0x1000); // SectionAlignment
    put32(&mut image, opt + 36, 0x200); // FileAlignment
    put16(&mut image, opt + 40, 6); // OS version
    put16(&mut image, opt + 48, 6); // subsystem version
    put32(&mut image, opt + 56, 0x2000); // SizeOfImage
    put32(&mut image, opt + 60, 0x200); // SizeOfHeaders
    put16(&mut image, opt + 68, 1); // Subsystem: native
    put16(&mut image, opt + 70, 0x0160); // DllCharacteristics: dynamic base, NX, high entropy
    let count_at = if pe32_plus { opt + 108 } else { opt + 92 };
    put32(&mut image, count_at, 16);
    let section = opt + optional_size as usize;
    image[section..section + 5].copy_from_slice(b".text");
    put32(&mut image, section + 8, 0x100); // VirtualSize
    put32(&mut image, section + 12, 0x1000); // VirtualAddress
    put32(&mut image, section + 16, 0x200); // SizeOfRawData
    put32(&mut image, section + 20, 0x200); // PointerToRawData
    put32(&mut image, section + 36, 0x6000_0020); // code, execute, read
    for (i, byte) in image[0x200..].iter_mut().enumerate() {
        *byte = (i as u8).wrapping_mul(7) ^ 0x5a;
    }
    image[0x200] = 0xc3; // ret
    image
}
