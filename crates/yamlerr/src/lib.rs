//! Loading YAML files so that every error says where: `file:line: field.path: message`.
//! Syntax and type errors come located from the parser; errors found after
//! parsing (validation) carry a field path that `path::locate` maps to a line.

pub mod path;

use serde::de::DeserializeOwned;

/// An error in a YAML file with its place: `file:line[:col]: field: message`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for LocatedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LocatedError {}

/// Reads a file to text; failure is an error naming the file.
pub fn read(path: &std::path::Path) -> Result<String, LocatedError> {
    std::fs::read_to_string(path).map_err(|e| LocatedError {
        file: path.display().to_string(),
        line: None,
        column: None,
        field: String::new(),
        message: format!("cannot read: {e}"),
    })
}

/// Builds an error for the field at `field` (`a.b[2].c`) of the YAML `text`.
pub fn at_field(text: &str, file: &str, field: &str, message: impl Into<String>) -> LocatedError {
    LocatedError {
        file: file.to_string(),
        line: path::locate(text, &path::parse_path(field)),
        column: None,
        field: field.to_string(),
        message: message.into(),
    }
}

/// Deserializes `text`; an error names the line and the field path.
pub fn from_str<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, LocatedError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let inner = e.into_inner();
        let loc = inner.location();
        let mut msg = inner.to_string();
        // serde_yaml_ng appends " at line L column C" and may prefix the path;
        // both are printed up front instead
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        while let Some((head, rest)) = msg.split_once(": ") {
            if head.contains(' ') || !field.starts_with(head) {
                break;
            }
            msg = rest.to_string();
        }
        // A known field path locates a value error better than the parser's
        // position (which is where the enclosing map starts).
        // Inside a flow collection (`{a: 1}`) the parser's position is exact.
        if let Some(line) = (!field.is_empty())
            .then(|| path::locate_exact(text, &path::parse_path(&field)))
            .flatten()
        {
            return LocatedError {
                file: file.to_string(),
                line: Some(line),
                column: None,
                field,
                message: msg,
            };
        }
        let partial = (!field.is_empty())
            .then(|| path::locate(text, &path::parse_path(&field)))
            .flatten();
        LocatedError {
            file: file.to_string(),
            line: loc.as_ref().map(|l| l.line()).or(partial),
            column: loc.as_ref().map(|l| l.column()),
            field,
            message: msg,
        }
    })
}
