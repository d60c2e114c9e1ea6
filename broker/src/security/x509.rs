//! The subject of an X.509 certificate as an RFC 2253 string, the form
//! Java's `X500Principal.getName()` gives and Kafka's mTLS principals use
//! (`CN=alice,OU=eng,O=Acme,C=US`: the last RDN first). A small DER reader
//! for exactly the path to the subject; the certificate was verified by
//! rustls against the truststore before it gets here, but every length is
//! still checked.

/// Reads one DER TLV: (tag, contents, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (length, &rest[count..])
    };
    if rest.len() < length {
        return None;
    }
    Some((tag, &rest[..length], &rest[length..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The certificate's subject DN in RFC 2253 form.
pub fn subject_rfc2253(certificate: &[u8]) -> Option<String> {
    let (tag, certificate, _) = tlv(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, mut tbs, _) = tlv(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    // version [0] (optional), serial, signature, issuer, validity, subject.
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs)?.2;
    }
    for _ in 0..4 {
        tbs = tlv(tbs)?.2;
    }
    let (tag, subject, _) = tlv(tbs)?;
    if tag != SEQUENCE {
        return None;
    }
    name_rfc2253(subject)
}

/// A Name's contents (a sequence of RDN sets), written last RDN first.
fn name_rfc2253(mut name: &[u8]) -> Option<String> {
    let mut rdns = Vec::new();
    while !name.is_empty() {
        let (tag, mut set, rest) = tlv(name)?;
        if tag != SET {
            return None;
        }
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let (tag, attribute, more) = tlv(set)?;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value) = tlv(attribute)?;
            if tag != OID {
                return None;
            }
            let (value_tag, value_bytes, _) = tlv(value)?;
            attributes.push(attribute_rfc2253(oid, value_tag, value_bytes, value)?);
            set = more;
        }
        rdns.push(attributes.join("+"));
        name = rest;
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// `TYPE=value`: the RFC 2253 keywords Java uses, otherwise the dotted OID
/// with the value's DER in hex (`1.2.840.113549.1.9.1=#16...`).
fn attribute_rfc2253(oid: &[u8], tag: u8, value: &[u8], der: &[u8]) -> Option<String> {
    let keyword = match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x09] => Some("STREET"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => Some("DC"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => Some("UID"),
        _ => None,
    };
    let text = match tag {
        // UTF8String, PrintableString, TeletexString (as Latin-1), IA5String
        0x0c | 0x13 | 0x16 => std::str::from_utf8(value).ok().map(str::to_string),
        0x14 => Some(value.iter().map(|&b| b as char).collect()),
        // BMPString: UTF-16BE
        0x1e if value.len().is_multiple_of(2) => String::from_utf16(
            &value
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect::<Vec<_>>(),
        )
        .ok(),
        _ => None,
    };
    match (keyword, text) {
        (Some(keyword), Some(text)) => Some(format!("{keyword}={}", escape(&text))),
        _ => {
            let element = &der[..der.len() - tlv(der)?.2.len()];
            let hex: String = element.iter().map(|b| format!("{b:02x}")).collect();
            Some(format!("{}=#{hex}", dotted(oid)?))
        }
    }
}

/// RFC 2253 section 2.4 escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn dotted(oid: &[u8]) -> Option<String> {
    let (&first, rest) = oid.split_first()?;
    let mut parts = vec![
        (first / 40).min(2) as u64,
        (first - 40 * (first / 40).min(2)) as u64,
    ];
    let mut value: u64 = 0;
    for &byte in rest {
        value = value.checked_mul(128)? | (byte & 0x7f) as u64;
        if byte & 0x80 == 0 {
            parts.push(value);
            value = 0;
        }
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if contents.len() < 128 {
            out.push(contents.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(contents.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(contents);
        out
    }

    fn rdn(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let attribute = [der(OID, oid), der(tag, value)].concat();
        der(SET, &der(SEQUENCE, &attribute))
    }

    fn certificate(subject: &[u8]) -> Vec<u8> {
        let tbs = [
            der(0xa0, &der(0x02, &[2])),
            der(0x02, &[0x01, 0x02]),
            der(SEQUENCE, &der(OID, &[0x2a, 0x86, 0x48])),
            der(SEQUENCE, &rdn(&[0x55, 0x04, 0x03], 0x0c, b"issuer")),
            der(
                SEQUENCE,
                &[der(0x17, b"250101000000Z"), der(0x17, b"350101000000Z")].concat(),
            ),
            der(SEQUENCE, subject),
            der(SEQUENCE, &[0u8; 200]), // a key long enough for long lengths
        ]
        .concat();
        der(
            SEQUENCE,
            &[der(SEQUENCE, &tbs), der(SEQUENCE, &[]), der(0x03, &[0])].concat(),
        )
    }

    #[test]
    fn subject_is_written_last_rdn_first_with_escapes_and_oids() {
        let subject = [
            rdn(&[0x55, 0x04, 0x06], 0x13, b"US"),
            rdn(&[0x55, 0x04, 0x0a], 0x0c, b"Acme, Inc"),
            rdn(&[0x55, 0x04, 0x0b], 0x0c, b"eng"),
            rdn(
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
                0x16,
                b"a@b",
            ),
            rdn(&[0x55, 0x04, 0x03], 0x0c, b"#alice "),
        ]
        .concat();
        assert_eq!(
            subject_rfc2253(&certificate(&subject)).as_deref(),
            Some(r"CN=\#alice\ ,1.2.840.113549.1.9.1=#1603614062,OU=eng,O=Acme\, Inc,C=US")
        );
    }

    #[test]
    fn truncated_certificates_give_none() {
        let full = certificate(&rdn(&[0x55, 0x04, 0x03], 0x0c, b"alice"));
        assert_eq!(subject_rfc2253(&full).as_deref(), Some("CN=alice"));
        for cut in 0..full.len() {
            // Every prefix is either rejected or (never) the same subject.
            assert_ne!(subject_rfc2253(&full[..cut]).as_deref(), Some("CN=alice"));
        }
        assert_eq!(subject_rfc2253(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
