#!/usr/bin/python3
"""Independent check of a driver-package catalog, with asn1crypto (not the Rust code that made it).

usage: check_catalog.py CATALOG FILE...

Parses the catalog (PKCS#7 SignedData around a certificate trust list), checks its structure
(content types, catalog-list usage, member-list algorithm, per-member attributes), recomputes
every FILE's SHA-1 and SHA-256 hashes on its own (the Authenticode hash for PE images, the
plain hash otherwise) and checks that each file is a member under both hashes with its name,
and that the catalog lists nothing else. Prints one line per member; exits 1 on any mismatch.
"""
import hashlib
import os
import struct
import sys

from asn1crypto import algos, cms, core, parser


class SpcString(core.Choice):
    _alternatives = [
        ("unicode", core.BMPString, {"implicit": 0}),
        ("ascii", core.IA5String, {"implicit": 1}),
    ]


class SpcLink(core.Choice):
    _alternatives = [
        ("url", core.IA5String, {"implicit": 0}),
        ("moniker", core.Any, {"implicit": 1}),
        ("file", SpcString, {"explicit": 2}),
    ]


class SpcPeImageData(core.Sequence):
    _fields = [
        ("flags", core.BitString),
        ("file", SpcLink, {"explicit": 0, "optional": True}),
    ]


class SpcAttributeTypeAndOptionalValue(core.Sequence):
    _fields = [("type", core.ObjectIdentifier), ("value", core.Any, {"optional": True})]


class DigestInfo(core.Sequence):
    _fields = [("algorithm", algos.DigestAlgorithm), ("digest", core.OctetString)]


class SpcIndirectDataContent(core.Sequence):
    _fields = [("data", SpcAttributeTypeAndOptionalValue), ("message_digest", DigestInfo)]


class CatNameValue(core.Sequence):
    _fields = [("name", core.BMPString), ("flags", core.Integer), ("value", core.OctetString)]


class CatMemberInfo(core.Sequence):
    _fields = [("guid", core.BMPString), ("cert_version", core.Integer)]


class Attribute(core.Sequence):
    _fields = [("type", core.ObjectIdentifier), ("values", core.SetOf, {"spec": core.Any})]


class Attributes(core.SetOf):
    _child_spec = Attribute


class TrustedSubject(core.Sequence):
    _fields = [("identifier", core.OctetString), ("attributes", Attributes, {"optional": True})]


class TrustedSubjects(core.SequenceOf):
    _child_spec = TrustedSubject


class Extension(core.Sequence):
    _fields = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class Extensions(core.SequenceOf):
    _child_spec = Extension


class SubjectUsage(core.SequenceOf):
    _child_spec = core.ObjectIdentifier


class AlgorithmIdentifier(core.Sequence):
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class CertificateTrustList(core.Sequence):
    _fields = [
        ("version", core.Integer, {"default": 0}),
        ("subject_usage", SubjectUsage),
        ("list_identifier", core.OctetString, {"optional": True}),
        ("sequence_number", core.Integer, {"optional": True}),
        ("this_update", core.UTCTime),
        ("next_update", core.UTCTime, {"optional": True}),
        ("subject_algorithm", AlgorithmIdentifier),
        ("trusted_subjects", TrustedSubjects, {"optional": True}),
        ("extensions", Extensions, {"explicit": 0, "optional": True}),
    ]


OID_CTL = "1.3.6.1.4.1.311.10.1"
OID_CATALOG_LIST = "1.3.6.1.4.1.311.12.1.1"
OID_CATALOG_LIST_MEMBER = "1.3.6.1.4.1.311.12.1.2"
OID_NAMEVALUE = "1.3.6.1.4.1.311.12.2.1"
OID_MEMBERINFO = "1.3.6.1.4.1.311.12.2.2"
OID_INDIRECT = "1.3.6.1.4.1.311.2.1.4"
OID_PE_IMAGE = "1.3.6.1.4.1.311.2.1.15"
OID_CAB_DATA = "1.3.6.1.4.1.311.2.1.25"
SIP_PE = "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}"
SIP_FLAT = "{DE351A42-8E59-11D0-8C47-00C04FC295EE}"
PE_EXTENSIONS = (".sys", ".dll", ".exe", ".ocx", ".cpl", ".efi")


def authenticode(data, algorithm):
    """The Authenticode hash of a PE image, written from the PE/COFF specification."""
    (e_lfanew,) = struct.unpack_from("<I", data, 0x3C)
    assert data[:2] == b"MZ" and data[e_lfanew:e_lfanew + 4] == b"PE\0\0", "not a PE image"
    optional = e_lfanew + 24
    (magic,) = struct.unpack_from("<H", data, optional)
    directories = optional + {0x10B: 96, 0x20B: 112}[magic]
    checksum = optional + 64
    security = directories + 4 * 8
    table, size = struct.unpack_from("<II", data, security)
    end = table if size else len(data)
    h = hashlib.new(algorithm)
    h.update(data[:checksum])
    h.update(data[checksum + 4:security])
    h.update(data[security + 8:end])
    return h.digest()


def expected_digest(name, data, algorithm):
    if name.lower().endswith(PE_EXTENSIONS):
        return authenticode(data, algorithm)
    return hashlib.new(algorithm, data).digest()


def utf16(octets):
    return octets.decode("utf-16-le").rstrip("\0")


def main(argv):
    catalog_path, files = argv[1], argv[2:]
    info = cms.ContentInfo.load(open(catalog_path, "rb").read())
    problems = []
    assert info["content_type"].native == "signed_data", "not SignedData"
    signed = info["content"]
    encap = signed["encap_content_info"]
    assert encap["content_type"].dotted == OID_CTL, "content is not a CTL"
    # The content is `[0] EXPLICIT` around the CTL (PKCS#7, not an OCTET STRING as in CMS).
    _, _, tag, _, inner, _ = parser.parse(encap["content"].dump())
    assert tag == 0, "content is not [0] EXPLICIT"
    ctl = CertificateTrustList.load(inner)
    assert [u.dotted for u in ctl["subject_usage"]] == [OID_CATALOG_LIST], "usage"
    assert ctl["subject_algorithm"]["algorithm"].dotted == OID_CATALOG_LIST_MEMBER, "member list"
    print(f"catalog {catalog_path}: {len(ctl['trusted_subjects'])} members, "
          f"{len(signed['signer_infos'])} signer(s), thisUpdate {ctl['this_update'].native}")
    for ext in ctl["extensions"] or []:
        if ext["extn_id"].dotted == OID_NAMEVALUE:
            nv = CatNameValue.load(ext["extn_value"].native)
            print(f"  catalog attribute {nv['name'].native} = {utf16(nv['value'].native)}")
    members = []
    for subject in ctl["trusted_subjects"]:
        tag = utf16(subject["identifier"].native)
        member = {"tag": tag}
        for attr in subject["attributes"]:
            oid = attr["type"].dotted
            (value,) = list(attr["values"])
            raw = value.dump()
            if oid == OID_INDIRECT:
                ind = SpcIndirectDataContent.load(raw)
                member["kind"] = ind["data"]["type"].dotted
                if member["kind"] == OID_PE_IMAGE:
                    SpcPeImageData.load(ind["data"]["value"].dump())
                else:
                    SpcLink.load(ind["data"]["value"].dump())
                member["algorithm"] = ind["message_digest"]["algorithm"]["algorithm"].native
                member["digest"] = ind["message_digest"]["digest"].native
            elif oid == OID_MEMBERINFO:
                member["sip"] = CatMemberInfo.load(raw)["guid"].native
            elif oid == OID_NAMEVALUE:
                nv = CatNameValue.load(raw)
                member[nv["name"].native] = utf16(nv["value"].native)
        if member.get("digest", b"").hex().upper() != tag:
            problems.append(f"member {tag}: the tag is not its digest")
        members.append(member)
        print(f"  member {member.get('File')} {member.get('algorithm')} {tag} "
              f"OSAttr={member.get('OSAttr')} sip={member.get('sip')}")
    names = {os.path.basename(f).lower() for f in files}
    for m in members:
        if (m.get("File") or "").lower() not in names:
            problems.append(f"{m.get('File')}: in the catalog but not given")
    for path in files:
        name = os.path.basename(path)
        data = open(path, "rb").read()
        pe = name.lower().endswith(PE_EXTENSIONS)
        for algorithm in ("sha1", "sha256"):
            want = expected_digest(name, data, algorithm)
            found = [m for m in members
                     if (m.get("File") or "").lower() == name.lower()
                     and m.get("algorithm") == algorithm]
            if len(found) != 1:
                problems.append(f"{name}: {len(found)} {algorithm} members")
                continue
            m = found[0]
            if m["digest"] != want:
                problems.append(f"{name}: {algorithm} digest {m['digest'].hex()} != {want.hex()}")
            if m.get("kind") != (OID_PE_IMAGE if pe else OID_CAB_DATA):
                problems.append(f"{name}: indirect data of type {m.get('kind')}")
            if m.get("sip") != (SIP_PE if pe else SIP_FLAT):
                problems.append(f"{name}: subject interface {m.get('sip')}")
            if not m.get("OSAttr"):
                problems.append(f"{name}: no OSAttr")
            print(f"  {name}: {algorithm} {'Authenticode' if pe else 'flat'} hash matches")
    for p in problems:
        print(f"  MISMATCH: {p}")
    print("catalog check:", "ok" if not problems else "FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
