//! Reading a LoadTest document from YAML text, with the path of the offending field in
//! every error. Pure: the caller reads the file.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::spec::LoadTestFile;
use crate::validate::{DataShape, FieldError, validate};

#[derive(Debug, Error)]
pub enum LoadError {
    /// The text is not YAML, or a field has the wrong type, is unknown or is missing.
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    /// The document parsed but says something impossible.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

impl LoadError {
    /// Every problem as (path, message).
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            LoadError::Syntax { path, message } => vec![FieldError {
                path: path.clone(),
                message: message.clone(),
            }],
            LoadError::Invalid(v) => v.clone(),
        }
    }
}

/// Parses YAML (or JSON) text into a LoadTest, without semantic checks.
pub fn parse(text: &str) -> Result<LoadTestFile, LoadError> {
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let mut message = e.into_inner().to_string();
        // The YAML error text repeats a path prefix ("spec.connections: invalid type…").
        if let Some((head, rest)) = message.split_once(": ")
            && !head.contains(char::is_whitespace)
            && path.starts_with(head)
        {
            message = rest.to_string();
        }
        LoadError::Syntax {
            path: if path == "." {
                "(document)".into()
            } else {
                path
            },
            message,
        }
    })
}

/// Parses and validates. `csv` holds the shape of CSV data sets, by set name.
pub fn parse_and_validate(
    text: &str,
    csv: &BTreeMap<String, DataShape>,
) -> Result<LoadTestFile, LoadError> {
    let file = parse(text)?;
    let errs = validate(&file, csv);
    if errs.is_empty() {
        Ok(file)
    } else {
        Err(LoadError::Invalid(errs))
    }
}
