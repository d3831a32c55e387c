//! Driver-package catalogs (`.cat`): generation and parsing.
//!
//! A catalog is a PKCS#7 `SignedData` whose content is a Microsoft certificate trust list
//! (`szOID_CTL`, 1.3.6.1.4.1.311.10.1) of usage `szOID_CATALOG_LIST` (1.3.6.1.4.1.311.12.1.1).
//! Each member (a "trusted subject") is tagged by its hash written as upper-case hexadecimal in
//! UTF-16LE and carries authenticated attributes:
//!
//! - `SPC_INDIRECT_DATA` (1.3.6.1.4.1.311.2.1.4): what was hashed (a PE image, or a flat file)
//!   and the digest, as in an Authenticode signature;
//! - `CAT_MEMBERINFO` (1.3.6.1.4.1.311.12.2.2): the subject-interface package that hashes it
//!   (the PE SIP for images, the flat-file SIP for everything else);
//! - `CAT_NAMEVALUE` (1.3.6.1.4.1.311.12.2.1) `File` (the file name) and `OSAttr` (the Windows
//!   versions it is for, `2:10.0`).
//!
//! As `inf2cat` does for Windows 10 targets, every file is listed twice: once by its SHA-1 hash
//! and once by its SHA-256 hash (the Authenticode hash for PE images, the hash of the whole
//! file otherwise), so both older and current code-integrity checks find it. The catalog-wide
//! attributes (`OS` = `_v100_X64`, `HWID1`… = the package's hardware IDs) are `CAT_NAMEVALUE`
//! extensions of the trust list. The generated catalog has no signer: osslsigncode signs it.

use core::fmt;
use std::time::Duration;

use cms::content_info::ContentInfo;
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerInfos};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, BmpString, OctetString, SetOfVec, UtcTime};
use der::{Decode, Encode, Sequence, Tag, TagNumber};
use sha1::Digest;
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::pe_hash::{self, PeError};

/// `szOID_CTL`: the content type of a catalog's `SignedData`.
pub const OID_CTL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.1");
/// `szOID_CATALOG_LIST`: the trust list's subject usage.
pub const OID_CATALOG_LIST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.1");
/// `szOID_CATALOG_LIST_MEMBER`: members tagged by their hash in hexadecimal.
pub const OID_CATALOG_LIST_MEMBER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.2");
/// `CAT_NAMEVALUE_OBJID`.
pub const OID_CAT_NAMEVALUE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.1");
/// `CAT_MEMBERINFO_OBJID`.
pub const OID_CAT_MEMBERINFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.2");
/// `SPC_INDIRECT_DATA_OBJID`.
pub const OID_SPC_INDIRECT_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// `SPC_PE_IMAGE_DATA_OBJID`: the member is a PE image, hashed the Authenticode way.
pub const OID_SPC_PE_IMAGE_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
/// `SPC_CAB_DATA_OBJID`: what the flat-file SIP records for a file hashed whole.
pub const OID_SPC_CAB_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.25");
/// PKCS#7 `signedData`.
pub const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// SHA-1.
pub const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// SHA-256.
pub const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// The PE image subject-interface package (`CryptSIPDllGetSignedDataMsg` for images).
pub const SIP_PE: &str = "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}";
/// The flat-file subject-interface package.
pub const SIP_FLAT: &str = "{DE351A42-8E59-11D0-8C47-00C04FC295EE}";

/// `CRYPTCAT_ATTR_AUTHENTICATED | CRYPTCAT_ATTR_DATAASCII | CRYPTCAT_ATTR_NAMEASCII`: the flags
/// of every name/value attribute `inf2cat` writes.
pub const NAMEVALUE_FLAGS: u32 = 0x1001_0001;

/// `CAT_MEMBERINFO`'s certificate version field as `inf2cat` writes it.
const MEMBERINFO_VERSION: u32 = 512;

/// The placeholder Authenticode writes where an obsolete file link is required.
const OBSOLETE: &str = "<<<Obsolete>>>";

/// The Windows versions a package is catalogued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsTarget {
    /// The catalog-wide `OS` attribute (`inf2cat /os:10_X64` writes `_v100_X64`).
    pub os: String,
    /// The members' `OSAttr` attribute (`2:10.0`: platform 2 = NT, version 10.0).
    pub os_attr: String,
}

impl OsTarget {
    /// Windows 10 and later, x64: what `inf2cat /os:10_X64` writes.
    pub fn windows10_x64() -> Self {
        Self {
            os: "_v100_X64".into(),
            os_attr: "2:10.0".into(),
        }
    }
}

/// One file of a driver package.
#[derive(Debug, Clone)]
pub struct PackageFile {
    /// The file name as the INF names it (no folder).
    pub name: String,
    /// Its contents.
    pub contents: Vec<u8>,
}

/// How a member's hash was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// The Authenticode hash of a PE image ([`crate::pe_hash`]).
    PeImage,
    /// The hash of the whole file.
    Flat,
}

/// The digest algorithm of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// SHA-1 (20 bytes).
    Sha1,
    /// SHA-256 (32 bytes).
    Sha256,
}

impl DigestAlgorithm {
    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => OID_SHA1,
            Self::Sha256 => OID_SHA256,
        }
    }

    fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        [Self::Sha1, Self::Sha256]
            .into_iter()
            .find(|a| a.oid() == oid)
    }
}

/// Whether a file is hashed as a PE image: by its extension, as `inf2cat` decides.
pub fn hash_kind_of(name: &str) -> HashKind {
    let lower = name.to_ascii_lowercase();
    let pe = [".sys", ".dll", ".exe", ".ocx", ".cpl", ".efi"]
        .iter()
        .any(|ext| lower.ends_with(ext));
    if pe {
        HashKind::PeImage
    } else {
        HashKind::Flat
    }
}

/// The digest of `file` with `algorithm`, computed the way its kind requires.
pub fn member_digest(
    file: &PackageFile,
    algorithm: DigestAlgorithm,
) -> Result<Vec<u8>, CatalogError> {
    let pe_err = |e: PeError| CatalogError::Pe {
        file: file.name.clone(),
        error: e,
    };
    Ok(match (hash_kind_of(&file.name), algorithm) {
        (HashKind::PeImage, DigestAlgorithm::Sha1) => pe_hash::authenticode_sha1(&file.contents)
            .map_err(pe_err)?
            .to_vec(),
        (HashKind::PeImage, DigestAlgorithm::Sha256) => {
            pe_hash::authenticode_sha256(&file.contents)
                .map_err(pe_err)?
                .to_vec()
        }
        (HashKind::Flat, DigestAlgorithm::Sha1) => sha1::Sha1::digest(&file.contents).to_vec(),
        (HashKind::Flat, DigestAlgorithm::Sha256) => sha2::Sha256::digest(&file.contents).to_vec(),
    })
}

/// What a catalog is generated from.
#[derive(Debug, Clone)]
pub struct CatalogSpec {
    /// The package's files (the INF and every file it copies).
    pub files: Vec<PackageFile>,
    /// The hardware IDs the INF's models name (the catalog's `HWID1`, `HWID2`, …).
    pub hardware_ids: Vec<String>,
    /// The target Windows versions.
    pub os: OsTarget,
    /// The trust list's `thisUpdate`, in seconds since 1970 (reproducible builds pass the
    /// commit's date).
    pub time_unix_seconds: u64,
}

/// Why a catalog could not be built or read.
#[derive(Debug)]
pub enum CatalogError {
    /// A file named as a PE image is not one.
    Pe {
        /// The file.
        file: String,
        /// Why.
        error: PeError,
    },
    /// A name or value cannot be written as a UCS-2 string.
    NotUcs2(String),
    /// Two package files have the same name (case-insensitively, as Windows compares).
    DuplicateFile(String),
    /// The DER encoding or decoding failed.
    Der(der::Error),
    /// The catalog decodes but is not what a catalog must be; the reason is given.
    Structure(String),
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pe { file, error } => write!(f, "{file}: not a PE image: {error}"),
            Self::NotUcs2(s) => write!(f, "{s:?} cannot be written as UCS-2"),
            Self::DuplicateFile(s) => write!(f, "{s} is listed twice"),
            Self::Der(e) => write!(f, "DER: {e}"),
            Self::Structure(s) => write!(f, "not a catalog: {s}"),
        }
    }
}

impl std::error::Error for CatalogError {}

impl From<der::Error> for CatalogError {
    fn from(e: der::Error) -> Self {
        Self::Der(e)
    }
}

/// `CertificateTrustList` (without the DEFAULT v1 version and the optional sequence number and
/// next update, which catalogs leave out).
#[derive(Clone, Debug, Sequence)]
struct TrustList {
    subject_usage: Vec<ObjectIdentifier>,
    list_identifier: Option<OctetString>,
    this_update: UtcTime,
    subject_algorithm: AlgorithmIdentifierOwned,
    trusted_subjects: Vec<TrustedSubject>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

#[derive(Clone, Debug, Sequence)]
struct TrustedSubject {
    identifier: OctetString,
    attributes: SetOfVec<Attribute>,
}

/// `CatNameValue`.
#[derive(Clone, Debug, Sequence)]
struct NameValue {
    name: BmpString,
    flags: u32,
    value: OctetString,
}

/// `CatMemberInfo`.
#[derive(Clone, Debug, Sequence)]
struct MemberInfo {
    subject_guid: BmpString,
    cert_version: u32,
}

/// `SpcAttributeTypeAndOptionalValue`.
#[derive(Clone, Debug, Sequence)]
struct SpcAttribute {
    kind: ObjectIdentifier,
    value: Option<Any>,
}

/// `DigestInfo`.
#[derive(Clone, Debug, Sequence)]
struct DigestInfo {
    algorithm: AlgorithmIdentifierOwned,
    digest: OctetString,
}

/// `SpcIndirectDataContent`.
#[derive(Clone, Debug, Sequence)]
struct SpcIndirectData {
    data: SpcAttribute,
    message_digest: DigestInfo,
}

fn ucs2(s: &str) -> Result<BmpString, CatalogError> {
    BmpString::from_utf8(s).map_err(|_| CatalogError::NotUcs2(s.into()))
}

/// UTF-16LE with the terminating NUL, as catalog values are stored.
fn utf16le_nul(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// A member tag: the digest in upper-case hexadecimal, UTF-16LE, no terminator.
fn member_tag(digest: &[u8]) -> Vec<u8> {
    digest
        .iter()
        .flat_map(|b| format!("{b:02X}").into_bytes())
        .flat_map(|c| [c, 0])
        .collect()
}

fn null_params(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::from(der::asn1::Null)),
    }
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, CatalogError> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

fn name_value(name: &str, value: &str) -> Result<NameValue, CatalogError> {
    Ok(NameValue {
        name: ucs2(name)?,
        flags: NAMEVALUE_FLAGS,
        value: OctetString::new(utf16le_nul(value))?,
    })
}

/// `SpcLink ::= file [2] EXPLICIT SpcString`, `SpcString ::= unicode [0] IMPLICIT BMPString`,
/// holding the obsolete-link placeholder.
fn obsolete_file_link() -> Result<Any, CatalogError> {
    let text: Vec<u8> = OBSOLETE.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let unicode = Any::new(
        Tag::ContextSpecific {
            constructed: false,
            number: TagNumber::N0,
        },
        text,
    )?;
    Ok(Any::new(
        Tag::ContextSpecific {
            constructed: true,
            number: TagNumber::N2,
        },
        unicode.to_der()?,
    )?)
}

/// The `SpcAttributeTypeAndOptionalValue` of a member of `kind`.
fn indirect_data_subject(kind: HashKind) -> Result<SpcAttribute, CatalogError> {
    let link = obsolete_file_link()?;
    Ok(match kind {
        // SpcPeImageData ::= SEQUENCE { flags BIT STRING (empty), file [0] EXPLICIT SpcLink }
        HashKind::PeImage => {
            let mut contents = der::asn1::BitString::new(0, Vec::new())?.to_der()?;
            contents.extend(
                Any::new(
                    Tag::ContextSpecific {
                        constructed: true,
                        number: TagNumber::N0,
                    },
                    link.to_der()?,
                )?
                .to_der()?,
            );
            SpcAttribute {
                kind: OID_SPC_PE_IMAGE_DATA,
                value: Some(Any::new(Tag::Sequence, contents)?),
            }
        }
        HashKind::Flat => SpcAttribute {
            kind: OID_SPC_CAB_DATA,
            value: Some(link),
        },
    })
}

fn member(
    file: &PackageFile,
    algorithm: DigestAlgorithm,
    os: &OsTarget,
) -> Result<TrustedSubject, CatalogError> {
    let kind = hash_kind_of(&file.name);
    let digest = member_digest(file, algorithm)?;
    let indirect = SpcIndirectData {
        data: indirect_data_subject(kind)?,
        message_digest: DigestInfo {
            algorithm: null_params(algorithm.oid()),
            digest: OctetString::new(digest.clone())?,
        },
    };
    let info = MemberInfo {
        subject_guid: ucs2(match kind {
            HashKind::PeImage => SIP_PE,
            HashKind::Flat => SIP_FLAT,
        })?,
        cert_version: MEMBERINFO_VERSION,
    };
    let attributes = vec![
        attribute(OID_SPC_INDIRECT_DATA, Any::encode_from(&indirect)?)?,
        attribute(OID_CAT_MEMBERINFO, Any::encode_from(&info)?)?,
        attribute(
            OID_CAT_NAMEVALUE,
            Any::encode_from(&name_value("File", &file.name)?)?,
        )?,
        attribute(
            OID_CAT_NAMEVALUE,
            Any::encode_from(&name_value("OSAttr", &os.os_attr)?)?,
        )?,
    ];
    Ok(TrustedSubject {
        identifier: OctetString::new(member_tag(&digest))?,
        attributes: SetOfVec::try_from(attributes)?,
    })
}

/// Builds the unsigned catalog (DER) of a package.
pub fn build(spec: &CatalogSpec) -> Result<Vec<u8>, CatalogError> {
    let mut names: Vec<String> = spec
        .files
        .iter()
        .map(|f| f.name.to_ascii_lowercase())
        .collect();
    names.sort();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(CatalogError::DuplicateFile(pair[0].clone()));
    }
    let mut subjects = Vec::new();
    for file in &spec.files {
        for algorithm in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256] {
            subjects.push(member(file, algorithm, &spec.os)?);
        }
    }
    // Members sorted by tag, as catalog tools write them (lookups may rely on it).
    subjects.sort_by(|a, b| a.identifier.as_bytes().cmp(b.identifier.as_bytes()));

    // A stable list identifier: derived from the members, so the same package gives the same
    // catalog.
    let mut id_hash = sha2::Sha256::new();
    for s in &subjects {
        id_hash.update(s.identifier.as_bytes());
    }
    let list_identifier = id_hash.finalize()[..16].to_vec();

    let mut extensions = Vec::new();
    let mut catalog_attrs = vec![("OS".to_string(), spec.os.os.clone())];
    for (i, id) in spec.hardware_ids.iter().enumerate() {
        catalog_attrs.push((format!("HWID{}", i + 1), id.to_ascii_lowercase()));
    }
    for (name, value) in &catalog_attrs {
        extensions.push(Extension {
            extn_id: OID_CAT_NAMEVALUE,
            critical: false,
            extn_value: OctetString::new(name_value(name, value)?.to_der()?)?,
        });
    }

    let list = TrustList {
        subject_usage: vec![OID_CATALOG_LIST],
        list_identifier: Some(OctetString::new(list_identifier)?),
        this_update: UtcTime::from_unix_duration(Duration::from_secs(spec.time_unix_seconds))?,
        subject_algorithm: null_params(OID_CATALOG_LIST_MEMBER),
        trusted_subjects: subjects,
        extensions: Some(extensions),
    };
    let signed = SignedData {
        version: cms::content_info::CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![null_params(OID_SHA256)])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: OID_CTL,
            econtent: Some(Any::encode_from(&list)?),
        },
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let info = ContentInfo {
        content_type: OID_SIGNED_DATA,
        content: Any::encode_from(&signed)?,
    };
    Ok(info.to_der()?)
}

/// A member read back from a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member tag, decoded from UTF-16LE.
    pub tag: String,
    /// The `File` attribute.
    pub file: String,
    /// The `OSAttr` attribute.
    pub os_attr: String,
    /// The subject-interface package GUID.
    pub sip: String,
    /// Whether the indirect data names a PE image or a flat file.
    pub kind: HashKind,
    /// The digest's algorithm.
    pub algorithm: DigestAlgorithm,
    /// The digest.
    pub digest: Vec<u8>,
}

/// A catalog read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The catalog-wide name/value attributes (`OS`, `HWID1`, …), in order.
    pub attributes: Vec<(String, String)>,
    /// The members, in order.
    pub members: Vec<Member>,
    /// How many signers the `SignedData` has (0 before osslsigncode signs it).
    pub signers: usize,
}

fn structure(what: impl Into<String>) -> CatalogError {
    CatalogError::Structure(what.into())
}

fn utf16le(bytes: &[u8]) -> Result<String, CatalogError> {
    if bytes.len() % 2 != 0 {
        return Err(structure("odd-length UTF-16 value"));
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let text = String::from_utf16(&units).map_err(|_| structure("invalid UTF-16 value"))?;
    Ok(text.trim_end_matches('\0').to_owned())
}

fn bmp(s: &BmpString) -> String {
    s.chars().collect()
}

fn parse_name_value(bytes: &[u8]) -> Result<(String, String), CatalogError> {
    let nv = NameValue::from_der(bytes)?;
    Ok((bmp(&nv.name), utf16le(nv.value.as_bytes())?))
}

/// Reads a catalog (signed or not) back into its members and attributes, checking its
/// structure: content types, usage, member-list algorithm, and that every member has exactly
/// one indirect-data, member-info, `File` and `OSAttr` attribute and a tag that is its digest.
pub fn parse(der_bytes: &[u8]) -> Result<Parsed, CatalogError> {
    let info = ContentInfo::from_der(der_bytes)?;
    if info.content_type != OID_SIGNED_DATA {
        return Err(structure("the content is not signedData"));
    }
    let signed: SignedData = info.content.decode_as()?;
    if signed.encap_content_info.econtent_type != OID_CTL {
        return Err(structure(
            "the signed content is not a certificate trust list",
        ));
    }
    let list: TrustList = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| structure("no trust list"))?
        .decode_as()?;
    if list.subject_usage != [OID_CATALOG_LIST] {
        return Err(structure("the trust list's usage is not the catalog list"));
    }
    if list.subject_algorithm.oid != OID_CATALOG_LIST_MEMBER {
        return Err(structure(
            "the member list is not szOID_CATALOG_LIST_MEMBER",
        ));
    }
    let mut attributes = Vec::new();
    for ext in list.extensions.iter().flatten() {
        if ext.extn_id == OID_CAT_NAMEVALUE {
            attributes.push(parse_name_value(ext.extn_value.as_bytes())?);
        }
    }
    let mut members = Vec::new();
    for subject in &list.trusted_subjects {
        members.push(parse_member(subject)?);
    }
    Ok(Parsed {
        attributes,
        members,
        signers: signed.signer_infos.0.len(),
    })
}

fn parse_member(subject: &TrustedSubject) -> Result<Member, CatalogError> {
    let tag = utf16le(subject.identifier.as_bytes())?;
    let mut indirect = None;
    let mut sip = None;
    let mut file = None;
    let mut os_attr = None;
    fn once<T>(slot: &mut Option<T>, value: T, tag: &str, what: &str) -> Result<(), CatalogError> {
        if slot.replace(value).is_some() {
            return Err(structure(format!("member {tag}: two {what} attributes")));
        }
        Ok(())
    }
    for attr in subject.attributes.iter() {
        let [value] = attr.values.as_slice() else {
            return Err(structure(format!(
                "member {tag}: an attribute with not one value"
            )));
        };
        if attr.oid == OID_SPC_INDIRECT_DATA {
            once(
                &mut indirect,
                value.decode_as::<SpcIndirectData>()?,
                &tag,
                "indirect-data",
            )?;
        } else if attr.oid == OID_CAT_MEMBERINFO {
            let info: MemberInfo = value.decode_as()?;
            once(&mut sip, bmp(&info.subject_guid), &tag, "member-info")?;
        } else if attr.oid == OID_CAT_NAMEVALUE {
            let (name, text) = parse_name_value(&value.to_der()?)?;
            match name.as_str() {
                "File" => once(&mut file, text, &tag, "File")?,
                "OSAttr" => once(&mut os_attr, text, &tag, "OSAttr")?,
                _ => {}
            }
        }
    }
    let missing = |what: &str| structure(format!("member {tag}: no {what} attribute"));
    let indirect = indirect.ok_or_else(|| missing("indirect-data"))?;
    let kind = match indirect.data.kind {
        k if k == OID_SPC_PE_IMAGE_DATA => HashKind::PeImage,
        k if k == OID_SPC_CAB_DATA => HashKind::Flat,
        other => return Err(structure(format!("member {tag}: unknown subject {other}"))),
    };
    let algorithm = DigestAlgorithm::from_oid(indirect.message_digest.algorithm.oid)
        .ok_or_else(|| structure(format!("member {tag}: unknown digest algorithm")))?;
    let digest = indirect.message_digest.digest.as_bytes().to_vec();
    let expected_len = match algorithm {
        DigestAlgorithm::Sha1 => 20,
        DigestAlgorithm::Sha256 => 32,
    };
    if digest.len() != expected_len {
        return Err(structure(format!("member {tag}: digest of wrong length")));
    }
    if tag.as_bytes()
        != member_tag(&digest)
            .iter()
            .step_by(2)
            .copied()
            .collect::<Vec<_>>()
    {
        return Err(structure(format!(
            "member {tag}: the tag is not its digest"
        )));
    }
    Ok(Member {
        tag: tag.clone(),
        file: file.ok_or_else(|| missing("File"))?,
        os_attr: os_attr.ok_or_else(|| missing("OSAttr"))?,
        sip: sip.ok_or_else(|| missing("member-info"))?,
        kind,
        algorithm,
        digest,
    })
}

/// Checks that `files` are exactly the catalog's members, each under both algorithms with the
/// digest of its contents on disk; returns one line per mismatch (empty when all match).
pub fn mismatches(parsed: &Parsed, files: &[PackageFile]) -> Vec<String> {
    let mut problems = Vec::new();
    for file in files {
        for algorithm in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256] {
            let entry = parsed
                .members
                .iter()
                .find(|m| m.file.eq_ignore_ascii_case(&file.name) && m.algorithm == algorithm);
            match (entry, member_digest(file, algorithm)) {
                (None, _) => problems.push(format!("{}: no {algorithm:?} member", file.name)),
                (_, Err(e)) => problems.push(e.to_string()),
                (Some(m), Ok(d)) if m.digest != d => {
                    problems.push(format!("{}: {algorithm:?} digest differs", file.name))
                }
                (Some(m), Ok(_)) if m.kind != hash_kind_of(&file.name) => {
                    problems.push(format!("{}: hashed as {:?}", file.name, m.kind))
                }
                _ => {}
            }
        }
    }
    for m in &parsed.members {
        if !files.iter().any(|f| f.name.eq_ignore_ascii_case(&m.file)) {
            problems.push(format!("{}: in the catalog but not in the package", m.file));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpe::tiny_pe;

    fn spec() -> CatalogSpec {
        CatalogSpec {
            files: vec![
                PackageFile {
                    name: "xenpci.inf".into(),
                    contents: b"[Version]\r\nSignature=\"$WINDOWS NT$\"\r\n".to_vec(),
                },
                PackageFile {
                    name: "xenpci.sys".into(),
                    contents: tiny_pe(0x20b),
                },
            ],
            hardware_ids: vec!["PCI\\VEN_5853&DEV_0001".into()],
            os: OsTarget::windows10_x64(),
            time_unix_seconds: 1_796_601_600,
        }
    }

    #[test]
    fn a_built_catalog_reads_back_with_every_member() {
        let spec = spec();
        let der_bytes = build(&spec).unwrap();
        let parsed = parse(&der_bytes).unwrap();
        assert_eq!(parsed.signers, 0);
        assert_eq!(
            parsed.attributes,
            vec![
                ("OS".to_string(), "_v100_X64".to_string()),
                ("HWID1".to_string(), "pci\\ven_5853&dev_0001".to_string()),
            ]
        );
        assert_eq!(parsed.members.len(), 4);
        let mut tags: Vec<_> = parsed.members.iter().map(|m| m.tag.clone()).collect();
        let sorted = {
            let mut t = tags.clone();
            t.sort();
            t
        };
        assert_eq!(tags, sorted);
        tags.dedup();
        assert_eq!(tags.len(), 4);
        for m in &parsed.members {
            assert_eq!(m.os_attr, "2:10.0");
            match m.file.as_str() {
                "xenpci.sys" => {
                    assert_eq!(m.kind, HashKind::PeImage);
                    assert_eq!(m.sip, SIP_PE);
                }
                "xenpci.inf" => {
                    assert_eq!(m.kind, HashKind::Flat);
                    assert_eq!(m.sip, SIP_FLAT);
                }
                other => panic!("unexpected member {other}"),
            }
        }
        assert!(mismatches(&parsed, &spec.files).is_empty());
        let sys = parsed
            .members
            .iter()
            .find(|m| m.file == "xenpci.sys" && m.algorithm == DigestAlgorithm::Sha256)
            .unwrap();
        assert_eq!(
            sys.digest,
            pe_hash::authenticode_sha256(&spec.files[1].contents).unwrap()
        );
        let inf = parsed
            .members
            .iter()
            .find(|m| m.file == "xenpci.inf" && m.algorithm == DigestAlgorithm::Sha1)
            .unwrap();
        assert_eq!(
            inf.digest,
            sha1::Sha1::digest(&spec.files[0].contents).to_vec()
        );
    }

    #[test]
    fn the_same_package_gives_the_same_catalog() {
        assert_eq!(build(&spec()).unwrap(), build(&spec()).unwrap());
    }

    #[test]
    fn changed_files_are_reported() {
        let spec = spec();
        let parsed = parse(&build(&spec).unwrap()).unwrap();
        let mut files = spec.files.clone();
        files[0].contents.push(b'\n');
        let mut code = tiny_pe(0x20b);
        code[0x300] ^= 1;
        files[1].contents = code;
        files.push(PackageFile {
            name: "extra.dll".into(),
            contents: tiny_pe(0x20b),
        });
        let problems = mismatches(&parsed, &files);
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(problems
            .iter()
            .any(|p| p == "xenpci.sys: Sha256 digest differs"));
        assert!(problems.iter().any(|p| p == "extra.dll: no Sha1 member"));
        let fewer = &spec.files[..1];
        assert_eq!(
            mismatches(&parsed, fewer),
            vec![
                "xenpci.sys: in the catalog but not in the package".to_string(),
                "xenpci.sys: in the catalog but not in the package".to_string()
            ]
        );
    }

    #[test]
    fn bad_packages_and_bytes_are_errors() {
        let mut bad = spec();
        bad.files[1].contents = b"not a PE".to_vec();
        assert!(matches!(build(&bad), Err(CatalogError::Pe { .. })));
        let mut dup = spec();
        dup.files.push(PackageFile {
            name: "XENPCI.INF".into(),
            contents: Vec::new(),
        });
        assert!(matches!(build(&dup), Err(CatalogError::DuplicateFile(_))));
        let good = build(&spec()).unwrap();
        for len in (0..good.len()).step_by(7) {
            assert!(parse(&good[..len]).is_err());
        }
        // A flipped digest byte makes the tag disagree with the digest.
        let parsed = parse(&good).unwrap();
        let digest = &parsed.members[0].digest;
        let at = good
            .windows(digest.len())
            .position(|w| w == digest.as_slice())
            .unwrap();
        let mut flipped = good.clone();
        flipped[at] ^= 1;
        assert!(matches!(parse(&flipped), Err(CatalogError::Structure(_))));
    }
}
