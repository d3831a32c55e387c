//! Reading INF text: decoding (ASCII/UTF-8 or UTF-16LE with BOM), comments, quotes, line
//! continuations, sections and entries.
//!
//! The syntax follows Microsoft's "General Syntax Rules for INF Files": `;` starts a comment
//! outside quotes, a `\` ending a line joins it with the next, section names are in `[...]`,
//! entries are `key = value, value, ...` or a bare list of values, `""` inside quotes is one quote,
//! and names of sections and keys are compared without regard to case.

use std::fmt;

/// One INF file, its sections in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inf {
    /// The sections in file order (a name appears once; a repeated header is an error).
    pub sections: Vec<Section>,
}

/// One `[section]` and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name as written (compare with [`eq_name`]).
    pub name: String,
    /// The line of the header (1-based).
    pub line: usize,
    /// The entries in file order.
    pub entries: Vec<Entry>,
}

/// One logical line of a section (continuations joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The line where the entry starts (1-based).
    pub line: usize,
    /// The text left of the first `=` outside quotes, trimmed (quotes kept out), if there is one.
    pub key: Option<String>,
    /// The comma-separated values, trimmed, quotes removed (`""` inside quotes is one `"`).
    pub values: Vec<String>,
    /// The entry's text after comments are removed and continuations joined, with quotes kept:
    /// what `%string%` references are looked for in.
    pub raw: String,
}

/// Why INF text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// UTF-16 text with an odd number of bytes or unpaired surrogates, or 8-bit text that is
    /// not UTF-8.
    BadEncoding,
    /// A `[` header without its `]`.
    UnterminatedSectionHeader {
        /// The line (1-based).
        line: usize,
    },
    /// Text other than a comment after a section header's `]`.
    TextAfterSectionHeader {
        /// The line (1-based).
        line: usize,
    },
    /// `[]`.
    EmptySectionName {
        /// The line (1-based).
        line: usize,
    },
    /// The same section header twice.
    DuplicateSection {
        /// The section's name.
        name: String,
        /// The line of the second header (1-based).
        line: usize,
    },
    /// A quote opened and not closed on its line.
    UnterminatedQuote {
        /// The line (1-based).
        line: usize,
    },
    /// An entry before the first section header.
    EntryOutsideSection {
        /// The line (1-based).
        line: usize,
    },
    /// A `\` continuation on the last line of the file.
    ContinuationAtEnd {
        /// The line (1-based).
        line: usize,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::BadEncoding => {
                f.write_str("the text is neither UTF-8 nor UTF-16LE with a byte-order mark")
            }
            ParseError::UnterminatedSectionHeader { line } => {
                write!(f, "line {line}: section header without ']'")
            }
            ParseError::TextAfterSectionHeader { line } => {
                write!(f, "line {line}: text after a section header's ']'")
            }
            ParseError::EmptySectionName { line } => write!(f, "line {line}: empty section name"),
            ParseError::DuplicateSection { name, line } => {
                write!(f, "line {line}: section [{name}] appears a second time")
            }
            ParseError::UnterminatedQuote { line } => {
                write!(f, "line {line}: quote not closed")
            }
            ParseError::EntryOutsideSection { line } => {
                write!(f, "line {line}: entry before the first section header")
            }
            ParseError::ContinuationAtEnd { line } => {
                write!(f, "line {line}: line continuation '\\' on the last line")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Compares two section or key names as Windows does (ASCII case-insensitive).
pub fn eq_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Decodes INF bytes: UTF-16LE when they start with the UTF-16LE byte-order mark, otherwise
/// UTF-8 (a UTF-8 byte-order mark is dropped).
pub fn decode(bytes: &[u8]) -> Result<String, ParseError> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        if rest.len() % 2 != 0 {
            return Err(ParseError::BadEncoding);
        }
        let units = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]));
        return char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| ParseError::BadEncoding);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).map_err(|_| ParseError::BadEncoding)
}

/// Removes a comment (`;` outside quotes) from one physical line; the error is an unclosed quote.
fn strip_comment(line: &str) -> Result<&str, ()> {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return Ok(&line[..i]),
            _ => {}
        }
    }
    if quoted {
        Err(())
    } else {
        Ok(line)
    }
}

/// Splits `text` at `sep` characters outside quotes.
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A field without its surrounding blanks and quotes (`""` inside quotes becomes `"`).
fn unquote(field: &str) -> String {
    let field = field.trim();
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '"' {
            if quoted && chars.peek() == Some(&'"') {
                out.push('"');
                chars.next();
            } else {
                quoted = !quoted;
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses INF text into sections and entries.
pub fn parse(text: &str) -> Result<Inf, ParseError> {
    let mut sections: Vec<Section> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut index = 0;
    while index < lines.len() {
        let start_line = index + 1;
        // Join continuation lines: a `\` as the last character (outside quotes and comments).
        let mut logical = String::new();
        loop {
            let physical = lines[index];
            let line_no = index + 1;
            let code = strip_comment(physical)
                .map_err(|()| ParseError::UnterminatedQuote { line: line_no })?
                .trim_end();
            index += 1;
            if let Some(head) = code.strip_suffix('\\') {
                logical.push_str(head);
                if index == lines.len() {
                    return Err(ParseError::ContinuationAtEnd { line: line_no });
                }
                continue;
            }
            logical.push_str(code);
            break;
        }
        let trimmed = logical.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(ParseError::UnterminatedSectionHeader { line: start_line });
            };
            if !rest[end + 1..].trim().is_empty() {
                return Err(ParseError::TextAfterSectionHeader { line: start_line });
            }
            let name = rest[..end].trim().to_owned();
            if name.is_empty() {
                return Err(ParseError::EmptySectionName { line: start_line });
            }
            if sections.iter().any(|s| eq_name(&s.name, &name)) {
                return Err(ParseError::DuplicateSection {
                    name,
                    line: start_line,
                });
            }
            sections.push(Section {
                name,
                line: start_line,
                entries: Vec::new(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            return Err(ParseError::EntryOutsideSection { line: start_line });
        };
        let halves = split_outside_quotes(trimmed, '=');
        let (key, value_text) = if halves.len() > 1 {
            let key_len = halves[0].len();
            (Some(unquote(halves[0])), &trimmed[key_len + 1..])
        } else {
            (None, trimmed)
        };
        let values = split_outside_quotes(value_text, ',')
            .into_iter()
            .map(unquote)
            .collect();
        section.entries.push(Entry {
            line: start_line,
            key,
            values,
            raw: trimmed.to_owned(),
        });
    }
    Ok(Inf { sections })
}

impl Inf {
    /// The section named `name` (case-insensitive).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| eq_name(&s.name, name))
    }

    /// The `[Strings]` table: key (lower case) to value.
    pub fn strings(&self) -> Vec<(String, String)> {
        self.section("Strings")
            .map(|s| {
                s.entries
                    .iter()
                    .filter_map(|e| {
                        let key = e.key.as_ref()?;
                        Some((key.to_ascii_lowercase(), e.values.join(",")))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Section {
    /// The values of the first entry whose key is `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.key.as_deref().is_some_and(|k| eq_name(k, key)))
    }

    /// Every entry whose key is `key` (case-insensitive).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.key.as_deref().is_some_and(|k| eq_name(k, key)))
    }
}

impl Entry {
    /// The first value, or the empty string.
    pub fn first(&self) -> &str {
        self.values.first().map(String::as_str).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_quotes_and_continuations() {
        let inf = parse(
            "; header comment\n[Version]\nSignature = \"$WINDOWS NT$\" ; trailing\n\
             [Strings]\nDesc = \"a \"\"quoted\"\" ; not a comment\"\n\
             [List]\na, \\\n  b ,c\n",
        )
        .unwrap();
        assert_eq!(inf.sections.len(), 3);
        let version = inf.section("version").unwrap();
        assert_eq!(version.get("SIGNATURE").unwrap().first(), "$WINDOWS NT$");
        let strings = inf.strings();
        assert_eq!(strings[0].1, "a \"quoted\" ; not a comment");
        let list = &inf.section("List").unwrap().entries[0];
        assert_eq!(list.values, ["a", "b", "c"]);
        assert_eq!(list.line, 7);
    }

    #[test]
    fn syntax_errors_are_named_with_their_line() {
        let cases: &[(&str, ParseError)] = &[
            ("[A\n", ParseError::UnterminatedSectionHeader { line: 1 }),
            ("[A] x\n", ParseError::TextAfterSectionHeader { line: 1 }),
            ("[ ]\n", ParseError::EmptySectionName { line: 1 }),
            ("a=b\n", ParseError::EntryOutsideSection { line: 1 }),
            ("[A]\nx=\"b\n", ParseError::UnterminatedQuote { line: 2 }),
            ("[A]\nx=b \\\n", ParseError::ContinuationAtEnd { line: 2 }),
            (
                "[A]\n[a]\n",
                ParseError::DuplicateSection {
                    name: "a".into(),
                    line: 2,
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap_err(), *expected, "for {text:?}");
        }
    }

    #[test]
    fn decodes_utf16_with_bom_and_rejects_broken_text() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "[Version]\r\n".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(decode(&bytes).unwrap(), "[Version]\r\n");
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(ParseError::BadEncoding));
        assert_eq!(
            decode(&[0xFF, 0xFE, 0x00, 0xD8]),
            Err(ParseError::BadEncoding)
        );
        assert_eq!(decode(&[0x80, 0x41]), Err(ParseError::BadEncoding));
        assert_eq!(decode(b"\xEF\xBB\xBF[A]").unwrap(), "[A]");
    }
}
