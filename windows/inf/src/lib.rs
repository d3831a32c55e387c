//! The suite's INF files: reading them ([`mod@parse`]), stamping `.inx` templates into `.inf` files
//! ([`mod@stamp`], our equivalent of the WDK's `stampinf`), and checking every INF the suite ships
//! ([`mod@check`]; the WDK's `infverif` does not run on Linux).
//!
//! INF text is untrusted input here like any other: the parser and checker return typed errors
//! for anything malformed and never panic on it.
#![forbid(unsafe_code)]

pub mod check;
pub mod parse;
pub mod stamp;

pub use check::{check, Problem, ProblemKind};
pub use parse::{decode, parse, Inf, ParseError};
pub use stamp::{stamp, Date, StampError, StampParams};

/// A Windows architecture a driver package is stamped and checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86_64.
    Amd64,
}

impl Arch {
    /// The name stampinf substitutes for `$ARCH$` (`amd64`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
        }
    }

    /// The platform part of section decorations (`NTamd64`).
    pub fn platform(self) -> &'static str {
        match self {
            Arch::Amd64 => "NTamd64",
        }
    }

    /// The decoration of `[SourceDisksNames]`-style sections and `CatalogFile.` (`NTamd64`).
    pub fn decoration(self) -> &'static str {
        self.platform()
    }
}

/// Everything wrong with INF bytes: a parse error, or the checker's problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfError {
    /// The bytes do not decode or parse.
    Parse(ParseError),
    /// The checker's problems (never empty).
    Problems(Vec<Problem>),
}

impl std::fmt::Display for InfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InfError::Parse(e) => write!(f, "{e}"),
            InfError::Problems(problems) => {
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for InfError {}

/// Decodes, parses and checks INF bytes for `arch`.
pub fn check_bytes(bytes: &[u8], arch: Arch) -> Result<Inf, InfError> {
    let text = decode(bytes).map_err(InfError::Parse)?;
    let inf = parse(&text).map_err(InfError::Parse)?;
    let problems = check(&inf, arch);
    if problems.is_empty() {
        Ok(inf)
    } else {
        Err(InfError::Problems(problems))
    }
}
